//! The delivery hand-over, both halves: the courier's delivery events (how they are
//! authenticated, [`deliver`] for the webhook function) and the execution waiting in
//! AwaitDelivery ([`await_delivery`] for that step's function), which Step Functions
//! `SendTaskSuccess` with the stored task token joins.
//!
//! The two halves can arrive in either order. Both write the order conditionally, so
//! exactly one of them sees both the token and the delivery, and that one resumes the
//! execution.
//!
//! The courier signs each delivery attempt as the well-known webhook providers do: the
//! header `X-Courier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
//! with a shared secret. The timestamp is inside the signature, so a captured request
//! cannot be re-sent with a new one; a signature more than [`TOLERANCE`] away from now is
//! refused, so it cannot be re-sent later either. During a rotation the header may carry
//! several `v1=` values; one that verifies is enough.

use crate::activity::{self, ActivityOutput, Opened};
use crate::store::{
    Delivery, DeliveryRecorded, Ledger, OrderRecord, StoreError, TaskToken, TokenStored,
};
use crate::{ActivityError, ErrorName, OrderId, OrderStatus};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header that carries the signature: `t=<unix seconds>,v1=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-courier-signature";
/// The only event type that moves an order; others are acknowledged and ignored.
pub const DELIVERED: &str = "shipment.delivered";
/// How far a signature's timestamp may be from now, either way, in seconds.
pub const TOLERANCE: i64 = 5 * 60;
/// The most `v1` signatures one header may carry (each costs an HMAC over the body): a
/// rotation needs two, the current and the next secret's.
pub const MAX_SIGNATURES: usize = 3;

/// A courier webhook event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourierEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub order_id: String,
    pub shipment_id: String,
    #[serde(default)]
    pub tracking_number: Option<String>,
    pub occurred_at: String,
}

/// The longest `event_id` and `shipment_id` accepted (they become parts of item keys).
pub const MAX_ID_CHARS: usize = 128;

impl CourierEvent {
    /// Refuses an event whose ids could not be stored as they are: each of `event_id` and
    /// `shipment_id` is 1 to [`MAX_ID_CHARS`] printable ASCII characters without spaces,
    /// `occurred_at` at most 64 characters. The message names the field.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("event_id", &self.event_id),
            ("shipment_id", &self.shipment_id),
        ] {
            let printable = value.bytes().all(|b| b.is_ascii_graphic());
            if value.is_empty() || value.len() > MAX_ID_CHARS || !printable {
                return Err(format!(
                    "{field} must be 1 to {MAX_ID_CHARS} printable ASCII characters without spaces"
                ));
            }
        }
        if self.occurred_at.chars().count() > 64 {
            return Err("occurred_at must be at most 64 characters".to_owned());
        }
        Ok(())
    }

    /// The delivery this event reports.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            event_id: self.event_id.clone(),
            shipment_id: self.shipment_id.clone(),
            delivered_at: self.occurred_at.clone(),
        }
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(signature))
}

/// Why a signature header is refused. The messages are for the courier: they say what
/// to fix, never what the secret or the expected signature is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {SIGNATURE_HEADER} header is missing")]
    Missing,
    #[error("the {SIGNATURE_HEADER} header is not t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed,
    #[error("the {SIGNATURE_HEADER} header carries more than {MAX_SIGNATURES} v1 signatures")]
    TooManySignatures,
    #[error("the {SIGNATURE_HEADER} timestamp is {age_seconds} s away from now; at most {TOLERANCE} s are accepted: sign each delivery attempt anew")]
    Stale { age_seconds: i64 },
    #[error("the {SIGNATURE_HEADER} header does not sign this body")]
    Mismatch,
}

/// A parsed signature header: its timestamp and its `v1` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

impl Signature {
    /// Parses `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (at most [`MAX_SIGNATURES`]
    /// `v1`, checked before any is decoded or computed); other keys are ignored, as
    /// providers add schemes over time.
    pub fn parse(header: Option<&str>) -> Result<Signature, SignatureError> {
        let header = header.map(str::trim).unwrap_or_default();
        if header.is_empty() {
            return Err(SignatureError::Missing);
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match key {
                "t" if timestamp.is_none() => {
                    timestamp = Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| SignatureError::Malformed)?,
                    );
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" if signatures.len() == MAX_SIGNATURES => {
                    return Err(SignatureError::TooManySignatures)
                }
                "v1" => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
                _ => {}
            }
        }
        match (timestamp, signatures.is_empty()) {
            (Some(timestamp), false) => Ok(Signature {
                timestamp,
                signatures,
            }),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Refuses a timestamp more than [`TOLERANCE`] seconds from `now` (unix seconds).
    pub fn check_fresh(&self, now: i64) -> Result<(), SignatureError> {
        let age_seconds = now.saturating_sub(self.timestamp);
        if age_seconds.abs() > TOLERANCE {
            Err(SignatureError::Stale { age_seconds })
        } else {
            Ok(())
        }
    }

    /// Whether one of the `v1` signatures signs `body` with `secret` (compared in
    /// constant time).
    pub fn signs(&self, secret: &str, body: &[u8]) -> bool {
        self.signatures.iter().any(|signature| {
            mac(secret, self.timestamp, body)
                .verify_slice(signature)
                .is_ok()
        })
    }
}

