//! Our own infrastructure in trouble, injected by the invoke router with AWS's own error
//! shapes (`PUT /__faults`): DynamoDB throttling, Step Functions throttling, the
//! order-events bus down. The API answers `503` with `Retry-After` and a documented code,
//! never a 500, and a retry with the same key finishes the request; the workflow waits the
//! trouble out and never rolls a paid order back for it.
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
async fn an_event_bus_outage_after_shipment_is_waited_out_and_the_shipped_order_completes_with_nothing_undone(
) {
    if skip_on(Backend::MiniStack, NOT_ROUTED) {
        return;
    }
    let _turn = TURN.lock().await;
    let stack = Stack::connect().await;
    let (id, arn) = stack
        .place_under(&[fault("courier", "deliver", "hold")])
        .await;
    // From now on the bus is down for longer than ArrangeShipment's fast retries (four
    // attempts, each with the SDK's five): its Order Shipped cannot be published.
    let outage = Duration::from_secs(45);
    stack
        .inject_aws_faults(json!([{"service": "events", "operation": "PutEvents",
                                   "error": "unavailable", "share": 1.0,
                                   "seconds": outage.as_secs()}]))
        .await;
    let entered = stack
        .wait_for_states(&arn, &["NoteArrangeShipmentOutage", "WaitOutOutage"])
        .await;
    tokio::time::sleep(outage).await;
    stack.clear_aws_faults().await;
    stack
        .wait_for(&id, "shipped and waiting for its courier", |view| {
            view["status"] == "SHIPPED"
                && steps(view)
                    .iter()
                    .any(|(step, _, _)| step == "AwaitDelivery")
        })
        .await;
    stack.partners().deliver(&id).await;
    let view = stack
        .wait_for_status(&id, &["COMPLETED", "FAILED", "CANCELLED"])
        .await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let undone: Vec<String> = steps(&view)
        .into_iter()
        .map(|(step, _, _)| step)
        .filter(|step| {
            order_core::steps::by_name(step).is_some_and(|s| {
                s.role == order_core::steps::StepRole::Compensation
                    || s.role == order_core::steps::StepRole::Record
            })
        })
        .collect();
    assert!(undone.is_empty(), "the outage undid {undone:?}: {view}");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(COMPLETED_NEW_ORDER);
    assert!(
        entered.iter().any(|s| s == "WaitOutOutage"),
        "the outage was never waited out: {entered:?}"
    );
}
