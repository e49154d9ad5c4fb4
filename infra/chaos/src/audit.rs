//! The audit: what the order table, the partner ledger and the dead-letter queue say
//! about every order of the run, and the invariants that must hold whatever failed:
//!
//! 1. every accepted order ended (COMPLETED, REJECTED, CANCELLED, or FAILED with every
//!    compensation of the steps it started done), or is in the dead-letter queue with a
//!    reason: none lost;
//! 2. no partner effect happened twice (a second reservation, charge, shipment,
//!    deactivation, return label or message, or more terminals than ordered), and (2b)
//!    every FAILED or CANCELLED order is undone at the partners (stock released, payment
//!    refunded, terminals deprovisioned, shipment cancelled), a REJECTED one never
//!    reached them;
//! 3. an Idempotency-Key never made a second order (re-sent: the same order back, or 422
//!    for another body; the by-merchant index lists one order per merchant, and the
//!    partners saw no order of the run's merchants that the API did not answer with);
//! 4. every COMPLETED order took its full effect (reserved, charged unless a
//!    replacement, every terminal provisioned, delivered).

use crate::env::Clients;
use crate::faults::{Ledger, OrderLedger};
use crate::load::{Answer, LoadOutcome, Probe};
use crate::ChaosError;
use order_core::dead_letters::DeadLetterBody;
use order_core::steps::{self, StepRole};
use order_core::store::dynamo::order_with_steps;
use order_core::store::{OrderRecord, StepRecord, StepStatus, StoreError};
use order_core::{ErrorName, FailureKind, OrderKind, OrderStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Everything known about one order of the run.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub order_id: String,
    pub merchant_id: String,
    pub kind: OrderKind,
    pub quantity: u32,
    /// A 202 named it; false for an order found only through its merchant.
    pub accepted: bool,
    pub record: Option<OrderRecord>,
    pub steps: Vec<StepRecord>,
    /// Every order the table holds for its merchant (each order has a merchant, and so
    /// an Idempotency-Key, of its own).
    pub merchant_orders: Vec<String>,
    /// What the by-merchant index lists for its merchant, where the audit asked it (keys
    /// sent more than once, requests never answered).
    pub index_orders: Option<Vec<String>>,
    pub ledger: OrderLedger,
    pub dead_letters: Vec<DeadLetterBody>,
    /// An execution of it still ran when the run stopped waiting.
    pub running: bool,
    /// The event ids its changes wrote to the outbox (`OUTBOX#` items).
    pub outbox: Vec<String>,
    /// The event ids that reached the bus (the stack's tap queue), each with how many
    /// times it arrived; `None` when the run did not read the tap queue.
    pub delivered: Option<BTreeMap<String, usize>>,
}

/// Where an order ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Completed,
    Failed,
    Rejected,
    Cancelled,
    /// Not finished, with a dead letter saying why: in front of an operator.
    DeadLettered,
    /// Not finished and still running when the run stopped waiting.
    Running,
    /// Not finished, not running, no dead letter: lost.
    Unfinished,
    /// Accepted, but not in the order table at all: lost.
    Missing,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::Rejected,
        Outcome::Cancelled,
        Outcome::DeadLettered,
        Outcome::Running,
        Outcome::Unfinished,
        Outcome::Missing,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "COMPLETED",
            Outcome::Failed => "FAILED (rolled back)",
            Outcome::Rejected => "REJECTED",
            Outcome::Cancelled => "CANCELLED",
            Outcome::DeadLettered => "in the DLQ with a reason",
            Outcome::Running => "still running at the deadline",
            Outcome::Unfinished => "LOST: unfinished, no DLQ message",
            Outcome::Missing => "LOST: not in the order table",
        }
    }
}

impl OrderFacts {
    pub fn outcome(&self) -> Outcome {
        let Some(record) = &self.record else {
            return Outcome::Missing;
        };
        match record.status {
            OrderStatus::Completed => Outcome::Completed,
            OrderStatus::Failed => Outcome::Failed,
            OrderStatus::Rejected => Outcome::Rejected,
            OrderStatus::Cancelled => Outcome::Cancelled,
            _ if self.running => Outcome::Running,
            _ if !self.dead_letters.is_empty() => Outcome::DeadLettered,
            _ => Outcome::Unfinished,
        }
    }

    fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == name)
    }

    /// What started an order that did not complete: the step and error, and the kind of
    /// that error (`order_core::errors::kind_of`). The failure the order records (the
    /// reason its rollback began, or why it was rejected or cancelled) comes first; an
    /// order with none is explained by its dead letter (the workflow's own first). A
    /// cancel that ended an order before its workflow began records no failure: it is the
    /// cancel. `None` for a completed or running order, or one with no reason anywhere.
    pub fn started_by(&self) -> Option<Origin> {
        let outcome = self.outcome();
        if matches!(
            outcome,
            Outcome::Completed | Outcome::Running | Outcome::Missing
        ) {
            return None;
        }
        let record = self.record.as_ref()?;
        let (step, error) = match (&record.failure, record.status) {
            (Some(failure), _) => (failure.step.clone(), failure.error.clone()),
            (None, OrderStatus::Cancelled) => (
                "Cancel".to_owned(),
                ErrorName::OrderCancelled.as_str().to_owned(),
            ),
            (None, _) => {
                let letter = (self.dead_letters.iter())
                    .find(|l| l.source == "workflow")
                    .or_else(|| self.dead_letters.first())?;
                (
                    letter.failed_step.clone().unwrap_or_default(),
                    letter.error.clone().unwrap_or_default(),
                )
            }
        };
        let kind = order_core::errors::kind_of(&error, &step);
        Some(Origin { step, error, kind })
    }

    /// Seconds from the order's creation to its last change, for an ended order.
    pub fn seconds_to_end(&self) -> Option<f64> {
        let record = self.record.as_ref().filter(|r| r.status.is_final())?;
        let created = chrono::DateTime::parse_from_rfc3339(&record.created_at).ok()?;
        let updated = chrono::DateTime::parse_from_rfc3339(&record.updated_at).ok()?;
        Some((updated - created).num_milliseconds() as f64 / 1000.0)
    }
}

/// The step and error that started an order's rollback, rejection, cancel or dead
/// letter, and which kind of failure that is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub step: String,
    pub error: String,
    pub kind: FailureKind,
}

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub order_id: String,
    pub what: String,
}

/// One invariant over the run's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invariant {
    pub number: &'static str,
    pub name: &'static str,
    /// How many orders (or requests) it was checked on.
    pub checked: usize,
    pub violations: Vec<Violation>,
}

impl Invariant {
    fn new(number: &'static str, name: &'static str) -> Invariant {
        Invariant {
            number,
            name,
            checked: 0,
            violations: Vec::new(),
        }
    }

    fn violated(&mut self, order_id: &str, what: String) {
        self.violations.push(Violation {
            order_id: order_id.to_owned(),
            what,
        });
    }

    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the audit found.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub facts: Vec<OrderFacts>,
    pub invariants: Vec<Invariant>,
    /// Placements that never got a 202 (after every retry): `(key, answer)`.
    pub not_accepted: Vec<(String, Answer)>,
}

impl Audit {
    pub fn outcomes(&self) -> BTreeMap<Outcome, usize> {
        let mut counts = BTreeMap::new();
        for facts in &self.facts {
            *counts.entry(facts.outcome()).or_default() += 1;
        }
        counts
    }

    /// Retries recorded in the activity ledger: attempts beyond the first, every step.
    pub fn retries(&self) -> u64 {
        self.facts
            .iter()
            .flat_map(|f| &f.steps)
            .map(|s| u64::from(s.attempts.saturating_sub(1)))
            .sum()
    }

    /// Compensation step items that succeeded.
    pub fn compensations_run(&self) -> usize {
        let compensations: BTreeSet<&str> = steps::ALL
            .iter()
            .filter(|s| s.role == StepRole::Compensation)
            .map(|s| s.name)
            .collect();
        self.facts
            .iter()
            .flat_map(|f| &f.steps)
            .filter(|s| {
                compensations.contains(s.step.as_str()) && s.status == StepStatus::Succeeded
            })
            .count()
    }

    pub fn holds(&self) -> bool {
        self.invariants.iter().all(Invariant::holds)
    }

    /// The orders that did not complete, by what started them and where they ended:
    /// `(origin, outcome) -> orders`.
    pub fn origins(&self) -> BTreeMap<(Origin, Outcome), usize> {
        let mut counts = BTreeMap::new();
        for facts in &self.facts {
            if let Some(origin) = facts.started_by() {
                *counts.entry((origin, facts.outcome())).or_default() += 1;
            }
        }
        counts
    }
}

async fn with_retries<T, F, Fut>(what: F) -> Result<T, ChaosError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match what().await {
            Err(StoreError::Unavailable { .. }) if attempt < 4 => {
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            other => return other.map_err(ChaosError::from),
        }
    }
}

/// Every order item and step item of the table, by order id.
#[derive(Debug, Default)]
struct TableContents {
    orders: BTreeMap<String, OrderRecord>,
    steps: BTreeMap<String, Vec<StepRecord>>,
    /// By order: the event ids of its outbox items.
    outbox: BTreeMap<String, Vec<String>>,
}

fn unreadable(key: &str, error: impl std::fmt::Display) -> ChaosError {
    ChaosError::Store(StoreError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })
}

/// Reads the whole table with one consistent Scan. The emulator answers every Query by
/// walking the whole table, so a Query per order would make the audit quadratic in the
/// number of orders (a quarter of an hour for a thousand).
async fn scan(clients: &Clients) -> Result<TableContents, ChaosError> {
    let mut contents = TableContents::default();
    // Raw items by partition: an order's steps are read together with its order item,
    // which counts the attempts under way (`order_core::store::dynamo::order_with_steps`).
    let mut partitions: BTreeMap<String, (Option<Item>, Vec<Item>)> = BTreeMap::new();
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(&clients.env.table_name)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| {
            ChaosError::Store(StoreError::Unavailable {
                operation: "Scan",
                message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
            })
        })?;
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        if sk == "ORDER" {
            partitions.entry(pk).or_default().0 = Some(item);
        } else if sk.starts_with("STEP#") {
            partitions.entry(pk).or_default().1.push(item);
        } else if let Some(event_id) = sk.strip_prefix(order_core::store::OUTBOX_PREFIX) {
            let order = pk.strip_prefix("ORDER#").unwrap_or(&pk).to_owned();
            contents
                .outbox
                .entry(order)
                .or_default()
                .push(event_id.to_owned());
        }
    }
    for (pk, (order, steps)) in partitions {
        let Some(order) = order else {
            // Steps of no order: kept as stored, for the checks to find.
            for item in steps {
                let step: StepRecord =
                    serde_dynamo::from_item(item).map_err(|e| unreadable(&pk, e))?;
                let id = step.order_id.to_string();
                contents.steps.entry(id).or_default().push(step);
            }
            continue;
        };
        let (record, steps) = order_with_steps(order, steps).map_err(ChaosError::Store)?;
        let id = record.order_id.to_string();
        contents.steps.insert(id.clone(), steps);
        contents.orders.insert(id, record);
    }
    Ok(contents)
}

