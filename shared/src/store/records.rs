//! What the order table holds, as the code reads and writes it: the order, its steps,
//! and what each ledger operation reports back.

use super::now;
use crate::order::{Order, OrderId};
use crate::status::OrderStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub status: OrderStatus,
    /// Bumped by every write; lets readers and writers detect concurrent changes.
    pub version: u64,
    pub order: Order,
    /// SHA-256 of the canonical request body, to tell a replay from a different request.
    pub request_hash: String,
    pub execution_arn: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub failure: Option<Failure>,
    /// The token of the execution waiting in AwaitDelivery; the courier webhook resumes it.
    pub task_token: Option<String>,
    /// Which AwaitDelivery attempt `task_token` is ([`TaskToken::fence`]): an older
    /// attempt's token (a late copy) never replaces it. `None` for a token stored by an
    /// execution of a definition that did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_fence: Option<u64>,
    /// The courier's delivery event, once it arrived.
    pub delivery: Option<Delivery>,
    /// How many times the order was resumed (new executions `<id>-r<n>`).
    #[serde(default)]
    pub resumes: u32,
    /// Set when the reconciler gave up on the order and put it in the dead-letter queue;
    /// cleared when it is resumed.
    pub parked: Option<Parked>,
    /// The API caller that placed it (its IAM principal); absent on orders placed before
    /// callers were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<crate::callers::Principal>,
    /// When the personal parts of its address were removed (`store::retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymised_at: Option<String>,
}

impl OrderRecord {
    /// A new order as placed: ACCEPTED at version 1 under a new id, nothing else yet.
    pub fn accepted(order: &Order, request_hash: &str) -> OrderRecord {
        OrderRecord::accepted_at(order, request_hash, now())
    }

    /// [`OrderRecord::accepted`], placed at `created_at` (RFC 3339, milliseconds, UTC).
    pub fn accepted_at(order: &Order, request_hash: &str, created_at: String) -> OrderRecord {
        OrderRecord {
            order_id: OrderId::generate(),
            status: OrderStatus::Accepted,
            version: 1,
            order: order.clone(),
            request_hash: request_hash.to_owned(),
            execution_arn: None,
            created_at: created_at.clone(),
            updated_at: created_at,
            failure: None,
            task_token: None,
            task_fence: None,
            delivery: None,
            resumes: 0,
            parked: None,
            placed_by: None,
            anonymised_at: None,
        }
    }
}

/// Why and when the order was put in front of an operator (by the reconciler, or by a
/// delivery that came after its shipment was cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub at: String,
    pub reason: String,
    /// The operators' dead letter is still to be sent: the park is written first (one
    /// parker wins), the letter after it; a run that died in between leaves this for the
    /// next run to send. Absent (sent) on data written before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub letter_pending: bool,
}

/// A place in the by-status index: the status and the sort key (`<updated_at>#<id>`) of
/// an order there. Where the reconciler's last run stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPosition {
    pub status: OrderStatus,
    pub key: String,
}

impl IndexPosition {
    /// Where `order` stands in the by-status index.
    pub fn of(order: &OrderRecord) -> IndexPosition {
        IndexPosition {
            status: order.status,
            key: super::keys::status_index_values(order.status, &order.updated_at, &order.order_id)
                .1,
        }
    }
}

/// The courier's confirmation that an order's parcel arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The courier's event id: a repeated event is recognised by it.
    pub event_id: String,
    pub shipment_id: String,
    pub delivered_at: String,
}

/// The task token of one AwaitDelivery attempt, with what orders it among the order's
/// others: the execution that made it (`<id>`, then `<id>-r<n>` per resume) and the
/// state's retry count in that execution (`$$.Execution.Name`, `$$.State.RetryCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskToken<'a> {
    pub token: &'a str,
    /// `None` from an execution of a definition that did not pass them.
    pub attempt: Option<Attempt<'a>>,
}

/// Where an AwaitDelivery attempt stands among the order's: its execution, how many
/// outage waits that execution had made when the state was entered (`$.outage.waits`:
/// the state is entered again after each wait, and its retry count starts again), and
/// its retry count in that entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub execution: &'a str,
    pub outage_waits: u32,
    pub retry: u32,
}

/// More than the retries of one entry of a state: a later entry's fences are above an
/// earlier one's.
const RETRIES_PER_ENTRY: u64 = 1_000;
/// More than the entries of AwaitDelivery one execution can make (one plus its outage
/// waits): a later execution's fences are above an earlier one's.
const ENTRIES_PER_EXECUTION: u64 = 1_000_000;

impl TaskToken<'_> {
    /// The attempt's place, higher for later ones: by execution (0 for `<id>`, n for
    /// `<id>-r<n>`), then by entry of the state (the outage waits before it), then by
    /// retry. `None` when the attempt is not known, or its execution is not one of order
    /// `id`'s.
    pub fn fence(&self, id: &crate::order::OrderId) -> Option<u64> {
        let attempt = self.attempt?;
        let resume = match attempt.execution.strip_prefix(id.as_str())? {
            "" => 0,
            rest => rest.strip_prefix("-r")?.parse::<u64>().ok()?,
        };
        let entry = u64::from(attempt.outage_waits).min(ENTRIES_PER_EXECUTION - 1);
        let retry = u64::from(attempt.retry).min(RETRIES_PER_ENTRY - 1);
        Some((resume * ENTRIES_PER_EXECUTION + entry) * RETRIES_PER_ENTRY + retry)
    }
}

