//! RecordFailure: the end of every failure path. Marks the order REJECTED (it was invalid,
//! nothing took effect) or FAILED, with the step that failed, the error name and the
//! reason, so an operator reading the order sees why without opening the execution.

use order_core::activity::{self, ActivityOutput};
use order_core::store::{Failure, OrderStore, StepStart, StoreError, Transition};
use order_core::{ActivityError, ErrorName, OrderStatus};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const STEP: &str = "RecordFailure";

/// How many times a lost race with another writer is retried before giving up.
const CONFLICT_RETRIES: usize = 3;

/// What the state machine's Catch hands over.
#[derive(Debug, Clone, Deserialize)]
pub struct FailureInput {
    pub order_id: String,
    /// The state that failed for good.
    pub failed_step: String,
    /// `Error` from the Catch: a stable name such as `Order.Invalid` or `States.Timeout`.
    pub error: String,
    /// `Cause` from the Catch: for a Lambda error, its JSON `{errorType, errorMessage}`.
    #[serde(default)]
    pub cause: Option<String>,
}

/// The reason for a person: a Lambda error's message, or the raw cause.
pub fn reason(input: &FailureInput) -> String {
    let cause = input.cause.as_deref().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned));
    let reason = match message {
        Some(message) => message,
        None if cause.trim().is_empty() => {
            format!("{} failed with {}", input.failed_step, input.error)
        }
        None => cause.to_owned(),
    };
    reason.chars().take(2000).collect()
}

/// Where a failure takes an order that is in `status`.
pub fn outcome(status: OrderStatus, error: &str) -> OrderStatus {
    if status == OrderStatus::Accepted && error == ErrorName::OrderInvalid.as_str() {
        OrderStatus::Rejected
    } else {
        OrderStatus::Failed
    }
}

/// Records an order's failure. Idempotent: run again, it returns the recorded result; an
/// order already REJECTED or FAILED keeps its first recorded reason.
#[tracing::instrument(name = "fail_order", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(
    store: &OrderStore,
    input: FailureInput,
) -> Result<ActivityOutput, ActivityError> {
    let id = activity::order_id(&input.order_id)?;
    let failure = Failure {
        step: input.failed_step.clone(),
        error: input.error.clone(),
        reason: reason(&input),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let references = BTreeMap::from([
        ("failed_step".to_owned(), failure.step.clone()),
        ("error".to_owned(), failure.error.clone()),
    ]);
    if let StepStart::AlreadySucceeded(record) = store.begin_step(&id, STEP).await? {
        let order = store.require_order(&id).await?;
        return Ok(ActivityOutput::from_step(record, order.status, true));
    }
    tracing::warn!(failed_step = %failure.step, error = %failure.error, reason = %failure.reason, "recording the order's failure");

    let mut outcome_of_last_try = Err(StoreError::NotFound(id.clone()));
    for _ in 0..CONFLICT_RETRIES {
        let order = store.require_order(&id).await?;
        let transition = match order.status {
            OrderStatus::Rejected | OrderStatus::Failed => None,
            status => Some(Transition {
                from: status,
                to: outcome(status, &failure.error),
                failure: Some(&failure),
            }),
        };
        let to = transition.map_or(order.status, |t| t.to);
        outcome_of_last_try = store
            .succeed_step(&id, STEP, references.clone(), transition)
            .await
            .map(|record| ActivityOutput::from_step(record, to, false));
        if !matches!(outcome_of_last_try, Err(StoreError::Conflict { .. })) {
            break;
        }
    }
    match outcome_of_last_try {
        Ok(output) => {
            tracing::info!(status = %output.status, "order failure recorded");
            Ok(output)
        }
        Err(error) => {
            let error = ActivityError::from(error);
            if let Err(record_error) = store.fail_step(&id, STEP, &error).await {
                tracing::error!(error = %record_error, "could not record the step's failure");
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(error: &str, cause: Option<&str>) -> FailureInput {
        FailureInput {
            order_id: "ord-0".into(),
            failed_step: "ValidateOrder".into(),
            error: error.into(),
            cause: cause.map(str::to_owned),
        }
    }

    #[test]
    fn a_lambda_error_cause_gives_its_message_as_the_reason() {
        let cause = r#"{"errorType":"Order.Invalid","errorMessage":"lines[0].sku: unknown SKU"}"#;
        assert_eq!(
            reason(&input("Order.Invalid", Some(cause))),
            "lines[0].sku: unknown SKU"
        );
    }

    #[test]
    fn a_plain_cause_is_kept_and_a_missing_one_is_described() {
        assert_eq!(
            reason(&input("States.Timeout", Some("Task timed out"))),
            "Task timed out"
        );
        assert_eq!(
            reason(&input("States.Timeout", None)),
            "ValidateOrder failed with States.Timeout"
        );
    }

    #[test]
    fn an_invalid_order_is_rejected_and_anything_else_fails() {
        assert_eq!(
            outcome(OrderStatus::Accepted, "Order.Invalid"),
            OrderStatus::Rejected
        );
        assert_eq!(
            outcome(OrderStatus::Accepted, "States.Timeout"),
            OrderStatus::Failed
        );
        assert_eq!(
            outcome(OrderStatus::Validated, "Order.Invalid"),
            OrderStatus::Failed
        );
    }
}
