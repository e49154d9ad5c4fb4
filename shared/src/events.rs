//! Order lifecycle events: what integrators (the sales portal, the merchant app's backend)
//! learn without polling. Each change they care about is put on the order-events bus
//! (EventBridge, `OrderEventsBus` in template.yaml) as one documented event: source
//! [`SOURCE`], a [`Lifecycle`] `detail-type`, and a [`Detail`] whose schema is
//! `infra/events/order-lifecycle.v1.schema.json`.
//!
//! An event is never published by the code that made the change. It is written in the
//! change's own transaction, as an outbox item in the order's partition (`sk`
//! `EVENT#<event_id>`, [`OutboxRecord`]): a step whose change is recorded has its event
//! recorded too, and a step can never fail because the bus is down. The table's DynamoDB
//! stream delivers each new outbox item to the `publish-events` function, which puts it on
//! the bus ([`EventBus::publish_batch`]): at least once, in order per order (a stream
//! shard keeps each partition's order). The detail is built from what the writer already
//! holds (the order as it read it, the change), so no read is needed; a change is
//! written once, so its `event_id` is written once; EventBridge itself delivers at least
//! once, so consumers drop an `event_id` they have handled.

use crate::errors::ErrorName;
use crate::order::OrderKind;
use crate::status::OrderStatus;
use crate::store::{Failure, OrderRecord};
use crate::view::{Audience, OrderView};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// The events' `source`.
pub const SOURCE: &str = "terminal-orders";
/// The version of [`Detail`] this code writes.
pub const SCHEMA_VERSION: &str = "1";
/// The bus the functions publish to (`OrderEventsBus`'s name).
pub const BUS_VARIABLE: &str = "ORDER_EVENTS_BUS_NAME";

/// What happened to the order: the event's `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::EnumString)]
pub enum Lifecycle {
    #[serde(rename = "Order Accepted")]
    #[strum(serialize = "Order Accepted")]
    Accepted,
    #[serde(rename = "Order Shipped")]
    #[strum(serialize = "Order Shipped")]
    Shipped,
    #[serde(rename = "Order Delivered")]
    #[strum(serialize = "Order Delivered")]
    Delivered,
    #[serde(rename = "Order Completed")]
    #[strum(serialize = "Order Completed")]
    Completed,
    /// FAILED, or REJECTED: the order was invalid and nothing took effect.
    #[serde(rename = "Order Failed")]
    #[strum(serialize = "Order Failed")]
    Failed,
    #[serde(rename = "Order Cancelled")]
    #[strum(serialize = "Order Cancelled")]
    Cancelled,
    /// The reconciler gave up on the order; a person must look at it.
    #[serde(rename = "Order Needs Operator")]
    #[strum(serialize = "Order Needs Operator")]
    NeedsOperator,
}

impl Lifecycle {
    /// The `detail-type`, e.g. `Order Shipped`.
    pub fn detail_type(self) -> &'static str {
        self.into()
    }
}

/// Why an order failed, was cancelled or waits for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub step: String,
    pub error: String,
    /// A sentence for the merchant (the API's `failure.reason`).
    pub message: String,
}

/// The event's `detail`, version 1 (`infra/events/order-lifecycle.v1.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    pub schema_version: String,
    /// The same for every publish of this change.
    pub event_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub order_kind: OrderKind,
    /// The order's status after the change.
    pub status: OrderStatus,
    /// When the change happened, as the ledger recorded it.
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// One event, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub lifecycle: Lifecycle,
    pub detail: Detail,
}

impl OrderEvent {
    fn new(lifecycle: Lifecycle, order: &OrderRecord, status: OrderStatus, at: &str) -> Self {
        OrderEvent {
            lifecycle,
            detail: Detail {
                schema_version: SCHEMA_VERSION.to_owned(),
                event_id: format!("{}/{status}", order.order_id),
                order_id: order.order_id.to_string(),
                merchant_id: order.order.merchant_id.clone(),
                order_kind: order.order.kind,
                status,
                occurred_at: at.to_owned(),
                tracking_number: None,
                reason: None,
            },
        }
    }

    /// The order was placed (`POST /orders`).
    pub fn accepted(order: &OrderRecord) -> OrderEvent {
        OrderEvent::new(
            Lifecycle::Accepted,
            order,
            OrderStatus::Accepted,
            &order.created_at,
        )
    }

