//! One simulated run: orders placed over simulated time, each walked through the real
//! definition by an in-process Step Functions, its Tasks running the real activity
//! handlers over the audited in-memory ledger and the faked partners. Every decision
//! (arrival, fault, interleaving, jitter) comes from one generator seeded by the run's
//! seed; time is a simulated clock; one thread polls everything in the order of an event
//! queue, so a seed replays exactly.
//!
//! - [`shared`]: the generator, the clock, traces, violations and the tally, shared with
//!   the ledger and the partners.
//! - `queue`: the event queue on the simulated clock.
//! - `api`: an order placed and its execution started, the merchant trying again after a
//!   503.
//! - `interpreter`: Pass, Choice, Wait, Succeed, Fail; moving on and ending.
//! - `tasks`: Task attempts, invocations polled at control points, Retry and Catch.
//! - [`courier`]: the delivery webhooks and `SendTaskSuccess`.
//! - [`control_plane`]: Step Functions' control plane and the dead-letter queue, for
//!   the real recovery code.
//! - `actions`: recovery actions (a cancel, the resumers, the reconciler, the API's start,
//!   the webhook) polled at every ledger and Step Functions call, as invocations are.
//! - `operators`: a cancel, the resumers racing, the reconciler, an execution that dies.
//! - `invariants`: what every order must satisfy after the run, and what must hold at
//!   every instant of it (checked as it happens).

mod actions;
mod api;
pub mod control_plane;
pub mod courier;
mod interpreter;
mod invariants;
mod operators;
mod queue;
pub mod shared;
mod tasks;

use crate::bus::SimBus;
use crate::definition::{Definition, State};
pub use crate::faults::{Faults, Options, Windows};
use crate::handlers::{is_wired, Env};
use crate::ledger::Audited;
use crate::partners::SimPartners;
pub use control_plane::{SimDeadLetterQueue, SimStepFunctions};
pub use courier::SimResumer;
pub use invariants::{
    AGREED_ORDER, CANCELLED_HOLDING, DELIVERED_UNDONE, DELIVERY_RESUMED_NOTHING, NOT_THE_OWNER,
    TWO_RUNNING,
};
pub use operators::{
    reconcile_options, MAX_RESUMES, RECONCILER_CONCURRENCY, RECONCILE_GRACE_SECONDS,
    RECONCILE_LIMIT,
};
use order_core::catalogue::Catalogue;
use order_core::dead_letters::DeadLetterBody;
use order_core::steps::Partner;
use order_core::{Order, OrderId, OrderStatus};
use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde_json::{json, Value};
pub(crate) use shared::lock;
pub use shared::{PartnerFault, Service, Shared, Trace};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tasks::Running;

/// Why a run could not go on: the definition uses what is not modelled, or the world
/// itself failed. Never an invariant (those are violations in the report).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Definition(#[from] crate::definition::DefinitionError),
    #[error("state {state}: {field} is not modelled by the simulator ({detail})")]
    Unsupported {
        state: String,
        field: String,
        detail: String,
    },
    #[error("the simulated world failed: {0}")]
    World(String),
}

/// How long AwaitDelivery waits for the courier (the executions' `config`), in simulated
/// milliseconds.
const DELIVERY_TIMEOUT_MS: u64 = 7_200_000;

/// Salt of the generator our own services' fault windows are drawn from.
const INFRASTRUCTURE_STREAM: u64 = 0x1f5a_7c3e_9d20_b461;

/// Reconciler runs after the run that may fail on our infrastructure before the world
/// gives up: far more than the windows can fail.
const MAX_FAILED_RECONCILES: usize = 100;

