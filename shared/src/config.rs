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

/// The shared AWS configuration (region, credentials, endpoint) from the standard
/// sources: environment variables, profiles, then the Lambda execution role. Loaded once
/// per process; every client of the process shares it.
pub async fn aws() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
        .await
}

/// The DynamoDB table every function reads and writes (`TABLE_NAME`).
pub fn table_name() -> Result<String, ConfigError> {
    required("TABLE_NAME")
}
