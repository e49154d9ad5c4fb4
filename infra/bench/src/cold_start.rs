//! Cold start of what deploys. Each bootstrap `make package` built is started the way
//! Lambda starts it (its environment from `template.yaml`, the Lambda variables, AWS
//! credentials), against a fake Lambda Runtime API on 127.0.0.1 that also answers the AWS
//! calls a function makes during init (Secrets Manager's GetSecretValue). Init time is
//! exec to the first `GET /invocation/next`, the moment the function is ready for its
//! first event; peak RSS is the process's high-water mark (`VmHWM`) at that moment.

use crate::stats::Summary;
use crate::BenchError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use local_stack::template::LocalResources;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::oneshot;

/// How long a bootstrap may take to ask for its first event before the run fails.
const INIT_LIMIT: Duration = Duration::from_secs(20);

/// The value every secret has in the fake: long enough for the webhook's minimum.
const SECRET_VALUE: &str = "bench-secret-value-0123456789abcdef0123456789";

/// A bootstrap to start, with the environment the template gives its function.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The function's logical id, or `floor` for the no-op bootstrap.
    pub name: String,
    pub bootstrap: PathBuf,
    pub environment: BTreeMap<String, String>,
}

/// What one bootstrap measured.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub name: String,
    pub bytes: u64,
    pub init_ms: Summary,
    pub peak_rss_mb: Summary,
}

/// The fake Runtime API's one piece of state: who waits for the next first poll.
#[derive(Default)]
struct Fake {
    first_poll: Mutex<Option<oneshot::Sender<Instant>>>,
    unexpected: Mutex<Vec<String>>,
}

impl Fake {
    fn arm(&self) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        *self
            .first_poll
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }
}

/// A fake (Runtime API, AWS endpoint) serving on 127.0.0.1 until dropped.
pub struct FakeServer {
    pub address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeServer {
    /// Serves `app` on a free port of 127.0.0.1.
    pub async fn start(app: axum::Router) -> Result<FakeServer, BenchError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| BenchError::Io { what, source }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the fake Runtime API"))?;
        let address = listener
            .local_addr()
            .map_err(io("the fake Runtime API's address"))?;
        let server = tokio::spawn(async move {
            // The server ends only when the task is aborted; an accept error ends it early
            // and every later run then times out, naming the Runtime API.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeServer { address, server })
    }
}

/// The fake Runtime API and AWS endpoint of the cold start.
pub struct Runtime {
    fake: Arc<Fake>,
    server: FakeServer,
}

impl Runtime {
    pub async fn start() -> Result<Runtime, BenchError> {
        let fake = Arc::new(Fake::default());
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/", post(aws_call))
            .with_state(fake.clone());
        let server = FakeServer::start(app).await?;
        Ok(Runtime { fake, server })
    }

    /// The AWS calls made during init that the fake does not answer (none is expected).
    pub fn unexpected_calls(&self) -> Vec<String> {
        self.fake
            .unexpected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts `subject` once: the time to its first poll (ms) and its peak RSS then (MB).
    pub async fn start_once(&self, subject: &Subject) -> Result<(f64, f64), BenchError> {
        let first_poll = self.fake.arm();
        let mut command = Command::new(&subject.bootstrap);
        command
            .env_clear()
            .envs(&subject.environment)
            .envs(lambda_environment(&subject.name, self.server.address))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| {
            // ENOEXEC: a bootstrap for another CPU (an arm64 package on x86_64).
            if source.raw_os_error() == Some(8) {
                BenchError::WrongArchitecture(subject.bootstrap.display().to_string())
            } else {
                BenchError::Io {
                    what: format!("starting {}", subject.bootstrap.display()),
                    source,
                }
            }
        })?;
        let pid = child.id();
        let polled = tokio::select! {
            polled = tokio::time::timeout(INIT_LIMIT, first_poll) => polled,
            exited = child.wait() => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                // Its last words: the end of what it wrote.
                let skipped = stderr.chars().count().saturating_sub(2000);
                return Err(BenchError::Exited {
                    name: subject.name.clone(),
                    status: exited.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    stderr: stderr.chars().skip(skipped).collect(),
                });
            }
        };
        let peak_rss = pid.map(peak_rss_mb).transpose();
        let _ = child.kill().await;
        let arrived = match polled {
            Ok(Ok(arrived)) => arrived,
            _ => {
                return Err(BenchError::NoFirstPoll {
                    name: subject.name.clone(),
                    seconds: INIT_LIMIT.as_secs(),
                })
            }
        };
        let init = arrived.saturating_duration_since(started).as_secs_f64() * 1000.0;
        let peak_rss = peak_rss?.ok_or_else(|| BenchError::NoFirstPoll {
            name: subject.name.clone(),
            seconds: INIT_LIMIT.as_secs(),
        })?;
        Ok((init, peak_rss))
    }
}

/// What Lambda gives every function process, pointed at the fake (its Runtime API, and
/// its AWS endpoint with the region and credentials).
fn lambda_environment(name: &str, address: SocketAddr) -> Vec<(String, String)> {
    let endpoint = format!("http://{address}");
    let aws = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_SESSION_TOKEN", "bench".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint),
    ];
    let mut variables = lambda_variables(name, address);
    variables.extend(aws.map(|(name, value)| (name.to_owned(), value)));
    variables
}

