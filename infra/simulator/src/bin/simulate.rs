//! `simulate`: runs the deterministic saga simulation over a range of seeds and reports
//! orders per second; on a broken invariant, prints the replay command and the trace of
//! the order that broke, and exits 1.

use clap::Parser;
use simulator::{Definition, DropKeyOf, Options};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Deterministic simulation of the order saga, replayable from a seed")]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds, from --seed on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Orders per seed, run concurrently in one simulated world.
    #[arg(long, default_value_t = 100)]
    orders: usize,
    /// Print the trace of this order (its index in the run) even when nothing broke.
    #[arg(long)]
    trace: Option<usize>,
    /// Plant a bug: the partner operation named here loses its idempotency key
    /// (reserve, charge, provision, ship, ...). For proving the simulator finds it.
    #[arg(long)]
    plant_dropped_key: Option<String>,
    /// Also late copies of AwaitDelivery invocations (a copy of an attempt Step Functions
    /// retried stores its task token after the retry's): the delivery must still resume
    /// the order.
    #[arg(long)]
    late_callback_copies: bool,
    /// Also our own infrastructure failing for windows of time (the order-events bus,
    /// DynamoDB, Lambda, Step Functions' StartExecution), drawn from the seed.
    #[arg(long)]
    infrastructure_faults: bool,
    /// Also several resumers racing on one order at random points of each other (an
    /// operator's resume and resume --latest, dlq replay, the console's button, two
    /// reconciler invocations at once, orderctl reconcile --grace-seconds 0), while it
    /// runs and after its execution was stopped; recovery actions dying between calls.
    #[arg(long)]
    racing_resumers: bool,
    /// On a broken invariant, print one line for the seed (its replay command and what
    /// broke) and go on with the next; exit 1 at the end. Without it, the first seed that
    /// breaks one is shrunk and its trace printed.
    #[arg(long)]
    keep_going: bool,
}

const OPERATIONS: [&str; 11] = [
    "reserve",
    "release",
    "charge",
    "refund",
    "provision",
    "deprovision",
    "deactivate",
    "ship",
    "cancel",
    "return_label",
    "send",
];

/// Prints to stdout; a closed pipe (`simulate ... | head`) is not an error.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    let planted = match args.plant_dropped_key.as_deref() {
        None => None,
        Some(name) => match OPERATIONS.iter().find(|op| **op == name) {
            Some(op) => Some(DropKeyOf(op)),
            None => {
                eprintln!("--plant-dropped-key: {name} is not one of {OPERATIONS:?}");
                return ExitCode::from(2);
            }
        },
    };
    let definition = match Definition::of_repository() {
        Ok(definition) => definition,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut orders = 0;
    let mut invocations = 0;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut tally = std::collections::BTreeMap::<&'static str, u64>::new();
    let mut broken_seeds = 0;
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut options = Options {
            planted,
            ..Options::new(seed, args.orders)
        };
        if args.late_callback_copies {
            options.faults = options.faults.with_late_callback_copies();
        }
        if args.infrastructure_faults {
            options.faults = options.faults.with_infrastructure_faults();
        }
        if args.racing_resumers {
            options.faults = options.faults.with_racing_resumers();
        }
        let report = match simulator::run(&definition, options.clone()) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("seed {seed}: {error}");
                return ExitCode::from(2);
            }
        };
        orders += report.orders;
        invocations += report.invocations;
        for (what, n) in &report.tally {
            *tally.entry(what).or_default() += n;
        }
        for (outcome, n) in &report.outcomes {
            *outcomes.entry(outcome.clone()).or_default() += n;
        }
        if let Some(order) = args.trace {
            say(report.trace(order));
        }
        if !report.violations.is_empty() && args.keep_going {
            broken_seeds += 1;
            say(&simulator::replay_command(&options));
            for (order, what) in report.violations.iter() {
                say(&format!("  order #{order}: {what}"));
            }
        } else if !report.violations.is_empty() {
            let (options, report) = match simulator::shrink(&definition, &options, report) {
                Ok(found) => found,
                Err(error) => {
                    eprintln!("seed {seed}: {error}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("{}", simulator::explain(&options, &report));
            return ExitCode::from(1);
        }
        let done = seed - args.seed + 1;
        if args.seeds >= 10 && done % (args.seeds / 10).max(1) == 0 && done < args.seeds {
            // Progress on long runs, on stderr so that the report stays clean.
            eprintln!(
                "{done} of {} seeds, {orders} orders, {:.0} orders/s, {broken_seeds} seed(s) broke an invariant so far",
                args.seeds,
                orders as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    if broken_seeds > 0 {
        say(&format!(
            "{broken_seeds} of {} seed(s) broke an invariant",
            args.seeds
        ));
        return ExitCode::from(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "{orders} orders over {} seed(s) from {} in {seconds:.2} s: {:.0} orders/s, {invocations} handler polls; no invariant broken",
        args.seeds,
        args.seed,
        orders as f64 / seconds.max(1e-9)
    ));
    say("outcomes:");
    for (outcome, n) in &outcomes {
        say(&format!("  {n:>8}  {outcome}"));
    }
    say("faults and interleavings met:");
    for (what, n) in &tally {
        say(&format!("  {n:>8}  {what}"));
    }
    ExitCode::SUCCESS
}
