//! The saga's invariants: what must hold at every instant of a run, checked as it
//! happens (after every event: an execution started, an owner recorded, a status
//! written, a partner's effect taken, a Task started or timed out), and what every order
//! must satisfy after the run (see the crate documentation for the list).

use super::{finish, Outcome, Seen, SimError, World};
use crate::partners::UNDO;
use crate::world::lock;
use order_core::dead_letters::DeadLetterBody;
use order_core::events::{Lifecycle, OrderEvent};
use order_core::OrderId;
use order_core::{OrderKind, OrderStatus};
use serde_json::Value;
use std::collections::BTreeMap;

/// How every violation of the agreed-orders invariant ([`agreed_order_violations`])
/// begins.
pub const AGREED_ORDER: &str = "all its partners agreed, yet";

/// How a violation of "at most one execution of an order runs at any instant" begins.
pub const TWO_RUNNING: &str = "two executions of it ran at once:";
/// How a violation of "while an execution of the order runs, the order records it as
/// its owner" begins (between a claim and its start, the recorded execution is not
/// running yet, and none other runs).
pub const NOT_THE_OWNER: &str = "an execution ran that the order does not record as its owner:";
/// How a violation of "no CANCELLED order holds a partner's effect" begins.
pub const CANCELLED_HOLDING: &str = "CANCELLED while a partner still held its effect:";
/// How a violation of "a delivered parcel's order is never rolled back or refunded"
/// begins (delivered: the courier handed the parcel over, whether or not its event has
/// reached the webhook yet): no partner undoes an effect of it after, it never moves to
/// FAILED or CANCELLED, and it ends COMPLETED (or parked after its executions were stopped
/// outside the saga).
pub const DELIVERED_UNDONE: &str = "its parcel was delivered, yet";
/// How a violation of "the courier's delivery resumes the order" begins: once the
/// webhook accepted the delivery, no wait in AwaitDelivery times out.
pub const DELIVERY_RESUMED_NOTHING: &str = "the courier's delivery resumed nothing:";

impl<'d> World<'d> {
    /// An invariant checked as it happens broke for `order` (reported once per order and
    /// invariant: the first instant says what happened).
    fn broke(&mut self, order: usize, invariant: &'static str, what: String) {
        if self.seen[order].broke.insert(invariant) {
            self.shared
                .violation_at(order, format!("{invariant} {what}"));
        }
    }

    /// The order's index, for an id the ledger or the partners name.
    fn index_of(&self, id: &OrderId) -> Option<usize> {
        lock(&self.shared.index).get(id).copied()
    }

    /// What must hold at every instant, for what changed since the last event: the orders
    /// whose recorded owner changed or whose execution started, the statuses written, the
    /// partners' effects taken.
    pub(super) fn check_as_it_happens(&mut self) -> Result<(), SimError> {
        let owners = std::mem::take(&mut *lock(&self.shared.owners));
        for id in owners {
            if let Some(order) = self.index_of(&id) {
                self.check_owner(order)?;
            }
        }
        let moves = std::mem::take(&mut *lock(&self.shared.moves));
        for (id, to) in moves {
            if let Some(order) = self.index_of(&id) {
                self.check_move(order, to);
            }
        }
        let fresh = std::mem::take(&mut self.env.partners.book().fresh);
        for (id, operation) in fresh {
            if let Some(order) = self.index_of(&id) {
                self.check_effect(order, operation)?;
            }
        }
        Ok(())
    }

    /// At most one execution of the order runs, and the one that runs is the one the
    /// order records as its owner.
    fn check_owner(&mut self, order: usize) -> Result<(), SimError> {
        let running: Vec<&str> = (self.runs[order].iter())
            .map(|&e| &self.executions[e])
            .filter(|e| e.outcome.is_none())
            .map(|e| e.arn.as_str())
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let running = running.join(" and ");
        let recorded = self.record(order)?.execution_arn;
        if running.contains(" and ") {
            let what = format!("{running} (the order records {recorded:?})");
            self.broke(order, TWO_RUNNING, what);
        } else if recorded.as_deref() != Some(running.as_str()) {
            let what = format!("{running} runs, the order records {recorded:?}");
            self.broke(order, NOT_THE_OWNER, what);
        }
        Ok(())
    }

    /// A status written: CANCELLING, or CANCELLED at once, is a cancel that took effect
    /// (whoever wrote it);
    /// CANCELLED with a partner's effect not undone, or a delivered order rolled back,
    /// breaks an invariant.
    fn check_move(&mut self, order: usize, to: OrderStatus) {
        if matches!(to, OrderStatus::Cancelling | OrderStatus::Cancelled) {
            self.seen[order].cancelled = true;
        }
        if to == OrderStatus::Cancelled {
            if let Some(held) = self.held(order) {
                self.broke(
                    order,
                    CANCELLED_HOLDING,
                    format!("{held} when it was cancelled"),
                );
            }
        }
        let rolled_back = matches!(to, OrderStatus::Failed | OrderStatus::Cancelled);
        if rolled_back && self.parcel_delivered(order) {
            self.broke(order, DELIVERED_UNDONE, format!("it moved to {to}"));
        }
    }

