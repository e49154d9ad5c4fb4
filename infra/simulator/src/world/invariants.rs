//! The saga's invariants, checked for every order after the run (see the crate
//! documentation for the list).

use super::{finish, Outcome, SimError, World};
use crate::partners::UNDO;
use order_core::store::Ledger;
use order_core::{OrderKind, OrderStatus};

impl<'d> World<'d> {
    pub(super) fn check_invariants(&mut self) -> Result<(), SimError> {
        let effects = self.env.partners.book().effects.clone();
        for order in 0..self.latest.len() {
            let exec = self.latest[order];
            let id = self.ids[order].clone();
            let status = self.status(order)?;
            let taken =
                |op: &'static str| effects.get(&(id.clone(), op)).cloned().unwrap_or_default();
            let effect = |op: &'static str| taken(op).len();
            let mut broken = Vec::new();
            let dead_lettered = match &self.executions[exec].outcome {
                None => {
                    broken.push(format!("lost: the execution never ended (order {status})"));
                    false
                }
                Some(Outcome::Failed { error, .. }) if error == "Workflow.DeadLettered" => {
                    if !self.dead_letters.iter().any(|(e, _)| *e == exec) {
                        broken.push("dead-lettered without a dead-letter message".into());
                    }
                    true
                }
                Some(Outcome::Failed { error, cause }) => {
                    broken.push(format!("lost: the execution failed with {error}: {cause}"));
                    false
                }
                Some(Outcome::Aborted) => {
                    broken.push("lost: its latest execution was stopped".into());
                    false
                }
                Some(Outcome::Succeeded) => {
                    if !status.is_final() {
                        broken.push(format!(
                            "lost: the execution succeeded, the order is {status}"
                        ));
                    }
                    false
                }
            };
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
            if status == OrderStatus::Delivered {
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
