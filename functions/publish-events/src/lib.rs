//! `publish-events`: the outbox's deliverer. Every change integrators are told of writes
//! its lifecycle event in its own transaction, as an outbox item (`OUTBOX#<event id>`) in
//! the order's partition (`order_core::events`). The table's DynamoDB stream hands the new
//! items to this function through an event source mapping (template.yaml,
//! `PublishEventsEventSource`: only `OUTBOX#` inserts, ten at a time, retried until they
//! expire, `ReportBatchItemFailures`), and it puts them on the order-events bus.
//!
//! At least once and in order per order: a stream shard keeps the order of each
//! partition's writes, and when the bus refuses an event this function reports it as the
//! batch's first failure, so Lambda retries from it and nothing after it is taken before
//! it. An event the bus took is never reported failed, so only a retried batch's own
//! failure is sent again; consumers drop an `event_id` they have handled.

use order_core::events::{EventBus, OrderEvent, OutboxRecord, PublishError, PUT_EVENTS_LIMIT};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;

/// Where the events go: the bus, or a fake in tests.
pub trait Bus: Sync {
    /// Puts up to [`PUT_EVENTS_LIMIT`] events; one result per event, in order.
    fn put(
        &self,
        events: &[OrderEvent],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send;
}

impl Bus for EventBus {
    async fn put(&self, events: &[OrderEvent]) -> Vec<Result<(), PublishError>> {
        self.publish_batch(events).await
    }
}

/// One record of the stream event, as Lambda hands it over (only what is read).
#[derive(Debug, Deserialize)]
struct StreamRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    dynamodb: StreamData,
}

#[derive(Debug, Deserialize)]
struct StreamData {
    #[serde(rename = "SequenceNumber")]
    sequence_number: String,
    #[serde(rename = "NewImage", default)]
    new_image: Option<serde_json::Map<String, Value>>,
}

/// The answer Lambda's event source mapping reads (`ReportBatchItemFailures`).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// The stream record's `SequenceNumber`: Lambda retries from it.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The outbox item in a record's new image (DynamoDB JSON: each attribute `{"S": ..}`).
fn outbox_record(image: &serde_json::Map<String, Value>) -> Result<OutboxRecord, String> {
    let text = |name: &str| {
        image
            .get(name)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the outbox item has no string attribute {name:?}"))
    };
    Ok(OutboxRecord {
        order_id: text("order_id")?,
        event_id: text("event_id")?,
        detail_type: text("detail_type")?,
        detail: text("detail")?,
        occurred_at: text("occurred_at")?,
    })
}

