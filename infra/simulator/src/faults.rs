//! What a run is asked to do: how many orders from which seed, and how often each fault
//! and interleaving happens: per chance to happen, or in windows of simulated time (a
//! partner's outage, our own infrastructure failing for a while).

use crate::partners::DropKeyOf;

/// How often each fault happens, per chance to happen.
#[derive(Debug, Clone)]
pub struct Faults {
    /// A partner call fails before acting (Unavailable or Throttled).
    pub partner_transient: f64,
    /// A partner call acts, then the caller times out (`Partner.Timeout`).
    pub partner_timeout_after_acting: f64,
    /// An order has one forward partner operation refused for good.
    pub refusal: f64,
    /// A compensation's partner refuses for good (the order needs an operator).
    pub compensation_refusal: f64,
    /// Mean outage windows per partner per simulated hour.
    pub outages_per_hour: f64,
    /// The store is unavailable for an activity's begin or success write.
    pub store_unavailable: f64,
    /// At a control point: the invocation crashes (the partner may have acted; the ledger
    /// is not written).
    pub crash: f64,
    /// At a control point: the invocation overruns its Task timeout; its late result
    /// arrives after Step Functions retried.
    pub overrun: f64,
    /// A partner call pauses before acting too, so that a cancel, a compensation or a
    /// Task timeout can land between the activity's status check and its partner call.
    /// (It found a hung invocation acting after the rollback while functions timed out
    /// after their Task: they now time out before it.)
    pub pause_before_acting: f64,
    /// The AwaitDelivery Task is invoked twice, the second copy running late with its
    /// attempt's task token. 0 by default; see [`Faults::with_late_callback_copies`].
    pub duplicate_callback_invocation: f64,
    /// An activity pauses before a ledger write (its step's success, a status change,
    /// AwaitDelivery's token): a cancel, a webhook or another invocation lands between
    /// its read and its write.
    pub pause_before_write: f64,
    /// Lambda throttles the invocation (`Lambda.TooManyRequestsException`): nothing ran.
    pub throttled: f64,
    /// An operator resumes the order onto a new execution while one may be running.
    pub resume_racing: f64,
    /// Several resumers race on one order (an operator's `resume` and `resume --latest`,
    /// `dlq replay`, the console's button, two reconciler invocations at once, `orderctl
    /// reconcile --grace-seconds 0`): the chance per order once while it runs, and again
    /// each time one of its executions is stopped outside the saga. 0 by default; see
    /// [`Faults::with_racing_resumers`].
    pub racing_resumers: f64,
    /// A scheduled reconciler run is invoked twice, the two running at once (Lambda's
    /// asynchronous invocation is at least once).
    pub reconcile_twice: f64,
    /// A recovery action dies at one of its control points (the operator's process is
    /// killed, the API's or the reconciler's Lambda times out): what it wrote stands, the
    /// rest never happens; the merchant, the courier or Lambda sends its request again.
    /// The chance per action.
    pub recovery_dies: f64,
    /// An execution is stopped by something outside the saga (ABORTED) within two
    /// minutes of its start: only the reconciler gets the order going again.
    pub execution_dies: f64,
    /// The API stores the order but starting its execution fails (the merchant does not
    /// try again): only the reconciler starts it.
    pub start_lost: f64,
    /// Mean reconciler runs per simulated hour, at random points (the template's schedule
    /// is every 5 minutes); one more runs after everything else ended.
    pub reconciles_per_hour: f64,
    /// The Task's result is lost after the function finished (at-least-once).
    pub result_lost: f64,
    /// A Task is invoked twice (at-least-once delivery of the invocation).
    pub duplicate_invocation: f64,
    /// The order is cancelled at a random time.
    pub cancel: f64,
    /// The courier's delivery event never comes.
    pub delivery_lost: f64,
    /// The courier delivers the parcel around the delivery timeout (ten minutes either
    /// side) and sends its event up to twenty minutes later: its delivery races the
    /// rollback for a parcel that never came. A cancel of the shipment before the hand-over
    /// calls the parcel back (it is never delivered); one after is refused
    /// `already_delivered`.
    pub delivery_late: f64,
    /// The delivery event is sent twice.
    pub delivery_duplicated: f64,
    /// The delivery event comes right after the shipment is booked (often before the
    /// ledger knows of it, or before AwaitDelivery stored its token).
    pub delivery_early: f64,
    /// Resuming the waiting task fails (`SendTaskSuccess` unavailable).
    pub resume_unavailable: f64,
    /// The API receives the same order twice under one key.
    pub duplicate_post: f64,
    /// Windows in which the order-events bus (EventBridge `PutEvents`) is unavailable:
    /// every publish fails, as `EventBus` reports it (a step's `Events.Unavailable`, the
    /// API's 503 `events_unavailable`, a failed reconciler run).
    pub bus_unavailable: Windows,
    /// Windows in which the bus throttles a share of the publishes (`ThrottlingException`:
    /// the same failure to the caller).
    pub bus_throttling: Windows,
    /// Windows in which DynamoDB throttles a share of every kind of request: a step's
    /// begin, success and failure writes, the event Query after a step
    /// (`get_order_with_steps`), task-token and delivery writes, the API's placement
    /// transaction and execution-ARN write, the reconciler's and the operators' reads and
    /// writes. A throttled request writes nothing and fails `Store.Unavailable`, as the
    /// DynamoDB ledger maps `ProvisionedThroughputExceededException`.
    pub store_throttling: Windows,
    /// Windows in which Lambda throttles every invocation of a Task
    /// (`Lambda.TooManyRequestsException`, the account's concurrency used up): nothing
    /// runs.
    pub lambda_throttling: Windows,
    /// Windows in which Step Functions throttles a share of `StartExecution` calls (the
    /// API's start, the reconciler's and the operators' resumes): the call fails as
    /// `Workflow::start_on` reports it (`RecoveryError::Workflow`), nothing starts.
    pub start_throttling: Windows,
}

