//! What happens to orders from outside their executions: a cancel through the API, the
//! resumers (an operator's `resume` and `resume --latest`, `dlq replay`, the console's
//! button), the reconciler (scheduled, its duplicate invocations, an operator's
//! `orderctl reconcile --grace-seconds 0`), all the real code of `order_core::recovery`
//! run as interleaved actions ([`super::actions`]); several resumers racing on one order;
//! and an execution stopped by something outside the saga. A cancel that meets our
//! infrastructure's failure (a 503) is sent again; a resume that does is left to the
//! reconciler; a reconciler run that does is followed by the next scheduled one.

use super::actions::{Done, Reconciler, Resumer};
use super::api::MERCHANT_TRIES;
use super::{Event, Outcome, SimError, World};
use order_core::recovery::{self, Action, ReconcileOptions, Reconciled, RecoveryError, Resumption};
use order_core::store::{Cancellation, StoreError};
use order_core::OrderStatus;

/// The reconciler's grace period (`ReconcileGraceSeconds` in template.yaml; a test holds
/// the two together).
pub const RECONCILE_GRACE_SECONDS: u64 = 900;
/// Orders looked at per reconciler run (`ReconcileLimit`).
pub const RECONCILE_LIMIT: usize = 200;
/// Resumes before the reconciler parks an order (`MaxResumes`).
pub const MAX_RESUMES: u32 = 3;
/// Invocations of the reconciler's function that run at once, at most (its
/// `ReservedConcurrentExecutions`): Lambda throttles another and invokes it again later.
pub const RECONCILER_CONCURRENCY: usize = 1;

/// How long Lambda waits before it invokes a throttled asynchronous invocation again, at
/// most (simulated milliseconds).
const THROTTLED_RETRY_MS: u64 = 60_000;

/// How long Lambda waits before it invokes a failed asynchronous invocation again
/// (simulated milliseconds).
const LAMBDA_RETRY_MS: u64 = 60_000;

/// How far apart the resumers of one race start (simulated milliseconds): each then
/// takes a few calls of up to 200 ms, so they overlap.
const RACE_SPREAD_MS: u64 = 3_000;

/// How many resumers race on one order, at most.
const MOST_RACERS: u64 = 5;

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

impl Reconciler {
    /// What the trace calls it.
    fn name(self) -> &'static str {
        match self {
            Reconciler::Scheduled { .. } => "reconciler",
            Reconciler::Duplicate => "reconciler, a second invocation",
            Reconciler::Operator => "orderctl reconcile --grace-seconds 0",
        }
    }

    /// Its options: the template's, or no grace period for the operator's.
    fn options(self) -> ReconcileOptions {
        match self {
            Reconciler::Operator => ReconcileOptions {
                grace: chrono::Duration::zero(),
                ..reconcile_options()
            },
            _ => reconcile_options(),
        }
    }
}

impl<'d> World<'d> {
    /// A resumer `by` moves order `order` onto a new execution (`resume --latest`: a
    /// running one is stopped first, its in-flight invocations going on unheard; the
    /// others refuse while one runs). `<id>-r<n>` starts from the beginning, replaying the
    /// finished steps from the ledger.
    pub(super) fn resume(&mut self, order: usize, by: Resumer) -> Result<(), SimError> {
        let id = self.id(order)?;
        let (ledger, workflow) = (self.env.ledger.clone(), self.step_functions.clone());
        self.spawn(
            by.name(),
            Some(order),
            None,
            Box::pin(async move {
                let result = match by {
                    Resumer::Latest => recovery::resume_on_latest(&*ledger, &*workflow, &id).await,
                    _ => recovery::resume(&*ledger, &*workflow, &id).await,
                };
                Done::Resumed { order, by, result }
            }),
        );
        Ok(())
    }