    /// The courier's delivery was recorded; `None` before it was.
    pub fn delivered(order: &OrderRecord) -> Option<OrderEvent> {
        let delivery = order.delivery.as_ref()?;
        Some(OrderEvent::new(
            Lifecycle::Delivered,
            order,
            OrderStatus::Delivered,
            &delivery.delivered_at,
        ))
    }

    /// The reconciler is parking the order for an operator, for `reason`: built from the
    /// order as read before the park, so a run that parks it again after a failed publish
    /// sends the same event. `occurred_at` is the order's last change, since when it has
    /// been stuck; `event_id` counts the resumes, so an order parked again after an
    /// operator's resume gets a new event.
    pub fn needs_operator(order: &OrderRecord, reason: &str) -> OrderEvent {
        let mut event = OrderEvent::new(
            Lifecycle::NeedsOperator,
            order,
            order.status,
            &order.updated_at,
        );
        event.detail.event_id = format!("{}/NEEDS_OPERATOR/{}", order.order_id, order.resumes);
        event.detail.reason = Some(Reason {
            step: order
                .failure
                .as_ref()
                .map_or_else(|| "Reconciler".to_owned(), |f| f.step.clone()),
            error: "Reconciler.Parked".to_owned(),
            message: reason.to_owned(),
        });
        event
    }

    /// A cancel that ended the order at once, its workflow not started: `Order Cancelled`,
    /// at the order's last change (CANCELLED is final, so every publish is the same). Such
    /// an order is CANCELLED with no failure recorded: RecordFailure, which ends every
    /// other cancelled order, records why. An execution that started after all (on AWS,
    /// StartExecution can succeed while the write of its ARN fails) meets the cancel, and
    /// its RecordFailure publishes this same event ([`OrderEvent::after_step`]). `None` for
    /// any other order.
    pub fn cancelled_before_start(order: &OrderRecord) -> Option<OrderEvent> {
        if order.status != OrderStatus::Cancelled || order.failure.is_some() {
            return None;
        }
        let mut event = OrderEvent::new(
            Lifecycle::Cancelled,
            order,
            OrderStatus::Cancelled,
            &order.updated_at,
        );
        let error = ErrorName::OrderCancelled;
        event.detail.reason = Some(Reason {
            step: "Cancel".to_owned(),
            error: error.as_str().to_owned(),
            message: crate::errors::public_reason(error.as_str()).to_owned(),
        });
        Some(event)
    }

    /// The event of a status change, when integrators are told of it: the order as the
    /// writer read it, the status it moves `to`, the failure the change records (or the
    /// one the order holds) and the step's partner references (the tracking number of a
    /// shipment). SHIPPED, COMPLETED, FAILED or REJECTED (`Order Failed`, with the reason
    /// the API shows) and CANCELLED; `None` for any other status (ACCEPTED and DELIVERED
    /// have their own writers: [`OrderEvent::accepted`], [`OrderEvent::delivered`]). Its
    /// `occurred_at` is the ledger's: the transition that writes it stamps it with the
    /// time it records the change ([`OrderEvent::stamped`]).
    pub fn after_change(
        order: &OrderRecord,
        to: OrderStatus,
        failure: Option<&Failure>,
        references: &crate::store::References,
    ) -> Option<OrderEvent> {
        let at = order.updated_at.as_str();
        let lifecycle = match to {
            OrderStatus::Shipped => Lifecycle::Shipped,
            OrderStatus::Completed => Lifecycle::Completed,
            OrderStatus::Failed | OrderStatus::Rejected => Lifecycle::Failed,
            OrderStatus::Cancelled => Lifecycle::Cancelled,
            _ => return None,
        };
        let mut changed = order.clone();
        changed.status = to;
        changed.updated_at = at.to_owned();
        if let Some(failure) = failure {
            changed.failure = Some(failure.clone());
        }
        if to == OrderStatus::Cancelled && changed.failure.is_none() {
            return Self::cancelled_before_start(&changed);
        }
        let mut event = OrderEvent::new(lifecycle, &changed, to, at);
        event.detail.tracking_number = references.get("tracking_number").cloned();
        if matches!(lifecycle, Lifecycle::Failed | Lifecycle::Cancelled) {
            let view = OrderView::of(&changed, &[], Audience::Caller);
            event.detail.reason = view.failure.map(|failure| Reason {
                step: failure.step,
                error: failure.error,
                message: failure.reason,
            });
        }
        Some(event)
    }

