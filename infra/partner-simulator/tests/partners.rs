//! The partner API over real HTTP: idempotency, validation, the effects in the ledger,
//! stock, compensations closing orders, and the token.

mod common;

use common::{must, unique, Order, Sim};
use partner_simulator::Config;
use serde_json::{json, Value};

fn count(ledger: &Value, collection: &str) -> usize {
    ledger[collection].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_answer_and_does_not_charge_twice() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");

    let first = sim
        .call("/payments/charges", &key, &order.charge(4999))
        .await;
    let again = sim
        .call("/payments/charges", &key, &order.charge(4999))
        .await;

    assert_eq!(first.status, 201, "{:?}", first.body);
    assert!(!first.replayed);
    assert_eq!(again.status, 201);
    assert!(
        again.replayed,
        "the repeat must carry Idempotent-Replayed: true"
    );
    assert_eq!(again.body, first.body);
    assert_eq!(first.body["amount_cents"], 4999);
    assert_eq!(first.body["currency"], "EUR");
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(count(&ledger, "charges"), 1, "{ledger}");
    assert_eq!(ledger["charges"][0]["charge_id"], first.body["charge_id"]);
    assert_eq!(ledger["charges"][0]["status"], "captured");
    assert_eq!(ledger["requests"], json!({"total": 2, "replayed": 1}));
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused_with_422() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");

    let first = sim
        .call("/payments/charges", &key, &order.charge(100))
        .await;
    let other = sim
        .call("/payments/charges", &key, &order.charge(200))
        .await;

    assert_eq!(first.status, 201);
    assert_eq!(other.status, 422);
    assert_eq!(other.code(), "idempotency_key_reused");
    assert_eq!(
        count(&sim.ledger_of(&order.merchant_id).await, "charges"),
        1
    );
}

#[tokio::test]
async fn the_same_body_with_its_keys_in_another_order_is_the_same_request() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");
    let reordered = format!(
        r#"{{"currency":"EUR","amount_cents":100,"merchant_id":"{}","order_id":"{}"}}"#,
        order.merchant_id, order.order_id
    );

    let first = sim
        .call("/payments/charges", &key, &order.charge(100))
        .await;
    let again = sim
        .send(
            sim.http
                .post(format!("{}/payments/charges", sim.base))
                .header("Idempotency-Key", &key)
                .header("Content-Type", "application/json")
                .body(reordered),
        )
        .await;

    assert_eq!(first.status, 201);
    assert!(again.replayed, "{:?}", again);
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn requests_without_a_key_or_with_a_malformed_body_are_refused_with_400() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();

    let no_key = sim
        .send(
            sim.http
                .post(format!("{}/payments/charges", sim.base))
                .json(&order.charge(100)),
        )
        .await;
    let malformed = sim
        .send(
            sim.http
                .post(format!("{}/payments/charges", sim.base))
                .header("Idempotency-Key", unique("key"))
                .body("{\"order_id\": "),
        )
        .await;
    let no_order = sim
        .call(
            "/warehouse/releases",
            &unique("key"),
            &json!({"merchant_id": order.merchant_id}),
        )
        .await;
    let no_merchant = sim
        .call(
            "/warehouse/releases",
            &unique("key"),
            &json!({"order_id": order.order_id}),
        )
        .await;
    let no_lines = sim
        .call("/warehouse/reservations", &unique("key"), &order.ids())
        .await;
    let zero_quantity = sim
        .call(
            "/terminals/provisionings",
            &unique("key"),
            &order.reservation("A920-PRO", 0),
        )
        .await;

    assert_eq!(
        (no_key.status, no_key.code()),
        (400, "missing_idempotency_key")
    );
    for (reply, names) in [
        (&malformed, "malformed JSON"),
        (&no_order, "order_id"),
        (&no_merchant, "merchant_id"),
        (&no_lines, "lines"),
        (&zero_quantity, "lines[0].quantity"),
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_request"),
            "{reply:?}"
        );
        let message = reply.body["message"].as_str().unwrap_or("");
        assert!(message.contains(names), "{message:?} should name {names}");
    }
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(
        count(&ledger, "charges") + count(&ledger, "reservations"),
        0
    );
    assert_eq!(ledger["closed_orders"]["warehouse"], json!([]));
}

