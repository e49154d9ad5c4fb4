//! The order table in DynamoDB: one table holds
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | the order | `ORDER#<id>` | `ORDER` |
//! | one per workflow step (the activity ledger) | `ORDER#<id>` | `STEP#<step>` |
//! | one per API `Idempotency-Key` (expires after a day) | `IDEMPOTENCY#<key>` | `IDEMPOTENCY` |
//!
//! Orders are indexed by merchant (`by-merchant`: `gsi1pk = MERCHANT#<id>`, sorted by
//! creation) and by status (`by-status`: `gsi2pk = STATUS#<status>`, sorted by last
//! change), so operators find stuck and failed orders without a scan.
//!
//! New orders and idempotency keys are created only if absent, together, in one
//! transaction; every status change is conditional on the expected previous status and
//! bumps `version`. A lost race is a [`StoreError::Conflict`], never a panic.

use crate::errors::{ActivityError, ErrorName};
use crate::order::{Order, OrderId};
use crate::status::{IllegalTransition, OrderStatus};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Index of orders by merchant.
pub const BY_MERCHANT_INDEX: &str = "by-merchant";
/// Index of orders by status.
pub const BY_STATUS_INDEX: &str = "by-status";
/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

type Item = HashMap<String, AttributeValue>;

/// Why an order ended without completing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The step that failed for good, e.g. `ValidateOrder`.
    pub step: String,
    /// The stable error name, e.g. `Order.Invalid` or `States.Timeout`.
    pub error: String,
    /// What the failing step said, for a person.
    pub reason: String,
    pub at: String,
}

impl Failure {
    /// The failure a state machine Catch reports: `error` is the stable name, `cause`
    /// (for a Lambda error, its JSON `{errorType, errorMessage}`) gives the reason.
    pub fn from_catch(step: &str, error: &str, cause: Option<&str>) -> Failure {
        let cause = cause.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(cause)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned));
        let reason = match message {
            Some(message) => message,
            None if cause.trim().is_empty() => format!("{step} failed with {error}"),
            None => cause.to_owned(),
        };
        Failure {
            step: step.to_owned(),
            error: error.to_owned(),
            reason: reason.chars().take(2000).collect(),
            at: now(),
        }
    }
}

/// The order item, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub status: OrderStatus,
    /// Bumped by every write; lets readers and writers detect concurrent changes.
    pub version: u64,
    pub order: Order,
    /// SHA-256 of the canonical request body, to tell a replay from a different request.
    pub request_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The token of the execution waiting in AwaitDelivery; the courier webhook resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_token: Option<String>,
    /// The courier's delivery event, once it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// How many times the order was resumed (new executions `<id>-r<n>`).
    #[serde(default)]
    pub resumes: u32,
    /// Set when the reconciler gave up on the order and put it in the dead-letter queue;
    /// cleared when it is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
}

/// Why and when the reconciler put an order in front of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub at: String,
    pub reason: String,
}

/// The courier's confirmation that an order's parcel arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The courier's event id: a repeated event is recognised by it.
    pub event_id: String,
    pub shipment_id: String,
    pub delivered_at: String,
}

/// What [`OrderStore::store_task_token`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenStored {
    /// The order is SHIPPED and now holds the token: the webhook will resume the execution.
    Waiting,
    /// The delivery arrived first: the caller resumes the execution itself.
    AlreadyDelivered(Box<OrderRecord>),
}

/// What [`OrderStore::record_delivery`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryRecorded {
    /// The order moved SHIPPED -> DELIVERED now.
    Now(OrderRecord),
    /// The order had been delivered before, by another event for the same shipment.
    Before(OrderRecord),
    /// This very event (its `event_id`) was recorded before: a replay. Nothing changed.
    Duplicate(OrderRecord),
    /// The event's shipment is not the one ArrangeShipment booked for the order (or the
    /// one delivered before). Nothing changed.
    WrongShipment,
}

/// How long a courier event id is remembered for de-duplication: longer than the courier
/// retries an event and than the workflow waits for a delivery.
pub const COURIER_EVENT_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

