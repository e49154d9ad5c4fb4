//! The first invocation on the local stack, against a bare-SDK floor. A packaged bootstrap
//! is started the way Lambda starts it, with the environment the local stack gives its
//! functions (`functions.env`: its AWS endpoint, table, secrets), against a fake Runtime
//! API on 127.0.0.1 that hands it one event for a fresh order and waits for the answer.
//! The time is exec to the answer: init and the first invocation together, what a caller
//! of a cold function waits. The floor (`infra/sdk-floor-bootstrap`) loads the same AWS
//! configuration with the same HTTP client and makes the same first call, one conditional
//! UpdateItem of the order's item, and nothing else.
//!
//! Measured on ValidateOrder: a fresh order can take it without an execution, and every
//! activity's first call is the same begin (`Ledger::open_step`); what ValidateOrder does
//! beyond it (the catalogue check, the transaction that records its result) is the
//! function's own work, which the ratio charges to it.

use crate::cold_start::{lambda_variables, FakeServer};
use crate::stats::Summary;
use crate::BenchError;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use order_core::catalogue::Catalogue;
use order_core::order::{example_request, Order};
use order_core::store::{OrderStore, Placement};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::oneshot;

/// The function measured: see the module's documentation.
pub const FUNCTION: &str = "ValidateOrderFunction";

/// How long a start may take to answer its event before the run fails.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// What one bootstrap measured: exec to its first answer, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct FirstInvocation {
    pub name: String,
    pub ms: Summary,
}

/// The function and its floor, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct FirstInvocationReport {
    pub runs: usize,
    pub floor: FirstInvocation,
    pub function: FirstInvocation,
}

/// The ratio target of the performance issue: first invocation ≤ 1.3× the floor.
const TARGET: f64 = 1.3;

impl FirstInvocationReport {
    pub fn ratio(&self) -> f64 {
        self.function.ms.median / self.floor.ms.median.max(f64::MIN_POSITIVE)
    }

    const HEADER: [&'static str; 3] = [
        "bootstrap",
        "exec to first answer, ms: median (min–max)",
        "× floor",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        let row = |m: &FirstInvocation, ratio: f64| {
            vec![
                m.name.clone(),
                format!("{:.1} ({:.1}–{:.1})", m.ms.median, m.ms.min, m.ms.max),
                format!("{ratio:.2}×"),
            ]
        };
        vec![row(&self.floor, 1.0), row(&self.function, self.ratio())]
    }

    pub fn verdicts(&self) -> Vec<String> {
        let met = if self.ratio() <= TARGET {
            "met"
        } else {
            "missed"
        };
        vec![format!(
            "{met}: first invocation ≤ {TARGET}× the bare-SDK floor ({:.2}×)",
            self.ratio()
        )]
    }

    pub fn table(&self) -> String {
        crate::report::text_table(Self::HEADER, self.rows())
    }

    pub fn markdown(&self) -> String {
        let intro = format!(
            "{} starts of each, round-robin; each answers one event for a fresh order.",
            self.runs
        );
        crate::report::markdown_section(
            "First invocation on the local stack",
            &intro,
            &Self::HEADER,
            &self.rows(),
            &self.verdicts(),
        )
    }
}

/// When a bootstrap answered its event, and what: its output, or its error's body.
type Answer = (Instant, Result<Value, String>);

/// The event waiting for the next poll, and who waits for its answer.
#[derive(Default)]
struct Fake {
    event: Mutex<Option<Value>>,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
}

impl Fake {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn answered(&self, outcome: Result<Value, String>) {
        if let Some(waiting) = Fake::lock(&self.answer).take() {
            let _ = waiting.send((Instant::now(), outcome));
        }
    }
}