    /// Whether the courier has handed the order's parcel over by now.
    fn parcel_delivered(&self, order: usize) -> bool {
        (self.ids[order].as_ref()).is_some_and(|id| self.shared.delivered(id))
    }

    /// A partner took `operation` for the order: no effect for a CANCELLED order, no
    /// undo for one whose parcel was delivered.
    fn check_effect(&mut self, order: usize, operation: &'static str) -> Result<(), SimError> {
        let forward = UNDO.iter().any(|(done, _)| *done == operation);
        let undo = UNDO.iter().any(|(_, undo)| *undo == operation);
        if forward && self.status(order)? == OrderStatus::Cancelled {
            let what = format!("{operation} taken after the order was cancelled");
            self.broke(order, CANCELLED_HOLDING, what);
        }
        if undo && self.parcel_delivered(order) {
            let what = format!("{operation} was taken after it");
            self.broke(order, DELIVERED_UNDONE, what);
        }
        Ok(())
    }

    /// The first of the order's partner effects not undone after it was last taken, as
    /// `<effect> held (no <undo> after it)`; none when all are undone.
    fn held(&self, order: usize) -> Option<String> {
        let id = self.ids[order].as_ref()?;
        let book = self.env.partners.book();
        let last = |op: &'static str| {
            book.effects
                .get(&(id.clone(), op))
                .and_then(|numbers| numbers.last().copied())
        };
        UNDO.iter()
            .find_map(|(done, undo)| match (last(done), last(undo)) {
                (Some(d), u) if u.is_none_or(|u| u < d) => {
                    Some(format!("{done} held (no {undo} after it)"))
                }
                _ => None,
            })
    }

    /// A wait for the courier timed out: once the webhook accepted the delivery, it must
    /// have resumed the wait.
    pub(super) fn check_wait_timed_out(&mut self, order: usize, state: &str) {
        if let Some(at) = self.seen[order].delivered {
            let what = format!(
                "{state} timed out though the webhook accepted the delivery at {:.3}s",
                at as f64 / 1000.0
            );
            self.broke(order, DELIVERY_RESUMED_NOTHING, what);
        }
    }

    pub(super) fn check_invariants(&mut self) -> Result<(), SimError> {
        let effects = self.env.partners.book().effects.clone();
        // What is still in the stream after the run is delivered, as `publish-events`
        // would once the bus is back: what integrators got in the end.
        finish(self.env.events.pump_until_empty())?;
        let published = self.env.events.published();
        // Nothing in the saga fails an execution (every error is caught, at worst into
        // the dead-letter queue): the first that failed otherwise, by order, also when a
        // later one went on.
        let mut failed = vec![None; self.latest.len()];
        for execution in &self.executions {
            if let Some(Outcome::Failed { error, cause }) = &execution.outcome {
                if error != "Workflow.DeadLettered" && failed[execution.order].is_none() {
                    failed[execution.order] = Some(format!("{error}: {cause}"));
                }
            }
        }
        for (order, failed) in failed.iter().enumerate() {
            // Never stored: the merchant was told (503) and gave up; there is no order.
            if self.seen[order].never_placed {
                continue;
            }
            let exec = self.latest[order];
            let id = self.id(order)?;
            let status = self.status(order)?;
            let taken =
                |op: &'static str| effects.get(&(id.clone(), op)).cloned().unwrap_or_default();
            let effect = |op: &'static str| taken(op).len();
            let mut broken = Vec::new();
            // Parked by the reconciler for an operator: an end, as a dead letter from the
            // workflow is ("needs an operator").
            let parked = self.parked_now(order)?;
            if parked && !self.parked.iter().any(|(o, _)| *o == order) {
                broken.push("parked without a dead-letter message".into());
            }
            let dead_lettered = match exec.map(|e| (e, &self.executions[e].outcome)) {
                // Cancelled before its workflow started: nothing was done to undo.
                None if status.is_final() => false,
                None if parked => true,
                None => {
                    broken.push(format!(
                        "lost: no execution was ever started (order {status})"
                    ));
                    false
                }
                Some((_, None)) => {
                    broken.push(format!("lost: the execution never ended (order {status})"));
                    false
                }
                Some((exec, Some(Outcome::Failed { error, .. })))
                    if error == "Workflow.DeadLettered" =>
                {
                    if !self.dead_letters.iter().any(|(e, _)| *e == exec) {
                        broken.push("dead-lettered without a dead-letter message".into());
                    }
                    true
                }
                Some((_, Some(Outcome::Failed { .. } | Outcome::Aborted))) if parked => true,
                Some((_, Some(Outcome::Failed { error, cause }))) => {
                    broken.push(format!("lost: the execution failed with {error}: {cause}"));
                    false
                }
                // Stopped while an invocation that ends the order was in flight (on AWS
                // too, a stopped execution's Lambda invocations run to their end): the
                // order ended, and is checked below as any other.
                Some((_, Some(Outcome::Aborted))) if status.is_final() => false,
                Some((_, Some(Outcome::Aborted))) => {
                    broken.push("lost: its latest execution was stopped".into());
                    false
                }
                Some((_, Some(Outcome::Succeeded))) => {
                    if !status.is_final() {
                        broken.push(format!(
                            "lost: the execution succeeded, the order is {status}"
                        ));
                    }
                    false
                }
            };
            let lost = broken
                .iter()
                .any(|b| b.starts_with("lost: the execution failed"));
            if let (Some(failure), false) = (failed, lost) {
                broken.push(format!("an execution failed with {failure}"));
            }
            for ((order_id, op), numbers) in &effects {
                if *order_id == id && numbers.len() > 1 {
                    broken.push(format!("partner effect {op} taken {} times", numbers.len()));
                }
            }
            if !dead_lettered
                && matches!(
                    status,
                    OrderStatus::Failed | OrderStatus::Cancelled | OrderStatus::Rejected
                )
            {
                for (done, undo) in UNDO {
                    let (done_at, undo_at) =
                        (taken(done).last().copied(), taken(undo).last().copied());
                    match (done_at, undo_at) {
                        (Some(_), None) => {
                            broken.push(format!("{status} but {done} was never undone ({undo})"))
                        }
                        (Some(d), Some(u)) if u < d => broken.push(format!(
                            "{status} but {done} acted after its undo {undo} (effect #{d} after #{u}): nothing undid it"
                        )),
                        _ => {}
                    }
                }
            }
            // Parked after its executions were stopped outside the saga, it is left to
            // whoever stopped them (see `agreed_order_violations`).
            let left_to_an_operator = parked && self.seen[order].stopped_outside;
            if self.parcel_delivered(order)
                && status != OrderStatus::Completed
                && !left_to_an_operator
            {
                broken.push(format!("{DELIVERED_UNDONE} it ended {status}"));
            }
            // Parked, an operator was told; otherwise nobody would be.
            if status == OrderStatus::Delivered && !parked {
                broken.push(
                    "stuck: the courier's delivery is recorded but the order never completed"
                        .into(),
                );
            }
            if status == OrderStatus::Completed {
                let kind = Some(self.record(order)?.order.kind);
                let mut needed = vec!["reserve", "provision", "ship"];
                if kind == Some(OrderKind::Replacement) {
                    needed.extend(["deactivate", "return_label"]);
                } else {
                    needed.push("charge");
                }
                for op in needed {
                    if effect(op) != 1 {
                        broken.push(format!("COMPLETED but {op} was taken {} times", effect(op)));
                    }
                }
                for (_, undo) in UNDO {
                    if effect(undo) > 0 {
                        broken.push(format!("COMPLETED but {undo} was taken"));
                    }
                }
            }
            broken.extend(event_violations(
                &published,
                &id.to_string(),
                status,
                parked,
                effect("ship"),
            ));
            let dead_letters: Vec<&Value> = (self.dead_letters.iter())
                .filter(|(e, _)| self.executions[*e].order == order)
                .map(|(_, letter)| letter)
                .collect();
            let parkings: Vec<&DeadLetterBody> = (self.parked.iter())
                .filter(|(o, _)| *o == order)
                .map(|(_, letter)| letter)
                .collect();
            broken.extend(agreed_order_violations(
                &self.seen[order],
                lock(&self.shared.recalled).contains(&id),
                self.shared.met_refusal(&id),
                status,
                &dead_letters,
                &parkings,
            ));
            for what in broken {
                self.shared.violation_at(order, what);
            }
        }
        Ok(())
    }
}

