//! The local stack itself: its resources match template.yaml, the invoke router keeps the
//! real Lambda contract, and `up` / `down` start and stop exactly what they should.

use local_stack::deploy::{self, Clients};
use local_stack::template::{local_parameters, LocalResources};
use std::path::PathBuf;
use std::process::Command;
use system_tests::{root, workspace_binary, Stack};

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

#[tokio::test]
async fn the_local_resources_match_the_template() {
    let stack = Stack::connect().await;
    let resources = LocalResources::load(
        &root().join("template.yaml"),
        &region(),
        &stack.endpoint(),
        &local_parameters(&stack.partner_simulator_url()),
    );
    let resources = resources.unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !resources.tables.is_empty()
            && !resources.queues.is_empty()
            && !resources.state_machines.is_empty()
    );
    let differences = deploy::verify(&Clients::new(&stack.aws), &resources).await;
    let differences: Vec<String> = differences
        .unwrap_or_else(|error| panic!("{error}"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(differences, Vec::<String>::new());
}

#[tokio::test]
async fn the_functions_environment_holds_secret_ids_and_no_secret_value() {
    let stack = Stack::connect().await;
    let client = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let listed = client.list_secrets().max_results(100).send().await;
    let listed = listed
        .unwrap_or_else(|error| panic!("ListSecrets: {error:?}"))
        .secret_list
        .unwrap_or_default();
    let mut values = Vec::new();
    for secret in listed.iter().filter_map(|s| s.name()) {
        let value = order_core::secrets::read(&client, secret)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        values.push((secret.to_owned(), value));
    }
    let names: Vec<&str> = values.iter().map(|(name, _)| name.as_str()).collect();
    for deployed in [
        "WarehouseApiTokenSecret",
        "PaymentsApiTokenSecret",
        "TerminalsApiTokenSecret",
        "CourierApiTokenSecret",
        "NotificationsApiTokenSecret",
        "CourierWebhookSecret",
    ] {
        assert!(
            names.contains(&deployed),
            "{deployed} is not deployed: {names:?}"
        );
    }
    // What cargo lambda watch gives every function: the deployed function configuration.
    let path = stack.dir.join("functions.env");
    let environment = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (name, value) in &values {
        assert!(
            !environment.contains(value.as_str()),
            "the value of secret {name} is in {}",
            path.display()
        );
    }
    let mut secret_ids = 0;
    for line in environment.lines() {
        let Some((variable, value)) = line.split_once('=') else {
            continue;
        };
        if variable.ends_with("_SECRET") || variable.ends_with("_SECRET_ID") {
            assert!(
                names.contains(&value),
                "{variable} should name a secret, not hold {value:?}"
            );
            secret_ids += 1;
        }
    }
    assert_eq!(secret_ids, 6, "a secret id per partner and the webhook's");
}

#[tokio::test]
async fn a_template_that_differs_from_the_running_stack_is_reported() {
    let stack = Stack::connect().await;
    // A copy of the template with one more index, one other queue setting (the three
    // dead-letter queues keep messages 14 days) and one other retry: the live resources
    // no longer match it.
    let dir = std::env::temp_dir().join(format!("template-drift-{}", uuid::Uuid::new_v4()));
    let statemachine = dir.join("infra/statemachine");
    std::fs::create_dir_all(&statemachine).unwrap_or_default();
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap_or_default();
    let drifted = template
        .replace("MessageRetentionPeriod: 1209600", "MessageRetentionPeriod: 345600")
        .replace("        - IndexName: by-status-keys", "        - IndexName: by-kind\n          KeySchema:\n            - AttributeName: gsi1pk\n              KeyType: HASH\n          Projection:\n            ProjectionType: KEYS_ONLY\n        - IndexName: by-status-keys");
    std::fs::write(dir.join("template.yaml"), drifted).unwrap_or_default();
    let asl = std::fs::read_to_string(root().join("infra/statemachine/order-workflow.asl.yaml"))
        .unwrap_or_default();
    std::fs::write(
        statemachine.join("order-workflow.asl.yaml"),
        asl.replacen("MaxAttempts: 4", "MaxAttempts: 9", 1),
    )
    .unwrap_or_default();

    let resources = LocalResources::load(
        &dir.join("template.yaml"),
        &region(),
        &stack.endpoint(),
        &local_parameters(&stack.partner_simulator_url()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let resources = resources.unwrap_or_else(|error| panic!("{error}"));
    let differences = deploy::verify(&Clients::new(&stack.aws), &resources).await;
    let mut what: Vec<(String, String)> = differences
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|d| (d.resource, d.what))
        .collect();
    what.sort();
    assert_eq!(
        what,
        [
            ("OrderWorkflow".to_owned(), "definition".to_owned()),
            (
                "OrdersTable".to_owned(),
                "global secondary indexes".to_owned()
            ),
            (
                "OutboxDeadLetterQueue".to_owned(),
                "MessageRetentionPeriod".to_owned()
            ),
            (
                "ReconcilerDeadLetterQueue".to_owned(),
                "MessageRetentionPeriod".to_owned()
            ),
            (
                "WorkflowDeadLetterQueue".to_owned(),
                "MessageRetentionPeriod".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_function_error_comes_back_as_lambda_reports_it_not_as_a_server_error() {
    let stack = Stack::connect().await;
    let url = format!("{}/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Acomplete-order/invocations", stack.endpoint());
    let reply = system_tests::http()
        .post(url)
        .body(r#"{"order_id": "not-an-order"}"#)
        .send()
        .await;
    let reply = reply.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(
        reply
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.as_bytes()),
        Some(&b"Unhandled"[..])
    );
    assert!(reply.headers().contains_key("x-amzn-requestid"));
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    assert_eq!(body["errorType"], "Internal.Error");
}

/// A stack directory of one test: on drop, even when the test fails, whatever was started
/// in it is stopped and the directory removed.
struct Scratch {
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        Scratch {
            dir: std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4())),
            child: None,
        }
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    /// `COMMAND --dir <this> --free-ports --no-reload --venv <the workspace's>`, then `rest`.
    fn args(&self, command: &str, rest: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            command,
            "--dir",
            &self.path(),
            "--free-ports",
            "--no-reload",
            "--venv",
            &venv(),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.extend(rest.iter().map(|a| (*a).to_owned()));
        args
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        local_stack::stack::down(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes `up` starts on moto, in start order (the ops console aside): the stream
/// poller only when template.yaml gives a function a `Type: DynamoDB` event.
fn stack_processes() -> Vec<&'static str> {
    let nowhere = "http://127.0.0.1:9";
    let resources = LocalResources::load(
        &root().join("template.yaml"),
        &region(),
        nowhere,
        &local_parameters(nowhere),
    );
    let resources = resources.unwrap_or_else(|error| panic!("{error}"));
    let mut processes = vec![
        "moto",
        "moto-dynamodb",
        "invoke-router",
        "partner-simulator",
        "cargo-lambda-watch",
    ];
    if !resources.stream_events.is_empty() {
        processes.push("stream-poller");
    }
    processes
}

/// What `exec` says when it has stopped its stack.
fn stopped_the_test_stack() -> String {
    format!(
        "stopped the test stack ({} processes)",
        stack_processes().len()
    )
}

fn assert_all_stopped(processes: &[local_stack::process::Tracked]) {
    for process in processes {
        assert!(
            !process.is_alive(),
            "{} (pid {}) still runs",
            process.name,
            process.pid
        );
    }
}

fn venv() -> String {
    root().join(".venv").display().to_string()
}

fn local_stack_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(workspace_binary("local-stack"));
    command
        .args(args)
        .current_dir(root())
        .env_remove("STACK_DIR");
    command
}

fn local_stack<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    local_stack_command(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run local-stack: {error}"))
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn up_on_a_running_stack_says_so_and_starts_nothing() {
    let stack = Stack::connect().await;
    let before = local_stack::stack::running(&stack.dir);
    let dir = stack.dir.display().to_string();
    let output = local_stack(&["up", "--dir", &dir, "--free-ports"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("already running"),
        "{}",
        text(&output)
    );
    assert_eq!(local_stack::stack::running(&stack.dir), before);
}

#[tokio::test]
async fn up_on_a_port_already_taken_names_the_port_and_starts_nothing() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0));
    let port = match listener.as_ref().map(|l| l.local_addr()) {
        Ok(Ok(address)) => address.port(),
        _ => panic!("cannot bind a port"),
    };
    let scratch = Scratch::new("stack-port");
    let output = local_stack(&[
        "up",
        "--dir",
        &scratch.path(),
        "--aws-port",
        &port.to_string(),
        "--moto-port",
        "0",
        "--lambda-port",
        "0",
    ]);
    assert!(!output.status.success());
    let expected = format!("port {port} for the AWS endpoint (invoke router) is already in use");
    assert!(text(&output).contains(&expected), "{}", text(&output));
    assert_eq!(local_stack::stack::running(&scratch.dir), []);
    assert!(
        !scratch.dir.join("logs").exists(),
        "the port is checked before anything is started"
    );
}

#[tokio::test]
async fn up_that_fails_after_starting_processes_stops_them_all_and_leaves_nothing_behind() {
    let scratch = Scratch::new("stack-late-failure");
    // A virtualenv whose python is the real one but whose cargo-lambda fails at once: up
    // gets as far as its last process (moto, the router and the partner simulator run,
    // the template is deployed) before it fails. On its way out, the fake cargo-lambda
    // copies the PID files of what runs by then, so the test knows what had to be stopped.
    let venv = scratch.dir.join("failing-venv");
    let bin = venv.join("bin");
    let seen = scratch.dir.join("seen");
    std::fs::create_dir_all(&bin).expect("the scratch virtualenv can be made");
    let python = format!(
        "#!/bin/sh\nexec {} \"$@\"\n",
        root().join(".venv/bin/python").display()
    );
    let cargo_lambda = format!(
        "#!/bin/sh\nmkdir -p {seen}\ncp -r {pids} {seen}/pids\necho 'cargo-lambda: failing on purpose' >&2\nexit 3\n",
        seen = seen.display(),
        pids = scratch.dir.join("pids").display(),
    );
    for (name, script) in [("python", python), ("cargo-lambda", cargo_lambda)] {
        let path = bin.join(name);
        std::fs::write(&path, script).expect("the scratch virtualenv's script can be written");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("the scratch virtualenv's script can be made executable");
    }
    let output = local_stack(&[
        "up",
        "--dir",
        &scratch.path(),
        "--free-ports",
        "--no-reload",
        "--venv",
        &venv.display().to_string(),
    ]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("cargo lambda watch exited while starting"),
        "{}",
        text(&output)
    );
    let started = local_stack::process::read_pids(&seen);
    // Its own PID file may or may not be written by then.
    let mut names: Vec<&str> = started
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| *name != "cargo-lambda-watch")
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "invoke-router",
            "moto",
            "moto-dynamodb",
            "partner-simulator"
        ],
        "what ran when cargo lambda watch failed"
    );
    assert_all_stopped(&started);
    assert_eq!(
        local_stack::process::read_pids(&scratch.dir),
        [],
        "no PID file is left"
    );
}

#[tokio::test]
async fn down_stops_exactly_what_up_started_and_frees_its_ports() {
    let scratch = Scratch::new("stack-cycle");
    let output = local_stack(&scratch.args("up", &[]));
    assert!(output.status.success(), "{}", text(&output));
    let started = local_stack::stack::running(&scratch.dir);
    let env = local_stack::stack::read_env(&scratch.dir.join("stack.env")).unwrap_or_default();
    let down = local_stack(&["down", "--dir", &scratch.path()]);
    assert_eq!(
        started.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [stack_processes(), vec!["console"]].concat()
    );
    assert!(down.status.success(), "{}", text(&down));
    assert_all_stopped(&started);
    for process in &started {
        assert!(text(&down).contains(&format!("stopped {} (pid {})", process.name, process.pid)));
    }
    for variable in [
        "AWS_ENDPOINT_URL",
        "LAMBDA_ENDPOINT_URL",
        "AWS_EMULATOR_URL",
        "AWS_EMULATOR_DYNAMODB_URL",
        "PARTNER_SIMULATOR_URL",
        "CONSOLE_URL",
    ] {
        let url = env.get(variable).cloned().unwrap_or_default();
        // http://127.0.0.1:<port>[/path][?query] (the console's carries its secret).
        let port: u16 = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split(['/', '?']).next())
            .and_then(|authority| authority.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        assert!(port > 0, "{variable}={url}");
        assert!(
            local_stack::process::port_is_free(port),
            "{variable} port {port} still in use"
        );
    }
    assert_eq!(local_stack::stack::running(&scratch.dir), []);
}

#[tokio::test]
async fn exec_passes_on_the_commands_exit_code_and_stops_its_stack() {
    let scratch = Scratch::new("stack-exec");
    let output = local_stack(&scratch.args(
        "exec",
        &[
            "--",
            "sh",
            "-c",
            "test -n \"$AWS_ENDPOINT_URL\" && test -n \"$ORDERS_API_URL\" && exit 3",
        ],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains(&stopped_the_test_stack()),
        "{}",
        text(&output)
    );
    assert_eq!(local_stack::stack::running(&scratch.dir), []);
}

#[tokio::test]
async fn exec_stops_its_stack_when_interrupted() {
    let mut scratch = Scratch::new("stack-interrupt");
    let child = local_stack_command(&scratch.args("exec", &["--", "sleep", "120"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = scratch
        .child
        .insert(child.unwrap_or_else(|error| panic!("cannot run local-stack: {error}")));
    // Up once every process it starts runs (the stream poller is started last, after
    // stack.env is written).
    let want = stack_processes().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while (!scratch.dir.join("stack.env").exists()
        || local_stack::stack::running(&scratch.dir).len() < want)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let started = local_stack::stack::running(&scratch.dir);
    assert_eq!(started.len(), want, "the stack did not start in time");
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .map(|s| s.success());
    assert_eq!(interrupted.ok(), Some(true));
    assert_eq!(child.wait().map(|s| s.code()).ok(), Some(Some(130)));
    assert_all_stopped(&started);
}

#[tokio::test]
async fn the_bench_counts_each_orders_work_and_times_the_workflow_against_its_floor() {
    // On a stack of its own: the floor answers every invoke of its stack.
    let scratch = Scratch::new("stack-bench");
    let out = scratch.dir.join("bench-report");
    let path = |p: PathBuf| p.display().to_string();
    let (bench, out_dir) = (path(workspace_binary("bench")), path(out.clone()));
    let (prices, template) = (
        path(root().join("infra/bench/prices.yaml")),
        path(root().join("template.yaml")),
    );
    let command = [
        "--",
        &bench,
        "--only",
        "work",
        "--only",
        "workflow",
        "--orders",
        "1",
        "--concurrency",
        "1",
        "--prices",
        &prices,
        "--template",
        &template,
        "--out",
        &out_dir,
    ];
    let output = local_stack(&scratch.args("exec", &command));
    assert!(output.status.success(), "{}", text(&output));
    let written = std::fs::read_to_string(out.join("bench.json")).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(&written).unwrap_or_default();
    let scenario = |name: &str| {
        let all = report["work"]["work"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        all.into_iter()
            .find(|w| w["scenario"] == name)
            .unwrap_or_default()
    };
    let count = |work: &serde_json::Value, key: &str| work["counts"][key]["median"].as_f64();
    let new_merchant = scenario("new merchant");
    for function in [
        "orders-api",
        "validate-order",
        "take-payment",
        "courier-webhook",
        "complete-order",
    ] {
        let key = format!("invocations {function}");
        assert_eq!(count(&new_merchant, &key), Some(1.0), "{key}: {written}");
    }
    assert_eq!(count(&new_merchant, "states:StartExecution"), Some(1.0));
    assert_eq!(count(&new_merchant, "states:SendTaskSuccess"), Some(1.0));
    assert!(
        count(&new_merchant, "transitions") >= Some(8.0),
        "{written}"
    );
    assert!(
        count(&new_merchant, "dynamodb WRU") >= Some(8.0),
        "{written}"
    );
    let declined = scenario("payment declined");
    assert_eq!(declined["ends"], "FAILED");
    assert_eq!(count(&declined, "invocations release-stock"), Some(1.0));
    assert_eq!(count(&declined, "invocations provision-terminals"), None);
    // Four scenarios and the chaos mix, each priced.
    let costs = report["work"]["costs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(costs.len(), 5, "{written}");
    assert!(
        costs.iter().all(|c| c["total"].as_f64() > Some(0.0)),
        "{written}"
    );
    let batch = &report["workflow"]["batches"][0];
    assert_eq!(batch["orders"], 1);
    assert_eq!(batch["ours"]["ended"]["SUCCEEDED"], 1, "{written}");
    assert_eq!(batch["floor"]["ended"]["SUCCEEDED"], 1, "{written}");
    assert!(text(&output).contains(&stopped_the_test_stack()));
}
