//! `local-stack`: start, check, use and stop the offline AWS stack. The Makefile's `up`,
//! `down`, `demo` and `test` targets call it; see README.md.

use clap::{Args, Parser, Subcommand};
use local_stack::ministack::MiniStackTools;
use local_stack::stack::{self, Emulator, Ports, Up, UpOptions};
use local_stack::template::LocalResources;
use local_stack::{deploy, process};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    about = "The offline AWS stack: moto + invoke router + cargo lambda watch, from template.yaml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct StackDir {
    /// Where the stack keeps PID files, logs and stack.env.
    #[arg(long, env = "STACK_DIR", default_value = ".local/stack")]
    dir: PathBuf,
}

#[derive(Debug, Args, Clone)]
struct UpArgs {
    #[command(flatten)]
    stack: StackDir,
    /// The AWS endpoint port (what AWS_ENDPOINT_URL points at).
    #[arg(long, env = "AWS_PORT", default_value_t = 4599)]
    aws_port: u16,
    /// moto's own port, behind the router (every AWS API but DynamoDB).
    #[arg(long, env = "MOTO_SERVER_PORT", default_value_t = 4598)]
    moto_port: u16,
    /// The port of the moto process that serves DynamoDB, behind the router.
    #[arg(long, env = "DYNAMODB_PORT", default_value_t = 4596)]
    dynamodb_port: u16,
    /// cargo lambda watch's port (function URLs).
    #[arg(long, env = "LAMBDA_PORT", default_value_t = 9099)]
    lambda_port: u16,
    /// The partner simulator's port.
    #[arg(long, env = "PARTNERS_PORT", default_value_t = 4597)]
    partners_port: u16,
    /// The seed of the partner simulator's fault decisions (replay a run with the same seed).
    #[arg(long, env = "PARTNER_SEED", default_value_t = 42)]
    partner_seed: u64,
    /// Pick free ports instead (what `make test` does).
    #[arg(long)]
    free_ports: bool,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// The virtualenv with moto_server and cargo-lambda.
    #[arg(long, default_value = ".venv")]
    venv: PathBuf,
    /// The workspace root (where template.yaml is).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Instances per function cargo lambda watch may run at once.
    #[arg(long, env = "LAMBDA_CONCURRENCY", default_value_t = 4)]
    concurrency: u32,
    /// Do not restart functions when their source changes.
    #[arg(long)]
    no_reload: bool,
    /// Serve the functions from release builds (cargo lambda watch --release), as they
    /// deploy; the first invocation of each waits for its build. For latency figures.
    #[arg(long)]
    release: bool,
    /// The AWS emulator: moto (the development stack: cargo lambda watch, our deployer) or
    /// ministack (template.yaml through sam deploy and MiniStack's CloudFormation, the
    /// release bootstraps of `make package`).
    #[arg(long, env = "EMULATOR", default_value = "moto")]
    emulator: Emulator,
    /// The virtualenv with MiniStack (for --emulator ministack).
    #[arg(long, default_value = ".venv-ministack")]
    ministack_venv: PathBuf,
    /// The SAM CLI that deploys into MiniStack.
    #[arg(long, default_value = ".venv-lint/bin/sam")]
    sam: PathBuf,
    /// What `make package` built, deployed into MiniStack.
    #[arg(long, default_value = ".aws-sam/build")]
    build_dir: PathBuf,
    /// The ops console's port (`orderctl console`, started with the stack by `up`;
    /// `exec` starts none). With --free-ports, a free one.
    #[arg(long, env = "CONSOLE_PORT", default_value_t = 8765)]
    console_port: u16,
    /// Do not start the ops console.
    #[arg(long)]
    no_console: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the stack and deploy template.yaml into it (says so if already running).
    Up(UpArgs),
    /// Stop exactly the processes `up` started.
    Down(StackDir),
    /// Show the stack's processes and endpoints.
    Status(StackDir),
    /// Check the running stack's resources against template.yaml and the ASL file.
    Verify(StackDir),
    /// Place an order and follow it to COMPLETED.
    Demo(StackDir),
    /// Read the streams of template.yaml's `Type: DynamoDB` function events and invoke the
    /// functions with their records, as Lambda's event source mappings do. `up` starts it
    /// on the moto stack with the stack's environment (AWS_ENDPOINT_URL, AWS_REGION, the
    /// credentials); it runs until stopped.
    PollStreams {
        /// The workspace root (where template.yaml is).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Start a stack, run COMMAND with its environment, and stop the stack afterwards,
    /// also when COMMAND fails or is interrupted.
    Exec {
        #[command(flatten)]
        up: UpArgs,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

impl UpArgs {
    fn options(&self) -> Result<UpOptions, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        Ok(UpOptions {
            emulator: self.emulator,
            ministack: MiniStackTools {
                venv: absolute(&self.ministack_venv),
                sam: absolute(&self.sam),
                build_dir: absolute(&self.build_dir),
            },
            dir: absolute(&self.stack.dir),
            root: absolute(&self.root),
            region: self.region.clone(),
            ports: (!self.free_ports).then_some(Ports {
                aws: self.aws_port,
                moto: self.moto_port,
                dynamodb: self.dynamodb_port,
                lambda: self.lambda_port,
                partners: self.partners_port,
            }),
            venv: absolute(&self.venv),
            router: exe.with_file_name("invoke-router"),
            partner_simulator: exe.with_file_name("partner-simulator"),
            sandbox: exe.with_file_name("lambda-sandbox"),
            local_stack: exe.clone(),
            partner_seed: self.partner_seed,
            concurrency: self.concurrency.max(1),
            reload: !self.no_reload,
            release: self.release,
            console: (!self.no_console).then(|| stack::ConsoleOptions {
                orderctl: exe.with_file_name("orderctl"),
                port: (!self.free_ports).then_some(self.console_port),
            }),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("local-stack: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Up(args) => {
            let options = args.options()?;
            up(&options).await.map(|_| ExitCode::SUCCESS)
        }
        Command::Down(StackDir { dir }) => {
            let stopped = stack::down(&dir);
            if stopped.is_empty() {
                println!("no local stack was running in {}", dir.display());
            }
            for process in stopped {
                println!("stopped {} (pid {})", process.name, process.pid);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(StackDir { dir }) => {
            let running = stack::running(&dir);
            if running.is_empty() {
                println!("no local stack is running in {}", dir.display());
                return Ok(ExitCode::from(3));
            }
            for process in &running {
                println!("running {} (pid {})", process.name, process.pid);
            }
            if let Ok(env) = stack::read_env(&dir.join("stack.env")) {
                for (name, value) in &env {
                    println!("  {name}={value}");
                }
                print_console(&|name| env.get(name).cloned().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(StackDir { dir }) => {
            let env = stack::read_env(&dir.join("stack.env")).map_err(|e| e.to_string())?;
            if env.get("LOCAL_STACK_EMULATOR").map(String::as_str) == Some("ministack") {
                println!(
                    "the stack in {} runs on MiniStack, deployed by CloudFormation from template.yaml: nothing of ours to verify (verify checks the moto stack's own deployer)",
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let endpoint = env.get("AWS_ENDPOINT_URL").cloned().unwrap_or_default();
            let region = env.get("AWS_REGION").cloned().unwrap_or_default();
            let parameters = local_stack::template::local_parameters(
                env.get("PARTNER_SIMULATOR_URL")
                    .map_or("http://127.0.0.1:4597", String::as_str),
            );
            let resources = LocalResources::load(
                &PathBuf::from("template.yaml"),
                &region,
                &endpoint,
                &parameters,
            )
            .map_err(|e| e.to_string())?;
            let clients = deploy::Clients::local(&endpoint, &region).await;
            let differences = deploy::verify(&clients, &resources)
                .await
                .map_err(|e| e.to_string())?;
            if differences.is_empty() {
                println!("the local resources match template.yaml");
                return Ok(ExitCode::SUCCESS);
            }
            for difference in differences {
                println!("{difference}");
            }
            Ok(ExitCode::FAILURE)
        }
        Command::Demo(StackDir { dir }) => {
            let completed = local_stack::demo::run(&dir)
                .await
                .map_err(|e| e.to_string())?;
            Ok(if completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::PollStreams { root } => {
            tracing_subscriber::fmt().json().with_target(false).init();
            poll_streams(&root).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Exec { up: args, command } => {
            // The tests start consoles of their own.
            let options = UpOptions {
                console: None,
                ..args.options()?
            };
            exec(&options, &command).await
        }
    }
}

/// The stream poller over template.yaml's DynamoDB events, with the stack's settings
/// from the environment; returns only when there is nothing to poll or a stream is
/// missing.
async fn poll_streams(root: &std::path::Path) -> Result<(), String> {
    use local_stack::stream_poller::{self, aws};
    let setting = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let endpoints = aws::Endpoints::from_settings(setting)?;
    let region = setting("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned());
    let partners = setting("PARTNER_SIMULATOR_URL");
    let parameters = local_stack::template::local_parameters(
        partners.as_deref().unwrap_or("http://127.0.0.1:4597"),
    );
    let endpoint = setting("AWS_ENDPOINT_URL").unwrap_or_else(|| endpoints.dynamodb.clone());
    let template = root.join("template.yaml");
    let resources = LocalResources::load(&template, &region, &endpoint, &parameters)
        .map_err(|e| e.to_string())?;
    if resources.stream_events.is_empty() {
        eprintln!(
            "{} has no Type: DynamoDB function events: nothing to poll",
            template.display()
        );
        return Ok(());
    }
    let signer = local_stack::signing::Signer::new(
        &setting("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
        &setting("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".to_owned()),
        &region,
    );
    let aws = aws::Aws::new(endpoints, signer)?;
    stream_poller::run(aws, resources.stream_events)
        .await
        .map_err(|e| e.to_string())
}

async fn up(options: &UpOptions) -> Result<Option<stack::Running>, String> {
    eprintln!("starting the local stack in {} ...", options.dir.display());
    match stack::up(options).await.map_err(|e| e.to_string())? {
        Up::AlreadyRunning(processes) => {
            let list: Vec<String> = processes
                .iter()
                .map(|p| format!("{} (pid {})", p.name, p.pid))
                .collect();
            println!(
                "the local stack is already running in {}: {}",
                options.dir.display(),
                list.join(", ")
            );
            Ok(None)
        }
        Up::Started(running) if options.emulator == Emulator::MiniStack => {
            let env = &running.env;
            let value = |k: &str| env.get(k).cloned().unwrap_or_default();
            println!("MiniStack stack up (logs in {})", running.log_dir.display());
            println!(
                "  AWS endpoint     {}  (MiniStack, IAM enforced: each function calls with its role)",
                value("AWS_ENDPOINT_URL")
            );
            println!(
                "  deployed         {} by sam deploy through its CloudFormation in {} s ({} functions, release bootstraps)",
                options.ministack.build_dir.join("template.yaml").display(),
                value("DEPLOY_SECONDS"),
                running.functions.len()
            );
            println!(
                "  orders API       {}/orders  (API Gateway stage, SigV4 required)",
                value("ORDERS_API_URL")
            );
            print_partners_table_and_workflow(&value);
            print_console(&value);
            println!(
                "  use it from a shell: set -a; . {}; set +a",
                running.env_file.display()
            );
            Ok(Some(running))
        }
        Up::Started(running) => {
            let env = &running.env;
            let value = |k: &str| env.get(k).cloned().unwrap_or_default();
            println!("local stack up (logs in {})", running.log_dir.display());
            println!(
                "  AWS endpoint     {}  (moto on :{}, its DynamoDB on :{}, behind the invoke router)",
                value("AWS_ENDPOINT_URL"),
                running.ports.moto,
                running.ports.dynamodb
            );
            println!(
                "  functions        {}  (cargo lambda watch: {})",
                value("LAMBDA_ENDPOINT_URL"),
                running.functions.join(", ")
            );
            println!("  orders API       {}/orders", value("ORDERS_API_URL"));
            if !running.stream_events.is_empty() {
                println!(
                    "  stream events    {}  (local-stack poll-streams: stream-poller.log)",
                    running.stream_events.join(", ")
                );
            }
            print_partners_table_and_workflow(&value);
            print_console(&value);
            println!(
                "  releases         new orders start through the alias `live` on the version this\n                   deploy published (orderctl releases); definitions are pinned per\n                   execution, function code is not: cargo lambda watch serves one build\n                   per function (README, \"Releasing a new version\")"
            );
            println!(
                "  use it from a shell: set -a; . {}; set +a",
                running.env_file.display()
            );
            Ok(Some(running))
        }
    }
}

async fn exec(options: &UpOptions, command: &[String]) -> Result<ExitCode, String> {
    use tokio::signal::unix::{signal, SignalKind};
    // The directory belongs to this run: stop whatever an interrupted earlier run left.
    stack::down(&options.dir);
    // Listening from the start: an interrupt while the stack starts stops what started.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let started = tokio::select! {
        started = up(options) => started?,
        _ = interrupt.recv() => return Ok(stopped_while_starting(options, 130)),
        _ = terminate.recv() => return Ok(stopped_while_starting(options, 143)),
    };
    let running = match started {
        Some(running) => running,
        None => return Err("a stack is still running in the exec directory".into()),
    };
    let (program, args) = command.split_first().ok_or("no command to run")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(&running.env)
        .spawn();
    let outcome = match child {
        Err(error) => Err(format!("cannot run {program}: {error}")),
        Ok(mut child) => {
            tokio::select! {
                status = child.wait() => status
                    .map(|s| u8::try_from(s.code().unwrap_or(1)).unwrap_or(1))
                    .map_err(|e| e.to_string()),
                _ = interrupt.recv() => {
                    let _ = child.kill().await;
                    Ok(130)
                }
                _ = terminate.recv() => {
                    let _ = child.kill().await;
                    Ok(143)
                }
            }
        }
    };
    let stopped = stack::down(&options.dir);
    eprintln!("stopped the test stack ({} processes)", stopped.len());
    if !process::read_pids(&options.dir).is_empty() {
        eprintln!(
            "warning: some stack processes could not be stopped; see {}",
            options.dir.display()
        );
    }
    outcome.map(ExitCode::from)
}

/// `exec` was interrupted while its stack started: stops what had started, by PID.
fn stopped_while_starting(options: &UpOptions, code: u8) -> ExitCode {
    let stopped = stack::down(&options.dir);
    eprintln!(
        "interrupted while starting: stopped the test stack ({} processes)",
        stopped.len()
    );
    ExitCode::from(code)
}

/// The ops console's line, when `up` started one. Its URL carries the console's launch
/// secret: opening it in a browser on this machine signs that browser in.
fn print_console(value: &dyn Fn(&str) -> String) {
    let url = value("CONSOLE_URL");
    if !url.is_empty() {
        println!(
            "  ops console      {url}\n                   (orderctl console; open this URL in a browser on this machine: it carries\n                   the console's secret, which it sets as a cookie; the console refuses any\n                   request without it)"
        );
    }
}

/// The lines both stacks print alike: the partner simulator, the table, the workflow.
fn print_partners_table_and_workflow(value: &dyn Fn(&str) -> String) {
    println!(
        "  partners         {}  (simulator; ledger at /admin/ledger)",
        value("PARTNER_SIMULATOR_URL")
    );
    println!("  table            {}", value("TABLE_NAME"));
    println!("  state machine    {}", value("STATE_MACHINE_ARN"));
}