/// What [`Ledger::store_task_token`](super::Ledger::store_task_token) found.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenStored {
    /// The order is SHIPPED and now holds the token: the webhook will resume the execution.
    Waiting,
    /// The delivery arrived first: the caller resumes the execution itself.
    AlreadyDelivered(Box<OrderRecord>),
    /// A later attempt (a retry, or a newer execution) stored its token first: this one
    /// is a late copy, and its task no longer waits. Nothing changed.
    Superseded,
}

/// What [`Ledger::record_delivery`](super::Ledger::record_delivery) did.
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
    /// Delivered after the courier had confirmed the shipment's cancellation (the order
    /// rolling back, or rolled back, FAILED): the delivery is recorded on the order and the
    /// order parked for a person, with both facts (`Order Needs Operator`).
    AfterRollback(OrderRecord),
}

/// What [`Ledger::cancel`](super::Ledger::cancel) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancellation {
    /// The cancel took: the order moved to CANCELLING now (its execution rolls it back),
    /// or, nothing having begun on it (no execution recorded, no step begun), ended
    /// CANCELLED at once in the same conditional write.
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
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub order_id: OrderId,
    pub step: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Partner references (reservation, charge, terminal and shipment ids) and results.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
    pub error: Option<String>,
    pub error_message: Option<String>,
}

impl StepRecord {
    /// The step succeeded at `now` with `references`: an empty set keeps what an earlier
    /// attempt recorded, as the table does; an earlier attempt's error is history.
    pub fn succeeded(self, references: BTreeMap<String, String>, now: String) -> StepRecord {
        let references = match references.is_empty() {
            true => self.references,
            false => references,
        };
        StepRecord {
            status: StepStatus::Succeeded,
            finished_at: Some(now.clone()),
            updated_at: now,
            references,
            error: None,
            error_message: None,
            ..self
        }
    }
}

/// A status change, on its own or together with a step's success.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// Why the order failed, when `to` is a failure.
    pub failure: Option<&'a Failure>,
    /// The lifecycle event integrators get for the change, written to the outbox in the
    /// same transaction (`crate::events`); `None` for a change they are not told of.
    pub announce: Option<&'a crate::events::OrderEvent>,
}

impl<'a> Transition<'a> {
    /// From `from` to `to`, recording no failure.
    pub fn new(from: OrderStatus, to: OrderStatus) -> Transition<'a> {
        Transition {
            from,
            to,
            failure: None,
            announce: None,
        }
    }

    /// The same change, writing `event` (if any) to the outbox with it.
    pub fn announcing(self, event: Option<&'a crate::events::OrderEvent>) -> Transition<'a> {
        Transition {
            announce: event,
            ..self
        }
    }

    /// The same change, recording why the order failed (`None`: nothing).
    pub fn because(self, failure: Option<&'a Failure>) -> Transition<'a> {
        Transition { failure, ..self }
    }
}

/// Who drives an order next: the execution a starter records as the order's before it
/// starts it ([`Ledger::claim_execution`](super::Ledger::claim_execution)), conditional
/// on the order as the starter read it, so that of several racing starters (the API's
/// retry, an operator's resume, the console, the reconciler) exactly one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The status the starter read the order in (an order that has ended since is not
    /// claimed: [`StoreError::Conflict`](super::StoreError::Conflict) from it).
    pub read_status: OrderStatus,
    /// The resume count the starter read.
    pub read_resumes: u32,
    /// The execution the starter read on the order (`None`: none recorded).
    pub read_arn: Option<&'a str>,
    /// The resume count to record: `read_resumes + 1` for a resume, unchanged for the
    /// API's first start.
    pub resumes: u32,
    /// The ARN of the execution about to start (derived from its name).
    pub arn: &'a str,
}

impl Claim<'_> {
    /// Whether the claim may take an order that ended `status`: only a CANCELLED order,
    /// read CANCELLED by the one starter that undoes what such an order still holds
    /// (`recovery::undo_cancelled`).
    pub fn undoes(&self, status: OrderStatus) -> bool {
        status == OrderStatus::Cancelled && self.read_status == OrderStatus::Cancelled
    }
}

/// What [`Ledger::place_order`](super::Ledger::place_order) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// The order and its idempotency key were written now.
    Created(OrderRecord),
    /// The key was used before with the same request: this is that order.
    Replayed(OrderRecord),
    /// The caller used the key before with a different request (the order it placed
    /// then is kept for the logs, never shown to a caller).
    KeyReused { order_id: OrderId },
}

/// What [`Ledger::begin_step`](super::Ledger::begin_step) found.
#[derive(Debug, Clone, PartialEq)]
pub enum StepStart {
    /// The step is (again) under way; `attempts` counts this run.
    Started(StepRecord),
    /// The step already succeeded: return its recorded result, call nothing again.
    AlreadySucceeded(StepRecord),
}
