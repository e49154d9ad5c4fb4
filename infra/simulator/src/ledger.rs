//! The in-memory ledger (`MemoryStore`, held to DynamoDB by the contract suite) seen
//! through an auditor: every write is followed by a look at the order's status, and a
//! change the status machine does not allow (`OrderStatus::check_transition`) is recorded
//! as a violation. The seed can also make the store unavailable for an activity's begin
//! or success write (`Store.Unavailable`), before anything is written; and in its
//! throttling windows ([`Faults::store_throttling`](crate::Faults)) it fails a share of
//! every kind of request the same way. Every call a recovery action makes (a resume, the
//! reconciler, a cancel, the API's start, the webhook) is a control point
//! ([`Shared::recovery_point`]), and every claim of an order's execution is handed to the
//! invariants checked as they happen. The world's own looks ([`Audited::look`]) never
//! fail.

use crate::bus::SimBus;
use crate::partners::ControlPoint;
use crate::world::{Service, Shared, Trace};
use order_core::events::OrderEvent;
use order_core::store::{
    Cancellation, Delivery, DeliveryRecorded, IndexPosition, Ledger, MemoryStore, OrderRecord,
    Placement, Reference, References, StepRecord, StepStart, StoreError, TaskToken, TokenStored,
    Transition,
};
use order_core::{ActivityError, Order, OrderId, OrderStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `MemoryStore` with every status change checked, and every outbox item it takes
/// handed to the stream ([`SimBus::written`]).
pub struct Audited {
    inner: MemoryStore,
    shared: Arc<Shared>,
    bus: Arc<SimBus>,
    /// The status each order was last seen in.
    seen: Mutex<HashMap<OrderId, OrderStatus>>,
}

impl Audited {
    pub fn new(shared: Arc<Shared>, bus: Arc<SimBus>) -> Audited {
        let clock = shared.clone();
        let last = std::sync::atomic::AtomicU64::new(0);
        Audited {
            // Stamped by the simulated clock: the reconciler's grace period reads them. No
            // two writes get the same millisecond, so the by-status index never orders two
            // orders by their random ids (a seed replays the reconciler's walk).
            inner: MemoryStore::with_clock(move || {
                let now = clock.now();
                let stamp = match last.fetch_max(now, std::sync::atomic::Ordering::Relaxed) {
                    before if before >= now => before + 1,
                    _ => now,
                };
                last.fetch_max(stamp, std::sync::atomic::Ordering::Relaxed);
                crate::world::shared::date(stamp)
            }),
            shared,
            bus,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Looks at the order after a write; an illegal change is a violation. What the write
    /// put in the order's outbox goes to the table's stream.
    async fn observe(&self, id: &OrderId) {
        if let Ok(outbox) = self.inner.outbox(id).await {
            self.bus.written(outbox);
        }
        let Ok(Some(order)) = self.inner.get_order(id).await else {
            return;
        };
        let before = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), order.status);
        match before {
            Some(before) if before != order.status => {
                self.shared.moved(id, order.status);
                self.shared.note(
                    id,
                    Trace::Status {
                        from: before,
                        to: order.status,
                    },
                );
                if let Err(illegal) = before.check_transition(order.status) {
                    self.shared
                        .violation(id, format!("illegal status change written: {illegal}"));
                }
            }
            _ => {}
        }
    }

    /// A control point before a write, as the seed decides: a cancel, a webhook or
    /// another invocation can land between what the activity read and what it writes.
    async fn maybe_pause(&self) {
        if self.shared.pause_before_write() {
            self.shared.count("pause before a ledger write");
            ControlPoint(false).await;
        }
    }

    fn fault(&self, id: &OrderId, operation: &'static str) -> Result<(), StoreError> {
        if self.shared.store_fault() {
            self.shared.count("store unavailable");
            self.shared.note(id, Trace::Store { operation });
            return Err(StoreError::Unavailable {
                operation,
                message: "simulated DynamoDB throttling".into(),
            });
        }
        self.throttled(Some(id), operation)
    }

    /// A request in a throttling window, as the seed decides: it fails before anything
    /// is read or written, as the DynamoDB ledger reports a
    /// `ProvisionedThroughputExceededException` (`Store.Unavailable`). `id`: the order it
    /// is about, for its trace (none for the reconciler's index reads).
    fn throttled(&self, id: Option<&OrderId>, operation: &'static str) -> Result<(), StoreError> {
        if !self.shared.fails(Service::StoreThrottling) {
            return Ok(());
        }
        if let Some(id) = id {
            self.shared.note(id, Trace::Store { operation });
        }
        Err(StoreError::Unavailable {
            operation,
            message: "ProvisionedThroughputExceededException (simulated throttling window)".into(),
        })
    }

    /// Notes an AwaitDelivery token that arrives after a newer attempt's was stored (the
    /// simulator's tokens are `tok-<execution>-<attempt>`, numbered in the order the
    /// attempts began): the race a fenced token must refuse.
    async fn late_token(&self, id: &OrderId, token: &str) {
        let number = |token: &str| token.rsplit('-').next()?.parse::<u64>().ok();
        let Ok(Some(order)) = self.inner.get_order(id).await else {
            return;
        };
        let stored = order.task_token.as_deref();
        if let (Some(stored), Some(newer), Some(this)) =
            (stored, stored.and_then(number), number(token))
        {
            if newer > this {
                self.shared.note(
                    id,
                    Trace::Note(format!(
                        "  ledger: task token {token} arrives after the newer {stored} was stored"
                    )),
                );
            }
        }
    }

    /// The order as it stands, for the world's own checks: never fails for a fault.
    pub async fn look(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.inner.get_order(id).await
    }

    /// The order's outbox as the table holds it, for the world's own checks: never fails.
    pub async fn look_at_outbox(&self, id: &OrderId) -> Result<Vec<OrderEvent>, StoreError> {
        self.inner.outbox(id).await
    }
}

impl Ledger for Audited {
    async fn place_order(
        &self,
        caller: &order_core::callers::Principal,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "place_order")?;
        let placed = self
            .inner
            .place_order(caller, idempotency_key, order, request_hash)
            .await;
        if let Ok(Placement::Created(record) | Placement::Replayed(record)) = &placed {
            self.observe(&record.order_id).await;
        }
        placed
    }

    async fn get_order(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(id), "get_order")?;
        self.inner.get_order(id).await
    }

    async fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(id), "get_order_with_steps")?;
        self.inner.get_order_with_steps(id).await
    }

    async fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "orders_in_status")?;
        self.inner.orders_in_status(status, before, limit).await
    }

    async fn orders_in_status_after(
        &self,
        status: OrderStatus,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "orders_in_status_after")?;
        self.inner
            .orders_in_status_after(status, after, before, limit)
            .await
    }

    async fn reconcile_cursor(&self, name: &str) -> Result<Option<IndexPosition>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "reconcile_cursor")?;
        self.inner.reconcile_cursor(name).await
    }

    async fn set_reconcile_cursor(
        &self,
        name: &str,
        position: Option<&IndexPosition>,
    ) -> Result<(), StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "set_reconcile_cursor")?;
        self.inner.set_reconcile_cursor(name, position).await
    }

    async fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "orders_of_merchant")?;
        self.inner
            .orders_of_merchant(merchant_id, since, limit)
            .await
    }

    async fn transition(
        &self,
        id: &OrderId,
        change: Transition<'_>,
    ) -> Result<OrderRecord, StoreError> {
        self.shared.recovery_point().await;
        self.maybe_pause().await;
        self.throttled(Some(id), "transition")?;
        let written = self.inner.transition(id, change).await;
        self.observe(id).await;
        written
    }

    async fn cancel(&self, id: &OrderId) -> Result<Cancellation, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(id), "cancel")?;
        let cancelled = self.inner.cancel(id).await;
        self.observe(id).await;
        cancelled
    }

    async fn open_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> Result<(OrderRecord, StepStart), StoreError> {
        self.shared.recovery_point().await;
        self.fault(id, "open_step")?;
        let opened = self.inner.open_step(id, step).await;
        self.observe(id).await;
        opened
    }

    async fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: References,
        transition: Option<Transition<'_>>,
    ) -> Result<StepRecord, StoreError> {
        self.shared.recovery_point().await;
        self.maybe_pause().await;
        self.fault(&attempt.order_id, "succeed_step")?;
        let written = self
            .inner
            .succeed_step(attempt, references, transition)
            .await;
        self.observe(&attempt.order_id).await;
        written
    }

    async fn fail_step(
        &self,
        attempt: &StepRecord,
        error: &ActivityError,
    ) -> Result<(), StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(&attempt.order_id), "fail_step")?;
        let written = self.inner.fail_step(attempt, error).await;
        self.observe(&attempt.order_id).await;
        written
    }

    async fn store_task_token(
        &self,
        id: &OrderId,
        token: &TaskToken<'_>,
    ) -> Result<TokenStored, StoreError> {
        self.shared.recovery_point().await;
        self.maybe_pause().await;
        self.throttled(Some(id), "store_task_token")?;
        self.late_token(id, token.token).await;
        let stored = self.inner.store_task_token(id, token).await;
        match &stored {
            Ok(TokenStored::Waiting) => self.shared.note(
                id,
                Trace::Note(format!(
                    "  ledger: task token {} stored on the order (fence {:?})",
                    token.token,
                    token.fence(id)
                )),
            ),
            Ok(TokenStored::Superseded) => {
                self.shared
                    .count("ledger: a late AwaitDelivery copy's token was refused");
                self.shared.note(
                    id,
                    Trace::Note(format!(
                        "  ledger: task token {} refused, a later attempt's is stored (fence {:?})",
                        token.token,
                        token.fence(id)
                    )),
                )
            }
            _ => {}
        }
        self.observe(id).await;
        stored
    }

    async fn record_delivery(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        event: &OrderEvent,
    ) -> Result<DeliveryRecorded, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(id), "record_delivery")?;
        let recorded = self.inner.record_delivery(id, delivery, event).await;
        self.observe(id).await;
        recorded
    }

    async fn park(
        &self,
        read: &OrderRecord,
        reason: &str,
        event: &OrderEvent,
    ) -> Result<(), StoreError> {
        let id = &read.order_id;
        self.shared.recovery_point().await;
        self.throttled(Some(id), "park")?;
        let parked = self.inner.park(read, reason, event).await;
        self.observe(id).await;
        parked
    }

    async fn dead_letter_sent(&self, id: &OrderId) -> Result<(), StoreError> {
        self.throttled(Some(id), "dead_letter_sent")?;
        self.inner.dead_letter_sent(id).await
    }

    async fn outbox(&self, id: &OrderId) -> Result<Vec<OrderEvent>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(Some(id), "outbox")?;
        self.inner.outbox(id).await
    }

    async fn claim_execution(
        &self,
        id: &OrderId,
        claim: &order_core::store::Claim<'_>,
    ) -> Result<(), StoreError> {
        self.shared.recovery_point().await;
        self.maybe_pause().await;
        self.throttled(Some(id), "claim_execution")?;
        let claimed = self.inner.claim_execution(id, claim).await;
        if claimed.is_ok() {
            self.shared.owner_changed(id);
            self.shared.note(
                id,
                Trace::Note(format!(
                    "  ledger: execution {} claimed the order",
                    claim.arn
                )),
            );
        }
        claimed
    }

    async fn find_by_reference(
        &self,
        reference: Reference,
        value: &str,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "find_by_reference")?;
        self.inner.find_by_reference(reference, value).await
    }

    async fn count_in_status(&self, status: OrderStatus) -> Result<usize, StoreError> {
        self.shared.recovery_point().await;
        self.throttled(None, "count_in_status")?;
        self.inner.count_in_status(status).await
    }
}
