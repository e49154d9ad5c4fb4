//! Order lifecycle events: what integrators (the sales portal, the merchant app's backend)
//! learn without polling. Each change they care about is put on the order-events bus
//! (EventBridge, `OrderEventsBus` in template.yaml) as one documented event: source
//! [`SOURCE`], a [`Lifecycle`] `detail-type`, and a [`Detail`] whose schema is
//! `infra/events/order-lifecycle.v1.schema.json`.
//!
//! An event is published by the code that made the change, right after its conditional
//! write, and again by every retry that finds the change already made (a replayed step, a
//! repeated courier event, the same `Idempotency-Key` again): a publish that failed is
//! retried with the work, never lost. The detail is built from the ledger alone (the order,
//! its steps), so every publish of one change is the same event with the same
//! `event_id`; EventBridge itself delivers at least once, so consumers drop an `event_id`
//! they have handled.

use crate::errors::{ActivityError, ErrorName};
use crate::order::OrderKind;
use crate::status::OrderStatus;
use crate::steps;
use crate::store::{OrderRecord, StepRecord};
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

    /// Whether the workflow step `step` publishes an event ([`OrderEvent::after_step`]),
    /// and so may fail with `Events.Unavailable`.
    pub fn published_by(step: &str) -> bool {
        [
            steps::ARRANGE_SHIPMENT.name,
            steps::COMPLETE_ORDER.name,
            steps::RECORD_FAILURE.name,
        ]
        .contains(&step)
    }

    /// The change the workflow step `step` made, once it succeeded: SHIPPED
    /// (ArrangeShipment, with the tracking number), COMPLETED (CompleteOrder), FAILED,
    /// REJECTED or CANCELLED (RecordFailure, with the reason). `None` for any other step,
    /// or before the step succeeded.
    pub fn after_step(step: &str, order: &OrderRecord, records: &[StepRecord]) -> Option<Self> {
        let record = records.iter().find(|record| record.step == step)?;
        let at = record.finished_at.as_deref()?;
        if step == steps::ARRANGE_SHIPMENT.name {
            let mut event = OrderEvent::new(Lifecycle::Shipped, order, OrderStatus::Shipped, at);
            event.detail.tracking_number = record.references.get("tracking_number").cloned();
            return Some(event);
        }
        if step == steps::COMPLETE_ORDER.name {
            return Some(OrderEvent::new(
                Lifecycle::Completed,
                order,
                OrderStatus::Completed,
                at,
            ));
        }
        if step != steps::RECORD_FAILURE.name {
            return None;
        }
        if let Some(event) = Self::cancelled_before_start(order) {
            return Some(event);
        }
        let lifecycle = match order.status {
            OrderStatus::Failed | OrderStatus::Rejected => Lifecycle::Failed,
            OrderStatus::Cancelled => Lifecycle::Cancelled,
            _ => return None,
        };
        let mut event = OrderEvent::new(lifecycle, order, order.status, at);
        let view = OrderView::of(order, records, Audience::Caller);
        event.detail.reason = view.failure.map(|failure| Reason {
            step: failure.step,
            error: failure.error,
            message: failure.reason,
        });
        Some(event)
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

impl From<PublishError> for ActivityError {
    fn from(error: PublishError) -> Self {
        ActivityError::new(ErrorName::EventsUnavailable, error.to_string())
    }
}

/// Where events go: the bus ([`EventBus`]), or a recorder in tests.
pub trait Publisher: Send + Sync {
    fn publish(&self, event: &OrderEvent) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// Publishes the event of a workflow step that succeeded, on its first run and on every
/// replay (the event of a run whose publish failed is sent by the retry), then hands the
/// outcome on. A step that publishes nothing, or failed, passes through untouched. A
/// failed publish is `Events.Unavailable`, which the step's Task retries.
pub async fn announce<L: crate::store::Ledger, P: Publisher>(
    ledger: &L,
    publisher: &P,
    outcome: crate::activity::Outcome,
) -> crate::activity::Outcome {
    let output = outcome?;
    if !OrderEvent::published_by(&output.step) {
        return Ok(output);
    }
    let Some((order, records)) = ledger.get_order_with_steps(&output.order_id).await? else {
        return Ok(output);
    };
    if let Some(event) = OrderEvent::after_step(&output.step, &order, &records) {
        publisher.publish(&event).await?;
    }
    Ok(output)
}

/// A Lambda `main` for a workflow step whose change is an order event: the store and the
/// bus from the environment (once per process, for its whole life), then every
/// invocation through `handler` and [`announce`]. A step's `main` is one line:
/// `events::serve_announced(complete_order::handle)`.
#[cfg(feature = "events")]
pub async fn serve_announced<I, H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    I: serde::de::DeserializeOwned,
    H: Fn(&'static crate::store::OrderStore, I) -> Fut,
    Fut: Future<Output = crate::activity::Outcome>,
{
    let store: &'static _ = Box::leak(Box::new(crate::activity::start().await?));
    let bus: &'static _ = Box::leak(Box::new(EventBus::from_env().await?));
    let handler = &handler;
    crate::activity::serve(move |input| async move {
        announce(store, bus, handler(store, input).await).await
    })
    .await
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

#[cfg(feature = "events")]
impl Publisher for EventBus {
    async fn publish(&self, event: &OrderEvent) -> Result<(), PublishError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let failed = |reason: String| PublishError {
            detail_type: event.lifecycle.detail_type(),
            event_id: event.detail.event_id.clone(),
            reason,
        };
        let time = chrono::DateTime::parse_from_rfc3339(&event.detail.occurred_at)
            .ok()
            .map(|at| aws_smithy_types::DateTime::from_millis(at.timestamp_millis()));
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.lifecycle.detail_type())
            .detail(event.detail_json())
            .set_time(time)
            .build();
        let answer = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| failed(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string()))?;
        if answer.failed_entry_count() > 0 {
            let entry = answer.entries().first();
            let code = entry.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = entry.and_then(|e| e.error_message()).unwrap_or_default();
            return Err(failed(format!("{code}: {message}")));
        }
        tracing::info!(
            detail_type = event.lifecycle.detail_type(),
            event_id = %event.detail.event_id,
            order_id = %event.detail.order_id,
            "order event published"
        );
        Ok(())
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
