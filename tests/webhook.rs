//! The courier webhook function through its function URL: what it refuses (unsigned,
//! forged, stale, replayed, oversized, for another shipment) is answered with a clear 4xx
//! and changes nothing; a rotated secret drops no delivery.

use serde_json::{json, Value};
use system_tests::{sign_now, step_reference, unique_key, Reply, ScratchSecret, Stack};

/// POSTs `body` to the webhook with the signature header `signature` (none: no header).
async fn post_raw(stack: &Stack, body: &str, signature: Option<String>) -> Reply {
    let mut request = system_tests::http()
        .post(stack.courier_webhook_url())
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-courier-signature", signature);
    }
    Reply::from_result(request.send().await).await
}

/// POSTs `event` signed now with `secret`.
async fn post_event(stack: &Stack, secret: &str, event: &Value) -> Reply {
    let body = event.to_string();
    let signature = sign_now(secret, body.as_bytes());
    post_raw(stack, &body, Some(signature)).await
}

fn delivered(order_id: &str, shipment_id: &Value) -> Value {
    json!({"event_id": format!("evt-{}", unique_key()), "type": "shipment.delivered",
           "order_id": order_id, "shipment_id": shipment_id,
           "occurred_at": "2026-11-26T10:00:00.000Z"})
}

/// An order waiting for its courier, as the API shows it, and its shipment id.
async fn waiting_order(stack: &Stack) -> (String, Value, Value) {
    let (id, _) = stack.order_waiting_for_its_courier().await;
    let view = stack.get(&format!("/orders/{id}")).await.body;
    let shipment = step_reference(&view, "ArrangeShipment", "shipment_id").clone();
    assert!(shipment.is_string(), "no shipment id: {view}");
    (id, shipment, view)
}

/// The order's status and version, which nothing refused may change.
async fn status_and_version(stack: &Stack, id: &str) -> (Value, Value) {
    let view = stack.get(&format!("/orders/{id}")).await.body;
    (view["status"].clone(), view["version"].clone())
}

#[tokio::test]
async fn courier_events_that_are_unsigned_malformed_unknown_or_early_are_refused_with_their_codes()
{
    let stack = Stack::connect().await;
    let secret = stack.webhook_secret().await;
    let unknown = order_core::OrderId::generate().to_string();
    let shipment = json!("shp-1");

    let unsigned = post_raw(&stack, &delivered(&unknown, &shipment).to_string(), None).await;
    assert_eq!(
        (unsigned.status, &unsigned.body["code"]),
        (401, &json!("invalid_signature")),
        "{}",
        unsigned.text
    );
    let forged = post_event(
        &stack,
        "a-secret-that-is-not-ours",
        &delivered(&unknown, &shipment),
    )
    .await;
    assert_eq!(
        (forged.status, &forged.body["code"]),
        (401, &json!("invalid_signature"))
    );
    let malformed = post_event(&stack, &secret, &json!({"type": "shipment.delivered"})).await;
    assert_eq!(
        (malformed.status, &malformed.body["code"]),
        (400, &json!("invalid_event"))
    );
    let missing = post_event(&stack, &secret, &delivered(&unknown, &shipment)).await;
    assert_eq!(
        (missing.status, &missing.body["code"]),
        (404, &json!("order_not_found"))
    );

    // An order that has not shipped (stored, no execution): the courier is told to
    // try again later, and nothing changes.
    let id = stack.order_without_execution().await;
    let mut in_transit = delivered(id.as_str(), &shipment);
    in_transit["type"] = json!("shipment.in_transit");
    let ignored = post_event(&stack, &secret, &in_transit).await;
    assert_eq!(
        (ignored.status, &ignored.body["ignored"]),
        (202, &json!("shipment.in_transit"))
    );
    let early = post_event(&stack, &secret, &delivered(id.as_str(), &shipment)).await;
    assert_eq!(
        (early.status, &early.body["code"]),
        (409, &json!("order_not_shipped")),
        "{}",
        early.text
    );
    assert_eq!(
        status_and_version(&stack, id.as_str()).await,
        (json!("ACCEPTED"), json!(1))
    );
}

#[tokio::test]
async fn an_event_signed_more_than_five_minutes_ago_or_ahead_is_refused_and_changes_nothing() {
    let stack = Stack::connect().await;
    let secret = stack.webhook_secret().await;
    let (id, shipment, _) = waiting_order(&stack).await;
    let before = status_and_version(&stack, &id).await;
    let body = delivered(&id, &shipment).to_string();
    // Half a minute past the five-minute window each way, taken just before each request:
    // the function reads its clock when the request arrives, a cold start later.
    for (when, offset) in [("old", -330), ("ahead", 330)] {
        let timestamp = chrono::Utc::now().timestamp() + offset;
        let signature = order_core::delivery::sign(&secret, timestamp, body.as_bytes());
        let refused = post_raw(&stack, &body, Some(signature)).await;
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (401, &json!("stale_signature")),
            "{when}: {}",
            refused.text
        );
    }
    // The same signature with its timestamp replaced: the timestamp is signed too.
    let now = chrono::Utc::now().timestamp();
    let signature = order_core::delivery::sign(&secret, now - 400, body.as_bytes());
    let moved = signature.replacen(&format!("t={}", now - 400), &format!("t={now}"), 1);
    let refused = post_raw(&stack, &body, Some(moved)).await;
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (401, &json!("invalid_signature"))
    );
    assert_eq!(status_and_version(&stack, &id).await, before);
    assert_eq!(before.0, json!("SHIPPED"));
}