/// No order whose partners all agreed is ever rolled back, dead-lettered or parked.
///
/// An order's partners all agreed when, by what the world itself decided and saw (never by
/// what the system under test recorded): no cancel of it took effect (it never went
/// CANCELLING), no partner refused one of its forward calls for good (the seed's planned
/// refusal, answered), and the courier's delivery event for it was not lost (the delivery
/// timeout's rollback is the definition's rule for a parcel that never arrives). The
/// simulated orders are valid, so ValidateOrder has no business refusal to make. Whatever
/// else such an order met is our infrastructure's trouble or a partner's transient one
/// (DynamoDB, the bus, Lambda and Step Functions failing or throttling, crashes, timeouts,
/// lost results, partner blips and outages), which the saga must wait out and retry:
///
/// - it ends COMPLETED (not FAILED, CANCELLED, REJECTED, nor anywhere short of the end);
/// - no compensation Task was started for it (not even one with nothing to undo);
/// - no execution of it sent it to the workflow dead-letter queue;
/// - the reconciler never parked it for an operator.
///
/// A parcel the courier delivered late (around the delivery timeout) may meet the rollback
/// for a parcel that never came: its compensation may start (and, refused by a partner,
/// dead-letter it), and must stop short of undoing anything (the order still completes);
/// one the rollback called back first was not delivered, as a lost one.
///
/// One exception: an order whose execution was stopped from outside the saga (a person,
/// a deployment: [`Faults::execution_dies`](crate::Faults)) and that the reconciler parked
/// after resuming it its most times is left to the operator who stopped it, so it may
/// be parked and short of COMPLETED; it still may not be rolled back or dead-lettered.
///
/// `recalled`: whether the courier called its parcel back before delivering it;
/// `refused`: whether a partner refused one of its forward calls; `dead_letters`: what its
/// executions sent to the workflow dead-letter queue; `parkings`: the reconciler's dead
/// letters for it.
fn agreed_order_violations(
    seen: &Seen,
    recalled: bool,
    refused: bool,
    status: OrderStatus,
    dead_letters: &[&Value],
    parkings: &[&DeadLetterBody],
) -> Vec<String> {
    if seen.cancelled || refused || seen.delivery_lost || (seen.delivery_late && recalled) {
        return Vec::new();
    }
    let parked_by_whoever_stopped_it = seen.stopped_outside && !parkings.is_empty();
    let mut broken = Vec::new();
    if status != OrderStatus::Completed && !parked_by_whoever_stopped_it {
        broken.push(format!("{AGREED_ORDER} it ended {status}, not COMPLETED"));
    }
    if let (Some(state), false) = (&seen.compensation, seen.delivery_late) {
        broken.push(format!(
            "{AGREED_ORDER} it was rolled back ({state} started)"
        ));
    }
    // A late parcel's rollback may start, and a compensation may be refused for good on
    // its way (the seed's refusals of compensations): that goes to an operator.
    for letter in dead_letters.iter().filter(|_| !seen.delivery_late) {
        broken.push(format!(
            "{AGREED_ORDER} it was dead-lettered at {} ({})",
            letter["failed_step"].as_str().unwrap_or("?"),
            letter["error"].as_str().unwrap_or("?")
        ));
    }
    if !parked_by_whoever_stopped_it {
        for letter in parkings {
            broken.push(format!(
                "{AGREED_ORDER} the reconciler parked it ({})",
                letter.cause.as_deref().unwrap_or("?")
            ));
        }
    }
    broken
}

