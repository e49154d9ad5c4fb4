//! What happens to orders from outside their executions: a cancel through the API, an
//! operator's resume onto the newest release, the scheduled reconciler (all three the
//! real code of `order_core::recovery`), and an execution stopped by something outside
//! the saga. A cancel that meets our infrastructure's failure (a 503) is sent again; an
//! operator's resume that does is left to the reconciler; a reconciler run that does is
//! followed by the next scheduled one.

use super::api::MERCHANT_TRIES;
use super::{finish, Event, Outcome, SimError, World};
use order_core::recovery::{self, Action, ReconcileOptions, RecoveryError};
use order_core::store::StoreError;
use order_core::OrderStatus;

/// The reconciler's grace period (`ReconcileGraceSeconds` in template.yaml; a test holds
/// the two together).
pub const RECONCILE_GRACE_SECONDS: u64 = 900;
/// Orders looked at per reconciler run (`ReconcileLimit`).
pub const RECONCILE_LIMIT: usize = 200;
/// Resumes before the reconciler parks an order (`MaxResumes`).
pub const MAX_RESUMES: u32 = 3;

/// How long an order whose execution ended may wait for the reconciler before the tally
/// says so: runs are 5 minutes apart on average, the grace period is 15.
const STUCK_MS: u64 = 3_600_000;

/// Whether the recovery code failed on our infrastructure (DynamoDB, Step Functions, the
/// bus, the dead-letter queue): worth trying again later, nothing for the world to stop on.
fn infrastructure(error: &RecoveryError) -> bool {
    matches!(
        error,
        RecoveryError::Store(StoreError::Unavailable { .. })
            | RecoveryError::Workflow { .. }
            | RecoveryError::DeadLetters(_)
    )
}

/// The reconciler's options, as the template deploys it.
pub fn reconcile_options() -> ReconcileOptions {
    ReconcileOptions {
        grace: chrono::Duration::seconds(RECONCILE_GRACE_SECONDS as i64),
        limit: RECONCILE_LIMIT,
        max_resumes: MAX_RESUMES,
    }
}

impl<'d> World<'d> {
    /// An operator moves the order onto the newest release (`orderctl orders resume
    /// --latest`, `order_core::recovery::resume_on_latest`): a running execution is
    /// stopped (its in-flight invocations go on, their results unheard) and
    /// `<id>-r<n>` starts from the beginning, replaying the finished steps from the ledger.
    pub(super) fn resume(&mut self, order: usize) -> Result<(), SimError> {
        let id = self.id(order)?;
        let resumed = finish(recovery::resume_on_latest(
            &*self.env.ledger,
            &*self.step_functions,
            &id,
        ))?;
        match resumed {
            Ok(resumption) => {
                self.shared
                    .count("operator resumed the order onto a new execution");
                if resumption.stopped.is_some() {
                    self.shared.count(
                        "operator resumed the order onto a new execution: stopped the running one",
                    );
                }
                self.note_order(
                    order,
                    format!(
                        "operator resume --latest: new execution {}{}",
                        resumption.execution_name,
                        match &resumption.stopped {
                            Some(arn) => format!(", stopped {arn}"),
                            None => String::new(),
                        }
                    ),
                );
            }
            Err(RecoveryError::Ended { status, .. }) => {
                self.note_order(
                    order,
                    format!("operator resume refused: the order is {status}"),
                );
            }
            Err(error) if infrastructure(&error) => {
                self.shared
                    .count("operator resume failed on our infrastructure");
                self.note_order(
                    order,
                    format!("operator resume --latest failed: {error}; left to the reconciler"),
                );
            }
            Err(error) => return Err(SimError::World(format!("operator resume: {error}"))),
        }
        self.carry_out()
    }

    /// Something outside the saga stops the order's execution (a person in the console,
    /// a deployment gone wrong): it ends ABORTED, its in-flight invocations going on
    /// unheard, and nothing resumes it but the reconciler.
    pub(super) fn die(&mut self, exec: usize) -> Result<(), SimError> {
        if self.executions[exec].outcome.is_some() {
            return Ok(());
        }
        self.shared
            .count("an execution was stopped outside the saga");
        self.seen[self.executions[exec].order].stopped_outside = true;
        self.note(
            exec,
            "  the execution is stopped outside the saga (StopExecution)".into(),
        );
        self.end_attempt(exec);
        self.end(exec, Outcome::Aborted);
        Ok(())
    }

