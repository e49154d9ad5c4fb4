//! The `/orders` routes: place an order, show it, cancel it.

use crate::caller::{authorise, check_order, check_placement};
use crate::{Api, ApiError, Caller};
use axum::body::Bytes;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use order_core::callers::Permission;
use order_core::store::{Cancellation, OrderRecord, Placement, StepRecord};
use order_core::view::{Audience, OrderView};
use order_core::{Order, OrderId};
use serde_json::json;
use std::sync::Arc;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
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

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
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

/// `POST /orders` with an `Idempotency-Key`: the caller must be permitted to place orders
/// for the order's merchant (403 otherwise); validates, stores the order ACCEPTED under the
/// caller's key and starts its execution (named after the order id) → `202`.
pub(crate) async fn place(
    State(api): State<Arc<Api>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (principal, scope) = authorise(&api.store, &caller, Permission::Place).await?;
    check_content_type(&headers)?;
    let key = idempotency_key(&headers)?;
    let order = Order::parse_json(&body, &api.catalogue).map_err(|problems| ApiError {
        problems: problems.0,
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the order has problems; each is listed with its field path",
        )
    })?;
    check_placement(&scope, &order.merchant_id)?;
    // The hash of the parsed order: the same order sent with other formatting is a replay.
    let hash = order_core::store::request_hash(&order.to_json());
    let placed = api
        .store
        .place_order(&principal, &key, &order, &hash)
        .await?;
    let (record, replayed) = match placed {
        Placement::Created(record) => (record, false),
        Placement::Replayed(record) => (record, true),
        Placement::KeyReused { order_id } => {
            tracing::info!(earlier_order = %order_id, "idempotency key reused with another body");
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "Idempotency-Key {key:?} was used before with a different body; use a new key for a new order"
                ),
            ));
        }
    };
    tracing::Span::current().record("order_id", record.order_id.as_str());
    tracing::info!(
        replayed,
        kind = record.order.kind.as_str(),
        "order accepted"
    );

    // Its `Order Accepted` was written with it, to the outbox, ahead of any later event.
    // A new order, or the replay of one whose workflow could not be started (moved on,
    // e.g. cancelled, or driven by another execution: nothing to start). The execution
    // ARN names our account: it stays in the order item for operators.
    start_execution(&api, &record).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"order_id": record.order_id, "status": record.status})),
    )
        .into_response();
    // Relative to the request's URL (`…/orders`), so it keeps whatever stands before the
    // route: API Gateway's stage (`/v1`), the local function URL's prefix.
    if let Ok(location) = header::HeaderValue::from_str(&format!("orders/{}", record.order_id)) {
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

/// Starts the order's workflow (`order_core::recovery::start_placed`): its execution,
/// named after the order id, is recorded as the order's owner first, then started; a
/// retry after a failed start starts it again, and one that finds the order driven by
/// another execution starts nothing.
async fn start_execution(api: &Api, record: &OrderRecord) -> Result<(), ApiError> {
    let id = &record.order_id;
    match order_core::recovery::start_placed(&api.store, &api.workflow, record).await {
        Ok(Some(arn)) => {
            tracing::info!(execution_arn = %arn, "execution started");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(order_core::recovery::RecoveryError::Store(error)) => Err(error.into()),
        Err(error) => {
            tracing::error!(%error, "could not start the execution");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "workflow_unavailable",
                format!(
                    "order {id} is stored but its workflow could not be started; retry with the same Idempotency-Key"
                ),
            ))
        }
    }
}

/// The order a route's `{id}` names (404 when it is no order id), recorded on the
/// request's log lines.
fn order_id(params: Result<RawPathParams, RawPathParamsRejection>) -> Result<OrderId, ApiError> {
    let params = params.map_err(|rejection| ApiError::order_not_found(&rejection.body_text()))?;
    let raw = params
        .iter()
        .next()
        .map(|(_, value)| value)
        .unwrap_or_default();
    let id = OrderId::parse(raw).ok_or_else(|| ApiError::order_not_found(raw))?;
    tracing::Span::current().record("order_id", id.as_str());
    Ok(id)
}

/// `GET /orders/{id}` → the order, its steps with attempts and outcome, and why it failed;
/// `404` for an order of a merchant outside the caller's scope, as for no order at all.
pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Response, ApiError> {
    let id = order_id(params)?;
    // The scope and the order are read at once: the check costs no extra wait.
    let (allowed, found) = tokio::join!(
        authorise(&api.store, &caller, Permission::Read),
        api.store.get_order_with_steps(&id)
    );
    let (_, scope) = allowed?;
    let (order, steps) = found?.ok_or_else(|| ApiError::order_not_found(id.as_str()))?;
    check_order(
        &scope,
        Permission::Read,
        &order.order.merchant_id,
        id.as_str(),
    )?;
    Ok(Json(order_view(&order, &steps)).into_response())
}

/// `POST /orders/{id}/cancel` → `202` while the order has not shipped (the running
/// workflow notices and runs the compensations, see `order_core::recovery::cancel`),
/// `409` once it has; `404` for an order of a merchant outside the caller's scope.
/// The scope is checked on the order as read before the cancel: an order's merchant never
/// changes, so only a scope removed in between could differ, and that change is
/// linearised at the read.
pub(crate) async fn cancel(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Response, ApiError> {
    let id = order_id(params)?;
    let (allowed, found) = tokio::join!(
        authorise(&api.store, &caller, Permission::Cancel),
        api.store.get_order(&id)
    );
    let (_, scope) = allowed?;
    let order = found?.ok_or_else(|| ApiError::order_not_found(id.as_str()))?;
    check_order(
        &scope,
        Permission::Cancel,
        &order.order.merchant_id,
        id.as_str(),
    )?;
    let record = match order_core::recovery::cancel(&api.store, &id).await? {
        Cancellation::Started(record) | Cancellation::AlreadyCancelling(record) => record,
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
    // Cancelled at once, its workflow not started: its `Order Cancelled` was written with
    // the change, to the outbox.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"order_id": record.order_id, "status": record.status})),
    )
        .into_response())
}

/// How an order is shown to a caller: [`OrderView`] for [`Audience::Caller`].
pub fn order_view(order: &OrderRecord, steps: &[StepRecord]) -> OrderView {
    OrderView::of(order, steps, Audience::Caller)
}
