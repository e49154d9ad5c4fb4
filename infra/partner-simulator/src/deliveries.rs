//! The courier's deliveries: after a shipment is created (unless held), wait the
//! delivery delay, then post the `shipment.delivered` event to the webhook, signed with
//! HMAC-SHA256, retrying non-2xx answers and connection errors.
//!
//! Every attempt is counted in the shipment's `webhook_attempts`. Before each attempt
//! the shipment's status is read again: a cancelled shipment is never posted. An order's
//! event (its `event_id`, `occurred_at`, so its bytes and signature) is the same for
//! every retry and re-send, so the receiver can deduplicate.

use crate::ledger::Attempt;
use crate::AppState;
use axum::http::header::CONTENT_TYPE;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Webhook posts per delivery, the first included.
pub const MAX_ATTEMPTS: u32 = 8;

/// The header carrying `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Courier-Signature";

/// The pause after the `failed`-th failed attempt: 0.5 s, 1 s, 2 s, 4 s, then 5 s.
pub fn backoff(failed: u32) -> Duration {
    let doubled = 500u64.saturating_mul(1u64 << failed.saturating_sub(1).min(20));
    Duration::from_millis(doubled.min(5000))
}

/// The `X-Courier-Signature` value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<lowercase hex HMAC-SHA256 of "<timestamp>.<raw body>">` under
/// `secret`, as the well-known webhook providers sign. Each attempt is signed anew, so a
/// receiver can refuse old signatures. (HMAC takes keys of any length; the error exists
/// only because the `Mac` trait is shared with MACs that do not.)
pub fn signature(
    secret: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Starts delivering a shipment in the background: after `delay`, post its event (with
/// retries). `resend` is for the admin API: the first post goes out even if the shipment
/// is already delivered. Does nothing without a configured webhook (answers `false`).
///
/// The task is counted (see [`AppState::deliveries_settled`]) before this returns.
pub fn schedule(state: &AppState, shipment_id: String, delay: Duration, resend: bool) -> bool {
    if state.config().webhook.is_none() {
        return false;
    }
    let guard = state.delivery_started();
    let state = state.clone();
    tokio::spawn(async move {
        let _running = guard;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        deliver(&state, &shipment_id, resend).await;
    });
    true
}

/// Posts the shipment's event until a 2xx, a cancellation, or [`MAX_ATTEMPTS`] posts.
async fn deliver(state: &AppState, shipment_id: &str, resend: bool) {
    let Some(webhook) = state.config().webhook.clone() else {
        return;
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let start = state.world().ledger.start_attempt(
            shipment_id,
            resend && attempt == 1,
            chrono::Utc::now(),
        );
        let body = match start {
            Attempt::Send(body) => body,
            Attempt::Stop(reason) => {
                tracing::info!(shipment_id, attempt, reason, "delivery not sent");
                return;
            }
        };
        let signed = match signature(&webhook.secret, chrono::Utc::now().timestamp(), &body) {
            Ok(signed) => signed,
            Err(e) => {
                state.world().ledger.finish_attempt(shipment_id, false);
                tracing::error!(shipment_id, error = %e, "cannot sign the delivery event");
                return;
            }
        };
        let sent = state
            .http()
            .post(&webhook.url)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await;
        let acknowledged = match sent {
            Ok(answer) if answer.status().is_success() => true,
            Ok(answer) => {
                let status = answer.status().as_u16();
                tracing::warn!(shipment_id, attempt, status, "delivery webhook refused");
                false
            }
            Err(e) => {
                tracing::warn!(shipment_id, attempt, error = %e, "delivery webhook unreachable");
                false
            }
        };
        state
            .world()
            .ledger
            .finish_attempt(shipment_id, acknowledged);
        if acknowledged {
            tracing::info!(shipment_id, attempt, "shipment delivered");
            return;
        }
        if attempt < MAX_ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    tracing::error!(shipment_id, attempts = MAX_ATTEMPTS, "delivery given up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_from_half_a_second_up_to_five_seconds() {
        let pauses: Vec<u128> = (1..MAX_ATTEMPTS).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_timestamp_dot_body_in_lowercase_hex() {
        // The RFC 4231 test case 2 key, over "1700000000." and its message (checked with
        // Python's hmac module).
        assert_eq!(
            signature("Jefe", 1_700_000_000, b"what do ya want for nothing?")
                .ok()
                .as_deref(),
            Some(
                "t=1700000000,v1=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
            )
        );
    }
}
