//! What every workflow activity does around its own decision: read its input, find the
//! order, count the attempt in the step ledger, return the recorded result when the step
//! already succeeded (Step Functions and Lambda deliver at least once), and record the
//! outcome together with the order's status change.
//!
//! Every activity meets the ledger one way: [`open`] counts the attempt (or finds the
//! step already succeeded), and the [`Begun`] step is closed with its success (together
//! with the order's status change) or its failure, which is recorded on the step.
//! Forward steps go through [`run_step`], compensations through [`run_compensation`],
//! RecordFailure and AwaitDelivery use [`open`] directly. Any [`Ledger`] will do: the
//! DynamoDB table in the functions, the in-memory twin in the saga tests. A Lambda's
//! `main` wires its handler with [`start`] and [`serve`].

use crate::errors::{ActivityError, ErrorName};
use crate::order::{OrderId, OrderKind};
use crate::partners::{CallContext, PartnerError};
use crate::status::OrderStatus;
use crate::steps::Step;
use crate::store::{
    retry_on_conflict, Ledger, OrderRecord, OrderStore, StepRecord, StepStart, StoreError,
    Transition,
};
use futures_util::FutureExt;
use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use tracing::Instrument;

/// The input every activity receives from the state machine.
#[derive(Debug, Clone, Deserialize)]
pub struct ActivityInput {
    pub order_id: String,
}

/// The input of a compensation: the order, and the failure that started the rollback
/// (absent when the rollback is a cancellation's, or for callers other than the
/// state machine).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rollback {
    pub order_id: String,
    #[serde(default)]
    pub failed_step: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

impl Rollback {
    /// The failure to record on the order when the rollback begins.
    fn failure(&self) -> Option<crate::store::Failure> {
        let step = self.failed_step.as_deref()?;
        let error = self.error.as_deref()?;
        Some(crate::store::Failure::from_catch(
            step,
            error,
            self.cause.as_deref(),
        ))
    }
}

/// What an activity returns to the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityOutput {
    pub order_id: OrderId,
    pub step: String,
    /// The order's status after the step.
    pub status: OrderStatus,
    /// The order's kind: the state machine chooses the replacement branch by it.
    pub kind: OrderKind,
    /// How many times the step has been attempted, this run included.
    pub attempts: u32,
    /// True when the step had already succeeded and nothing was done again.
    pub replayed: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
}

impl ActivityOutput {
    /// The output for a step record and the order after it.
    pub fn from_step(
        record: StepRecord,
        status: OrderStatus,
        kind: OrderKind,
        replayed: bool,
    ) -> Self {
        ActivityOutput {
            order_id: record.order_id,
            step: record.step,
            status,
            kind,
            attempts: record.attempts,
            replayed,
            references: record.references,
        }
    }
}

/// Partner references and results a step records on its step item.
pub use crate::store::References;

/// A step's partner references from `(name, value)` pairs, leaving out a pair whose value
/// is `None` (an undo that found nothing to undo has no partner id to record).
pub fn references<const N: usize>(pairs: [(&str, Option<String>); N]) -> References {
    pairs
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect()
}

/// Reads an activity's input from the raw event, with a clear error (never retried)
/// when the state machine sent something else.
pub fn parse_input<T: DeserializeOwned>(event: serde_json::Value) -> Result<T, ActivityError> {
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

/// Where a forward step expects the order, and where it leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: OrderStatus,
    /// `None`: the step records its effect but does not change the order's status.
    pub to: Option<OrderStatus>,
}

impl Move {
    /// From `from` to `to`.
    pub const fn to(from: OrderStatus, to: OrderStatus) -> Move {
        Move { from, to: Some(to) }
    }

    /// Runs while the order is `at` and leaves it there.
    pub const fn stay(at: OrderStatus) -> Move {
        Move { from: at, to: None }
    }
}

/// A step begun on the ledger for this attempt: the one way every activity meets the
/// ledger ([`open`], then [`Begun::succeed`], [`Begun::close`] or [`Begun::pending`]).
pub struct Begun<'a, L: Ledger> {
    ledger: &'a L,
    /// The order, as the step's begin found it.
    pub order: OrderRecord,
    /// The step's record with this attempt counted.
    pub attempt: StepRecord,
    step: &'static str,
}

/// What [`open`] found.
pub enum Opened<'a, L: Ledger> {
    /// The step is under way for this attempt.
    Begun(Begun<'a, L>),
    /// The step had succeeded before (Step Functions and Lambda deliver at least once):
    /// its record, and the order as read before. Nothing may act again.
    Replayed {
        record: StepRecord,
        order: OrderRecord,
    },
}

