//! The courier's deliveries: signed webhook posts to a test receiver, retries, holds,
//! cancellations and the admin API's deliveries.

mod common;

use common::{must, unique, Order, Received, Receiver, Sim};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const SECRET: &str = "local-webhook-secret";

/// Checks the post's signature independently of the simulator's code: `t=<unix>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>">`, with a timestamp of about now.
fn assert_signed(post: &Received) {
    assert_eq!(post.content_type.as_deref(), Some("application/json"));
    let signature = post.signature.as_deref().unwrap_or("");
    let Some((timestamp, hex_mac)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        panic!("bad X-Courier-Signature {signature:?}");
    };
    let sent_at: i64 = must(timestamp.parse(), "the timestamp is unix seconds");
    let age = chrono::Utc::now().timestamp() - sent_at;
    assert!((0..60).contains(&age), "signed {age} s ago");
    assert!(
        hex_mac
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
        "{hex_mac} is not lowercase hex"
    );
    let mut mac = must(
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()),
        "hmac key",
    );
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&post.body);
    must(
        mac.verify_slice(&must(hex::decode(hex_mac), "signature hex")),
        "signature verifies",
    );
}

/// A webhook receiver answering 500 to its first `failures` posts, a simulator that
/// delivers to it `delay` after each shipment, and a fresh order.
async fn with_receiver(failures: usize, delay: Duration) -> (Receiver, Sim, Order) {
    let receiver = Receiver::start(failures).await;
    let sim = Sim::start(receiver.config(SECRET, delay)).await;
    (receiver, sim, Order::fresh())
}

/// Asks the admin API to deliver order `order_id`'s shipment now.
async fn deliver_by_admin(sim: &Sim, order_id: &str) -> common::Reply {
    sim.admin_post("/admin/deliveries", &json!({ "order_id": order_id }))
        .await
}

/// Checks the order's shipment in the simulator's ledger: its status and how many
/// webhook posts were made for it. Returns the shipment.
async fn assert_shipment(sim: &Sim, order: &Order, status: &str, webhook_attempts: u64) -> Value {
    let ledger = sim.ledger_of(&order.merchant_id).await;
    let shipment = &ledger["shipments"][0];
    assert_eq!(shipment["status"], status, "{ledger}");
    assert_eq!(shipment["webhook_attempts"], webhook_attempts, "{ledger}");
    shipment.clone()
}

async fn ship(sim: &Sim, order: &Order) -> Value {
    let reply = sim
        .call("/courier/shipments", &unique("key"), &order.shipment())
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body
}