/// `GET /invocation/next`: the waiting event once, then nothing (the process waits until
/// it is killed).
async fn next(State(fake): State<Arc<Fake>>) -> Response {
    let Some(event) = Fake::lock(&fake.event).take() else {
        std::future::pending::<()>().await;
        return StatusCode::GONE.into_response();
    };
    let deadline = std::time::SystemTime::now() + ANSWER_LIMIT;
    let deadline_ms = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut response = (StatusCode::OK, event.to_string()).into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        "lambda-runtime-aws-request-id",
        "bench-first-invocation".into(),
    );
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    set("content-type", "application/json".into());
    response
}

async fn response(State(fake): State<Arc<Fake>>, body: String) -> StatusCode {
    fake.answered(serde_json::from_str(&body).map_err(|e| format!("{e}: {body}")));
    StatusCode::ACCEPTED
}

async fn error(
    State(fake): State<Arc<Fake>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    fake.answered(Err(body));
    StatusCode::ACCEPTED
}

async fn init_error(
    State(fake): State<Arc<Fake>>,
    _headers: HeaderMap,
    body: String,
) -> StatusCode {
    fake.answered(Err(format!("init error: {body}")));
    StatusCode::ACCEPTED
}

/// The fake Runtime API, serving on 127.0.0.1 until dropped.
struct Runtime {
    fake: Arc<Fake>,
    server: FakeServer,
}

impl Runtime {
    async fn start() -> Result<Runtime, BenchError> {
        let fake = Arc::new(Fake::default());
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(fake.clone());
        let server = FakeServer::start(app).await?;
        Ok(Runtime { fake, server })
    }

    /// Starts `bootstrap` with `environment`, hands it `event`, and times exec to its
    /// answer, which must be a success.
    async fn invoke_once(
        &self,
        name: &str,
        bootstrap: &Path,
        environment: &BTreeMap<String, String>,
        event: Value,
    ) -> Result<(f64, Value), BenchError> {
        *Fake::lock(&self.fake.event) = Some(event);
        let (tx, answered) = oneshot::channel();
        *Fake::lock(&self.fake.answer) = Some(tx);
        let mut command = Command::new(bootstrap);
        command
            .env_clear()
            .envs(environment)
            // The AWS endpoint and credentials are the local stack's (`functions.env`).
            .envs(lambda_variables(name, self.server.address))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| BenchError::Io {
            what: format!("starting {}", bootstrap.display()),
            source,
        })?;
        let outcome = tokio::time::timeout(ANSWER_LIMIT, answered).await;
        let _ = child.kill().await;
        let (at, answer) = match outcome {
            Ok(Ok(answer)) => answer,
            _ => {
                return Err(BenchError::Stack(format!(
                    "{name} did not answer its first event within {} s",
                    ANSWER_LIMIT.as_secs()
                )))
            }
        };
        let answer = answer.map_err(|error| {
            BenchError::Stack(format!("{name} failed its first event: {error}"))
        })?;
        Ok((
            at.saturating_duration_since(started).as_secs_f64() * 1000.0,
            answer,
        ))
    }
}

/// The environment the local stack gives its functions (`$LOCAL_STACK_DIR/functions.env`).
fn functions_environment() -> Result<BTreeMap<String, String>, BenchError> {
    let dir = std::env::var("LOCAL_STACK_DIR").map_err(|_| BenchError::Missing {
        what: "LOCAL_STACK_DIR (run the first-invocation part inside local-stack exec)".into(),
    })?;
    let path = PathBuf::from(dir).join("functions.env");
    let text = std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect())
}

/// Who the bench's orders are placed by.
fn bench_caller() -> Result<order_core::callers::Principal, BenchError> {
    order_core::callers::Principal::parse("arn:aws:iam::123456789012:role/bench")
        .map_err(|error| BenchError::Stack(error.to_string()))
}

/// A fresh ACCEPTED order with no execution, stored straight in the table.
async fn fresh_order(store: &OrderStore, order: &Order, key: &str) -> Result<String, BenchError> {
    match store.place_order(&bench_caller()?, key, order, key).await {
        Ok(Placement::Created(record)) => Ok(record.order_id.to_string()),
        Ok(other) => Err(BenchError::Stack(format!(
            "the bench's order with key {key} was not new: {other:?}"
        ))),
        Err(error) => Err(BenchError::Stack(format!("storing a bench order: {error}"))),
    }
}

