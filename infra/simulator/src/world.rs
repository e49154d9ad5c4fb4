//! One simulated run: orders placed over simulated time, each walked through the real
//! definition by an in-process Step Functions, its Tasks running the real activity
//! handlers over the audited in-memory ledger and the faked partners. Every decision
//! (arrival, fault, interleaving, jitter) comes from one generator seeded by the run's
//! seed; time is a simulated clock; one thread polls everything in the order of an event
//! queue, so a seed replays exactly.

use crate::definition::{matches, Definition, Next, Resource, State, Task, Test, Timeout};
pub use crate::faults::{Faults, Options};
use crate::handlers::{invoke, Env, Invocation, FUNCTIONS, FUNCTION_TIMEOUT_MS};
use crate::ledger::Audited;
use crate::partners::{shipment_id, SimPartners, UNDO};
use crate::paths::{self, PathError};
use order_core::activity::ActivityOutput;
use order_core::catalogue::Catalogue;
use order_core::delivery::{self, CourierEvent, DeliveryError, Resumed, TaskResumer};
use order_core::partners::PartnerFailure;
use order_core::steps::Partner;
use order_core::store::{Delivery, Ledger, Placement};
use order_core::{ActivityError, Order, OrderId, OrderKind, OrderStatus};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// One line of an order's trace.
#[derive(Debug, Clone)]
pub enum Trace {
    Partner {
        operation: &'static str,
        outcome: String,
    },
    Status {
        from: OrderStatus,
        to: OrderStatus,
    },
    Store {
        operation: &'static str,
    },
    Note(String),
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trace::Partner { operation, outcome } => write!(f, "  partner {operation}: {outcome}"),
            Trace::Status { from, to } => write!(f, "  ledger: status {from} -> {to}"),
            Trace::Store { operation } => {
                write!(f, "  ledger: {operation} failed (Store.Unavailable)")
            }
            Trace::Note(text) => write!(f, "{text}"),
        }
    }
}

/// Partner faults decided for one call.
pub struct PartnerFault {
    pub pause_before: bool,
    pub before: Option<PartnerFailure>,
    pub after: Option<PartnerFailure>,
}

/// What the world, the ledger and the partners share: the generator, the clock, the
/// traces and the violations.
pub struct Shared {
    dice: Mutex<Pcg64Mcg>,
    clock: AtomicU64,
    faults: Faults,
    index: Mutex<HashMap<OrderId, usize>>,
    traces: Mutex<Vec<Vec<(u64, Trace)>>>,
    violations: Mutex<Vec<(usize, String)>>,
    /// Per partner, outage windows in simulated milliseconds.
    outages: Vec<(Partner, u64, u64)>,
    /// The forward operation refused for good for an order, if any.
    refusals: Mutex<HashMap<OrderId, &'static str>>,
    /// How often each fault and interleaving happened.
    tally: Mutex<BTreeMap<&'static str, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn roll(&self) -> f64 {
        // 53 random bits: a uniform float in [0, 1).
        (lock(&self.dice).next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.roll() < p
    }

    fn below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            lock(&self.dice).next_u64() % n
        }
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// Counts one more of `what` (a fault or an interleaving) in the run's tally.
    pub fn count(&self, what: &'static str) {
        *lock(&self.tally).entry(what).or_default() += 1;
    }

    /// Adds a line to the trace of the order.
    pub fn note(&self, id: &OrderId, trace: Trace) {
        if let Some(&i) = lock(&self.index).get(id) {
            self.note_at(i, trace);
        }
    }

    fn note_at(&self, order: usize, trace: Trace) {
        let now = self.now();
        if let Some(lines) = lock(&self.traces).get_mut(order) {
            lines.push((now, trace));
        }
    }

    /// Records a broken invariant for the order.
    pub fn violation(&self, id: &OrderId, what: String) {
        if let Some(&i) = lock(&self.index).get(id) {
            self.violation_at(i, what);
        }
    }

    fn violation_at(&self, order: usize, what: String) {
        self.note_at(order, Trace::Note(format!("  VIOLATION: {what}")));
        lock(&self.violations).push((order, what));
    }

    /// Whether an activity pauses before this ledger write.
    pub fn pause_before_write(&self) -> bool {
        self.chance(self.faults.pause_before_write)
    }

    /// Whether the store fails this write.
    pub fn store_fault(&self) -> bool {
        self.chance(self.faults.store_unavailable)
    }

    /// The faults of one partner call.
    pub fn partner_fault(
        &self,
        order: &OrderId,
        partner: Partner,
        operation: &'static str,
    ) -> PartnerFault {
        let now = self.now();
        let pause_before = self.chance(self.faults.pause_before_acting);
        let compensation = UNDO.iter().any(|(_, undo)| *undo == operation);
        let before = if self
            .outages
            .iter()
            .any(|(p, from, to)| *p == partner && (*from..*to).contains(&now))
        {
            Some(PartnerFailure::Unavailable)
        } else if lock(&self.refusals).get(order) == Some(&operation)
            || (compensation && self.chance(self.faults.compensation_refusal))
        {
            Some(PartnerFailure::Refused {
                status: 422,
                code: "refused_in_simulation".into(),
            })
        } else if self.chance(self.faults.partner_transient) {
            Some(if self.chance(0.5) {
                PartnerFailure::Unavailable
            } else {
                PartnerFailure::Throttled
            })
        } else {
            None
        };
        let after = (before.is_none() && self.chance(self.faults.partner_timeout_after_acting))
            .then_some(PartnerFailure::Timeout);
        PartnerFault {
            pause_before,
            before,
            after,
        }
    }
}

