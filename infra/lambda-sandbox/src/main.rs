//! The local Lambda execution environment (development and tests only; never deployed).
//!
//! `cargo lambda watch` starts each function instance with `cargo run --bin <name>`. The
//! local stack makes this program cargo's runner (`CARGO_TARGET_<host>_RUNNER`), so every
//! instance runs as `lambda-sandbox target/debug/<name>`: it stands between the function
//! process and watch's Runtime API, as AWS's sandbox does, and adds what watch lacks.
//!
//! - A function process that dies during an invocation (killed, out of memory, aborted)
//!   fails that invocation as Lambda does: error type `Runtime.ExitError`, message
//!   `RequestId: <id> Error: Runtime exited with error: signal: killed`. watch alone never
//!   answers such an invocation.
//! - An invocation that runs past the function's timeout ends as on Lambda: the process
//!   is killed and the invocation fails with `Sandbox.Timedout` ("Task timed out after
//!   N.00 seconds").
//! - The dead process is replaced by a fresh one (a new execution environment: a cold
//!   start). watch alone keeps counting a dead instance and stalls once all are dead.
//!
//! watch turns the error into its invoke answer, which the invoke router gives the caller
//! in AWS's shape (HTTP 200 with `X-Amz-Function-Error: Unhandled`).
//!
//! Configuration (environment): `AWS_LAMBDA_RUNTIME_API` (watch's, for this instance),
//! `AWS_LAMBDA_FUNCTION_NAME`, and `LOCAL_SANDBOX_TIMEOUTS`, the functions' timeouts from
//! the template as `name:seconds,name:seconds,...` (no `=`: the value goes through an env file).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
const DEADLINE: &str = "lambda-runtime-deadline-ms";
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
/// Lambda's largest timeout: what an instance gets when no timeout is configured for it.
const UNCONFIGURED_TIMEOUT: Duration = Duration::from_secs(900);
/// Largest answer a function may give (Lambda's synchronous limit is 6 MB).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum SandboxError {
    #[error("usage: lambda-sandbox PROGRAM [ARGS...] (normally run by cargo as its runner)")]
    Usage,
    #[error("AWS_LAMBDA_RUNTIME_API is not set: run me under cargo lambda watch")]
    NoRuntimeApi,
    #[error("LOCAL_SANDBOX_TIMEOUTS: {0}")]
    Timeouts(String),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One invocation, as watch handed it out.
