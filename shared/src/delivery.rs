//! The courier's delivery events: how they are authenticated (an HMAC-SHA256 signature of
//! the raw body with a shared secret) and how a delivery resumes the execution waiting
//! for it in AwaitDelivery (Step Functions `SendTaskSuccess` with the stored task token).

use crate::store::Delivery;
use crate::OrderId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header that carries the signature: `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-courier-signature";
/// The only event type that moves an order; others are acknowledged and ignored.
pub const DELIVERED: &str = "shipment.delivered";

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

impl CourierEvent {
    /// The delivery this event reports.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            event_id: self.event_id.clone(),
            shipment_id: self.shipment_id.clone(),
            delivered_at: self.occurred_at.clone(),
        }
    }
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// The signature header value for `body`: `sha256=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` with `secret` (compared in constant time).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(signature) = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_same_secret_and_body() {
        let body = br#"{"event_id":"evt-1"}"#;
        let header = sign("a-long-shared-secret", body);
        assert!(header.starts_with("sha256="));
        assert!(verify("a-long-shared-secret", body, &header));
        assert!(!verify("another-secret-value", body, &header));
        assert!(!verify(
            "a-long-shared-secret",
            br#"{"event_id":"evt-2"}"#,
            &header
        ));
    }

    #[test]
    fn a_malformed_signature_header_does_not_verify() {
        let body = b"{}";
        for header in ["", "sha256=", "sha256=zz", "md5=00", "deadbeef"] {
            assert!(!verify("secret-secret-secret", body, header), "{header:?}");
        }
    }
}
