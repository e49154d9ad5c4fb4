//! What every workflow activity does around its own decision: read its input, find the
//! order, count the attempt in the step ledger, return the recorded result when the step
//! already succeeded (Step Functions and Lambda deliver at least once), and record the
//! outcome together with the order's status change.

use crate::errors::{ActivityError, ErrorName};
use crate::order::OrderId;
use crate::status::OrderStatus;
use crate::store::{OrderRecord, OrderStore, StepRecord, StepStart, StoreError, Transition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// The input every activity receives from the state machine.
#[derive(Debug, Clone, Deserialize)]
pub struct ActivityInput {
    pub order_id: String,
}

/// What an activity returns to the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityOutput {
    pub order_id: OrderId,
    pub step: String,
    /// The order's status after the step.
    pub status: OrderStatus,
    /// How many times the step has been attempted, this run included.
    pub attempts: u32,
    /// True when the step had already succeeded and nothing was done again.
    pub replayed: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
}

impl ActivityOutput {
    /// The output for a step record and the order's status after it.
    pub fn from_step(record: StepRecord, status: OrderStatus, replayed: bool) -> Self {
        ActivityOutput {
            order_id: record.order_id,
            step: record.step,
            status,
            attempts: record.attempts,
            replayed,
            references: record.references,
        }
    }
}

/// Reads an activity's input from the raw event, with a clear error (never retried)
/// when the state machine sent something else.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    event: serde_json::Value,
) -> Result<T, ActivityError> {
    serde_json::from_value(event).map_err(|e| {
        ActivityError::new(
            ErrorName::Internal,
            format!("activity input is not what the state machine should send: {e}"),
        )
    })
}

/// The order id in an activity's input.
pub fn order_id(raw: &str) -> Result<OrderId, ActivityError> {
    OrderId::parse(raw).ok_or_else(|| {
        ActivityError::new(
            ErrorName::Internal,
            format!("activity input has no valid order id: {raw:?}"),
        )
    })
}

/// Runs `step` for an order that must be in status `from`, moving it to `to` when `work`
/// succeeds. `work` returns the partner references to record on the step.
///
/// Run again after success, it returns the recorded result without calling `work`. When
/// the order is no longer in `from` (cancelled, moved by someone else) it fails with
/// `Order.Cancelled` or `Order.Conflict` and calls nothing.
pub async fn run_step<F, Fut>(
    store: &OrderStore,
    id: &OrderId,
    step: &str,
    from: OrderStatus,
    to: OrderStatus,
    work: F,
) -> Result<ActivityOutput, ActivityError>
where
    F: FnOnce(OrderRecord) -> Fut,
    Fut: Future<Output = Result<BTreeMap<String, String>, ActivityError>>,
{
    let order = store.require_order(id).await?;
    let started = match store.begin_step(id, step).await? {
        StepStart::AlreadySucceeded(record) => {
            tracing::info!(
                step,
                attempts = record.attempts,
                "step already succeeded; returning its recorded result"
            );
            return Ok(ActivityOutput::from_step(record, order.status, true));
        }
        StepStart::Started(record) => record,
    };
    tracing::info!(step, attempts = started.attempts, status = %order.status, "step started");

    let outcome = if order.status == from {
        work(order).await
    } else {
        Err(StoreError::Conflict {
            order_id: id.clone(),
            expected: from,
            actual: order.status,
        }
        .into())
    };
    let outcome = match outcome {
        Ok(references) => store
            .succeed_step(
                id,
                step,
                references,
                Some(Transition {
                    from,
                    to,
                    failure: None,
                }),
            )
            .await
            .map_err(ActivityError::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(record) => {
            tracing::info!(step, attempts = record.attempts, status = %to, "step succeeded");
            Ok(ActivityOutput::from_step(record, to, false))
        }
        Err(error) => {
            tracing::warn!(step, error = %error.name, message = %error.message, "step failed");
            if let Err(record_error) = store.fail_step(id, step, &error).await {
                tracing::error!(step, error = %record_error, "could not record the step's failure");
            }
            Err(error)
        }
    }
}