/// Step Functions' `SendTaskSuccess`, in process: resumes the execution waiting with the
/// token, once.
pub struct SimResumer {
    shared: Arc<Shared>,
    /// Token -> still waiting.
    tokens: Mutex<HashMap<String, bool>>,
    resumed: Mutex<Vec<(String, Value)>>,
}

impl TaskResumer for SimResumer {
    async fn resume_task(
        &self,
        order_id: &OrderId,
        task_token: &str,
        delivery: &Delivery,
    ) -> Result<Resumed, String> {
        if self.shared.chance(self.shared.faults.resume_unavailable) {
            self.shared.note(
                order_id,
                Trace::Note("  SendTaskSuccess failed (simulated)".into()),
            );
            self.shared.count("SendTaskSuccess failed");
            return Err("SendTaskSuccess: simulated service error".into());
        }
        let mut tokens = lock(&self.tokens);
        match tokens.get_mut(task_token) {
            Some(waiting) if *waiting => {
                *waiting = false;
                let output = json!({
                    "event_id": delivery.event_id,
                    "shipment_id": delivery.shipment_id,
                    "delivered_at": delivery.delivered_at,
                });
                lock(&self.resumed).push((task_token.to_owned(), output));
                self.shared.count("SendTaskSuccess resumed a waiting task");
                self.shared.note(
                    order_id,
                    Trace::Note(format!("  SendTaskSuccess {task_token}: resumed")),
                );
                Ok(Resumed::Now)
            }
            _ => {
                self.shared
                    .count("SendTaskSuccess found no waiting task (ended or stale token)");
                self.shared.note(
                    order_id,
                    Trace::Note(format!(
                        "  SendTaskSuccess {task_token}: task does not exist (ended or unknown)"
                    )),
                );
                Ok(Resumed::AlreadyResumed)
            }
        }
    }
}

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

/// Polls a future that has no control point to its end (the webhook, a cancel, a
/// placement): they touch only the ledger and the in-process workflow.
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
    /// Stopped by an operator's resume onto a new execution.
    Aborted,
}

struct Execution {
    /// The order's index in the run.
    order: usize,
    arn: String,
    state: String,
    /// The input it started with (a resume starts the next execution with it).
    first_input: Value,
    input: Value,
    started: u64,
    entered: u64,
    /// Retries used per retrier of the current state.
    retries: Vec<u32>,
    /// The Task attempt whose result the execution waits for.
    waiting: Option<u64>,
    token: Option<String>,
    outcome: Option<Outcome>,
}

struct Running {
    future: Invocation,
    exec: usize,
    /// `None`: nobody waits for this invocation's result any more.
    attempt: Option<u64>,
    state: String,
    callback: bool,
    timeout_ms: u64,
}

#[derive(Debug, Clone)]
enum Event {
    Place(usize),
    Step(usize),
    Poll(u64),
    TaskTimeout { exec: usize, attempt: u64 },
    Webhook { order: usize, tries: u32 },
    Cancel(usize),
    Resume(usize),
}

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
    /// The order ids, by the order's index in the run.
    ids: Vec<OrderId>,
    /// The order's latest execution, by the order's index.
    latest: Vec<usize>,
}

