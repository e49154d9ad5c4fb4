//! `up`, `down`, `status` and `exec`: the local stack's life cycle.
//!
//! `up` starts, on 127.0.0.1 only: moto (DynamoDB, SQS, Step Functions with real
//! execution; launched by `infra/moto/server.py`, which makes DynamoDB item operations
//! atomic as on AWS), the invoke router in front of it, the partner simulator (warehouse,
//! payments, terminals, courier, notifications) and cargo lambda watch serving every
//! function; then creates the template's resources and writes `stack.env`, the
//! environment that points any AWS client (and the functions) at the stack. Once all of
//! that is up, the stream poller (`local-stack poll-streams`, see
//! [`crate::stream_poller`]) when the template has `Type: DynamoDB` function events.

use crate::deploy::{self, Clients, DeployError};
use crate::process::{self, ProcessError, Tracked};
use crate::template::{local_parameters, LocalResources, TemplateError};
use order_core::steps::Partner;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a function's first start may take (it may have to compile).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("port {port} for {what} is already in use; stop what uses it or choose another port with {variable}=<port>")]
    PortTaken {
        port: u16,
        what: &'static str,
        variable: &'static str,
    },
    #[error("{what} is missing at {path}; {hint}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{what} did not become ready within {seconds} s; last lines of {log}:\n{tail}")]
    NotReady {
        what: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} exited while starting; last lines of {log}:\n{tail}")]
    Exited {
        what: String,
        log: PathBuf,
        tail: String,
    },
    #[error("no local stack is running in {0} (start one with `make up`)")]
    NotRunning(PathBuf),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("deploying the template failed: {0}")]
    Deploy(#[from] DeployError),
    #[error("sam deploy through MiniStack's CloudFormation failed:\n{failures}\nlast lines of {log}:\n{tail}")]
    Deployment {
        failures: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{0}")]
    Other(String),
}

/// The five ports of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The AWS endpoint (the invoke router): what `AWS_ENDPOINT_URL` points at.
    pub aws: u16,
    /// moto itself, behind the router: every AWS API but DynamoDB.
    pub moto: u16,
    /// A second moto process, behind the router, serving DynamoDB alone (moto is one
    /// Python process on one core: the table and the workflow engine each get one).
    pub dynamodb: u16,
    /// cargo lambda watch: Lambda Invoke API and function URLs.
    pub lambda: u16,
    /// The partner simulator.
    pub partners: u16,
}

/// The AWS emulator a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emulator {
    /// moto, with cargo lambda watch and the invoke router; resources created by our own
    /// deployer from template.yaml (the development stack).
    #[default]
    Moto,
    /// MiniStack: template.yaml deployed by `sam deploy` through its CloudFormation, the
    /// release bootstraps of `make package` run by its Lambda (see `crate::ministack`).
    MiniStack,
}

impl Emulator {
    pub const fn as_str(self) -> &'static str {
        match self {
            Emulator::Moto => "moto",
            Emulator::MiniStack => "ministack",
        }
    }
}

impl std::fmt::Display for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Emulator {
    type Err = String;

    fn from_str(text: &str) -> Result<Emulator, String> {
        match text {
            "moto" => Ok(Emulator::Moto),
            "ministack" => Ok(Emulator::MiniStack),
            other => Err(format!("unknown emulator {other:?}: moto or ministack")),
        }
    }
}

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// moto (default) or MiniStack.
    pub emulator: Emulator,
    /// What the MiniStack profile needs (unused on moto).
    pub ministack: crate::ministack::MiniStackTools,
    /// Where PID files, logs and stack.env go.
    pub dir: PathBuf,
    /// The workspace root (template.yaml and Cargo.toml).
    pub root: PathBuf,
    pub region: String,
    /// Fixed ports, or `None` to pick free ones.
    pub ports: Option<Ports>,
    /// The virtualenv holding moto_server and cargo-lambda.
    pub venv: PathBuf,
    /// The invoke-router binary.
    pub router: PathBuf,
    /// The partner-simulator binary.
    pub partner_simulator: PathBuf,
    /// The lambda-sandbox binary: every function instance runs inside it.
    pub sandbox: PathBuf,
    /// The local-stack binary itself: `poll-streams` runs the stream poller.
    pub local_stack: PathBuf,
    /// The seed of the partner simulator's fault decisions.
    pub partner_seed: u64,
    /// Instances per function cargo lambda watch may run at once.
    pub concurrency: u32,
    /// Restart functions when their source changes (development) or not (tests).
    pub reload: bool,
    /// Build and run the functions with the release profile (what deploys) instead of
    /// debug builds: for `make bench`'s latency figures.
    pub release: bool,
    /// The ops console to start with the stack (`make up`), or none (`exec`: the tests
    /// start their own).
    pub console: Option<ConsoleOptions>,
}

