//! The ledger in memory: the same operations and the same conditions as the DynamoDB
//! table (the contract suite runs on both), for unit tests of the saga and simulation.
//!
//! Each operation takes one lock for its whole read-check-write, so what DynamoDB does in
//! one conditional write or transaction happens here at once too, and a condition that
//! fails changes nothing. Courier events do not expire (DynamoDB's TTL deletes late and never
//! within a test either); an idempotency key expires when it is read after its
//! `expires_at`, as the table's condition makes it.
//!
//! The times it stamps (`updated_at`, which the reconciler's grace period reads, a step's
//! times, a parked mark) come from the real clock, or from the [`Clock`] it is given
//! ([`MemoryStore::with_clock`]): the deterministic simulator gives it the simulated one.

use super::idempotency::IdempotencyRecord;
use super::keys::{merchant_index_values, order_pk, status_index_values, step_sk};
use super::{
    cancel_refused, delivery_refused, findable, late_delivery_reason, token_refused, AuditEntry,
    AuditRecord, Cancellation, Delivery, DeliveryRecorded, DeliveryRefusal, IndexPosition, Ledger,
    OrderRecord, Parked, Placement, Reference, References, StepRecord, StepStart, StepStatus,
    StoreError, TaskToken, TokenStored, Transition,
};
use crate::order::{Order, OrderId};
use crate::status::OrderStatus;
use crate::steps::{ARRANGE_SHIPMENT, AWAIT_DELIVERY, CANCEL_SHIPMENT};
use crate::ActivityError;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Where [`MemoryStore`] reads the time it stamps on what it writes. Any
/// `Fn() -> DateTime<Utc>` is one.
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> DateTime<Utc>;
}

impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// The clock a [`MemoryStore`] was given, or none: the real one.
#[derive(Default)]
struct Stamps(Option<Box<dyn Clock>>);

impl Stamps {
    /// The time now, from the clock given or the real one.
    fn instant(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(clock) => clock.now(),
            None => Utc::now(),
        }
    }

    /// The time as the ledger writes it: RFC 3339, milliseconds, UTC.
    fn now(&self) -> String {
        self.instant().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl std::fmt::Debug for Stamps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Stamps(given clock)"),
            None => f.write_str("Stamps(real clock)"),
        }
    }
}