/// Delivers one batch of stream records to `bus`. A record that is not an outbox item
/// (the event source mapping lets only those through; anything else is skipped) or that
/// does not read (a bug: logged at error with its sequence number; the item stays in the
/// table for 30 days, to be replayed) is not sent. The first event the bus refuses, and
/// with it everything after, is reported for Lambda to retry.
pub async fn handle(bus: &impl Bus, event: Value) -> BatchResponse {
    let records: Vec<StreamRecord> = match event.get("Records").cloned() {
        Some(records) => match serde_json::from_value(records) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "the event is not a DynamoDB stream batch; nothing sent");
                return BatchResponse::default();
            }
        },
        None => Vec::new(),
    };
    // (sequence number, event) of every outbox item, in the stream's order.
    let mut pending: Vec<(String, OrderEvent)> = Vec::new();
    for record in records {
        let sequence = record.dynamodb.sequence_number;
        let Some(image) = record
            .dynamodb
            .new_image
            .filter(|_| record.event_name != "REMOVE")
        else {
            continue;
        };
        let is_outbox = image
            .get("sk")
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
            .is_some_and(|sk| sk.starts_with(order_core::store::OUTBOX_PREFIX));
        if !is_outbox {
            continue;
        }
        match outbox_record(&image).and_then(|r| OrderEvent::from_outbox(&r)) {
            Ok(event) => pending.push((sequence, event)),
            Err(problem) => {
                tracing::error!(sequence_number = %sequence, %problem, "an outbox item that does not read was skipped");
            }
        }
    }
    for chunk in pending.chunks(PUT_EVENTS_LIMIT) {
        let events: Vec<OrderEvent> = chunk.iter().map(|(_, e)| e.clone()).collect();
        let results = bus.put(&events).await;
        let refused = (chunk
            .iter()
            .zip(results.iter().map(Some).chain(std::iter::repeat(None))))
        .find(|(_, result)| !matches!(result, Some(Ok(()))));
        if let Some(((sequence, event), result)) = refused {
            let reason = match result {
                Some(Err(error)) => error.to_string(),
                _ => "no answer for it".to_owned(),
            };
            tracing::warn!(
                order_id = %event.detail.order_id,
                event_id = %event.detail.event_id,
                sequence_number = %sequence,
                %reason,
                "the bus refused an event; Lambda retries the batch from it"
            );
            return BatchResponse {
                batch_item_failures: vec![ItemFailure {
                    item_identifier: sequence.clone(),
                }],
            };
        }
    }
    BatchResponse::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_core::events::Lifecycle;
    use serde_json::json;
    use std::sync::Mutex;

    /// A bus that refuses the events whose ids it is given, and keeps what it took.
    #[derive(Default)]
    struct FakeBus {
        refuse: Vec<String>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Bus for FakeBus {
        async fn put(&self, events: &[OrderEvent]) -> Vec<Result<(), PublishError>> {
            let ids: Vec<String> = events.iter().map(|e| e.detail.event_id.clone()).collect();
            self.calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ids);
            events
                .iter()
                .map(|e| match self.refuse.contains(&e.detail.event_id) {
                    true => Err(PublishError {
                        detail_type: e.lifecycle.detail_type(),
                        event_id: e.detail.event_id.clone(),
                        reason: "ThrottlingException: Rate exceeded".into(),
                    }),
                    false => Ok(()),
                })
                .collect()
        }
    }

    fn accepted(n: usize) -> OrderEvent {
        let body = order_core::order::example_request(&format!("m-{n}"));
        let catalogue = order_core::catalogue::Catalogue::builtin().ok();
        let order = catalogue.and_then(|c| order_core::Order::parse(&body, &c).ok());
        let Some(order) = order else {
            panic!("the example order does not parse")
        };
        OrderEvent::accepted(&order_core::store::OrderRecord::accepted(&order, "h"))
    }

    /// A stream record of `event`'s outbox item, as Lambda hands it over.
    fn record(sequence: u64, event: &OrderEvent) -> Value {
        let item = event.to_outbox();
        let s = |v: &str| json!({"S": v});
        json!({
            "eventID": format!("e{sequence}"),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "SequenceNumber": sequence.to_string(),
                "Keys": {"pk": s(&format!("ORDER#{}", item.order_id)), "sk": s(&format!("OUTBOX#{}", item.event_id))},
                "NewImage": {
                    "pk": s(&format!("ORDER#{}", item.order_id)),
                    "sk": s(&format!("OUTBOX#{}", item.event_id)),
                    "order_id": s(&item.order_id),
                    "event_id": s(&item.event_id),
                    "detail_type": s(&item.detail_type),
                    "detail": s(&item.detail),
                    "occurred_at": s(&item.occurred_at),
                    "expires_at": {"N": "1"}
                }
            }
        })
    }

    #[tokio::test]
    async fn every_outbox_item_of_a_batch_is_put_on_the_bus_in_order_and_nothing_is_reported() {
        let events: Vec<OrderEvent> = (0..12).map(accepted).collect();
        let batch = json!({"Records": events.iter().enumerate().map(|(i, e)| record(i as u64 + 100, e)).collect::<Vec<_>>()});
        let bus = FakeBus::default();
        assert_eq!(handle(&bus, batch).await, BatchResponse::default());
        let calls = bus.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 2],
            "ten per PutEvents"
        );
        let sent: Vec<String> = calls.concat();
        let want: Vec<String> = events.iter().map(|e| e.detail.event_id.clone()).collect();
        assert_eq!(sent, want);
    }

    #[tokio::test]
    async fn the_first_event_the_bus_refuses_is_reported_so_lambda_retries_from_it_and_later_ones_wait(
    ) {
        let events: Vec<OrderEvent> = (0..14).map(accepted).collect();
        let batch = json!({"Records": events.iter().enumerate().map(|(i, e)| record(i as u64 + 100, e)).collect::<Vec<_>>()});
        let bus = FakeBus {
            refuse: vec![
                events[3].detail.event_id.clone(),
                events[5].detail.event_id.clone(),
            ],
            ..FakeBus::default()
        };
        let answer = handle(&bus, batch).await;
        assert_eq!(
            answer.batch_item_failures,
            [ItemFailure {
                item_identifier: "103".into()
            }],
            "the first refused record's sequence number"
        );
        let calls = bus.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            calls.len(),
            1,
            "nothing after the refused chunk is sent: {calls:?}"
        );
    }

    #[tokio::test]
    async fn records_that_are_not_outbox_inserts_are_skipped_and_an_unreadable_item_does_not_block_the_rest(
    ) {
        let good = accepted(1);
        let mut order_item = record(1, &good);
        order_item["dynamodb"]["NewImage"]["sk"] = json!({"S": "ORDER"});
        let mut removed = record(2, &good);
        removed["eventName"] = json!("REMOVE");
        let mut unreadable = record(3, &good);
        unreadable["dynamodb"]["NewImage"]["detail_type"] = json!({"S": "Order Teleported"});
        let batch = json!({"Records": [order_item, removed, unreadable, record(4, &good)]});
        let bus = FakeBus::default();
        assert_eq!(handle(&bus, batch).await, BatchResponse::default());
        let calls = bus.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(calls, [vec![good.detail.event_id.clone()]]);
        assert_eq!(good.lifecycle, Lifecycle::Accepted);
    }

    #[test]
    fn the_answer_is_the_shape_lambda_reads_for_batch_item_failures() {
        let answer = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "42".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap_or_default(),
            json!({"batchItemFailures": [{"itemIdentifier": "42"}]})
        );
    }
}
