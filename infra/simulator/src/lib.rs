//! Deterministic simulation of the order saga (issue 12): the real activity handlers
//! (every function crate's `handle`) over the in-memory ledger, the partners faked in
//! process with faults drawn from a seed, and the real state machine definition
//! (`infra/statemachine/order-workflow.asl.yaml`) interpreted on a simulated clock. Many
//! orders run at once, interleaved by the seed; after the run every order is checked
//! against the saga's invariants. A failing seed replays exactly.

pub mod definition;
pub mod ledger;
pub mod partners;
pub mod paths;
pub mod world;

pub use definition::Definition;
pub use partners::DropKeyOf;
pub use world::{Faults, Options, Report, SimError, World};

/// Runs one seed.
pub fn run(definition: &Definition, options: Options) -> Result<Report, SimError> {
    World::new(definition, options)?.run()
}

/// The command that replays a run.
pub fn replay_command(options: &Options) -> String {
    let planted = options
        .planted
        .map_or(String::new(), |p| format!(" --plant-dropped-key {}", p.0));
    let pause = if options.faults.finds_known_races() {
        " --known-races"
    } else {
        ""
    };
    format!(
        "cargo run -p simulator --bin simulate -- --seed {} --orders {}{planted}{pause}",
        options.seed, options.orders
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
