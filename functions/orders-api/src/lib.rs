//! The orders API behind API Gateway:
//!
//! - `POST /orders` with an `Idempotency-Key` header: validates, stores the order ACCEPTED
//!   and starts its execution (named after the order id) → `202`.
//! - `GET /orders/{id}` → the order, its steps with attempts and outcome, and why it failed.
//! - `POST /orders/{id}/cancel` → `202` while the order has not shipped (the running
//!   workflow notices and runs the compensations), `409` once it has.
//!
//! The courier's delivery webhook is a function of its own (`functions/courier-webhook`),
//! which shares this module's error responses.
//!
//! This is the only place where errors become HTTP status codes. Every error is JSON with
//! a stable `code` and a human `message`; invalid requests also list every `problem` with
//! its field path. Nothing is written and no execution starts for an invalid request.

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use order_core::catalogue::Catalogue;
use order_core::store::{Cancellation, OrderRecord, OrderStore, Placement, StepRecord, StoreError};
use order_core::validation::Problem;
use order_core::view::{Audience, OrderView};
use order_core::{Order, OrderId, OrderStatus};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// What the API needs, built once at cold start.
pub struct Api {
    pub store: OrderStore,
    /// The order workflow (state machine and execution settings).
    pub workflow: Workflow,
    pub catalogue: Catalogue,
}

pub use order_core::recovery::{Workflow, WorkflowConfig};

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

/// Answers one HTTP request. Never fails: every error becomes a JSON response.
pub async fn handle(api: &Api, request: Request) -> Response<Body> {
    let path = request_path(&request);
    let span = tracing::info_span!("request", order_id = tracing::field::Empty, method = %request.method(), path = %path);
    route(api, &request, &path).instrument(span).await
}

async fn route(api: &Api, request: &Request, path: &str) -> Response<Body> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (segments.as_slice(), request.method()) {
        (["orders"], &Method::POST) => place_order(api, request).await,
        (["orders", id], &Method::GET) => get_order(api, id).await,
        (["orders", id, "cancel"], &Method::POST) => cancel_order(api, id).await,
        (["orders"], _) => Err(method_not_allowed("POST")),
        (["orders", _], _) => Err(method_not_allowed("GET")),
        (["orders", _, "cancel"], _) => Err(method_not_allowed("POST")),
        _ => Err(route_not_found(request.method(), path)),
    };
    respond(result)
}

/// The path API Gateway (or the function URL) gave the request.
pub fn request_path(request: &Request) -> String {
    match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
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

/// The answer to a handler's result: an error is logged (at error for a 5xx, at info for
/// a refusal) and becomes its JSON body.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    match result {
        Ok(response) => response,
        Err(error) => {
            if error.status.is_server_error() {
                tracing::error!(code = error.code, message = %error.message, "request failed");
            } else {
                tracing::info!(
                    code = error.code,
                    status = error.status.as_u16(),
                    "request refused"
                );
            }
            error_response(&error)
        }
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

/// The JSON body of an error: `{code, message, problems?}`.
pub fn error_response(error: &ApiError) -> Response<Body> {
    let mut body = json!({"code": error.code, "message": error.message});
    if !error.problems.is_empty() {
        body["problems"] = json!(error.problems);
    }
    json_response(error.status, &body)
}

fn idempotency_key(request: &Request) -> Result<String, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
            "POST /orders needs an Idempotency-Key header; send the same key to retry safely",
        ));
    };
    let key = value.to_str().unwrap_or_default().trim();
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS || !printable {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(key.to_owned())
}

fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the order as application/json, not {media_type:?}"),
        ))
    }
}

async fn place_order(api: &Api, request: &Request) -> Result<Response<Body>, ApiError> {
    check_content_type(request)?;
    let key = idempotency_key(request)?;
    let order = Order::parse_json(request.body().as_ref(), &api.catalogue).map_err(|problems| {
        ApiError {
            problems: problems.0,
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the order has problems; each is listed with its field path",
            )
        }
    })?;
    // The hash of the parsed order: the same order sent with other formatting is a replay.
    let hash = order_core::store::request_hash(&order.to_json());
    let (record, replayed) = match api.store.place_order(&key, &order, &hash).await? {
        Placement::Created(record) => (record, false),
        Placement::Replayed(record) => (record, true),
        Placement::KeyReused { order_id } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "Idempotency-Key {key:?} already placed order {order_id} with a different body; use a new key for a new order"
                ),
            ))
        }
    };
    tracing::Span::current().record("order_id", record.order_id.as_str());
    tracing::info!(
        replayed,
        kind = record.order.kind.as_str(),
        "order accepted"
    );

    // A new order, or the replay of one whose workflow could not be started. (Moved on
    // without a recorded execution, e.g. cancelled: nothing to start.) The execution ARN
    // names our account: it stays in the order item for operators.
    if record.execution_arn.is_none() && record.status == OrderStatus::Accepted {
        start_execution(api, &record.order_id).await?;
    }
    let mut response = json_response(
        StatusCode::ACCEPTED,
        &json!({"order_id": record.order_id, "status": record.status}),
    );
    if let Ok(location) = header::HeaderValue::from_str(&format!("/orders/{}", record.order_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// Starts the order's execution, named after the order id so Step Functions itself
/// refuses a second one, and records its ARN on the order.
async fn start_execution(api: &Api, id: &OrderId) -> Result<(), ApiError> {
    let arn = match api.workflow.start(id, id.as_str()).await {
        Ok(arn) => arn,
        Err(error) => {
            tracing::error!(%error, "could not start the execution");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "workflow_unavailable",
                format!(
                    "order {id} is stored but its workflow could not be started; retry with the same Idempotency-Key"
                ),
            ));
        }
    };
    api.store.set_execution_arn(id, &arn).await?;
    tracing::info!(execution_arn = %arn, "execution started");
    Ok(())
}

async fn get_order(api: &Api, raw_id: &str) -> Result<Response<Body>, ApiError> {
    let id = OrderId::parse(raw_id).ok_or_else(|| ApiError::order_not_found(raw_id))?;
    tracing::Span::current().record("order_id", id.as_str());
    let (order, steps) = api
        .store
        .get_order_with_steps(&id)
        .await?
        .ok_or_else(|| ApiError::order_not_found(raw_id))?;
    Ok(json_response(StatusCode::OK, &order_view(&order, &steps)))
}

/// Cancels an order that has not shipped (see `order_core::recovery::cancel`).
async fn cancel_order(api: &Api, raw_id: &str) -> Result<Response<Body>, ApiError> {
    let id = OrderId::parse(raw_id).ok_or_else(|| ApiError::order_not_found(raw_id))?;
    tracing::Span::current().record("order_id", id.as_str());
    let record = match order_core::recovery::cancel(&api.store, &id).await? {
        Cancellation::Started(record) => record,
        Cancellation::AlreadyCancelling(record) => record,
        Cancellation::TooLate(record) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "order_not_cancellable",
                format!(
                    "order {id} is {} and can no longer be cancelled (orders can be cancelled until they ship)",
                    record.status
                ),
            ))
        }
    };
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"order_id": record.order_id, "status": record.status}),
    ))
}

/// How an order is shown to a caller: [`OrderView`] for [`Audience::Caller`].
pub fn order_view(order: &OrderRecord, steps: &[StepRecord]) -> OrderView {
    OrderView::of(order, steps, Audience::Caller)
}

#[cfg(test)]
mod tests {
    use super::*;

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