struct Event {
    id: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the function said about the invocation in flight.
struct Answer {
    kind: &'static str,
    headers: HeaderMap,
    body: Bytes,
}

struct Sandbox {
    /// watch's Runtime API for this instance, with scheme, without a trailing slash.
    upstream: String,
    http: reqwest::Client,
    timeout: Duration,
    /// The function's requests for its next event: (its generation, where it goes).
    requests: mpsc::UnboundedSender<(u64, oneshot::Sender<Event>)>,
    /// The generation of the function process now running (one per process started).
    generation: watch::Receiver<u64>,
    /// The invocation in flight: its request id and where the function's answer goes.
    in_flight: Mutex<Option<(String, oneshot::Sender<Answer>)>>,
    /// The running function process.
    pid: AtomicI32,
}

#[tokio::main]
async fn main() -> Result<(), SandboxError> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // Die with the cargo process that runs us, and take the function with us.
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the calling process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };

    let mut args = std::env::args().skip(1);
    let program = args.next().ok_or(SandboxError::Usage)?;
    let program_args: Vec<String> = args.collect();
    let upstream =
        std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| SandboxError::NoRuntimeApi)?;
    let upstream = if upstream.starts_with("http://") || upstream.starts_with("https://") {
        upstream
    } else {
        format!("http://{upstream}")
    };
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| program.clone());
    let timeout = match std::env::var("LOCAL_SANDBOX_TIMEOUTS") {
        Ok(list) => timeout_of(&list, &function).map_err(SandboxError::Timeouts)?,
        Err(_) => None,
    }
    .unwrap_or_else(|| {
        tracing::warn!(
            function,
            "no timeout configured in LOCAL_SANDBOX_TIMEOUTS: using Lambda's largest, 900 s"
        );
        UNCONFIGURED_TIMEOUT
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(SandboxError::Bind)?;
    let address = listener.local_addr().map_err(SandboxError::Bind)?;
    let (generation_tx, generation) = watch::channel(0u64);
    let (exits_tx, exits) = watch::channel(String::new());
    let (requests, requests_rx) = mpsc::unbounded_channel();
    let sandbox = Arc::new(Sandbox {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?,
        timeout,
        requests,
        generation,
        in_flight: Mutex::new(None),
        pid: AtomicI32::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/{generation}/2018-06-01/runtime/invocation/next",
            get(next),
        )
        .route(
            "/{generation}/2018-06-01/runtime/invocation/{id}/{outcome}",
            post(outcome),
        )
        .route(
            "/{generation}/2018-06-01/runtime/init/error",
            post(init_error),
        )
        .with_state(sandbox.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the sandbox's Runtime API stopped");
        }
    });
    tokio::spawn(relay(sandbox.clone(), requests_rx, exits));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(SandboxError::Bind)?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(SandboxError::Bind)?;
    let mut generation = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        generation += 1;
        let started = Instant::now();
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&program_args)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://{address}/{generation}"),
            )
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: program.clone(),
            source,
        })?;
        sandbox
            .pid
            .store(child.id().map_or(0, |pid| pid as i32), Ordering::SeqCst);
        // Requests of older processes are ignored from now on.
        let _ = generation_tx.send(generation);
        tracing::info!(
            function,
            generation,
            pid = child.id(),
            "function process started"
        );
        let status = tokio::select! {
            status = child.wait() => status,
            _ = terminate.recv() => return stop(child).await,
            _ = interrupt.recv() => return stop(child).await,
        };
        let how = match status {
            Ok(status) => exit_text(status),
            Err(error) => format!("wait failed: {error}"),
        };
        tracing::warn!(function, generation, exit = %how, "function process ended; starting a new one");
        let _ = exits_tx.send(how);
        // A process that dies at once again and again (a broken build, a bad setting)
        // is restarted less and less often.
        backoff = if started.elapsed() < Duration::from_secs(2) {
            (backoff * 2).min(Duration::from_secs(5))
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(backoff).await;
    }
}

async fn stop(mut child: tokio::process::Child) -> Result<(), SandboxError> {
    let _ = child.kill().await;
    Ok(())
}

/// The timeout `LOCAL_SANDBOX_TIMEOUTS` gives `function`, if any.
fn timeout_of(list: &str, function: &str) -> Result<Option<Duration>, String> {
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, seconds)) = entry.split_once(':') else {
            return Err(format!("{entry:?} is not name:seconds"));
        };
        let seconds: u64 = seconds
            .parse()
            .map_err(|_| format!("{entry:?}: {seconds:?} is not a whole number of seconds"))?;
        if name == function {
            return Ok(Some(Duration::from_secs(seconds)));
        }
    }
    Ok(None)
}

/// How a process ended, in the words Lambda uses (Go's `ExitError` text).
fn exit_text(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(libc::SIGKILL) => "signal: killed".to_owned(),
        Some(libc::SIGABRT) => "signal: aborted".to_owned(),
        Some(libc::SIGSEGV) => "signal: segmentation fault".to_owned(),
        Some(libc::SIGTERM) => "signal: terminated".to_owned(),
        Some(signal) => format!("signal: {signal}"),
        None => "unknown exit".to_owned(),
    }
}

