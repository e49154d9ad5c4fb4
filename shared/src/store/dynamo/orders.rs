//! The order item: reading it, its status changes (each conditional on the status it was
//! read in), the delivery hand-over, cancel, and the marks that are not status changes.

use super::progress::{started_attribute, step_set, SUCCEEDED_STEPS};
use super::{
    build_error, cancellation_codes, is_conditional_failure, item_found, order_key, outbox_put,
    put_new, read, s, step_key, unavailable, OrderStore,
};
use crate::order::OrderId;
use crate::status::OrderStatus;
use crate::store::keys::{courier_event_pk, order_pk, status_index_values, step_sk};
use crate::store::{
    cancel_refused, delivery_refused, late_delivery_reason, now, token_refused, Cancellation,
    Claim, Delivery, DeliveryRecorded, DeliveryRefusal, Failure, OrderRecord, Parked, StoreError,
    TaskToken, TokenStored, Transition, COURIER_EVENT_TTL_SECONDS,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use std::collections::{BTreeMap, HashMap};

impl OrderStore {
    /// An UpdateItem of the order's item.
    pub(super) fn update_order_item(
        &self,
        id: &OrderId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
    }

    /// The order item, read consistently; `None` when there is no such order.
    pub async fn get_order(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let item = self.get_item(order_key(id), "GetItem(order)").await?;
        item.map(|item| read(item, &order_pk(id))).transpose()
    }

    /// The order item, or [`StoreError::NotFound`].
    pub async fn require_order(&self, id: &OrderId) -> Result<OrderRecord, StoreError> {
        self.get_order(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// Marks the order as put in front of an operator (not a status change), and writes
    /// `event` (`Order Needs Operator`) to the outbox in the same transaction.
    pub async fn park(
        &self,
        read_order: &OrderRecord,
        reason: &str,
        event: &crate::events::OrderEvent,
    ) -> Result<(), StoreError> {
        const OP: &str = "TransactWriteItems(park)";
        let id = &read_order.order_id;
        let parked = Parked {
            at: now(),
            reason: reason.to_owned(),
            letter_pending: true,
        };
        let value = serde_dynamo::to_attribute_value(&parked).map_err(|e| StoreError::Corrupt {
            key: order_pk(id),
            message: e.to_string(),
        })?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("SET parked = :parked")
            .condition_expression("version = :read AND attribute_not_exists(parked)")
            .expression_attribute_values(":parked", value)
            .expression_attribute_values(":read", AttributeValue::N(read_order.version.to_string()))
            .build()
            .map_err(|e| build_error(OP, e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(outbox_put(&self.table, event, None, OP)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match cancellation_codes(&error)
                .first()
                .and_then(Option::as_deref)
            {
                Some("ConditionalCheckFailed") => match self.get_order(id).await? {
                    None => Err(StoreError::NotFound(id.clone())),
                    Some(_) => Err(StoreError::Changed {
                        order_id: id.clone(),
                        read_version: read_order.version,
                    }),
                },
                _ => Err(unavailable(OP, error)),
            },
        }
    }

    /// Clears the parked order's pending dead letter ([`Ledger::dead_letter_sent`]).
    pub async fn dead_letter_sent(&self, id: &OrderId) -> Result<(), StoreError> {
        let result = self
            .update_order_item(id)
            .update_expression("REMOVE parked.letter_pending")
            .condition_expression("attribute_exists(parked)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_conditional_failure(&error) => Ok(()),
            Err(error) => Err(unavailable("UpdateItem(dead letter sent)", error)),
        }
    }

    /// Records `claim.arn` as the order's execution before it starts, conditional on the
    /// resume count and execution the starter read ([`Ledger::claim_execution`]).
    pub async fn claim_execution(&self, id: &OrderId, claim: &Claim<'_>) -> Result<(), StoreError> {
        const OP: &str = "UpdateItem(claim execution)";
        let mut update = self
            .update_order_item(id)
            .update_expression(
                "SET execution_arn = :arn, resumes = :resumes, version = version + :one \
                 REMOVE parked",
            )
            .expression_attribute_values(":arn", s(claim.arn))
            .expression_attribute_values(":resumes", AttributeValue::N(claim.resumes.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":read_resumes",
                AttributeValue::N(claim.read_resumes.to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // The resume count as read (an order placed before resumes were counted has none:
        // zero), and the execution as read.
        let resumes_as_read = if claim.read_resumes == 0 {
            "(attribute_not_exists(resumes) OR resumes = :read_resumes)"
        } else {
            "resumes = :read_resumes"
        };
        let arn_as_read = match claim.read_arn {
            None => "attribute_not_exists(execution_arn)".to_owned(),
            Some(read) => {
                update = update.expression_attribute_values(":read_arn", s(read));
                "execution_arn = :read_arn".to_owned()
            }
        };
        // Never an order that has ended: nothing may drive it again. (But a CANCELLED
        // order read as such, by `recovery::undo_cancelled`, to undo the effects it holds.)
        let finals: Vec<String> = (OrderStatus::ALL.iter())
            .filter(|status| status.is_final() && !claim.undoes(**status))
            .enumerate()
            .map(|(i, status)| {
                let name = format!(":final{i}");
                update = update
                    .clone()
                    .expression_attribute_values(name.clone(), s(status.as_str()));
                name
            })
            .collect();
        let result = update
            .expression_attribute_names("#status", "status")
            .condition_expression(format!(
                "attribute_exists(pk) AND {resumes_as_read} AND {arn_as_read} \
                 AND NOT (#status IN ({}))",
                finals.join(", ")
            ))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) if is_conditional_failure(&error) => error,
            Err(error) => return Err(unavailable(OP, error)),
        };
        let found = match item_found(&error) {
            Some(item) => Some(read::<OrderRecord>(item, &order_pk(id))?),
            None => self.get_order(id).await?,
        };
        match found {
            None => Err(StoreError::NotFound(id.clone())),
            Some(order) if order.status.is_final() && !claim.undoes(order.status) => {
                Err(StoreError::Conflict {
                    order_id: id.clone(),
                    expected: claim.read_status,
                    actual: order.status,
                })
            }
            Some(order) => Err(StoreError::Claimed {
                order_id: id.clone(),
                execution_arn: order.execution_arn,
            }),
        }
    }

    /// Makes the status `change`, only if the order is still in its `from` status, with the
    /// reason it failed if the change gives one. Returns the order as written.
    pub async fn transition(
        &self,
        id: &OrderId,
        change: Transition<'_>,
    ) -> Result<OrderRecord, StoreError> {
        let Transition {
            from,
            to,
            failure,
            announce,
        } = change;
        let update = self.transition_update(id, &[from], to, failure, &[], None)?;
        if let Some(event) = announce {
            // With its event: one transaction, then the order as written. The event is
            // stamped with the time the update records as the order's last change.
            const OP: &str = "TransactWriteItems(status and event)";
            let recorded_at = (update.expression_attribute_values())
                .and_then(|values| values.get(":now"))
                .and_then(|value| value.as_s().ok())
                .cloned()
                .unwrap_or_else(now);
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(outbox_put(&self.table, event, Some(&recorded_at), OP)?)
                .send()
                .await;
            return match result {
                Ok(_) => self.require_order(id).await,
                Err(error) => match cancellation_codes(&error)
                    .first()
                    .and_then(Option::as_deref)
                {
                    Some("ConditionalCheckFailed") => Err(self.conflict(id, from).await),
                    _ => Err(unavailable(OP, error)),
                },
            };
        }
        let result = self.update_alone(update).send().await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => read(item, &order_pk(id)),
                None => self.require_order(id).await,
            },
            Err(e) if is_conditional_failure(&e) => Err(self.conflict(id, from).await),
            Err(e) => Err(unavailable("UpdateItem(status)", e)),
        }
    }

    /// `update` (built for a transaction) sent on its own as an UpdateItem that returns the
    /// item as written.
    fn update_alone(
        &self,
        update: Update,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .return_values(ReturnValue::AllNew)
    }

    /// Explains a failed status condition: the order is gone, or in another status.
    pub(super) async fn conflict(&self, id: &OrderId, expected: OrderStatus) -> StoreError {
        match self.get_order(id).await {
            Ok(Some(actual)) => StoreError::Conflict {
                order_id: id.clone(),
                expected,
                actual: actual.status,
            },
            Ok(None) => StoreError::NotFound(id.clone()),
            Err(error) => error,
        }
    }

    /// The conditional update that moves the order to `to` from the status it is in, if
    /// that is one of `from` (one status, or any of several: a cancel), with the reason it
    /// failed, `extra` attributes set and `succeeded_step` joining its succeeded set.
    pub(super) fn transition_update(
        &self,
        id: &OrderId,
        from: &[OrderStatus],
        to: OrderStatus,
        failure: Option<&Failure>,
        extra: &[(&str, AttributeValue)],
        succeeded_step: Option<&str>,
    ) -> Result<Update, StoreError> {
        for from in from {
            from.check_transition(to)
                .map_err(|source| StoreError::IllegalTransition {
                    order_id: id.clone(),
                    source,
                })?;
        }
        let updated_at = now();
        let (gsi2pk, gsi2sk) = status_index_values(to, &updated_at, id);
        let mut expression = String::from(
            "SET #status = :to, version = version + :one, updated_at = :now, \
             gsi2pk = :gsi2pk, gsi2sk = :gsi2sk",
        );
        let mut values = HashMap::from([
            (":to".to_owned(), s(to.as_str())),
            (":one".to_owned(), AttributeValue::N("1".into())),
            (":now".to_owned(), s(updated_at)),
            (":gsi2pk".to_owned(), s(gsi2pk)),
            (":gsi2sk".to_owned(), s(gsi2sk)),
        ]);
        if let Some(failure) = failure {
            expression.push_str(", failure = :failure");
            let value =
                serde_dynamo::to_attribute_value(failure).map_err(|e| StoreError::Corrupt {
                    key: order_pk(id),
                    message: e.to_string(),
                })?;
            values.insert(":failure".into(), value);
        }
        for (attribute, value) in extra {
            expression.push_str(&format!(", {attribute} = :{attribute}"));
            values.insert(format!(":{attribute}"), value.clone());
        }
        let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
        let from_values: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        values.extend(
            from_values
                .iter()
                .zip(from)
                .map(|(name, status)| (name.clone(), s(status.as_str()))),
        );
        let mut condition = match from_values.as_slice() {
            [one] => format!("#status = {one}"),
            several => format!("#status IN ({})", several.join(", ")),
        };
        // Together with a step's success: the step joins the order's succeeded set, once.
        if let Some(step) = succeeded_step {
            expression.push_str(" ADD #succeeded :steps");
            condition.push_str(" AND NOT contains(#succeeded, :step)");
            names.insert("#succeeded".into(), SUCCEEDED_STEPS.into());
            values.insert(":steps".into(), step_set(step));
            values.insert(":step".into(), s(step));
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| build_error("UpdateItem(status)", e))
    }

    /// Stores the task token of the execution waiting for the order's delivery, if the
    /// order is still SHIPPED. When the delivery was recorded first, says so, so that the
    /// caller resumes the execution itself: exactly one of the two sides holds both.
    pub async fn store_task_token(
        &self,
        id: &OrderId,
        token: &TaskToken<'_>,
    ) -> Result<TokenStored, StoreError> {
        let mut update = self
            .update_order_item(id)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token.token))
            .expression_attribute_values(":now", s(now()))
            .expression_attribute_values(":shipped", s(OrderStatus::Shipped.as_str()));
        // A token of a known attempt replaces only an older attempt's (or an unfenced
        // one); a token of an unknown attempt only an unfenced one.
        update = match token.fence(id) {
            Some(fence) => update
                .update_expression("SET task_token = :token, task_fence = :fence, updated_at = :now")
                .condition_expression(
                    "#status = :shipped AND (attribute_not_exists(task_fence) OR task_fence <= :fence)",
                )
                .expression_attribute_values(":fence", AttributeValue::N(fence.to_string())),
            None => update
                .update_expression("SET task_token = :token, updated_at = :now")
                .condition_expression("#status = :shipped AND attribute_not_exists(task_fence)"),
        };
        match update.send().await {
            Ok(_) => Ok(TokenStored::Waiting),
            Err(e) if is_conditional_failure(&e) => {
                let order = self.require_order(id).await?;
                match order.status {
                    OrderStatus::Shipped => Ok(TokenStored::Superseded),
                    _ => token_refused(order),
                }
            }
            Err(e) => Err(unavailable("UpdateItem(task token)", e)),
        }
    }

    /// Records the courier's delivery event, in one transaction: the order moves SHIPPED ->
    /// DELIVERED, the AwaitDelivery step succeeds with the event's references, the
    /// ArrangeShipment step must name the event's shipment, and the event id is kept (for
    /// [`COURIER_EVENT_TTL_SECONDS`]) so the same event is recognised when replayed. What
    /// is refused changes nothing.
    pub async fn record_delivery(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        event: &crate::events::OrderEvent,
    ) -> Result<DeliveryRecorded, StoreError> {
        const OP: &str = "TransactWriteItems(record delivery)";
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(delivery).map_err(|e| StoreError::Corrupt {
                key: order_pk(id),
                message: e.to_string(),
            })?;
        // SHIPPED, or rolling back without having cancelled the shipment yet (delivered
        // after the delivery timeout): the delivery stops that rollback.
        let mut order_update = self.transition_update(
            id,
            &[OrderStatus::Shipped, OrderStatus::Compensating],
            OrderStatus::Delivered,
            None,
            &[("delivery", value.clone())],
            Some(crate::steps::AWAIT_DELIVERY.name),
        )?;
        if let Some(condition) = order_update.condition_expression.as_mut() {
            condition.push_str(" AND NOT contains(#succeeded, :cancel_shipment)");
        }
        if let Some(values) = order_update.expression_attribute_values.as_mut() {
            values.insert(
                ":cancel_shipment".into(),
                s(crate::steps::CANCEL_SHIPMENT.name),
            );
        }
        let references = BTreeMap::from([
            ("event_id".to_owned(), delivery.event_id.clone()),
            ("shipment_id".to_owned(), delivery.shipment_id.clone()),
            ("delivered_at".to_owned(), delivery.delivered_at.clone()),
        ]);
        let references =
            serde_dynamo::to_attribute_value(&references).map_err(|e| StoreError::Corrupt {
                key: step_sk(crate::steps::AWAIT_DELIVERY.name),
                message: e.to_string(),
            })?;
        let now = now();
        let step_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(step_key(id, crate::steps::AWAIT_DELIVERY.name)))
            .update_expression(
                "SET #status = :succeeded, order_id = :id, step = :step, \
                 started_at = if_not_exists(started_at, :now), \
                 attempts = if_not_exists(attempts, :one), \
                 finished_at = :now, updated_at = :now, #references = :references",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#references", "references")
            .expression_attribute_values(":succeeded", s("SUCCEEDED"))
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":step", s(crate::steps::AWAIT_DELIVERY.name))
            .expression_attribute_values(":now", s(now.clone()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":references", references)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let shipment_check = self.shipment_check(id, delivery, OP)?;
        let event_put = self.courier_event_put(id, delivery, OP)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(order_update).build())
            .transact_items(TransactWriteItem::builder().update(step_update).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(shipment_check)
                    .build(),
            )
            .transact_items(event_put)
            .transact_items(outbox_put(&self.table, event, None, OP)?)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(DeliveryRecorded::Now(self.require_order(id).await?)),
            Err(error) => error,
        };
        let codes = cancellation_codes(&error);
        let refused = |index: usize| {
            codes
                .get(index)
                .is_some_and(|code| code.as_deref() == Some("ConditionalCheckFailed"))
        };
        let refusal = DeliveryRefusal {
            order_not_shipped: refused(0),
            wrong_shipment: refused(2),
            seen_before: refused(3),
        };
        if !(refusal.order_not_shipped || refusal.wrong_shipment || refusal.seen_before) {
            return Err(unavailable(OP, error));
        }
        let order = self.require_order(id).await?;
        let rolled_back = matches!(
            order.status,
            OrderStatus::Compensating | OrderStatus::Failed
        );
        if refusal.order_not_shipped
            && !(refusal.wrong_shipment || refusal.seen_before)
            && rolled_back
            && order.delivery.is_none()
        {
            let cancelled = self
                .get_step(id, crate::steps::CANCEL_SHIPMENT.name)
                .await?
                .is_some_and(|step| step.status == crate::store::StepStatus::Succeeded);
            if cancelled {
                if let Some(parked) = self.record_late_delivery(&order, delivery, value).await? {
                    return Ok(DeliveryRecorded::AfterRollback(parked));
                }
                // Changed meanwhile: say what it is now.
                let order = self.require_order(id).await?;
                return delivery_refused(order, delivery, refusal);
            }
        }
        delivery_refused(order, delivery, refusal)
    }

    /// Records a delivery that came after the courier confirmed the shipment's
    /// cancellation, and parks the order for a person with both facts, in one
    /// transaction: conditional on the shipment cancelled and no delivery recorded, the
    /// event's shipment the one booked, and the event not seen before. `None` when a
    /// condition no longer holds.
    async fn record_late_delivery(
        &self,
        order: &OrderRecord,
        delivery: &Delivery,
        value: AttributeValue,
    ) -> Result<Option<OrderRecord>, StoreError> {
        const OP: &str = "TransactWriteItems(record late delivery)";
        let id = &order.order_id;
        let reason = late_delivery_reason(order, delivery);
        let parked = Parked {
            at: now(),
            reason: reason.clone(),
            letter_pending: true,
        };
        let parked =
            serde_dynamo::to_attribute_value(&parked).map_err(|e| StoreError::Corrupt {
                key: order_pk(id),
                message: e.to_string(),
            })?;
        let order_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("SET delivery = :delivery, parked = :parked")
            .condition_expression(
                "attribute_not_exists(delivery) AND contains(#succeeded, :cancel_shipment)",
            )
            .expression_attribute_names("#succeeded", SUCCEEDED_STEPS)
            .expression_attribute_values(":delivery", value)
            .expression_attribute_values(":parked", parked)
            .expression_attribute_values(":cancel_shipment", s(crate::steps::CANCEL_SHIPMENT.name))
            .build()
            .map_err(|e| build_error(OP, e))?;
        let shipment_check = self.shipment_check(id, delivery, OP)?;
        let needs_operator = crate::events::OrderEvent::needs_operator(order, &reason);
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(order_update).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(shipment_check)
                    .build(),
            )
            .transact_items(self.courier_event_put(id, delivery, OP)?)
            .transact_items(outbox_put(&self.table, &needs_operator, None, OP)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(self.require_order(id).await?)),
            Err(error) => match cancellation_codes(&error)
                .iter()
                .any(|code| code.as_deref() == Some("ConditionalCheckFailed"))
            {
                true => Ok(None),
                false => Err(unavailable(OP, error)),
            },
        }
    }

    /// The condition that ArrangeShipment booked the delivery's shipment for the order.
    fn shipment_check(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        operation: &'static str,
    ) -> Result<ConditionCheck, StoreError> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(step_key(id, crate::steps::ARRANGE_SHIPMENT.name)))
            .condition_expression("#references.shipment_id = :shipment")
            .expression_attribute_names("#references", "references")
            .expression_attribute_values(":shipment", s(delivery.shipment_id.clone()))
            .build()
            .map_err(|e| build_error(operation, e))
    }

    /// The item that remembers the courier event for the order (a new one only).
    fn courier_event_put(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        operation: &'static str,
    ) -> Result<TransactWriteItem, StoreError> {
        let expires_at = chrono::Utc::now().timestamp() + COURIER_EVENT_TTL_SECONDS;
        put_new(
            &self.table,
            HashMap::from([
                ("pk".to_owned(), s(courier_event_pk(id, &delivery.event_id))),
                ("sk".to_owned(), s("EVENT")),
                ("order_id".to_owned(), s(id.as_str())),
                ("received_at".to_owned(), s(now())),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ]),
            operation,
        )
    }

    /// Moves the order to CANCELLING if it has not shipped yet, in one UpdateItem
    /// conditional on its status being one a cancel moves on from; nothing is read first,
    /// so no workflow step can slip in between. A refused write hands back the order as it
    /// found it, which says why: already cancelling, too late, or (no item) no such order.
    pub async fn cancel(&self, id: &OrderId) -> Result<Cancellation, StoreError> {
        const OP: &str = "UpdateItem(cancel)";
        // Nothing begun as read: try to end it at once, on condition that nothing has
        // begun still; anything that began since sends it the long way.
        let order = self.require_order(id).await?;
        if order.status == OrderStatus::Accepted && order.execution_arn.is_none() {
            if let Some(ended) = self.cancel_unstarted(&order).await? {
                return Ok(Cancellation::Started(ended));
            }
        }
        let from: Vec<OrderStatus> = OrderStatus::cancellable().collect();
        let update = self.transition_update(id, &from, OrderStatus::Cancelling, None, &[], None)?;
        let result = self
            .update_alone(update)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(output) => {
                return Ok(Cancellation::Started(match output.attributes {
                    Some(item) => read(item, &order_pk(id))?,
                    None => self.require_order(id).await?,
                }))
            }
            Err(error) if is_conditional_failure(&error) => error,
            Err(error) => return Err(unavailable(OP, error)),
        };
        // No item handed back: there is no such order, or an emulator that does not hand
        // it back; a read tells which.
        let order = match item_found(&error) {
            Some(item) => read(item, &order_pk(id))?,
            None => self.require_order(id).await?,
        };
        Ok(cancel_refused(order))
    }

    /// Ends an order on which nothing has begun CANCELLED at once, with its `Order
    /// Cancelled` event, in one transaction conditional on that: still ACCEPTED, no
    /// execution recorded (an execution is recorded before it starts,
    /// [`OrderStore::claim_execution`]), no step begun (every step's begin is counted on
    /// the order item). `None` when something began: the cancel must go through the
    /// execution.
    async fn cancel_unstarted(
        &self,
        order: &OrderRecord,
    ) -> Result<Option<OrderRecord>, StoreError> {
        const OP: &str = "TransactWriteItems(cancel before anything began)";
        let id = &order.order_id;
        let mut update = self.transition_update(
            id,
            &[OrderStatus::Accepted],
            OrderStatus::Cancelled,
            None,
            &[],
            None,
        )?;
        let mut condition = update.condition_expression.take().unwrap_or_default();
        let mut names = update.expression_attribute_names.take().unwrap_or_default();
        condition.push_str(" AND attribute_not_exists(execution_arn)");
        for (i, step) in crate::steps::ALL.iter().enumerate() {
            condition.push_str(&format!(" AND attribute_not_exists(#begun{i})"));
            names.insert(format!("#begun{i}"), started_attribute(step.name));
        }
        update.condition_expression = Some(condition);
        update.expression_attribute_names = Some(names);
        let recorded_at = (update.expression_attribute_values())
            .and_then(|values| values.get(":now"))
            .and_then(|value| value.as_s().ok())
            .cloned()
            .unwrap_or_else(now);
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build());
        let event = crate::events::OrderEvent::after_change(
            order,
            OrderStatus::Cancelled,
            None,
            &crate::store::References::new(),
        );
        if let Some(event) = &event {
            transaction =
                transaction.transact_items(outbox_put(&self.table, event, Some(&recorded_at), OP)?);
        }
        match transaction.send().await {
            Ok(_) => Ok(Some(self.require_order(id).await?)),
            Err(error) => match cancellation_codes(&error)
                .first()
                .and_then(Option::as_deref)
            {
                Some("ConditionalCheckFailed") => Ok(None),
                _ => Err(unavailable(OP, error)),
            },
        }
    }
}