/// The ledger in memory. Cheap to create; share it by reference (it is `Sync`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    orders: BTreeMap<OrderId, OrderRecord>,
    /// By order, then by step name: the order DynamoDB keeps them in (`STEP#<name>`).
    steps: BTreeMap<OrderId, BTreeMap<String, StepRecord>>,
    /// By caller and key: each caller's keys are its own.
    keys: HashMap<(crate::callers::Principal, String), IdempotencyRecord>,
    /// The callers' scopes, by principal, and the changes to them, oldest first.
    callers: BTreeMap<crate::callers::Principal, super::CallerRecord>,
    caller_changes: Vec<super::CallerChange>,
    /// The courier events recorded, by order and event id (per order, as the table keys
    /// them).
    courier_events: BTreeSet<(OrderId, String)>,
    /// A partner reference -> the orders whose steps recorded it.
    lookups: BTreeMap<(Reference, String), BTreeSet<OrderId>>,
    /// By order: its operator actions, oldest first.
    audits: BTreeMap<OrderId, Vec<AuditRecord>>,
    /// By reconciler name: where its last run stopped.
    reconcile_cursors: HashMap<String, IndexPosition>,
    /// By order, then by event id: the outbox items its changes wrote (`OUTBOX#<id>`).
    outbox: BTreeMap<OrderId, BTreeMap<String, crate::events::OrderEvent>>,
    /// A write armed to slip in just before the next move to a status (a test seam for
    /// the races a real deployment meets at random; see `cancel_before_next_move_to`).
    armed: Option<(OrderStatus, Armed)>,
    /// Where the times written come from.
    clock: Stamps,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty ledger that stamps the times it writes from `clock` instead of the real
    /// clock (a simulated clock keeps a simulation's `updated_at`, and with it what the
    /// reconciler's grace period picks, the same on every run).
    pub fn with_clock(clock: impl Clock + 'static) -> MemoryStore {
        let store = MemoryStore::default();
        store.tables().clock = Stamps(Some(Box::new(clock)));
        store
    }

    /// Arms a cancel of the order that runs just before the next move of any order to
    /// `status`, as if an operator's cancel had won the race with that status change:
    /// the change then finds the order moved on and must read it again.
    pub fn cancel_before_next_move_to(&self, status: OrderStatus) {
        self.tables().armed = Some((status, Armed::Cancel));
    }

    /// Arms a move of the order from `from` to `to` that runs just before the next move of
    /// any order to `status`, as if another writer (a workflow step) had made it first:
    /// the move to `status` then finds the order moved on.
    pub fn move_before_next_move_to(
        &self,
        status: OrderStatus,
        from: OrderStatus,
        to: OrderStatus,
    ) {
        self.tables().armed = Some((status, Armed::Move { from, to }));
    }

    /// Records `arn` as the order's execution unconditionally, as data written before
    /// executions were claimed has it (tests of recovery only).
    #[cfg(test)]
    pub(crate) fn set_execution_arn(&self, id: &OrderId, arn: &str) -> Result<(), StoreError> {
        self.tables().update_order(id, |order| {
            order.execution_arn = Some(arn.to_owned());
            order.version += 1;
        })
    }

    /// The tables, also after a thread panicked while holding them (a test's assertion):
    /// every write below is complete before it can panic, so the data stays whole.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The orders an index holds: `index_key` gives an order's sort key in the index, or
    /// `None` when the query leaves it out. In index order, at most `limit`.
    fn listed(
        &self,
        limit: usize,
        index_key: impl Fn(&OrderRecord) -> Option<String>,
    ) -> Vec<OrderRecord> {
        let mut found: Vec<(String, OrderRecord)> = self
            .tables()
            .orders
            .values()
            .filter_map(|order| index_key(order).map(|key| (key, order.clone())))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
            .into_iter()
            .take(limit)
            .map(|(_, order)| order)
            .collect()
    }

    /// Every order, in id order: for checks over a whole run (simulation invariants).
    pub fn all_orders(&self) -> Vec<OrderRecord> {
        self.tables().orders.values().cloned().collect()
    }
}

impl Tables {
    /// Writes the outbox item of `event` (as a Put would: the same event id, the same item).
    fn write_outbox(&mut self, event: &crate::events::OrderEvent) {
        if let Some(id) = OrderId::parse(&event.detail.order_id) {
            self.outbox
                .entry(id)
                .or_default()
                .insert(event.detail.event_id.clone(), event.clone());
        }
    }

    /// The time as the ledger writes it, from its clock.
    fn now(&self) -> String {
        self.clock.now()
    }