/// The ops console `up` starts: `orderctl console` against the stack's `stack.env`.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The orderctl binary.
    pub orderctl: PathBuf,
    /// Its port on 127.0.0.1, or `None` for a free one.
    pub port: Option<u16>,
}

/// A running stack, as `up` describes it.
#[derive(Debug, Clone)]
pub struct Running {
    pub ports: Ports,
    pub env_file: PathBuf,
    pub log_dir: PathBuf,
    pub functions: Vec<String>,
    /// What the stream poller delivers: each `Type: DynamoDB` event as
    /// `<function logical id>.<event> -> <binary>` (none: no poller runs).
    pub stream_events: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// What `up` did.
#[derive(Debug)]
pub enum Up {
    Started(Running),
    AlreadyRunning(Vec<Tracked>),
}

/// The processes of the stack in `dir` that are still running.
pub fn running(dir: &Path) -> Vec<Tracked> {
    process::read_pids(dir)
        .into_iter()
        .filter(Tracked::is_alive)
        .collect()
}

/// Starts a stack in `options.dir`, unless one is already running there. On failure,
/// whatever was started is stopped again.
pub async fn up(options: &UpOptions) -> Result<Up, StackError> {
    let alive = running(&options.dir);
    if !alive.is_empty() {
        return Ok(Up::AlreadyRunning(alive));
    }
    // Leftovers of a stack that died: their processes are gone, forget them.
    for stale in process::read_pids(&options.dir) {
        process::forget(&options.dir, &stale);
    }
    let ports = choose_ports(options.ports)?;
    let mut started = Vec::new();
    let result = match options.emulator {
        Emulator::Moto => start(options, ports, &mut started).await,
        Emulator::MiniStack => {
            crate::ministack::start(options, &options.ministack, ports, &mut started).await
        }
    };
    let result = match (result, &options.console) {
        (Ok(running), Some(console)) => {
            start_console(&options.dir, console, running, &mut started).await
        }
        (result, _) => result,
    };
    match result {
        Ok(running) => Ok(Up::Started(running)),
        Err(error) => {
            for process in started.iter().rev() {
                process::stop(process, Duration::from_secs(5));
                process::forget(&options.dir, process);
            }
            Err(error)
        }
    }
}

fn choose_ports(fixed: Option<Ports>) -> Result<Ports, StackError> {
    let Some(ports) = fixed else {
        let pick =
            || process::free_port().map_err(|e| StackError::Other(format!("no free port: {e}")));
        return Ok(Ports {
            aws: pick()?,
            moto: pick()?,
            dynamodb: pick()?,
            lambda: pick()?,
            partners: pick()?,
        });
    };
    for (port, what, variable) in [
        (ports.aws, "the AWS endpoint (invoke router)", "AWS_PORT"),
        (ports.moto, "moto", "MOTO_SERVER_PORT"),
        (ports.dynamodb, "moto's DynamoDB", "DYNAMODB_PORT"),
        (ports.lambda, "cargo lambda watch", "LAMBDA_PORT"),
        (ports.partners, "the partner simulator", "PARTNERS_PORT"),
    ] {
        if !process::port_is_free(port) {
            return Err(StackError::PortTaken {
                port,
                what,
                variable,
            });
        }
    }
    Ok(ports)
}

/// Starts the ops console on the running stack (`orderctl --env-file <dir>/stack.env
/// console`), waits until it prints the URL it serves, and adds that to `stack.env` as
/// `CONSOLE_URL`. The URL carries the console's launch secret (`?token=…`), so its log
/// and `stack.env` are readable by this user only. Without a fixed port the console
/// binds a free one itself (`--port 0`): no port is picked and released first for
/// another stack starting alongside to take.
async fn start_console(
    dir: &Path,
    console: &ConsoleOptions,
    mut running: Running,
    started: &mut Vec<Tracked>,
) -> Result<Running, StackError> {
    let orderctl = require_built(console.orderctl.clone(), "the orderctl binary")?;
    if let Some(port) = console.port.filter(|port| !process::port_is_free(*port)) {
        return Err(StackError::PortTaken {
            port,
            what: "the ops console",
            variable: "CONSOLE_PORT",
        });
    }
    let log = log_dir(dir)?.join("console.log");
    // The URL is read from the log: an earlier console's must not be found there. It
    // carries the secret: the log is this user's alone before the console writes to it.
    let _ = std::fs::remove_file(&log);
    write_private(&log, b"")?;
    let process = process::spawn(
        "console",
        &orderctl,
        &[
            "--env-file".into(),
            running.env_file.display().to_string(),
            "console".into(),
            "--port".into(),
            console.port.unwrap_or(0).to_string(),
        ],
        &[],
        dir,
        &log,
    )?;
    track(dir, started, &process)?;
    let url = || {
        std::fs::read_to_string(&log).ok().and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("http://127.0.0.1:"))
                .map(str::to_owned)
        })
    };
    wait_until_ready(
        "the ops console",
        &process,
        &log,
        Duration::from_secs(30),
        || {
            let printed = url().is_some();
            async move { printed }
        },
    )
    .await?;
    let url = url().unwrap_or_default();
    running.env.insert("CONSOLE_URL".into(), url);
    write_env(&running.env_file, &running.env)?;
    Ok(running)
}

