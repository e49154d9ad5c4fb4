//! RecordFailure: the end of every failure path, after the compensations. Marks the order
//! REJECTED (it was invalid, nothing took effect), CANCELLED (cancelled on request) or
//! FAILED, with the step that failed, the error name and the reason, so an operator
//! reading the order sees why without opening the execution.

use order_core::activity::{self, Opened, Outcome};
use order_core::events::OrderEvent;
use order_core::steps::RECORD_FAILURE;
use order_core::store::{retry_on_conflict, Failure, Ledger, Transition};
use order_core::{ActivityError, ErrorName, OrderStatus};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const STEP: &str = RECORD_FAILURE.name;

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

/// Where a failure takes an order that is in `status`: `Ok(None)` when it has ended
/// already (its first recorded reason stands), an error when the order still holds
/// effects that no compensation undid (marking it failed would hide them).
pub fn outcome(status: OrderStatus, error: &str) -> Result<Option<OrderStatus>, String> {
    use OrderStatus::*;
    match status {
        Rejected | Failed | Cancelled => Ok(None),
        Cancelling => Ok(Some(Cancelled)),
        Accepted if error == ErrorName::OrderInvalid.as_str() => Ok(Some(Rejected)),
        Accepted | Validated | Compensating => Ok(Some(Failed)),
        other => Err(format!(
            "the order is {other}: its effects were not rolled back, so it is not marked failed"
        )),
    }
}

/// The reason recorded for a cancelled order: the request, and what else went wrong.
fn cancellation_reason(failure: &Failure) -> String {
    if failure.error == ErrorName::OrderCancelled.as_str() {
        format!(
            "cancelled on request; the workflow stopped at {}",
            failure.step
        )
    } else {
        format!(
            "cancelled on request; {} had also failed: {}",
            failure.step, failure.reason
        )
    }
}

/// Records an order's failure. Idempotent: run again, it returns the recorded result; an
/// order already REJECTED or FAILED keeps its first recorded reason.
#[tracing::instrument(name = "fail_order", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(ledger: &impl Ledger, input: FailureInput) -> Outcome {
    let failure = Failure::from_catch(&input.failed_step, &input.error, input.cause.as_deref());
    let begun = match activity::open(ledger, &input.order_id, RECORD_FAILURE).await? {
        Opened::Replayed { record, order } => return Ok(activity::replayed(record, &order)),
        Opened::Begun(begun) => begun,
    };
    tracing::warn!(failed_step = %failure.step, error = %failure.error, reason = %failure.reason, "recording the order's failure");
    let references = BTreeMap::from([
        ("failed_step".to_owned(), failure.step.clone()),
        ("error".to_owned(), failure.error.clone()),
    ]);
    let id = begun.id().clone();
    let attempt = &begun.attempt;
    // The order moves under the workflow's feet (a cancel): read it again on a conflict.
    let recorded = retry_on_conflict(|| {
        let (failure, references, id) = (&failure, &references, &id);
        async move {
            let order = ledger.require_order(id).await?;
            let to = match outcome(order.status, &failure.error) {
                Ok(to) => to,
                Err(message) => {
                    let error =
                        ActivityError::new(ErrorName::Internal, format!("order {id}: {message}"));
                    return Ok(Err(error));
                }
            };
            let cancelled = Failure {
                reason: cancellation_reason(failure),
                ..failure.clone()
            };
            // The rollback recorded the first failure when it began; a resumed execution
            // that re-ran the failed step reports a later, less telling error: keep the
            // first.
            let recorded = match (&order.failure, to) {
                (_, Some(OrderStatus::Cancelled)) => &cancelled,
                (Some(first), _) if order.status == OrderStatus::Compensating => first,
                _ => failure,
            };
            // Its `Order Failed` / `Order Cancelled` goes to the outbox with the change.
            let event =
                to.and_then(|to| OrderEvent::after_change(&order, to, Some(recorded), references));
            let transition = to.map(|to| {
                Transition::new(order.status, to)
                    .because(Some(recorded))
                    .announcing(event.as_ref())
            });
            let record = ledger
                .succeed_step(attempt, references.clone(), transition)
                .await?;
            Ok(Ok((record, to.unwrap_or(order.status))))
        }
    })
    .await;
    let outcome = match recorded {
        Ok(outcome) => outcome,
        Err(error) => Err(error.into()),
    };
    let output = begun.close(outcome).await?;
    tracing::info!(status = %output.status, "order failure recorded");
    Ok(output)
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

    fn reason(input: &FailureInput) -> String {
        Failure::from_catch(&input.failed_step, &input.error, input.cause.as_deref()).reason
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
        use OrderStatus::*;
        assert_eq!(outcome(Accepted, "Order.Invalid"), Ok(Some(Rejected)));
        assert_eq!(outcome(Accepted, "States.Timeout"), Ok(Some(Failed)));
        assert_eq!(outcome(Validated, "Order.Invalid"), Ok(Some(Failed)));
        assert_eq!(outcome(Compensating, "Payment.Declined"), Ok(Some(Failed)));
    }

    #[test]
    fn a_cancelling_order_ends_cancelled_whatever_failed() {
        use OrderStatus::*;
        assert_eq!(outcome(Cancelling, "Order.Cancelled"), Ok(Some(Cancelled)));
        assert_eq!(outcome(Cancelling, "Payment.Declined"), Ok(Some(Cancelled)));
    }

    #[test]
    fn an_ended_order_keeps_its_end_and_one_with_effects_is_refused() {
        use OrderStatus::*;
        for ended in [Rejected, Failed, Cancelled] {
            assert_eq!(outcome(ended, "Order.Invalid"), Ok(None));
        }
        for holding in [StockReserved, PaymentTaken, Provisioned, Shipped, Delivered] {
            let refused = outcome(holding, "Payment.Declined");
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|m| m.contains("not rolled back")),
                "{holding}: {refused:?}"
            );
        }
    }
}