    /// What a resume returned.
    pub(super) fn resumed(
        &mut self,
        order: usize,
        by: Resumer,
        result: Result<Resumption, RecoveryError>,
    ) -> Result<(), SimError> {
        let name = by.name();
        match result {
            Ok(resumption) => {
                self.shared.count(match by {
                    Resumer::Latest => "operator resumed the order onto a new execution",
                    _ => "a resumer started a new execution",
                });
                if resumption.stopped.is_some() {
                    self.shared.count(
                        "operator resumed the order onto a new execution: stopped the running one",
                    );
                }
                self.note_order(
                    order,
                    format!(
                        "{name}: new execution {}{}",
                        resumption.execution_name,
                        match &resumption.stopped {
                            Some(arn) => format!(", stopped {arn}"),
                            None => String::new(),
                        }
                    ),
                );
            }
            Err(RecoveryError::Ended { status, .. }) => {
                self.note_order(order, format!("{name} refused: the order is {status}"));
            }
            Err(RecoveryError::StillRunning { execution_arn, .. }) => {
                self.shared
                    .count("a resumer refused: the order's execution is running");
                self.note_order(order, format!("{name} refused: {execution_arn} is running"));
            }
            Err(RecoveryError::NameTaken {
                execution_arn,
                status,
            }) => {
                self.shared
                    .count("a resume found its execution's name taken by an ended one");
                self.note_order(
                    order,
                    format!("{name}: {execution_arn} exists already, ended {status}"),
                );
            }
            Err(RecoveryError::ResumedElsewhere { execution_arn, .. }) => {
                self.shared
                    .count("a resumer lost the race: someone else resumed the order");
                self.note_order(
                    order,
                    format!("{name}: someone else resumed it meanwhile ({execution_arn:?})"),
                );
            }
            Err(error) if infrastructure(&error) => {
                self.shared.count("a resume failed on our infrastructure");
                self.note_order(
                    order,
                    format!("{name} failed: {error}; left to the reconciler"),
                );
            }
            Err(error) => return Err(SimError::World(format!("{name}: {error}"))),
        }
        Ok(())
    }

    /// Several resumers race on order `order` (issue 30): two to five of an operator's
    /// `resume` and `resume --latest`, `dlq replay`, the console's button, the scheduled
    /// reconciler invoked twice (the second throttled while the first runs, as its
    /// reserved concurrency says), and `orderctl reconcile --grace-seconds 0`, each
    /// starting within a few seconds of the others, whatever the order is doing.
    pub(super) fn race(&mut self, order: usize) -> Result<(), SimError> {
        if self.ids[order].is_none() {
            return Ok(());
        }
        self.shared.count("racing resumers set on one order");
        let racers = 2 + self.shared.below(MOST_RACERS - 1);
        let mut names = Vec::new();
        for _ in 0..racers {
            let delay = self.shared.below(RACE_SPREAD_MS);
            match self.shared.below(Resumer::ALL.len() as u64 + 2) as usize {
                kind if kind < Resumer::ALL.len() => {
                    let by = Resumer::ALL[kind];
                    names.push(by.name());
                    self.after(delay, Event::Resume { order, by });
                }
                kind if kind == Resumer::ALL.len() => {
                    names.push("the reconciler, invoked twice");
                    let by = Reconciler::Scheduled { last: false };
                    self.after(delay, Event::Reconcile { by });
                    let twin = delay + self.shared.below(1_000);
                    let by = Reconciler::Duplicate;
                    self.after(twin, Event::Reconcile { by });
                }
                _ => {
                    names.push(Reconciler::Operator.name());
                    let by = Reconciler::Operator;
                    self.after(delay, Event::Reconcile { by });
                }
            }
        }
        self.note_order(order, format!("racing resumers: {}", names.join(", ")));
        Ok(())
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
        let order = self.executions[exec].order;
        if self.shared.chance(self.options.faults.racing_resumers) {
            // Operators, the console and the reconciler find the stopped order, some
            // before the grace period ends, some after.
            let delay = self.shared.below(2 * RECONCILE_GRACE_SECONDS * 1000);
            self.after(delay, Event::Race(order));
        }
        Ok(())
    }