/// Orders stored for merchants of the run whose request never got a 202 (the API stored
/// the order but its answer was lost): orders of the run all the same.
pub async fn stored_without_answer(
    clients: &Clients,
    load: &LoadOutcome,
) -> Result<Vec<String>, ChaosError> {
    let mut found = Vec::new();
    for placed in load.placed.iter().filter(|p| p.accepted().is_none()) {
        let merchant = placed.merchant_id.as_str();
        let orders = with_retries(|| clients.store.orders_of_merchant(merchant, None, 100)).await?;
        found.extend(orders.into_iter().map(|o| o.order_id.to_string()));
    }
    Ok(found)
}

/// Reads every order of the run (16 at a time) and joins the ledger and the dead letters.
pub async fn gather(
    clients: &Clients,
    load: &LoadOutcome,
    ledger: &Ledger,
    dead_letters: &BTreeMap<String, Vec<DeadLetterBody>>,
    still_running: &[String],
) -> Result<Audit, ChaosError> {
    let table = scan(clients).await?;
    // Every outbox item must reach the bus: read the tap queue until they all did (the
    // stream delivers them moments after their change), or a while after the last came.
    let delivered = match &clients.env.events_tap_queue_url {
        Some(queue) => Some(crate::tap::drain(clients, queue, &table.outbox).await?),
        None => None,
    };
    let by_order = ledger.by_order();
    // Executions are named `<order id>` or `<order id>-r<n>`.
    let running: BTreeSet<&str> = still_running
        .iter()
        .map(|name| name.get(..36).unwrap_or(name))
        .collect();
    eprintln!(
        "chaos: audit: {} orders and {} step items read",
        table.orders.len(),
        table.steps.values().map(Vec::len).sum::<usize>()
    );
    let mut by_merchant: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for record in table.orders.values() {
        by_merchant
            .entry(record.order.merchant_id.as_str())
            .or_default()
            .push(record.order_id.to_string());
    }
    // The by-merchant index itself, for the keys that were sent more than once or never
    // got an answer: it must list what the table holds.
    let mut index: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for placed in &load.placed {
        if placed.probe.is_some() || placed.accepted().is_none() {
            let merchant = placed.merchant_id.as_str();
            let listed =
                with_retries(|| clients.store.orders_of_merchant(merchant, None, 100)).await?;
            index.insert(
                merchant,
                listed.into_iter().map(|o| o.order_id.to_string()).collect(),
            );
        }
    }
    let mut audit = Audit::default();
    for placed in &load.placed {
        let merchant = placed.merchant_id.as_str();
        let merchant_orders = by_merchant.get(merchant).cloned().unwrap_or_default();
        // The accepted order, or (never accepted) whatever was stored for its merchant.
        let ids = match placed.accepted() {
            Some(id) => vec![id.to_owned()],
            None => {
                audit
                    .not_accepted
                    .push((placed.key.clone(), placed.answer.clone()));
                merchant_orders.clone()
            }
        };
        for order_id in ids {
            audit.facts.push(OrderFacts {
                merchant_id: placed.merchant_id.clone(),
                kind: placed.kind,
                quantity: placed.quantity,
                accepted: placed.accepted().is_some(),
                record: table.orders.get(&order_id).cloned(),
                steps: table.steps.get(&order_id).cloned().unwrap_or_default(),
                merchant_orders: merchant_orders.clone(),
                index_orders: index.get(merchant).cloned(),
                ledger: by_order.get(&order_id).cloned().unwrap_or_default(),
                dead_letters: dead_letters.get(&order_id).cloned().unwrap_or_default(),
                running: running.contains(order_id.as_str()),
                outbox: table.outbox.get(&order_id).cloned().unwrap_or_default(),
                delivered: delivered
                    .as_ref()
                    .map(|d| d.get(&order_id).cloned().unwrap_or_default()),
                order_id,
            });
        }
    }
    audit.invariants = check(&audit.facts, load, &by_order);
    Ok(audit)
}