    fn order(&self, id: &OrderId) -> Result<&OrderRecord, StoreError> {
        self.orders
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// The order moved from `from` to `to` as DynamoDB's conditional update would write
    /// it, without storing it yet.
    fn moved(&self, id: &OrderId, transition: Transition<'_>) -> Result<OrderRecord, StoreError> {
        let Transition {
            from, to, failure, ..
        } = transition;
        from.check_transition(to)
            .map_err(|source| StoreError::IllegalTransition {
                order_id: id.clone(),
                source,
            })?;
        let mut order = self.order(id)?.clone();
        if order.status != from {
            return Err(StoreError::Conflict {
                order_id: id.clone(),
                expected: from,
                actual: order.status,
            });
        }
        order.status = to;
        order.version += 1;
        order.updated_at = self.now();
        if let Some(failure) = failure {
            order.failure = Some(failure.clone());
        }
        Ok(order)
    }

    /// What a cancel does, as DynamoDB's conditional writes do it: an order on which
    /// nothing has begun ([`Tables::nothing_begun`]) ends CANCELLED at once, with its
    /// `Order Cancelled` event; any other cancellable order moves to CANCELLING; says why
    /// any other order stays as it is.
    fn cancel(&mut self, id: &OrderId) -> Result<Cancellation, StoreError> {
        let order = self.order(id)?.clone();
        if !order.status.is_cancellable() {
            return Ok(cancel_refused(order));
        }
        if self.nothing_begun(&order) {
            let event = crate::events::OrderEvent::after_change(
                &order,
                OrderStatus::Cancelled,
                None,
                &References::new(),
            );
            let ended = self.moved(
                id,
                Transition::new(OrderStatus::Accepted, OrderStatus::Cancelled),
            )?;
            if let Some(event) = event {
                self.write_outbox(&event.stamped(&ended.updated_at));
            }
            self.orders.insert(id.clone(), ended.clone());
            return Ok(Cancellation::Started(ended));
        }
        let cancelled = self.moved(id, Transition::new(order.status, OrderStatus::Cancelling))?;
        self.orders.insert(id.clone(), cancelled.clone());
        Ok(Cancellation::Started(cancelled))
    }

    /// Whether nothing has begun on the order: ACCEPTED, no execution recorded (an
    /// execution is recorded before it starts), no step begun.
    fn nothing_begun(&self, order: &OrderRecord) -> bool {
        order.status == OrderStatus::Accepted
            && order.execution_arn.is_none()
            && self
                .steps
                .get(&order.order_id)
                .is_none_or(BTreeMap::is_empty)
    }

    /// Runs the write armed for a move to `to`, if any.
    fn run_armed(&mut self, id: &OrderId, to: OrderStatus) -> Result<(), StoreError> {
        match self.armed.take() {
            Some((status, Armed::Cancel)) if status == to => self.cancel(id).map(drop),
            Some((status, Armed::Move { from, to: next })) if status == to => {
                let moved = self.moved(id, Transition::new(from, next))?;
                self.orders.insert(id.clone(), moved);
                Ok(())
            }
            other => {
                self.armed = other;
                Ok(())
            }
        }
    }

    fn step(&self, id: &OrderId, step: &str) -> Option<&StepRecord> {
        self.steps.get(id).and_then(|steps| steps.get(step))
    }

    fn put_step(&mut self, record: StepRecord) {
        self.steps
            .entry(record.order_id.clone())
            .or_default()
            .insert(record.step.clone(), record);
    }

    fn update_order<T>(
        &mut self,
        id: &OrderId,
        change: impl FnOnce(&mut OrderRecord) -> T,
    ) -> Result<T, StoreError> {
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        Ok(change(order))
    }
}

/// A write armed to run just before the next move to a status.
#[derive(Debug, Clone, Copy)]
enum Armed {
    /// A cancel of the order being moved.
    Cancel,
    /// A move of the order being moved.
    Move { from: OrderStatus, to: OrderStatus },
}

/// The by-status index's sort key of an order, as DynamoDB's index holds it.
fn status_sort_key(order: &OrderRecord) -> String {
    status_index_values(order.status, &order.updated_at, &order.order_id).1
}

/// The by-merchant index's sort key of an order.
fn merchant_sort_key(order: &OrderRecord) -> String {
    merchant_index_values(&order.order.merchant_id, &order.created_at, &order.order_id).1
}

impl Ledger for MemoryStore {
    async fn place_order(
        &self,
        caller: &crate::callers::Principal,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        let mut tables = self.tables();
        let placed_at = tables.clock.instant().timestamp();
        let key = (caller.clone(), idempotency_key.to_owned());
        // A key past its expiry is taken over, as the table's condition does.
        if let Some(existing) = tables.keys.get(&key).filter(|k| k.expires_at > placed_at) {
            if existing.request_hash != request_hash {
                return Ok(Placement::KeyReused {
                    order_id: existing.order_id.clone(),
                });
            }
            let id = existing.order_id.clone();
            return tables.order(&id).cloned().map(Placement::Replayed);
        }
        let mut record = OrderRecord::accepted_at(order, request_hash, tables.now());
        record.placed_by = Some(caller.clone());
        let (order_id, created_at) = (record.order_id.clone(), record.created_at.clone());
        let expires_at = placed_at + super::idempotency::IDEMPOTENCY_TTL_SECONDS;
        tables.keys.insert(
            key,
            IdempotencyRecord {
                order_id: order_id.clone(),
                request_hash: request_hash.to_owned(),
                created_at,
                expires_at,
            },
        );
        tables.write_outbox(&crate::events::OrderEvent::accepted(&record));
        tables.orders.insert(order_id, record.clone());
        Ok(Placement::Created(record))
    }

    async fn get_order(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        Ok(self.tables().orders.get(id).cloned())
    }