/// Hands watch's invocations to the function, one at a time, and watch the function's
/// answers, or Lambda's own error when the process dies or runs out of time.
async fn relay(
    sandbox: Arc<Sandbox>,
    mut requests: mpsc::UnboundedReceiver<(u64, oneshot::Sender<Event>)>,
    mut exits: watch::Receiver<String>,
) {
    loop {
        // Like a Lambda environment, take work only when the function asks for it.
        let Some(mut asker) = live_request(&sandbox, &mut requests).await else {
            return;
        };
        let mut event = upstream_next(&sandbox).await;
        let id = event.id.clone();
        let deadline = Instant::now() + sandbox.timeout;
        let deadline_ms = SystemTime::now()
            .checked_add(sandbox.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis());
        if let Ok(value) = HeaderValue::from_str(&deadline_ms.to_string()) {
            event.headers.insert(DEADLINE, value);
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        *sandbox.in_flight.lock().await = Some((id.clone(), answer_tx));
        exits.borrow_and_update();
        // The asker may have died while watch had no work: give it to a live one.
        loop {
            match asker.send(event) {
                Ok(()) => break,
                Err(returned) => {
                    event = returned;
                    match live_request(&sandbox, &mut requests).await {
                        Some(next) => asker = next,
                        None => return,
                    }
                }
            }
        }
        let (kind, body) = tokio::select! {
            answer = answer_rx => match answer {
                Ok(answer) => {
                    forward(&sandbox, &id, answer).await;
                    continue;
                }
                Err(_) => ("Runtime.ExitError", format!("RequestId: {id} Error: Runtime exited without answering")),
            },
            _ = exits.changed() => {
                let how = exits.borrow().clone();
                ("Runtime.ExitError", format!("RequestId: {id} Error: Runtime exited with error: {how}"))
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let pid = sandbox.pid.load(Ordering::SeqCst);
                if pid > 0 {
                    // SAFETY: kill(2) on the process this sandbox started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                ("Sandbox.Timedout", format!(
                    "RequestId: {id} Error: Task timed out after {:.2} seconds",
                    sandbox.timeout.as_secs_f64()
                ))
            }
        };
        sandbox.in_flight.lock().await.take();
        tracing::warn!(request_id = %id, error_type = kind, message = %body, "invocation failed in the sandbox");
        let mut headers = HeaderMap::new();
        headers.insert(ERROR_TYPE, HeaderValue::from_static(kind));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let body = serde_json::json!({"errorType": kind, "errorMessage": body}).to_string();
        forward(
            &sandbox,
            &id,
            Answer {
                kind: "error",
                headers,
                body: Bytes::from(body),
            },
        )
        .await;
    }
}

/// The next request for an event from the function process now running.
async fn live_request(
    sandbox: &Sandbox,
    requests: &mut mpsc::UnboundedReceiver<(u64, oneshot::Sender<Event>)>,
) -> Option<oneshot::Sender<Event>> {
    loop {
        let (generation, asker) = requests.recv().await?;
        if generation == *sandbox.generation.borrow() && !asker.is_closed() {
            return Some(asker);
        }
    }
}

