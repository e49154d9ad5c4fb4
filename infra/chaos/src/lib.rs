//! The chaos run: proves on a local stack that no accepted order is ever lost and no
//! partner effect happens twice, whatever fails.
//!
//! 1. **Faults**: sets the partner simulator's seed and injects global fault rules
//!    (transient errors, slow answers past the client timeout, permanent refusals, lost
//!    parcels; see [`faults::FaultPlan`]), and mid-run one partner outage longer than the
//!    fast retries.
//! 2. **Load**: places N orders at a steady rate through the orders API, all three kinds,
//!    re-sends a few with the same Idempotency-Key and cancels a few ([`load`]).
//! 3. **Crashes**: a few times during the load, SIGKILLs function instances of
//!    `cargo lambda watch` by PID ([`processes`]).
//! 4. **Recovery**: waits until no execution runs, removes the fault rules (the partners
//!    recovered), runs the reconciler (grace 0 s), replays the dead-letter queue once, and
//!    waits for quiet again ([`settle`]).
//! 5. **Audit**: checks the invariants over every accepted order against the order table,
//!    the partner ledger and the dead-letter queue ([`audit`]) and reports ([`report`]).
//!
//! The run owns its stack: start it in one of its own (`make chaos`, or the test, which
//! starts one). It talks to 127.0.0.1 only, and every wait has a deadline.

pub mod audit;
pub mod env;
pub mod faults;
pub mod load;
pub mod processes;
pub mod report;
pub mod rng;
pub mod settle;
pub mod storm;
pub mod tap;

pub use env::ChaosEnv;
pub use report::Report;

use faults::FaultPlan;
use partner_simulator::client::Admin;
use partner_simulator::faults::Draws;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a run goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub orders: usize,
    /// Orders per second.
    pub rate: f64,
    pub seed: u64,
    /// Names the run's keys and merchants (`m-chaos-<run>-<n>`); `None`: a new random one.
    /// With a failed run's seed and run id, a replay plans the same orders for the same
    /// merchants and the partner simulator draws the same faults for each of them.
    pub run_id: Option<String>,
    /// Kill rounds during the load (0: no crashes).
    pub kill_rounds: usize,
    /// Function instances killed per round (each of another function).
    pub kills_per_round: usize,
    /// Instances of a function never killed (cargo lambda watch does not replace them).
    pub min_alive: usize,
    pub faults: FaultPlan,
    pub mix: load::Mix,
    /// The longest each wait for quiet may take.
    pub settle_timeout: Duration,
    /// No order is placed while this many executions run: the local stack's capacity.
    /// Past it the emulator falls behind, and the orders API with it, until cargo lambda
    /// watch stops serving altogether (see [`load`]); the rate then drops and the report
    /// says how long placement was held.
    pub max_running: usize,
    /// Our own infrastructure in trouble mid-run (`--profile storm`): instead of the
    /// partner outage, the invoke router throttles DynamoDB and takes the event bus down.
    pub storm: Option<storm::Storm>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            orders: 1000,
            rate: DEFAULT_RATE,
            seed: 42,
            run_id: None,
            kill_rounds: 3,
            kills_per_round: 4,
            min_alive: 2,
            faults: FaultPlan::default(),
            mix: load::Mix::default(),
            settle_timeout: Duration::from_secs(30 * 60),
            max_running: 60,
            storm: None,
        }
    }
}

/// Orders per second by default: what the local stack sustains on two cores under the
/// run's faults and crashes (measured: about 60 orders a minute end to end, the emulator's
/// Step Functions using most of one core). Faster, executions pile up and the run holds
/// placement back anyway (see [`Options::max_running`]).
pub const DEFAULT_RATE: f64 = 1.0;