/// A replay's output: the recorded result, marked `replayed`.
pub fn replayed(record: StepRecord, order: &OrderRecord) -> ActivityOutput {
    tracing::info!(
        step = %record.step,
        attempts = record.attempts,
        "step already succeeded; returning its recorded result"
    );
    ActivityOutput::from_step(record, order.status, order.order.kind, true)
}

/// Reads the input's order and counts the attempt at `step` in the ledger, or finds the
/// step already succeeded.
pub async fn open<'a, L: Ledger>(
    ledger: &'a L,
    raw_id: &str,
    step: Step,
) -> Result<Opened<'a, L>, ActivityError> {
    let id = order_id(raw_id)?;
    let step = step.name;
    let (order, start) = ledger.open_step(&id, step).await?;
    match start {
        StepStart::AlreadySucceeded(record) => Ok(Opened::Replayed { record, order }),
        StepStart::Started(attempt) => {
            tracing::info!(step, attempts = attempt.attempts, status = %order.status, "step started");
            Ok(Opened::Begun(Begun {
                ledger,
                order,
                attempt,
                step,
            }))
        }
    }
}

impl<L: Ledger> Begun<'_, L> {
    pub fn id(&self) -> &OrderId {
        &self.order.order_id
    }

    /// What a partner call of this step carries: the order and the step's idempotency key.
    pub fn call(&self) -> CallContext {
        CallContext::for_step(&self.order, self.step)
    }

    /// Records the step's success with its references and, when given, the order's status
    /// change, together; then closes the attempt ([`Begun::close`]).
    pub async fn succeed(
        self,
        references: References,
        transition: Option<Transition<'_>>,
    ) -> Result<ActivityOutput, ActivityError> {
        let status = transition.map_or(self.order.status, |t| t.to);
        let written = self
            .ledger
            .succeed_step(&self.attempt, references, transition)
            .await;
        self.close(
            written
                .map(|record| (record, status))
                .map_err(ActivityError::from),
        )
        .await
    }

    /// Closes the attempt: a success (the step's record and the order's status after it)
    /// is logged and returned; a failure is logged, recorded on the step and returned.
    pub async fn close(
        self,
        outcome: Result<(StepRecord, OrderStatus), ActivityError>,
    ) -> Result<ActivityOutput, ActivityError> {
        let step = self.step;
        match outcome {
            Ok((record, status)) => {
                tracing::info!(step, attempts = record.attempts, status = %status, references = ?record.references, "step succeeded");
                Ok(ActivityOutput::from_step(
                    record,
                    status,
                    self.order.order.kind,
                    false,
                ))
            }
            Err(error) => {
                tracing::warn!(step, attempts = self.attempt.attempts, error = %error.name, message = %error.message, "step failed");
                if let Err(record_error) = self.ledger.fail_step(&self.attempt, &error).await {
                    tracing::error!(step, error = %record_error, "could not record the step's failure");
                }
                Err(error)
            }
        }
    }

    /// Leaves the step under way: its success is recorded by someone else (the courier's
    /// delivery event, for AwaitDelivery). The output shows the order as read.
    pub fn pending(self) -> ActivityOutput {
        let status = self.order.status;
        let kind = self.order.order.kind;
        ActivityOutput::from_step(self.attempt, status, kind, false)
    }
}

/// Why an activity's own work failed: a partner call, whose refusal becomes the step's
/// [`Step::refused`] name (`?` on the call is enough), or the activity's own decision.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Partner(#[from] PartnerError),
    #[error(transparent)]
    Activity(#[from] ActivityError),
}

impl WorkError {
    fn into_activity_error(self, order_id: &OrderId, step: Step) -> ActivityError {
        match self {
            WorkError::Partner(error) => error.into_activity_error(order_id, step.refused),
            WorkError::Activity(error) => error,
        }
    }
}

/// What an activity's handler returns to the state machine.
pub type Outcome = Result<ActivityOutput, ActivityError>;