/// Windows of simulated time in which one of our own services fails, drawn from the
/// run's seed like the partners' outages: on average `per_hour` windows per simulated
/// hour over the run's span (arrivals and one hour), each from `min_ms` to `max_ms` long;
/// inside one, each request fails with chance `share` (1: every request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    pub per_hour: f64,
    pub min_ms: u64,
    pub max_ms: u64,
    pub share: f64,
}

impl Windows {
    /// No windows: the service never fails this way.
    pub const NONE: Windows = Windows {
        per_hour: 0.0,
        min_ms: 0,
        max_ms: 0,
        share: 0.0,
    };

    /// Whether any request can fail this way.
    pub fn is_on(&self) -> bool {
        self.per_hour > 0.0 && self.share > 0.0
    }
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            partner_transient: 0.04,
            partner_timeout_after_acting: 0.02,
            refusal: 0.04,
            compensation_refusal: 0.002,
            outages_per_hour: 1.0,
            store_unavailable: 0.005,
            crash: 0.03,
            overrun: 0.02,
            pause_before_acting: 0.3,
            duplicate_callback_invocation: 0.0,
            pause_before_write: 0.1,
            throttled: 0.02,
            resume_racing: 0.02,
            racing_resumers: 0.0,
            reconcile_twice: 0.0,
            recovery_dies: 0.0,
            execution_dies: 0.01,
            start_lost: 0.005,
            reconciles_per_hour: 12.0,
            result_lost: 0.02,
            duplicate_invocation: 0.03,
            cancel: 0.08,
            delivery_lost: 0.03,
            delivery_late: 0.02,
            delivery_duplicated: 0.1,
            delivery_early: 0.2,
            resume_unavailable: 0.02,
            duplicate_post: 0.05,
            bus_unavailable: Windows::NONE,
            bus_throttling: Windows::NONE,
            store_throttling: Windows::NONE,
            lambda_throttling: Windows::NONE,
            start_throttling: Windows::NONE,
        }
    }
}

