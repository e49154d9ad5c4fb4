//! Our own infrastructure in trouble, injected by the invoke router with AWS's own error
//! shapes (`PUT /__faults`): DynamoDB throttling, Step Functions throttling, the
//! order-events bus down. The API answers `503` with `Retry-After` and a documented code,
//! never a 500, and a retry with the same key finishes the request; the bus being down
//! never touches a step (events leave through the outbox) and only delays the events.
//!
//! A failed write of the order's owner (its execution, recorded before it starts) leaves
//! nothing running behind the order: a cancel after the retry's TakePayment rolls it back
//! with a refund.
//!
//! The router's faults hold for the whole stack, so the tests of this file take turns
//! (`TURN`); each rule also expires by itself, so a failed test leaves nothing behind.
//! The moto stack only: on MiniStack the functions call MiniStack directly.

use serde_json::json;
use std::time::Duration;
use system_tests::{
    fault, skip_on, steps, unique_key, unique_merchant, valid_order, Backend, Stack,
    COMPLETED_NEW_ORDER,
};

/// The router's faults are one setting for the whole stack: one test of this file at a
/// time sets them.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NOT_ROUTED: &str = "MiniStack's functions call MiniStack directly, not the invoke router";

fn retry_after(reply: &system_tests::Reply) -> Option<u64> {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_throttled_table_answers_a_placement_503_with_retry_after_and_the_same_key_then_places_it(
) {
    if skip_on(Backend::MiniStack, NOT_ROUTED) {
        return;
    }
    let _turn = TURN.lock().await;
    let stack = Stack::connect().await;
    let key = unique_key();
    let body = valid_order(&unique_merchant()).to_string();
    stack
        .inject_aws_faults(
            json!([{"service": "dynamodb", "operation": "TransactWriteItems",
                                   "error": "throttling", "share": 1.0, "seconds": 30}]),
        )
        .await;
    let refused = stack.post_order(Some(&key), &body).await;
    stack.clear_aws_faults().await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.body["code"], "store_unavailable",
        "{}",
        refused.text
    );
    assert!(
        retry_after(&refused).is_some_and(|s| s >= 1),
        "{:?}",
        refused.headers
    );

    let placed = stack.post_order(Some(&key), &body).await;
    assert_eq!(placed.status, 202, "{}", placed.text);
    let id = placed.body["order_id"].as_str().unwrap_or_default();
    assert_eq!(stack.get(&format!("/orders/{id}")).await.status, 200);
}

#[tokio::test]
async fn a_throttled_step_functions_answers_503_workflow_unavailable_and_the_retry_starts_the_workflow(
) {
    if skip_on(Backend::MiniStack, NOT_ROUTED) {
        return;
    }
    let _turn = TURN.lock().await;
    let stack = Stack::connect().await;
    let key = unique_key();
    let body = valid_order(&unique_merchant()).to_string();
    stack
        .inject_aws_faults(json!([{"service": "states", "operation": "StartExecution",
                                   "error": "throttling", "share": 1.0, "seconds": 30}]))
        .await;
    let refused = stack.post_order(Some(&key), &body).await;
    stack.clear_aws_faults().await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.body["code"], "workflow_unavailable",
        "{}",
        refused.text
    );
    assert!(
        retry_after(&refused).is_some_and(|s| s >= 1),
        "{:?}",
        refused.headers
    );

    let placed = stack.post_order(Some(&key), &body).await;
    assert_eq!(placed.status, 202, "{}", placed.text);
    let id = placed.body["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        stack.executions_named(&id).await,
        1,
        "the retry started the one execution"
    );
    stack.wait_for_status(&id, &["SHIPPED", "COMPLETED"]).await;
}

