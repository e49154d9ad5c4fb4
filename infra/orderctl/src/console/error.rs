//! What a page can fail with, and the error page each failure gives: the CLI's errors
//! (order not found 404, refused 409, AWS endpoint unreachable 502 naming the endpoint,
//! a missing setting 500 naming its flag and variable), and the console's own refusals
//! (no launch secret 401, a foreign host, site or form 403, a bad query 400).

use super::pages;
use crate::context::endpoint;
use crate::error::CliError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use order_core::dead_letters::DeadLetterError;
use order_core::recovery::RecoveryError;
use order_core::store::StoreError;

/// A page could not be shown or an action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Cli(#[from] CliError),
    /// Without the launch secret (neither the printed URL nor its cookie): the page
    /// says to open the URL the console printed.
    #[error("{0}")]
    Unauthenticated(String),
    /// Not from this console: another host name, another site, no token.
    #[error("{0}")]
    Forbidden(String),
    /// A query the page cannot use.
    #[error("{0}")]
    BadRequest(String),
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        ConsoleError::Cli(error.into())
    }
}

impl From<DeadLetterError> for ConsoleError {
    fn from(error: DeadLetterError) -> Self {
        ConsoleError::Cli(error.into())
    }
}

impl From<RecoveryError> for ConsoleError {
    fn from(error: RecoveryError) -> Self {
        ConsoleError::Cli(error.into())
    }
}

impl ConsoleError {
    /// The HTTP status and the page's title.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ConsoleError::Cli(CliError::NotFound(_)) => (StatusCode::NOT_FOUND, "Not found"),
            ConsoleError::Cli(CliError::Refused(_)) => (StatusCode::CONFLICT, "Refused"),
            ConsoleError::Cli(CliError::Unreachable(_)) => {
                (StatusCode::BAD_GATEWAY, "AWS cannot be reached")
            }
            ConsoleError::Cli(CliError::Usage(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The console is not configured for this",
            ),
            ConsoleError::Cli(CliError::Failed(_)) => (StatusCode::BAD_GATEWAY, "AWS refused"),
            ConsoleError::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, "Open the URL the console printed")
            }
            ConsoleError::Forbidden(_) => (StatusCode::FORBIDDEN, "Refused"),
            ConsoleError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
        }
    }

    /// What the page says: for an unreachable endpoint, which one.
    pub fn message(&self) -> String {
        match self {
            ConsoleError::Cli(error) => error.describe(&endpoint()),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title) = self.status();
        let message = self.message();
        tracing::warn!(status = status.as_u16(), error = %message, "page failed");
        match self {
            // Nothing else of the console is served without the secret, so that page
            // stands alone.
            ConsoleError::Unauthenticated(_) => {
                (status, pages::standalone(title, &message)).into_response()
            }
            _ => (status, pages::error(title, &message)).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_endpoint_is_a_bad_gateway_naming_the_endpoint() {
        let error = ConsoleError::Cli(CliError::Unreachable(
            "DynamoDB Query(count by status) failed: dispatch failure (DispatchFailure(..))".into(),
        ));
        assert_eq!(error.status().0, StatusCode::BAD_GATEWAY);
        assert!(
            error
                .message()
                .starts_with("cannot reach the AWS endpoint "),
            "{}",
            error.message()
        );
    }

    #[test]
    fn a_missing_order_is_not_found() {
        let error = ConsoleError::from(StoreError::NotFound(order_core::OrderId::generate()));
        assert_eq!(error.status().0, StatusCode::NOT_FOUND);
    }
}