impl Faults {
    /// These faults, and late copies of AwaitDelivery invocations: a copy of an attempt
    /// that Step Functions retried stores its token after the retry's. The delivery must
    /// still resume the order (the store keeps the token of the newest execution and
    /// attempt, `$$.Execution.Name` and `$$.State.RetryCount`).
    pub fn with_late_callback_copies(self) -> Faults {
        Faults {
            duplicate_callback_invocation: 0.03,
            ..self
        }
    }

    /// Whether late copies of AwaitDelivery invocations are on.
    pub fn has_late_callback_copies(&self) -> bool {
        self.duplicate_callback_invocation > 0.0
    }

    /// These faults, and resumers racing (issue 30): on one order in ten, two to five
    /// resumers at random points of each other, while it runs and after an execution of
    /// it was stopped (three times as many executions stopped outside the saga); half the
    /// scheduled reconciler runs invoked twice; one recovery action in fifty dying at one
    /// of its control points.
    pub fn with_racing_resumers(self) -> Faults {
        Faults {
            racing_resumers: 0.1,
            reconcile_twice: 0.5,
            recovery_dies: 0.02,
            execution_dies: 3.0 * self.execution_dies,
            ..self
        }
    }

    /// Whether resumers race ([`Faults::with_racing_resumers`]).
    pub fn has_racing_resumers(&self) -> bool {
        self.racing_resumers > 0.0
    }

    /// These faults, and our own infrastructure failing for windows of time: the
    /// order-events bus unavailable or throttling, DynamoDB throttling 30 % of every
    /// request, Lambda throttling every invocation, each about twice per simulated hour
    /// for seconds to minutes; and Step Functions throttling half the starts in short
    /// bursts (a token bucket emptied by a burst of starts refills within seconds), about
    /// every 30 s for 2 to 10 s, so that the API's starts, all made while the orders
    /// arrive, meet them in most runs. A run of 100 orders (an hour of simulated time)
    /// meets several windows, some during the first minute when every order runs its
    /// forward steps, most while orders complete.
    ///
    /// Not in the defaults: the runs of the default faults are pinned by seed in tests
    /// (their draws and traces), and what these windows find waits on the definition (an
    /// infrastructure failure must wait, never roll an order back).
    pub fn with_infrastructure_faults(self) -> Faults {
        Faults {
            bus_unavailable: Windows {
                per_hour: 2.0,
                min_ms: 10_000,
                max_ms: 180_000,
                share: 1.0,
            },
            bus_throttling: Windows {
                per_hour: 2.0,
                min_ms: 30_000,
                max_ms: 300_000,
                share: 0.5,
            },
            store_throttling: Windows {
                per_hour: 2.0,
                min_ms: 30_000,
                max_ms: 300_000,
                share: 0.3,
            },
            lambda_throttling: Windows {
                per_hour: 2.0,
                min_ms: 10_000,
                max_ms: 180_000,
                share: 1.0,
            },
            start_throttling: Windows {
                per_hour: 120.0,
                min_ms: 2_000,
                max_ms: 10_000,
                share: 0.5,
            },
            ..self
        }
    }

    /// Whether any of our own services fails in windows
    /// ([`Faults::with_infrastructure_faults`]).
    pub fn has_infrastructure_faults(&self) -> bool {
        [
            self.bus_unavailable,
            self.bus_throttling,
            self.store_throttling,
            self.lambda_throttling,
            self.start_throttling,
        ]
        .iter()
        .any(Windows::is_on)
    }
}

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub orders: usize,
    pub faults: Faults,
    pub planted: Option<DropKeyOf>,
    /// Simulated milliseconds between two orders' arrivals, on average.
    pub arrival_gap_ms: u64,
    /// Whether the reconciler runs (at random points, and once after everything else
    /// ended). On by default: off, an order whose execution died stays where it stopped.
    pub reconciler: bool,
}

impl Options {
    pub fn new(seed: u64, orders: usize) -> Options {
        Options {
            seed,
            orders,
            faults: Faults::default(),
            planted: None,
            arrival_gap_ms: 200,
            reconciler: true,
        }
    }
}