#[tokio::test]
async fn an_event_for_another_shipment_is_refused_and_changes_nothing() {
    let stack = Stack::connect().await;
    let secret = stack.webhook_secret().await;
    let (id, _, _) = waiting_order(&stack).await;
    let before = status_and_version(&stack, &id).await;
    let wrong = post_event(
        &stack,
        &secret,
        &delivered(&id, &json!("shp-not-this-order")),
    )
    .await;
    assert_eq!(
        (wrong.status, &wrong.body["code"]),
        (422, &json!("shipment_mismatch")),
        "{}",
        wrong.text
    );
    assert_eq!(status_and_version(&stack, &id).await, before);
}

#[tokio::test]
async fn a_replayed_event_is_a_duplicate_and_another_shipment_after_delivery_is_refused() {
    let stack = Stack::connect().await;
    let secret = stack.webhook_secret().await;
    let (id, shipment, _) = waiting_order(&stack).await;
    let event = delivered(&id, &shipment);
    let first = post_event(&stack, &secret, &event).await;
    assert_eq!(
        (first.status, &first.body["duplicate"]),
        (200, &json!(false)),
        "{}",
        first.text
    );
    let view = stack.wait_for_status(&id, &["COMPLETED"]).await;
    let after = (view["status"].clone(), view["version"].clone());

    // The same event again, freshly signed (a replay within the window, or the courier
    // re-sending): acknowledged as a duplicate, nothing changes.
    let again = post_event(&stack, &secret, &event).await;
    assert_eq!(
        (again.status, &again.body["duplicate"]),
        (200, &json!(true)),
        "{}",
        again.text
    );
    // A new event claiming another shipment for the delivered order: refused.
    let other = post_event(&stack, &secret, &delivered(&id, &json!("shp-other"))).await;
    assert_eq!(
        (other.status, &other.body["code"]),
        (422, &json!("shipment_mismatch"))
    );
    assert_eq!(status_and_version(&stack, &id).await, after);
    assert_eq!(after.0, json!("COMPLETED"));
}

#[tokio::test]
async fn an_oversized_event_is_refused_for_its_size_before_its_signature_is_checked() {
    let stack = Stack::connect().await;
    let secret = stack.webhook_secret().await;
    let (id, shipment, _) = waiting_order(&stack).await;
    let before = status_and_version(&stack, &id).await;
    let mut event = delivered(&id, &shipment);
    event["tracking_number"] = json!("T".repeat(courier_webhook::MAX_EVENT_BYTES));
    let body = event.to_string();
    for signature in [None, Some(sign_now(&secret, body.as_bytes()))] {
        let refused = post_raw(&stack, &body, signature.clone()).await;
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (413, &json!("payload_too_large")),
            "signed: {}",
            signature.is_some()
        );
    }
    assert_eq!(status_and_version(&stack, &id).await, before);
}

#[tokio::test]
async fn after_a_rotation_events_signed_with_the_new_or_the_previous_secret_verify() {
    use order_core::secrets::RotatingSecret;
    use std::time::Duration;
    let stack = Stack::connect().await;
    let secret =
        ScratchSecret::create(&stack, "webhook-secret", "first-secret-value-0123456789").await;
    let load = || RotatingSecret::load(secret.client.clone(), secret.name.clone());
    let body = br#"{"event_id":"evt-rotation"}"#;
    let signed_with = |value: &str| {
        order_core::delivery::Signature::parse(Some(&sign_now(value, body)))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = signed_with("first-secret-value-0123456789");
    let second = signed_with("second-secret-value-0123456789");

    // An instance started before the rotation, re-reading at once when nothing verifies.
    let warm = match load().await {
        Ok(loaded) => loaded.with_refresh_interval(Duration::ZERO),
        Err(error) => panic!("{error}"),
    };
    assert!(warm.any(|s| first.signs(s, body)).await);
    assert!(!warm.any(|s| second.signs(s, body)).await);

    secret.rotate("second-secret-value-0123456789").await;
    // A cold start after the rotation knows both values.
    let cold = load().await.unwrap_or_else(|error| panic!("{error}"));
    assert!(cold.any(|s| second.signs(s, body)).await, "current");
    assert!(cold.any(|s| first.signs(s, body)).await, "previous");
    assert!(
        !cold
            .any(|s| signed_with("a-third-value-0123456789").signs(s, body))
            .await
    );
    // The warm instance learns of the rotation from the first signature it cannot verify.
    assert!(warm.any(|s| second.signs(s, body)).await, "re-read");
    assert!(
        warm.any(|s| first.signs(s, body)).await,
        "previous, after the re-read"
    );
    // The previous value verifies only for a while after the rotation: past it, an
    // instance that reads the secret (every few minutes, whatever it sees) refuses it.
    let past_the_grace = load()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .with_max_age(Duration::ZERO)
        .with_previous_grace(Duration::ZERO)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        past_the_grace.any(|s| second.signs(s, body)).await,
        "current"
    );
    assert!(
        !past_the_grace.any(|s| first.signs(s, body)).await,
        "the previous value, past its grace"
    );
    secret.delete().await;
}
