//! Where the stack under test is: the endpoints `local-stack exec` passes in the
//! environment, or a stack's `stack.env`; and the clients built from them. Every client
//! talks to 127.0.0.1 only, and every request has a timeout.

use crate::ChaosError;
use local_stack::signing::Signer;
use order_core::dead_letters::DeadLetterQueue;
use order_core::recovery::{Workflow, WorkflowConfig};
use order_core::store::OrderStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The stack's endpoints and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosEnv {
    pub aws_endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub table_name: String,
    pub state_machine_arn: String,
    pub orders_api_url: String,
    pub partner_simulator_url: String,
    pub dead_letter_queue_url: String,
    /// The order-events bus (`ORDER_EVENTS_BUS_NAME`).
    pub events_bus: String,
    /// The stack's queue that every order event reaches through its rule
    /// (`ORDER_EVENTS_TAP_QUEUE_URL`), as an integrator subscribes; the audit reads it.
    pub events_tap_queue_url: Option<String>,
    /// The stack's directory (PID files): where the function instances are found.
    pub stack_dir: PathBuf,
    pub outage_wait_seconds: u64,
    pub delivery_timeout_seconds: u64,
    /// The outage budget every execution gets (`OUTAGE_WAITS_ALLOWED`, default 144).
    pub outage_waits_allowed: u64,
    /// Resumes the reconciler allows an order before parking it (`MAX_RESUMES`, default 3).
    pub max_resumes: u32,
    /// The key requests to the orders API are signed with, when the stack has an API
    /// caller of its own (`ORDERS_API_ACCESS_KEY_ID` / `ORDERS_API_SECRET_ACCESS_KEY`, on
    /// MiniStack); otherwise they are signed with the credentials above.
    pub api_caller: Option<(String, String)>,
}

impl ChaosEnv {
    /// From `KEY=VALUE` settings, as in `stack.env` or the environment.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<ChaosEnv, ChaosError> {
        let get = |name: &str| match map.get(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            _ => Err(ChaosError::MissingSetting(name.to_owned())),
        };
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|_| default.to_owned());
        let number = |name: &str| {
            let value = get(name)?;
            value.parse::<u64>().map_err(|_| ChaosError::BadSetting {
                name: name.to_owned(),
                value,
            })
        };
        let local = |name: &str| {
            let url = get(name)?;
            if is_loopback(&url) {
                Ok(url.trim_end_matches('/').to_owned())
            } else {
                Err(ChaosError::NotLoopback {
                    name: name.to_owned(),
                    url,
                })
            }
        };
        Ok(ChaosEnv {
            aws_endpoint_url: local("AWS_ENDPOINT_URL")?,
            region: or("AWS_REGION", "us-east-1"),
            access_key_id: or("AWS_ACCESS_KEY_ID", "test"),
            secret_access_key: or("AWS_SECRET_ACCESS_KEY", "test"),
            table_name: get("TABLE_NAME")?,
            state_machine_arn: get("STATE_MACHINE_ARN")?,
            orders_api_url: local("ORDERS_API_URL")?,
            partner_simulator_url: local("PARTNER_SIMULATOR_URL")?,
            dead_letter_queue_url: local("WORKFLOW_DEAD_LETTER_QUEUE_URL")?,
            events_bus: get("ORDER_EVENTS_BUS_NAME")?,
            events_tap_queue_url: map
                .get("ORDER_EVENTS_TAP_QUEUE_URL")
                .filter(|url| !url.is_empty())
                .cloned(),
            stack_dir: PathBuf::from(get("LOCAL_STACK_DIR")?),
            outage_wait_seconds: number("OUTAGE_WAIT_SECONDS")?,
            delivery_timeout_seconds: number("DELIVERY_TIMEOUT_SECONDS")?,
            outage_waits_allowed: match map.get("OUTAGE_WAITS_ALLOWED") {
                None => 144,
                Some(_) => number("OUTAGE_WAITS_ALLOWED")?,
            },
            max_resumes: match map.get("MAX_RESUMES") {
                None => 3,
                Some(_) => u32::try_from(number("MAX_RESUMES")?).unwrap_or(u32::MAX),
            },
            api_caller: get("ORDERS_API_ACCESS_KEY_ID")
                .ok()
                .zip(get("ORDERS_API_SECRET_ACCESS_KEY").ok()),
        })
    }

    /// From this process's environment (what `local-stack exec` provides).
    pub fn from_process() -> Result<ChaosEnv, ChaosError> {
        ChaosEnv::from_map(&std::env::vars().collect())
    }

    /// From a `stack.env` file written by `local-stack up`.
    pub fn from_file(path: &Path) -> Result<ChaosEnv, ChaosError> {
        let text = std::fs::read_to_string(path).map_err(|source| ChaosError::EnvFile {
            path: path.to_owned(),
            source,
        })?;
        ChaosEnv::from_map(&parse_env(&text))
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Whether `url` is an http(s) URL on this machine's loopback interface.
pub fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    matches!(parsed.scheme(), "http" | "https")
        && matches!(
            parsed.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        )
}

