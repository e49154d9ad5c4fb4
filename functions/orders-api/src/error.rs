//! Errors become HTTP here, and only here: every error is JSON with a stable `code` and a
//! human `message`; invalid requests also list every `problem` with its field path. A 5xx
//! is logged at error, a refusal at info. The orders routes (axum) and the courier
//! webhook (lambda_http) answer with the same body.

use axum::response::IntoResponse;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Response};
use order_core::store::StoreError;
use order_core::validation::Problem;
use serde::Serialize;
use serde_json::json;

/// How long a caller told `503` (our store, workflow or event bus is unavailable or
/// throttling us) waits before it retries: the `Retry-After` header every 503 carries.
/// The SDK clients behind the API already retried for about 3 s; a throttled table or
/// Step Functions usually recovers within seconds.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// An API error: the HTTP status, a stable machine-readable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub problems: Vec<Problem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    pub fn order_not_found(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "order_not_found",
            format!("no order with id {id:?}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ApiError::order_not_found(id.as_str()),
            StoreError::Unavailable { .. } => {
                tracing::error!(%error, "order store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the order store is unavailable; retry with the same Idempotency-Key",
                )
            }
            other => {
                tracing::error!(error = %other, "order store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

/// `404 route_not_found` for `method path`.
pub fn route_not_found(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {method} {path}"),
    )
}

/// The answer to a handler's result: an error is logged and becomes its JSON body.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    match result {
        Ok(response) => response,
        Err(error) => {
            error.log();
            error_response(&error)
        }
    }
}

impl ApiError {
    /// Logs the error: at error for a 5xx, at info for a refusal.
    fn log(&self) {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        } else {
            tracing::info!(
                code = self.code,
                status = self.status.as_u16(),
                "request refused"
            );
        }
    }

    /// The JSON body: `{code, message, problems?}`.
    fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code, "message": self.message});
        if !self.problems.is_empty() {
            body["problems"] = json!(self.problems);
        }
        body
    }
}

/// An error a route returns: logged, then answered with its JSON body (and, for a 503,
/// `Retry-After`).
impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        self.log();
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}

impl ApiError {
    /// `Retry-After` for an answer that asks the caller to come back: every 503.
    fn retry_after(&self) -> Option<header::HeaderValue> {
        (self.status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| header::HeaderValue::from(RETRY_AFTER_SECONDS))
    }
}

/// `405 method_not_allowed`, naming the one method the resource takes.
pub fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this resource only accepts {allowed}"),
    )
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON body of an error: `{code, message, problems?}`; a 503 also says when to
/// retry (`Retry-After`).
pub fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json_response(error.status, &error.body());
    if let Some(seconds) = error.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_a_503_that_says_when_to_retry_on_both_paths() {
        let error = ApiError::from(StoreError::Unavailable {
            operation: "TransactWriteItems",
            message: "ThrottlingError".into(),
        });
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "store_unavailable");
        let webhook = error_response(&error);
        assert_eq!(
            webhook
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        let route = error.into_response();
        assert_eq!(route.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            route
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn a_refusal_or_a_bug_carries_no_retry_after() {
        for status in [StatusCode::NOT_FOUND, StatusCode::INTERNAL_SERVER_ERROR] {
            let response = error_response(&ApiError::new(status, "x", "y"));
            assert!(
                response.headers().get(header::RETRY_AFTER).is_none(),
                "{status}"
            );
        }
    }

    #[test]
    fn an_error_body_has_a_code_a_message_and_its_problems() {
        let error = ApiError {
            problems: vec![Problem {
                path: "lines[0].quantity".into(),
                message: "must be between 1 and 50".into(),
            }],
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "bad")
        };
        let response = error_response(&error);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
        assert_eq!(
            body,
            json!({"code": "invalid_request", "message": "bad",
                   "problems": [{"path": "lines[0].quantity", "message": "must be between 1 and 50"}]})
        );
    }
}
