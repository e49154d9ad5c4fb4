//! The activity ledger's steps: begin (counted on the order item, which comes back),
//! succeed (with the order's status change, in one transaction) and fail.

use super::lookups::TRANSACTION_ITEMS;
use super::progress::{
    self, attempts_attribute, begun_attribute, started_attribute, SUCCEEDED_STEPS,
};
use super::{
    build_error, cancellation_codes, is_conditional_failure, item_found, order_key, outbox_put,
    read, s, step_key, unavailable, Item, OrderStore,
};
use crate::errors::ActivityError;
use crate::order::OrderId;
use crate::store::keys::{order_pk, step_sk};
use crate::store::{now, OrderRecord, StepRecord, StepStart, StepStatus, StoreError, Transition};
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::{BTreeMap, HashMap};

impl OrderStore {
    /// An UpdateItem of the step's item.
    fn update_step_item(
        &self,
        id: &OrderId,
        step: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
    }

    /// Counts an attempt at `step` on the order item and returns the order with it, in one
    /// conditional UpdateItem, unless the step already succeeded, in which case its
    /// recorded result comes back and nothing is changed.
    pub async fn open_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> Result<(OrderRecord, StepStart), StoreError> {
        const OP: &str = "UpdateItem(begin step)";
        let now = now();
        let result = self
            .update_order_item(id)
            .update_expression(
                "SET #started = if_not_exists(#started, :now), #begun = :now ADD #attempts :one",
            )
            .condition_expression("attribute_exists(pk) AND NOT contains(#succeeded, :step)")
            .expression_attribute_names("#started", started_attribute(step))
            .expression_attribute_names("#begun", begun_attribute(step))
            .expression_attribute_names("#attempts", attempts_attribute(step))
            .expression_attribute_names("#succeeded", SUCCEEDED_STEPS)
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":step", s(step))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                let counts_steps = progress::counts_steps(&item);
                let order: OrderRecord = read(item.clone(), &order_pk(id))?;
                let attempt = progress::attempt(&order, &item, step);
                if !counts_steps {
                    // Placed before steps were counted on the order: its step item says
                    // whether the step succeeded.
                    if let Some(record) = self.get_step(id, step).await? {
                        if record.status == StepStatus::Succeeded {
                            return Ok((order, StepStart::AlreadySucceeded(record)));
                        }
                    }
                }
                return Ok((order, StepStart::Started(attempt)));
            }
            Err(error) if is_conditional_failure(&error) => error,
            Err(error) => return Err(unavailable(OP, error)),
        };
        // The order as the refused write found it (no item: there is no such order), or,
        // from an emulator that does not return it, as read now.
        let item = match item_found(&error) {
            Some(item) => item,
            None => self.order_item(id).await?,
        };
        let record = progress::as_counted(&item, self.require_step(id, step).await?);
        Ok((
            read(item, &order_pk(id))?,
            StepStart::AlreadySucceeded(record),
        ))
    }

    /// [`OrderStore::open_step`] without the order.
    pub async fn begin_step(&self, id: &OrderId, step: &str) -> Result<StepStart, StoreError> {
        self.open_step(id, step).await.map(|(_, start)| start)
    }

    /// The order item as stored, with the steps' counts (GetItem: what every activity's
    /// role may do, unlike a Query).
    async fn order_item(&self, id: &OrderId) -> Result<Item, StoreError> {
        self.get_item(order_key(id), "GetItem(order)")
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    pub(super) async fn get_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> Result<Option<StepRecord>, StoreError> {
        let item = self.get_item(step_key(id, step), "GetItem(step)").await?;
        item.map(|item| read(item, &step_sk(step))).transpose()
    }

    async fn require_step(&self, id: &OrderId, step: &str) -> Result<StepRecord, StoreError> {
        self.get_step(id, step)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("{}/{}", order_pk(id), step_sk(step)),
                message: "step item is missing".into(),
            })
    }

    /// Marks the step `attempt` began SUCCEEDED with its references and, when given, makes
    /// the order's status change, both in one transaction: either both happen or neither
    /// does. The order item takes the step into its succeeded set, on condition that it is
    /// not there yet (and that the order is still where the transition starts). On success
    /// the record is the attempt with what the transaction wrote (no read).
    pub async fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: BTreeMap<String, String>,
        transition: Option<Transition<'_>>,
    ) -> Result<StepRecord, StoreError> {
        const OP: &str = "TransactWriteItems(step succeeded)";
        let (id, step) = (&attempt.order_id, attempt.step.as_str());
        let now = now();
        let order_update = match transition {
            Some(t) => self.transition_update(id, &[t.from], t.to, t.failure, &[], Some(step))?,
            None => Update::builder()
                .table_name(&self.table)
                .set_key(Some(order_key(id)))
                .update_expression("ADD #succeeded :steps")
                .condition_expression("attribute_exists(pk) AND NOT contains(#succeeded, :step)")
                .expression_attribute_names("#succeeded", SUCCEEDED_STEPS)
                .expression_attribute_values(":steps", progress::step_set(step))
                .expression_attribute_values(":step", s(step))
                .build()
                .map_err(|e| build_error(OP, e))?,
        };
        let mut values = HashMap::from([
            (":succeeded".to_owned(), s("SUCCEEDED")),
            (":id".to_owned(), s(id.as_str())),
            (":step".to_owned(), s(step)),
            (
                ":attempts".to_owned(),
                AttributeValue::N(attempt.attempts.to_string()),
            ),
            (":started".to_owned(), s(attempt.started_at.clone())),
            (":now".to_owned(), s(now.clone())),
        ]);
        let mut names = HashMap::from([
            ("#status".to_owned(), "status".to_owned()),
            ("#error".to_owned(), "error".to_owned()),
        ]);
        let mut expression = String::from(
            "SET #status = :succeeded, order_id = :id, step = :step, attempts = :attempts, \
             started_at = if_not_exists(started_at, :started), finished_at = :now, \
             updated_at = :now",
        );
        if !references.is_empty() {
            expression.push_str(", #references = :references");
            let value =
                serde_dynamo::to_attribute_value(&references).map_err(|e| StoreError::Corrupt {
                    key: step_sk(step),
                    message: e.to_string(),
                })?;
            values.insert(":references".into(), value);
            names.insert("#references".into(), "references".into());
        }
        // An earlier attempt's error is history once the step succeeds.
        expression.push_str(" REMOVE #error, error_message");
        let step_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(#status) OR #status <> :succeeded")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| build_error(OP, e))?;
        // The lookups of the references the step makes findable go in the same
        // transaction; those that do not fit (two places are the order's and the step's)
        // are written first.
        // Its lifecycle event (the outbox item) too.
        let outbox = match transition.and_then(|t| t.announce) {
            Some(event) => Some(outbox_put(&self.table, event, Some(&now), OP)?),
            None => None,
        };
        let mut lookups = self.lookup_updates(id, step, &references, &now)?;
        let room = TRANSACTION_ITEMS - 2 - usize::from(outbox.is_some());
        let overflow = lookups.split_off(lookups.len().min(room));
        self.write_lookups(overflow).await?;
        // What the step's update writes.
        let succeeded = attempt.clone().succeeded(references, now);
        let items = [order_update, step_update]
            .into_iter()
            .chain(lookups)
            .map(|update| TransactWriteItem::builder().update(update).build())
            .chain(outbox)
            .collect();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(succeeded),
            Err(error) => error,
        };
        let reasons = cancellation_codes(&error);
        let failed = |index: usize| {
            reasons.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
        };
        if failed(0) || failed(1) {
            // A concurrent run of the same step finished first: its result stands, with
            // every attempt counted.
            let done = self.get_step(id, step).await?;
            if let Some(record) = done.filter(|s| s.status == StepStatus::Succeeded) {
                return Ok(progress::as_counted(&self.order_item(id).await?, record));
            }
        }
        match transition.filter(|_| failed(0)) {
            Some(t) => Err(self.conflict(id, t.from).await),
            None => Err(unavailable(OP, error)),
        }
    }

    /// Marks the step `attempt` began FAILED with the error name and message
    /// ([`Ledger::fail_step`](crate::store::Ledger::fail_step)).
    pub async fn fail_step(
        &self,
        attempt: &StepRecord,
        error: &ActivityError,
    ) -> Result<(), StoreError> {
        let (id, step) = (&attempt.order_id, attempt.step.as_str());
        let result = self
            .update_step_item(id, step)
            .update_expression(
                "SET #status = :failed, order_id = :id, step = :step, attempts = :attempts, \
                 started_at = if_not_exists(started_at, :started), #error = :error, \
                 error_message = :message, finished_at = :now, updated_at = :now",
            )
            .condition_expression("attribute_not_exists(#status) OR #status <> :succeeded")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":succeeded", s("SUCCEEDED"))
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(
                ":attempts",
                AttributeValue::N(attempt.attempts.to_string()),
            )
            .expression_attribute_values(":started", s(attempt.started_at.clone()))
            .expression_attribute_values(":error", s(error.name.as_str()))
            .expression_attribute_values(":message", s(error.message.clone()))
            .expression_attribute_values(":now", s(now()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A concurrent run of the step succeeded first: its success stands.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem(fail step)", e)),
        }
    }
}
