//! The partner API: eleven `POST` endpoints under `/warehouse`, `/payments`,
//! `/terminals`, `/courier` and `/notifications`.
//!
//! Every request goes through the same steps, in this order:
//!
//! 1. `Authorization: Bearer <token>` if the simulator runs with `--token` or a
//!    `--partner-token` for the operation's partner (401);
//! 2. an `Idempotency-Key` header (400 `missing_idempotency_key`);
//! 3. a JSON object body naming `order_id` and `merchant_id`, plus the operation's own
//!    fields (400 `invalid_request` naming what is wrong);
//! 4. the key: a kept answer for the same body is replayed with `Idempotent-Replayed:
//!    true` and nothing is done (no fault applies to a replay); a kept answer for another
//!    body gives 422 `idempotency_key_reused`;
//! 5. the fault rules: `unavailable`, `throttled` and `refuse` answer at once and do
//!    nothing; `slow` lets the request go on;
//! 6. the operation on the ledger; a success is kept for the key, an error is not;
//! 7. for a new shipment: unless a `hold` rule fires, its delivery is scheduled;
//! 8. for `slow`: the answer is held back `delay_ms` (it is already kept, so a retry
//!    with the same key is answered at once).
//!
//! One JSON log line per request records partner, operation, order, status, replay and
//! fault.

use crate::deliveries;
use crate::error::ApiError;
use crate::faults::{Fault, Query};
use crate::idempotency::{Fingerprint, Kept, Lookup};
use crate::ledger::{Line, Refusal};
use crate::operation::Operation;
use crate::{AppState, World};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// The header naming the idempotency key of a partner request.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The header set (to `true`) on an answer replayed from a kept answer.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The routes of the eleven partner operations.
pub fn routes() -> Router<AppState> {
    Operation::ALL
        .into_iter()
        .fold(Router::new(), |router, operation| match operation.path() {
            Some(path) => router.route(
                path,
                post(
                    move |State(state): State<AppState>, headers: HeaderMap, body: Bytes| {
                        handle(state, operation, headers, body)
                    },
                ),
            ),
            None => router,
        })
}

/// What happened to one request besides its answer: for the log line and for what
/// `handle` does after the lock is released.
#[derive(Default)]
struct Outcome {
    /// Empty if the request did not get as far as naming one.
    order_id: String,
    replayed: bool,
    /// The fault injected into this request, if any (`hold` is about the delivery).
    fault: Option<Fault>,
    /// For `slow`: how long to hold the answer back.
    delay: Option<Duration>,
    /// A new shipment to deliver (not held).
    deliver: Option<String>,
}

/// A success answer.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn new(status: StatusCode, body: Value) -> Self {
        Answer { status, body }
    }
}

async fn handle(
    state: AppState,
    operation: Operation,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (answer, outcome) = process(&state, operation, &headers, &body);
    if let Some(shipment_id) = &outcome.deliver {
        let delay = state.config().delivery_delay;
        deliveries::schedule(&state, shipment_id.clone(), delay, false);
    }
    if let Some(delay) = outcome.delay {
        tokio::time::sleep(delay).await;
    }
    let response = match answer {
        Ok(answer) => {
            let mut response = (answer.status, Json(answer.body)).into_response();
            if outcome.replayed {
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            }
            response
        }
        Err(error) => error.into_response(),
    };
    tracing::info!(
        partner = %operation.partner(),
        operation = %operation,
        order_id = %outcome.order_id,
        status = response.status().as_u16(),
        replayed = outcome.replayed,
        fault = outcome.fault.map_or("none", Fault::as_str),
        "partner request"
    );
    response
}

/// Steps 1 to 7 (see the module documentation); 4 to 7 atomically under the lock.
fn process(
    state: &AppState,
    operation: Operation,
    headers: &HeaderMap,
    body: &[u8],
) -> (Result<Answer, ApiError>, Outcome) {
    let mut outcome = Outcome::default();
    let request = authorize(state, operation, headers)
        .and_then(|()| Request::parse(operation, headers, body));
    let mut world = state.world();
    let answer = request.and_then(|request| {
        outcome.order_id = request.order_id.clone();
        execute(&mut world, &request, Instant::now(), &mut outcome)
    });
    world.ledger.count_request(outcome.replayed);
    (answer, outcome)
}