/// Records a started process (its pid file, and `started` for a stop on failure).
pub(crate) fn track(
    dir: &Path,
    started: &mut Vec<Tracked>,
    process: &Tracked,
) -> Result<(), StackError> {
    process::write_pid(dir, process)?;
    started.push(process.clone());
    Ok(())
}

/// The client of the readiness checks: a server that does not answer in 5 s is not ready.
pub(crate) fn health_client() -> Result<reqwest::Client, StackError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| StackError::Other(e.to_string()))
}

/// `path`, if it is a binary of the workspace that was built.
pub(crate) fn require_built(path: PathBuf, what: &'static str) -> Result<PathBuf, StackError> {
    require(path, what, "run `cargo build --workspace` first")
}

/// The stack's log directory (`<dir>/logs`), created if need be.
pub(crate) fn log_dir(dir: &Path) -> Result<PathBuf, StackError> {
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| StackError::Other(format!("{}: {e}", log_dir.display())))?;
    Ok(log_dir)
}

/// `path`, if it is a file; otherwise what is missing and how to get it.
pub(crate) fn require(
    path: PathBuf,
    what: &'static str,
    hint: &'static str,
) -> Result<PathBuf, StackError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(StackError::Missing { what, path, hint })
    }
}

async fn start(
    options: &UpOptions,
    ports: Ports,
    started: &mut Vec<Tracked>,
) -> Result<Running, StackError> {
    let venv_bin = options.venv.join("bin");
    let python = require(
        venv_bin.join("python"),
        "the virtualenv's python",
        "run `make venv` to install the pinned tools",
    )?;
    let moto = require(
        options.root.join("infra/moto/server.py"),
        "the moto launcher",
        "run from the workspace root",
    )?;
    let cargo_lambda = require(
        venv_bin.join("cargo-lambda"),
        "cargo-lambda",
        "run `make venv` to install the pinned tools",
    )?;
    let router = require_built(options.router.clone(), "the invoke-router binary")?;
    let simulator = require_built(
        options.partner_simulator.clone(),
        "the partner-simulator binary",
    )?;
    let sandbox = require_built(options.sandbox.clone(), "the lambda-sandbox binary")?;
    let runner = cargo_runner_variable()?;
    let log_dir = log_dir(&options.dir)?;
    let aws_endpoint = format!("http://127.0.0.1:{}", ports.aws);
    let moto_endpoint = format!("http://127.0.0.1:{}", ports.moto);
    let dynamodb_endpoint = format!("http://127.0.0.1:{}", ports.dynamodb);
    let lambda_endpoint = format!("http://127.0.0.1:{}", ports.lambda);
    let partners_endpoint = format!("http://127.0.0.1:{}", ports.partners);
    let parameters = local_parameters(&partners_endpoint);

    // moto's Step Functions engine invokes Lambda at localhost:$MOTO_PORT: the router.
    // DynamoDB gets a moto process of its own (the router sends it every DynamoDB
    // request), so the table and the workflow engine do not queue behind each other on
    // one Python interpreter.
    let http = health_client()?;
    let motos = [
        ("moto", ports.moto, "moto.log"),
        ("moto-dynamodb", ports.dynamodb, "moto-dynamodb.log"),
    ];
    let mut spawned = Vec::new();
    for (name, port, log) in motos {
        let log = log_dir.join(log);
        let process = process::spawn(
            name,
            &python,
            &[
                moto.display().to_string(),
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            &[("MOTO_PORT".into(), ports.aws.to_string())],
            &options.root,
            &log,
        )?;
        track(&options.dir, started, &process)?;
        spawned.push((name, port, process, log));
    }
    // Both start at once; each is waited for.
    for (name, port, process, log) in spawned {
        let url = format!("http://127.0.0.1:{port}/moto-api/");
        wait_until_ready(name, &process, &log, Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.is_ok() }
        })
        .await?;
    }
    http.post(format!("{moto_endpoint}/moto-api/config"))
        .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| {
            StackError::Other(format!(
                "cannot switch on moto's state machine execution: {e}"
            ))
        })?;

    let router_log = log_dir.join("invoke-router.log");
    let process = process::spawn(
        "invoke-router",
        &router,
        &[
            "--listen".into(),
            format!("127.0.0.1:{}", ports.aws),
            "--lambda".into(),
            lambda_endpoint.clone(),
            "--aws".into(),
            moto_endpoint.clone(),
            "--dynamodb".into(),
            dynamodb_endpoint.clone(),
        ],
        &[],
        &options.root,
        &router_log,
    )?;
    track(&options.dir, started, &process)?;
    let timeout = Duration::from_secs(30);
    wait_until_listening(
        "the invoke router",
        &process,
        &router_log,
        timeout,
        ports.aws,
    )
    .await?;

    let resources = LocalResources::load(
        &options.root.join("template.yaml"),
        &options.region,
        &aws_endpoint,
        &parameters,
    )?;

    // The partners, delivering parcels to the courier webhook function. Each partner
    // wants the token of its own secret, and the courier signs with the webhook secret:
    // the development values the deploy below gives the template's secrets. They reach
    // the simulator in its environment, not its command line.
    start_partner_simulator(
        options,
        &simulator,
        &resources,
        &format!("{aws_endpoint}/lambda-url/courier-webhook/webhooks/courier"),
        ports.partners,
        started,
        &http,
    )
    .await?;
    let clients = Clients::local(&aws_endpoint, &options.region).await;
    let deployed = deploy::deploy(&clients, &resources).await?;

    let mut function_env = resources.function_environment()?;
    function_env.insert(
        "LOCAL_SANDBOX_TIMEOUTS".into(),
        resources.sandbox_timeouts(),
    );
    function_env.extend([
        ("AWS_ENDPOINT_URL".to_owned(), aws_endpoint.clone()),
        ("AWS_REGION".to_owned(), options.region.clone()),
        ("AWS_DEFAULT_REGION".to_owned(), options.region.clone()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
    ]);
    // No IAM at the function URL: the orders API reads its caller from the router's
    // header (crate::callers).
    let (variable, header) = crate::callers::LOCAL_CALLER_HEADER;
    function_env.insert(variable.to_owned(), header.to_owned());
    let functions_env_file = options.dir.join("functions.env");
    write_env(&functions_env_file, &function_env)?;

    let mut stack_env = function_env.clone();
    let tap = order_events_tap(&clients, &function_env).await?;
    stack_env.insert("ORDER_EVENTS_TAP_QUEUE_URL".into(), tap);
    stack_env.insert("LOCAL_STACK_DIR".into(), options.dir.display().to_string());
    stack_env.insert("LOCAL_STACK_EMULATOR".into(), Emulator::Moto.to_string());
    stack_env.insert("LAMBDA_ENDPOINT_URL".into(), lambda_endpoint.clone());
    // moto itself, for a caller whose own requests must not be counted (`make bench`).
    stack_env.insert("AWS_EMULATOR_URL".into(), moto_endpoint.clone());
    stack_env.insert(
        "AWS_EMULATOR_DYNAMODB_URL".into(),
        dynamodb_endpoint.clone(),
    );
    stack_env.insert("PARTNER_SIMULATOR_URL".into(), partners_endpoint.clone());
    let callers = crate::callers::moto_callers();
    stack_env.extend(crate::callers::env(&callers));
    let table = function_env.get("TABLE_NAME").ok_or_else(|| {
        StackError::Other("template.yaml gives the functions no TABLE_NAME".into())
    })?;
    crate::callers::grant_own(clients.dynamodb.clone(), table, &callers).await?;
    let functions: Vec<String> = resources
        .functions
        .iter()
        .map(|f| f.binary.clone())
        .collect();
    for function in &functions {
        let variable = format!("{}_URL", function.to_uppercase().replace('-', "_"));
        // Through the invoke router, which counts them as invocations (`GET /__meter`).
        stack_env.insert(variable, format!("{aws_endpoint}/lambda-url/{function}"));
    }
    for (logical_id, url) in &deployed.queue_urls {
        stack_env.insert(format!("{}_URL", screaming(logical_id)), url.clone());
    }
    for (logical_id, arn) in &deployed.state_machine_arns {
        stack_env.insert(format!("{}_ARN", screaming(logical_id)), arn.clone());
    }
    let env_file = options.dir.join("stack.env");

    let watch_log = log_dir.join("cargo-lambda-watch.log");
    let mut args: Vec<String> = [
        "lambda",
        "watch",
        "--invoke-address",
        "127.0.0.1",
        "--invoke-port",
    ]
    .map(str::to_owned)
    .into();
    args.push(ports.lambda.to_string());
    args.push("--concurrency".into());
    args.push(options.concurrency.to_string());
    args.push("--env-file".into());
    args.push(functions_env_file.display().to_string());
    if !options.reload {
        args.push("--ignore-changes".into());
    }
    if options.release {
        args.push("--release".into());
    }
    // watch starts every instance with `cargo run`: cargo's runner puts it in the
    // sandbox, which fails an invocation whose process died or timed out as Lambda does
    // and replaces the process (see infra/lambda-sandbox).
    let process = process::spawn(
        "cargo-lambda-watch",
        &cargo_lambda,
        &args,
        &[(runner, sandbox.display().to_string())],
        &options.root,
        &watch_log,
    )?;
    track(&options.dir, started, &process)?;
    let timeout = Duration::from_secs(60);
    wait_until_listening(
        "cargo lambda watch",
        &process,
        &watch_log,
        timeout,
        ports.lambda,
    )
    .await?;

    // Start one instance of every function now, so the first real request does not wait
    // for cargo (and a function that cannot start fails here, with its log).
    let slow = reqwest::Client::builder()
        .timeout(WARM_UP_TIMEOUT)
        .build()
        .map_err(|e| StackError::Other(e.to_string()))?;
    for function in &functions {
        eprintln!("  starting function {function} ...");
        let url = format!("{aws_endpoint}/2015-03-31/functions/{function}/invocations");
        let answer = slow.post(&url).body("{\"warm_up\": true}").send().await;
        let service_failed = match &answer {
            Ok(response) => response.headers().contains_key("x-amzn-errortype"),
            Err(_) => true,
        };
        if service_failed {
            return Err(StackError::Exited {
                what: format!("function {function}"),
                tail: process::tail(&watch_log, 30),
                log: watch_log,
            });
        }
    }
    write_env(&env_file, &stack_env)?;
    if !resources.stream_events.is_empty() {
        start_stream_poller(options, &stack_env, started).await?;
    }
    let stream_events = (resources.stream_events.iter())
        .map(|event| format!("{} -> {}", event.name, event.function))
        .collect();
    Ok(Running {
        ports,
        env_file,
        log_dir,
        functions,
        stream_events,
        env: stack_env,
    })
}

