//! `POST /webhooks/courier`: the courier's delivery events. A function of its own, with a
//! reserved concurrency of its own, so a flood of webhook calls can neither exhaust the
//! account's Lambda concurrency the workflow needs nor slow down the orders API.
//!
//! Checks, cheapest first, each answered with a stable code and nothing written:
//!
//! 1. the body is at most [`MAX_EVENT_BYTES`] (413 `payload_too_large`), before any HMAC
//!    is computed;
//! 2. `X-Courier-Signature: t=<unix>,v1=<hex>` is present and well formed (401
//!    `invalid_signature`), its timestamp within 5 minutes of now (401
//!    `stale_signature`), and it signs the body with the current or the previous secret
//!    (401 `invalid_signature`);
//! 3. the body is a courier event (400 `invalid_event`) for a known order (404);
//! 4. the event's `shipment_id` is the shipment ArrangeShipment booked (422
//!    `shipment_mismatch`) and the order has shipped (409 `order_not_shipped`: the courier
//!    tries again later).
//!
//! A delivery is recorded and the waiting execution resumed; the same event again
//! (`event_id`) answers 200 with `duplicate: true` and changes nothing.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use order_core::delivery::{self, CourierEvent, DeliveryError, Signature, SignatureError};
use order_core::secrets::RotatingSecret;
use order_core::store::OrderStore;
use order_core::OrderId;
use orders_api::{json_response, ApiError};
use serde_json::json;
use tracing::Instrument;

/// The environment variable naming the Secrets Manager secret the courier signs with.
pub const SECRET_VARIABLE: &str = "COURIER_WEBHOOK_SECRET_ID";
/// The largest event accepted, checked before the signature is computed.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// The route, as API Gateway passes it.
pub const PATH: &str = "/webhooks/courier";

/// What the webhook needs, built once at cold start.
pub struct Webhook {
    pub store: OrderStore,
    pub workflow: aws_sdk_sfn::Client,
    /// The courier's signing secret, current and previous.
    pub secret: RotatingSecret,
}

/// Answers one HTTP request. Never fails: every error becomes a JSON response.
pub async fn handle(hook: &Webhook, request: Request) -> Response<Body> {
    let path = orders_api::request_path(&request);
    let span = tracing::info_span!("webhook", order_id = tracing::field::Empty, method = %request.method(), path = %path);
    async {
        let result = match (path.trim_end_matches('/'), request.method()) {
            (PATH, &Method::POST) => receive(hook, &request, chrono::Utc::now().timestamp()).await,
            (PATH, _) => Err(orders_api::method_not_allowed("POST")),
            _ => Err(orders_api::route_not_found(request.method(), &path)),
        };
        orders_api::respond(result)
    }
    .instrument(span)
    .await
}

fn unauthorized(error: SignatureError) -> ApiError {
    let code = match error {
        SignatureError::Stale { .. } => "stale_signature",
        _ => "invalid_signature",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, error.to_string())
}

/// Checks and records one event; `now` is the current unix time in seconds.
pub async fn receive(
    hook: &Webhook,
    request: &Request,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let body = request.body().as_ref();
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the event is {} bytes; at most {MAX_EVENT_BYTES} are accepted",
                body.len()
            ),
        ));
    }
    let header = match request.headers().get(delivery::SIGNATURE_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| unauthorized(SignatureError::Malformed))?,
        ),
    };
    let signature = Signature::parse(header).map_err(unauthorized)?;
    signature.check_fresh(now).map_err(unauthorized)?;
    if !hook
        .secret
        .any(|secret| signature.signs(secret, body))
        .await
    {
        return Err(unauthorized(SignatureError::Mismatch));
    }
    let event: CourierEvent = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            format!("the event is not a courier event: {e}"),
        )
    })?;
    event.check().map_err(|problem| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            format!("the event is not a courier event: {problem}"),
        )
    })?;
    let id = OrderId::parse(&event.order_id)
        .ok_or_else(|| ApiError::order_not_found(&event.order_id))?;
    tracing::Span::current().record("order_id", id.as_str());
    if event.kind != delivery::DELIVERED {
        tracing::info!(event = %event.kind, event_id = %event.event_id, "courier event ignored");
        return Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({"order_id": id, "ignored": event.kind}),
        ));
    }
    let delivered = delivery::deliver(&hook.store, &hook.workflow, &id, &event)
        .await
        .map_err(|error| match error {
            DeliveryError::WrongShipment { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "shipment_mismatch",
                format!("{error}; nothing was recorded"),
            ),
            DeliveryError::NotShipped { .. } => {
                ApiError::new(StatusCode::CONFLICT, "order_not_shipped", error.to_string())
            }
            DeliveryError::Store(error) => error.into(),
            DeliveryError::NotResumed { ref message, .. } => {
                tracing::error!(%message, "could not resume the execution");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "workflow_unavailable",
                    format!("the delivery of order {id} is recorded but its workflow could not be resumed; send the event again"),
                )
            }
        })?;
    let (order, duplicate) = (delivered.order, delivered.duplicate);
    // Its `Order Delivered` was written with the delivery, to the outbox.
    Ok(json_response(
        StatusCode::OK,
        &json!({"order_id": id, "status": order.status, "duplicate": duplicate}),
    ))
}