/// What resuming the waiting execution did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The execution was waiting and goes on now.
    Now,
    /// The token was used already or its wait ended (a repeated event), or Step Functions
    /// did not recognise it (logged at warn): nothing to do.
    AlreadyResumed,
}

/// What resumes the execution waiting in AwaitDelivery: Step Functions' `SendTaskSuccess`
/// ([`aws_sdk_sfn::Client`], through [`resume`]) in the functions, an in-process workflow
/// in the deterministic simulator (`infra/simulator`), so that both run the same
/// hand-over ([`deliver`], [`await_delivery`]).
pub trait TaskResumer: Send + Sync {
    /// Resumes the task waiting with `task_token` with the delivery as its output.
    fn resume_task(
        &self,
        order_id: &OrderId,
        task_token: &str,
        delivery: &Delivery,
    ) -> impl std::future::Future<Output = Result<Resumed, String>> + Send;
}

impl TaskResumer for aws_sdk_sfn::Client {
    async fn resume_task(
        &self,
        order_id: &OrderId,
        task_token: &str,
        delivery: &Delivery,
    ) -> Result<Resumed, String> {
        resume(self, order_id, task_token, delivery).await
    }
}

/// Resumes order `order_id`'s execution waiting in AwaitDelivery with the delivery as the
/// task's output.
///
/// A token whose task ended (`TaskTimedOut`, `TaskDoesNotExist`) means the execution was
/// resumed already or stopped waiting. A token Step Functions does not recognise at all
/// (`InvalidToken`) is acknowledged the same way, since trying again cannot make it valid
/// (and the local emulator answers so for a token used once already), but it is logged
/// at warn with the order: on AWS it means a stale or foreign token was stored.
pub async fn resume(
    workflow: &aws_sdk_sfn::Client,
    order_id: &OrderId,
    task_token: &str,
    delivery: &Delivery,
) -> Result<Resumed, String> {
    let output = serde_json::json!({
        "event_id": delivery.event_id,
        "shipment_id": delivery.shipment_id,
        "delivered_at": delivery.delivered_at,
    });
    let result = workflow
        .send_task_success()
        .task_token(task_token)
        .output(output.to_string())
        .send()
        .await;
    match result {
        Ok(_) => Ok(Resumed::Now),
        Err(error) => match error.as_service_error() {
            Some(e) if e.is_task_timed_out() || e.is_task_does_not_exist() => {
                Ok(Resumed::AlreadyResumed)
            }
            Some(e) if e.is_invalid_token() => {
                tracing::warn!(
                    order_id = %order_id,
                    error = %aws_sdk_sfn::error::DisplayErrorContext(&error),
                    "Step Functions did not recognise the order's task token; taken as already resumed"
                );
                Ok(Resumed::AlreadyResumed)
            }
            _ => Err(format!(
                "SendTaskSuccess failed: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&error)
            )),
        },
    }
}

/// What [`deliver`] did with a `shipment.delivered` event.
#[derive(Debug)]
pub struct Delivered {
    /// The order after the event.
    pub order: OrderRecord,
    /// The event (or another for the same shipment) had been recorded before.
    pub duplicate: bool,
    /// Whether the waiting execution was resumed now (`None`: it was not waiting).
    pub resumed: Option<bool>,
}

/// Why [`deliver`] recorded nothing, or could not resume.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("shipment {shipment_id:?} is not the shipment booked for order {order_id}")]
    WrongShipment {
        order_id: OrderId,
        shipment_id: String,
    },
    #[error("order {order_id} is {actual}, not SHIPPED: a delivery cannot be recorded")]
    NotShipped {
        order_id: OrderId,
        actual: OrderStatus,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error("the delivery of order {order_id} is recorded but its workflow could not be resumed: {message}")]
    NotResumed { order_id: OrderId, message: String },
}