fn authorize(state: &AppState, operation: Operation, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = state.config();
    let Some(token) = config
        .partner_tokens
        .get(&operation.partner())
        .or(config.token.as_ref())
    else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented == Some(token.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// A valid partner request.
struct Request {
    operation: Operation,
    key: String,
    fingerprint: Fingerprint,
    order_id: String,
    merchant_id: String,
    body: Body,
}

/// The operation's own fields (besides `order_id` and `merchant_id`).
enum Body {
    Reserve { lines: Vec<Line> },
    Release,
    Charge { amount_cents: u64, currency: String },
    Refund,
    Provision { lines: Vec<Line> },
    Deprovision,
    Deactivate { serials: Vec<String> },
    Ship { parcels: u32 },
    Cancel,
    ReturnLabel { serials: Vec<String> },
    Send { template: String },
}

#[derive(Deserialize)]
struct LinesBody {
    lines: Vec<Line>,
}

#[derive(Deserialize)]
struct ChargeBody {
    amount_cents: u64,
    currency: String,
}

#[derive(Deserialize)]
struct SerialsBody {
    serials: Vec<String>,
}

// `address` must be an object and `data` may be anything; neither is recorded.

#[derive(Deserialize)]
struct ShipBody {
    #[serde(rename = "address")]
    _address: Map<String, Value>,
    parcels: u32,
}

#[derive(Deserialize)]
struct ReturnLabelBody {
    serials: Vec<String>,
    #[serde(rename = "address")]
    _address: Map<String, Value>,
}

#[derive(Deserialize)]
struct SendBody {
    template: String,
    #[serde(default, rename = "data")]
    _data: Value,
}

impl Request {
    /// Steps 2 and 3: the key and the body, or what is wrong with them.
    fn parse(operation: Operation, headers: &HeaderMap, raw: &[u8]) -> Result<Self, ApiError> {
        let key = match headers.get(&IDEMPOTENCY_KEY).map(HeaderValue::to_str) {
            None => return Err(ApiError::missing_idempotency_key()),
            Some(Ok(key)) if key.trim().is_empty() => {
                return Err(ApiError::missing_idempotency_key())
            }
            Some(Ok(key)) => key.to_owned(),
            Some(Err(_)) => {
                return Err(ApiError::invalid_request(
                    "Idempotency-Key must be visible ASCII",
                ))
            }
        };
        let value: Value = serde_json::from_slice(raw)
            .map_err(|e| ApiError::invalid_request(format!("malformed JSON body: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(ApiError::invalid_request("the body must be a JSON object"));
        };
        let order_id = required_string(object, "order_id")?;
        let merchant_id = required_string(object, "merchant_id")?;
        let body = match operation {
            Operation::Reserve => Body::Reserve {
                lines: lines(fields::<LinesBody>(operation, &value)?.lines)?,
            },
            Operation::Release => Body::Release,
            Operation::Charge => {
                let charge = fields::<ChargeBody>(operation, &value)?;
                if charge.amount_cents == 0 {
                    return Err(ApiError::invalid_request("amount_cents must be at least 1"));
                }
                if charge.currency.trim().is_empty() {
                    return Err(ApiError::invalid_request("currency must not be empty"));
                }
                Body::Charge {
                    amount_cents: charge.amount_cents,
                    currency: charge.currency,
                }
            }
            Operation::Refund => Body::Refund,
            Operation::Provision => Body::Provision {
                lines: lines(fields::<LinesBody>(operation, &value)?.lines)?,
            },
            Operation::Deprovision => Body::Deprovision,
            Operation::Deactivate => Body::Deactivate {
                serials: fields::<SerialsBody>(operation, &value)?.serials,
            },
            Operation::Ship => {
                let ship = fields::<ShipBody>(operation, &value)?;
                if ship.parcels == 0 {
                    return Err(ApiError::invalid_request("parcels must be at least 1"));
                }
                Body::Ship {
                    parcels: ship.parcels,
                }
            }
            Operation::Cancel => Body::Cancel,
            Operation::ReturnLabel => {
                let label = fields::<ReturnLabelBody>(operation, &value)?;
                Body::ReturnLabel {
                    serials: label.serials,
                }
            }
            Operation::Send => {
                let send = fields::<SendBody>(operation, &value)?;
                if send.template.trim().is_empty() {
                    return Err(ApiError::invalid_request("template must not be empty"));
                }
                Body::Send {
                    template: send.template,
                }
            }
            Operation::Deliver => {
                return Err(ApiError::not_found("deliver is not a partner request"))
            }
        };
        Ok(Request {
            operation,
            key,
            fingerprint: Fingerprint::of(operation, &value),
            order_id,
            merchant_id,
            body,
        })
    }

    /// The SKUs its lines name (for rules with a `sku`).
    fn skus(&self) -> Vec<String> {
        match &self.body {
            Body::Reserve { lines } | Body::Provision { lines } => {
                lines.iter().map(|l| l.sku.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
}

fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid_request(format!("{field} is missing"))),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid_request(format!(
            "{field} must be a non-empty string"
        ))),
    }
}

/// The operation's fields from the body; serde's message names the field at fault.
fn fields<T: DeserializeOwned>(operation: Operation, value: &Value) -> Result<T, ApiError> {
    T::deserialize(value)
        .map_err(|e| ApiError::invalid_request(format!("invalid {operation} request: {e}")))
}

fn lines(lines: Vec<Line>) -> Result<Vec<Line>, ApiError> {
    if lines.is_empty() {
        return Err(ApiError::invalid_request("lines must not be empty"));
    }
    for (i, line) in lines.iter().enumerate() {
        if line.sku.trim().is_empty() {
            return Err(ApiError::invalid_request(format!(
                "lines[{i}].sku must not be empty"
            )));
        }
        if line.quantity == 0 {
            return Err(ApiError::invalid_request(format!(
                "lines[{i}].quantity must be at least 1"
            )));
        }
    }
    Ok(lines)
}

/// Steps 4 to 7 for a valid request.
fn execute(
    world: &mut World,
    request: &Request,
    now: Instant,
    outcome: &mut Outcome,
) -> Result<Answer, ApiError> {
    let partner = request.operation.partner();
    let attempt = match world
        .idempotency
        .begin(partner, &request.key, request.fingerprint)
    {
        Lookup::Replay(kept) => {
            outcome.replayed = true;
            return Ok(Answer::new(kept.status, kept.body));
        }
        Lookup::Reused => return Err(ApiError::idempotency_key_reused(&request.key)),
        Lookup::Fresh { attempt } => attempt,
    };
    let skus = request.skus();
    let query = Query {
        operation: request.operation,
        order_id: &request.order_id,
        merchant_id: &request.merchant_id,
        skus: &skus,
        key: &request.key,
        attempt,
    };
    if let Some(decision) = world.faults.decide(&query, now) {
        world.ledger.count_fault(decision.fault);
        outcome.fault = Some(decision.fault);
        let by_rule = format!("injected by fault rule {}", decision.rule_id);
        match decision.fault {
            Fault::Unavailable => return Err(ApiError::unavailable(by_rule)),
            Fault::Throttled => return Err(ApiError::throttled(by_rule)),
            Fault::Refuse => return Err(refusal(request.operation, &by_rule)),
            Fault::Slow => outcome.delay = Some(decision.delay),
            // Rules with `hold` never match a request (only `deliver`), see `faults`.
            Fault::Hold => {}
        }
    }
    let performed = perform(world, request).map_err(refused)?;
    if let Some(shipment_id) = &performed.shipment_id {
        let deliver = Query {
            operation: Operation::Deliver,
            ..query
        };
        match world.faults.decide(&deliver, now) {
            Some(held) => {
                world.ledger.count_fault(held.fault);
                tracing::info!(
                    shipment_id = %shipment_id,
                    rule = held.rule_id,
                    "delivery held by fault rule"
                );
            }
            None => outcome.deliver = Some(shipment_id.clone()),
        }
    }
    let answer = performed.answer;
    world.idempotency.keep(
        partner,
        &request.key,
        request.fingerprint,
        Kept {
            status: answer.status,
            body: answer.body.clone(),
        },
    );
    Ok(answer)
}

/// The permanent refusal a `refuse` fault gives for the operation.
fn refusal(operation: Operation, message: &str) -> ApiError {
    match operation {
        Operation::Reserve => ApiError::out_of_stock(message),
        Operation::Charge => ApiError::declined(message),
        _ => ApiError::rejected(message),
    }
}

fn refused(refusal: Refusal) -> ApiError {
    let message = refusal.to_string();
    match refusal {
        Refusal::OutOfStock { .. } => ApiError::out_of_stock(message),
        Refusal::OrderClosed { .. } => ApiError::order_closed(message),
        Refusal::AlreadyDelivered { .. } => ApiError::already_delivered(message),
        Refusal::DeliveryInFlight { .. } => ApiError::unavailable(message),
    }
}

/// An operation's answer, and the shipment it created, if any.
struct Performed {
    answer: Answer,
    shipment_id: Option<String>,
}

impl From<Answer> for Performed {
    fn from(answer: Answer) -> Self {
        Performed {
            answer,
            shipment_id: None,
        }
    }
}

/// Step 6: the operation itself.
fn perform(world: &mut World, request: &Request) -> Result<Performed, Refusal> {
    let ledger = &mut world.ledger;
    let (order_id, merchant_id) = (request.order_id.as_str(), request.merchant_id.as_str());
    let answer = match &request.body {
        Body::Reserve { lines } => {
            let reservation = ledger.reserve(order_id, merchant_id, lines)?;
            Answer::new(
                StatusCode::CREATED,
                json!({
                    "reservation_id": reservation.reservation_id,
                    "order_id": order_id,
                    "lines": reservation.lines,
                }),
            )
        }
        Body::Release => {
            let released = ledger.release(order_id, merchant_id);
            Answer::new(
                StatusCode::OK,
                json!({
                    "order_id": order_id,
                    "released": released.is_some(),
                    "reservation_id": released,
                }),
            )
        }
        Body::Charge {
            amount_cents,
            currency,
        } => {
            let charge = ledger.charge(order_id, merchant_id, *amount_cents, currency)?;
            Answer::new(
                StatusCode::CREATED,
                json!({
                    "charge_id": charge.charge_id,
                    "order_id": order_id,
                    "amount_cents": charge.amount_cents,
                    "currency": charge.currency,
                }),
            )
        }
        Body::Refund => {
            let refund = ledger.refund(order_id, merchant_id);
            Answer::new(
                StatusCode::OK,
                json!({
                    "order_id": order_id,
                    "refunded": refund.refund_id.is_some(),
                    "refund_id": refund.refund_id,
                    "amount_cents": refund.amount_cents,
                }),
            )
        }
        Body::Provision { lines } => {
            let terminal_ids = ledger.provision(order_id, merchant_id, lines)?;
            Answer::new(
                StatusCode::CREATED,
                json!({ "order_id": order_id, "terminal_ids": terminal_ids }),
            )
        }
        Body::Deprovision => {
            let deprovisioned = ledger.deprovision(order_id, merchant_id);
            Answer::new(
                StatusCode::OK,
                json!({ "order_id": order_id, "deprovisioned": deprovisioned }),
            )
        }
        Body::Deactivate { serials } => {
            ledger.deactivate(order_id, merchant_id, serials);
            Answer::new(
                StatusCode::OK,
                json!({ "order_id": order_id, "deactivated": serials }),
            )
        }
        Body::Ship { parcels } => {
            let shipment = ledger.ship(order_id, merchant_id, *parcels)?;
            return Ok(Performed {
                answer: Answer::new(
                    StatusCode::CREATED,
                    json!({
                        "shipment_id": shipment.shipment_id,
                        "tracking_number": shipment.tracking_number,
                        "order_id": order_id,
                    }),
                ),
                shipment_id: Some(shipment.shipment_id),
            });
        }
        Body::Cancel => {
            let cancelled = ledger.cancel(order_id, merchant_id)?;
            Answer::new(
                StatusCode::OK,
                json!({
                    "order_id": order_id,
                    "cancelled": cancelled.is_some(),
                    "shipment_id": cancelled,
                }),
            )
        }
        Body::ReturnLabel { serials } => {
            let label = ledger.return_label(order_id, merchant_id, serials);
            Answer::new(
                StatusCode::CREATED,
                json!({
                    "return_label_id": label.return_label_id,
                    "label_url": format!("https://courier.example/labels/{}.pdf", label.return_label_id),
                    "order_id": order_id,
                }),
            )
        }
        Body::Send { template } => {
            let message_id = ledger.message(order_id, merchant_id, template);
            Answer::new(
                StatusCode::ACCEPTED,
                json!({ "message_id": message_id, "order_id": order_id }),
            )
        }
    };
    Ok(answer.into())
}