/// watch's next invocation; retried until watch answers (it long-polls).
async fn upstream_next(sandbox: &Sandbox) -> Event {
    let url = format!("{}/2018-06-01/runtime/invocation/next", sandbox.upstream);
    loop {
        match sandbox.http.get(&url).send().await {
            Ok(answer) if answer.status() == StatusCode::OK => {
                let mut headers = answer.headers().clone();
                headers.remove("content-length");
                headers.remove("transfer-encoding");
                headers.remove("connection");
                let id = headers
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match (id, answer.bytes().await) {
                    (Some(id), Ok(body)) => return Event { id, headers, body },
                    (None, _) => tracing::warn!("watch gave an event without a request id"),
                    (_, Err(error)) => tracing::warn!(%error, "watch's event was cut short"),
                }
            }
            Ok(answer) => tracing::debug!(status = answer.status().as_u16(), "no event from watch"),
            Err(error) => tracing::warn!(%error, "watch's Runtime API unreachable"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Gives watch the outcome of invocation `id`.
async fn forward(sandbox: &Sandbox, id: &str, answer: Answer) {
    let url = format!(
        "{}/2018-06-01/runtime/invocation/{id}/{}",
        sandbox.upstream, answer.kind
    );
    let mut request = sandbox.http.post(&url).body(answer.body);
    for (name, value) in &answer.headers {
        if name == "content-type" || name.as_str().starts_with("lambda-runtime-") {
            request = request.header(name, value);
        }
    }
    if let Err(error) = request.send().await {
        tracing::warn!(request_id = id, %error, "could not give watch the invocation's outcome");
    }
}

async fn next(State(sandbox): State<Arc<Sandbox>>, Path(generation): Path<u64>) -> Response {
    let (tx, rx) = oneshot::channel();
    if sandbox.requests.send((generation, tx)).is_err() {
        return status(StatusCode::SERVICE_UNAVAILABLE, "the sandbox is stopping");
    }
    match rx.await {
        Ok(event) => {
            let mut response = Response::new(Body::from(event.body));
            *response.headers_mut() = event.headers;
            response
        }
        Err(_) => status(StatusCode::GONE, "this function process was replaced"),
    }
}

/// `POST .../invocation/{id}/response` or `.../error`: the function's answer.
async fn outcome(
    State(sandbox): State<Arc<Sandbox>>,
    Path((_generation, id, outcome)): Path<(u64, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match outcome.as_str() {
        "response" => "response",
        "error" => "error",
        _ => return status(StatusCode::NOT_FOUND, "no such Runtime API route"),
    };
    if body.len() > MAX_BODY_BYTES {
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "answer over the payload limit",
        );
    }
    let mut in_flight = sandbox.in_flight.lock().await;
    match in_flight.take() {
        Some((current, tx)) if current == id => {
            let _ = tx.send(Answer {
                kind,
                headers,
                body,
            });
            status(StatusCode::ACCEPTED, "")
        }
        other => {
            *in_flight = other;
            status(StatusCode::BAD_REQUEST, "no such invocation in flight")
        }
    }
}

/// A function that fails before its first poll reports it here; watch logs it. The
/// process then exits and a new one is started.
async fn init_error(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("{}/2018-06-01/runtime/init/error", sandbox.upstream);
    let mut request = sandbox.http.post(&url).body(body);
    if let Some(kind) = headers.get(ERROR_TYPE) {
        request = request.header(ERROR_TYPE, kind);
    }
    match request.send().await {
        Ok(_) => status(StatusCode::ACCEPTED, ""),
        Err(error) => status(StatusCode::BAD_GATEWAY, &error.to_string()),
    }
}

fn status(code: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(message.to_owned()));
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_gets_its_own_timeout_and_an_unlisted_one_none() {
        let list = "reconciler:120, take-payment:25";
        assert_eq!(
            timeout_of(list, "take-payment"),
            Ok(Some(Duration::from_secs(25)))
        );
        assert_eq!(
            timeout_of(list, "reconciler"),
            Ok(Some(Duration::from_secs(120)))
        );
        assert_eq!(timeout_of(list, "orders-api"), Ok(None));
    }

    #[test]
    fn a_malformed_timeout_list_is_named() {
        let error = timeout_of("take-payment:soon", "take-payment").expect_err("not a number");
        assert!(error.contains("take-payment:soon"), "{error}");
        assert!(timeout_of("take-payment", "x").is_err());
    }

    #[test]
    fn exits_are_described_in_lambdas_words() {
        assert_eq!(exit_text(ExitStatus::from_raw(9)), "signal: killed");
        assert_eq!(exit_text(ExitStatus::from_raw(6)), "signal: aborted");
        assert_eq!(exit_text(ExitStatus::from_raw(1 << 8)), "exit status 1");
    }
}