    /// The same event, happened `at` (as the ledger recorded its change).
    pub fn stamped(mut self, at: &str) -> OrderEvent {
        self.detail.occurred_at = at.to_owned();
        self
    }

    /// The outbox item that carries the event ([`OutboxRecord`]).
    pub fn to_outbox(&self) -> OutboxRecord {
        OutboxRecord {
            order_id: self.detail.order_id.clone(),
            event_id: self.detail.event_id.clone(),
            detail_type: self.lifecycle.detail_type().to_owned(),
            detail: self.detail_json(),
            occurred_at: self.detail.occurred_at.clone(),
        }
    }

    /// The event an outbox item carries; an error names what does not read.
    pub fn from_outbox(record: &OutboxRecord) -> Result<OrderEvent, String> {
        let lifecycle: Lifecycle = record.detail_type.parse().map_err(|_| {
            format!(
                "outbox item {}: unknown detail-type {:?}",
                record.event_id, record.detail_type
            )
        })?;
        let detail: Detail = serde_json::from_str(&record.detail)
            .map_err(|e| format!("outbox item {}: detail: {e}", record.event_id))?;
        Ok(OrderEvent { lifecycle, detail })
    }

    /// The detail as the JSON EventBridge carries.
    pub fn detail_json(&self) -> String {
        // A struct of strings and enums: serialising it cannot fail.
        serde_json::to_string(&self.detail).unwrap_or_default()
    }
}

/// An event could not be published; the caller's retry publishes it again.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish {detail_type} {event_id} to the order-events bus: {reason}")]
pub struct PublishError {
    pub detail_type: &'static str,
    pub event_id: String,
    pub reason: String,
}

/// An event waiting in the outbox: the item a change writes in its own transaction, in
/// the order's partition (`sk` `EVENT#<event_id>`), which the table's stream hands to
/// `publish-events`. Written once per change (a replayed step writes nothing), it keeps
/// what the bus needs as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub order_id: String,
    pub event_id: String,
    /// The event's `detail-type`.
    pub detail_type: String,
    /// The event's `detail`, JSON ([`Detail`]).
    pub detail: String,
    pub occurred_at: String,
}

/// Where events go: the bus ([`EventBus`]), or a recorder in tests.
pub trait Publisher: Send + Sync {
    fn publish(&self, event: &OrderEvent) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// Publishes nothing and remembers what it was given: for tests and the simulator.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: std::sync::Mutex<Vec<OrderEvent>>,
}

impl Recorder {
    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<OrderEvent> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Publisher for Recorder {
    async fn publish(&self, event: &OrderEvent) -> Result<(), PublishError> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event.clone());
        Ok(())
    }
}

/// The order-events bus on EventBridge.
#[cfg(feature = "events")]
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

#[cfg(feature = "events")]
impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> EventBus {
        EventBus {
            client,
            bus: bus.into(),
        }
    }

    /// From the standard AWS configuration and [`BUS_VARIABLE`].
    pub async fn from_env() -> Result<EventBus, crate::config::ConfigError> {
        let bus = crate::config::required(BUS_VARIABLE)?;
        let aws = crate::config::aws().await;
        Ok(EventBus::new(aws_sdk_eventbridge::Client::new(&aws), bus))
    }
}

/// The most entries one `PutEvents` takes.
pub const PUT_EVENTS_LIMIT: usize = 10;

