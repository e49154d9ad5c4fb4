//! What people do to orders while their executions run: a cancel through the API, and an
//! operator's resume onto a new execution.

use super::{finish, Event, Execution, Outcome, SimError, World};
use order_core::store::Ledger;
use order_core::OrderStatus;

impl<'d> World<'d> {
    /// An operator resumes the order onto a new execution (`orderctl orders resume
    /// --latest`): the running one is stopped (its in-flight invocations go on, their
    /// results unheard) and `<id>-r<n>` starts from the beginning, replaying the
    /// finished steps from the ledger.
    pub(super) fn resume(&mut self, order: usize) -> Result<(), SimError> {
        let status = self.status(order)?;
        if status.is_final() {
            self.note_order(
                order,
                format!("operator resume refused: the order is {status}"),
            );
            return Ok(());
        }
        self.shared
            .count("operator resumed the order onto a new execution");
        let old = self.latest[order];
        if self.executions[old].outcome.is_none() {
            self.shared
                .count("operator resumed the order onto a new execution: stopped the running one");
            self.end_attempt(old);
            self.end(old, Outcome::Aborted);
        }
        let id = self.ids[order].clone();
        let n = finish(self.env.ledger.next_resume(&id))?
            .map_err(|e| SimError::World(e.to_string()))?;
        let arn = format!("arn:aws:states:sim:execution:OrderWorkflow:{id}-r{n}");
        finish(self.env.ledger.set_execution_arn(&id, &arn))?
            .map_err(|e| SimError::World(e.to_string()))?;
        self.note_order(order, format!("operator resume: new execution {id}-r{n}"));
        let input = self.executions[old].first_input.clone();
        let exec = self.executions.len();
        self.latest[order] = exec;
        self.executions.push(Execution {
            order,
            arn,
            state: self.definition.start_at.clone(),
            first_input: input.clone(),
            input,
            started: self.now(),
            entered: self.now(),
            retries: Vec::new(),
            waiting: None,
            token: None,
            outcome: None,
        });
        self.after(0, Event::Step(exec));
        Ok(())
    }

    /// A cancel through the API (`order_core::recovery::cancel`) at a random time.
    pub(super) fn cancel(&mut self, order: usize) -> Result<(), SimError> {
        let id = self.ids[order].clone();
        let before = self.status(order)?;
        let cancelled = finish(order_core::recovery::cancel(&*self.env.ledger, &id))?;
        let outcome = match cancelled {
            Ok(order_core::store::Cancellation::Started(_)) => {
                self.shared.count("cancel started a rollback");
                self.shared.count(match before {
                    OrderStatus::Accepted => "cancel started a rollback: the order was ACCEPTED",
                    OrderStatus::Validated => "cancel started a rollback: the order was VALIDATED",
                    OrderStatus::StockReserved => {
                        "cancel started a rollback: the order was STOCK_RESERVED"
                    }
                    OrderStatus::PaymentTaken => {
                        "cancel started a rollback: the order was PAYMENT_TAKEN"
                    }
                    OrderStatus::Provisioned => {
                        "cancel started a rollback: the order was PROVISIONED"
                    }
                    _ => "cancel started a rollback: the order was in another status",
                });
                "Started".to_owned()
            }
            Ok(order_core::store::Cancellation::TooLate(_)) => {
                self.shared.count("cancel came too late (shipped or ended)");
                "TooLate".to_owned()
            }
            Ok(c) => format!("{c:?}").split('(').next().unwrap_or("").to_owned(),
            Err(e) => e.to_string(),
        };
        self.note_order(order, format!("cancel requested: {outcome}"));
        Ok(())
    }
}
