//! The settings and AWS clients a command works with. The AWS configuration (endpoint,
//! region, credentials) is loaded once; the order store, the workflow and the dead-letter
//! queue are asked for by the commands that use them, so `orders list` works with only
//! a table, and a missing setting is reported with its flag and variable (exit 2).

use crate::cli::Settings;
use crate::error::CliError;
use order_core::dead_letters::DeadLetterQueue;
use order_core::events::EventBus;
use order_core::recovery::{Workflow, WorkflowConfig};
use order_core::store::OrderStore;
use std::path::Path;

/// `OUTAGE_WAIT_SECONDS` when unset: the production default of the template.
pub const DEFAULT_OUTAGE_WAIT_SECONDS: u64 = 300;
/// `OUTAGE_WAITS_ALLOWED` when unset: the production default of the template (12 hours of
/// 300-second waits).
pub const DEFAULT_OUTAGE_WAITS_ALLOWED: u64 = 144;
/// `DELIVERY_TIMEOUT_SECONDS` when unset: 14 days, the production default.
pub const DEFAULT_DELIVERY_TIMEOUT_SECONDS: u64 = 1_209_600;

/// What every command is given.
pub struct Context {
    pub aws: aws_config::SdkConfig,
    pub settings: Settings,
    /// Print JSON instead of tables.
    pub json: bool,
    /// Who acts, asked of STS once.
    identity: tokio::sync::OnceCell<String>,
}

/// Who takes an action, as its audit record names them: the STS identity, and the
/// `--operator` label beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub identity: String,
    pub label: Option<String>,
}

impl Acting {
    /// The audit entry of `action` taken by them.
    pub fn entry<'a>(&'a self, action: &'a str) -> order_core::store::AuditEntry<'a> {
        order_core::store::AuditEntry {
            who: &self.identity,
            label: self.label.as_deref(),
            action,
        }
    }

    /// The same, as a caller-scope change's actor.
    pub fn actor(&self) -> order_core::store::Actor<'_> {
        order_core::store::Actor {
            identity: &self.identity,
            label: self.label.as_deref(),
        }
    }
}

impl Context {
    /// Loads the standard AWS configuration. Fails (exit 2) when no region is configured.
    pub async fn new(settings: &Settings, json: bool) -> Result<Context, CliError> {
        let aws = order_core::config::aws().await;
        if aws.region().is_none() {
            return Err(CliError::Usage(
                "no AWS region is configured: set AWS_REGION (or a profile's region); for the local stack pass --env-file .local/stack/stack.env".into(),
            ));
        }
        Ok(Context {
            aws,
            settings: settings.clone(),
            json,
            identity: tokio::sync::OnceCell::new(),
        })
    }

    /// The order table (`--table` / `TABLE_NAME`).
    pub fn store(&self) -> Result<OrderStore, CliError> {
        let table = required(&self.settings.table, "--table", "TABLE_NAME")?;
        Ok(OrderStore::from_config(&self.aws, table))
    }

    /// Who is acting, as AWS knows it: the ARN STS GetCallerIdentity answers for these
    /// credentials (asked once), with the `--operator` label beside it. Recorded with
    /// every action and change an operator makes; an action whose actor cannot be known
    /// is not taken.
    pub async fn acting(&self) -> Result<Acting, CliError> {
        let identity = self
            .identity
            .get_or_try_init(|| async {
                let sts = aws_sdk_sts::Client::new(&self.aws);
                let answer = sts.get_caller_identity().send().await.map_err(|e| {
                    CliError::classify(format!(
                        "STS GetCallerIdentity failed (needed to record who acts; nothing was done): {}",
                        aws_sdk_sts::error::DisplayErrorContext(e)
                    ))
                })?;
                answer.arn().map(str::to_owned).ok_or_else(|| {
                    CliError::Failed("STS GetCallerIdentity answered without an ARN".into())
                })
            })
            .await?;
        Ok(Acting {
            identity: identity.clone(),
            label: self.settings.operator.clone(),
        })
    }