#[tokio::test]
async fn an_event_bus_outage_delays_the_orders_events_but_never_its_steps_and_each_arrives_once_after(
) {
    if skip_on(Backend::MiniStack, NOT_ROUTED) {
        return;
    }
    let _turn = TURN.lock().await;
    let stack = Stack::connect().await;
    let (id, arn) = stack
        .place_under(&[fault("courier", "deliver", "hold")])
        .await;
    // From now on the bus is down: every PutEvents answers 503.
    let outage = Duration::from_secs(30);
    let began = std::time::Instant::now();
    stack
        .inject_aws_faults(json!([{"service": "events", "operation": "PutEvents",
                                   "error": "unavailable", "share": 1.0,
                                   "seconds": outage.as_secs()}]))
        .await;
    // The steps go on while the bus is down: no step publishes (its event is in the
    // outbox), so none waits, let alone rolls back.
    stack.order_waiting_for(&id).await;
    let shipped_during_the_outage = began.elapsed() < outage;
    let entered = stack.states_entered(&arn).await;
    assert!(
        !entered
            .iter()
            .any(|s| s.starts_with("Note") && s.ends_with("Outage")),
        "a step waited for the bus: {entered:?}"
    );
    stack.partners().deliver(&id).await;
    let view = stack
        .wait_for_status(&id, &["COMPLETED", "FAILED", "CANCELLED"])
        .await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let undone: Vec<String> = steps(&view)
        .into_iter()
        .map(|(step, _, _)| step)
        .filter(|step| {
            order_core::steps::by_name(step)
                .is_some_and(|s| s.role != order_core::steps::StepRole::Forward)
        })
        .collect();
    assert!(undone.is_empty(), "the outage undid {undone:?}: {view}");
    stack
        .partners()
        .ledger(&id)
        .await
        .assert_statuses(COMPLETED_NEW_ORDER);
    // Once the bus is back, the outbox's events arrive, each once.
    let arrived = tap_events_of(&stack, &id, 4).await;
    let want: Vec<String> = ["ACCEPTED", "COMPLETED", "DELIVERED", "SHIPPED"]
        .iter()
        .map(|s| format!("{id}/{s}"))
        .collect();
    assert_eq!(
        arrived.keys().cloned().collect::<Vec<_>>(),
        want,
        "{arrived:?}"
    );
    assert!(arrived.values().all(|n| *n == 1), "once each: {arrived:?}");
    assert!(
        shipped_during_the_outage,
        "the order shipped only after the outage ({:?}): the test did not test it",
        began.elapsed()
    );
}

/// Reads the stack's tap queue (every order event reaches it, as an integrator
/// subscribes) until `count` event ids of `order` arrived and 3 s more passed, or two
/// minutes ran out; returns how many times each arrived. Other orders' messages are set
/// aside for that long and come back for whoever reads them.
async fn tap_events_of(
    stack: &Stack,
    order: &str,
    count: usize,
) -> std::collections::BTreeMap<String, usize> {
    let aside = Duration::from_secs(120);
    let mut arrived = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    let mut complete: Option<std::time::Instant> = None;
    while started.elapsed() < aside {
        if arrived.len() >= count {
            let at = *complete.get_or_insert_with(std::time::Instant::now);
            if at.elapsed() >= Duration::from_secs(3) {
                break;
            }
        }
        for body in stack.take_tap_events(|o| o == order, aside).await {
            let event_id = body["detail"]["event_id"].as_str().unwrap_or_default();
            *arrived.entry(event_id.to_owned()).or_insert(0) += 1;
        }
    }
    arrived
}

#[tokio::test]
async fn a_cancel_after_take_payment_of_an_order_whose_execution_write_failed_rolls_it_back_with_a_refund(
) {
    if skip_on(Backend::MiniStack, NOT_ROUTED) {
        return;
    }
    let _turn = TURN.lock().await;
    let stack = Stack::connect().await;
    // Provisioning is down for a while: the order will wait there, charged.
    let merchant = stack
        .partners()
        .merchant_with(json!([{"partner": "terminals", "operation": "provision",
                               "fault": "unavailable", "for_ms": 20000}]))
        .await;
    let key = unique_key();
    let body = valid_order(&merchant).to_string();
    // The write that records the order's execution (the claim, before StartExecution)
    // fails, through every retry of the SDK.
    stack
        .inject_aws_faults(json!([{"service": "dynamodb", "operation": "UpdateItem",
            "body_contains": "SET execution_arn = :arn", "error": "internal", "seconds": 30}]))
        .await;
    let refused = stack.post_order(Some(&key), &body).await;
    stack.clear_aws_faults().await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(retry_after(&refused).is_some(), "{:?}", refused.headers);
    // Stored, with no execution recorded, and none started.
    let store = stack.store();
    let stored = store
        .orders_of_merchant(&merchant, None, 10)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let [order] = stored.as_slice() else {
        panic!("expected the one order stored: {stored:?}")
    };
    let id = order.order_id.to_string();
    assert_eq!(order.execution_arn, None);
    assert_eq!(
        stack.executions_of(&id).await,
        Vec::<(String, String)>::new()
    );

    // The merchant's retry starts it; it takes the payment and waits for provisioning.
    let placed = stack.post_order(Some(&key), &body).await;
    assert_eq!(placed.status, 202, "{}", placed.text);
    assert_eq!(placed.body["order_id"], id.as_str());
    stack.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
    let cancelled = stack.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLING", "{}", cancelled.text);
    let view = stack
        .wait_for_status(&id, &["CANCELLED", "FAILED", "COMPLETED"])
        .await;
    assert_eq!(view["status"], "CANCELLED", "{view}");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[("reservations", &["released"]), ("charges", &["refunded"])]);
    assert_eq!(
        stack.executions_of(&id).await,
        [(id.clone(), "SUCCEEDED".to_owned())],
        "one execution drove it"
    );
}