impl<'d> World<'d> {
    pub fn new(definition: &'d Definition, options: Options) -> Result<World<'d>, SimError> {
        for (name, state) in &definition.states {
            if let State::Task(task) = state {
                if let Some(function) = &task.function {
                    if !FUNCTIONS.contains(&function.as_str()) {
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
            let expected = options.faults.outages_per_hour * span_ms as f64 / 3_600_000.0;
            let whole = expected.floor() as u64;
            let extra = u64::from(
                ((dice.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < expected.fract(),
            );
            for _ in 0..whole + extra {
                let from = dice.next_u64() % span_ms;
                let length = 5_000 + dice.next_u64() % 600_000;
                outages.push((partner, from, from + length));
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
            tally: Mutex::new(BTreeMap::new()),
        });
        let catalogue =
            Catalogue::builtin().map_err(|e| SimError::World(format!("catalogue: {e}")))?;
        let env = Env {
            ledger: Arc::new(Audited::new(shared.clone())),
            partners: Arc::new(SimPartners::new(shared.clone(), options.planted)),
            resumer: Arc::new(SimResumer {
                shared: shared.clone(),
                tokens: Mutex::new(HashMap::new()),
                resumed: Mutex::new(Vec::new()),
            }),
            catalogue: Arc::new(catalogue),
        };
        Ok(World {
            definition,
            options,
            shared,
            env,
            queue: BTreeMap::new(),
            seq: 0,
            executions: Vec::new(),
            running: HashMap::new(),
            next_invocation: 0,
            tokens: HashMap::new(),
            dead_letters: Vec::new(),
            ids: Vec::new(),
            latest: Vec::new(),
        })
    }

    fn now(&self) -> u64 {
        self.shared.now()
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time, self.seq), event);
    }

    fn after(&mut self, delay_ms: u64, event: Event) {
        let time = self.now() + delay_ms;
        self.at(time, event);
    }

    /// A line in the trace of execution `exec`'s order.
    fn note(&self, exec: usize, text: String) {
        self.shared
            .note_at(self.executions[exec].order, Trace::Note(text));
    }

    /// A line in the trace of order `order`.
    fn note_order(&self, order: usize, text: String) {
        self.shared.note_at(order, Trace::Note(text));
    }

    /// Runs every order to its end and checks the invariants.
    pub fn run(mut self) -> Result<Report, SimError> {
        let mut time = 0;
        for order in 0..self.options.orders {
            self.at(time, Event::Place(order));
            time += self.shared.below(2 * self.options.arrival_gap_ms + 1);
        }
        let mut invocations = 0;
        while let Some(((time, _), event)) = self.queue.pop_first() {
            self.shared.clock.store(time, Ordering::Relaxed);
            if matches!(event, Event::Poll(_)) {
                invocations += 1;
            }
            self.handle(event)?;
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
            let execution = &self.executions[latest];
            let name = match &execution.outcome {
                Some(Outcome::Failed { error, .. }) if error == "Workflow.DeadLettered" => {
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

    fn status(&self, order: usize) -> Result<OrderStatus, SimError> {
        let id = &self.ids[order];
        match finish(self.env.ledger.get_order(id))? {
            Ok(Some(record)) => Ok(record.status),
            other => Err(SimError::World(format!("order {id}: {other:?}"))),
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Place(order) => self.place(order),
            Event::Step(exec) => self.step(exec),
            Event::Poll(invocation) => self.poll(invocation),
            Event::TaskTimeout { exec, attempt } => {
                if self.executions[exec].waiting == Some(attempt) {
                    let state = self.executions[exec].state.clone();
                    self.note(
                        exec,
                        format!("  {state} invocation {attempt}: States.Timeout"),
                    );
                    self.task_failed(exec, "States.Timeout", "the Task timed out")
                } else {
                    Ok(())
                }
            }
            Event::Webhook { order, tries } => self.webhook(order, tries),
            Event::Resume(order) => self.resume(order),
            Event::Cancel(order) => {
                let id = self.ids[order].clone();
                let before = self.status(order)?;
                let cancelled = finish(order_core::recovery::cancel(&*self.env.ledger, &id))?;
                let outcome = match cancelled {
                    Ok(order_core::store::Cancellation::Started(_)) => {
                        self.shared.count("cancel started a rollback");
                        self.shared.count(match before {
                            OrderStatus::Accepted => {
                                "cancel started a rollback: the order was ACCEPTED"
                            }
                            OrderStatus::Validated => {
                                "cancel started a rollback: the order was VALIDATED"
                            }
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
    }

    fn place(&mut self, order: usize) -> Result<(), SimError> {
        let kind = match self.shared.below(3) {
            0 => OrderKind::NewMerchant,
            1 => OrderKind::AdditionalDevices,
            _ => OrderKind::Replacement,
        };
        let mut request =
            order_core::order::example_request(&format!("m-sim-{}-{order}", self.options.seed));
        request["kind"] = Value::from(kind.as_str());
        if kind == OrderKind::Replacement {
            request["lines"] = json!([{"sku": "A920-PRO", "quantity": 2}]);
            request["replace_serials"] = json!(["SN-FAULTY-0001", "SN-FAULTY-0002"]);
        }
        let parsed = Order::parse(&request, &self.env.catalogue)
            .map_err(|problems| SimError::World(format!("example order: {problems}")))?;
        let key = format!("sim-{}-{order}", self.options.seed);
        let hash = format!("hash-{order}");
        let placed = finish(self.env.ledger.place_order(&key, &parsed, &hash))?;
        let Ok(Placement::Created(record)) = placed else {
            return Err(SimError::World(format!(
                "placing order #{order}: {placed:?}"
            )));
        };
        let id = record.order_id.clone();
        lock(&self.shared.index).insert(id.clone(), order);
        self.ids.push(id.clone());
        self.note_order(order, format!("placed: {} order {id}", kind.as_str()));
        if self.shared.chance(self.options.faults.duplicate_post) {
            let again = finish(self.env.ledger.place_order(&key, &parsed, &hash))?;
            let same = matches!(&again, Ok(Placement::Replayed(r)) if r.order_id == id);
            self.note_order(
                order,
                format!(
                    "  the same request again under its key: {}",
                    if same {
                        "the same order"
                    } else {
                        "ANOTHER ORDER"
                    }
                ),
            );
            if !same {
                self.shared
                    .violation_at(order, format!("a repeated key gave {again:?}"));
            }
        }
        let arn = format!("arn:aws:states:sim:execution:OrderWorkflow:{id}");
        finish(self.env.ledger.set_execution_arn(&id, &arn))?
            .map_err(|e| SimError::World(e.to_string()))?;
        if self.shared.chance(self.options.faults.refusal) {
            let forward = [
                "reserve",
                "charge",
                "deactivate",
                "return_label",
                "provision",
                "ship",
            ];
            let refused = forward[self.shared.below(forward.len() as u64) as usize];
            self.note_order(
                order,
                format!("  the seed has the partner refuse {refused}"),
            );
            lock(&self.shared.refusals).insert(id.clone(), refused);
            self.shared
                .count("order with a forward call refused for good");
        }
        if self.shared.chance(self.options.faults.cancel) {
            let delay = self.shared.below(3_000);
            self.after(delay, Event::Cancel(order));
        }
        let input = json!({
            "order_id": id.to_string(),
            "config": {"outage_wait_seconds": 60, "delivery_timeout_seconds": 7200},
            "outage": {"waits": 0}
        });
        let exec = self.executions.len();
        self.latest.push(exec);
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
        if self.shared.chance(self.options.faults.resume_racing) {
            let delay = self.shared.below(30_000);
            self.after(delay, Event::Resume(order));
        }
        self.after(0, Event::Step(exec));
        Ok(())
    }

    /// An operator resumes the order onto a new execution (`orderctl orders resume
    /// --latest`): the running one is stopped (its in-flight invocations go on, their
    /// results unheard) and `<id>-r<n>` starts from the beginning, replaying the
    /// finished steps from the ledger.
    fn resume(&mut self, order: usize) -> Result<(), SimError> {
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

    fn context(&self, exec: usize) -> Value {
        let execution = &self.executions[exec];
        let entered = chrono::DateTime::from_timestamp_millis(execution.entered as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        json!({
            "Execution": {"Id": execution.arn},
            "State": {"Name": execution.state, "EnteredTime": entered},
            "Task": {"Token": execution.token},
        })
    }

    fn runtime_error(&mut self, exec: usize, error: PathError) -> Result<(), SimError> {
        let state = self.executions[exec].state.clone();
        self.end(
            exec,
            Outcome::Failed {
                error: "States.Runtime".into(),
                cause: format!("state {state}: {error}"),
            },
        );
        Ok(())
    }

    fn end(&mut self, exec: usize, outcome: Outcome) {
        self.note(exec, format!("execution ended: {outcome:?}"));
        self.executions[exec].outcome = Some(outcome);
    }

    fn go(&mut self, exec: usize, next: &Next) {
        match next {
            Next::End => self.end(exec, Outcome::Succeeded),
            Next::State(name) => {
                let now = self.now();
                let execution = &mut self.executions[exec];
                execution.state = name.clone();
                execution.entered = now;
                execution.retries.clear();
                let delay = self.shared.below(20);
                self.after(delay, Event::Step(exec));
            }
        }
    }

    fn state(&self, exec: usize) -> Result<&'d State, SimError> {
        let name = &self.executions[exec].state;
        self.definition
            .states
            .get(name)
            .ok_or_else(|| SimError::World(format!("no state {name}")))
    }

    fn step(&mut self, exec: usize) -> Result<(), SimError> {
        if self.executions[exec].outcome.is_some() {
            return Ok(());
        }
        let limit = self.definition.timeout_seconds.saturating_mul(1000);
        if self.now() - self.executions[exec].started > limit {
            self.end(
                exec,
                Outcome::Failed {
                    error: "States.Timeout".into(),
                    cause: "the execution ran past TimeoutSeconds".into(),
                },
            );
            return Ok(());
        }
        let name = self.executions[exec].state.clone();
        let state = self.state(exec)?;
        let input = self.executions[exec].input.clone();
        let context = self.context(exec);
        match state {
            State::Pass(pass) => {
                let value = match (&pass.parameters, &pass.result) {
                    (Some(parameters), _) => paths::fill(parameters, &input, &context),
                    (None, Some(result)) => Ok(result.clone()),
                    (None, None) => Ok(input.clone()),
                };
                match value.and_then(|v| paths::set(input, pass.result_path.as_deref(), v)) {
                    Ok(output) => {
                        self.note(exec, format!("{name} (Pass)"));
                        self.executions[exec].input = output;
                        self.go(exec, &pass.next);
                        Ok(())
                    }
                    Err(error) => self.runtime_error(exec, error),
                }
            }
            State::Choice(choice) => {
                let mut chosen = None;
                for (rule, next) in &choice.rules {
                    match evaluate(rule, &input, &context) {
                        Ok(true) => {
                            chosen = Some(next.clone());
                            break;
                        }
                        Ok(false) => {}
                        Err(error) => return self.runtime_error(exec, error),
                    }
                }
                let chosen = chosen.or_else(|| choice.default.clone());
                match chosen {
                    Some(next) => {
                        self.note(exec, format!("{name} (Choice) -> {next}"));
                        self.go(exec, &Next::State(next));
                    }
                    None => self.end(
                        exec,
                        Outcome::Failed {
                            error: "States.NoChoiceMatched".into(),
                            cause: format!("{name}: no rule matched"),
                        },
                    ),
                }
                Ok(())
            }
            State::Wait(wait) => {
                let Some(seconds) =
                    paths::get(&input, &context, &wait.seconds_path).and_then(Value::as_f64)
                else {
                    return self.runtime_error(
                        exec,
                        PathError(format!("SecondsPath {} is not a number", wait.seconds_path)),
                    );
                };
                self.note(exec, format!("{name} (Wait {seconds} s)"));
                self.shared.count("outage waited out (Wait state)");
                let Next::State(next) = &wait.next else {
                    self.end(exec, Outcome::Succeeded);
                    return Ok(());
                };
                let delay = (seconds * 1000.0) as u64;
                let now = self.now();
                let execution = &mut self.executions[exec];
                execution.state = next.clone();
                execution.retries.clear();
                execution.entered = now + delay;
                self.after(delay, Event::Step(exec));
                Ok(())
            }
            State::Succeed => {
                self.end(exec, Outcome::Succeeded);
                Ok(())
            }
            State::Fail { error, cause } => {
                self.end(
                    exec,
                    Outcome::Failed {
                        error: error.clone(),
                        cause: cause.clone(),
                    },
                );
                Ok(())
            }
            State::Task(task) => self.start_task(exec, &name, task, input),
        }
    }

    fn start_task(
        &mut self,
        exec: usize,
        name: &str,
        task: &'d Task,
        input: Value,
    ) -> Result<(), SimError> {
        self.next_invocation += 1;
        let attempt = self.next_invocation;
        let token =
            (task.resource == Resource::LambdaCallback).then(|| format!("tok-{exec}-{attempt}"));
        self.executions[exec].token = token.clone();
        let context = self.context(exec);
        let parameters = match paths::fill(&task.parameters, &input, &context) {
            Ok(p) => p,
            Err(error) => return self.runtime_error(exec, error),
        };
        if task.resource == Resource::SqsSend {
            self.note(
                exec,
                format!("{name} (SQS sendMessage): {}", parameters["MessageBody"]),
            );
            self.dead_letters
                .push((exec, parameters["MessageBody"].clone()));
            self.executions[exec].waiting = Some(attempt);
            return self.task_succeeded(exec, json!({"MessageId": format!("msg-{attempt}")}));
        }
        let timeout_s = match &task.timeout {
            Timeout::Seconds(s) => *s,
            Timeout::Path(path) => match paths::get(&input, &context, path).and_then(Value::as_u64)
            {
                Some(s) => s,
                None => {
                    return self.runtime_error(
                        exec,
                        PathError(format!("TimeoutSecondsPath {path} is not a number")),
                    )
                }
            },
        };
        let timeout_ms = timeout_s * 1000;
        let function = task.function.clone().unwrap_or_default();
        let payload = parameters["Payload"].clone();
        let retried: u32 = self.executions[exec].retries.iter().sum();
        self.note(
            exec,
            format!(
                "{name} (Task {function}) invocation {attempt}{}",
                if retried > 0 {
                    format!(", retry {retried}")
                } else {
                    String::new()
                }
            ),
        );
        self.executions[exec].waiting = Some(attempt);
        if self.shared.chance(self.options.faults.throttled) {
            self.shared.count("invocation throttled by Lambda");
            self.note(
                exec,
                "  Lambda throttled the invocation (Lambda.TooManyRequestsException)".into(),
            );
            return self.task_failed(
                exec,
                "Lambda.TooManyRequestsException",
                "simulated: the function's concurrency is used up",
            );
        }
        if let Some(token) = &token {
            lock(&self.env.resumer.tokens).insert(token.clone(), true);
            self.tokens.insert(token.clone(), (exec, attempt));
        }
        self.after(timeout_ms, Event::TaskTimeout { exec, attempt });
        let duplicate = if token.is_some() {
            self.options.faults.duplicate_callback_invocation
        } else {
            self.options.faults.duplicate_invocation
        };
        let copies = if self.shared.chance(duplicate) {
            self.note(exec, "  invoked twice (at-least-once)".into());
            self.shared.count("Task invoked twice");
            2
        } else {
            1
        };
        for copy in 0..copies {
            self.next_invocation += 1;
            let id = self.next_invocation;
            self.running.insert(
                id,
                Running {
                    future: invoke(&function, payload.clone(), self.env.clone()),
                    exec,
                    attempt: (copy == 0).then_some(attempt),
                    state: name.to_owned(),
                    callback: token.is_some(),
                    timeout_ms,
                },
            );
            let delay = 1 + self.shared.below(if copy == 0 { 50 } else { 2_000 });
            self.after(delay, Event::Poll(id));
        }
        Ok(())
    }

    fn poll(&mut self, id: u64) -> Result<(), SimError> {
        let Some(mut running) = self.running.remove(&id) else {
            return Ok(());
        };
        let mut cx = Context::from_waker(Waker::noop());
        let polled = running.future.as_mut().poll(&mut cx);
        self.drain_partners();
        match polled {
            Poll::Ready(result) => {
                self.drain_resumed()?;
                self.finished(running, result)
            }
            Poll::Pending => {
                let exec = running.exec;
                let state = running.state.clone();
                if let Some(attempt) = running.attempt {
                    if self.shared.chance(self.options.faults.crash) {
                        self.shared.count("invocation crashed at a control point");
                        self.note(exec, format!("  {state} invocation {attempt}: the function crashed (Runtime.ExitError)"));
                        if self.executions[exec].waiting == Some(attempt) {
                            return self.task_failed(exec, "Runtime.ExitError", "simulated crash");
                        }
                        return Ok(());
                    }
                    if !running.callback && self.shared.chance(self.options.faults.overrun) {
                        self.shared.count("invocation overran its Task timeout");
                        self.note(
                            exec,
                            format!(
                                "  {state} invocation {attempt}: the function overruns its timeout"
                            ),
                        );
                        if FUNCTION_TIMEOUT_MS < running.timeout_ms {
                            // Lambda stops the function at its own timeout, before the
                            // Task's: the invocation ends there (Sandbox.Timedout) and acts
                            // no more.
                            if self.executions[exec].waiting == Some(attempt) {
                                return self.task_failed(
                                    exec,
                                    "Sandbox.Timedout",
                                    "the function ran past its timeout",
                                );
                            }
                            return Ok(());
                        }
                        running.attempt = None;
                        // A function timeout longer than the Task's: a hung invocation
                        // goes on for the difference after its Task timed out.
                        let alive = FUNCTION_TIMEOUT_MS.saturating_sub(running.timeout_ms);
                        let delay = running.timeout_ms + self.shared.below(alive.max(1));
                        self.running.insert(id, running);
                        self.after(delay, Event::Poll(id));
                        return Ok(());
                    }
                }
                let delay = self.shared.below(300);
                self.running.insert(id, running);
                self.after(delay, Event::Poll(id));
                Ok(())
            }
        }
    }

    fn finished(
        &mut self,
        running: Running,
        result: Result<ActivityOutput, ActivityError>,
    ) -> Result<(), SimError> {
        let exec = running.exec;
        let described = match &result {
            Ok(out) => format!(
                "ok, {} (attempts {}, replayed {})",
                out.status, out.attempts, out.replayed
            ),
            Err(e) => format!("{}: {}", e.name.as_str(), e.message),
        };
        let Some(attempt) = running.attempt else {
            self.shared
                .count("late or duplicate invocation finished after its Task moved on");
            self.note(
                exec,
                format!(
                    "  {} late or duplicate invocation ended, ignored: {described}",
                    running.state
                ),
            );
            return Ok(());
        };
        if self.executions[exec].waiting != Some(attempt) {
            self.note(
                exec,
                format!(
                    "  {} invocation {attempt} ended after its Task did, ignored: {described}",
                    running.state
                ),
            );
            return Ok(());
        }
        self.note(
            exec,
            format!("  {} invocation {attempt}: {described}", running.state),
        );
        if running.callback {
            return match result {
                Ok(_) => Ok(()),
                Err(error) => self.task_failed(exec, error.name.as_str(), &cause(&error)),
            };
        }
        if self.shared.chance(self.options.faults.result_lost) {
            self.shared.count("result lost after the function finished");
            self.note(
                exec,
                "  the result was lost on its way back (Lambda.ServiceException)".into(),
            );
            return self.task_failed(exec, "Lambda.ServiceException", "simulated: result lost");
        }
        match result {
            Ok(output) => {
                let payload = serde_json::to_value(&output)
                    .map_err(|e| SimError::World(format!("output: {e}")))?;
                self.task_succeeded(exec, json!({"Payload": payload, "StatusCode": 200}))
            }
            Err(error) => self.task_failed(exec, error.name.as_str(), &cause(&error)),
        }
    }

    fn current_task(&self, exec: usize) -> Result<&'d Task, SimError> {
        match self.state(exec)? {
            State::Task(task) => Ok(task),
            _ => Err(SimError::World(format!(
                "{} is not a Task",
                self.executions[exec].state
            ))),
        }
    }

    fn end_attempt(&mut self, exec: usize) {
        self.executions[exec].waiting = None;
        if let Some(token) = self.executions[exec].token.take() {
            lock(&self.env.resumer.tokens).insert(token.clone(), false);
            self.tokens.remove(&token);
        }
    }

    fn task_succeeded(&mut self, exec: usize, raw: Value) -> Result<(), SimError> {
        let task = self.current_task(exec)?;
        let context = self.context(exec);
        self.end_attempt(exec);
        let result = match &task.result_selector {
            Some(selector) => paths::fill(selector, &raw, &context),
            None => Ok(raw),
        };
        let input = std::mem::take(&mut self.executions[exec].input);
        match result.and_then(|r| paths::set(input, task.result_path.as_deref(), r)) {
            Ok(output) => {
                self.executions[exec].input = output;
                self.go(exec, &task.next);
                Ok(())
            }
            Err(error) => self.runtime_error(exec, error),
        }
    }

    fn task_failed(&mut self, exec: usize, error: &str, cause: &str) -> Result<(), SimError> {
        let task = self.current_task(exec)?;
        self.end_attempt(exec);
        let name = self.executions[exec].state.clone();
        if let Some(index) = task.retry.iter().position(|r| matches(&r.errors, error)) {
            let retrier = &task.retry[index];
            let retries = &mut self.executions[exec].retries;
            if retries.len() < task.retry.len() {
                retries.resize(task.retry.len(), 0);
            }
            let used = retries[index];
            if used < retrier.max_attempts {
                retries[index] += 1;
                let mut delay = retrier.interval_seconds * retrier.backoff_rate.powi(used as i32);
                if let Some(max) = retrier.max_delay_seconds {
                    delay = delay.min(max);
                }
                self.shared.count("Retry");
                let mut delay_ms = (delay * 1000.0) as u64;
                if retrier.full_jitter {
                    delay_ms = self.shared.below(delay_ms + 1);
                }
                self.note(
                    exec,
                    format!(
                        "  Retry {error} ({}/{}) in {delay_ms} ms",
                        used + 1,
                        retrier.max_attempts
                    ),
                );
                self.after(delay_ms, Event::Step(exec));
                return Ok(());
            }
        }
        match task.catch.iter().find(|c| matches(&c.errors, error)) {
            Some(catcher) => {
                self.shared.count("Catch");
                self.note(exec, format!("  Catch {error} -> {}", catcher.next));
                let input = std::mem::take(&mut self.executions[exec].input);
                let caught = json!({"Error": error, "Cause": cause});
                match paths::set(input, catcher.result_path.as_deref(), caught) {
                    Ok(output) => {
                        self.executions[exec].input = output;
                        self.go(exec, &Next::State(catcher.next.clone()));
                        Ok(())
                    }
                    Err(e) => self.runtime_error(exec, e),
                }
            }
            None => {
                self.end(
                    exec,
                    Outcome::Failed {
                        error: error.to_owned(),
                        cause: format!("{name}: {cause}"),
                    },
                );
                Ok(())
            }
        }
    }

    /// The courier books webhooks for shipments the partners took.
    fn drain_partners(&mut self) {
        let shipped = std::mem::take(&mut self.env.partners.book().shipped);
        for id in shipped {
            let Some(&order) = lock(&self.shared.index).get(&id) else {
                continue;
            };
            let faults = self.options.faults.clone();
            if self.shared.chance(faults.delivery_lost) {
                self.shared.count("delivery event lost");
                self.note_order(
                    order,
                    "  courier: this parcel's delivery event will never come".into(),
                );
                continue;
            }
            let delay = if self.shared.chance(faults.delivery_early) {
                self.shared
                    .count("delivery event sent right after the booking");
                self.shared.below(200)
            } else {
                1_000 + self.shared.below(3_600_000)
            };
            self.after(delay, Event::Webhook { order, tries: 0 });
            if self.shared.chance(faults.delivery_duplicated) {
                self.shared.count("delivery event sent twice");
                let again = delay + self.shared.below(600_000);
                self.after(again, Event::Webhook { order, tries: 0 });
            }
        }
    }

    /// Executions resumed by `SendTaskSuccess` go on.
    fn drain_resumed(&mut self) -> Result<(), SimError> {
        let resumed = std::mem::take(&mut *lock(&self.env.resumer.resumed));
        for (token, output) in resumed {
            if let Some(&(exec, attempt)) = self.tokens.get(&token) {
                if self.executions[exec].waiting == Some(attempt) {
                    let state = self.executions[exec].state.clone();
                    self.note(
                        exec,
                        format!("  {state} invocation {attempt}: resumed by its token"),
                    );
                    self.task_succeeded(exec, output)?;
                }
            }
        }
        Ok(())
    }

    fn webhook(&mut self, order: usize, tries: u32) -> Result<(), SimError> {
        let id = self.ids[order].clone();
        let event = CourierEvent {
            event_id: format!("evt-{id}"),
            kind: delivery::DELIVERED.to_owned(),
            order_id: id.to_string(),
            shipment_id: shipment_id(&id),
            tracking_number: None,
            occurred_at: "2026-11-29T00:00:00.000Z".to_owned(),
        };
        let delivered = finish(delivery::deliver(
            &*self.env.ledger,
            &*self.env.resumer,
            &id,
            &event,
        ))?;
        let retry = match &delivered {
            Ok(d) => {
                self.shared.count(match (d.duplicate, d.resumed) {
                    (true, _) => "webhook: a repeated event",
                    (false, Some(true)) => "webhook: recorded and resumed the waiting task",
                    (false, Some(false)) => "webhook: recorded, the task was not waiting any more",
                    (false, None) => "webhook: recorded before AwaitDelivery stored its token",
                });
                self.note_order(
                    order,
                    format!(
                        "courier webhook (try {tries}): recorded, duplicate {}, resumed {:?}",
                        d.duplicate, d.resumed
                    ),
                );
                false
            }
            Err(DeliveryError::WrongShipment { .. }) => {
                self.shared.violation_at(
                    order,
                    format!("the webhook's shipment was refused: {delivered:?}"),
                );
                false
            }
            Err(error) => {
                self.shared
                    .count("webhook refused (not shipped yet, or rolled back), courier retries");
                self.note_order(
                    order,
                    format!("courier webhook (try {tries}): refused: {error}"),
                );
                true
            }
        };
        self.drain_resumed()?;
        if retry && tries < 6 {
            let delay = 30_000 * 2u64.pow(tries);
            self.after(
                delay,
                Event::Webhook {
                    order,
                    tries: tries + 1,
                },
            );
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> Result<(), SimError> {
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

/// The Cause Step Functions reports for a Lambda error.
fn cause(error: &ActivityError) -> String {
    json!({"errorType": error.name.as_str(), "errorMessage": error.message}).to_string()
}

/// Whether a Choice rule holds. `And` stops at its first false rule; a comparison other
/// than `IsPresent` on a variable that is not there is the execution's `States.Runtime`
/// error, as in Step Functions (which is why the definition asks `IsPresent` first).
fn evaluate(
    rule: &crate::definition::Rule,
    input: &Value,
    context: &Value,
) -> Result<bool, PathError> {
    use crate::definition::Rule;
    match rule {
        Rule::And(rules) => {
            for rule in rules {
                if !evaluate(rule, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Test { variable, test } => {
            let value = paths::get(input, context, variable);
            if let Test::IsPresent(want) = test {
                return Ok(value.is_some() == *want);
            }
            let Some(value) = value else {
                return Err(PathError(format!(
                    "the Choice rule's variable {variable} is not in the input"
                )));
            };
            let number = value.as_f64();
            Ok(match test {
                Test::IsPresent(_) => true,
                Test::IsNumeric(want) => number.is_some() == *want,
                Test::NumericEquals(n) => number.is_some_and(|v| v == *n),
                Test::NumericLessThan(n) => number.is_some_and(|v| v < *n),
                Test::NumericGreaterThanEquals(n) => number.is_some_and(|v| v >= *n),
                Test::NumericLessThanEquals(n) => number.is_some_and(|v| v <= *n),
                Test::StringEquals(s) => value.as_str() == Some(s.as_str()),
            })
        }
    }
}
