//! The saga's invariants, checked for every order after the run (see the crate
//! documentation for the list).

use super::{finish, Outcome, Seen, SimError, World};
use crate::partners::UNDO;
use order_core::dead_letters::DeadLetterBody;
use order_core::events::{Lifecycle, OrderEvent};
use order_core::{OrderKind, OrderStatus};
use serde_json::Value;
use std::collections::BTreeMap;

/// How every violation of the agreed-orders invariant ([`agreed_order_violations`])
/// begins.
pub const AGREED_ORDER: &str = "all its partners agreed, yet";

impl<'d> World<'d> {
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
/// One exception: an order whose execution was stopped from outside the saga (a person,
/// a deployment: [`Faults::execution_dies`](crate::Faults)) and that the reconciler parked
/// after resuming it its most times is left to the operator who stopped it, so it may
/// be parked and short of COMPLETED; it still may not be rolled back or dead-lettered.
///
/// `refused`: whether a partner refused one of its forward calls; `dead_letters`: what its
/// executions sent to the workflow dead-letter queue; `parkings`: the reconciler's dead
/// letters for it.
fn agreed_order_violations(
    seen: &Seen,
    refused: bool,
    status: OrderStatus,
    dead_letters: &[&Value],
    parkings: &[&DeadLetterBody],
) -> Vec<String> {
    if seen.cancelled || refused || seen.delivery_lost {
        return Vec::new();
    }
    let parked_by_whoever_stopped_it = seen.stopped_outside && !parkings.is_empty();
    let mut broken = Vec::new();
    if status != OrderStatus::Completed && !parked_by_whoever_stopped_it {
        broken.push(format!("{AGREED_ORDER} it ended {status}, not COMPLETED"));
    }
    if let Some(state) = &seen.compensation {
        broken.push(format!(
            "{AGREED_ORDER} it was rolled back ({state} started)"
        ));
    }
    for letter in dead_letters {
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
