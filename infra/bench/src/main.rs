//! `make bench`: what the deployable functions cost, each figure a median of repeated
//! runs beside a floor measured in the same run. Today: the cold start of every bootstrap
//! `make package` built (size, init time, peak RSS) against a no-op `lambda_runtime`
//! bootstrap built with the same release profile. Writes `bench.json` and `bench.md`.

mod cold_start;
mod report;
mod stats;

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
}

#[derive(Debug, Parser)]
#[command(about = "Cold start of the deployable bootstraps against a no-op floor")]
struct Options {
    /// Starts of each bootstrap (medians need many; the README's figures use 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(3..))]
    runs: u16,
    /// Where sam build left the bootstraps (`<LogicalId>/bootstrap`).
    #[arg(long, default_value = ".aws-sam/build")]
    build_dir: PathBuf,
    /// The no-op bootstrap, built with the same profile (`make bench` builds it).
    #[arg(long, default_value = "target/lambda/noop-bootstrap/bootstrap")]
    floor: PathBuf,
    /// The template that gives each function its environment.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Only these functions (logical ids, repeatable); default: every function.
    #[arg(long = "function", value_name = "LOGICAL_ID")]
    functions: Vec<String>,
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
    let report = report::Report::new(report::Machine::this(), runs, floor, measured.collect());
    println!("{}", report.table());
    for verdict in report.verdicts() {
        println!("{verdict}");
    }
    report.write(&options.out)?;
    println!(
        "written: {} and {}",
        options.out.join("bench.json").display(),
        options.out.join("bench.md").display()
    );
    Ok(())
}