/// Polls a future that has no control point to its end (a placement, the world's own
/// looks): outside a recovery action, the ledger's calls are not control points.
fn finish<T>(future: impl Future<Output = T>) -> Result<T, SimError> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return Ok(value);
        }
    }
    Err(SimError::World(
        "a future without control points kept pending".into(),
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed {
        error: String,
        cause: String,
    },
    /// Stopped (`StopExecution`): by an operator's resume onto a new execution, or by
    /// something outside the saga (the seed's `execution_dies`).
    Aborted,
}

struct Execution {
    /// The order's index in the run.
    order: usize,
    arn: String,
    state: String,
    input: Value,
    started: u64,
    entered: u64,
    /// Retries used per retrier of the current state.
    retries: Vec<u32>,
    /// The Task attempt whose result the execution waits for.
    waiting: Option<u64>,
    token: Option<String>,
    outcome: Option<Outcome>,
    /// When it ended (simulated milliseconds).
    ended: u64,
}

#[derive(Debug, Clone)]
enum Event {
    Place(usize),
    /// The merchant sends the order's request again under its key, after a 503.
    Submit {
        order: usize,
        tries: u32,
    },
    Step(usize),
    Poll(u64),
    TaskTimeout {
        exec: usize,
        attempt: u64,
    },
    Webhook {
        order: usize,
        tries: u32,
    },
    /// A cancel through the API; `tries`: the merchant's retries after a 503.
    Cancel {
        order: usize,
        tries: u32,
    },
    /// A resumer moves the order onto a new execution.
    Resume {
        order: usize,
        by: actions::Resumer,
    },
    /// Several resumers race on the order.
    Race(usize),
    /// The execution is stopped by something outside the saga.
    Die(usize),
    /// A reconciler run.
    Reconcile {
        by: actions::Reconciler,
    },
    /// A recovery action in flight is polled.
    Act(u64),
    /// `publish-events` polls the table's stream: outbox items go to the bus.
    Stream,
}

/// How often the table's stream is polled for outbox items (Lambda polls a DynamoDB
/// stream's shards about four times a second; a coarser poll keeps runs fast and still
/// lands inside the bus's windows).
const STREAM_POLL_MS: u64 = 1_000;

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub orders: usize,
    /// Orders by how they ended: status name, or `DEAD_LETTERED`.
    pub outcomes: BTreeMap<String, usize>,
    /// Broken invariants: (order index, what).
    pub violations: Vec<(usize, String)>,
    /// Every order's trace, as text.
    pub traces: Vec<String>,
    /// Task invocations run (including retries, duplicates and crashes).
    pub invocations: u64,
    /// Simulated time the run spanned, in milliseconds.
    pub simulated_ms: u64,
    /// How often each fault and interleaving happened.
    pub tally: BTreeMap<&'static str, u64>,
}

impl Report {
    /// The trace of one order, or an empty string.
    pub fn trace(&self, order: usize) -> &str {
        self.traces.get(order).map_or("", String::as_str)
    }
}

/// What the world saw of one order besides the ledger: what the saga must ride out and
/// what it may not, for the invariants.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// A cancel took effect (the order went CANCELLING).
    cancelled: bool,
    /// An execution of it was stopped by something outside the saga.
    stopped_outside: bool,
    /// The courier's delivery event for it never comes (the parcel was lost).
    delivery_lost: bool,
    /// The courier delivers its parcel around the delivery timeout: the rollback for a
    /// parcel that never came may begin before it does.
    delivery_late: bool,
    /// The first compensation Task started for it, if any.
    compensation: Option<String>,
    /// The merchant gave up placing it: every try met a 503 before it was stored.
    never_placed: bool,
    /// When the courier's webhook first accepted its delivery (simulated milliseconds).
    delivered: Option<u64>,
    /// The invariants checked as they happen that it broke already (each is reported
    /// once per order).
    broke: BTreeSet<&'static str>,
}

