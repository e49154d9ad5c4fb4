//! The order ledger: each order, the record of every workflow step run for it, and the
//! `Idempotency-Key`s that placed orders.
//!
//! [`Ledger`] is what the activities, the API and the operator tools need of it. Two
//! implementations keep the same rules:
//! - [`OrderStore`] (`dynamo`): the DynamoDB table that deploys (keys and indexes in
//!   `keys`);
//! - [`MemoryStore`] (`memory`): in memory, for fast unit tests of the saga and for
//!   simulation.
//!
//! The rules: new orders and idempotency keys are created only if absent, together; every
//! status change is conditional on the expected previous status, checked against the
//! order status machine, and bumps `version`; a step that succeeded is never begun again;
//! a step succeeds together with its status change or not at all, and with the lookups
//! of the references it makes findable ([`findable`]). A lost race is a
//! [`StoreError::Conflict`], never a panic. `tests/store.rs` runs one contract suite on
//! both implementations (`order_core::store::contract`).

mod audit;
pub mod callers;
mod conflict;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod dynamo;
mod errors;
mod idempotency;
mod keys;
pub mod retention;
pub use keys::{OPERATOR_ONLY_PARTITIONS, OUTBOX_PREFIX, OUTBOX_TTL_SECONDS};
mod lookups;
pub mod memory;
mod records;

pub use audit::{audited, AuditEntry, AuditRecord, AuditTrail};
pub use callers::{Actor, CallerChange, CallerRecord, Callers};
pub use conflict::{retry_on_conflict, CONFLICT_ATTEMPTS};
pub use dynamo::OrderStore;
pub use errors::StoreError;
pub use idempotency::{request_hash, IDEMPOTENCY_TTL_SECONDS};
pub use keys::{
    idempotency_pk, status_partitions, status_shard, BY_MERCHANT_INDEX, BY_STATUS_INDEX,
    COURIER_EVENT_TTL_SECONDS, STATUS_SHARDS,
};
pub use lookups::{findable, Reference};
pub use memory::{Clock, MemoryStore};
pub use records::{
    Attempt, Cancellation, Claim, Delivery, DeliveryRecorded, Failure, IndexPosition, OrderRecord,
    Parked, Placement, StepRecord, StepStart, StepStatus, TaskToken, TokenStored, Transition,
};
pub use retention::Retention;

