//! Settings read from the environment once, at cold start.
//!
//! AWS clients are built from the standard AWS configuration chain, so `AWS_ENDPOINT_URL`,
//! `AWS_REGION` and the credential variables point the same binary at the local stack,
//! LocalStack or AWS without a code change.

use std::env;

/// A setting is missing or malformed; the function refuses to start and says which.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The value of a required environment variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A required whole number.
pub fn number(name: &'static str) -> Result<u64, ConfigError> {
    let text = required(name)?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("{text:?} is not a whole number"),
        })
}

/// A required whole number above zero.
pub fn positive(name: &'static str) -> Result<u64, ConfigError> {
    match number(name)? {
        0 => Err(ConfigError::Invalid {
            name,
            reason: "must be above zero".to_owned(),
        }),
        n => Ok(n),
    }
}

/// The AWS configuration (region, credentials, endpoint) from the standard sources:
/// environment variables, profiles, then the Lambda execution role. Loaded once per
/// process; each call gets its own HTTP client, as the SDK's default client is made per
/// service client: a connection pool belongs to the tokio runtime that opened its
/// connections, and a test process runs one runtime per test.
pub async fn aws() -> aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    let loaded = CONFIG.get_or_init(|| aws_loader().load()).await;
    loaded.to_builder().http_client(https_client()).build()
}

/// The loader of the standard AWS configuration with our HTTP client ([`https_client`]).
/// Every program that talks to AWS starts from here or [`aws`]: the SDK is built without
/// a default client.
pub fn aws_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(retry_config())
}

/// How every AWS client retries throttling and 5xx answers: the SDK's standard mode, with
/// more attempts than its default 3 and backoffs capped so that all of them fit well within
/// a function's 15-second timeout (full jitter on 0.2, 0.4, 0.8, 1.6 s: at most 3 s of
/// waiting). What outlasts them is the activity's `Store.Unavailable` (or
/// `Workflow.Unavailable`), which the state machine retries, then
/// waits out.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(std::time::Duration::from_millis(200))
        .with_max_backoff(std::time::Duration::from_secs(2))
}

/// The SDK's own HTTP client (hyper 1, rustls) on the ring crypto provider, the one
/// reqwest uses: a function carries one TLS stack and one crypto library.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The DynamoDB table every function reads and writes (`TABLE_NAME`).
pub fn table_name() -> Result<String, ConfigError> {
    required("TABLE_NAME")
}