/// The webhook half: records the courier's delivery of order `id` and resumes the
/// execution waiting for it. A repeated event resumes again only while the order still
/// waits (DELIVERED): that covers a first attempt that recorded the delivery but failed
/// to resume.
pub async fn deliver<L: Ledger>(
    store: &L,
    workflow: &impl TaskResumer,
    id: &OrderId,
    event: &CourierEvent,
) -> Result<Delivered, DeliveryError> {
    // `Order Delivered` is written with the delivery, built from the order as it stands
    // (its merchant and kind never change) and the courier's event.
    let delivery = event.delivery();
    let mut known = store
        .require_order(id)
        .await
        .map_err(DeliveryError::Store)?;
    known.delivery = Some(delivery.clone());
    let Some(announced) = crate::events::OrderEvent::delivered(&known) else {
        return Err(DeliveryError::Store(StoreError::Corrupt {
            key: id.to_string(),
            message: "a delivered order without its delivery".into(),
        }));
    };
    let (order, duplicate) = match store.record_delivery(id, &delivery, &announced).await {
        Ok(DeliveryRecorded::Now(order)) => (order, false),
        Ok(DeliveryRecorded::Before(order) | DeliveryRecorded::Duplicate(order)) => (order, true),
        // After the courier confirmed the shipment's cancellation: recorded, and the
        // order parked for a person. No execution waits for it.
        Ok(DeliveryRecorded::AfterRollback(order)) => {
            tracing::warn!(event_id = %event.event_id, status = %order.status, "delivered after the shipment was cancelled: recorded, and the order parked for an operator");
            (order, false)
        }
        Ok(DeliveryRecorded::WrongShipment) => {
            return Err(DeliveryError::WrongShipment {
                order_id: id.clone(),
                shipment_id: event.shipment_id.clone(),
            })
        }
        Err(StoreError::Conflict { actual, .. }) => {
            return Err(DeliveryError::NotShipped {
                order_id: id.clone(),
                actual,
            })
        }
        Err(error) => return Err(DeliveryError::Store(error)),
    };
    let resumed = match (&order.task_token, &order.delivery) {
        (Some(token), Some(delivery)) if order.status == OrderStatus::Delivered => {
            match workflow.resume_task(id, token, delivery).await {
                Ok(resumed) => Some(resumed == Resumed::Now),
                Err(message) => {
                    return Err(DeliveryError::NotResumed {
                        order_id: id.clone(),
                        message,
                    })
                }
            }
        }
        _ => None,
    };
    tracing::info!(duplicate, ?resumed, event_id = %event.event_id, "delivery recorded");
    Ok(Delivered {
        order,
        duplicate,
        resumed,
    })
}