use crate::order::{Order, OrderId};
use crate::status::OrderStatus;
use crate::ActivityError;
use chrono::{SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::future::Future;

/// Partner references and results recorded on a step.
pub type References = BTreeMap<String, String>;

/// The time as the ledger writes it: RFC 3339, milliseconds, UTC.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The operations on the order ledger. Every implementation keeps the rules in the module
/// documentation; the contract suite holds them to it.
pub trait Ledger: Send + Sync {
    /// Stores a new ACCEPTED order placed by `caller` under its `Idempotency-Key`, or
    /// finds the order that caller's key already placed. Order and key are written
    /// together or not at all. Keys are each caller's own (another caller's key of the
    /// same text is another key), and a key older than [`IDEMPOTENCY_TTL_SECONDS`] is
    /// expired when it is read, whether or not DynamoDB's TTL has deleted it yet: it
    /// places a new order.
    fn place_order(
        &self,
        caller: &crate::callers::Principal,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send;

    /// The order, read consistently; `None` when there is no such order.
    fn get_order(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send;

    /// The order, or [`StoreError::NotFound`].
    fn require_order(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<OrderRecord, StoreError>> + Send {
        async move {
            self.get_order(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.clone()))
        }
    }

    /// The order and all of its step records (oldest first), read consistently.
    fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError>> + Send;

    /// Orders in `status` whose last change is older than `before` (an RFC 3339 time),
    /// oldest first, at most `limit`.
    fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// [`Ledger::orders_in_status`] from a place in the index: only the orders that come
    /// after the one at `after` (the sort key of [`IndexPosition`]), oldest first, whose
    /// last change is older than `before`, at most `limit`.
    fn orders_in_status_after(
        &self,
        status: OrderStatus,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Where the last run of the reconciler called `name` stopped, when it stopped at its
    /// limit before reaching the end of the unfinished orders; `None` otherwise.
    fn reconcile_cursor(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<IndexPosition>, StoreError>> + Send;

    /// Records where a run of the reconciler called `name` stopped (`None`: it looked at
    /// every order it could, so the next run starts from the oldest).
    fn set_reconcile_cursor(
        &self,
        name: &str,
        position: Option<&IndexPosition>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A merchant's orders created at or after `since` (an RFC 3339 time), oldest first,
    /// at most `limit`.
    fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Moves the order from `from` to `to`, only if it is still `from` and the status
    /// machine allows it, optionally with the reason it failed. Returns the order as
    /// written.
    fn transition(
        &self,
        id: &OrderId,
        change: Transition<'_>,
    ) -> impl Future<Output = Result<OrderRecord, StoreError>> + Send;

    /// Moves the order to CANCELLING if it has not shipped yet, in one conditional write
    /// from whichever cancellable status it is in ([`OrderStatus::cancellable`]): a cancel
    /// racing the workflow either lands or finds the order shipped, never a conflict.
    /// Never moves an order that has shipped or ended; what it found says why
    /// ([`Cancellation`]).
    fn cancel(&self, id: &OrderId)
        -> impl Future<Output = Result<Cancellation, StoreError>> + Send;

    /// Counts an attempt at `step` and marks it under way, unless it already succeeded,
    /// in which case its recorded result comes back and nothing is changed. The order
    /// comes back too, as the same write found it: an activity reads nothing before.
    fn open_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> impl Future<Output = Result<(OrderRecord, StepStart), StoreError>> + Send;

    /// [`Ledger::open_step`] without the order.
    fn begin_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> impl Future<Output = Result<StepStart, StoreError>> + Send {
        async move { self.open_step(id, step).await.map(|(_, start)| start) }
    }

    /// Marks the step `attempt` began ([`Ledger::begin_step`]) SUCCEEDED with its
    /// references and, when given, makes the order's status change, both at once: either
    /// both happen or neither does. The step's record comes back without a second read:
    /// the attempt as begun, succeeded. When a concurrent run of the same step succeeded
    /// first, its record comes back.
    fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: References,
        transition: Option<Transition<'_>>,
    ) -> impl Future<Output = Result<StepRecord, StoreError>> + Send;

    /// Marks the step `attempt` began FAILED with the error's name and message, unless a
    /// concurrent run of it succeeded first (the success stands). The order is not moved:
    /// the workflow decides what a failure means.
    fn fail_step(
        &self,
        attempt: &StepRecord,
        error: &ActivityError,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the task token of the execution waiting for the order's delivery, if the
    /// order is still SHIPPED and no later attempt stored its own ([`TaskToken::fence`]:
    /// a late copy of an older attempt is [`TokenStored::Superseded`]). When the delivery
    /// was recorded first, says so, so that the caller resumes the execution itself:
    /// exactly one of the two sides holds both.
    fn store_task_token(
        &self,
        id: &OrderId,
        token: &TaskToken<'_>,
    ) -> impl Future<Output = Result<TokenStored, StoreError>> + Send;

    /// Records the courier's delivery event, all at once: the order moves SHIPPED ->
    /// DELIVERED, the AwaitDelivery step succeeds with the event's references, the
    /// ArrangeShipment step must name the event's shipment, and the event id is kept (for
    /// [`COURIER_EVENT_TTL_SECONDS`]) so the same event is recognised when replayed. What
    /// is refused changes nothing.
    /// `event` (`Order Delivered`) is written to the outbox with it.
    fn record_delivery(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        event: &crate::events::OrderEvent,
    ) -> impl Future<Output = Result<DeliveryRecorded, StoreError>> + Send;

    /// Marks the order as put in front of an operator, its dead letter pending, writing
    /// `event` (`Order Needs Operator`) to the outbox with it, only if the order is still
    /// at the version `read` was read at and not parked: an order resumed, moved,
    /// cancelled or parked by another since is not parked ([`StoreError::Changed`]). Of
    /// racing parkers exactly one parks. Not a status change.
    fn park(
        &self,
        read: &OrderRecord,
        reason: &str,
        event: &crate::events::OrderEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the parked order's dead letter was sent (clears
    /// [`Parked::letter_pending`]). Nothing for an order that is not parked.
    fn dead_letter_sent(&self, id: &OrderId)
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The lifecycle events the order's changes wrote to the outbox (one per change
    /// integrators are told of: placement, a [`Transition`] that announces, a delivery, a
    /// park), in `event_id` order.
    fn outbox(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Vec<crate::events::OrderEvent>, StoreError>> + Send;

    /// Records `claim.arn` as the execution that drives the order, before it is started,
    /// with the resume count `claim.resumes` (a resume clears the parked mark): only if the
    /// order still has the resume count and execution the starter read
    /// ([`Claim`]). A starter that lost the race gets [`StoreError::Claimed`] with the
    /// execution that won; a missing order [`StoreError::NotFound`]. Not a status change
    /// (bumps `version`).
    fn claim_execution(
        &self,
        id: &OrderId,
        claim: &Claim<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The orders a partner reference (a tracking number, a terminal serial) was recorded
    /// for by a step's success ([`findable`]), in id order; none when it is unknown.
    fn find_by_reference(
        &self,
        reference: Reference,
        value: &str,
    ) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;

    /// How many orders are in `status` (counted in the by-status index, not read).
    fn count_in_status(
        &self,
        status: OrderStatus,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// What a refused [`Ledger::cancel`] means, from the order as the refused write found it.
pub(crate) fn cancel_refused(order: OrderRecord) -> Cancellation {
    match order.status {
        OrderStatus::Cancelling | OrderStatus::Cancelled => Cancellation::AlreadyCancelling(order),
        _ => Cancellation::TooLate(order),
    }
}

/// What a refused [`Ledger::store_task_token`] means, from the order as it is now.
pub(crate) fn token_refused(order: OrderRecord) -> Result<TokenStored, StoreError> {
    match order.status {
        OrderStatus::Delivered | OrderStatus::Completed => {
            Ok(TokenStored::AlreadyDelivered(Box::new(order)))
        }
        actual => Err(StoreError::Conflict {
            order_id: order.order_id,
            expected: OrderStatus::Shipped,
            actual,
        }),
    }
}

/// Why an order delivered after its shipment was cancelled is parked: both facts.
pub(crate) fn late_delivery_reason(order: &OrderRecord, delivery: &Delivery) -> String {
    format!(
        "the courier delivered shipment {} (event {}, at {}) after it had confirmed the shipment's cancellation; the order is {}: decide with the merchant whether to complete it or collect the terminals",
        delivery.shipment_id, delivery.event_id, delivery.delivered_at, order.status
    )
}

/// Which conditions of [`Ledger::record_delivery`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryRefusal {
    /// The order was not SHIPPED.
    pub order_not_shipped: bool,
    /// ArrangeShipment's record names another shipment, or there is none.
    pub wrong_shipment: bool,
    /// The event id was recorded before.
    pub seen_before: bool,
}

/// What a refused [`Ledger::record_delivery`] means, from the order as it is now.
pub(crate) fn delivery_refused(
    order: OrderRecord,
    delivery: &Delivery,
    refusal: DeliveryRefusal,
) -> Result<DeliveryRecorded, StoreError> {
    if refusal.seen_before {
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
        OrderStatus::Shipped if refusal.wrong_shipment && !refusal.order_not_shipped => {
            Ok(DeliveryRecorded::WrongShipment)
        }
        actual => Err(StoreError::Conflict {
            order_id: order.order_id,
            expected: OrderStatus::Shipped,
            actual,
        }),
    }
}
