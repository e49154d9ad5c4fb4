//! Deterministic simulation of the order saga (issue 12): the real activity handlers
//! (every function crate's `handle`) over the in-memory ledger, the partners faked in
//! process with faults drawn from a seed, and the real state machine definition
//! (`infra/statemachine/order-workflow.asl.yaml`) interpreted on a simulated clock. Many
//! orders run at once, interleaved by the seed; after the run every order is checked
//! against the saga's invariants. A failing seed replays exactly.
//!
//! - [`definition`]: the ASL the file uses, read as data; anything else is refused by
//!   state and field.
//! - [`paths`]: JSONPath, templates, `States.MathAdd`, `ResultPath`.
//! - [`world`]: one run, in modules: the event queue on a simulated clock, the
//!   interpreter (Choice, Pass, Wait, Succeed, Fail), Tasks (Retry with full jitter,
//!   Catch, `.waitForTaskToken`, the SQS dead-letter Task), the courier, the operators
//!   and the invariants.
//! - [`partners`]: the partners in process, idempotent by key, with control points where
//!   the scheduler interleaves, crashes or delays an invocation.
//! - [`ledger`]: `MemoryStore` behind an auditor that checks every status change.
//! - [`bus`]: the order-events bus, keeping what was published.
//!
//! Our own infrastructure can fail for windows of simulated time, drawn from the seed
//! ([`Faults::with_infrastructure_faults`]): the bus unavailable or throttling, DynamoDB
//! throttling every kind of request, Lambda throttling every invocation, Step Functions
//! throttling `StartExecution`.
//!
//! The recovery code runs too (`order_core::recovery`, over Step Functions' control
//! plane and the dead-letter queue in process, see [`world::control_plane`]), as actions
//! the world polls like invocations: a cancel, the API's start, the courier's webhook,
//! the resumers (an operator's `resume` and `resume --latest`, `dlq replay`, the
//! console's button) and the reconciler (scheduled, a duplicate invocation held back by
//! its reserved concurrency, an operator's `orderctl reconcile --grace-seconds 0`). Each
//! of their ledger and Step Functions calls is a control point, so other events run
//! between what they read, what they claim and what they start; our infrastructure's
//! windows fail those calls too, and an action may die between two of them. With
//! [`Faults::with_racing_resumers`] several resumers race on one order, while it runs and
//! after its execution was stopped.
//!
//! Invariants checked as they happen (after every event): at most one execution of an
//! order runs; the one that runs is the one the order records as its owner (between a
//! claim and its start, none runs); no CANCELLED order holds a partner's effect; a
//! parcel the courier delivered is never undone (no undo after it, never FAILED or
//! CANCELLED); once the webhook accepted a delivery, no wait for the courier times out.
//!
//! Invariants checked for every order after the run: its execution ended (Succeed with a
//! final order, or `Workflow.DeadLettered` with a dead-letter message: "needs an
//! operator"), or the reconciler parked it with a dead-letter message (also "needs an
//! operator"); no partner effect twice; a FAILED, CANCELLED or REJECTED order has every
//! effect undone, after it was taken; a COMPLETED order has every effect of its kind once
//! and nothing undone; a delivered parcel's order COMPLETED; no order left DELIVERED; a
//! repeated API key gives the same order; every status change written is one
//! `OrderStatus::check_transition` allows; no order whose partners all agreed is ever
//! rolled back, dead-lettered or parked (what our infrastructure or a partner's
//! transient trouble does to an order must be waited out).

pub mod bus;
pub mod definition;
pub mod faults;
mod handlers;
pub mod ledger;
pub mod partners;
pub mod paths;
pub mod world;

pub use definition::Definition;
pub use handlers::FUNCTION_TIMEOUT_MS;
pub use partners::DropKeyOf;
pub use world::{
    reconcile_options, Faults, Options, Report, SimError, Windows, World, AGREED_ORDER,
    CANCELLED_HOLDING, DELIVERED_UNDONE, DELIVERY_RESUMED_NOTHING, MAX_RESUMES, NOT_THE_OWNER,
    RECONCILER_CONCURRENCY, RECONCILE_GRACE_SECONDS, RECONCILE_LIMIT, TWO_RUNNING,
};

/// Runs one seed.
pub fn run(definition: &Definition, options: Options) -> Result<Report, SimError> {
    World::new(definition, options)?.run()
}

/// The command that replays a run.
pub fn replay_command(options: &Options) -> String {
    let planted = options
        .planted
        .map_or(String::new(), |p| format!(" --plant-dropped-key {}", p.0));
    let flag = |on: bool, flag: &'static str| if on { flag } else { "" };
    let faults = &options.faults;
    format!(
        "cargo run -p simulator --bin simulate -- --seed {} --orders {}{planted}{}{}{}",
        options.seed,
        options.orders,
        flag(faults.has_late_callback_copies(), " --late-callback-copies"),
        flag(
            faults.has_infrastructure_faults(),
            " --infrastructure-faults"
        ),
        flag(faults.has_racing_resumers(), " --racing-resumers"),
    )
}

/// For a failing run, the smallest number of orders (1, 2, 4, ...) with which the same
/// seed still fails, and that run's report; the run itself when none smaller fails.
pub fn shrink(
    definition: &Definition,
    options: &Options,
    report: Report,
) -> Result<(Options, Report), SimError> {
    let mut orders = 1;
    while orders < options.orders {
        let smaller = Options {
            orders,
            ..options.clone()
        };
        let found = run(definition, smaller.clone())?;
        if !found.violations.is_empty() {
            return Ok((smaller, found));
        }
        orders *= 2;
    }
    Ok((options.clone(), report))
}

/// A failing run, for a person: the replay command and the trace of the first order
/// that broke.
pub fn explain(options: &Options, report: &Report) -> String {
    let mut text = format!(
        "seed {} broke {} invariant(s); replay with:\n  {}\n",
        report.seed,
        report.violations.len(),
        replay_command(options)
    );
    for (order, what) in report.violations.iter().take(10) {
        text.push_str(&format!("  order #{order}: {what}\n"));
    }
    if let Some((order, _)) = report.violations.first() {
        text.push_str("\nthe trace of the first order that broke:\n");
        text.push_str(report.trace(*order));
    }
    text
}