/// Starts ValidateOrder's packaged bootstrap and the floor `runs` times each, round-robin,
/// each on a fresh order.
pub async fn measure(
    build_dir: &Path,
    floor: &Path,
    runs: usize,
) -> Result<FirstInvocationReport, BenchError> {
    let function = build_dir.join(FUNCTION).join("bootstrap");
    for bootstrap in [&function, &floor.to_path_buf()] {
        if !bootstrap.is_file() {
            return Err(BenchError::Missing {
                what: format!("{} (make bench builds it)", bootstrap.display()),
            });
        }
    }
    let environment = functions_environment()?;
    let table = environment
        .get("TABLE_NAME")
        .cloned()
        .ok_or_else(|| BenchError::Missing {
            what: "TABLE_NAME in the stack's functions.env".into(),
        })?;
    let store = OrderStore::from_config(&order_core::config::aws().await, table);
    let catalogue = Catalogue::builtin().map_err(|e| BenchError::Stack(e.to_string()))?;
    let tag = format!("{:x}", crate::work::run_tag());
    let body = example_request(&format!("m-bench-first-{tag}")).to_string();
    let order = Order::parse_json(body.as_bytes(), &catalogue)
        .map_err(|problems| BenchError::Stack(format!("the example order: {problems:?}")))?;
    let runtime = Runtime::start().await?;
    let (mut ours, mut floors) = (Vec::new(), Vec::new());
    let progress = std::io::stderr().is_terminal();
    for run in 0..runs {
        if progress {
            eprint!("\r  first invocation: {}/{runs}   ", run + 1);
        }
        let id = fresh_order(&store, &order, &format!("{tag}-first-{run}")).await?;
        let event = serde_json::json!({"order_id": id});
        let (ms, answer) = runtime
            .invoke_once(FUNCTION, &function, &environment, event.clone())
            .await?;
        if answer["status"] != "VALIDATED" {
            return Err(BenchError::Stack(format!(
                "{FUNCTION} answered {answer} for order {id}, not VALIDATED"
            )));
        }
        ours.push(ms);
        let id = fresh_order(&store, &order, &format!("{tag}-floor-{run}")).await?;
        let event = serde_json::json!({"order_id": id});
        let (ms, _) = runtime
            .invoke_once("sdk-floor", floor, &environment, event)
            .await?;
        floors.push(ms);
    }
    if progress {
        eprintln!();
    }
    let summary = |name: &str, values: &[f64]| {
        Summary::of(values)
            .map(|ms| FirstInvocation {
                name: name.to_owned(),
                ms,
            })
            .ok_or_else(|| BenchError::Parse {
                what: format!("{name}: no measurement"),
            })
    };
    Ok(FirstInvocationReport {
        runs,
        floor: summary("bare SDK (floor)", &floors)?,
        function: summary(FUNCTION, &ours)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(name: &str, median: f64) -> FirstInvocation {
        FirstInvocation {
            name: name.into(),
            ms: Summary {
                median,
                min: median,
                max: median,
                runs: 1,
            },
        }
    }

    #[test]
    fn the_first_invocation_is_judged_by_its_ratio_to_the_floor() {
        let report = |ours: f64| FirstInvocationReport {
            runs: 1,
            floor: measured("floor", 20.0),
            function: measured(FUNCTION, ours),
        };
        assert_eq!(report(30.0).ratio(), 1.5);
        assert!(report(30.0).verdicts()[0].starts_with("missed"));
        assert!(report(26.0).verdicts()[0].starts_with("met"));
        let markdown = report(26.0).markdown();
        assert!(
            markdown.contains("| ValidateOrderFunction | 26.0 (26.0–26.0) | 1.30× |"),
            "{markdown}"
        );
    }
}