#[cfg(feature = "events")]
impl EventBus {
    fn entry(&self, event: &OrderEvent) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
        let time = chrono::DateTime::parse_from_rfc3339(&event.detail.occurred_at)
            .ok()
            .map(|at| aws_smithy_types::DateTime::from_millis(at.timestamp_millis()));
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.lifecycle.detail_type())
            .detail(event.detail_json())
            .set_time(time)
            .build()
    }

    /// Puts up to [`PUT_EVENTS_LIMIT`] events on the bus in one `PutEvents`; one result per
    /// event, in order (EventBridge takes or refuses each entry on its own). A call that
    /// failed as a whole fails every event.
    pub async fn publish_batch(&self, events: &[OrderEvent]) -> Vec<Result<(), PublishError>> {
        let failed = |event: &OrderEvent, reason: String| PublishError {
            detail_type: event.lifecycle.detail_type(),
            event_id: event.detail.event_id.clone(),
            reason,
        };
        if events.is_empty() {
            return Vec::new();
        }
        let entries = events.iter().map(|e| self.entry(e)).collect();
        let answer = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                let reason = aws_sdk_eventbridge::error::DisplayErrorContext(error).to_string();
                return events
                    .iter()
                    .map(|e| Err(failed(e, reason.clone())))
                    .collect();
            }
        };
        let results = answer.entries();
        events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let entry = results.get(i);
                match entry.and_then(|e| e.error_code()) {
                    None if entry.is_some_and(|e| e.event_id().is_some()) => {
                        tracing::info!(
                            detail_type = event.lifecycle.detail_type(),
                            event_id = %event.detail.event_id,
                            order_id = %event.detail.order_id,
                            "order event published"
                        );
                        Ok(())
                    }
                    None => Err(failed(event, "EventBridge answered no entry for it".into())),
                    Some(code) => {
                        let message = entry.and_then(|e| e.error_message()).unwrap_or_default();
                        Err(failed(event, format!("{code}: {message}")))
                    }
                }
            })
            .collect()
    }
}

#[cfg(feature = "events")]
impl Publisher for EventBus {
    async fn publish(&self, event: &OrderEvent) -> Result<(), PublishError> {
        let mut results = self.publish_batch(std::slice::from_ref(event)).await;
        results.pop().unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn schema() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/events/order-lifecycle.v1.schema.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn detail(full: bool) -> Detail {
        Detail {
            schema_version: SCHEMA_VERSION.to_owned(),
            event_id: "ord-00000000000000000000000000000001/SHIPPED".to_owned(),
            order_id: "ord-00000000000000000000000000000001".to_owned(),
            merchant_id: "m-1".to_owned(),
            order_kind: OrderKind::NewMerchant,
            status: OrderStatus::Shipped,
            occurred_at: "2026-11-29T00:00:00.000Z".to_owned(),
            tracking_number: full.then(|| "TRK-1".to_owned()),
            reason: full.then(|| Reason {
                step: "TakePayment".to_owned(),
                error: "Payment.Declined".to_owned(),
                message: "declined".to_owned(),
            }),
        }
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn strings(value: &Value) -> BTreeSet<String> {
        (value.as_array().into_iter().flatten())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_committed_schema_has_exactly_the_fields_of_the_detail_this_code_writes() {
        let schema = schema();
        let full = serde_json::to_value(detail(true)).unwrap_or_default();
        let bare = serde_json::to_value(detail(false)).unwrap_or_default();
        assert_eq!(
            keys(&schema["properties"]),
            keys(&full),
            "every field, both ways"
        );
        assert_eq!(
            strings(&schema["required"]),
            keys(&bare),
            "the fields always sent"
        );
        assert_eq!(
            keys(&schema["properties"]["reason"]["properties"]),
            keys(&full["reason"])
        );
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            SCHEMA_VERSION
        );
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn the_committed_schema_lists_every_status_kind_and_detail_type() {
        let schema = schema();
        let statuses: BTreeSet<String> = (OrderStatus::ALL.iter())
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(strings(&schema["properties"]["status"]["enum"]), statuses);
        let kinds: BTreeSet<String> = (OrderKind::ALL.iter())
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(strings(&schema["properties"]["order_kind"]["enum"]), kinds);
        let described = schema["description"].as_str().unwrap_or_default();
        for lifecycle in <Lifecycle as strum::VariantArray>::VARIANTS {
            assert!(
                described.contains(lifecycle.detail_type()),
                "the schema's description names {}",
                lifecycle.detail_type()
            );
        }
    }

    #[test]
    fn a_detail_type_reads_back_as_its_lifecycle_and_an_unknown_field_is_refused() {
        for lifecycle in <Lifecycle as strum::VariantArray>::VARIANTS {
            let text = serde_json::to_string(lifecycle).unwrap_or_default();
            assert_eq!(text, format!("\"{}\"", lifecycle.detail_type()));
            let back: Lifecycle = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, *lifecycle);
        }
        let mut extra = serde_json::to_value(detail(false)).unwrap_or_default();
        extra["surprise"] = Value::from(1);
        assert!(serde_json::from_value::<Detail>(extra).is_err());
    }
}
