//! Error answers: every one is JSON `{"code": "...", "message": "..."}` with a status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer of the simulator (partner or admin API).
///
/// `code` is the stable machine-readable name from the README (`unavailable`,
/// `out_of_stock`, ...); `message` says in words what was wrong. 429 answers carry
/// `Retry-After: 1`. Error answers are never kept for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable error code.
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`: the body or a parameter is malformed; `message` names it.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 `missing_idempotency_key`.
    pub fn missing_idempotency_key() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
            "every partner request needs an Idempotency-Key header",
        )
    }

    /// 401 `unauthorized`: the simulator runs with `--token` and the request did not
    /// carry `Authorization: Bearer <that token>`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong `Authorization: Bearer` token",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 `idempotency_key_reused`: the key was first used with another body.
    pub fn idempotency_key_reused(key: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            format!("Idempotency-Key {key:?} was already used with a different request body"),
        )
    }

    /// 503 `unavailable` (transient).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 429 `throttled` (transient; answered with `Retry-After: 1`).
    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "throttled", message)
    }

    /// 409 `out_of_stock` (permanent).
    pub fn out_of_stock(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "out_of_stock", message)
    }

    /// 402 `declined` (permanent).
    pub fn declined(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "declined", message)
    }

    /// 422 `rejected` (permanent).
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
    }

    /// 409 `order_closed` (permanent): a compensation already closed the order.
    pub fn order_closed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "order_closed", message)
    }

    /// 409 `already_delivered` (permanent).
    pub fn already_delivered(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_delivered", message)
    }

    /// The JSON body `{"code", "message"}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.code, "message": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