#[tokio::test]
async fn the_courier_delivers_by_posting_a_correctly_signed_event_to_the_webhook() {
    let (mut receiver, sim, order) = with_receiver(0, Duration::from_millis(50)).await;

    let shipment = ship(&sim, &order).await;
    let post = receiver.next().await;
    sim.state.deliveries_settled().await;

    assert_signed(&post);
    let event = post.event();
    assert!(event["event_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("evt-")));
    assert_eq!(event["type"], "shipment.delivered");
    assert_eq!(event["order_id"], json!(order.order_id));
    assert_eq!(event["shipment_id"], shipment["shipment_id"]);
    assert_eq!(event["tracking_number"], shipment["tracking_number"]);
    let occurred_at = event["occurred_at"].as_str().unwrap_or("");
    assert!(
        chrono::DateTime::parse_from_rfc3339(occurred_at).is_ok() && occurred_at.ends_with('Z'),
        "{occurred_at}"
    );
    let ledger = sim.ledger_of(&order.merchant_id).await;
    let recorded = &ledger["shipments"][0];
    assert_eq!(recorded["status"], "delivered");
    assert_eq!(recorded["webhook_attempts"], 1);
    assert_eq!(recorded["delivered_at"], event["occurred_at"]);
}

#[tokio::test]
async fn a_refused_webhook_post_is_retried_with_the_same_signed_event() {
    let (mut receiver, sim, order) = with_receiver(1, Duration::ZERO).await;

    ship(&sim, &order).await;
    let refused = receiver.next().await;
    let accepted = receiver.next().await;
    sim.state.deliveries_settled().await;

    assert_signed(&refused);
    assert_signed(&accepted);
    assert_eq!(refused.body, accepted.body, "a retry sends the same event");
    assert_shipment(&sim, &order, "delivered", 2).await;
    assert!(receiver.received_so_far().is_empty());
}

#[tokio::test]
async fn a_cancelled_shipment_is_never_delivered() {
    // The cancellation below only has to come within these five seconds.
    let (mut receiver, sim, order) = with_receiver(0, Duration::from_secs(5)).await;

    let shipment = ship(&sim, &order).await;
    let cancelled = sim
        .call("/courier/cancellations", &unique("key"), &order.ids())
        .await;
    sim.state.deliveries_settled().await;
    let by_admin = deliver_by_admin(&sim, &order.order_id).await;

    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["shipment_id"], shipment["shipment_id"]);
    assert!(
        receiver.received_so_far().is_empty(),
        "a cancelled shipment was posted"
    );
    assert_eq!(
        (by_admin.status, by_admin.code()),
        (409, "shipment_cancelled")
    );
    let shipment = assert_shipment(&sim, &order, "cancelled", 0).await;
    assert_eq!(shipment["delivered_at"], Value::Null);
}

#[tokio::test]
async fn a_delivered_shipment_cannot_be_cancelled() {
    let (mut receiver, sim, order) = with_receiver(0, Duration::ZERO).await;

    ship(&sim, &order).await;
    receiver.next().await;
    sim.state.deliveries_settled().await;
    let cancel = sim
        .call("/courier/cancellations", &unique("key"), &order.ids())
        .await;

    assert_eq!((cancel.status, cancel.code()), (409, "already_delivered"));
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["shipments"][0]["status"], "delivered");
    assert_eq!(ledger["closed_orders"]["courier"], json!([]));
}

#[tokio::test]
async fn a_held_shipment_is_delivered_only_through_the_admin_api_and_always_as_the_same_event() {
    let (mut receiver, sim, order) = with_receiver(0, Duration::ZERO).await;
    sim.add_rule(json!({"partner": "courier", "operation": "deliver", "merchant_id": order.merchant_id, "fault": "hold"}))
        .await;

    ship(&sim, &order).await;
    sim.state.deliveries_settled().await;
    let held = sim.ledger_of(&order.merchant_id).await;
    let first = deliver_by_admin(&sim, &order.order_id).await;
    let delivered = receiver.next().await;
    sim.state.deliveries_settled().await;
    let again = deliver_by_admin(&sim, &order.order_id).await;
    let redelivered = receiver.next().await;
    sim.state.deliveries_settled().await;
    let unknown = deliver_by_admin(&sim, &unique("ord")).await;

    assert_eq!(held["shipments"][0]["status"], "created");
    assert_eq!(held["shipments"][0]["webhook_attempts"], 0);
    assert_eq!(held["faults_injected"]["hold"], 1);
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert_signed(&delivered);
    assert_eq!(delivered.event()["event_id"], first.body["event_id"]);
    assert_eq!(again.status, 202);
    assert_eq!(
        redelivered.body, delivered.body,
        "a re-send is the same event"
    );
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    assert_shipment(&sim, &order, "delivered", 2).await;
}

#[tokio::test]
async fn without_a_webhook_url_shipments_stay_created() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();

    ship(&sim, &order).await;
    sim.state.deliveries_settled().await;
    let by_admin = deliver_by_admin(&sim, &order.order_id).await;

    assert_eq!(
        (by_admin.status, by_admin.code()),
        (409, "webhook_not_configured")
    );
    assert_shipment(&sim, &order, "created", 0).await;
}
