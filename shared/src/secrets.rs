//! Secrets from AWS Secrets Manager: the partners' API tokens and the courier webhook
//! secret. Functions are given the secret's *id* (its ARN on AWS, its name locally) in an
//! environment variable, never the value; the value is read once per cold start and kept
//! in memory.
//!
//! The webhook secret is read with both staging labels, `AWSCURRENT` and `AWSPREVIOUS`, so
//! a rotation (`put-secret-value` moves the old value to `AWSPREVIOUS`) drops no delivery
//! signed with either; the previous value only for [`PREVIOUS_GRACE`] after the current
//! one was created, so an old value stops verifying by itself. A warm instance that sees a
//! signature none of its values verifies reads the secret again, at most once per
//! [`REFRESH_INTERVAL`], so it learns of a rotation without a redeploy and a flood of bad
//! signatures costs at most one read a minute; and it reads it again every [`MAX_AGE`]
//! whatever it sees, so a value revoked in an emergency (its `AWSPREVIOUS` label removed,
//! or the secret rotated twice) stops verifying within that time.

use crate::config::{self, ConfigError};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_secretsmanager::Client;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The least time between two reads of a rotating secret by one instance.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest one instance goes on with the values it read: then it reads them again.
pub const MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// How long after a rotation (the current value's creation) the previous value still
/// verifies: long enough for the sender to move to the new value.
pub const PREVIOUS_GRACE: Duration = Duration::from_secs(60 * 60);

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
    Ok(read_version(client, secret_id, stage)
        .await?
        .map(|(value, _)| value))
}

/// [`read_stage`], with when the version was created (when Secrets Manager says).
async fn read_version(
    client: &Client,
    secret_id: &str,
    stage: &'static str,
) -> Result<Option<(String, Option<std::time::SystemTime>)>, SecretError> {
    let result = client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage)
        .send()
        .await;
    match result {
        Ok(output) => match output.secret_string {
            Some(value) if !value.is_empty() => {
                let created = output
                    .created_date
                    .and_then(|date| std::time::SystemTime::try_from(date).ok());
                Ok(Some((value, created)))
            }
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
    max_age: Duration,
    previous_grace: Duration,
    state: Mutex<Values>,
}

struct Values {
    values: Vec<String>,
    read_at: Instant,
}

impl RotatingSecret {
    /// Reads `secret_id`'s current and previous values.
    pub async fn load(client: Client, secret_id: String) -> Result<RotatingSecret, SecretError> {
        let values = Self::read_all(&client, &secret_id, PREVIOUS_GRACE).await?;
        Ok(RotatingSecret {
            client,
            secret_id,
            refresh_interval: REFRESH_INTERVAL,
            max_age: MAX_AGE,
            previous_grace: PREVIOUS_GRACE,
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

    /// The same, re-read whatever it sees after `max_age` (tests shorten it).
    pub fn with_max_age(mut self, max_age: Duration) -> RotatingSecret {
        self.max_age = max_age;
        self
    }

    /// The same, the previous value accepted for `grace` after a rotation (tests shorten
    /// it); the values are read again now.
    pub async fn with_previous_grace(
        mut self,
        grace: Duration,
    ) -> Result<RotatingSecret, SecretError> {
        self.previous_grace = grace;
        let values = Self::read_all(&self.client, &self.secret_id, grace).await?;
        self.state = Mutex::new(Values {
            values,
            read_at: Instant::now(),
        });
        Ok(self)
    }

    /// The secret named by environment variable `variable`.
    pub async fn from_env(variable: &'static str) -> Result<RotatingSecret, SecretError> {
        let secret_id = id_from_env(variable)?;
        RotatingSecret::load(Client::new(&config::aws().await), secret_id).await
    }

    /// The current value, and the previous one while the current one is younger than
    /// `grace` (an unknown creation time counts as young: AWS always says).
    async fn read_all(
        client: &Client,
        secret_id: &str,
        grace: Duration,
    ) -> Result<Vec<String>, SecretError> {
        let (current, created) =
            read_version(client, secret_id, CURRENT)
                .await?
                .ok_or_else(|| SecretError::Empty {
                    secret_id: secret_id.to_owned(),
                    stage: CURRENT,
                })?;
        let rotated_recently = created
            .and_then(|created| created.elapsed().ok())
            .is_none_or(|age| age < grace);
        let previous = match rotated_recently {
            true => read_stage(client, secret_id, PREVIOUS).await?,
            false => None,
        };
        Ok(std::iter::once(current).chain(previous).collect::<Vec<_>>())
    }

    /// Whether `accepts` holds for one of the values. When none does, the secret is read
    /// again (at most once per [`REFRESH_INTERVAL`]) and the new values are tried: a
    /// rotation made since the cold start is then honoured. A failed re-read keeps the
    /// values known and is logged.
    pub async fn any(&self, accepts: impl Fn(&str) -> bool) -> bool {
        let mut state = self.state.lock().await;
        // Values older than the longest an instance keeps them: read again first.
        let stale = state.read_at.elapsed() >= self.max_age;
        if !stale && state.values.iter().any(|v| accepts(v)) {
            return true;
        }
        if !stale && state.read_at.elapsed() < self.refresh_interval {
            return false;
        }
        state.read_at = Instant::now();
        match Self::read_all(&self.client, &self.secret_id, self.previous_grace).await {
            Ok(values) => {
                state.values = values;
                tracing::info!(secret_id = %self.secret_id, "secret read again");
                state.values.iter().any(|v| accepts(v))
            }
            // Secrets Manager failing must not refuse the courier: the values known
            // still decide.
            Err(error) => {
                tracing::error!(%error, "cannot read the secret again; keeping the values known");
                state.values.iter().any(|v| accepts(v))
            }
        }
    }
}