#[tokio::test]
async fn a_reservation_takes_stock_and_a_short_sku_is_refused_without_reserving_anything() {
    let sim = Sim::start(Config {
        stock_per_sku: 5,
        ..Config::default()
    })
    .await;
    let order = Order::fresh();
    let sku = unique("SKU");

    let reserved = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.reservation(&sku, 3),
        )
        .await;
    let short = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &json!({
                "order_id": order.order_id,
                "merchant_id": order.merchant_id,
                "lines": [{"sku": "OTHER", "quantity": 1}, {"sku": sku, "quantity": 3}],
            }),
        )
        .await;

    assert_eq!(reserved.status, 201, "{:?}", reserved.body);
    assert!(must(
        reserved.body["reservation_id"].as_str().ok_or("no id"),
        "reservation id"
    )
    .starts_with("res-"));
    assert_eq!(reserved.body["lines"], json!([{"sku": sku, "quantity": 3}]));
    assert_eq!((short.status, short.code()), (409, "out_of_stock"));
    let ledger = sim.ledger().await;
    assert_eq!(ledger["stock"][&sku], 2);
    assert_eq!(
        ledger["stock"]
            .get("OTHER")
            .and_then(Value::as_u64)
            .unwrap_or(5),
        5
    );
    assert_eq!(
        count(&sim.ledger_of(&order.merchant_id).await, "reservations"),
        1
    );
}

#[tokio::test]
async fn a_release_after_a_reservation_restores_the_stock_and_a_replay_still_gets_the_kept_answer()
{
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let sku = unique("SKU");
    let key = unique("key");

    let reserved = sim
        .call("/warehouse/reservations", &key, &order.reservation(&sku, 2))
        .await;
    assert_eq!(sim.ledger().await["stock"][&sku], 999_998);
    let released = sim
        .call("/warehouse/releases", &unique("key"), &order.ids())
        .await;
    let replay = sim
        .call("/warehouse/reservations", &key, &order.reservation(&sku, 2))
        .await;

    assert_eq!(released.status, 200);
    assert_eq!(
        released.body,
        json!({
            "order_id": order.order_id,
            "released": true,
            "reservation_id": reserved.body["reservation_id"],
        })
    );
    assert_eq!((replay.status, replay.replayed), (201, true));
    assert_eq!(replay.body, reserved.body);
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["stock"][&sku], 1_000_000);
    assert_eq!(ledger["reservations"][0]["status"], "released");
    assert_eq!(
        ledger["closed_orders"]["warehouse"],
        json!([order.order_id])
    );
}

#[tokio::test]
async fn a_release_before_the_reservation_closes_the_order_so_a_late_reservation_is_refused() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();

    let released = sim
        .call("/warehouse/releases", &unique("key"), &order.ids())
        .await;
    let late = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.reservation("A920-PRO", 1),
        )
        .await;
    let other_order = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.another().reservation("A920-PRO", 1),
        )
        .await;

    assert_eq!(
        released.body,
        json!({"order_id": order.order_id, "released": false, "reservation_id": null})
    );
    assert_eq!((late.status, late.code()), (409, "order_closed"));
    assert_eq!(other_order.status, 201);
    let ledger = sim
        .admin_get(&format!("/admin/ledger?order_id={}", order.order_id))
        .await
        .body;
    assert_eq!(count(&ledger, "reservations"), 0);
    assert_eq!(
        ledger["closed_orders"]["warehouse"],
        json!([order.order_id])
    );
}