/// Runs a forward `step` for the order in `input`. `plan` says, from the order, which
/// status the step needs and where it leaves the order; `work` does the step's effect,
/// calling partners with the step's [`CallContext`], and returns the partner references
/// to record. Every log line inside carries the step and the order id.
///
/// Run again after success, it returns the recorded result without calling `work`. When
/// the order is not in the expected status (cancelled, moved by someone else) it fails
/// with `Order.Cancelled` or `Order.Conflict` and calls nothing. When the order was
/// cancelled while `work` ran, the status change is refused (`Order.Cancelled`) and the
/// state machine's compensations undo what `work` did.
pub async fn run_step<L, P, F, Fut>(
    ledger: &L,
    input: &ActivityInput,
    step: Step,
    plan: P,
    work: F,
) -> Result<ActivityOutput, ActivityError>
where
    L: Ledger,
    P: FnOnce(&OrderRecord) -> Move,
    F: FnOnce(OrderRecord, CallContext) -> Fut,
    Fut: Future<Output = Result<References, WorkError>>,
{
    let span = tracing::info_span!("activity", step = step.name, order_id = %input.order_id);
    async move {
        let begun = match open(ledger, &input.order_id, step).await? {
            Opened::Replayed { record, order } => return Ok(replayed(record, &order)),
            Opened::Begun(begun) => begun,
        };
        let Move { from, to } = plan(&begun.order);
        if begun.order.status != from {
            let conflict = StoreError::Conflict {
                order_id: begun.id().clone(),
                expected: from,
                actual: begun.order.status,
            };
            return begun.close(Err(conflict.into())).await;
        }
        match work(begun.order.clone(), begun.call()).await {
            Ok(references) => {
                // The change's lifecycle event (SHIPPED, COMPLETED), written with it.
                let event = to.and_then(|to| {
                    crate::events::OrderEvent::after_change(&begun.order, to, None, &references)
                });
                let transition = to.map(|to| Transition::new(from, to).announcing(event.as_ref()));
                begun.succeed(references, transition).await
            }
            Err(error) => {
                let error = error.into_activity_error(begun.id(), step);
                begun.close(Err(error)).await
            }
        }
    }
    .instrument(span)
    .await
}

/// Runs a compensation `step` for the order in `input`: undoes a forward step's effect at
/// a partner. The order is moved to COMPENSATING first when it still stands in a status
/// with effects (a failure path); a CANCELLING order stays CANCELLING. `work` is only
/// called for an order that is COMPENSATING or CANCELLING, and must be safe when there is
/// nothing to undo.
pub async fn run_compensation<L, F, Fut>(
    ledger: &L,
    input: &Rollback,
    step: Step,
    work: F,
) -> Result<ActivityOutput, ActivityError>
where
    L: Ledger,
    F: FnOnce(OrderRecord, CallContext) -> Fut,
    Fut: Future<Output = Result<References, WorkError>>,
{
    let span = tracing::info_span!("compensation", step = step.name, order_id = %input.order_id);
    async move {
        let mut begun = match open(ledger, &input.order_id, step).await? {
            Opened::Replayed { record, order } => return Ok(replayed(record, &order)),
            Opened::Begun(begun) => begun,
        };
        match enter_compensation(ledger, begun.order.clone(), input.failure()).await {
            Ok(order) => {
                begun.order = order;
                match work(begun.order.clone(), begun.call()).await {
                    Ok(references) => begun.succeed(references, None).await,
                    Err(error) => {
                        let error = error.into_activity_error(begun.id(), step);
                        begun.close(Err(error)).await
                    }
                }
            }
            Err(error) => begun.close(Err(error)).await,
        }
    }
    .instrument(span)
    .await
}

/// Moves an order that still holds effects to COMPENSATING, recording the failure that
/// started the rollback; returns it COMPENSATING or CANCELLING, or fails for an order in
/// any other status.
async fn enter_compensation<L: Ledger>(
    ledger: &L,
    order: OrderRecord,
    failure: Option<crate::store::Failure>,
) -> Result<OrderRecord, ActivityError> {
    let id = order.order_id.clone();
    let mut read = Some(order);
    let entered = retry_on_conflict(|| {
        let known = read.take();
        let (ledger, id, failure) = (ledger, &id, failure.clone());
        async move {
            let order = match known {
                Some(order) => order,
                None => ledger.require_order(id).await?,
            };
            Ok(match order.status {
                // CANCELLED: an order a cancel ended before this rule (nothing begun)
                // while an unrecorded execution had taken effects; `orderctl orders undo`
                // runs its rollback (`recovery::undo_cancelled`). It stays CANCELLED.
                OrderStatus::Compensating | OrderStatus::Cancelling | OrderStatus::Cancelled => {
                    Ok(order)
                }
                status if status.has_effects_to_undo() => {
                    let moved = ledger
                        .transition(
                            id,
                            Transition::new(status, OrderStatus::Compensating)
                                .because(failure.as_ref()),
                        )
                        .await?;
                    tracing::warn!(from = %status, "order is being rolled back");
                    Ok(moved)
                }
                // The courier's delivery was recorded first (after the delivery timeout,
                // before the shipment was cancelled): nothing is undone.
                delivered @ (OrderStatus::Delivered | OrderStatus::Completed) => {
                    Err(ActivityError::new(
                        ErrorName::OrderDelivered,
                        format!(
                            "order {id} is {delivered}: the courier delivered it, so the rollback stops and the order completes"
                        ),
                    ))
                }
                actual => Err(ActivityError::new(
                    ErrorName::OrderConflict,
                    format!("order {id} is {actual}: there is nothing to roll back in that status"),
                )),
            })
        }
    })
    .await;
    match entered {
        Ok(outcome) => outcome,
        Err(StoreError::Conflict { .. }) => Err(ActivityError::new(
            ErrorName::OrderConflict,
            format!("order {id} kept changing while its rollback started"),
        )),
        Err(error) => Err(error.into()),
    }
}

