//! The sandbox between a fake Runtime API (standing in for cargo lambda watch) and a
//! function process (a few lines of Python that speak the Runtime API): what reaches
//! watch when the process answers, dies or runs past its timeout.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A function process: takes one event, then answers it, dies or hangs (`CHILD_MODE`),
/// then asks for the next event.
const FUNCTION: &str = r#"
import os, time, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
with urllib.request.urlopen(api + "/2018-06-01/runtime/invocation/next") as answer:
    request_id = answer.headers["Lambda-Runtime-Aws-Request-Id"]
    event = answer.read()
mode = os.environ["CHILD_MODE"]
if mode == "crash":
    os.kill(os.getpid(), 9)
if mode == "hang":
    time.sleep(120)
reply = urllib.request.Request(api + "/2018-06-01/runtime/invocation/" + request_id + "/response", data=event, method="POST")
urllib.request.urlopen(reply).read()
urllib.request.urlopen(api + "/2018-06-01/runtime/invocation/next").read()
"#;

/// What the sandbox told watch about an invocation.
#[derive(Debug)]
struct Outcome {
    kind: String,
    id: String,
    error_type: Option<String>,
    body: serde_json::Value,
}

/// Checks that the invocation failed as Lambda reports a failure: an error outcome with
/// `error_type` in its header and body, and `message`.
fn assert_failed_with(outcome: &Outcome, error_type: &str, message: &str) {
    assert_eq!(outcome.kind, "error");
    assert_eq!(outcome.error_type.as_deref(), Some(error_type));
    assert_eq!(outcome.body["errorType"], error_type);
    assert_eq!(outcome.body["errorMessage"], message);
}

struct Watch {
    polls: AtomicUsize,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

async fn next(State(watch): State<Arc<Watch>>) -> (StatusCode, HeaderMap, &'static str) {
    if watch.polls.fetch_add(1, Ordering::SeqCst) > 0 {
        // One event only: later polls wait, as watch does when there is no work.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        "req-1".parse().expect("a header value"),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        "600000".parse().expect("a header value"),
    );
    (StatusCode::OK, headers, r#"{"order_id":"ord-1"}"#)
}

async fn outcome(
    State(watch): State<Arc<Watch>>,
    Path((id, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = watch.outcomes.send(Outcome {
        kind,
        id,
        error_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    StatusCode::ACCEPTED
}

/// Starts the fake watch and a sandbox running the Python function in `mode`; returns
/// the first outcome watch receives and how often the sandbox polled watch by then.
async fn run(mode: &str, timeout_seconds: u64) -> (Outcome, Arc<Watch>, tokio::process::Child) {
    let (outcomes, mut received) = mpsc::unbounded_channel();
    let watch = Arc::new(Watch {
        polls: AtomicUsize::new(0),
        outcomes,
    });
    let app = axum::Router::new()
        .route("/.rt/fn/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/.rt/fn/2018-06-01/runtime/invocation/{id}/{kind}",
            post(outcome),
        )
        .with_state(watch.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake watch");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_lambda-sandbox"))
        .args(["python3", "-c", FUNCTION])
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://{address}/.rt/fn"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "fn")
        .env(
            "LOCAL_SANDBOX_TIMEOUTS",
            format!("other:1,fn:{timeout_seconds}"),
        )
        .env("CHILD_MODE", mode)
        .kill_on_drop(true)
        .spawn()
        .expect("start the sandbox");
    let outcome = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("the sandbox reports the invocation's outcome within a minute")
        .expect("an outcome");
    (outcome, watch, sandbox)
}

/// Waits until the sandbox has asked watch for work `count` times in all.
async fn polls_reach(watch: &Watch, count: usize) {
    for _ in 0..300 {
        if watch.polls.load(Ordering::SeqCst) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the sandbox polled watch {} times, expected {count}",
        watch.polls.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_answer_of_the_function_reaches_watch_unchanged() {
    let (outcome, _watch, _sandbox) = run("answer", 30).await;
    assert_eq!(outcome.kind, "response");
    assert_eq!(outcome.id, "req-1");
    assert_eq!(outcome.body, serde_json::json!({"order_id": "ord-1"}));
}

#[tokio::test]
async fn a_process_killed_mid_invocation_fails_it_with_runtime_exit_error_and_is_replaced() {
    let (outcome, watch, _sandbox) = run("crash", 30).await;
    assert_eq!(outcome.id, "req-1");
    assert_failed_with(
        &outcome,
        "Runtime.ExitError",
        "RequestId: req-1 Error: Runtime exited with error: signal: killed",
    );
    // A new process starts and asks for work: the instance is not lost.
    polls_reach(&watch, 2).await;
}

#[tokio::test]
async fn a_process_past_its_timeout_is_killed_and_the_invocation_fails_with_sandbox_timedout() {
    let (outcome, watch, _sandbox) = run("hang", 1).await;
    assert_failed_with(
        &outcome,
        "Sandbox.Timedout",
        "RequestId: req-1 Error: Task timed out after 1.00 seconds",
    );
    polls_reach(&watch, 2).await;
}