    /// One run of the reconciler `by` (`order_core::recovery::reconcile_at`, at the
    /// simulated time, with the template's options or the operator's): an unfinished order
    /// unchanged for the grace period whose execution is not running is resumed, or parked
    /// in the dead-letter queue once resumed [`MAX_RESUMES`] times.
    pub(super) fn reconcile(&mut self, by: Reconciler) -> Result<(), SimError> {
        let lambda = by != Reconciler::Operator;
        if lambda && self.reconcilers.len() >= RECONCILER_CONCURRENCY {
            self.shared.count(
                "reconciler invocation throttled (reserved concurrency), invoked again later",
            );
            let delay = 1_000 + self.shared.below(THROTTLED_RETRY_MS);
            self.after(delay, Event::Reconcile { by });
            return Ok(());
        }
        let now = self.shared.time();
        let (ledger, workflow) = (self.env.ledger.clone(), self.step_functions.clone());
        let parking = self.parking.clone();
        self.shared.count(match by {
            Reconciler::Scheduled { last: true } => "reconciler ran after the run",
            Reconciler::Scheduled { last: false } => "reconciler ran while orders ran",
            Reconciler::Duplicate => "reconciler ran a duplicate invocation",
            Reconciler::Operator => "an operator ran orderctl reconcile --grace-seconds 0",
        });
        // A Lambda invocation that dies is invoked again by Lambda (an asynchronous
        // invocation's retry, a minute later); an operator's run is not.
        let retry = lambda.then_some((LAMBDA_RETRY_MS, Event::Reconcile { by }));
        let action = self.spawn(
            by.name(),
            None,
            retry,
            Box::pin(async move {
                let escalation = recovery::Escalation {
                    dead_letters: &*parking,
                };
                let result =
                    recovery::reconcile_at(&*ledger, &*workflow, escalation, by.options(), now)
                        .await;
                Done::Reconciled { by, result }
            }),
        );
        if lambda {
            self.reconcilers.insert(action);
        }
        Ok(())
    }

    /// What a reconciler run returned.
    pub(super) fn reconciled(
        &mut self,
        by: Reconciler,
        ran: Result<Vec<Reconciled>, RecoveryError>,
    ) -> Result<(), SimError> {
        let last = by == Reconciler::Scheduled { last: true };
        let name = by.name();
        if last {
            self.reconciler_resumed = false;
            self.reconciler_failed = false;
        }
        let done = match ran {
            Ok(done) => done,
            // The run stops where it failed; what it did before stands (a start asked, a
            // dead letter sent), and the next run walks on.
            Err(error) if infrastructure(&error) => {
                self.shared
                    .count("reconciler: a run failed on our infrastructure");
                self.reconciler_failed |= last;
                Vec::new()
            }
            Err(error) => return Err(SimError::World(format!("{name}: {error}"))),
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
                    self.reconciler_resumed |= last;
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
                self.note_order(order, format!("{name} ({}): {line}", reconciled.status));
            }
        }
        Ok(())
    }

    /// A cancel through the API (`order_core::recovery::cancel`) at a random time, and
    /// the merchant's try `tries` of it again after a 503 (the store failed, or the
    /// API's function died between its writes).
    pub(super) fn cancel(&mut self, order: usize, tries: u32) -> Result<(), SimError> {
        let id = self.id(order)?;
        let before = self.status(order)?;
        let ledger = self.env.ledger.clone();
        let retry = (tries + 1 < MERCHANT_TRIES).then(|| {
            let delay = self.merchant_backoff(tries);
            let tries = tries + 1;
            (delay, Event::Cancel { order, tries })
        });
        self.spawn(
            "cancel",
            Some(order),
            retry,
            Box::pin(async move {
                let result = recovery::cancel(&*ledger, &id).await;
                Done::Cancelled {
                    order,
                    tries,
                    before,
                    result,
                }
            }),
        );
        Ok(())
    }

    /// What a cancel returned.
    pub(super) fn cancelled(
        &mut self,
        order: usize,
        tries: u32,
        before: OrderStatus,
        cancelled: Result<Cancellation, StoreError>,
    ) -> Result<(), SimError> {
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
            Ok(Cancellation::Started(_)) => {
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
            Ok(Cancellation::TooLate(_)) => {
                self.shared.count("cancel came too late (shipped or ended)");
                "TooLate".to_owned()
            }
            Ok(c) => format!("{c:?}").split('(').next().unwrap_or("").to_owned(),
            Err(e) => e.to_string(),
        };
        self.note_order(order, format!("cancel requested: {outcome}"));
        Ok(())
    }

    /// The dead letters the reconciler sent since the last look, by order.
    pub(super) fn collect_parked(&mut self) -> Result<(), SimError> {
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
        Ok(())
    }
}
