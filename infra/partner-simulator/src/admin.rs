//! The admin API, for tests, the demo and the chaos run (no token needed):
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | 200 `{"status": "ok"}` |
//! | `POST /admin/faults {"rules": [..]}` | 201 `{"ids": [..]}`; 400 if any rule is invalid (none is added) |
//! | `GET /admin/faults` | 200 `{"seed", "rules": [rule + id, fired, expired]}` |
//! | `DELETE /admin/faults` | 200 `{"removed": n}` |
//! | `DELETE /admin/faults/{id}` | 200 `{"removed": 1}`; 404 for an unknown id |
//! | `PUT /admin/seed {"seed": 7[, "draws": "by_key" \| "by_merchant"]}` | 200 `{"seed": 7, "draws": "by_key"}` (see `faults::Draws`; default `by_key`) |
//! | `POST /admin/deliveries {"order_id"}` | 202 `{"order_id", "shipment_id", "event_id"}`; 404 without a shipment; 409 `shipment_cancelled`, 409 `webhook_not_configured` |
//! | `GET /admin/ledger[?order_id=..][&merchant_id=..]` | 200 the ledger |

use crate::deliveries;
use crate::error::ApiError;
use crate::faults::{Draws, RuleSpec, RuleView};
use crate::ledger::{LedgerFilter, ShipmentStatus};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};

/// The admin routes and `GET /health`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/admin/faults",
            post(add_rules).get(list_rules).delete(remove_all_rules),
        )
        .route("/admin/faults/{id}", delete(remove_rule))
        .route("/admin/seed", put(set_seed))
        .route("/admin/deliveries", post(deliver_now))
        .route("/admin/ledger", get(ledger))
}

/// Parses an admin request body, answering 400 `invalid_request` with serde's message.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid body: {e}")))
}

// --- The wire types, shared with `crate::client` -----------------------------------------

/// `POST /admin/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRules {
    pub rules: Vec<RuleSpec>,
}

/// The answer to `POST /admin/faults`: the new rules' ids, in the order posted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RulesAdded {
    pub ids: Vec<u64>,
}

/// The answer to `GET /admin/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleList {
    pub seed: u64,
    pub rules: Vec<RuleView>,
}

/// The answer to `DELETE /admin/faults` and `DELETE /admin/faults/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RulesRemoved {
    pub removed: u64,
}

/// `PUT /admin/seed`, and its answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub seed: u64,
    #[serde(default)]
    pub draws: Draws,
}

/// `POST /admin/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverNow {
    pub order_id: String,
}

/// The answer to `POST /admin/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRequested {
    pub order_id: String,
    pub shipment_id: String,
    pub event_id: String,
}

// --- The handlers ------------------------------------------------------------------------

async fn add_rules(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let AddRules { rules } = parse(&body)?;
    let ids = state
        .world()
        .faults
        .add(rules, Instant::now())
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    tracing::info!(?ids, "fault rules added");
    Ok((StatusCode::CREATED, Json(RulesAdded { ids })))
}

async fn list_rules(State(state): State<AppState>) -> Json<RuleList> {
    let now = Instant::now();
    let world = state.world();
    let rules = world.faults.rules().iter().map(|r| r.view(now)).collect();
    Json(RuleList {
        seed: world.faults.seed(),
        rules,
    })
}

async fn remove_all_rules(State(state): State<AppState>) -> Json<RulesRemoved> {
    let removed = state.world().faults.clear();
    tracing::info!(removed, "fault rules removed");
    Json(RulesRemoved {
        removed: removed as u64,
    })
}

async fn remove_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RulesRemoved>, ApiError> {
    let no_rule = || ApiError::not_found(format!("no fault rule {id}"));
    let number: u64 = id.parse().map_err(|_| no_rule())?;
    if !state.world().faults.remove(number) {
        return Err(no_rule());
    }
    tracing::info!(id = number, "fault rule removed");
    Ok(Json(RulesRemoved { removed: 1 }))
}

async fn set_seed(State(state): State<AppState>, body: Bytes) -> Result<Json<Seed>, ApiError> {
    let Seed { seed, draws } = parse(&body)?;
    let mut world = state.world();
    world.faults.set_seed(seed);
    world.faults.set_draws(draws);
    tracing::info!(seed, ?draws, "seed set");
    Ok(Json(Seed { seed, draws }))
}

/// Delivers the order's (latest) shipment now, even one held back or already delivered
/// (the same event is sent again), with the usual retries; never a cancelled one.
async fn deliver_now(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let DeliverNow { order_id } = parse(&body)?;
    let (shipment_id, event_id) = {
        let world = state.world();
        let shipment = world
            .ledger
            .shipment_of_order(&order_id)
            .ok_or_else(|| ApiError::not_found(format!("no shipment for order {order_id}")))?;
        if shipment.status == ShipmentStatus::Cancelled {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "shipment_cancelled",
                format!("shipment {} was cancelled", shipment.shipment_id),
            ));
        }
        (shipment.shipment_id.clone(), shipment.event_id.clone())
    };
    if !deliveries::schedule(&state, shipment_id.clone(), Duration::ZERO, true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_not_configured",
            "the simulator runs without --webhook-url, so nothing can be delivered",
        ));
    }
    tracing::info!(%order_id, %shipment_id, "delivery requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryRequested {
            order_id,
            shipment_id,
            event_id,
        }),
    ))
}

async fn ledger(State(state): State<AppState>, Query(filter): Query<LedgerFilter>) -> Response {
    let view = state.world().ledger.view(&filter);
    Json(view).into_response()
}