/// What order `id` (ended in `status`, `parked` or not, shipped `shipped` times) published
/// against what it must have: every publish of one change the same event; the event of its
/// end, and of its shipment when it completed; none for an end it did not reach, nor a
/// shipment that never happened; `Order Needs Operator` when the reconciler parked it.
fn event_violations(
    published: &[OrderEvent],
    id: &str,
    status: OrderStatus,
    parked: bool,
    shipped: usize,
) -> Vec<String> {
    let mut broken = Vec::new();
    let mut by_id: BTreeMap<&str, &OrderEvent> = BTreeMap::new();
    for event in published.iter().filter(|e| e.detail.order_id == id) {
        match by_id.get(event.detail.event_id.as_str()) {
            Some(first) if *first != event => broken.push(format!(
                "event {} published with two different details",
                event.detail.event_id
            )),
            Some(_) => {}
            None => {
                by_id.insert(&event.detail.event_id, event);
            }
        }
    }
    let has = |what: &str| by_id.contains_key(format!("{id}/{what}").as_str());
    let mut needed = match status {
        OrderStatus::Completed => vec!["SHIPPED", "COMPLETED"],
        OrderStatus::Failed | OrderStatus::Rejected | OrderStatus::Cancelled => {
            vec![status.as_str()]
        }
        _ => vec![],
    };
    needed.retain(|what| !has(what));
    for what in needed {
        broken.push(format!("{status} but its {what} event was never published"));
    }
    for end in ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"] {
        if has(end) && status.as_str() != end {
            broken.push(format!("published {end} but the order is {status}"));
        }
    }
    if has("SHIPPED") && shipped == 0 {
        broken.push("published SHIPPED but nothing was shipped".into());
    }
    let needs_operator = by_id
        .values()
        .any(|e| e.lifecycle == Lifecycle::NeedsOperator);
    if parked && !needs_operator {
        broken.push("parked but Order Needs Operator was never published".into());
    }
    broken
}