fn courier_event_pk(event_id: &str) -> String {
    format!("COURIER_EVENT#{event_id}")
}

/// What [`OrderStore::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancellation {
    /// The order moved to CANCELLING now.
    Started(OrderRecord),
    /// The order was already CANCELLING or CANCELLED.
    AlreadyCancelling(OrderRecord),
    /// The order has shipped or ended: too late to cancel.
    TooLate(OrderRecord),
}

/// Where one workflow step is, in the activity ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Started,
    Succeeded,
    Failed,
}

/// One step item: attempts, outcome and what the partners answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub order_id: OrderId,
    pub step: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub started_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Partner references (reservation, charge, terminal and shipment ids) and results.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A status change made together with a step's success.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// Why the order failed, when `to` is a failure.
    pub failure: Option<&'a Failure>,
}

/// What [`OrderStore::place_order`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// The order and its idempotency key were written now.
    Created(OrderRecord),
    /// The key was used before with the same request: this is that order.
    Replayed(OrderRecord),
    /// The key was used before with a different request.
    KeyReused { order_id: OrderId },
}

/// What [`OrderStore::begin_step`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum StepStart {
    /// The step is (again) under way; `attempts` counts this run.
    Started(StepRecord),
    /// The step already succeeded: return its recorded result, call nothing again.
    AlreadySucceeded(StepRecord),
}

/// A store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} does not exist")]
    NotFound(OrderId),
    #[error("order {order_id} is {actual}, not {expected}: someone else moved it")]
    Conflict {
        order_id: OrderId,
        expected: OrderStatus,
        actual: OrderStatus,
    },
    #[error("order {order_id}: {source}")]
    IllegalTransition {
        order_id: OrderId,
        source: IllegalTransition,
    },
    /// DynamoDB throttled, failed or could not be reached: worth retrying.
    #[error("DynamoDB {operation} failed: {message}")]
    Unavailable {
        operation: &'static str,
        message: String,
    },
    /// An item does not have the shape this code writes.
    #[error("item {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
}

impl From<StoreError> for ActivityError {
    fn from(error: StoreError) -> Self {
        let name = match &error {
            StoreError::NotFound(_) => ErrorName::OrderNotFound,
            StoreError::Conflict {
                actual: OrderStatus::Cancelling | OrderStatus::Cancelled,
                ..
            } => ErrorName::OrderCancelled,
            StoreError::Conflict { .. } => ErrorName::OrderConflict,
            StoreError::Unavailable { .. } => ErrorName::StoreUnavailable,
            StoreError::IllegalTransition { .. } | StoreError::Corrupt { .. } => {
                ErrorName::Internal
            }
        };
        ActivityError::new(name, error.to_string())
    }
}

fn unavailable<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable {
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

fn build_error(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        operation,
        message: format!("request could not be built: {error}"),
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

fn step_sk(step: &str) -> String {
    format!("STEP#{step}")
}

fn idempotency_pk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn order_key(id: &OrderId) -> Item {
    key(order_pk(id), "ORDER")
}

fn step_key(id: &OrderId, step: &str) -> Item {
    key(order_pk(id), &step_sk(step))
}

fn status_index_values(status: OrderStatus, updated_at: &str, id: &OrderId) -> (String, String) {
    (format!("STATUS#{status}"), format!("{updated_at}#{id}"))
}

fn read<T: serde::de::DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        message: e.to_string(),
    })
}

fn write<T: Serialize>(value: &T, what: &str) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        message: e.to_string(),
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyRecord {
    order_id: OrderId,
    request_hash: String,
    created_at: String,
    expires_at: i64,
}

/// The order table.
#[derive(Debug, Clone)]
pub struct OrderStore {
    client: Client,
    table: String,
}

