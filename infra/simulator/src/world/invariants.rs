//! The saga's invariants, checked for every order after the run (see the crate
//! documentation for the list).

use super::{finish, Outcome, SimError, World};
use crate::partners::UNDO;
use order_core::store::Ledger;
use order_core::{OrderKind, OrderStatus};

impl<'d> World<'d> {
    pub(super) fn check_invariants(&mut self) -> Result<(), SimError> {
        let effects = self.env.partners.book().effects.clone();
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
            let exec = self.latest[order];
            let id = self.ids[order].clone();
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
                let kind = finish(self.env.ledger.get_order(&id))?
                    .ok()
                    .flatten()
                    .map(|o| o.order.kind);
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
            for what in broken {
                self.shared.violation_at(order, what);
            }
        }
        Ok(())
    }
}