/// Everything the run talks to.
#[derive(Clone)]
pub struct Clients {
    pub env: ChaosEnv,
    /// For the orders API and the partner simulator (no proxy, 30 s per request).
    pub http: reqwest::Client,
    /// Signs the requests to the orders API (SigV4, as its IAM authorization wants).
    pub signer: Signer,
    pub store: OrderStore,
    /// The order table, for the audit's scan.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub workflow: Workflow,
    pub dead_letters: DeadLetterQueue,
    /// The order-events bus, for the reconciler's parks.
    pub events: order_core::events::EventBus,
    pub sqs: aws_sdk_sqs::Client,
}

/// How long one HTTP request to the orders API or the simulator may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one AWS API operation may take, retries included.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

impl Clients {
    pub async fn connect(env: &ChaosEnv) -> Result<Clients, ChaosError> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ChaosError::Http(e.to_string()))?;
        let credentials = aws_sdk_sqs::config::Credentials::new(
            env.access_key_id.clone(),
            env.secret_access_key.clone(),
            None,
            None,
            "chaos",
        );
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(AWS_OPERATION_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build();
        let config = order_core::config::aws_loader()
            .endpoint_url(&env.aws_endpoint_url)
            .region(aws_config::Region::new(env.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(timeouts)
            .load()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        Ok(Clients {
            env: env.clone(),
            http,
            signer: match &env.api_caller {
                Some((key, secret)) => Signer::new(key, secret, &env.region),
                None => Signer::new(&env.access_key_id, &env.secret_access_key, &env.region),
            },
            store: OrderStore::new(aws_sdk_dynamodb::Client::new(&config), &env.table_name),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            workflow: Workflow {
                client: aws_sdk_sfn::Client::new(&config),
                state_machine_arn: env.state_machine_arn.clone(),
                config: WorkflowConfig {
                    outage_wait_seconds: env.outage_wait_seconds,
                    delivery_timeout_seconds: env.delivery_timeout_seconds,
                    outage_waits_allowed: env.outage_waits_allowed,
                },
            },
            dead_letters: DeadLetterQueue::new(sqs.clone(), &env.dead_letter_queue_url),
            events: order_core::events::EventBus::new(
                aws_sdk_eventbridge::Client::new(&config),
                &env.events_bus,
            ),
            sqs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_env() -> BTreeMap<String, String> {
        parse_env(
            "AWS_ENDPOINT_URL=http://127.0.0.1:4599\nAWS_REGION=us-east-1\nTABLE_NAME=OrdersTable\n\
             STATE_MACHINE_ARN=arn:aws:states:us-east-1:123456789012:stateMachine:OrderWorkflow\n\
             ORDERS_API_URL=http://127.0.0.1:9099/lambda-url/orders-api\n\
             PARTNER_SIMULATOR_URL=http://127.0.0.1:4597\n\
             WORKFLOW_DEAD_LETTER_QUEUE_URL=http://127.0.0.1:4599/123456789012/WorkflowDeadLetterQueue\n\
             ORDER_EVENTS_BUS_NAME=terminal-orders-order-events\n\
             LOCAL_STACK_DIR=/tmp/stack\nOUTAGE_WAIT_SECONDS=2\nDELIVERY_TIMEOUT_SECONDS=60\n",
        )
    }

    #[test]
    fn a_stack_env_file_gives_every_endpoint() {
        let env = ChaosEnv::from_map(&stack_env());
        let env = match env {
            Ok(env) => env,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(
            env.orders_api_url,
            "http://127.0.0.1:9099/lambda-url/orders-api"
        );
        assert_eq!(env.stack_dir, PathBuf::from("/tmp/stack"));
        assert_eq!(
            (env.outage_wait_seconds, env.delivery_timeout_seconds),
            (2, 60)
        );
        assert_eq!(env.access_key_id, "test");
    }

    #[test]
    fn an_endpoint_off_this_machine_is_refused_by_name() {
        let mut map = stack_env();
        map.insert(
            "PARTNER_SIMULATOR_URL".into(),
            "http://partners.example.com".into(),
        );
        let error = ChaosEnv::from_map(&map).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("PARTNER_SIMULATOR_URL")),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_setting_is_named() {
        let mut map = stack_env();
        map.remove("TABLE_NAME");
        let error = ChaosEnv::from_map(&map).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("TABLE_NAME")),
            "{error:?}"
        );
    }
}
