//! What can go wrong, and the exit code each failure gives scripts to rely on:
//!
//! | code | [`Exit`] | meaning |
//! |---|---|---|
//! | 0 | `Ok` | done |
//! | 1 | `Failed` | an operation failed |
//! | 2 | `Usage` | usage or configuration (a missing setting, no region or credentials) |
//! | 3 | `NotFound` | the order or message does not exist |
//! | 4 | `Refused` | not cancellable, still running, already ended, redrive not supported |
//! | 5 | `Unreachable` | the AWS endpoint cannot be reached |
//!
//! Errors of the shared crate are classified here, once: a request that never reached
//! the endpoint (the SDK's "dispatch failure", a refused connection) is `Unreachable`,
//! whatever service it was for.

use order_core::dead_letters::DeadLetterError;
use order_core::recovery::RecoveryError;
use order_core::store::StoreError;
use serde::Serialize;

/// The exit codes of `orderctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Ok = 0,
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Refused = 4,
    Unreachable = 5,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The help text's table of exit codes (`orderctl --help`).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done
  1  an operation failed (dlq replay --all: at least one message could not be replayed)
  2  usage or configuration (a missing setting names its flag and environment variable;
     no AWS region or credentials)
  3  the order or the message does not exist
  4  refused: the order is not cancellable, still running or has ended, or the backend
     does not support RedriveExecution
  5  the AWS endpoint cannot be reached";

/// A command failed; [`CliError::exit`] says with which code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or malformed, or the command line is inconsistent.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    /// The request never got an answer: the endpoint is down, wrong, or unreachable.
    /// Shown with the endpoint by [`CliError::describe`].
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Refused(_) => Exit::Refused,
            CliError::Unreachable(_) => Exit::Unreachable,
            CliError::Failed(_) => Exit::Failed,
        }
    }

    /// The message an operator sees; `endpoint` is `AWS_ENDPOINT_URL`, or `AWS`.
    pub fn describe(&self, endpoint: &str) -> String {
        match self {
            CliError::Unreachable(message) => {
                // The SDK appends its error's Debug form; the sentence before it says it all.
                let message = message
                    .split_once(" (DispatchFailure(")
                    .map_or(message.as_str(), |(sentence, _)| sentence);
                format!("cannot reach the AWS endpoint {endpoint}: {message}")
            }
            other => other.to_string(),
        }
    }

    /// A failure whose message may say that the request never reached the endpoint, or
    /// could not be signed for want of credentials (a configuration problem).
    pub fn classify(message: String) -> CliError {
        if message.contains("while loading credentials") || message.contains("no credentials") {
            let message = message
                .split_once(" (DispatchFailure(")
                .map_or(message.as_str(), |(sentence, _)| sentence);
            CliError::Usage(format!(
                "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the local stack's are in .local/stack/stack.env) ({message})"
            ))
        } else if is_transport_failure(&message) {
            CliError::Unreachable(message)
        } else {
            CliError::Failed(message)
        }
    }
}

/// Whether an SDK error's text says the request could not be sent at all (as opposed
/// to an answer from the service).
pub fn is_transport_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "dispatch failure",
        "connection refused",
        "error trying to connect",
        "tcp connect error",
        "dns error",
    ]
    .iter()
    .any(|marker| message.contains(marker))
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => CliError::NotFound(error.to_string()),
            StoreError::Unavailable { .. } => CliError::classify(error.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<DeadLetterError> for CliError {
    fn from(error: DeadLetterError) -> Self {
        CliError::classify(error.to_string())
    }
}

impl From<RecoveryError> for CliError {
    fn from(error: RecoveryError) -> Self {
        match error {
            RecoveryError::Store(error) => error.into(),
            RecoveryError::DeadLetters(error) => error.into(),
            RecoveryError::Workflow { .. } => CliError::classify(error.to_string()),
            RecoveryError::Ended { .. }
            | RecoveryError::StillRunning { .. }
            | RecoveryError::ResumedElsewhere { .. }
            | RecoveryError::NameTaken { .. }
            | RecoveryError::NotSupported(_) => CliError::Refused(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_core::{OrderId, OrderStatus};

    #[test]
    fn a_refused_connection_is_unreachable_and_named_with_the_endpoint() {
        let error = CliError::from(StoreError::Unavailable {
            operation: "GetItem(order)",
            message: "dispatch failure: io error: error trying to connect: tcp connect error: Connection refused (os error 111) (DispatchFailure(DispatchFailure { source: ConnectorError { .. } }))".into(),
        });
        assert_eq!(error.exit(), Exit::Unreachable);
        assert_eq!(
            error.describe("http://127.0.0.1:1"),
            "cannot reach the AWS endpoint http://127.0.0.1:1: DynamoDB GetItem(order) failed: dispatch failure: io error: error trying to connect: tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn missing_credentials_are_a_configuration_problem_not_an_unreachable_endpoint() {
        let error = CliError::classify("DynamoDB Query(by status) failed: dispatch failure: other: an error occurred while loading credentials: failed to load IMDS session token".into());
        assert_eq!(error.exit(), Exit::Usage);
        assert!(
            error.to_string().starts_with("no AWS credentials"),
            "{error}"
        );
    }

    #[test]
    fn each_kind_of_error_has_its_exit_code() {
        let id = OrderId::generate();
        let cases = [
            (CliError::from(StoreError::NotFound(id.clone())), 3),
            // An answer from the service is a failure, not an unreachable endpoint.
            (
                CliError::from(RecoveryError::Workflow {
                    operation: "StartExecution",
                    message: "service error: StateMachineDoesNotExist".into(),
                }),
                1,
            ),
            (
                CliError::from(RecoveryError::Ended {
                    order_id: id.clone(),
                    status: OrderStatus::Completed,
                }),
                4,
            ),
            (
                CliError::from(RecoveryError::StillRunning {
                    order_id: id.clone(),
                    execution_arn: "arn".into(),
                }),
                4,
            ),
            (
                CliError::from(RecoveryError::NotSupported("no redrive".into())),
                4,
            ),
            (CliError::Usage("--table".into()), 2),
            (
                CliError::from(StoreError::Corrupt {
                    key: "k".into(),
                    message: "m".into(),
                }),
                1,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit().code(), code, "{error}");
        }
    }
}