    async fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError> {
        let tables = self.tables();
        let Some(order) = tables.orders.get(id).cloned() else {
            return Ok(None);
        };
        let mut steps: Vec<StepRecord> = tables
            .steps
            .get(id)
            .map(|steps| steps.values().cloned().collect())
            .unwrap_or_default();
        steps.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        Ok(Some((order, steps)))
    }

    async fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.listed(limit, |order| {
            let key = status_sort_key(order);
            let kept = order.status == status && before.is_none_or(|before| key.as_str() < before);
            kept.then_some(key)
        }))
    }

    async fn orders_in_status_after(
        &self,
        status: OrderStatus,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.listed(limit, |order| {
            let key = status_sort_key(order);
            let kept = order.status == status
                && key.as_str() > after
                && before.is_none_or(|before| key.as_str() < before);
            kept.then_some(key)
        }))
    }

    async fn reconcile_cursor(&self, name: &str) -> Result<Option<IndexPosition>, StoreError> {
        Ok(self.tables().reconcile_cursors.get(name).cloned())
    }

    async fn set_reconcile_cursor(
        &self,
        name: &str,
        position: Option<&IndexPosition>,
    ) -> Result<(), StoreError> {
        let mut tables = self.tables();
        match position {
            Some(position) => tables
                .reconcile_cursors
                .insert(name.to_owned(), position.clone()),
            None => tables.reconcile_cursors.remove(name),
        };
        Ok(())
    }

    async fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.listed(limit, |order| {
            let key = merchant_sort_key(order);
            let kept = order.order.merchant_id == merchant_id
                && since.is_none_or(|since| key.as_str() >= since);
            kept.then_some(key)
        }))
    }

    async fn transition(
        &self,
        id: &OrderId,
        change: Transition<'_>,
    ) -> Result<OrderRecord, StoreError> {
        let mut tables = self.tables();
        tables.run_armed(id, change.to)?;
        let moved = tables.moved(id, change)?;
        tables.orders.insert(id.clone(), moved.clone());
        if let Some(event) = change.announce {
            tables.write_outbox(&event.clone().stamped(&moved.updated_at));
        }
        Ok(moved)
    }

    async fn cancel(&self, id: &OrderId) -> Result<Cancellation, StoreError> {
        self.tables().cancel(id)
    }

    async fn open_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> Result<(OrderRecord, StepStart), StoreError> {
        let mut tables = self.tables();
        let order = tables.order(id)?.clone();
        let now = tables.now();
        let record = match tables.step(id, step) {
            Some(record) if record.status == StepStatus::Succeeded => {
                return Ok((order, StepStart::AlreadySucceeded(record.clone())));
            }
            Some(record) => StepRecord {
                status: StepStatus::Started,
                attempts: record.attempts + 1,
                updated_at: now,
                ..record.clone()
            },
            None => StepRecord {
                order_id: id.clone(),
                step: step.to_owned(),
                status: StepStatus::Started,
                attempts: 1,
                started_at: now.clone(),
                updated_at: now,
                finished_at: None,
                references: References::new(),
                error: None,
                error_message: None,
            },
        };
        tables.put_step(record.clone());
        Ok((order, StepStart::Started(record)))
    }

    async fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: References,
        transition: Option<Transition<'_>>,
    ) -> Result<StepRecord, StoreError> {
        let (id, step) = (&attempt.order_id, attempt.step.as_str());
        let mut tables = self.tables();
        let moved = transition.map(|t| tables.moved(id, t));
        let record = match tables.step(id, step) {
            Some(record) if record.status == StepStatus::Started => record.clone(),
            // A concurrent run of the same step finished first: its result stands.
            Some(record) if record.status == StepStatus::Succeeded => return Ok(record.clone()),
            None => {
                return Err(StoreError::Corrupt {
                    key: format!("{}/{}", order_pk(id), step_sk(step)),
                    message: "step item is missing".into(),
                })
            }
            Some(_) => {
                return Err(match moved {
                    Some(Err(conflict @ StoreError::Conflict { .. })) => conflict,
                    _ => StoreError::Unavailable {
                        operation: "succeed step",
                        message: format!("step {step} of order {id} is not under way"),
                    },
                })
            }
        };
        let moved = moved.transpose()?;
        let now = tables.now();
        for lookup in findable(step, &references) {
            tables.lookups.entry(lookup).or_default().insert(id.clone());
        }
        let record = record.succeeded(references, now.clone());
        if let Some(moved) = moved {
            tables.orders.insert(id.clone(), moved);
        }
        if let Some(event) = transition.and_then(|t| t.announce) {
            tables.write_outbox(&event.clone().stamped(&now));
        }
        tables.put_step(record.clone());
        // As the table answers: the attempt as begun, succeeded (a later attempt of a
        // concurrent run is counted in the ledger, not in this answer).
        Ok(StepRecord {
            attempts: attempt.attempts,
            ..record
        })
    }

    async fn fail_step(
        &self,
        attempt: &StepRecord,
        error: &ActivityError,
    ) -> Result<(), StoreError> {
        let (id, step) = (&attempt.order_id, attempt.step.as_str());
        let mut tables = self.tables();
        let record = tables
            .step(id, step)
            .cloned()
            .unwrap_or_else(|| attempt.clone());
        if record.status == StepStatus::Succeeded {
            // A concurrent run of the step succeeded first: its success stands.
            return Ok(());
        }
        let now = tables.now();
        // A later attempt that began meanwhile is still under way.
        let status = match record.attempts > attempt.attempts {
            true => StepStatus::Started,
            false => StepStatus::Failed,
        };
        tables.put_step(StepRecord {
            status,
            error: Some(error.name.as_str().to_owned()),
            error_message: Some(error.message.clone()),
            finished_at: Some(now.clone()),
            updated_at: now,
            ..record
        });
        Ok(())
    }

    async fn store_task_token(
        &self,
        id: &OrderId,
        token: &TaskToken<'_>,
    ) -> Result<TokenStored, StoreError> {
        let mut tables = self.tables();
        let order = tables.order(id)?.clone();
        if order.status != OrderStatus::Shipped {
            return token_refused(order);
        }
        let fence = token.fence(id);
        let newer = match (fence, order.task_fence) {
            (_, None) => true,
            (Some(fence), Some(stored)) => stored <= fence,
            (None, Some(_)) => false,
        };
        if !newer {
            return Ok(TokenStored::Superseded);
        }
        let now = tables.now();
        tables.update_order(id, |order| {
            order.task_token = Some(token.token.to_owned());
            if fence.is_some() {
                order.task_fence = fence;
            }
            order.updated_at = now;
        })?;
        Ok(TokenStored::Waiting)
    }

    async fn record_delivery(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        event: &crate::events::OrderEvent,
    ) -> Result<DeliveryRecorded, StoreError> {
        let mut tables = self.tables();
        let status = tables.order(id)?.status;
        // A rollback that has not cancelled the shipment yet is stopped by the delivery.
        let cancelled_shipment = tables
            .step(id, CANCEL_SHIPMENT.name)
            .is_some_and(|step| step.status == StepStatus::Succeeded);
        let from = match status {
            OrderStatus::Compensating if !cancelled_shipment => OrderStatus::Compensating,
            _ => OrderStatus::Shipped,
        };
        let transition = Transition::new(from, OrderStatus::Delivered);
        let moved = match tables.moved(id, transition) {
            Ok(moved) => Some(moved),
            Err(StoreError::Conflict { .. }) => None,
            Err(other) => return Err(other),
        };
        let booked = tables
            .step(id, ARRANGE_SHIPMENT.name)
            .and_then(|record| record.references.get("shipment_id"));
        let refusal = DeliveryRefusal {
            order_not_shipped: moved.is_none(),
            wrong_shipment: booked != Some(&delivery.shipment_id),
            seen_before: (tables.courier_events).contains(&(id.clone(), delivery.event_id.clone())),
        };
        let Some(mut moved) = moved.filter(|_| !(refusal.wrong_shipment || refusal.seen_before))
        else {
            let order = tables.order(id)?.clone();
            let late = cancelled_shipment
                && !(refusal.wrong_shipment || refusal.seen_before)
                && order.delivery.is_none()
                && matches!(
                    order.status,
                    OrderStatus::Compensating | OrderStatus::Failed
                );
            if !late {
                return delivery_refused(order, delivery, refusal);
            }
            // Delivered after the courier confirmed the shipment's cancellation: a fact
            // for a person, recorded with the park.
            let reason = late_delivery_reason(&order, delivery);
            let needs_operator = crate::events::OrderEvent::needs_operator(&order, &reason);
            let at = tables.now();
            let parked = tables.update_order(id, |order| {
                order.delivery = Some(delivery.clone());
                order.parked = Some(Parked {
                    at,
                    reason,
                    letter_pending: true,
                });
                order.clone()
            })?;
            tables
                .courier_events
                .insert((id.clone(), delivery.event_id.clone()));
            tables.write_outbox(&needs_operator);
            return Ok(DeliveryRecorded::AfterRollback(parked));
        };
        moved.delivery = Some(delivery.clone());
        let now = tables.now();
        let previous = tables.step(id, AWAIT_DELIVERY.name).cloned();
        let step = StepRecord {
            order_id: id.clone(),
            step: AWAIT_DELIVERY.name.to_owned(),
            status: StepStatus::Succeeded,
            attempts: previous.as_ref().map_or(1, |p| p.attempts),
            started_at: previous
                .as_ref()
                .map_or_else(|| now.clone(), |p| p.started_at.clone()),
            updated_at: now.clone(),
            finished_at: Some(now),
            references: References::from([
                ("event_id".to_owned(), delivery.event_id.clone()),
                ("shipment_id".to_owned(), delivery.shipment_id.clone()),
                ("delivered_at".to_owned(), delivery.delivered_at.clone()),
            ]),
            error: previous.as_ref().and_then(|p| p.error.clone()),
            error_message: previous.and_then(|p| p.error_message),
        };
        tables.put_step(step);
        tables
            .courier_events
            .insert((id.clone(), delivery.event_id.clone()));
        tables.orders.insert(id.clone(), moved.clone());
        tables.write_outbox(event);
        Ok(DeliveryRecorded::Now(moved))
    }

    async fn park(
        &self,
        read: &OrderRecord,
        reason: &str,
        event: &crate::events::OrderEvent,
    ) -> Result<(), StoreError> {
        let id = &read.order_id;
        let mut tables = self.tables();
        let now = tables.order(id)?;
        if now.version != read.version || now.parked.is_some() {
            return Err(StoreError::Changed {
                order_id: id.clone(),
                read_version: read.version,
            });
        }
        let parked = Parked {
            at: tables.now(),
            reason: reason.to_owned(),
            letter_pending: true,
        };
        tables.update_order(id, |order| order.parked = Some(parked))?;
        tables.write_outbox(event);
        Ok(())
    }

    async fn dead_letter_sent(&self, id: &OrderId) -> Result<(), StoreError> {
        let mut tables = self.tables();
        if tables.orders.contains_key(id) {
            tables.update_order(id, |order| {
                if let Some(parked) = order.parked.as_mut() {
                    parked.letter_pending = false;
                }
            })?;
        }
        Ok(())
    }

    async fn outbox(&self, id: &OrderId) -> Result<Vec<crate::events::OrderEvent>, StoreError> {
        let tables = self.tables();
        Ok(tables
            .outbox
            .get(id)
            .map(|events| events.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn claim_execution(
        &self,
        id: &OrderId,
        claim: &super::Claim<'_>,
    ) -> Result<(), StoreError> {
        let mut tables = self.tables();
        let order = tables.order(id)?.clone();
        if order.status.is_final() && !claim.undoes(order.status) {
            return Err(StoreError::Conflict {
                order_id: id.clone(),
                expected: claim.read_status,
                actual: order.status,
            });
        }
        if order.resumes != claim.read_resumes || order.execution_arn.as_deref() != claim.read_arn {
            return Err(StoreError::Claimed {
                order_id: id.clone(),
                execution_arn: order.execution_arn,
            });
        }
        tables.update_order(id, |order| {
            order.execution_arn = Some(claim.arn.to_owned());
            order.resumes = claim.resumes;
            order.parked = None;
            order.version += 1;
        })
    }

    async fn find_by_reference(
        &self,
        reference: Reference,
        value: &str,
    ) -> Result<Vec<OrderId>, StoreError> {
        let tables = self.tables();
        let found = tables.lookups.get(&(reference, value.to_owned()));
        Ok(found.into_iter().flatten().cloned().collect())
    }

    async fn count_in_status(&self, status: OrderStatus) -> Result<usize, StoreError> {
        let tables = self.tables();
        Ok(tables
            .orders
            .values()
            .filter(|o| o.status == status)
            .count())
    }
}

impl super::Retention for MemoryStore {
    async fn anonymise(&self, read: &OrderRecord) -> Result<(), StoreError> {
        let mut tables = self.tables();
        let at = tables.now();
        let id = &read.order_id;
        let current = tables.order(id)?;
        let unchanged = current.version == read.version
            && current.status.is_final()
            && current.anonymised_at.is_none();
        if !unchanged {
            return Err(StoreError::Changed {
                order_id: id.clone(),
                read_version: read.version,
            });
        }
        let anonymised = super::retention::anonymised(current, &at);
        tables.orders.insert(id.clone(), anonymised);
        Ok(())
    }
}

impl super::AuditTrail for MemoryStore {
    async fn begin_audit(
        &self,
        id: &OrderId,
        entry: &AuditEntry<'_>,
    ) -> Result<AuditRecord, StoreError> {
        let mut tables = self.tables();
        tables.order(id)?;
        let at = tables.now();
        let trail = tables.audits.entry(id.clone()).or_default();
        let key = super::keys::audit_sk(&at, &format!("{:08}", trail.len()));
        let record = AuditRecord::begun(id, entry, at, key);
        trail.push(record.clone());
        Ok(record)
    }

    async fn finish_audit(&self, begun: &AuditRecord, outcome: &str) -> Result<(), StoreError> {
        let mut tables = self.tables();
        let at = tables.now();
        let found = tables
            .audits
            .get_mut(&begun.order_id)
            .and_then(|trail| trail.iter_mut().find(|r| r.key == begun.key));
        if let Some(record) = found.filter(|r| r.outcome.is_none()) {
            record.outcome = Some(outcome.to_owned());
            record.finished_at = Some(at);
        }
        Ok(())
    }

    async fn audit_trail(&self, id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.tables().audits.get(id).cloned().unwrap_or_default())
    }
}

impl super::Callers for MemoryStore {
    async fn caller_scope(
        &self,
        principal: &crate::callers::Principal,
    ) -> Result<Option<crate::callers::Scope>, StoreError> {
        Ok(self
            .tables()
            .callers
            .get(principal)
            .map(|record| record.scope.clone()))
    }

    async fn set_caller_scope(
        &self,
        principal: &crate::callers::Principal,
        scope: &crate::callers::Scope,
        by: &super::Actor<'_>,
    ) -> Result<super::CallerChange, StoreError> {
        let mut tables = self.tables();
        let at = tables.now();
        let before = tables.callers.get(principal).map(|b| b.scope.clone());
        let change = super::CallerChange {
            principal: principal.clone(),
            at: at.clone(),
            who: by.identity.to_owned(),
            label: by.label.map(str::to_owned),
            scope: Some(scope.clone()),
            before,
        };
        tables.callers.insert(
            principal.clone(),
            super::CallerRecord {
                principal: principal.clone(),
                scope: scope.clone(),
                updated_at: at,
                updated_by: by.identity.to_owned(),
                updated_by_label: by.label.map(str::to_owned),
            },
        );
        tables.caller_changes.push(change.clone());
        Ok(change)
    }

    async fn remove_caller_scope(
        &self,
        principal: &crate::callers::Principal,
        by: &super::Actor<'_>,
    ) -> Result<Option<super::CallerChange>, StoreError> {
        let mut tables = self.tables();
        let Some(before) = tables.callers.remove(principal) else {
            return Ok(None);
        };
        let change = super::CallerChange {
            principal: principal.clone(),
            at: tables.now(),
            who: by.identity.to_owned(),
            label: by.label.map(str::to_owned),
            scope: None,
            before: Some(before.scope),
        };
        tables.caller_changes.push(change.clone());
        Ok(Some(change))
    }

    async fn callers(&self) -> Result<Vec<super::CallerRecord>, StoreError> {
        Ok(self.tables().callers.values().cloned().collect())
    }

    async fn caller_changes(&self, limit: usize) -> Result<Vec<super::CallerChange>, StoreError> {
        let tables = self.tables();
        Ok(tables
            .caller_changes
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod contract {
    crate::ledger_contract!(crate::store::MemoryStore::new());
}
