//! The orders API behind API Gateway, an axum [`Router`] served under `lambda_http`:
//!
//! - `POST /orders` with an `Idempotency-Key` header: validates, stores the order ACCEPTED
//!   and starts its execution (named after the order id) → `202`.
//! - `GET /orders/{id}` → the order, its steps with attempts and outcome, and why it failed.
//! - `POST /orders/{id}/cancel` → `202` while the order has not shipped (the running
//!   workflow notices and runs the compensations), `409` once it has.
//!
//! The routes live in `orders.rs`; errors become HTTP in one place, `error.rs`, which the
//! courier's delivery webhook (a function of its own, `functions/courier-webhook`) shares.
//! Nothing is written and no execution starts for an invalid request.

mod caller;
mod error;
mod orders;

pub use caller::{Caller, LOCAL_CALLER_HEADER};
pub use error::{
    error_response, json_response, method_not_allowed, respond, route_not_found, ApiError,
};
pub use order_core::recovery::{Workflow, WorkflowConfig};
pub use orders::{order_view, MAX_IDEMPOTENCY_KEY_CHARS};

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::Router;
use lambda_http::{Body, Request, RequestExt, Response};
use order_core::catalogue::Catalogue;
use order_core::store::OrderStore;
use std::sync::Arc;
use tower::ServiceExt;
use tracing::Instrument;

/// What the API needs, built once at cold start.
#[derive(Debug, Clone)]
pub struct Api {
    pub store: OrderStore,
    /// The order workflow (state machine and execution settings).
    pub workflow: Workflow,
    pub catalogue: Catalogue,
    /// The header the local stack's router passes the caller's principal in, when this
    /// runs on the local stack (`LOCAL_CALLER_HEADER`); never set on AWS, where API
    /// Gateway's IAM authorization reports the caller in the event.
    pub local_caller_header: Option<axum::http::HeaderName>,
}

impl Api {
    /// The local caller header the environment names (`LOCAL_CALLER_HEADER`), if any.
    pub fn local_caller_header_from_env(
    ) -> Result<Option<axum::http::HeaderName>, order_core::config::ConfigError> {
        match std::env::var(LOCAL_CALLER_HEADER) {
            Ok(name) if !name.is_empty() => axum::http::HeaderName::try_from(name.as_str())
                .map(Some)
                .map_err(|_| order_core::config::ConfigError::Invalid {
                    name: LOCAL_CALLER_HEADER,
                    reason: format!("{name:?} is not a header name"),
                }),
            _ => Ok(None),
        }
    }
}

/// The routes. A method a route does not take is `405 method_not_allowed` naming the one
/// it does; any other path is `404 route_not_found`; bodies are not limited here (API
/// Gateway limits them; the order parser refuses what is too big with its own problems).
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route(
            "/orders",
            post(orders::place).fallback(|| async { method_not_allowed("POST") }),
        )
        .route(
            "/orders/{id}",
            get(orders::show).fallback(|| async { method_not_allowed("GET") }),
        )
        .route(
            "/orders/{id}/cancel",
            post(orders::cancel).fallback(|| async { method_not_allowed("POST") }),
        )
        .fallback(|method: Method, uri: Uri| async move { route_not_found(&method, uri.path()) })
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// Answers one HTTP request with `router`. Never fails: every error becomes a JSON
/// response. Every log line inside carries the method, the path and (once known) the
/// order id.
pub async fn serve(router: &Router, request: Request) -> Response<Body> {
    let path = request_path(&request);
    let span = tracing::info_span!("request", order_id = tracing::field::Empty, method = %request.method(), path = %path);
    async move {
        let (mut parts, body) = request.into_parts();
        // Route on the path the caller used: API Gateway's stage is not part of it.
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if let Ok(uri) = format!("{path}{query}").parse::<Uri>() {
            parts.uri = uri;
        }
        let request =
            axum::extract::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
        let response = match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) if text.is_empty() => Body::Empty,
                Ok(text) => Body::Text(text),
                Err(binary) => Body::Binary(binary.into_bytes()),
            },
            Err(error) => {
                let error = ApiError::new(
                    lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the response could not be read: {error}"),
                );
                return respond(Err(error));
            }
        };
        Response::from_parts(parts, body)
    }
    .instrument(span)
    .await
}

/// Answers one HTTP request (the router built for this call; a function builds it once
/// with [`router`] and calls [`serve`]).
pub async fn handle(api: &Api, request: Request) -> Response<Body> {
    serve(&router(Arc::new(api.clone())), request).await
}

/// The path API Gateway (or the function URL) gave the request.
pub fn request_path(request: &Request) -> String {
    match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    }
}