/// The variables Lambda sets for the function `name`, its Runtime API at `address`.
pub fn lambda_variables(name: &str, address: SocketAddr) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// The process's peak resident set (`VmHWM` in /proc), in MB.
fn peak_rss_mb(pid: u32) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
        what: format!("reading {path}"),
        source,
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb * 1024.0 / 1e6)
        .ok_or_else(|| BenchError::Parse {
            what: format!("VmHWM in {path}"),
        })
}

/// `GET /invocation/next`: records the first poll, then never answers (the process waits
/// for an event until it is killed).
async fn next(State(fake): State<Arc<Fake>>) -> Response {
    let waiting = fake
        .first_poll
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(waiting) = waiting {
        let _ = waiting.send(Instant::now());
    }
    std::future::pending::<()>().await;
    StatusCode::GONE.into_response()
}

/// An AWS JSON-protocol call. GetSecretValue answers every secret (`AWSPREVIOUS`: none);
/// anything else is recorded and refused.
async fn aws_call(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let json = |status: StatusCode, body: Value| {
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        response
    };
    if target != "secretsmanager.GetSecretValue" {
        fake.unexpected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target.clone());
        let error = json!({"__type": "UnknownOperationException", "message": target});
        return json(StatusCode::BAD_REQUEST, error);
    }
    let id = request["SecretId"].as_str().unwrap_or("secret").to_owned();
    if request["VersionStage"] == "AWSPREVIOUS" {
        let error = json!({"__type": "ResourceNotFoundException", "Message": "no AWSPREVIOUS"});
        return json(StatusCode::BAD_REQUEST, error);
    }
    json(
        StatusCode::OK,
        json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{id}"),
            "Name": id,
            "SecretString": SECRET_VALUE,
            "VersionId": "bench-1",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.7e9,
        }),
    )
}

fn resources(template: &Path) -> Result<LocalResources, BenchError> {
    let parameters = local_stack::template::local_parameters("http://127.0.0.1:9");
    LocalResources::load(template, "us-east-1", "http://127.0.0.1:9", &parameters)
        .map_err(|error| BenchError::Template(error.to_string()))
}

/// The memory size the template gives its functions: the largest, if they differ.
pub fn memory_mb(template: &Path) -> Result<u64, BenchError> {
    let sizes = resources(template)?
        .functions
        .into_iter()
        .map(|f| f.memory_mb);
    sizes
        .max()
        .ok_or_else(|| BenchError::Template("it declares no function".into()))
}

/// Every bootstrap under `build_dir` (`<LogicalId>/bootstrap`, as sam build leaves them),
/// each with its function's environment from `template`; only those named in `only`
/// unless it is empty.
pub fn subjects(
    build_dir: &Path,
    template: &Path,
    only: &[String],
) -> Result<Vec<Subject>, BenchError> {
    let resources = resources(template)?;
    if let Some(unknown) = only
        .iter()
        .find(|name| !resources.functions.iter().any(|f| &f.logical_id == *name))
    {
        return Err(BenchError::UnknownFunction(unknown.clone()));
    }
    let mut subjects = Vec::new();
    let chosen = |id: &String| only.is_empty() || only.contains(id);
    for function in resources.functions.iter().filter(|f| chosen(&f.logical_id)) {
        let bootstrap = build_dir.join(&function.logical_id).join("bootstrap");
        if !bootstrap.is_file() {
            return Err(BenchError::Missing {
                what: format!("{} (run make package first)", bootstrap.display()),
            });
        }
        subjects.push(Subject {
            name: function.logical_id.clone(),
            bootstrap,
            environment: function.environment.clone(),
        });
    }
    Ok(subjects)
}

/// Starts every subject `runs` times, round-robin so that the machine's noise falls on
/// all of them alike, and summarises each.
pub async fn measure(subjects: &[Subject], runs: usize) -> Result<Vec<ColdStart>, BenchError> {
    let runtime = Runtime::start().await?;
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); subjects.len()];
    let progress = std::io::stderr().is_terminal();
    eprintln!("cold start: {runs} runs of {} bootstraps", subjects.len());
    for run in 0..runs {
        if progress {
            eprint!("\rrun {}/{runs}", run + 1);
        }
        for (subject, (inits, rss)) in subjects.iter().zip(samples.iter_mut()) {
            let (init, peak) = runtime.start_once(subject).await?;
            inits.push(init);
            rss.push(peak);
        }
    }
    if progress {
        eprintln!();
    }
    let unexpected = runtime.unexpected_calls();
    if !unexpected.is_empty() {
        return Err(BenchError::UnexpectedCalls(unexpected));
    }
    subjects
        .iter()
        .zip(samples)
        .map(|(subject, (inits, rss))| {
            let bytes = std::fs::metadata(&subject.bootstrap)
                .map_err(|source| BenchError::Io {
                    what: format!("reading {}", subject.bootstrap.display()),
                    source,
                })?
                .len();
            let summary = |values: &[f64]| {
                Summary::of(values).ok_or_else(|| BenchError::Parse {
                    what: format!("{}: no measurement", subject.name),
                })
            };
            Ok(ColdStart {
                name: subject.name.clone(),
                bytes,
                init_ms: summary(&inits)?,
                peak_rss_mb: summary(&rss)?,
            })
        })
        .collect()
}