/// The world of one run.
pub struct World<'d> {
    definition: &'d Definition,
    options: Options,
    shared: Arc<Shared>,
    env: Env,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    executions: Vec<Execution>,
    running: HashMap<u64, Running>,
    next_invocation: u64,
    /// Token -> (execution, attempt).
    tokens: HashMap<String, (usize, u64)>,
    dead_letters: Vec<(usize, Value)>,
    /// The order ids, by the order's index in the run (none until it is stored).
    ids: Vec<Option<OrderId>>,
    /// The orders' requests, by index, for the merchant's tries.
    requests: Vec<Option<Order>>,
    /// What the world saw of each order, by index.
    seen: Vec<Seen>,
    /// The order's latest execution, by the order's index (none while its start was
    /// lost).
    latest: Vec<Option<usize>>,
    /// Executions by ARN.
    by_arn: HashMap<String, usize>,
    /// Every execution of each order, by the order's index.
    runs: Vec<Vec<usize>>,
    /// Recovery actions in flight, by id.
    actions: HashMap<u64, actions::Acting>,
    next_action: u64,
    /// The reconciler's Lambda invocations running, by action id.
    reconcilers: BTreeSet<u64>,
    /// Step Functions' control plane, for the recovery code.
    step_functions: Arc<SimStepFunctions>,
    /// The dead-letter queue the reconciler parks orders in.
    parking: Arc<SimDeadLetterQueue>,
    /// The orders the reconciler parked: (order index, dead letter).
    parked: Vec<(usize, DeadLetterBody)>,
    /// Whether the last reconciler run resumed an order.
    reconciler_resumed: bool,
    /// Whether the last reconciler run failed on our infrastructure.
    reconciler_failed: bool,
    /// Whether a poll of the table's stream is queued.
    stream_polling: bool,
}