/// The event ids an order's changes must have written, sorted: placed (ACCEPTED); shipped
/// (SHIPPED, once ArrangeShipment succeeded), delivered (DELIVERED, once recorded); its end
/// if it ended (COMPLETED, FAILED, REJECTED, CANCELLED); and a park per resume count it was
/// parked at (`NEEDS_OPERATOR/<resumes>`, only the current one is known here: an order
/// parked now).
fn expected_events(f: &OrderFacts, record: &OrderRecord) -> Vec<String> {
    let id = &f.order_id;
    let mut want = vec![format!("{id}/ACCEPTED")];
    let shipped = f
        .step(steps::ARRANGE_SHIPMENT.name)
        .is_some_and(|s| s.status == StepStatus::Succeeded);
    if shipped {
        want.push(format!("{id}/SHIPPED"));
    }
    if record.delivery.is_some() {
        want.push(format!("{id}/DELIVERED"));
    }
    if record.status.is_final() {
        want.push(format!("{id}/{}", record.status));
    }
    if record.parked.is_some() {
        want.push(format!("{id}/NEEDS_OPERATOR/{}", record.resumes));
    }
    // Parks before a resume (an order parked, resumed by an operator, parked again) keep
    // their own events: any NEEDS_OPERATOR the outbox holds for a lower count is fine.
    for written in &f.outbox {
        if written.starts_with(&format!("{id}/NEEDS_OPERATOR/")) && !want.contains(written) {
            want.push(written.clone());
        }
    }
    want.sort();
    want
}

/// The forward steps that have a compensation, with it.
fn compensated_steps() -> Vec<(&'static str, &'static str)> {
    steps::ALL
        .iter()
        .filter_map(|s| s.compensation.map(|c| (s.name, c)))
        .collect()
}

fn count(entries: &[crate::faults::Entry], status: &str) -> usize {
    entries.iter().filter(|e| e.is(status)).count()
}

