//! Secrets from AWS Secrets Manager: the partners' API tokens and the courier webhook
//! secret. Functions are given the secret's *id* (its ARN on AWS, its name locally) in an
//! environment variable, never the value; the value is read once per cold start and kept
//! in memory.
//!
//! The webhook secret is read with both staging labels, `AWSCURRENT` and `AWSPREVIOUS`, so
//! a rotation (`put-secret-value` moves the old value to `AWSPREVIOUS`) drops no delivery
//! signed with either. A warm instance that sees a signature none of its values verifies
//! reads the secret again, at most once per [`REFRESH_INTERVAL`], so it learns of a
//! rotation without a redeploy and a flood of bad signatures costs at most one read a
//! minute.

use crate::config::{self, ConfigError};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_secretsmanager::Client;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The least time between two reads of a rotating secret by one instance.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// A secret could not be read. The message names the secret's id and the reason, never
/// its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read secret {secret_id} ({stage}): {reason}")]
    Read {
        secret_id: String,
        stage: &'static str,
        reason: String,
    },
    #[error("secret {secret_id} ({stage}) has no string value")]
    Empty {
        secret_id: String,
        stage: &'static str,
    },
}

/// The secret id in environment variable `variable` (its ARN or name).
pub fn id_from_env(variable: &'static str) -> Result<String, ConfigError> {
    config::required(variable)
}

/// Reads the value of `secret_id` at staging label `stage`; `Ok(None)` when the secret
/// has no version with that label (a secret never rotated has no `AWSPREVIOUS`).
async fn read_stage(
    client: &Client,
    secret_id: &str,
    stage: &'static str,
) -> Result<Option<String>, SecretError> {
    let result = client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage)
        .send()
        .await;
    match result {
        Ok(output) => match output.secret_string {
            Some(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(SecretError::Empty {
                secret_id: secret_id.to_owned(),
                stage,
            }),
        },
        Err(error) if stage != CURRENT && error.code() == Some("ResourceNotFoundException") => {
            Ok(None)
        }
        Err(error) => Err(SecretError::Read {
            secret_id: secret_id.to_owned(),
            stage,
            reason: DisplayErrorContext(&error).to_string(),
        }),
    }
}

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// The current value of `secret_id`.
pub async fn read(client: &Client, secret_id: &str) -> Result<String, SecretError> {
    read_stage(client, secret_id, CURRENT)
        .await?
        .ok_or_else(|| SecretError::Empty {
            secret_id: secret_id.to_owned(),
            stage: CURRENT,
        })
}

/// The current value of the secret named by environment variable `variable`, read with
/// the shared AWS configuration.
pub async fn read_from_env(variable: &'static str) -> Result<String, SecretError> {
    let secret_id = id_from_env(variable)?;
    let client = Client::new(&config::aws().await);
    read(&client, &secret_id).await
}

/// A secret that rotates: its current and (when there is one) previous value.
pub struct RotatingSecret {
    client: Client,
    secret_id: String,
    refresh_interval: Duration,
    state: Mutex<Values>,
}

struct Values {
    values: Vec<String>,
    read_at: Instant,
}

impl RotatingSecret {
    /// Reads `secret_id`'s current and previous values.
    pub async fn load(client: Client, secret_id: String) -> Result<RotatingSecret, SecretError> {
        let values = Self::read_all(&client, &secret_id).await?;
        Ok(RotatingSecret {
            client,
            secret_id,
            refresh_interval: REFRESH_INTERVAL,
            state: Mutex::new(Values {
                values,
                read_at: Instant::now(),
            }),
        })
    }

    /// The same, re-read at most once per `interval` (tests shorten it).
    pub fn with_refresh_interval(mut self, interval: Duration) -> RotatingSecret {
        self.refresh_interval = interval;
        self
    }

    /// The secret named by environment variable `variable`.
    pub async fn from_env(variable: &'static str) -> Result<RotatingSecret, SecretError> {
        let secret_id = id_from_env(variable)?;
        RotatingSecret::load(Client::new(&config::aws().await), secret_id).await
    }

    async fn read_all(client: &Client, secret_id: &str) -> Result<Vec<String>, SecretError> {
        let current = read(client, secret_id).await?;
        let previous = read_stage(client, secret_id, PREVIOUS).await?;
        Ok(std::iter::once(current).chain(previous).collect::<Vec<_>>())
    }

    /// Whether `accepts` holds for one of the values. When none does, the secret is read
    /// again (at most once per [`REFRESH_INTERVAL`]) and the new values are tried: a
    /// rotation made since the cold start is then honoured. A failed re-read keeps the
    /// values known and is logged.
    pub async fn any(&self, accepts: impl Fn(&str) -> bool) -> bool {
        let mut state = self.state.lock().await;
        if state.values.iter().any(|v| accepts(v)) {
            return true;
        }
        if state.read_at.elapsed() < self.refresh_interval {
            return false;
        }
        state.read_at = Instant::now();
        match Self::read_all(&self.client, &self.secret_id).await {
            Ok(values) => {
                state.values = values;
                tracing::info!(secret_id = %self.secret_id, "secret read again");
                state.values.iter().any(|v| accepts(v))
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the secret again; keeping the values known");
                false
            }
        }
    }
}
