//! `make bench`: what the deployable functions cost, each figure a median of repeated
//! runs, compared with a floor measured in the same run where there is one:
//! - the cold start of every bootstrap `make package` built (size, init time, peak RSS)
//!   against a no-op `lambda_runtime` bootstrap built with the same release profile;
//! - the first invocation of a packaged function on the local stack against a bare-SDK
//!   bootstrap that makes the same first AWS call;
//! - the work of one order of each kind and of a failure path, counted on the local stack
//!   (run inside `local-stack exec`), and what 1,000 such orders cost at AWS list prices.
//!
//! Writes `bench.json` and `bench.md`.

mod cold_start;
mod cost;
mod first_invocation;
mod report;
mod stats;
mod work;
mod work_report;
mod workflow;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Why the bench could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name} exited before asking for its first event ({status}); its last words: {stderr}"
    )]
    Exited {
        name: String,
        status: String,
        stderr: String,
    },
    #[error("{name} did not ask for its first event within {seconds} s")]
    NoFirstPoll { name: String, seconds: u64 },
    #[error("could not read {what}")]
    Parse { what: String },
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("{what} is missing")]
    Missing { what: String },
    #[error("the template has no function {0} (--function takes logical ids, like ReserveStockFunction)")]
    UnknownFunction(String),
    #[error("{0} is not built for this machine (make bench packages for it; make package ARCH=arm64 does not)")]
    WrongArchitecture(String),
    #[error("a function called AWS during init with calls the bench does not answer: {0:?}")]
    UnexpectedCalls(Vec<String>),
    #[error("writing the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the local stack: {0}")]
    Stack(String),
    #[error("the price file: {0}")]
    Prices(String),
}

/// The parts of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// The bootstraps' size, init time and peak RSS against the no-op floor.
    ColdStart,
    /// A packaged function's first invocation on the local stack, against a bare-SDK floor.
    FirstInvocation,
    /// Work per order on the local stack, and its cost.
    Work,
    /// Orders placed at once on the local stack, against the workflow's floor.
    Workflow,
}

#[derive(Debug, Parser)]
#[command(
    about = "Cold start of the deployable bootstraps against a no-op floor; work and cost per order on the local stack"
)]
struct Options {
    /// Only this part (repeatable); default: all. The first-invocation, work and workflow
    /// parts run inside `local-stack exec`.
    #[arg(long = "only", value_enum)]
    parts: Vec<Part>,
    /// Starts of each bootstrap (medians need many; the README's figures use 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(3..))]
    runs: u16,
    /// Where sam build left the bootstraps (`<LogicalId>/bootstrap`).
    #[arg(long, default_value = ".aws-sam/build")]
    build_dir: PathBuf,
    /// The no-op bootstrap, built with the same profile (`make bench` builds it).
    #[arg(long, default_value = "target/lambda/noop-bootstrap/bootstrap")]
    floor: PathBuf,
    /// The first-invocation floor: a bare-SDK bootstrap built with the same profile
    /// (`make bench` builds it).
    #[arg(long, default_value = "target/lambda/sdk-floor-bootstrap/bootstrap")]
    sdk_floor: PathBuf,
    /// The template that gives each function its environment.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Only these functions (logical ids, repeatable); default: every function.
    #[arg(long = "function", value_name = "LOGICAL_ID")]
    functions: Vec<String>,
    /// Orders of each scenario whose work is counted.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    orders: u16,
    /// Batch sizes of the workflow part (orders placed at once).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,200")]
    concurrency: Vec<usize>,
    /// AWS list prices for the cost per 1,000 orders.
    #[arg(long, default_value = "infra/bench/prices.yaml")]
    prices: PathBuf,
    /// Where bench.json and bench.md go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options) -> Result<(), BenchError> {
    let wants = |part| options.parts.is_empty() || options.parts.contains(&part);
    // The price file first: a typo in it should not cost a whole cold-start run.
    let prices = match wants(Part::Work) {
        true => Some(cost::Prices::load(&options.prices)?),
        false => None,
    };
    // And the stack, which the work and workflow parts share.
    let stack = match wants(Part::Work) || wants(Part::Workflow) {
        true => Some(work::Stack::from_env().await?),
        false => None,
    };
    let cold_start = match wants(Part::ColdStart) {
        true => Some(measure_cold_start(options).await?),
        false => None,
    };
    if let Some(report) = &cold_start {
        println!("{}", report.table());
        for verdict in report.verdicts() {
            println!("{verdict}");
        }
    }
    let first_invocation = match wants(Part::FirstInvocation) {
        true => {
            let runs = usize::from(options.runs);
            let report =
                first_invocation::measure(&options.build_dir, &options.sdk_floor, runs).await?;
            println!("{}", report.table());
            for verdict in report.verdicts() {
                println!("{verdict}");
            }
            Some(report)
        }
        false => None,
    };
    let work = match (prices, &stack) {
        (Some(prices), Some(stack)) => {
            let orders = usize::from(options.orders);
            let measured = work::measure(stack, orders).await?;
            let slowest_init = cold_start
                .as_ref()
                .and_then(report::Report::slowest_init_ms);
            let memory_mb = cold_start::memory_mb(&options.template)?;
            Some(work_report::WorkReport::new(
                orders,
                memory_mb,
                prices,
                measured,
                slowest_init,
            )?)
        }
        _ => None,
    };
    if let Some(report) = &work {
        println!("{}", report.table());
    }
    let workflow = match (wants(Part::Workflow), &stack) {
        (true, Some(stack)) => {
            let batches = workflow::compare(stack, &options.concurrency).await?;
            Some(work_report::WorkflowReport { batches })
        }
        _ => None,
    };
    if let Some(report) = &workflow {
        println!("{}", report.table());
        for verdict in report.verdicts() {
            println!("{verdict}");
        }
    }
    let parts = report::Parts {
        cold_start,
        first_invocation,
        work,
        workflow,
    };
    let bench = report::Bench {
        machine: report::Machine::this(),
        parts,
    };
    bench.write(&options.out)?;
    println!(
        "written: {} and {}",
        options.out.join("bench.json").display(),
        options.out.join("bench.md").display()
    );
    Ok(())
}

async fn measure_cold_start(options: &Options) -> Result<report::Report, BenchError> {
    if !options.floor.is_file() {
        return Err(BenchError::Missing {
            what: format!("the floor bootstrap {}", options.floor.display()),
        });
    }
    let floor = cold_start::Subject {
        name: "noop".into(),
        bootstrap: options.floor.clone(),
        environment: Default::default(),
    };
    let mut subjects = vec![floor];
    subjects.extend(cold_start::subjects(
        &options.build_dir,
        &options.template,
        &options.functions,
    )?);
    let runs = usize::from(options.runs);
    let mut measured = cold_start::measure(&subjects, runs).await?.into_iter();
    let floor = measured.next().ok_or_else(|| BenchError::Parse {
        what: "the floor's measurements".into(),
    })?;
    Ok(report::Report::new(runs, floor, measured.collect()))
}