    /// One run of the scheduled reconciler (`order_core::recovery::reconcile`, at the
    /// simulated time, with the template's options): an unfinished order unchanged for
    /// the grace period whose execution is not running is resumed, or parked in the
    /// dead-letter queue once resumed [`MAX_RESUMES`] times.
    pub(super) fn reconcile(&mut self, last: bool) -> Result<(), SimError> {
        let now = self.shared.time();
        let ran = finish(recovery::reconcile_at(
            &*self.env.ledger,
            &*self.step_functions,
            recovery::Escalation {
                dead_letters: &*self.parking,
            },
            reconcile_options(),
            now,
        ))?;
        self.shared.count(match last {
            true => "reconciler ran after the run",
            false => "reconciler ran while orders ran",
        });
        self.reconciler_resumed = false;
        self.reconciler_failed = false;
        let done = match ran {
            Ok(done) => done,
            // The run stops where it failed; what it did before stands (a start asked, a
            // dead letter sent), and the next run walks on.
            Err(error) if infrastructure(&error) => {
                self.shared
                    .count("reconciler: a run failed on our infrastructure");
                self.reconciler_failed = true;
                Vec::new()
            }
            Err(error) => return Err(SimError::World(format!("reconciler: {error}"))),
        };
        if done.len() >= RECONCILE_LIMIT {
            // Orders past the limit wait for the next run, which walks on from here.
            self.shared.count("reconciler: a run stopped at its limit");
        }
        for reconciled in &done {
            let Some(&order) = crate::world::lock(&self.shared.index).get(&reconciled.order_id)
            else {
                continue;
            };
            let (what, line) = match &reconciled.action {
                Action::Running { execution_arn } => (
                    "reconciler: left alone, its execution is running",
                    format!("running ({execution_arn})"),
                ),
                Action::Resumed { execution_arn } => {
                    self.reconciler_resumed = true;
                    // The grace period and a run every 5 minutes: resumed within 20
                    // minutes of its execution's end, unless runs keep stopping at their
                    // limit before they reach it.
                    let ended = self.latest[order]
                        .and_then(|e| self.executions[e].outcome.is_some().then_some(e))
                        .map(|e| self.executions[e].ended);
                    let waited = ended.map(|ended| self.now().saturating_sub(ended));
                    if waited.is_some_and(|waited| waited > STUCK_MS) && !last {
                        self.shared.count(
                            "reconciler: resumed an order more than an hour after its execution ended",
                        );
                    }
                    let waited = match waited {
                        Some(ms) => {
                            format!(", {:.0} s after its execution ended", ms as f64 / 1000.0)
                        }
                        None => String::new(),
                    };
                    (
                        "reconciler: resumed an order whose execution was not running",
                        format!("resumed: {execution_arn}{waited}"),
                    )
                }
                Action::Parked { reason } => (
                    "reconciler: parked an order for an operator",
                    format!("parked: {reason}"),
                ),
                Action::AlreadyParked => (
                    "reconciler: left alone, parked already",
                    "parked already".to_owned(),
                ),
                Action::Changed => (
                    "reconciler: left alone, it changed since the index was read",
                    "changed since read".to_owned(),
                ),
                Action::Failed { error } => (
                    "reconciler: could not reconcile an order; the run went on",
                    format!("failed: {error}"),
                ),
            };
            self.shared.count(what);
            if !matches!(reconciled.action, Action::Running { .. }) {
                self.note_order(order, format!("reconciler ({}): {line}", reconciled.status));
            }
        }
        for letter in self.parking.take_sent() {
            let order = order_core::OrderId::parse(&letter.order_id)
                .and_then(|id| crate::world::lock(&self.shared.index).get(&id).copied());
            match order {
                Some(order) => self.parked.push((order, letter)),
                None => {
                    return Err(SimError::World(format!(
                        "a dead letter for an unknown order: {letter:?}"
                    )))
                }
            }
        }
        self.carry_out()
    }

    /// A cancel through the API (`order_core::recovery::cancel`) at a random time, and
    /// the merchant's try `tries` of it again after a 503 (the store failed, or the
    /// `Order Cancelled` of an order cancelled at once could not be published).
    pub(super) fn cancel(&mut self, order: usize, tries: u32) -> Result<(), SimError> {
        let id = self.id(order)?;
        let before = self.status(order)?;
        let cancelled = finish(order_core::recovery::cancel(&*self.env.ledger, &id))?;
        // What the ledger says, not what the call returned: a cancel can take effect and
        // then fail (its second write, for an order without an execution).
        if matches!(
            self.status(order)?,
            OrderStatus::Cancelling | OrderStatus::Cancelled
        ) {
            self.seen[order].cancelled = true;
        }
        let unavailable = matches!(cancelled, Err(StoreError::Unavailable { .. }));
        if unavailable && tries + 1 < MERCHANT_TRIES {
            self.shared
                .count("a cancel met a 503, the merchant sends it again");
            self.note_order(order, "cancel requested: 503, sent again later".into());
            let delay = self.merchant_backoff(tries);
            self.after(
                delay,
                Event::Cancel {
                    order,
                    tries: tries + 1,
                },
            );
            return Ok(());
        }
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