/// Starts the stream poller (`local-stack poll-streams`) with the stack's environment, so
/// that it reads template.yaml and reaches the stack as any client does, and waits until
/// it has found every stream it polls.
async fn start_stream_poller(
    options: &UpOptions,
    stack_env: &BTreeMap<String, String>,
    started: &mut Vec<Tracked>,
) -> Result<(), StackError> {
    let local_stack = require_built(options.local_stack.clone(), "the local-stack binary")?;
    let log = log_dir(&options.dir)?.join("stream-poller.log");
    let env: Vec<(String, String)> = stack_env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let process = process::spawn(
        "stream-poller",
        &local_stack,
        &[
            "poll-streams".into(),
            "--root".into(),
            options.root.display().to_string(),
        ],
        &env,
        &options.root,
        &log,
    )?;
    track(&options.dir, started, &process)?;
    let ready = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { text.contains(crate::stream_poller::READY) }
    };
    wait_until_ready(
        "the stream poller",
        &process,
        &log,
        Duration::from_secs(30),
        ready,
    )
    .await
}

/// `CARGO_TARGET_<host triple>_RUNNER`, the variable that makes `cargo run` start a
/// binary through a runner, for the host rustc builds for.
fn cargo_runner_variable() -> Result<String, StackError> {
    let output = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| StackError::Other(format!("rustc -vV: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let host = text
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .ok_or_else(|| StackError::Other(format!("rustc -vV names no host: {text}")))?;
    Ok(format!(
        "CARGO_TARGET_{}_RUNNER",
        host.trim().to_uppercase().replace(['-', '.'], "_")
    ))
}

fn screaming(logical_id: &str) -> String {
    let mut out = String::new();
    for (i, c) in logical_id.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Starts the partner simulator on `port`, delivering parcels to `webhook_url`, and waits
/// until it answers. Each partner wants the token of its own secret, and the courier
/// signs with the webhook secret: the development values the deploy gives the template's
/// secrets. They reach the simulator in its environment, not its command line.
pub(crate) async fn start_partner_simulator(
    options: &UpOptions,
    simulator: &Path,
    resources: &LocalResources,
    webhook_url: &str,
    port: u16,
    started: &mut Vec<Tracked>,
    http: &reqwest::Client,
) -> Result<(), StackError> {
    let partner_tokens = Partner::ALL
        .iter()
        .map(|partner| {
            resources
                .secret_value_named_by(partner.token_secret_variable())
                .map(|token| format!("{partner}={token}"))
        })
        .collect::<Result<Vec<_>, _>>()?
        .join(",");
    let webhook_secret = resources.secret_value_named_by("COURIER_WEBHOOK_SECRET_ID")?;
    let simulator_log = options.dir.join("logs").join("partner-simulator.log");
    let process = process::spawn(
        "partner-simulator",
        simulator,
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--webhook-url".into(),
            webhook_url.to_owned(),
            "--seed".into(),
            options.partner_seed.to_string(),
        ],
        &[
            (
                "PARTNER_SIMULATOR_PARTNER_TOKENS".to_owned(),
                partner_tokens,
            ),
            (
                "PARTNER_SIMULATOR_WEBHOOK_SECRET".to_owned(),
                webhook_secret,
            ),
        ],
        &options.root,
        &simulator_log,
    )?;
    track(&options.dir, started, &process)?;
    wait_until_healthy(
        "the partner simulator",
        &process,
        &simulator_log,
        Duration::from_secs(30),
        http,
        &format!("http://127.0.0.1:{port}/health"),
    )
    .await
}

/// Waits until something accepts connections on `port` of 127.0.0.1 (see
/// [`wait_until_ready`]).
async fn wait_until_listening(
    what: &str,
    process: &Tracked,
    log: &Path,
    timeout: Duration,
    port: u16,
) -> Result<(), StackError> {
    wait_until_ready(what, process, log, timeout, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

/// Waits until `url` answers a GET with a 2xx (see [`wait_until_ready`]).
pub(crate) async fn wait_until_healthy(
    what: &str,
    process: &Tracked,
    log: &Path,
    timeout: Duration,
    http: &reqwest::Client,
    url: &str,
) -> Result<(), StackError> {
    wait_until_ready(what, process, log, timeout, || {
        let request = http.get(url);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}

pub(crate) async fn wait_until_ready<F, Fut>(
    what: &str,
    process: &Tracked,
    log: &Path,
    timeout: Duration,
    ready: F,
) -> Result<(), StackError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await {
            return Ok(());
        }
        if !process.is_alive() {
            return Err(StackError::Exited {
                what: what.to_owned(),
                log: log.to_owned(),
                tail: process::tail(log, 20),
            });
        }
        if Instant::now() > deadline {
            return Err(StackError::NotReady {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                log: log.to_owned(),
                tail: process::tail(log, 20),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `KEY=VALUE` lines (what cargo lambda's `--env-file` and `set -a; . file` read).
/// The local tap on the order-events bus the functions are given
/// (`ORDER_EVENTS_BUS_NAME`): see [`deploy::tap_order_events`]. Returns the queue's URL.
pub(crate) async fn order_events_tap(
    clients: &Clients,
    function_env: &BTreeMap<String, String>,
) -> Result<String, StackError> {
    let bus = function_env
        .get(order_core::events::BUS_VARIABLE)
        .ok_or_else(|| {
            StackError::Other(format!(
                "template.yaml gives the functions no {}: no order-events bus to tap",
                order_core::events::BUS_VARIABLE
            ))
        })?;
    Ok(deploy::tap_order_events(clients, bus).await?)
}

/// Writes `KEY=VALUE` lines readable by this user only: `stack.env` holds the ops
/// console's URL, whose secret lets whoever reads it use the console.
pub(crate) fn write_env(path: &Path, env: &BTreeMap<String, String>) -> Result<(), StackError> {
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    write_private(path, text.as_bytes())
}

/// Writes `path` (created or emptied) with mode 0600, also when it existed before with
/// another mode, before a byte is written.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StackError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| StackError::Other(format!("{}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)
}

/// Reads a `KEY=VALUE` file written by `up`.
pub fn read_env(path: &Path) -> Result<BTreeMap<String, String>, StackError> {
    let text = std::fs::read_to_string(path)
        .map_err(|_| StackError::NotRunning(path.parent().unwrap_or(Path::new(".")).to_owned()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Stops every process of the stack in `dir`, newest first. Returns what was stopped.
pub fn down(dir: &Path) -> Vec<Tracked> {
    let mut stopped = Vec::new();
    for process in process::read_pids(dir).into_iter().rev() {
        if process::stop(&process, Duration::from_secs(10)) {
            stopped.push(process.clone());
        }
        process::forget(dir, &process);
    }
    let _ = std::fs::remove_file(dir.join("stack.env"));
    let _ = std::fs::remove_dir_all(dir.join(crate::ministack::SCRATCH_DIR));
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_become_screaming_snake_case() {
        assert_eq!(
            screaming("WorkflowDeadLetterQueue"),
            "WORKFLOW_DEAD_LETTER_QUEUE"
        );
        assert_eq!(screaming("OrderWorkflow"), "ORDER_WORKFLOW");
    }

    #[test]
    fn a_taken_port_is_refused_with_the_variable_that_changes_it() -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let taken = listener.local_addr()?.port();
        let ports = Ports {
            aws: process::free_port()?,
            moto: taken,
            dynamodb: process::free_port()?,
            lambda: process::free_port()?,
            partners: process::free_port()?,
        };
        let error = choose_ports(Some(ports)).err().map(|e| e.to_string());
        assert_eq!(
            error,
            Some(format!("port {taken} for moto is already in use; stop what uses it or choose another port with MOTO_SERVER_PORT=<port>"))
        );
        Ok(())
    }

    #[test]
    fn env_files_round_trip() -> Result<(), StackError> {
        let path = std::env::temp_dir().join(format!("stack-env-{}.env", std::process::id()));
        let env = BTreeMap::from([
            ("A".to_owned(), "http://127.0.0.1:1".to_owned()),
            ("B".to_owned(), "x=y".to_owned()),
        ]);
        write_env(&path, &env)?;
        assert_eq!(read_env(&path)?, env);
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    #[test]
    fn the_env_file_holding_the_consoles_secret_is_readable_by_its_user_only(
    ) -> Result<(), StackError> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("stack-env-mode-{}.env", std::process::id()));
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(|e| StackError::Other(e.to_string()))
        };
        // An earlier file, readable by everyone, as `std::fs::write` left it.
        std::fs::write(&path, "OLD=1\n").map_err(|e| StackError::Other(e.to_string()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| StackError::Other(e.to_string()))?;
        let env = BTreeMap::from([(
            "CONSOLE_URL".to_owned(),
            "http://127.0.0.1:8765/?token=0123abcd".to_owned(),
        )]);
        let written = write_env(&path, &env)
            .and_then(|()| mode(&path))
            .and_then(|mode| read_env(&path).map(|read| (mode, read)));
        let _ = std::fs::remove_file(&path);
        assert_eq!(written?, (0o600, env));
        Ok(())
    }
}
