//! Fault injection over real HTTP: refusals, outages with a count or a period, slow
//! answers, throttling, determinism from the seed, and the rules API.

mod common;

use common::{unique, within, Order, Sim};
use partner_simulator::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn refuse_declines_a_charge_with_402_and_a_reservation_with_409_out_of_stock() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let bystander = Order::fresh();
    sim.add_rule(json!({"partner": "*", "merchant_id": order.merchant_id, "fault": "refuse"}))
        .await;

    let charge = sim
        .call("/payments/charges", &unique("key"), &order.charge(100))
        .await;
    let reserve = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.reservation("A920-PRO", 1),
        )
        .await;
    let ship = sim
        .call("/courier/shipments", &unique("key"), &order.shipment())
        .await;
    let unaffected = sim
        .call("/payments/charges", &unique("key"), &bystander.charge(100))
        .await;

    assert_eq!((charge.status, charge.code()), (402, "declined"));
    assert_eq!((reserve.status, reserve.code()), (409, "out_of_stock"));
    assert_eq!((ship.status, ship.code()), (422, "rejected"));
    assert_eq!(unaffected.status, 201);
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["charges"], json!([]));
    assert_eq!(ledger["reservations"], json!([]));
    assert_eq!(ledger["faults_injected"]["refuse"], 3);
}

#[tokio::test]
async fn an_unavailable_rule_with_count_two_fails_twice_and_then_the_retry_succeeds() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");
    let id = sim
        .add_rule(json!({
            "partner": "payments", "operation": "charge", "merchant_id": order.merchant_id,
            "fault": "unavailable", "rate": 1.0, "count": 2
        }))
        .await;

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = sim
            .call("/payments/charges", &key, &order.charge(100))
            .await;
        statuses.push((reply.status, reply.code().to_owned(), reply.replayed));
    }

    assert_eq!(
        statuses,
        [
            (503, "unavailable".to_owned(), false),
            (503, "unavailable".to_owned(), false),
            (201, String::new(), false),
        ]
    );
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["charges"].as_array().map(Vec::len), Some(1));
    assert_eq!(ledger["faults_injected"]["unavailable"], 2);
    let rules = sim.admin_get("/admin/faults").await.body;
    assert_eq!(rules["rules"][0]["id"], id);
    assert_eq!(rules["rules"][0]["fired"], 2);
}

#[tokio::test]
async fn throttled_answers_429_with_retry_after_and_does_nothing() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    sim.add_rule(json!({"partner": "notifications", "merchant_id": order.merchant_id, "fault": "throttled", "count": 1}))
        .await;
    let message = json!({"order_id": order.order_id, "merchant_id": order.merchant_id, "template": "t", "data": {}});
    let key = unique("key");

    let throttled = sim.call("/notifications/messages", &key, &message).await;
    let retried = sim.call("/notifications/messages", &key, &message).await;

    assert_eq!((throttled.status, throttled.code()), (429, "throttled"));
    assert_eq!(throttled.retry_after.as_deref(), Some("1"));
    // The retry is carried out for the first time: not an answer kept from the 429.
    assert_eq!((retried.status, retried.replayed), (202, false));
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["messages"].as_array().map(Vec::len), Some(1));
}

/// Which of 200 keys a rate-0.5 rule lets through (`true`) on a new simulator.
async fn decisions(sim: &Sim) -> Vec<bool> {
    let order = Order::fresh();
    sim.add_rule(json!({"partner": "payments", "fault": "unavailable", "rate": 0.5}))
        .await;
    let mut passed = Vec::new();
    for i in 0..200 {
        let reply = sim
            .call("/payments/charges", &format!("key-{i}"), &order.charge(100))
            .await;
        assert!(matches!(reply.status, 201 | 503), "{reply:?}");
        passed.push(reply.status == 201);
    }
    passed
}

#[tokio::test]
async fn rate_decisions_are_the_same_for_the_same_seed_and_differ_for_another_seed() {
    let seeded = |seed| Config {
        seed,
        ..Config::default()
    };
    let first = decisions(&Sim::start(seeded(7)).await).await;
    let same_seed_set_later = {
        let sim = Sim::start(seeded(0)).await;
        let reply = sim
            .send(
                sim.http
                    .put(format!("{}/admin/seed", sim.base))
                    .json(&json!({"seed": 7})),
            )
            .await;
        assert_eq!(
            (reply.status, reply.body.clone()),
            (200, json!({"seed": 7, "draws": "by_key"}))
        );
        decisions(&sim).await
    };
    let other_seed = decisions(&Sim::start(seeded(8)).await).await;

    assert_eq!(first, same_seed_set_later);
    assert_ne!(first, other_seed);
    let passed = first.iter().filter(|p| **p).count();
    assert!(
        (60..=140).contains(&passed),
        "{passed} of 200 passed at rate 0.5"
    );
}

#[tokio::test]
async fn an_outage_for_a_period_expires() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");
    sim.add_rule(json!({"partner": "payments", "merchant_id": order.merchant_id, "fault": "unavailable", "for_ms": 3000}))
        .await;

    let during = sim
        .call("/payments/charges", &key, &order.charge(100))
        .await;
    // Waiting out the period the rule was added for: the rule's own clock started
    // before this sleep, so afterwards it has expired whatever the machine's load.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let after = sim
        .call("/payments/charges", &key, &order.charge(100))
        .await;

    assert_eq!(during.status, 503);
    assert_eq!(after.status, 201);
    let rules = sim.admin_get("/admin/faults").await.body;
    assert_eq!(rules["rules"][0]["expired"], true);
    assert_eq!(rules["rules"][0]["fired"], 1);
}