/// The AwaitDelivery half: stores the waiting task's token on the SHIPPED order, or,
/// when the delivery was recorded first, resumes the execution itself. Idempotent: a
/// second run stores the same token again.
pub async fn await_delivery<L: Ledger>(
    store: &L,
    workflow: &impl TaskResumer,
    order_id: &str,
    token: &TaskToken<'_>,
) -> Result<ActivityOutput, ActivityError> {
    let id = activity::order_id(order_id)?;
    let task_token = token.token;
    if task_token.trim().is_empty() {
        return Err(ActivityError::new(
            ErrorName::Internal,
            format!("order {id}: AwaitDelivery was invoked without a task token"),
        ));
    }
    let (record, order) =
        match activity::open(store, order_id, crate::steps::AWAIT_DELIVERY).await? {
            // The webhook recorded the delivery and this step: the order comes back as the
            // refused begin found it, with the delivery.
            Opened::Replayed { record, order } => (record, order),
            Opened::Begun(begun) => match store.store_task_token(&id, token).await {
                Ok(TokenStored::Waiting) => {
                    tracing::info!(
                        attempts = begun.attempt.attempts,
                        fence = token.fence(&id),
                        "waiting for the courier's delivery event"
                    );
                    return Ok(begun.pending());
                }
                // A late copy: a later attempt waits with its own token, which the
                // courier's delivery resumes. This attempt's task waits no more.
                Ok(TokenStored::Superseded) => {
                    tracing::warn!(
                    fence = token.fence(&id),
                    "a later attempt holds the order's task token; this late copy's is not stored"
                );
                    return Ok(begun.pending());
                }
                Ok(TokenStored::AlreadyDelivered(order)) => (begun.attempt, *order),
                Err(error) => return begun.close(Err(error.into())).await,
            },
        };
    let kind = order.order.kind;
    let Some(delivery) = order.delivery.clone() else {
        return Err(ActivityError::new(
            ErrorName::Internal,
            format!("order {id} is {} without a recorded delivery", order.status),
        ));
    };
    match workflow.resume_task(&id, task_token, &delivery).await {
        Ok(Resumed::Now) => tracing::info!("delivery was recorded first; execution resumed"),
        Ok(Resumed::AlreadyResumed) => tracing::info!("execution was resumed already"),
        Err(message) => {
            return Err(ActivityError::new(
                ErrorName::WorkflowUnavailable,
                format!("order {id}: resuming the execution failed: {message}"),
            ))
        }
    }
    Ok(ActivityOutput::from_step(record, order.status, kind, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-long-shared-secret";

    #[test]
    fn a_signature_signs_only_the_same_secret_timestamp_and_body() {
        let body = br#"{"event_id":"evt-1"}"#;
        let header = sign(SECRET, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        let signature = Signature::parse(Some(&header)).unwrap_or_else(|e| panic!("{e}"));
        assert!(signature.signs(SECRET, body));
        assert!(!signature.signs("another-secret-value", body));
        assert!(!signature.signs(SECRET, br#"{"event_id":"evt-2"}"#));
        // The same body and signature under another timestamp: refused.
        let moved = header.replace("t=1700000000", "t=1700000001");
        let moved = Signature::parse(Some(&moved)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!moved.signs(SECRET, body));
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_stale_either_way() {
        let signature =
            Signature::parse(Some(&sign(SECRET, 1_000, b"{}"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signature.check_fresh(1_000 + TOLERANCE), Ok(()));
        assert_eq!(signature.check_fresh(1_000 - TOLERANCE), Ok(()));
        assert_eq!(
            signature.check_fresh(1_000 + TOLERANCE + 1),
            Err(SignatureError::Stale {
                age_seconds: TOLERANCE + 1
            })
        );
        assert_eq!(
            signature.check_fresh(1_000 - TOLERANCE - 1),
            Err(SignatureError::Stale {
                age_seconds: -TOLERANCE - 1
            })
        );
    }

    #[test]
    fn one_matching_signature_among_several_is_enough() {
        let body = b"{}";
        let good = sign(SECRET, 5, body);
        let header = format!("t=5,v1={},{}", "00".repeat(32), &good[4..]);
        let signature = Signature::parse(Some(&header)).unwrap_or_else(|e| panic!("{e}"));
        assert!(signature.signs(SECRET, body));
    }

    #[test]
    fn an_event_with_an_empty_long_or_spaced_id_is_refused_naming_the_field() {
        let event = |event_id: &str, shipment_id: &str| CourierEvent {
            event_id: event_id.to_owned(),
            kind: DELIVERED.to_owned(),
            order_id: "ord-1".to_owned(),
            shipment_id: shipment_id.to_owned(),
            tracking_number: None,
            occurred_at: "2026-11-26T10:00:00.000Z".to_owned(),
        };
        assert_eq!(event("evt-1", "shp-1").check(), Ok(()));
        let long = "e".repeat(MAX_ID_CHARS + 1);
        for (bad, field) in [
            (event("", "shp-1"), "event_id"),
            (event(&long, "shp-1"), "event_id"),
            (event("evt 1", "shp-1"), "event_id"),
            (event("evt-1", "shp-\u{0}"), "shipment_id"),
            (event("evt-1", "schiff-ä"), "shipment_id"),
        ] {
            let refused = bad.check();
            assert!(
                refused.as_ref().is_err_and(|m| m.starts_with(field)),
                "{bad:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_signature_header_is_named_as_such() {
        assert_eq!(Signature::parse(None), Err(SignatureError::Missing));
        assert_eq!(Signature::parse(Some("  ")), Err(SignatureError::Missing));
        for header in [
            "sha256=00",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=2,v1=00",
            "deadbeef",
        ] {
            assert_eq!(
                Signature::parse(Some(header)),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_header_with_more_signatures_than_a_rotation_needs_is_refused_before_any_is_checked() {
        let three = format!("t=1,v1={0},v1={0},v1={0}", "00".repeat(32));
        assert!(Signature::parse(Some(&three)).is_ok());
        let many = format!("t=1{}", ",v1=00".repeat(1000));
        assert_eq!(
            Signature::parse(Some(&many)),
            Err(SignatureError::TooManySignatures)
        );
    }
}
