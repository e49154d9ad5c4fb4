//! The activity ledger's step items: begin, succeed (with the order's status change, in
//! one transaction) and fail.

use super::{
    build_error, cancellation_codes, is_conditional_failure, read, s, step_key, unavailable,
    OrderStore,
};
use crate::errors::ActivityError;
use crate::order::OrderId;
use crate::store::keys::{order_pk, step_sk};
use crate::store::{now, StepRecord, StepStart, StepStatus, StoreError, Transition};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
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

    /// Counts an attempt at `step` and marks it under way, unless it already succeeded,
    /// in which case its recorded result comes back and nothing is changed.
    pub async fn begin_step(&self, id: &OrderId, step: &str) -> Result<StepStart, StoreError> {
        let now = now();
        let result = self
            .update_step_item(id, step)
            .update_expression(
                "SET #status = :started, order_id = :id, step = :step, \
                 started_at = if_not_exists(started_at, :now), updated_at = :now \
                 ADD attempts :one",
            )
            .condition_expression("attribute_not_exists(#status) OR #status <> :succeeded")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":started", s("STARTED"))
            .expression_attribute_values(":succeeded", s("SUCCEEDED"))
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                Ok(StepStart::Started(read(item, &step_sk(step))?))
            }
            Err(e) if is_conditional_failure(&e) => {
                let record = self.require_step(id, step).await?;
                Ok(StepStart::AlreadySucceeded(record))
            }
            Err(e) => Err(unavailable("UpdateItem(begin step)", e)),
        }
    }

    async fn require_step(&self, id: &OrderId, step: &str) -> Result<StepRecord, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem(step)", e))?
            .item
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("{}/{}", order_pk(id), step_sk(step)),
                message: "step item is missing".into(),
            })?;
        read(item, &step_sk(step))
    }

    /// Marks the step `attempt` began SUCCEEDED with its references and, when given, makes
    /// the order's status change, both in one transaction: either both happen or neither
    /// does. On success the record is the attempt with what the transaction wrote (no
    /// read: the transaction's condition says the step was still the attempt's).
    pub async fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: BTreeMap<String, String>,
        transition: Option<Transition<'_>>,
    ) -> Result<StepRecord, StoreError> {
        const OP: &str = "TransactWriteItems(step succeeded)";
        let (id, step) = (&attempt.order_id, attempt.step.as_str());
        let now = now();
        let order_update = transition
            .map(|t| self.transition_update(id, t.from, t.to, t.failure, &[]))
            .transpose()?;
        let mut values = HashMap::from([
            (":succeeded".to_owned(), s("SUCCEEDED")),
            (":started".to_owned(), s("STARTED")),
            (":now".to_owned(), s(now.clone())),
        ]);
        let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
        let mut expression =
            String::from("SET #status = :succeeded, finished_at = :now, updated_at = :now");
        // An earlier attempt's error is history once the step succeeds.
        let remove = " REMOVE #error, error_message";
        names.insert("#error".into(), "error".into());
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
        expression.push_str(remove);
        let step_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
            .update_expression(expression)
            .condition_expression("#status = :started")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| build_error(OP, e))?;
        let step_index = usize::from(order_update.is_some());
        let mut request = self.client.transact_write_items();
        if let Some(order_update) = order_update {
            request =
                request.transact_items(TransactWriteItem::builder().update(order_update).build());
        }
        // What the step's update writes.
        let succeeded = attempt.clone().succeeded(references, now);
        let result = request
            .transact_items(TransactWriteItem::builder().update(step_update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(succeeded),
            Err(error) => {
                let reasons = cancellation_codes(&error);
                let failed = |index: usize| {
                    reasons.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                };
                if failed(step_index) {
                    // A concurrent run of the same step finished first: its result stands.
                    let record = self.require_step(id, step).await?;
                    if record.status == StepStatus::Succeeded {
                        return Ok(record);
                    }
                }
                // With a transition, the order's update is item 0.
                if let Some(t) = transition.filter(|_| failed(0)) {
                    return Err(self.conflict(id, t.from).await);
                }
                Err(unavailable(OP, error))
            }
        }
    }

    /// Marks `step` FAILED with the error name and message ([`Ledger::fail_step`](crate::store::Ledger::fail_step)).
    pub async fn fail_step(
        &self,
        id: &OrderId,
        step: &str,
        error: &ActivityError,
    ) -> Result<(), StoreError> {
        let result = self
            .update_step_item(id, step)
            .update_expression(
                "SET #status = :failed, #error = :error, error_message = :message, \
                 finished_at = :now, updated_at = :now",
            )
            .condition_expression("attribute_exists(pk) AND #status <> :succeeded")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":succeeded", s("SUCCEEDED"))
            .expression_attribute_values(":error", s(error.name.as_str()))
            .expression_attribute_values(":message", s(error.message.clone()))
            .expression_attribute_values(":now", s(now()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A concurrent run of the step succeeded first: its success stands.
            Err(e) if is_conditional_failure(&e) => match self.require_step(id, step).await {
                Ok(record) if record.status == StepStatus::Succeeded => Ok(()),
                _ => Err(unavailable("UpdateItem(fail step)", e)),
            },
            Err(e) => Err(unavailable("UpdateItem(fail step)", e)),
        }
    }
}