/// Checks the invariants (see the module documentation).
pub fn check(
    facts: &[OrderFacts],
    load: &LoadOutcome,
    ledger_by_order: &BTreeMap<String, OrderLedger>,
) -> Vec<Invariant> {
    let mut lost = Invariant::new(
        "1",
        "every accepted order ended or is in the DLQ with a reason (none lost)",
    );
    let mut twice = Invariant::new("2", "no partner effect happened twice");
    let mut undone = Invariant::new(
        "2b",
        "every FAILED/CANCELLED order is undone at the partners (REJECTED: never reached them)",
    );
    let mut keys = Invariant::new("3", "a repeated Idempotency-Key never made a second order");
    let mut whole = Invariant::new(
        "4",
        "every COMPLETED order took its full effect at the partners",
    );
    let mut agreed = Invariant::new(
        "5",
        "only a business failure rolls back or parks an order; none rolled back after delivery",
    );
    let mut announced = Invariant::new(
        "6",
        "each change integrators are told of has one event, delivered to the bus exactly once",
    );

    for f in facts {
        let id = f.order_id.as_str();
        let outcome = f.outcome();
        // 1: none lost.
        if f.accepted {
            lost.checked += 1;
        }
        let status = f.record.as_ref().map(|r| r.status);
        match outcome {
            Outcome::Missing => lost.violated(
                id,
                "accepted (202), but the order is not in the order table".into(),
            ),
            Outcome::Unfinished => lost.violated(
                id,
                format!(
                    "{} with no running execution and no dead letter",
                    status.map_or("?", OrderStatus::as_str)
                ),
            ),
            Outcome::Running => lost.violated(
                id,
                format!(
                    "still {} with a running execution when the run stopped waiting (not settled)",
                    status.map_or("?", OrderStatus::as_str)
                ),
            ),
            Outcome::Failed | Outcome::Cancelled => {
                for (forward, compensation) in compensated_steps() {
                    if f.step(forward).is_none() {
                        continue;
                    }
                    let done = f.step(compensation).map(|s| s.status);
                    if done != Some(StepStatus::Succeeded) {
                        lost.violated(
                            id,
                            format!(
                                "{} after {forward}, but {compensation} is {}",
                                outcome.label(),
                                done.map_or("missing".to_owned(), |s| format!("{s:?}"))
                            ),
                        );
                    }
                }
            }
            _ => {}
        }

        // 2: nothing twice.
        let l = &f.ledger;
        twice.checked += 1;
        for (what, n) in [
            ("reserved", l.reservations.len()),
            ("charged", l.charges.len()),
            ("shipped", l.shipments.len()),
            ("deactivated", l.deactivations.len()),
            ("given a return label", l.return_labels.len()),
            ("notified", l.messages.len()),
        ] {
            if n > 1 {
                twice.violated(id, format!("{what} {n} times"));
            }
        }
        if l.terminals.len() > usize::try_from(f.quantity).unwrap_or(usize::MAX) {
            twice.violated(
                id,
                format!(
                    "{} terminals provisioned for {} ordered",
                    l.terminals.len(),
                    f.quantity
                ),
            );
        }

        // 2b: rolled back.
        match outcome {
            Outcome::Failed | Outcome::Cancelled => {
                undone.checked += 1;
                let left = [
                    ("stock still reserved", count(&l.reservations, "reserved")),
                    ("payment still captured", count(&l.charges, "captured")),
                    (
                        "terminal(s) still provisioned",
                        count(&l.terminals, "provisioned"),
                    ),
                    ("shipment still under way", count(&l.shipments, "created")),
                    ("shipment delivered", count(&l.shipments, "delivered")),
                ];
                for (what, n) in left {
                    if n > 0 {
                        undone.violated(id, format!("{}: {what} ({n})", outcome.label()));
                    }
                }
            }
            Outcome::Rejected => {
                undone.checked += 1;
                if !l.is_empty() {
                    undone.violated(
                        id,
                        format!("REJECTED, yet the partners acted for it: {l:?}"),
                    );
                }
            }
            _ => {}
        }

        // 5: infrastructure trouble waits; a delivered order is never rolled back.
        if let Some(origin) = f.started_by() {
            agreed.checked += 1;
            if origin.kind == FailureKind::Infrastructure {
                agreed.violated(
                    id,
                    format!(
                        "{} because {} failed with {}, infrastructure trouble that must be waited out",
                        outcome.label(),
                        origin.step,
                        origin.error
                    ),
                );
            }
            let delivered = f.record.as_ref().is_some_and(|r| r.delivery.is_some());
            if delivered && matches!(outcome, Outcome::Failed | Outcome::Cancelled) {
                agreed.violated(
                    id,
                    format!("{} although its delivery was recorded", outcome.label()),
                );
            }
        }

        // 6: the order's events: one outbox item per change it made, each on the bus once.
        if let Some(record) = &f.record {
            announced.checked += 1;
            let want = expected_events(f, record);
            let mut written = f.outbox.clone();
            written.sort();
            if written != want {
                announced.violated(
                    id,
                    format!(
                        "{} with outbox events {written:?}, want {want:?}",
                        record.status
                    ),
                );
            }
            if let Some(delivered) = &f.delivered {
                let missing: Vec<&String> = written
                    .iter()
                    .filter(|e| !delivered.contains_key(*e))
                    .collect();
                let twice: Vec<(&String, &usize)> =
                    delivered.iter().filter(|(_, n)| **n > 1).collect();
                let stray: Vec<&String> =
                    delivered.keys().filter(|e| !written.contains(e)).collect();
                if !missing.is_empty() || !twice.is_empty() || !stray.is_empty() {
                    announced.violated(
                        id,
                        format!(
                            "events never on the bus {missing:?}, more than once {twice:?}, not in its outbox {stray:?}"
                        ),
                    );
                }
            }
        }

        // 4: completed orders whole.
        if outcome == Outcome::Completed {
            whole.checked += 1;
            let charges_wanted = usize::from(f.kind != OrderKind::Replacement);
            let quantity = usize::try_from(f.quantity).unwrap_or(usize::MAX);
            let mut missing = Vec::new();
            if l.reservations.len() != 1 || count(&l.reservations, "reserved") != 1 {
                missing.push(format!("reservations {:?}", statuses(&l.reservations)));
            }
            if l.charges.len() != charges_wanted || count(&l.charges, "captured") != charges_wanted
            {
                missing.push(format!(
                    "charges {:?} (want {charges_wanted} captured)",
                    statuses(&l.charges)
                ));
            }
            if count(&l.terminals, "provisioned") != quantity || l.terminals.len() != quantity {
                missing.push(format!(
                    "{} of {quantity} terminals provisioned",
                    count(&l.terminals, "provisioned")
                ));
            }
            // The courier marks a shipment delivered once our webhook acknowledged the
            // event; an event the order recorded but whose acknowledgement the courier
            // never got (the webhook timed out) counts as delivered too.
            let recorded = f
                .record
                .as_ref()
                .and_then(|r| r.delivery.as_ref())
                .map(|d| d.shipment_id.as_str());
            let delivered = |e: &crate::faults::Entry| {
                e.is("delivered") || (e.is("created") && recorded == Some(e.shipment_id.as_str()))
            };
            if l.shipments.len() != 1 || !l.shipments.iter().all(delivered) {
                missing.push(format!(
                    "shipments {:?} (delivery recorded for {recorded:?})",
                    statuses(&l.shipments)
                ));
            }
            if f.kind == OrderKind::Replacement
                && (l.deactivations.len() != 1 || l.return_labels.len() != 1)
            {
                missing.push(format!(
                    "{} deactivations, {} return labels",
                    l.deactivations.len(),
                    l.return_labels.len()
                ));
            }
            if !missing.is_empty() {
                whole.violated(id, format!("COMPLETED but {}", missing.join("; ")));
            }
        }

        // 3: one order per key.
        keys.checked += 1;
        if f.merchant_orders.len() > 1 || (f.accepted && f.merchant_orders != [f.order_id.clone()])
        {
            keys.violated(
                id,
                format!(
                    "the table holds orders {:?} for its key's merchant {} (want exactly this one)",
                    f.merchant_orders, f.merchant_id
                ),
            );
        }
        if let Some(listed) = &f.index_orders {
            let mut listed = listed.clone();
            let mut held = f.merchant_orders.clone();
            listed.sort();
            held.sort();
            if listed != held {
                keys.violated(
                    id,
                    format!(
                        "the by-merchant index lists {listed:?} for merchant {}, the table holds {held:?}",
                        f.merchant_id
                    ),
                );
            }
        }
    }

    // 3: the re-sent keys.
    for placed in &load.placed {
        let (Some(order_id), Some((probe, answer))) = (placed.accepted(), &placed.probe) else {
            continue;
        };
        keys.checked += 1;
        match probe {
            Probe::SameBody => {
                if answer.status != Some(202) || answer.order_id.as_deref() != Some(order_id) {
                    keys.violated(
                        order_id,
                        format!(
                            "the same order sent again with its key answered {} with order {:?}",
                            answer.describe(),
                            answer.order_id
                        ),
                    );
                }
            }
            Probe::DifferentBody => {
                if answer.status != Some(422)
                    || answer.code.as_deref() != Some("idempotency_key_reused")
                {
                    keys.violated(
                        order_id,
                        format!(
                            "another order sent with its key answered {} (want 422 idempotency_key_reused), order {:?}",
                            answer.describe(),
                            answer.order_id
                        ),
                    );
                }
            }
        }
    }

    // 3 and 2: partner effects for orders of the run's merchants that the audit does not know.
    let known: BTreeSet<&str> = facts.iter().map(|f| f.order_id.as_str()).collect();
    let merchants: BTreeSet<&str> = load.placed.iter().map(|p| p.merchant_id.as_str()).collect();
    for (order_id, entries) in ledger_by_order {
        if known.contains(order_id.as_str()) {
            continue;
        }
        if entries.merchants().iter().any(|m| merchants.contains(m)) {
            keys.violated(
                order_id,
                format!(
                    "the partners acted for order {order_id} of merchant(s) {:?}, which no API answer named",
                    entries.merchants()
                ),
            );
        }
    }
    vec![lost, twice, undone, keys, whole, agreed, announced]
}

