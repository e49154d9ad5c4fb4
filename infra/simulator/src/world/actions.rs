//! Recovery actions in flight: a cancel, a resume (an operator's `resume` or
//! `resume --latest`, `dlq replay`, the console's button), a reconciler run, the API's
//! start and the courier's webhook run as futures the world polls, as it polls Task
//! invocations. Each of their ledger and Step Functions calls is a control point
//! ([`Shared::recovery_point`](super::Shared::recovery_point)): there the action waits
//! for its next poll while other events run (another resumer, a second reconciler, the
//! order's own execution, a cancel), and there it may die (its process killed, its Lambda
//! timed out), leaving what it wrote so far. What it asked of Step Functions is carried
//! out after every poll; what it returned goes to the module that spawned it.

use super::{Event, SimError, World};
use order_core::delivery::{Delivered, DeliveryError};
use order_core::recovery::{Reconciled, RecoveryError, Resumption};
use order_core::store::{Cancellation, StoreError};
use order_core::OrderStatus;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

/// How long an action waits at a control point before the world polls it again, at most
/// (simulated milliseconds): a call to DynamoDB or Step Functions and its answer.
const CALL_MS: u64 = 200;

/// An action that dies does so at one of its first this many control points (a resume
/// has about five; a reconciler run two per order it looks at).
const MOST_POINTS_BEFORE_DYING: u64 = 6;

/// Who resumes an order. All of them run `order_core::recovery`'s resume; they differ in
/// which one and in what the trace calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resumer {
    /// `orderctl orders resume` (`recovery::resume`).
    Operator,
    /// `orderctl orders resume --latest` (`recovery::resume_on_latest`): a running
    /// execution is stopped first.
    Latest,
    /// `orderctl dlq replay` (`recovery::resume`).
    DlqReplay,
    /// The ops console's resume button (`recovery::resume`).
    Console,
}

impl Resumer {
    pub(super) const ALL: [Resumer; 4] = [
        Resumer::Operator,
        Resumer::Latest,
        Resumer::DlqReplay,
        Resumer::Console,
    ];

    /// What the trace calls it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Resumer::Operator => "operator resume",
            Resumer::Latest => "operator resume --latest",
            Resumer::DlqReplay => "dlq replay",
            Resumer::Console => "console resume",
        }
    }
}

/// Which run of the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reconciler {
    /// The scheduled run; `last`: one of the runs after everything else ended.
    Scheduled { last: bool },
    /// A second invocation of a scheduled run (Lambda invokes asynchronously, at least
    /// once), running beside the first.
    Duplicate,
    /// `orderctl reconcile --grace-seconds 0`, by an operator.
    Operator,
}

/// What a recovery action returned.
pub(super) enum Done {
    Resumed {
        order: usize,
        by: Resumer,
        result: Result<Resumption, RecoveryError>,
    },
    Reconciled {
        by: Reconciler,
        result: Result<Vec<Reconciled>, RecoveryError>,
    },
    Cancelled {
        order: usize,
        tries: u32,
        before: OrderStatus,
        result: Result<Cancellation, StoreError>,
    },
    Started {
        order: usize,
        tries: u32,
        result: Result<Option<String>, RecoveryError>,
    },
    Delivered {
        order: usize,
        tries: u32,
        result: Result<Delivered, DeliveryError>,
    },
}

pub(super) type Deed = Pin<Box<dyn Future<Output = Done>>>;

/// One recovery action in flight.
pub(super) struct Acting {
    deed: Deed,
    /// What the trace calls it.
    label: &'static str,
    /// The order it is about (none for a reconciler run).
    order: Option<usize>,
    /// What follows when it dies at a control point: the caller's try again, after a
    /// delay (none: nobody tries again, the reconciler will find what it left).
    retry: Option<(u64, Event)>,
    /// The control point it dies at, if it dies (counted from 1).
    dies_at: Option<u32>,
    /// The control points it passed so far.
    points: u32,
}

impl<'d> World<'d> {
    /// Starts a recovery action now: polled at once, then at each of its control points.
    /// Returns its id.
    pub(super) fn spawn(
        &mut self,
        label: &'static str,
        order: Option<usize>,
        retry: Option<(u64, Event)>,
        deed: Deed,
    ) -> u64 {
        self.next_action += 1;
        let id = self.next_action;
        let dies = self.shared.chance(self.options.faults.recovery_dies);
        let dies_at = dies.then(|| 1 + self.shared.below(MOST_POINTS_BEFORE_DYING) as u32);
        self.actions.insert(
            id,
            Acting {
                deed,
                label,
                order,
                retry,
                dies_at,
                points: 0,
            },
        );
        self.after(0, Event::Act(id));
        id
    }

    /// Polls action `id` to its next control point or its end.
    pub(super) fn act(&mut self, id: u64) -> Result<(), SimError> {
        let Some(mut acting) = self.actions.remove(&id) else {
            return Ok(());
        };
        let mut cx = Context::from_waker(Waker::noop());
        self.shared.acting.store(true, Ordering::Relaxed);
        let polled = acting.deed.as_mut().poll(&mut cx);
        self.shared.acting.store(false, Ordering::Relaxed);
        self.drain_resumed()?;
        self.carry_out()?;
        self.collect_parked()?;
        match polled {
            Poll::Ready(done) => {
                self.reconcilers.remove(&id);
                self.done(done)
            }
            Poll::Pending => {
                acting.points += 1;
                if acting.dies_at == Some(acting.points) {
                    self.reconcilers.remove(&id);
                    self.shared
                        .count("a recovery action died at a control point");
                    if let Some(order) = acting.order {
                        self.note_order(
                            order,
                            format!("  {}: died before its next call", acting.label),
                        );
                    }
                    if let Some((delay, event)) = acting.retry.take() {
                        self.after(delay, event);
                    }
                    return Ok(());
                }
                let delay = 1 + self.shared.below(CALL_MS);
                self.actions.insert(id, acting);
                self.after(delay, Event::Act(id));
                Ok(())
            }
        }
    }

    fn done(&mut self, done: Done) -> Result<(), SimError> {
        match done {
            Done::Resumed { order, by, result } => self.resumed(order, by, result),
            Done::Reconciled { by, result } => self.reconciled(by, result),
            Done::Cancelled {
                order,
                tries,
                before,
                result,
            } => self.cancelled(order, tries, before, result),
            Done::Started {
                order,
                tries,
                result,
            } => self.started(order, tries, result),
            Done::Delivered {
                order,
                tries,
                result,
            } => self.delivered(order, tries, result),
        }
    }
}