    /// The Step Functions client, for reading executions.
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.aws)
    }

    /// The order workflow (`--state-machine-arn` / `STATE_MACHINE_ARN`), with the
    /// settings new executions get.
    pub fn workflow(&self) -> Result<Workflow, CliError> {
        let arn = required(
            &self.settings.state_machine_arn,
            "--state-machine-arn",
            "STATE_MACHINE_ARN",
        )?;
        Ok(Workflow {
            client: self.sfn(),
            state_machine_arn: arn.to_owned(),
            config: workflow_config()?,
        })
    }

    /// The workflow dead-letter queue (`--dlq-url` / `WORKFLOW_DEAD_LETTER_QUEUE_URL`).
    pub fn dead_letters(&self) -> Result<DeadLetterQueue, CliError> {
        Ok(DeadLetterQueue::new(self.sqs(), self.dlq_url()?))
    }

    pub fn dlq_url(&self) -> Result<&str, CliError> {
        required(
            &self.settings.dlq_url,
            "--dlq-url",
            "WORKFLOW_DEAD_LETTER_QUEUE_URL",
        )
    }

    /// The order-events bus (`--events-bus` / `ORDER_EVENTS_BUS_NAME`): the reconciler publishes the orders
    /// it parks.
    pub fn events(&self) -> Result<EventBus, CliError> {
        let bus = required(
            &self.settings.events_bus,
            "--events-bus",
            order_core::events::BUS_VARIABLE,
        )?;
        Ok(EventBus::new(
            aws_sdk_eventbridge::Client::new(&self.aws),
            bus,
        ))
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }
}

/// Where requests go, for messages: `AWS_ENDPOINT_URL`, or `AWS`.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "AWS".to_owned())
}

fn required<'a>(
    value: &'a Option<String>,
    flag: &str,
    variable: &str,
) -> Result<&'a str, CliError> {
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(CliError::Usage(format!(
            "this command needs {flag} or the environment variable {variable} (for the local stack: --env-file .local/stack/stack.env)"
        ))),
    }
}

/// The execution settings: `OUTAGE_WAIT_SECONDS`, `DELIVERY_TIMEOUT_SECONDS` and
/// `OUTAGE_WAITS_ALLOWED`, with the
/// production defaults when they are unset (operators on AWS do not have them).
fn workflow_config() -> Result<WorkflowConfig, CliError> {
    Ok(WorkflowConfig {
        outage_wait_seconds: seconds("OUTAGE_WAIT_SECONDS", DEFAULT_OUTAGE_WAIT_SECONDS)?,
        delivery_timeout_seconds: seconds(
            "DELIVERY_TIMEOUT_SECONDS",
            DEFAULT_DELIVERY_TIMEOUT_SECONDS,
        )?,
        outage_waits_allowed: seconds("OUTAGE_WAITS_ALLOWED", DEFAULT_OUTAGE_WAITS_ALLOWED)?,
    })
}

fn seconds(name: &'static str, default: u64) -> Result<u64, CliError> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(CliError::Usage(format!(
                "environment variable {name} must be a whole number of seconds above zero, not {text:?}"
            ))),
        },
        _ => Ok(default),
    }
}

/// The `KEY=VALUE` lines of an env file such as `.local/stack/stack.env`: blank lines and
/// `#` comments are skipped, `export ` is allowed, one pair of quotes around a value is
/// removed.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE", number + 1));
        };
        let key = key.trim();
        let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "line {}: {key:?} is not a variable name",
                number + 1
            ));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        pairs.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

/// Loads an env file into this process's environment. Call before any thread starts
/// (before the async runtime): changing the environment is only sound then.
pub fn load_env_file(path: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "--env-file {}: {e} (is the local stack up? `make up` writes .local/stack/stack.env)",
            path.display()
        ))
    })?;
    let pairs = parse_env_file(&text)
        .map_err(|e| CliError::Usage(format!("--env-file {}: {e}", path.display())))?;
    for (key, value) in pairs {
        std::env::set_var(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_file_is_read_like_the_stack_writes_it() {
        let text = "# stack\nTABLE_NAME=OrdersTable\n\nexport AWS_REGION=\"us-east-1\"\nURL=http://h:1/q?a=b\n";
        assert_eq!(
            parse_env_file(text),
            Ok(vec![
                ("TABLE_NAME".to_owned(), "OrdersTable".to_owned()),
                ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
                ("URL".to_owned(), "http://h:1/q?a=b".to_owned()),
            ])
        );
    }

    #[test]
    fn a_line_that_is_not_a_setting_is_named() {
        assert_eq!(
            parse_env_file("A=1\nnonsense\n"),
            Err("line 2 is not KEY=VALUE".to_owned())
        );
    }

    #[test]
    fn a_missing_setting_names_its_flag_and_variable() {
        let error = required(&None, "--table", "TABLE_NAME").err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("--table") && message.contains("TABLE_NAME"),
            "{message}"
        );
    }
}