#[tokio::test]
async fn a_refund_marks_the_charge_refunded_and_closes_the_order_at_payments() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let nothing_charged = order.another();

    let charged = sim
        .call("/payments/charges", &unique("key"), &order.charge(2500))
        .await;
    let refunded = sim
        .call("/payments/refunds", &unique("key"), &order.ids())
        .await;
    let empty_refund = sim
        .call("/payments/refunds", &unique("key"), &nothing_charged.ids())
        .await;
    let late_charge = sim
        .call("/payments/charges", &unique("key"), &order.charge(2500))
        .await;

    let refund_id = refunded.body["refund_id"].clone();
    assert_eq!(refunded.status, 200);
    assert_eq!(refunded.body["refunded"], true);
    assert_eq!(refunded.body["amount_cents"], 2500);
    assert!(refund_id.as_str().is_some_and(|id| id.starts_with("ref-")));
    assert_eq!(
        empty_refund.body,
        json!({"order_id": nothing_charged.order_id, "refunded": false, "refund_id": null, "amount_cents": 0})
    );
    assert_eq!(
        (late_charge.status, late_charge.code()),
        (409, "order_closed")
    );
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(count(&ledger, "charges"), 1);
    assert_eq!(ledger["charges"][0]["charge_id"], charged.body["charge_id"]);
    assert_eq!(ledger["charges"][0]["status"], "refunded");
    assert_eq!(ledger["charges"][0]["refund_id"], refund_id);
    let mut closed: Vec<Value> = ledger["closed_orders"]["payments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    closed.sort_by_key(|v| v.to_string());
    let mut expected = vec![json!(order.order_id), json!(nothing_charged.order_id)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(closed, expected);
}

#[tokio::test]
async fn provisioning_gives_one_terminal_per_unit_and_deprovisioning_takes_them_back() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let body = json!({
        "order_id": order.order_id,
        "merchant_id": order.merchant_id,
        "lines": [{"sku": "A920-PRO", "quantity": 2}, {"sku": "P400", "quantity": 1}],
    });

    let provisioned = sim
        .call("/terminals/provisionings", &unique("key"), &body)
        .await;
    let deprovisioned = sim
        .call("/terminals/deprovisionings", &unique("key"), &order.ids())
        .await;
    let late = sim
        .call("/terminals/provisionings", &unique("key"), &body)
        .await;

    assert_eq!(provisioned.status, 201, "{:?}", provisioned.body);
    let ids = provisioned.body["terminal_ids"].clone();
    let id_list = ids.as_array().cloned().unwrap_or_default();
    assert_eq!(id_list.len(), 3);
    assert!(id_list
        .iter()
        .all(|id| id.as_str().is_some_and(|id| id.starts_with("TID-"))));
    assert_eq!(deprovisioned.status, 200);
    assert_eq!(
        deprovisioned.body,
        json!({"order_id": order.order_id, "deprovisioned": ids})
    );
    assert_eq!((late.status, late.code()), (409, "order_closed"));
    let ledger = sim.ledger_of(&order.merchant_id).await;
    let skus: Vec<&str> = ledger["terminals"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["sku"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(skus, ["A920-PRO", "A920-PRO", "P400"]);
    assert!(ledger["terminals"]
        .as_array()
        .is_some_and(|ts| ts.iter().all(|t| t["status"] == "deprovisioned")));
}

#[tokio::test]
async fn the_other_operations_answer_their_documented_status_and_are_in_the_ledger() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let serials = json!(["SN-1", "SN-2"]);
    let address = json!({"line1": "Hauptstr. 1", "city": "Berlin"});

    let deactivated = sim
        .call(
            "/terminals/deactivations",
            &unique("key"),
            &json!({"order_id": order.order_id, "merchant_id": order.merchant_id, "serials": serials}),
        )
        .await;
    let label = sim
        .call(
            "/courier/return-labels",
            &unique("key"),
            &json!({"order_id": order.order_id, "merchant_id": order.merchant_id, "serials": serials, "address": address}),
        )
        .await;
    let message = sim
        .call(
            "/notifications/messages",
            &unique("key"),
            &json!({"order_id": order.order_id, "merchant_id": order.merchant_id, "template": "order_shipped", "data": {"tracking": "TRK1"}}),
        )
        .await;
    let shipped = sim
        .call("/courier/shipments", &unique("key"), &order.shipment())
        .await;
    let cancelled = sim
        .call("/courier/cancellations", &unique("key"), &order.ids())
        .await;

    assert_eq!(
        deactivated.body,
        json!({"order_id": order.order_id, "deactivated": serials})
    );
    assert_eq!(deactivated.status, 200);
    assert_eq!(label.status, 201);
    assert!(label.body["return_label_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("rl-")));
    assert!(label.body["label_url"].is_string());
    assert_eq!(message.status, 202);
    assert!(message.body["message_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("msg-")));
    assert_eq!(shipped.status, 201);
    assert!(shipped.body["shipment_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("shp-")));
    let tracking = shipped.body["tracking_number"].as_str().unwrap_or("");
    assert!(
        tracking.len() == 13
            && tracking.starts_with("TRK")
            && tracking[3..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{tracking}"
    );
    assert_eq!(
        cancelled.body,
        json!({"order_id": order.order_id, "cancelled": true, "shipment_id": shipped.body["shipment_id"]})
    );

    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["deactivations"][0]["serials"], serials);
    assert_eq!(
        ledger["return_labels"][0]["return_label_id"],
        label.body["return_label_id"]
    );
    assert_eq!(ledger["messages"][0]["template"], "order_shipped");
    assert_eq!(ledger["shipments"][0]["status"], "cancelled");
    assert_eq!(ledger["shipments"][0]["parcels"], 2);
    assert_eq!(ledger["closed_orders"]["courier"], json!([order.order_id]));
    let keys: Vec<&String> = ledger
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    for key in [
        "reservations",
        "charges",
        "terminals",
        "deactivations",
        "shipments",
        "return_labels",
        "messages",
        "closed_orders",
        "requests",
        "faults_injected",
        "stock",
    ] {
        assert!(keys.iter().any(|k| *k == key), "ledger lacks {key}");
    }
}

#[tokio::test]
async fn the_ledger_filters_effects_by_order_and_merchant_but_counts_globally() {
    let sim = Sim::with_defaults().await;
    let first = Order::fresh();
    let second = first.another();
    let stranger = Order::fresh();
    for order in [&first, &second, &stranger] {
        let reply = sim
            .call("/payments/charges", &unique("key"), &order.charge(100))
            .await;
        assert_eq!(reply.status, 201);
    }

    let of_merchant = sim.ledger_of(&first.merchant_id).await;
    let of_order = sim
        .admin_get(&format!(
            "/admin/ledger?order_id={}&merchant_id={}",
            second.order_id, second.merchant_id
        ))
        .await
        .body;

    assert_eq!(count(&of_merchant, "charges"), 2);
    assert_eq!(count(&of_order, "charges"), 1);
    assert_eq!(of_order["charges"][0]["order_id"], json!(second.order_id));
    assert_eq!(of_order["requests"]["total"], 3);
    assert_eq!(count(&sim.ledger().await, "charges"), 3);
}

#[tokio::test]
async fn with_a_token_partner_requests_need_the_bearer_token_and_admin_requests_do_not() {
    let sim = Sim::start(Config {
        token: Some("s3cret".to_owned()),
        ..Config::default()
    })
    .await;
    let order = Order::fresh();
    let charge = |auth: Option<&str>| {
        let request = sim
            .http
            .post(format!("{}/payments/charges", sim.base))
            .header("Idempotency-Key", unique("key"))
            .json(&order.charge(100));
        match auth {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        }
    };

    let missing = sim.send(charge(None)).await;
    let wrong = sim.send(charge(Some("Bearer nope"))).await;
    let right = sim.send(charge(Some("Bearer s3cret"))).await;
    let ledger = sim.admin_get("/admin/ledger").await;
    let health = sim.admin_get("/health").await;

    assert_eq!((missing.status, missing.code()), (401, "unauthorized"));
    assert_eq!((wrong.status, wrong.code()), (401, "unauthorized"));
    assert_eq!(right.status, 201);
    assert_eq!(ledger.status, 200);
    assert_eq!(count(&ledger.body, "charges"), 1);
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn each_partner_accepts_only_its_own_token() {
    use partner_simulator::operation::Partner;
    let sim = Sim::start(Config {
        partner_tokens: [
            (Partner::Payments, "payments-token".to_owned()),
            (Partner::Warehouse, "warehouse-token".to_owned()),
        ]
        .into_iter()
        .collect(),
        ..Config::default()
    })
    .await;
    let order = Order::fresh();
    let call = |path: &str, body: &Value, token: &str| {
        sim.http
            .post(format!("{}{path}", sim.base))
            .header("Idempotency-Key", unique("key"))
            .header("Authorization", format!("Bearer {token}"))
            .json(body)
    };
    let charge = order.charge(100);
    let reserve = order.reservation("A920-PRO", 1);

    let payments_with_warehouse_token = sim
        .send(call("/payments/charges", &charge, "warehouse-token"))
        .await;
    let payments_with_its_own = sim
        .send(call("/payments/charges", &charge, "payments-token"))
        .await;
    let warehouse_with_payments_token = sim
        .send(call("/warehouse/reservations", &reserve, "payments-token"))
        .await;
    let warehouse_with_its_own = sim
        .send(call("/warehouse/reservations", &reserve, "warehouse-token"))
        .await;

    assert_eq!(
        (
            payments_with_warehouse_token.status,
            payments_with_warehouse_token.code()
        ),
        (401, "unauthorized")
    );
    assert_eq!(payments_with_its_own.status, 201);
    assert_eq!(
        (
            warehouse_with_payments_token.status,
            warehouse_with_payments_token.code()
        ),
        (401, "unauthorized")
    );
    assert_eq!(
        warehouse_with_its_own.status, 201,
        "{:?}",
        warehouse_with_its_own.body
    );
}

#[test]
fn the_binary_refuses_to_listen_on_a_non_loopback_address() {
    let output = must(
        std::process::Command::new(env!("CARGO_BIN_EXE_partner-simulator"))
            .args(["--listen", "0.0.0.0:0"])
            .output(),
        "run partner-simulator",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
}
