//! The MiniStack profile (`local-stack up --emulator ministack`, `make up
//! EMULATOR=ministack`): the same template deployed as `sam deploy` deploys it to AWS.
//!
//! `start` runs, on 127.0.0.1 only: MiniStack (launched by `infra/ministack/server.py`,
//! with IAM enforcement on), then `sam deploy` of what `make package` built
//! (`.aws-sam/build`: the release bootstraps, which MiniStack runs as processes of this
//! machine) through MiniStack's S3 and CloudFormation, which runs the SAM transform
//! itself, with the template's local parameter values; then puts the development values
//! into the template's secrets (what an operator does after the first deploy on AWS),
//! starts the partner simulator, and writes the same `stack.env` as the moto stack, with
//! the deployed names: the orders API and the courier webhook are reached on the API
//! Gateway stage, not on function URLs.

use crate::process::{self, Tracked};
use crate::stack::{
    health_client, log_dir, require, require_built, track, wait_until_healthy, write_env, Ports,
    Running, StackError, UpOptions,
};
use crate::template::{
    local_parameters, local_secret_value, queue_url, state_machine_arn, LocalResources,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The stack name the template is deployed under (samconfig.toml's, as on AWS).
pub const STACK_NAME: &str = "terminal-orders";

/// Where the MiniStack profile finds its tools and what it deploys.
#[derive(Debug, Clone)]
pub struct MiniStackTools {
    /// The virtualenv with MiniStack (`bash infra/ministack/install.sh`).
    pub venv: PathBuf,
    /// The SAM CLI (`.venv-lint/bin/sam`, installed by `bash infra/lint.sh --install-only`).
    pub sam: PathBuf,
    /// What `make package` built: `template.yaml`, one directory per function, and
    /// `ARCHITECTURE`.
    pub build_dir: PathBuf,
}

/// The emulator's scratch space inside the stack directory (removed by `down`).
pub const SCRATCH_DIR: &str = "tmp";

/// The architecture name (the template's `Architecture`) of the bootstraps this machine
/// can run as processes.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

/// Checks that `.aws-sam/build` holds bootstraps this machine runs, and returns their
/// architecture.
fn built_architecture(build_dir: &Path) -> Result<String, StackError> {
    let template = build_dir.join("template.yaml");
    if !template.is_file() {
        return Err(StackError::Missing {
            what: "the packaged template (make package)",
            path: template,
            hint: "run `make package ARCH=x86_64` first: MiniStack deploys what sam build made",
        });
    }
    let marker = build_dir.join("ARCHITECTURE");
    let built = std::fs::read_to_string(&marker)
        .map(|text| text.trim().to_owned())
        .map_err(|e| StackError::Other(format!("{}: {e}", marker.display())))?;
    let host = host_architecture();
    if built != host {
        return Err(StackError::Other(format!(
            "{} holds {built} bootstraps, but MiniStack runs them as processes of this {host} machine: run `make package ARCH={host}`",
            build_dir.display()
        )));
    }
    Ok(built)
}

/// The parameter overrides of the deploy: the template's local values (partner URLs on
/// the simulator, short waits) and the architecture of the build.
pub fn parameter_overrides(partners_endpoint: &str, architecture: &str) -> Vec<String> {
    let mut parameters = local_parameters(partners_endpoint);
    parameters.insert("Architecture".into(), architecture.into());
    parameters
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

/// The base URL of an API Gateway stage as MiniStack serves it, from the `OrdersApiUrl`
/// output (`https://<api id>.execute-api.<region>.amazonaws.com/<stage>/`): `<endpoint>/_aws/execute-api/<api id>/<stage>`.
pub fn stage_url(endpoint: &str, api_url: &str) -> Option<String> {
    let (api_id, stage) = api_id_and_stage(api_url)?;
    Some(format!(
        "{}/_aws/execute-api/{api_id}/{stage}",
        endpoint.trim_end_matches('/')
    ))
}

/// The API id and stage of an execute-api URL.
pub fn api_id_and_stage(api_url: &str) -> Option<(String, String)> {
    let rest = api_url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let (api_id, domain) = host.split_once('.')?;
    let stage = path.trim_matches('/');
    (domain.starts_with("execute-api.") && !api_id.is_empty() && !stage.is_empty())
        .then(|| (api_id.to_owned(), stage.to_owned()))
}

/// The environment of a tool that talks to MiniStack as its root user: the endpoint, the
/// region and the emulator's credentials, and no configuration file of this machine's.
fn emulator_credentials<'a>(endpoint: &'a str, region: &'a str) -> [(&'static str, &'a str); 7] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
}

/// The IAM users that call the orders API (`infra/ministack/api_caller.py`,
/// [`crate::callers`]): the stack's own, allowed every route, and two more for the tests
/// of callers' scopes. MiniStack verifies the signatures of an IAM user (not those of its
/// root credentials), so requests signed as these users prove the signing and each
/// route's IAM authorization.
async fn api_callers(
    python: &Path,
    root: &Path,
    endpoint: &str,
    region: &str,
    api_url: &str,
) -> Result<std::collections::BTreeMap<&'static str, crate::callers::ApiCaller>, StackError> {
    let (api_id, stage) = api_id_and_stage(api_url).ok_or_else(|| {
        StackError::Other(format!(
            "the output OrdersApiUrl {api_url:?} is not an execute-api URL"
        ))
    })?;
    let output = tokio::process::Command::new(python)
        .arg(root.join("infra/ministack/api_caller.py"))
        .args([&api_id, &stage])
        .envs(emulator_credentials(endpoint, region))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .map_err(|e| StackError::Other(format!("cannot run infra/ministack/api_caller.py: {e}")))?;
    let failed = || {
        StackError::Other(format!(
            "infra/ministack/api_caller.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    };
    if !output.status.success() {
        return Err(failed());
    }
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|_| failed())?;
    let mut callers = std::collections::BTreeMap::new();
    for name in ["", "PORTAL", "APP"] {
        let key = &keys[name];
        match (
            key["access_key_id"].as_str(),
            key["secret_access_key"].as_str(),
            key["arn"].as_str(),
        ) {
            (Some(id), Some(secret), Some(arn)) => {
                let caller = crate::callers::ApiCaller {
                    access_key_id: id.to_owned(),
                    secret_access_key: secret.to_owned(),
                    arn: arn.to_owned(),
                };
                callers.insert(name, caller);
            }
            _ => return Err(failed()),
        }
    }
    Ok(callers)
}

/// Starts MiniStack, deploys the packaged template into it and starts the partner
/// simulator. Every process started is pushed to `started` (stopped by the caller on
/// failure).
pub(crate) async fn start(
    options: &UpOptions,
    tools: &MiniStackTools,
    ports: Ports,
    started: &mut Vec<Tracked>,
) -> Result<Running, StackError> {
    let python = require(
        tools.venv.join("bin/python"),
        "MiniStack's virtualenv",
        "run `bash infra/ministack/install.sh` (make up EMULATOR=ministack does)",
    )?;
    let launcher = require(
        options.root.join("infra/ministack/server.py"),
        "the MiniStack launcher",
        "run from the workspace root",
    )?;
    let sam = require(
        tools.sam.clone(),
        "the SAM CLI",
        "run `bash infra/lint.sh --install-only`",
    )?;
    let simulator = require_built(
        options.partner_simulator.clone(),
        "the partner-simulator binary",
    )?;
    let architecture = built_architecture(&tools.build_dir)?;
    let log_dir = log_dir(&options.dir)?;
    let endpoint = format!("http://127.0.0.1:{}", ports.aws);
    let partners_endpoint = format!("http://127.0.0.1:{}", ports.partners);
    let region = options.region.as_str();

    // The functions MiniStack starts inherit its environment: AWS_ENDPOINT_URL is how
    // they find it. AUTH=true checks every call against the caller's IAM policies (each
    // function calls with its own role's credentials). MiniStack's MQTT and SFTP
    // listeners would bind further ports on every interface: off.
    let ministack_log = log_dir.join("ministack.log");
    // MiniStack unpacks every function's code under the temporary directory and never
    // removes it (about 170 MB a stack), and keeps state in /tmp/ministack-state: both go
    // into the stack's own directory, which `down` clears.
    let scratch = options.dir.join(SCRATCH_DIR);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| StackError::Other(format!("{}: {e}", scratch.display())))?;
    let process = process::spawn(
        "ministack",
        &python,
        &[launcher.display().to_string()],
        &[
            ("GATEWAY_PORT".into(), ports.aws.to_string()),
            ("BIND_HOST".into(), "127.0.0.1".into()),
            ("AUTH".into(), "true".into()),
            ("IOT_MTLS_ENABLED".into(), "0".into()),
            ("SFTP_ENABLED".into(), "0".into()),
            ("MINISTACK_REGION".into(), region.into()),
            ("AWS_DEFAULT_REGION".into(), region.into()),
            ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
            ("TMPDIR".into(), scratch.display().to_string()),
            (
                "STATE_DIR".into(),
                scratch.join("state").display().to_string(),
            ),
        ],
        &options.root,
        &ministack_log,
    )?;
    track(&options.dir, started, &process)?;
    let http = health_client()?;
    wait_until_healthy(
        "MiniStack",
        &process,
        &ministack_log,
        Duration::from_secs(60),
        &http,
        &format!("{endpoint}/_ministack/health"),
    )
    .await?;

    let clients = crate::deploy::Clients::local(&endpoint, region).await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&clients.config);
    let deploy_log = log_dir.join("sam-deploy.log");
    eprintln!(
        "  sam deploy of {} through MiniStack's CloudFormation ...",
        tools.build_dir.join("template.yaml").display()
    );
    let deploy_started = Instant::now();
    let deployed = sam_deploy(
        &sam,
        &tools.build_dir,
        &endpoint,
        region,
        &parameter_overrides(&partners_endpoint, &architecture),
        &deploy_log,
        &scratch,
    )
    .await?;
    if !deployed {
        return Err(deployment_failed(&cloudformation, &deploy_log).await);
    }
    let deploy_seconds = deploy_started.elapsed().as_secs_f64();
    let stack = DeployedStack::read(&cloudformation).await?;
    eprintln!(
        "  deployed {} resources in {deploy_seconds:.0} s (log: {})",
        stack.resources.len(),
        deploy_log.display()
    );

    // CloudFormation generated the secrets' values; give each the development value the
    // partner simulator is started with (on AWS: the partners' real tokens).
    for (logical_id, arn) in stack.of_type("AWS::SecretsManager::Secret") {
        clients
            .secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(local_secret_value(logical_id))
            .send()
            .await
            .map_err(|e| {
                StackError::Other(format!(
                    "PutSecretValue {logical_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
    }

    let template = LocalResources::load(
        &options.root.join("template.yaml"),
        region,
        &endpoint,
        &local_parameters(&partners_endpoint),
    )?;
    let api_url = stack.output("OrdersApiUrl")?;
    let stage = stage_url(&endpoint, &api_url).ok_or_else(|| {
        StackError::Other(format!(
            "the output OrdersApiUrl {api_url:?} is not an execute-api URL"
        ))
    })?;
    let callers = api_callers(&python, &options.root, &endpoint, region, &api_url).await?;
    crate::stack::start_partner_simulator(
        options,
        &simulator,
        &template,
        &format!("{stage}/webhooks/courier"),
        ports.partners,
        started,
        &http,
    )
    .await?;

    let mut env = stack.environment(&template, &endpoint, region)?;
    let tap = crate::stack::order_events_tap(&clients, &env).await?;
    env.insert("ORDER_EVENTS_TAP_QUEUE_URL".to_owned(), tap);
    env.extend([
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
        ("AWS_REGION".to_owned(), region.to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), region.to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("ORDERS_API_URL".to_owned(), stage.clone()),
        ("COURIER_WEBHOOK_URL".to_owned(), stage.clone()),
        (
            "PARTNER_SIMULATOR_URL".to_owned(),
            partners_endpoint.clone(),
        ),
        (
            "LOCAL_STACK_DIR".to_owned(),
            options.dir.display().to_string(),
        ),
        ("LOCAL_STACK_EMULATOR".to_owned(), "ministack".to_owned()),
        ("STACK_NAME".to_owned(), STACK_NAME.to_owned()),
        ("DEPLOY_SECONDS".to_owned(), format!("{deploy_seconds:.1}")),
    ]);
    env.extend(crate::callers::env(&callers));
    let table = env
        .get("TABLE_NAME")
        .ok_or_else(|| StackError::Other("the stack has no TABLE_NAME".into()))?;
    crate::callers::grant_own(clients.dynamodb.clone(), table, &callers).await?;
    let env_file = options.dir.join("stack.env");
    write_env(&env_file, &env)?;
    Ok(Running {
        ports,
        env_file,
        log_dir,
        functions: template
            .functions
            .iter()
            .map(|f| f.binary.clone())
            .collect(),
        // MiniStack's Lambda runs the template's event source mappings itself.
        stream_events: Vec::new(),
        env,
    })
}

/// Runs `sam deploy` of `build_dir/template.yaml` against the emulator at `endpoint`, as
/// on AWS: code and definition uploaded to SAM's managed bucket (in the emulator's S3),
/// a change set created and executed by CloudFormation. Its output goes to `log`.
/// Returns whether it succeeded.
///
/// It runs in `build_dir`, where no samconfig.toml is, so the AWS profile in the repo's
/// (region, confirmation) does not apply; AWS configuration files are hidden.
async fn sam_deploy(
    sam: &Path,
    build_dir: &Path,
    endpoint: &str,
    region: &str,
    parameters: &[String],
    log: &Path,
    scratch: &Path,
) -> Result<bool, StackError> {
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| StackError::Other(format!("{}: {e}", log.display())))?;
    let errors = output
        .try_clone()
        .map_err(|e| StackError::Other(format!("{}: {e}", log.display())))?;
    let mut command = tokio::process::Command::new(sam);
    command
        .args([
            "deploy",
            "--template-file",
            "template.yaml",
            "--stack-name",
            STACK_NAME,
            "--resolve-s3",
            "--s3-prefix",
            STACK_NAME,
            "--region",
            region,
            "--capabilities",
            "CAPABILITY_IAM",
            "CAPABILITY_AUTO_EXPAND",
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--no-progressbar",
            "--parameter-overrides",
        ])
        .args(parameters)
        .current_dir(build_dir)
        .envs(emulator_credentials(endpoint, region))
        .env("SAM_CLI_TELEMETRY", "0")
        // sam deploy leaves an empty directory per function under the temporary
        // directory: it goes into the stack's scratch space, which `down` clears.
        .env("TMPDIR", scratch)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(output)
        .stderr(errors);
    let status = command
        .status()
        .await
        .map_err(|e| StackError::Other(format!("cannot run {}: {e}", sam.display())))?;
    Ok(status.success())
}

/// The error for a failed deploy: each resource CloudFormation could not create, with its
/// reason (the stack's events), or, when no stack was created (the change set was
/// refused), the end of the deploy's output.
async fn deployment_failed(client: &aws_sdk_cloudformation::Client, log: &Path) -> StackError {
    let mut failures = Vec::new();
    let mut pages = client
        .describe_stack_events()
        .stack_name(STACK_NAME)
        .into_paginator()
        .items()
        .send();
    while let Some(event) = pages.next().await {
        let Ok(event) = event else { break };
        let failed = event
            .resource_status()
            .is_some_and(|s| s.as_str().ends_with("_FAILED"));
        if failed && event.resource_type() != Some("AWS::CloudFormation::Stack") {
            failures.push(format!(
                "{} {} ({}): {}",
                event.resource_status().map_or("", |s| s.as_str()),
                event.logical_resource_id().unwrap_or_default(),
                event.resource_type().unwrap_or_default(),
                event.resource_status_reason().unwrap_or("no reason given")
            ));
        }
    }
    // The events come newest first; the first failure is the cause of the rest.
    failures.reverse();
    StackError::Deployment {
        failures: if failures.is_empty() {
            "no resource failed: CloudFormation refused the template or the change set".into()
        } else {
            failures.join("\n")
        },
        log: log.to_owned(),
        tail: process::tail(log, 8),
    }
}

/// The deployed stack: its outputs and its resources' physical ids.
#[derive(Debug, Clone, Default)]
pub struct DeployedStack {
    pub outputs: BTreeMap<String, String>,
    /// logical id → (type, physical id).
    pub resources: BTreeMap<String, (String, String)>,
}

impl DeployedStack {
    async fn read(client: &aws_sdk_cloudformation::Client) -> Result<DeployedStack, StackError> {
        let cloudformation_error = |operation: &str, error: String| {
            StackError::Other(format!("CloudFormation {operation} {STACK_NAME}: {error}"))
        };
        let described = client
            .describe_stacks()
            .stack_name(STACK_NAME)
            .send()
            .await
            .map_err(|e| {
                cloudformation_error(
                    "DescribeStacks",
                    aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let mut stack = DeployedStack::default();
        for output in described.stacks().iter().flat_map(|s| s.outputs().iter()) {
            if let (Some(key), Some(value)) = (output.output_key(), output.output_value()) {
                stack.outputs.insert(key.to_owned(), value.to_owned());
            }
        }
        let mut pages = client
            .list_stack_resources()
            .stack_name(STACK_NAME)
            .into_paginator()
            .items()
            .send();
        while let Some(resource) = pages.next().await {
            let resource = resource.map_err(|e| {
                cloudformation_error(
                    "ListStackResources",
                    aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
                )
            })?;
            if let (Some(logical), Some(physical)) = (
                resource.logical_resource_id(),
                resource.physical_resource_id(),
            ) {
                stack.resources.insert(
                    logical.to_owned(),
                    (
                        resource.resource_type().unwrap_or_default().to_owned(),
                        physical.to_owned(),
                    ),
                );
            }
        }
        Ok(stack)
    }

    /// An output's value.
    pub fn output(&self, key: &str) -> Result<String, StackError> {
        self.outputs
            .get(key)
            .cloned()
            .ok_or_else(|| StackError::Other(format!("the stack {STACK_NAME} has no output {key}")))
    }

    /// `(logical id, physical id)` of every resource of one type.
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.resources
            .iter()
            .filter(move |(_, (k, _))| k == kind)
            .map(|(logical, (_, physical))| (logical.as_str(), physical.as_str()))
    }

    /// The functions' environment as deployed: the union the template gives the
    /// functions (as the moto stack writes it), each value that names a resource replaced
    /// by the deployed resource's physical id (table name, queue URL, secret ARN, state
    /// machine alias ARN). Tools and tests read it as on the moto stack.
    pub fn environment(
        &self,
        template: &LocalResources,
        endpoint: &str,
        region: &str,
    ) -> Result<BTreeMap<String, String>, StackError> {
        let mut locally: BTreeMap<String, &str> = BTreeMap::new();
        for (logical, (_, physical)) in &self.resources {
            locally.insert(logical.clone(), physical);
            locally.insert(queue_url(endpoint, logical), physical);
            locally.insert(state_machine_arn(region, logical), physical);
        }
        let alias = self.output("OrderWorkflowAliasArn")?;
        let mut env = template.function_environment()?;
        for value in env.values_mut() {
            if let Some(physical) = locally.get(value.as_str()) {
                *value = (*physical).to_owned();
            } else if value.ends_with(":live") && value.starts_with("arn:aws:states:") {
                value.clone_from(&alias);
            }
        }
        if let Some(queue) = self.outputs.get("ReconcilerDeadLetterQueueUrl") {
            env.insert("RECONCILER_DEAD_LETTER_QUEUE_URL".into(), queue.clone());
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_url_is_the_execute_api_path_of_the_emulator() {
        assert_eq!(
            stage_url(
                "http://127.0.0.1:4566/",
                "https://1cce54ae.execute-api.us-east-1.amazonaws.com/v1/"
            )
            .as_deref(),
            Some("http://127.0.0.1:4566/_aws/execute-api/1cce54ae/v1")
        );
        assert_eq!(
            stage_url("http://127.0.0.1:4566", "https://example.com/v1/"),
            None
        );
    }

    #[test]
    fn the_deploy_gets_the_local_parameters_and_the_build_architecture() {
        let overrides = parameter_overrides("http://127.0.0.1:4597", "x86_64");
        assert!(overrides.contains(&"Architecture=x86_64".to_owned()));
        assert!(overrides.contains(&"OutageWaitSeconds=2".to_owned()));
        assert!(overrides.contains(&"WarehouseApiUrl=http://127.0.0.1:4597/warehouse".to_owned()));
    }

    #[test]
    fn deployed_names_replace_the_local_ones_in_the_environment() -> Result<(), StackError> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let endpoint = "http://127.0.0.1:4566";
        let template = LocalResources::load(
            &root,
            "us-east-1",
            endpoint,
            &local_parameters("http://127.0.0.1:4597"),
        )?;
        let mut stack = DeployedStack::default();
        stack.outputs.insert(
            "OrderWorkflowAliasArn".into(),
            "arn:aws:states:us-east-1:000000000000:stateMachine:terminal-orders-OrderWorkflow-1:live"
                .into(),
        );
        for (logical, kind, physical) in [
            ("OrdersTable", "AWS::DynamoDB::Table", "terminal-orders-OrdersTable-1"),
            (
                "WorkflowDeadLetterQueue",
                "AWS::SQS::Queue",
                "http://localhost:4566/000000000000/terminal-orders-WorkflowDeadLetterQueue-1",
            ),
            (
                "CourierWebhookSecret",
                "AWS::SecretsManager::Secret",
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:terminal-orders-CourierWebhookSecret-1",
            ),
        ] {
            stack
                .resources
                .insert(logical.into(), (kind.into(), physical.into()));
        }
        let env = stack.environment(&template, endpoint, "us-east-1")?;
        let get = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(get("TABLE_NAME"), Some("terminal-orders-OrdersTable-1"));
        assert_eq!(
            get("WORKFLOW_DEAD_LETTER_QUEUE_URL"),
            Some("http://localhost:4566/000000000000/terminal-orders-WorkflowDeadLetterQueue-1")
        );
        assert_eq!(
            get("COURIER_WEBHOOK_SECRET_ID"),
            Some("arn:aws:secretsmanager:us-east-1:000000000000:secret:terminal-orders-CourierWebhookSecret-1")
        );
        assert_eq!(
            get("STATE_MACHINE_ARN"),
            Some("arn:aws:states:us-east-1:000000000000:stateMachine:terminal-orders-OrderWorkflow-1:live")
        );
        assert_eq!(get("OUTAGE_WAIT_SECONDS"), Some("2"));
        Ok(())
    }
}