/// Why a run could not be carried out (an invariant that fails is not an error: it is in
/// the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0} is not set: run the chaos run inside `local-stack exec` (make chaos), or give --env-file <stack.env> of a running stack")]
    MissingSetting(String),
    #[error("{name}={value:?} is not a whole number")]
    BadSetting { name: String, value: String },
    #[error("{name}={url} is not on this machine (127.0.0.1 or localhost): the chaos run only talks to a local stack")]
    NotLoopback { name: String, url: String },
    #[error("cannot read the environment file {path}: {source}")]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid options: {0}")]
    Options(String),
    #[error("no running cargo lambda watch or MiniStack is recorded in {0}/pids: the function instances cannot be found (run inside `local-stack exec`, or use --kill-rounds 0)")]
    NoWatch(PathBuf),
    #[error("the partner simulator: {0}")]
    Simulator(#[from] partner_simulator::client::ClientError),
    #[error("the partner ledger has an entry without an order or merchant id: {0}")]
    Ledger(serde_json::Error),
    #[error("the orders API is not answering: {0}")]
    Api(String),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("a task of the run failed: {0}")]
    Task(String),
    #[error("Step Functions {operation} failed: {message}")]
    Workflow {
        operation: &'static str,
        message: String,
    },
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] order_core::store::StoreError),
    #[error(transparent)]
    Recovery(#[from] order_core::recovery::RecoveryError),
    #[error(transparent)]
    DeadLetters(#[from] order_core::dead_letters::DeadLetterError),
}

impl Options {
    fn check(&self) -> Result<(), ChaosError> {
        if self.orders == 0 {
            return Err(ChaosError::Options("--orders must be at least 1".into()));
        }
        if let Some(run_id) = &self.run_id {
            if run_id.is_empty()
                || run_id.len() > 16
                || !run_id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(ChaosError::Options(format!(
                    "--run-id must be 1 to 16 lower-case letters or digits, not {run_id:?}"
                )));
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0) {
            return Err(ChaosError::Options(format!(
                "--rate must be above 0 and at most 1000 orders per second, not {}",
                self.rate
            )));
        }
        Ok(())
    }
}

fn progress(message: &str) {
    eprintln!("chaos: {message}");
}

/// Runs the chaos run against the stack `env` describes and reports what it found.
pub async fn run(options: &Options, env: &ChaosEnv) -> Result<Report, ChaosError> {
    options.check()?;
    let started = Instant::now();
    let clients = env::Clients::connect(env).await?;
    let simulator = Admin::new(clients.http.clone(), &env.partner_simulator_url);
    simulator.health().await?;
    settle::stack_answers(&clients)
        .await
        .map_err(ChaosError::Api)?;
    let watch = if options.kill_rounds > 0 {
        let found = local_stack::process::read_pids(&env.stack_dir)
            .into_iter()
            .find(|p| (p.name == "cargo-lambda-watch" || p.name == "ministack") && p.is_alive());
        Some(
            found
                .ok_or_else(|| ChaosError::NoWatch(env.stack_dir.clone()))?
                .pid,
        )
    } else {
        None
    };
    let instances_before = watch
        .map(|pid| processes::count_by_function(&processes::instances(pid)))
        .unwrap_or_default();
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    progress(&format!(
        "run {run_id}: {} orders at {}/s, seed {}; {} function instances running",
        options.orders,
        options.rate,
        options.seed,
        instances_before.values().sum::<usize>()
    ));

    // Drawn by merchant: each order of the run has a merchant of its own, planned from the
    // run's seed and id, while its order id is random; so a replay (same seed, same run
    // id) draws the same faults for each order.
    simulator.set_seed(options.seed, Draws::ByMerchant).await?;
    let removed = simulator.clear_faults().await?;
    if removed > 0 {
        progress(&format!(
            "removed {removed} fault rules left in the simulator"
        ));
    }
    simulator.add_faults(&options.faults.steady_rules()).await?;

    // The load, with the outage and the kill rounds at fixed points of its planned length.
    let plans = load::plan(options.orders, options.seed, &run_id, options.mix);
    let planned = Duration::from_secs_f64(options.orders as f64 / options.rate);
    let load_started = Instant::now();
    let outage = async {
        if options.storm.is_some() {
            return Ok(None);
        }
        tokio::time::sleep(planned.mul_f64(0.4)).await;
        let at = load_started.elapsed();
        progress(&format!(
            "outage: {} unavailable for {} s from now",
            options.faults.outage.partner,
            options.faults.outage.for_ms / 1000
        ));
        faults::put_first(&simulator, options.faults.outage_rule())
            .await
            .map(|()| Some(at))
    };
    let storm = async {
        let Some(storm) = &options.storm else {
            return Ok(None);
        };
        tokio::time::sleep(planned.mul_f64(storm.at)).await;
        progress(&format!("storm: {} from now", storm.describe().join("; ")));
        storm
            .blow(&clients.http, &env.aws_endpoint_url)
            .await
            .map(Some)
    };
    let kills = async {
        let mut killed = Vec::new();
        let Some(watch) = watch else {
            return killed;
        };
        let mut rng = rng::Rng::stream(options.seed, 2);
        for round in 0..options.kill_rounds {
            let fraction = (round + 1) as f64 / (options.kill_rounds + 1) as f64;
            tokio::time::sleep_until((load_started + planned.mul_f64(fraction)).into()).await;
            let at = load_started.elapsed();
            let (victims, min_alive) = (options.kills_per_round, options.min_alive);
            let mut round_rng = rng::Rng::new(rng.next_u64());
            let done = tokio::task::spawn_blocking(move || {
                processes::kill_round(watch, &mut round_rng, victims, min_alive, at)
            })
            .await
            .unwrap_or_default();
            let names: Vec<String> = done
                .iter()
                .map(|k| format!("{} (pid {})", k.function, k.pid))
                .collect();
            progress(&format!(
                "kill round {}: SIGKILL {}",
                round + 1,
                if names.is_empty() {
                    "nothing (no function has instances to spare)".to_owned()
                } else {
                    names.join(", ")
                }
            ));
            killed.extend(done);
        }
        killed
    };
    // How many executions run, every 2 s, for the load's backpressure.
    let running = Arc::new(AtomicUsize::new(0));
    let counting = {
        let clients = clients.clone();
        let running = running.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(names) = settle::running_executions(&clients).await {
                    running.store(names.len(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let backpressure = load::Backpressure {
        running,
        max_running: options.max_running,
    };
    let placing = load::run(
        &clients.http,
        &clients.signer,
        &env.orders_api_url,
        plans,
        options.rate,
        backpressure,
    );
    let (load, outage_at, kills, storm_counts) = tokio::join!(placing, outage, kills, storm);
    counting.abort();
    let load = load?;
    let outage_at = outage_at?;
    let storm_counts = storm_counts?;
    let instances_after = watch
        .map(|pid| processes::count_by_function(&processes::instances(pid)))
        .unwrap_or_default();
    let mut phases = vec![("placing", load.duration)];
    progress(&format!(
        "placed {} orders in {:.0} s; waiting for every execution to end",
        load.placed.len(),
        load.duration.as_secs_f64()
    ));

    let phase = Instant::now();
    let first_quiet = settle::wait_for_quiet(&clients, options.settle_timeout, "settling").await?;
    phases.push(("settling", phase.elapsed()));

    // The partners recover; the operator's tools take over.
    let rules_fired: Vec<(String, u64)> = simulator
        .faults()
        .await?
        .rules
        .iter()
        .map(|rule| {
            (
                format!(
                    "{} {}/{}",
                    rule.fault.as_str(),
                    rule.partner,
                    rule.operation
                ),
                rule.fired,
            )
        })
        .collect();
    simulator.clear_faults().await?;

    let mut stack_failure = first_quiet.stalled.clone().or_else(|| {
        load.stopped_early
            .then(|| "the orders API stopped answering during the load".to_owned())
    });
    let (reconciliation, replay, second_quiet) = match &stack_failure {
        Some(failure) => {
            progress(&format!(
                "the stack stopped working ({failure}); skipping the reconciler and the DLQ replay, auditing what is there"
            ));
            (
                settle::Reconciliation::default(),
                settle::Replay::default(),
                first_quiet.clone(),
            )
        }
        None => {
            let phase = Instant::now();
            progress("running the reconciler (grace 0 s)");
            let reconciliation = settle::reconcile(&clients, env.max_resumes).await?;
            let mut ours: std::collections::BTreeSet<String> = load
                .placed
                .iter()
                .filter_map(|p| p.accepted().map(str::to_owned))
                .collect();
            ours.extend(audit::stored_without_answer(&clients, &load).await?);
            progress(&format!(
                "reconciler resumed {} and parked {}; replaying the dead-letter queue",
                reconciliation.resumed.len(),
                reconciliation.parked.len()
            ));
            let replay = settle::replay_dead_letters(&clients, &ours).await?;
            phases.push(("reconcile + DLQ replay", phase.elapsed()));
            progress(&format!(
                "DLQ: {} seen, {} resumed, {} ended, {} running again",
                replay.seen,
                replay.resumed.len(),
                replay.ended,
                replay.running
            ));
            let phase = Instant::now();
            let second_quiet =
                settle::wait_for_quiet(&clients, options.settle_timeout, "settling again").await?;
            phases.push(("settling again", phase.elapsed()));
            stack_failure = second_quiet.stalled.clone();
            (reconciliation, replay, second_quiet)
        }
    };

    let phase = Instant::now();
    progress("auditing: orders, partner ledger, dead-letter queue");
    let ledger = faults::ledger(&simulator).await?;
    let dead_letters = settle::dead_letters_now(&clients).await?;
    let audit = audit::gather(
        &clients,
        &load,
        &ledger,
        &dead_letters,
        &second_quiet.still_running,
    )
    .await?;
    phases.push(("audit", phase.elapsed()));

    Ok(Report {
        orders: options.orders,
        rate: options.rate,
        seed: options.seed,
        run_id,
        fault_plan: match &options.storm {
            Some(storm) => {
                let mut plan = options.faults.describe();
                plan.retain(|line| !line.contains("outage"));
                plan.extend(storm.describe());
                plan
            }
            None => options.faults.describe(),
        },
        wall: started.elapsed(),
        phases,
        load,
        outage_at,
        storm: storm_counts,
        kills,
        instances_before,
        instances_after,
        first_quiet,
        second_quiet,
        rules_fired,
        faults_injected: ledger.faults_injected,
        partner_requests: ledger.requests,
        reconciliation,
        replay,
        dead_letters_at_end: dead_letters.values().map(Vec::len).sum(),
        audit,
        stack_failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_to_replay_must_be_one_a_run_could_have_printed() {
        let with = |run_id: &str| Options {
            run_id: Some(run_id.to_owned()),
            ..Options::default()
        };
        assert!(with("5be15660").check().is_ok());
        assert!(Options::default().check().is_ok());
        for bad in ["", "5BE15660", "run-1", "0123456789abcdef0", "m chaos"] {
            assert!(
                matches!(with(bad).check(), Err(ChaosError::Options(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_same_seed_and_run_id_plan_the_same_orders_for_the_same_merchants() {
        let plan = |run_id: &str| load::plan(20, 42, run_id, load::Mix::default());
        assert_eq!(plan("5be15660"), plan("5be15660"));
        assert_ne!(plan("5be15660"), plan("0c0ffee0"));
    }
}
