//! `chaos`: the chaos run against a local stack (see the library's documentation).
//! `make chaos` runs it inside a stack of its own:
//!
//! ```sh
//! target/debug/local-stack exec --dir target/chaos-stack --free-ports --no-reload -- \
//!     target/debug/chaos --orders 1000
//! ```
//!
//! Exit code 0: every invariant held; 1: an invariant was violated (the report says
//! which, with example orders); 2: the run could not be carried out.

use chaos::{ChaosEnv, Options};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    about = "Places orders through the local stack under partner faults, an outage and killed function instances, then proves that no accepted order was lost and no partner effect happened twice"
)]
struct Cli {
    /// What the run does to the stack: `default`, partner faults, a partner outage and
    /// killed function instances (1,000 orders); `storm`, partner faults and our own
    /// infrastructure in trouble mid-run, DynamoDB throttled and the event bus down, with
    /// no outage or kills (200 orders; the moto stack's invoke router injects it).
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    profile: Profile,
    /// How many orders to place (default: 1,000; 200 for the storm).
    #[arg(long)]
    orders: Option<usize>,
    /// Orders per second.
    #[arg(long, default_value_t = chaos::DEFAULT_RATE)]
    rate: f64,
    /// Seed of the partner simulator's fault decisions and of the run's own choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The run id of a run to replay (its keys and merchants; the report prints it); by
    /// default a new one.
    #[arg(long)]
    run_id: Option<String>,
    /// The stack.env of a running stack; by default the environment (`local-stack exec`).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Rounds of killed function instances during the load (0: none; default 3, none
    /// for the storm).
    #[arg(long)]
    kill_rounds: Option<usize>,
    /// Function instances killed per round.
    #[arg(long, default_value_t = 4)]
    kills_per_round: usize,
    /// How long the partner outage lasts.
    #[arg(long, default_value_t = 15)]
    outage_seconds: u64,
    /// The longest each wait for all executions to end may take.
    #[arg(long, default_value_t = 30)]
    settle_minutes: u64,
    /// No order is placed while this many executions run (the stack's capacity).
    #[arg(long, default_value_t = 60)]
    max_running: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    Default,
    Storm,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = match &cli.env_file {
        Some(path) => ChaosEnv::from_file(path),
        None => ChaosEnv::from_process(),
    };
    let env = match env {
        Ok(env) => env,
        Err(error) => {
            eprintln!("chaos: {error}");
            return ExitCode::from(2);
        }
    };
    let storm = cli.profile == Profile::Storm;
    let mut options = Options {
        orders: cli.orders.unwrap_or(if storm { 200 } else { 1000 }),
        rate: cli.rate,
        seed: cli.seed,
        run_id: cli.run_id.clone(),
        kill_rounds: cli.kill_rounds.unwrap_or(if storm { 0 } else { 3 }),
        storm: storm.then(chaos::storm::Storm::default),
        kills_per_round: cli.kills_per_round,
        settle_timeout: Duration::from_secs(cli.settle_minutes.saturating_mul(60)),
        max_running: cli.max_running.max(1),
        ..Options::default()
    };
    options.faults.outage.for_ms = cli.outage_seconds.saturating_mul(1000);
    match chaos::run(&options, &env).await {
        Ok(report) => {
            println!("{report}");
            if report.invariants_hold() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("chaos: the run could not be carried out: {error}");
            ExitCode::from(2)
        }
    }
}
