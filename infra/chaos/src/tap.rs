//! The stack's tap queue: every event on the order-events bus reaches it through the
//! stack's rule (`OrderEventsTap`), as an integrator subscribes. The audit reads it to
//! prove every outbox item reached the bus, once.

use crate::env::Clients;
use crate::ChaosError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the audit waits for the events still in flight after the run settled: a
/// minute, and 50 ms more per event expected (reading a thousand orders' four thousand
/// events back takes minutes on these two cores).
fn arrival(expected: usize) -> Duration {
    let per_event = Duration::from_millis(50);
    Duration::from_secs(60) + per_event.saturating_mul(u32::try_from(expected).unwrap_or(u32::MAX))
}
/// How long it goes on reading after every expected event came, for extras.
const LINGER: Duration = Duration::from_secs(5);

/// Reads (and empties) the tap queue until every event id of `outbox` (by order) arrived
/// and `LINGER` more passed, or [`arrival`] ran out; returns, by order, how many times each
/// event id arrived. The queue is the run's own stack's.
pub async fn drain(
    clients: &Clients,
    queue: &str,
    outbox: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, BTreeMap<String, usize>>, ChaosError> {
    let expected: usize = outbox.values().map(Vec::len).sum();
    let deadline = arrival(expected);
    let started = Instant::now();
    let mut wait_seconds = 0;
    let mut arrived: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut complete_at: Option<Instant> = None;
    loop {
        let seen = outbox
            .iter()
            .map(|(order, ids)| {
                let got = arrived.get(order);
                ids.iter()
                    .filter(|id| got.is_some_and(|g| g.contains_key(*id)))
                    .count()
            })
            .sum::<usize>();
        if seen == expected && complete_at.is_none() {
            complete_at = Some(Instant::now());
        }
        if complete_at.is_some_and(|at| at.elapsed() >= LINGER) || started.elapsed() >= deadline {
            eprintln!(
                "chaos: audit: {seen} of {expected} outbox events on the bus after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(arrived);
        }
        let answer = clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        // Long-poll only once the queue ran dry; while it holds messages, read on at once.
        wait_seconds = if answer.messages().is_empty() { 1 } else { 0 };
        let mut done = Vec::new();
        for message in answer.messages() {
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            let order = body["detail"]["order_id"].as_str().unwrap_or_default();
            let event_id = body["detail"]["event_id"].as_str().unwrap_or_default();
            if !order.is_empty() && !event_id.is_empty() {
                *arrived
                    .entry(order.to_owned())
                    .or_default()
                    .entry(event_id.to_owned())
                    .or_default() += 1;
            }
            if let Some(handle) = message.receipt_handle() {
                let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{}", done.len()))
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| ChaosError::Sqs {
                        operation: "DeleteMessageBatch",
                        message: e.to_string(),
                    })?;
                done.push(entry);
            }
        }
        // Taken out ten at a time: one call for what one receive brought.
        if !done.is_empty() {
            clients
                .sqs
                .delete_message_batch()
                .queue_url(queue)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| sqs_error("DeleteMessageBatch", e))?;
        }
    }
}

fn sqs_error<E, R>(operation: &'static str, error: aws_sdk_sqs::error::SdkError<E, R>) -> ChaosError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ChaosError::Sqs {
        operation,
        message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}