impl OrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        OrderStore {
            client,
            table: table.into(),
        }
    }

    /// The store for `table`, with a client from the standard AWS configuration.
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        OrderStore::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Stores a new ACCEPTED order under an `Idempotency-Key`, or finds the order that key
    /// already placed. Order and key are written together or not at all.
    pub async fn place_order(
        &self,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        const OP: &str = "TransactWriteItems(place order)";
        let order_id = OrderId::generate();
        let created_at = now();
        let record = OrderRecord {
            order_id: order_id.clone(),
            status: OrderStatus::Accepted,
            version: 1,
            order: order.clone(),
            request_hash: request_hash.to_owned(),
            execution_arn: None,
            created_at: created_at.clone(),
            updated_at: created_at.clone(),
            failure: None,
            task_token: None,
            delivery: None,
            resumes: 0,
            parked: None,
        };
        let mut order_item = write(&record, "order")?;
        order_item.extend(order_key(&order_id));
        order_item.insert(
            "gsi1pk".into(),
            s(format!("MERCHANT#{}", order.merchant_id)),
        );
        order_item.insert("gsi1sk".into(), s(format!("{created_at}#{order_id}")));
        let (gsi2pk, gsi2sk) = status_index_values(OrderStatus::Accepted, &created_at, &order_id);
        order_item.insert("gsi2pk".into(), s(gsi2pk));
        order_item.insert("gsi2sk".into(), s(gsi2sk));

        let expires_at = Utc::now().timestamp() + IDEMPOTENCY_TTL_SECONDS;
        let mut key_item = write(
            &IdempotencyRecord {
                order_id: order_id.clone(),
                request_hash: request_hash.to_owned(),
                created_at,
                expires_at,
            },
            "idempotency key",
        )?;
        key_item.extend(key(idempotency_pk(idempotency_key), "IDEMPOTENCY"));

        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| build_error(OP, e))
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(key_item)?)
            .transact_items(put(order_item)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Placement::Created(record)),
            Err(error) => {
                let key_taken = cancellation_codes(&error)
                    .first()
                    .is_some_and(|code| code.as_deref() == Some("ConditionalCheckFailed"));
                if !key_taken {
                    return Err(unavailable(OP, error));
                }
                self.find_placement(idempotency_key, request_hash).await
            }
        }
    }

    async fn find_placement(
        &self,
        idempotency_key: &str,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(idempotency_pk(idempotency_key), "IDEMPOTENCY")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem(idempotency key)", e))?
            .item;
        let Some(item) = item else {
            // The key expired between our write and this read: the caller may retry.
            return Err(StoreError::Unavailable {
                operation: "GetItem(idempotency key)",
                message: "the idempotency key vanished while being read; retry".into(),
            });
        };
        let existing: IdempotencyRecord = read(item, "idempotency key")?;
        if existing.request_hash != request_hash {
            return Ok(Placement::KeyReused {
                order_id: existing.order_id,
            });
        }
        let record = self
            .get_order(&existing.order_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(existing.order_id.clone()))?;
        Ok(Placement::Replayed(record))
    }

    /// The order item, read consistently; `None` when there is no such order.
    pub async fn get_order(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem(order)", e))?
            .item;
        item.map(|item| read(item, &order_pk(id))).transpose()
    }

    /// The order item, or [`StoreError::NotFound`].
    pub async fn require_order(&self, id: &OrderId) -> Result<OrderRecord, StoreError> {
        self.get_order(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// The order and all of its step items, in one consistent query.
    pub async fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError> {
        let mut order = None;
        let mut steps = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(order_pk(id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query(order and steps)", e))?;
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
            match sk.as_deref() {
                Some("ORDER") => order = Some(read::<OrderRecord>(item, &order_pk(id))?),
                Some(sk) if sk.starts_with("STEP#") => steps.push(read::<StepRecord>(item, sk)?),
                _ => {}
            }
        }
        steps.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        Ok(order.map(|order| (order, steps)))
    }

    /// Orders in `status` whose last change is older than `before` (an RFC 3339 time),
    /// oldest first, at most `limit`: a Query on the by-status index, never a scan.
    pub async fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut condition = String::from("gsi2pk = :status");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .expression_attribute_values(":status", s(format!("STATUS#{status}")));
        if let Some(before) = before {
            condition.push_str(" AND gsi2sk < :before");
            request = request.expression_attribute_values(":before", s(before));
        }
        self.collect(
            request.key_condition_expression(condition),
            limit,
            "Query(by status)",
        )
        .await
    }

    /// A merchant's orders created at or after `since` (an RFC 3339 time), oldest first,
    /// at most `limit`: a Query on the by-merchant index.
    pub async fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut condition = String::from("gsi1pk = :merchant");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_MERCHANT_INDEX)
            .expression_attribute_values(":merchant", s(format!("MERCHANT#{merchant_id}")));
        if let Some(since) = since {
            condition.push_str(" AND gsi1sk >= :since");
            request = request.expression_attribute_values(":since", s(since));
        }
        self.collect(
            request.key_condition_expression(condition),
            limit,
            "Query(by merchant)",
        )
        .await
    }

    async fn collect(
        &self,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
        operation: &'static str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut orders = Vec::new();
        let mut pages = request.into_paginator().items().send();
        while orders.len() < limit {
            let Some(item) = pages.next().await else {
                break;
            };
            let item = item.map_err(|e| unavailable(operation, e))?;
            let key = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            orders.push(read(item, &key)?);
        }
        Ok(orders)
    }

    /// Counts one more resume of the order and clears its parked mark; returns the new
    /// count, which names the resumed execution (`<id>-r<n>`).
    pub async fn next_resume(&self, id: &OrderId) -> Result<u32, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("ADD resumes :one REMOVE parked")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output
                .attributes
                .and_then(|a| a.get("resumes").and_then(|v| v.as_n().ok()).cloned())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::NotFound(id.clone())),
            Err(e) => Err(unavailable("UpdateItem(resume count)", e)),
        }
    }

    /// Marks the order as put in front of an operator (not a status change).
    pub async fn park(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        let parked = Parked {
            at: now(),
            reason: reason.to_owned(),
        };
        let value = serde_dynamo::to_attribute_value(&parked).map_err(|e| StoreError::Corrupt {
            key: order_pk(id),
            message: e.to_string(),
        })?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("SET parked = :parked")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":parked", value)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::NotFound(id.clone())),
            Err(e) => Err(unavailable("UpdateItem(park)", e)),
        }
    }

    /// Records the Step Functions execution that runs the order. Not a status change.
    pub async fn set_execution_arn(&self, id: &OrderId, arn: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("SET execution_arn = :arn, version = version + :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":arn", s(arn))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::NotFound(id.clone())),
            Err(e) => Err(unavailable("UpdateItem(execution arn)", e)),
        }
    }

    /// Moves the order from `from` to `to`, only if it is still `from`, optionally with the
    /// reason it failed. Returns the order as written.
    pub async fn transition(
        &self,
        id: &OrderId,
        from: OrderStatus,
        to: OrderStatus,
        failure: Option<Failure>,
    ) -> Result<OrderRecord, StoreError> {
        let update = self.transition_update(id, from, to, failure.as_ref(), &[])?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => read(item, &order_pk(id)),
                None => self.require_order(id).await,
            },
            Err(e) if is_conditional_failure(&e) => Err(self.conflict(id, from).await),
            Err(e) => Err(unavailable("UpdateItem(status)", e)),
        }
    }

    /// Explains a failed status condition: the order is gone, or in another status.
    async fn conflict(&self, id: &OrderId, expected: OrderStatus) -> StoreError {
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

    fn transition_update(
        &self,
        id: &OrderId,
        from: OrderStatus,
        to: OrderStatus,
        failure: Option<&Failure>,
        extra: &[(&str, AttributeValue)],
    ) -> Result<Update, StoreError> {
        from.check_transition(to)
            .map_err(|source| StoreError::IllegalTransition {
                order_id: id.clone(),
                source,
            })?;
        let updated_at = now();
        let (gsi2pk, gsi2sk) = status_index_values(to, &updated_at, id);
        let mut expression = String::from(
            "SET #status = :to, version = version + :one, updated_at = :now, \
             gsi2pk = :gsi2pk, gsi2sk = :gsi2sk",
        );
        let mut values = HashMap::from([
            (":to".to_owned(), s(to.as_str())),
            (":from".to_owned(), s(from.as_str())),
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
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression(expression)
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
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
        token: &str,
    ) -> Result<TokenStored, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .update_expression("SET task_token = :token, updated_at = :now")
            .condition_expression("#status = :shipped")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":now", s(now()))
            .expression_attribute_values(":shipped", s(OrderStatus::Shipped.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(TokenStored::Waiting),
            Err(e) if is_conditional_failure(&e) => {
                let order = self.require_order(id).await?;
                match order.status {
                    OrderStatus::Delivered | OrderStatus::Completed => {
                        Ok(TokenStored::AlreadyDelivered(Box::new(order)))
                    }
                    actual => Err(StoreError::Conflict {
                        order_id: id.clone(),
                        expected: OrderStatus::Shipped,
                        actual,
                    }),
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
    ) -> Result<DeliveryRecorded, StoreError> {
        const OP: &str = "TransactWriteItems(record delivery)";
        let value =
            serde_dynamo::to_attribute_value(delivery).map_err(|e| StoreError::Corrupt {
                key: order_pk(id),
                message: e.to_string(),
            })?;
        let order_update = self.transition_update(
            id,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            None,
            &[("delivery", value)],
        )?;
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
        let shipment_check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(step_key(id, crate::steps::ARRANGE_SHIPMENT.name)))
            .condition_expression("#references.shipment_id = :shipment")
            .expression_attribute_names("#references", "references")
            .expression_attribute_values(":shipment", s(delivery.shipment_id.clone()))
            .build()
            .map_err(|e| build_error(OP, e))?;
        let expires_at = chrono::Utc::now().timestamp() + COURIER_EVENT_TTL_SECONDS;
        let event_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(courier_event_pk(&delivery.event_id))),
                ("sk".to_owned(), s("EVENT")),
                ("order_id".to_owned(), s(id.as_str())),
                ("received_at".to_owned(), s(now)),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error(OP, e))?;
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
            .transact_items(TransactWriteItem::builder().put(event_put).build())
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
        let (order_refused, wrong_shipment, seen_before) = (refused(0), refused(2), refused(3));
        if !(order_refused || wrong_shipment || seen_before) {
            return Err(unavailable(OP, error));
        }
        let order = self.require_order(id).await?;
        if seen_before {
            return Ok(DeliveryRecorded::Duplicate(order));
        }
        match order.status {
            OrderStatus::Delivered | OrderStatus::Completed => {
                let same_shipment = order
                    .delivery
                    .as_ref()
                    .is_some_and(|d| d.shipment_id == delivery.shipment_id);
                Ok(if same_shipment {
                    DeliveryRecorded::Before(order)
                } else {
                    DeliveryRecorded::WrongShipment
                })
            }
            OrderStatus::Shipped if wrong_shipment && !order_refused => {
                Ok(DeliveryRecorded::WrongShipment)
            }
            actual => Err(StoreError::Conflict {
                order_id: id.clone(),
                expected: OrderStatus::Shipped,
                actual,
            }),
        }
    }

    /// Moves the order to CANCELLING if it has not shipped yet. Retries a lost race with
    /// the workflow ([`retry_on_conflict`]); never moves an order that has shipped or
    /// ended.
    pub async fn cancel(&self, id: &OrderId) -> Result<Cancellation, StoreError> {
        retry_on_conflict(|| async {
            let order = self.require_order(id).await?;
            if matches!(
                order.status,
                OrderStatus::Cancelling | OrderStatus::Cancelled
            ) {
                return Ok(Cancellation::AlreadyCancelling(order));
            }
            if !order.status.is_cancellable() {
                return Ok(Cancellation::TooLate(order));
            }
            self.transition(id, order.status, OrderStatus::Cancelling, None)
                .await
                .map(Cancellation::Started)
        })
        .await
    }

    /// Counts an attempt at `step` and marks it under way, unless it already succeeded,
    /// in which case its recorded result comes back and nothing is changed.
    pub async fn begin_step(&self, id: &OrderId, step: &str) -> Result<StepStart, StoreError> {
        let now = now();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
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

    /// Marks `step` SUCCEEDED with its references and, when given, makes the order's
    /// status change, both in one transaction: either both happen or neither does.
    pub async fn succeed_step(
        &self,
        id: &OrderId,
        step: &str,
        references: BTreeMap<String, String>,
        transition: Option<Transition<'_>>,
    ) -> Result<StepRecord, StoreError> {
        const OP: &str = "TransactWriteItems(step succeeded)";
        let order_update = transition
            .map(|t| self.transition_update(id, t.from, t.to, t.failure, &[]))
            .transpose()?;
        let mut values = HashMap::from([
            (":succeeded".to_owned(), s("SUCCEEDED")),
            (":started".to_owned(), s("STARTED")),
            (":now".to_owned(), s(now())),
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
        let result = request
            .transact_items(TransactWriteItem::builder().update(step_update).build())
            .send()
            .await;
        match result {
            Ok(_) => self.require_step(id, step).await,
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

    /// Marks `step` FAILED with the error name and message. The order is not moved: the
    /// workflow decides what a failure means.
    pub async fn fail_step(
        &self,
        id: &OrderId,
        step: &str,
        error: &ActivityError,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(step_key(id, step)))
            .update_expression(
                "SET #status = :failed, #error = :error, error_message = :message, \
                 finished_at = :now, updated_at = :now",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":error", s(error.name.as_str()))
            .expression_attribute_values(":message", s(error.message.clone()))
            .expression_attribute_values(":now", s(now()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem(fail step)", e))
    }
}

/// Why each item of a cancelled transaction was refused, in the order of the items.
/// How many times a write that lost a race with another writer (a status that moved
/// since it was read) is tried in all, everywhere.
pub const CONFLICT_ATTEMPTS: usize = 5;

/// Runs `attempt` (which reads what it needs, then writes conditionally) again while it
/// fails with [`StoreError::Conflict`], [`CONFLICT_ATTEMPTS`] times in all; the last
/// conflict is returned when every attempt lost.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(StoreError::Conflict { .. }) if tries < CONFLICT_ATTEMPTS => tries += 1,
            outcome => return outcome,
        }
    }
}

fn cancellation_codes<R>(error: &SdkError<TransactWriteItemsError, R>) -> Vec<Option<String>> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_conditional_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// SHA-256 of a request's canonical JSON (keys sorted, no insignificant white space), so
/// the same order sent twice with different formatting is recognised as the same request.
pub fn request_hash(request: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    // serde_json's default map is ordered by key, so this text is canonical.
    let canonical = request.to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_request_formatted_differently_hashes_the_same() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).expect("the first text is JSON");
        let b: serde_json::Value =
            serde_json::from_str("{\n  \"a\":[1,2],\"b\":1}").expect("the second text is JSON");
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(
            request_hash(&a),
            request_hash(&json!({"b": 2, "a": [1, 2]}))
        );
    }

    #[test]
    fn store_errors_map_to_the_names_the_state_machine_matches() {
        let id = OrderId::generate();
        let cases = [
            (StoreError::NotFound(id.clone()), ErrorName::OrderNotFound),
            (
                StoreError::Conflict {
                    order_id: id.clone(),
                    expected: OrderStatus::Accepted,
                    actual: OrderStatus::Cancelling,
                },
                ErrorName::OrderCancelled,
            ),
            (
                StoreError::Conflict {
                    order_id: id.clone(),
                    expected: OrderStatus::Accepted,
                    actual: OrderStatus::Failed,
                },
                ErrorName::OrderConflict,
            ),
            (
                StoreError::Unavailable {
                    operation: "GetItem",
                    message: "throttled".into(),
                },
                ErrorName::StoreUnavailable,
            ),
        ];
        for (error, name) in cases {
            assert_eq!(ActivityError::from(error).name, name);
        }
    }
}