fn statuses(entries: &[crate::faults::Entry]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e.status.as_deref().unwrap_or("-"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Entry;
    use order_core::store::StepRecord;
    use order_core::OrderId;

    fn entry(order: &str, status: &str) -> Entry {
        Entry {
            shipment_id: String::new(),
            order_id: order.into(),
            merchant_id: "m-1".into(),
            status: Some(status.into()),
        }
    }

    fn step(name: &str, status: StepStatus) -> StepRecord {
        StepRecord {
            order_id: OrderId::generate(),
            step: name.into(),
            status,
            attempts: 2,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:01.000Z".into(),
            finished_at: None,
            references: BTreeMap::new(),
            error: None,
            error_message: None,
        }
    }

    fn record(id: &str, status: OrderStatus) -> OrderRecord {
        let body = order_core::order::example_request("m-1");
        let catalogue = order_core::catalogue::Catalogue::builtin().ok();
        let order = catalogue.and_then(|c| order_core::Order::parse(&body, &c).ok());
        let Some(order) = order else {
            panic!("the example order does not parse")
        };
        OrderRecord {
            order_id: OrderId::parse(id).unwrap_or_else(OrderId::generate),
            status,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:04.500Z".into(),
            ..OrderRecord::accepted(&order, "h")
        }
    }

    const ID: &str = "ord-0123456789abcdef0123456789abcdef";

    /// An order in `status` whose outbox holds exactly the events its changes must have
    /// written (invariant 6 is tested on its own below).
    fn facts(status: OrderStatus, ledger: OrderLedger, steps: Vec<StepRecord>) -> OrderFacts {
        let mut f = facts_with_outbox(status, ledger, steps);
        if let Some(record) = f.record.clone() {
            f.outbox = expected_events(&f, &record);
        }
        f
    }

    fn facts_with_outbox(
        status: OrderStatus,
        ledger: OrderLedger,
        steps: Vec<StepRecord>,
    ) -> OrderFacts {
        OrderFacts {
            order_id: ID.into(),
            merchant_id: "m-1".into(),
            kind: OrderKind::NewMerchant,
            quantity: 3,
            accepted: true,
            record: Some(record(ID, status)),
            steps,
            merchant_orders: vec![ID.into()],
            index_orders: Some(vec![ID.into()]),
            ledger,
            dead_letters: Vec::new(),
            running: false,
            outbox: vec![format!("{ID}/ACCEPTED")],
            delivered: None,
        }
    }

    fn violations(facts: &[OrderFacts]) -> Vec<(&'static str, String)> {
        check(facts, &LoadOutcome::default(), &BTreeMap::new())
            .into_iter()
            .flat_map(|i| i.violations.into_iter().map(move |v| (i.number, v.what)))
            .collect()
    }

    /// A ledger holding nothing but a reservation for `order`, in `state`.
    fn only_a_reservation(order: &str, state: &str) -> OrderLedger {
        OrderLedger {
            reservations: vec![entry(order, state)],
            ..OrderLedger::default()
        }
    }

    fn completed_ledger() -> OrderLedger {
        OrderLedger {
            reservations: vec![entry(ID, "reserved")],
            charges: vec![entry(ID, "captured")],
            terminals: vec![entry(ID, "provisioned"); 3],
            shipments: vec![entry(ID, "delivered")],
            messages: vec![Entry {
                status: None,
                ..entry(ID, "")
            }],
            ..OrderLedger::default()
        }
    }

    #[test]
    fn a_whole_completed_order_breaks_nothing() {
        let f = facts(OrderStatus::Completed, completed_ledger(), vec![]);
        assert_eq!(violations(std::slice::from_ref(&f)), []);
        assert_eq!(f.seconds_to_end(), Some(4.5));
    }

    fn failed_because(step: &str, error: &str) -> OrderFacts {
        let mut f = facts(OrderStatus::Failed, OrderLedger::default(), vec![]);
        if let Some(record) = f.record.as_mut() {
            record.failure = Some(order_core::store::Failure {
                step: step.into(),
                error: error.into(),
                reason: "why".into(),
                at: "2026-01-01T00:00:04.500Z".into(),
            });
        }
        f
    }

    #[test]
    fn an_order_rolled_back_for_infrastructure_trouble_breaks_invariant_5_and_a_refusal_does_not() {
        let found = violations(&[failed_because("ArrangeShipment", "Store.Unavailable")]);
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "5"
                    && w.contains("ArrangeShipment failed with Store.Unavailable")),
            "{found:?}"
        );
        let crashed = violations(&[failed_because("TakePayment", "Runtime.ExitError")]);
        assert!(crashed.iter().any(|(n, _)| *n == "5"), "{crashed:?}");
        let declined = failed_because("TakePayment", "Payment.Declined");
        assert!(!violations(std::slice::from_ref(&declined))
            .iter()
            .any(|(n, _)| *n == "5"));
        assert_eq!(
            declined.started_by().map(|o| o.kind),
            Some(FailureKind::Business)
        );
        let late = failed_because("AwaitDelivery", "States.Timeout");
        assert!(!violations(&[late]).iter().any(|(n, _)| *n == "5"));
    }

    #[test]
    fn a_parked_order_is_explained_by_its_dead_letter_and_a_delivered_one_is_never_rolled_back() {
        let mut parked = facts(OrderStatus::Shipped, OrderLedger::default(), vec![]);
        parked.dead_letters = vec![DeadLetterBody {
            order_id: ID.into(),
            execution_arn: None,
            failed_step: Some("CompleteOrder".into()),
            error: Some("Store.Unavailable".into()),
            cause: None,
            at: None,
            source: "workflow".into(),
        }];
        assert_eq!(parked.outcome(), Outcome::DeadLettered);
        assert!(violations(&[parked])
            .iter()
            .any(|(n, w)| *n == "5" && w.contains("CompleteOrder")));

        let mut delivered = failed_because("AwaitDelivery", "Shipment.Rejected");
        if let Some(record) = delivered.record.as_mut() {
            record.delivery = Some(order_core::store::Delivery {
                shipment_id: "shp-1".into(),
                event_id: "evt-1".into(),
                delivered_at: "2026-01-01T00:00:03.000Z".into(),
            });
        }
        let found = violations(&[delivered]);
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "5" && w.contains("delivery was recorded")),
            "{found:?}"
        );
    }

    #[test]
    fn an_order_whose_event_is_missing_from_its_outbox_or_reached_the_bus_twice_breaks_invariant_6()
    {
        let mut f = facts_with_outbox(OrderStatus::Completed, completed_ledger(), vec![]);
        if let Some(record) = f.record.as_mut() {
            record.delivery = Some(order_core::store::Delivery {
                shipment_id: "shp-1".into(),
                event_id: "evt-1".into(),
                delivered_at: "2026-01-01T00:00:03.000Z".into(),
            });
        }
        let found = violations(std::slice::from_ref(&f));
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "6" && w.contains("COMPLETED with outbox events")),
            "{found:?}"
        );
        let record = f.record.clone().unwrap_or_else(|| panic!("no record"));
        f.outbox = expected_events(&f, &record);
        assert!(!violations(std::slice::from_ref(&f))
            .iter()
            .any(|(n, _)| *n == "6"));
        let mut delivered: BTreeMap<String, usize> =
            f.outbox.iter().map(|e| (e.clone(), 1)).collect();
        delivered.insert(format!("{ID}/COMPLETED"), 2);
        f.delivered = Some(delivered);
        let found = violations(std::slice::from_ref(&f));
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "6" && w.contains("more than once")),
            "{found:?}"
        );
        f.delivered = Some(BTreeMap::new());
        let found = violations(std::slice::from_ref(&f));
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "6" && w.contains("never on the bus")),
            "{found:?}"
        );
    }

    #[test]
    fn a_second_charge_is_a_double_effect() {
        let mut ledger = completed_ledger();
        ledger.charges.push(entry(ID, "refunded"));
        let found = violations(&[facts(OrderStatus::Completed, ledger, vec![])]);
        assert!(
            found.contains(&("2", "charged 2 times".into())),
            "{found:?}"
        );
    }

    #[test]
    fn a_failed_order_with_its_stock_still_reserved_is_not_undone() {
        let ledger = only_a_reservation(ID, "reserved");
        let steps = vec![
            step("ReserveStock", StepStatus::Succeeded),
            step("ReleaseStock", StepStatus::Failed),
        ];
        let found = violations(&[facts(OrderStatus::Failed, ledger, steps)]);
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "2b" && w.contains("stock still reserved")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(n, w)| *n == "1" && w.contains("ReleaseStock is Failed")),
            "{found:?}"
        );
    }

    #[test]
    fn an_unfinished_order_is_lost_unless_it_is_in_the_dead_letter_queue() {
        let mut f = facts(OrderStatus::Compensating, OrderLedger::default(), vec![]);
        assert_eq!(f.outcome(), Outcome::Unfinished);
        assert!(violations(&[f.clone()]).iter().any(|(n, _)| *n == "1"));
        f.dead_letters.push(DeadLetterBody {
            order_id: ID.into(),
            execution_arn: None,
            failed_step: Some("ReleaseStock".into()),
            error: Some("Partner.Rejected".into()),
            cause: None,
            at: None,
            source: "workflow".into(),
        });
        assert_eq!(f.outcome(), Outcome::DeadLettered);
        assert_eq!(violations(&[f]), []);
    }

    #[test]
    fn two_orders_for_one_merchant_mean_a_key_made_a_second_order() {
        let mut f = facts(OrderStatus::Completed, completed_ledger(), vec![]);
        f.merchant_orders
            .push("ord-ffffffffffffffffffffffffffffffff".into());
        assert!(violations(&[f]).iter().any(|(n, _)| *n == "3"));
    }

    #[test]
    fn a_delivery_the_order_recorded_counts_even_if_the_courier_missed_the_acknowledgement() {
        let mut ledger = completed_ledger();
        ledger.shipments = vec![Entry {
            shipment_id: "shp-1".into(),
            ..entry(ID, "created")
        }];
        let mut f = facts(OrderStatus::Completed, ledger, vec![]);
        assert!(violations(std::slice::from_ref(&f))
            .iter()
            .any(|(n, _)| *n == "4"));
        if let Some(record) = f.record.as_mut() {
            record.delivery = Some(order_core::store::Delivery {
                event_id: "evt-1".into(),
                shipment_id: "shp-1".into(),
                delivered_at: "2026-01-01T00:00:03.000Z".into(),
            });
        }
        if let Some(record) = f.record.clone() {
            f.outbox = expected_events(&f, &record);
        }
        assert_eq!(violations(&[f]), []);
    }

    #[test]
    fn an_accepted_order_missing_from_the_table_is_lost() {
        let mut f = facts(OrderStatus::Completed, OrderLedger::default(), vec![]);
        f.record = None;
        f.merchant_orders = Vec::new();
        f.index_orders = None;
        assert_eq!(f.outcome(), Outcome::Missing);
        let found = violations(&[f]);
        assert!(
            found.contains(&(
                "1",
                "accepted (202), but the order is not in the order table".into()
            )),
            "{found:?}"
        );
    }

    #[test]
    fn an_order_still_running_when_the_run_stopped_waiting_is_not_settled() {
        let mut f = facts(OrderStatus::Provisioned, OrderLedger::default(), vec![]);
        f.running = true;
        assert_eq!(f.outcome(), Outcome::Running);
        assert_eq!(
            violations(&[f]),
            [(
                "1",
                "still PROVISIONED with a running execution when the run stopped waiting (not settled)"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn an_index_that_lists_other_orders_than_the_table_holds_is_a_key_violation() {
        let mut f = facts(OrderStatus::Completed, completed_ledger(), vec![]);
        f.index_orders = Some(vec![
            ID.into(),
            "ord-ffffffffffffffffffffffffffffffff".into(),
        ]);
        let found = violations(&[f]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].0 == "3" && found[0].1.starts_with("the by-merchant index lists"),
            "{found:?}"
        );
    }

    #[test]
    fn partner_effects_for_an_order_no_answer_named_are_a_key_violation() {
        let load = LoadOutcome {
            placed: vec![crate::load::Placed {
                index: 0,
                kind: OrderKind::NewMerchant,
                merchant_id: "m-1".into(),
                key: "key-1".into(),
                quantity: 3,
                answer: Answer {
                    status: Some(202),
                    order_id: Some(ID.into()),
                    ..Answer::default()
                },
                placed_at: chrono::Utc::now(),
                took: Duration::ZERO,
                probe: None,
                cancel: None,
            }],
            ..LoadOutcome::default()
        };
        let unknown = "ord-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
        let ledger_by_order =
            BTreeMap::from([(unknown.to_owned(), only_a_reservation(unknown, "reserved"))]);
        let f = facts(OrderStatus::Completed, completed_ledger(), vec![]);
        let found: Vec<(&str, String)> = check(&[f], &load, &ledger_by_order)
            .into_iter()
            .flat_map(|i| i.violations.into_iter().map(move |v| (i.number, v.what)))
            .collect();
        assert_eq!(
            found,
            [(
                "3",
                format!(
                    "the partners acted for order {unknown} of merchant(s) [\"m-1\"], which no API answer named"
                )
            )]
        );
    }

    #[test]
    fn a_rejected_order_the_partners_acted_for_is_not_undone() {
        let ledger = only_a_reservation(ID, "released");
        let found = violations(&[facts(OrderStatus::Rejected, ledger, vec![])]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].0 == "2b"
                && found[0]
                    .1
                    .starts_with("REJECTED, yet the partners acted for it"),
            "{found:?}"
        );
    }

    #[test]
    fn a_completed_order_without_its_delivery_did_not_take_full_effect() {
        let mut ledger = completed_ledger();
        ledger.shipments = vec![entry(ID, "created")];
        let found = violations(&[facts(OrderStatus::Completed, ledger, vec![])]);
        assert!(found.iter().any(|(n, _)| *n == "4"), "{found:?}");
    }
}