#[tokio::test]
async fn a_slow_answer_comes_after_its_delay_and_names_the_effect_in_the_ledger() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    sim.add_rule(json!({"partner": "payments", "merchant_id": order.merchant_id, "fault": "slow", "delay_ms": 300}))
        .await;

    let started = Instant::now();
    let reply = sim
        .call("/payments/charges", &unique("key"), &order.charge(100))
        .await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, 201);
    let ledger = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(ledger["charges"][0]["charge_id"], reply.body["charge_id"]);
    assert_eq!(ledger["faults_injected"]["slow"], 1);
}

#[tokio::test]
async fn during_a_slow_answer_the_effect_is_done_and_a_retry_gets_the_kept_answer_at_once() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    let key = unique("key");
    // Ten minutes: the first answer cannot arrive while this test runs.
    sim.add_rule(json!({"partner": "payments", "merchant_id": order.merchant_id, "fault": "slow", "delay_ms": 600_000}))
        .await;

    let first = {
        let (http, url, key, body) = (
            sim.http.clone(),
            format!("{}/payments/charges", sim.base),
            key.clone(),
            order.charge(100),
        );
        tokio::spawn(async move {
            http.post(url)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
        })
    };
    let ledger = sim
        .ledger_until(&order.merchant_id, "the slow charge in the ledger", |l| {
            l["charges"].as_array().is_some_and(|c| !c.is_empty())
        })
        .await;
    let retry = within(
        "the retry's answer",
        sim.call("/payments/charges", &key, &order.charge(100)),
    )
    .await;

    assert!(!first.is_finished(), "the slow answer came early");
    first.abort();
    assert_eq!((retry.status, retry.replayed), (201, true));
    assert_eq!(retry.body["charge_id"], ledger["charges"][0]["charge_id"]);
    let after = sim.ledger_of(&order.merchant_id).await;
    assert_eq!(after["charges"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_rule_naming_a_sku_hits_only_requests_whose_lines_name_it() {
    let sim = Sim::with_defaults().await;
    let order = Order::fresh();
    sim.add_rule(json!({"partner": "warehouse", "operation": "reserve", "sku": "A920-PRO", "fault": "refuse"}))
        .await;

    let named = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.reservation("A920-PRO", 1),
        )
        .await;
    let other = sim
        .call(
            "/warehouse/reservations",
            &unique("key"),
            &order.another().reservation("P400", 1),
        )
        .await;

    assert_eq!((named.status, named.code()), (409, "out_of_stock"));
    assert_eq!(other.status, 201);
}

#[tokio::test]
async fn rules_are_listed_with_their_defaults_and_can_be_removed_one_or_all() {
    let sim = Sim::with_defaults().await;
    let added = sim
        .admin_post(
            "/admin/faults",
            &json!({"rules": [
                {"partner": "courier", "operation": "deliver", "fault": "hold"},
                {"partner": "payments", "fault": "slow"},
                {"partner": "*", "fault": "throttled", "rate": 0.25, "count": 3, "for_ms": 60000},
            ]}),
        )
        .await;
    assert_eq!(
        (added.status, added.body.clone()),
        (201, json!({"ids": [1, 2, 3]}))
    );

    let listed = sim.admin_get("/admin/faults").await.body;
    let slow = &listed["rules"][1];
    assert_eq!(slow["operation"], "*");
    assert_eq!(slow["rate"], 1.0);
    assert_eq!(slow["delay_ms"], 3000);
    assert_eq!(slow["count"], Value::Null);
    assert_eq!(slow["fired"], 0);

    let removed = sim
        .send(sim.http.delete(format!("{}/admin/faults/2", sim.base)))
        .await;
    let unknown = sim
        .send(sim.http.delete(format!("{}/admin/faults/2", sim.base)))
        .await;
    let left: Vec<Value> = sim.admin_get("/admin/faults").await.body["rules"]
        .as_array()
        .map(|rules| rules.iter().map(|r| r["id"].clone()).collect())
        .unwrap_or_default();
    let cleared = sim
        .send(sim.http.delete(format!("{}/admin/faults", sim.base)))
        .await;
    let next = sim.add_rule(json!({"fault": "unavailable"})).await;

    assert_eq!(removed.status, 200);
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    assert_eq!(left, [json!(1), json!(3)]);
    assert_eq!(cleared.body, json!({"removed": 2}));
    assert_eq!(next, 4, "ids are never reused");
}

#[tokio::test]
async fn invalid_rules_are_refused_with_400_and_none_of_them_is_added() {
    let sim = Sim::with_defaults().await;
    for rules in [
        json!([{"partner": "bank", "fault": "unavailable"}]),
        json!([{"partner": "payments", "operation": "reserve", "fault": "unavailable"}]),
        json!([{"partner": "courier", "operation": "ship", "fault": "hold"}]),
        json!([{"fault": "unavailable", "rate": 2}]),
        json!([{"fault": "explode"}]),
        json!([{"fault": "slow"}, {"fault": "unavailable", "merchant": "m-1"}]),
    ] {
        let reply = sim
            .admin_post("/admin/faults", &json!({ "rules": rules }))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_request"),
            "{rules}"
        );
    }
    assert_eq!(
        sim.admin_get("/admin/faults").await.body["rules"],
        json!([])
    );
}