impl<'d> World<'d> {
    pub fn new(definition: &'d Definition, options: Options) -> Result<World<'d>, SimError> {
        for (name, state) in &definition.states {
            if let State::Task(task) = state {
                if let Some(function) = &task.function {
                    if !is_wired(function) {
                        return Err(SimError::Unsupported {
                            state: name.clone(),
                            field: "Parameters.FunctionName".into(),
                            detail: format!("no handler is wired for {function}"),
                        });
                    }
                }
            }
        }
        let mut dice = Pcg64Mcg::seed_from_u64(options.seed);
        let span_ms = options.orders as u64 * options.arrival_gap_ms + 3_600_000;
        let mut outages = Vec::new();
        for partner in Partner::ALL.iter().copied() {
            let per_hour = options.faults.outages_per_hour;
            for (from, to) in shared::draw_windows(&mut dice, per_hour, 5_000, 605_000, span_ms) {
                outages.push((partner, from, to));
            }
        }
        // Our own services' windows from a generator of their own: the same seed places,
        // faults and interleaves its orders alike with and without them until a window
        // first bites.
        let mut infrastructure = Pcg64Mcg::seed_from_u64(options.seed ^ INFRASTRUCTURE_STREAM);
        let mut windows = Vec::new();
        for service in Service::ALL {
            let w = service.windows(&options.faults);
            if w.is_on() {
                let drawn = shared::draw_windows(
                    &mut infrastructure,
                    w.per_hour,
                    w.min_ms,
                    w.max_ms,
                    span_ms,
                );
                windows.extend(drawn.into_iter().map(|(from, to)| (service, from, to)));
            }
        }
        let shared = Arc::new(Shared {
            dice: Mutex::new(dice),
            clock: AtomicU64::new(0),
            faults: options.faults.clone(),
            index: Mutex::new(HashMap::new()),
            traces: Mutex::new(vec![Vec::new(); options.orders]),
            violations: Mutex::new(Vec::new()),
            outages,
            refusals: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            windows,
            tally: Mutex::new(BTreeMap::new()),
            acting: AtomicBool::new(false),
            owners: Mutex::new(Vec::new()),
            moves: Mutex::new(Vec::new()),
            parcels: Mutex::new(HashMap::new()),
            recalled: Mutex::new(HashSet::new()),
        });
        let catalogue =
            Catalogue::builtin().map_err(|e| SimError::World(format!("catalogue: {e}")))?;
        let bus = Arc::new(SimBus::new(shared.clone()));
        let env = Env {
            ledger: Arc::new(Audited::new(shared.clone(), bus.clone())),
            partners: Arc::new(SimPartners::new(shared.clone(), options.planted)),
            resumer: Arc::new(SimResumer {
                shared: shared.clone(),
                tokens: Mutex::new(HashMap::new()),
                resumed: Mutex::new(Vec::new()),
            }),
            catalogue: Arc::new(catalogue),
            caller: order_core::callers::Principal::parse(
                "arn:aws:iam::123456789012:role/simulated-portal",
            )
            .map_err(|e| SimError::World(e.to_string()))?,
            events: bus,
        };
        let orders = options.orders;
        Ok(World {
            definition,
            options,
            env,
            queue: BTreeMap::new(),
            seq: 0,
            executions: Vec::new(),
            running: HashMap::new(),
            next_invocation: 0,
            tokens: HashMap::new(),
            dead_letters: Vec::new(),
            ids: vec![None; orders],
            requests: vec![None; orders],
            seen: vec![Seen::default(); orders],
            latest: vec![None; orders],
            by_arn: HashMap::new(),
            runs: vec![Vec::new(); orders],
            actions: HashMap::new(),
            next_action: 0,
            reconcilers: BTreeSet::new(),
            step_functions: Arc::new(SimStepFunctions::new(
                shared.clone(),
                json!({"outage_wait_seconds": 60, "delivery_timeout_seconds": DELIVERY_TIMEOUT_MS / 1000, "outage_waits_allowed": 144}),
            )),
            shared,
            parking: Arc::new(SimDeadLetterQueue::default()),
            parked: Vec::new(),
            reconciler_resumed: false,
            reconciler_failed: false,
            stream_polling: false,
        })
    }

    /// Runs every order to its end and checks the invariants.
    pub fn run(mut self) -> Result<Report, SimError> {
        let mut time = 0;
        for order in 0..self.options.orders {
            self.at(time, Event::Place(order));
            time += self.shared.below(2 * self.options.arrival_gap_ms + 1);
        }
        // The reconciler at random points while orders run (on AWS every 5 minutes).
        let span_ms = time + 3_600_000;
        let runs = match self.options.reconciler {
            true => self.options.faults.reconciles_per_hour * span_ms as f64 / 3_600_000.0,
            false => 0.0,
        };
        for _ in 0..runs.round() as u64 {
            let at = self.shared.below(span_ms);
            self.at(
                at,
                Event::Reconcile {
                    by: actions::Reconciler::Scheduled { last: false },
                },
            );
            // Lambda invokes the scheduled reconciler asynchronously, at least once: now
            // and then a second invocation comes (held back while the first runs, by the
            // function's reserved concurrency).
            if self.shared.chance(self.options.faults.reconcile_twice) {
                let twin = at + self.shared.below(1_000);
                self.at(
                    twin,
                    Event::Reconcile {
                        by: actions::Reconciler::Duplicate,
                    },
                );
            }
        }
        let mut invocations = 0;
        // Then as its schedule would once everything else ended, past the grace period,
        // until a run resumes nothing: an order whose execution died is resumed or parked.
        // A run that failed on our infrastructure is followed by another, as the schedule
        // would.
        let (mut resumed, mut failed) = (0, 0);
        for round in 0.. {
            while let Some(((time, _), event)) = self.queue.pop_first() {
                self.shared.clock.store(time, Ordering::Relaxed);
                if matches!(event, Event::Poll(_)) {
                    invocations += 1;
                }
                let stream = matches!(event, Event::Stream);
                self.handle(event)?;
                self.check_as_it_happens()?;
                // The stream is polled while outbox items wait (never to keep the run
                // going on its own: it stops once nothing else is queued).
                if self.env.events.has_pending() && (stream || !self.stream_polling) {
                    self.stream_polling = !self.queue.is_empty();
                    if self.stream_polling {
                        self.after(STREAM_POLL_MS, Event::Stream);
                    }
                } else if stream {
                    self.stream_polling = false;
                }
            }
            if !self.options.reconciler {
                break;
            }
            if round > 0 {
                match (self.reconciler_failed, self.reconciler_resumed) {
                    (true, _) => failed += 1,
                    (false, true) => resumed += 1,
                    (false, false) => break,
                }
            }
            if resumed > 2 * MAX_RESUMES as usize + 2 {
                return Err(SimError::World(
                    "the reconciler kept resuming orders after the run".into(),
                ));
            }
            if failed > MAX_FAILED_RECONCILES {
                return Err(SimError::World(
                    "the reconciler kept failing after the run".into(),
                ));
            }
            let grace_ms = RECONCILE_GRACE_SECONDS * 1000;
            let by = actions::Reconciler::Scheduled { last: true };
            self.after(grace_ms + 1, Event::Reconcile { by });
        }
        self.check_invariants()?;
        let violations = std::mem::take(&mut *lock(&self.shared.violations));
        let traces = lock(&self.shared.traces)
            .iter()
            .enumerate()
            .map(|(i, lines)| {
                let mut text = format!(
                    "order #{i} ({})\n",
                    self.ids
                        .get(i)
                        .and_then(Option::as_ref)
                        .map_or("not placed".into(), ToString::to_string)
                );
                for (at, line) in lines {
                    text.push_str(&format!("{:>10.3}s {line}\n", *at as f64 / 1000.0));
                }
                text
            })
            .collect();
        let mut outcomes = BTreeMap::new();
        for (i, &latest) in self.latest.iter().enumerate() {
            let execution = latest.map(|e| &self.executions[e]);
            let name = match execution.map(|e| (e, &e.outcome)) {
                _ if self.seen[i].never_placed => "NOT PLACED (the merchant gave up)".to_owned(),
                _ if self.parked_now(i)? => {
                    format!("PARKED by the reconciler ({})", self.status(i)?)
                }
                Some((execution, Some(Outcome::Failed { error, .. })))
                    if error == "Workflow.DeadLettered" =>
                {
                    let letter = &execution.input["dead_letter"];
                    format!(
                        "DEAD_LETTERED at {} ({})",
                        letter["step"].as_str().unwrap_or("?"),
                        letter["error"]["Error"].as_str().unwrap_or("?")
                    )
                }
                _ => self.status(i)?.as_str().to_owned(),
            };
            *outcomes.entry(name).or_default() += 1;
        }
        Ok(Report {
            seed: self.options.seed,
            orders: self.options.orders,
            outcomes,
            violations,
            traces,
            invocations,
            simulated_ms: self.now(),
            tally: std::mem::take(&mut *lock(&self.shared.tally)),
        })
    }

    /// The id of order `order`, once it is stored.
    fn id(&self, order: usize) -> Result<OrderId, SimError> {
        self.ids
            .get(order)
            .and_then(Option::clone)
            .ok_or_else(|| SimError::World(format!("order #{order} is not stored")))
    }

    /// The order as it stands (the world's own look, which no fault fails).
    fn record(&self, order: usize) -> Result<order_core::store::OrderRecord, SimError> {
        let id = self.id(order)?;
        match finish(self.env.ledger.look(&id))? {
            Ok(Some(record)) => Ok(record),
            other => Err(SimError::World(format!("order {id}: {other:?}"))),
        }
    }

    /// Whether the order stands parked for an operator (the reconciler's mark, which a
    /// resume clears).
    fn parked_now(&self, order: usize) -> Result<bool, SimError> {
        Ok(self.record(order)?.parked.is_some())
    }

    fn status(&self, order: usize) -> Result<OrderStatus, SimError> {
        Ok(self.record(order)?.status)
    }

    fn handle(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Place(order) => self.place(order),
            Event::Submit { order, tries } => self.submit(order, tries),
            Event::Step(exec) => self.step(exec),
            Event::Poll(invocation) => self.poll(invocation),
            Event::TaskTimeout { exec, attempt } => self.task_timeout(exec, attempt),
            Event::Webhook { order, tries } => self.webhook(order, tries),
            Event::Resume { order, by } => self.resume(order, by),
            Event::Race(order) => self.race(order),
            Event::Cancel { order, tries } => self.cancel(order, tries),
            Event::Die(exec) => self.die(exec),
            Event::Reconcile { by } => self.reconcile(by),
            Event::Act(action) => self.act(action),
            Event::Stream => {
                if finish(self.env.events.pump())? > 0 {
                    self.shared
                        .count("an outbox event waited for the bus to take it");
                }
                Ok(())
            }
        }
    }
}