/// A function's cold start: JSON logs, then the order store from the standard AWS
/// configuration and `TABLE_NAME`.
pub async fn start() -> Result<OrderStore, lambda_runtime::Error> {
    crate::telemetry::init();
    let aws = crate::config::aws().await;
    Ok(OrderStore::from_config(&aws, crate::config::table_name()?))
}

/// Serves an activity: every event goes through [`invoke`].
pub async fn serve<I, O, H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    H: Fn(I) -> Fut,
    Fut: Future<Output = Result<O, ActivityError>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        invoke(handler, event.payload)
    }))
    .await
}

/// One invocation: the event is parsed into the handler's input (a clear
/// `Internal.Error` when it does not fit) and handed to `handler`.
///
/// A panic in the handler is a bug. It becomes `Internal.Error` with the panic's message,
/// which every Task catches without retrying (a bug does not fix itself): the order is
/// rolled back and the operator reads the message in its failure. The process lives on
/// for the next invocation. Release builds unwind (see the workspace `Cargo.toml`) so that
/// this holds on AWS exactly as on the local stack; with `panic = "abort"` the process
/// would die and the Task would see Lambda's `Runtime.ExitError` instead.
pub async fn invoke<I, O, H, Fut>(
    handler: &H,
    payload: serde_json::Value,
) -> Result<O, ActivityError>
where
    I: DeserializeOwned,
    H: Fn(I) -> Fut,
    Fut: Future<Output = Result<O, ActivityError>>,
{
    let input = parse_input(payload)?;
    // Boxed: the handler's future is deep, and unboxed its layout exceeds the compiler's
    // default recursion limit inside the runtime's own futures.
    let run = Box::pin(handler(input));
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| (*m).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(panic = %message, "the activity panicked");
            Err(ActivityError::new(
                ErrorName::Internal,
                format!("the activity panicked (a bug): {message}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderId;

    fn output(order_id: &str) -> ActivityOutput {
        ActivityOutput {
            order_id: OrderId::parse(order_id).expect("a valid order id"),
            step: "TakePayment".to_owned(),
            status: OrderStatus::PaymentTaken,
            kind: OrderKind::NewMerchant,
            attempts: 1,
            replayed: false,
            references: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_reports_internal_error_with_the_panic_message() {
        let handler = |input: ActivityInput| async move {
            if input.order_id.starts_with("ord-") {
                panic!("index out of bounds in {}", input.order_id);
            }
            Ok(output(&input.order_id))
        };
        let error = invoke(
            &handler,
            serde_json::json!({"order_id": "ord-00000000000000000000000000000001"}),
        )
        .await
        .expect_err("a panic must not pass for a result");
        assert_eq!(error.name, ErrorName::Internal);
        assert!(
            error
                .message
                .contains("index out of bounds in ord-00000000000000000000000000000001"),
            "the message must carry the panic's own words: {}",
            error.message
        );
        // What the Task sees: the Diagnostic's error_type, which no Retry names.
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "Internal.Error");
    }

    #[tokio::test]
    async fn a_handler_that_does_not_panic_returns_its_own_result() {
        let handler = |input: ActivityInput| async move { Ok(output(&input.order_id)) };
        let result = invoke(
            &handler,
            serde_json::json!({"order_id": "ord-00000000000000000000000000000002"}),
        )
        .await
        .expect("the handler's result");
        assert_eq!(result, output("ord-00000000000000000000000000000002"));
    }

    #[tokio::test]
    async fn an_event_that_does_not_fit_the_input_is_internal_error_before_the_handler_runs() {
        let handler = |_: ActivityInput| async move {
            if true {
                panic!("the handler must not run for a malformed event");
            }
            Ok(output("ord-00000000000000000000000000000003"))
        };
        let error = invoke(&handler, serde_json::json!({"orderid": 7}))
            .await
            .expect_err("a malformed event is refused");
        assert_eq!(error.name, ErrorName::Internal);
        assert!(!error.message.contains("panicked"), "{}", error.message);
    }
}
