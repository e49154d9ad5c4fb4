//! Getting stopped orders going again (`order_core::recovery`), against the real stack:
//! the reconciler resumes an order whose workflow never started, a resumed execution
//! replays finished steps without repeating them, an order resumed too often is parked
//! once in the dead-letter queue, and an order the workflow dead-lettered finishes its
//! rollback when resumed, keeping the reason it failed for.
//!
//! Tests in this file run each other's reconciler passes over their orders, and a pass
//! may race a test's resume by hand: every resumer records the execution it starts on the
//! order first, conditionally, so exactly one of them drives the order and the others
//! learn who. Each test asserts on its own order's outcome (one execution ran it on, it
//! ended as it should, each partner effect once), never on which resumer won.

use order_core::recovery::{self, RecoveryError, Resumption};
use order_core::store::OrderStore;
use order_core::{OrderId, OrderStatus};
use serde_json::{json, Value};
use std::time::Duration;
use system_tests::{fault, step, valid_order, Stack, COMPLETED_NEW_ORDER};

const ENDED: [&str; 4] = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];

/// One reconciler pass over the stack (orders still for a second), resuming at most three
/// times.
async fn reconcile(stack: &Stack) {
    stack.reconcile(3).await;
}

/// A resume by hand, racing whatever pass runs: it resumed the order, or someone else did
/// first (their execution is recorded, or runs). The execution that drives the order now.
async fn resume_or_learn_who(stack: &Stack, id: &OrderId) -> String {
    match recovery::resume(&stack.store(), &stack.workflow(), id).await {
        Ok(Resumption { execution_arn, .. }) => execution_arn,
        Err(RecoveryError::ResumedElsewhere {
            execution_arn: Some(arn),
            ..
        })
        | Err(RecoveryError::StillRunning {
            execution_arn: arn, ..
        }) => arn,
        Err(error) => panic!("resume: {error}"),
    }
}

/// The order's executions that ran (or run): exactly one resumed it, `<id>-r1`.
async fn assert_resumed_once(stack: &Stack, id: &str) {
    let executions = stack.executions_of(id).await;
    let resumed: Vec<&String> = executions
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{id}-r")))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(resumed, [&format!("{id}-r1")], "{executions:?}");
}

async fn order(store: &OrderStore, id: &OrderId) -> order_core::store::OrderRecord {
    store
        .require_order(id)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn an_order_whose_workflow_never_started_is_resumed_by_the_reconciler_and_completes() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = stack.order_without_execution().await;
    stack.backdate(id.as_str(), 60).await;
    reconcile(&stack).await;
    let resumed = order(&store, &id).await;
    // The execution the API would have started: named after the order.
    assert_eq!(
        resumed.execution_arn.as_deref(),
        Some(stack.workflow().execution_arn(id.as_str()).as_str())
    );
    let view = stack.wait_for_status(id.as_str(), &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let ledger = stack.partners().ledger(id.as_str()).await;
    assert_eq!(ledger.statuses("charges"), ["captured"], "{ledger:?}");
}

#[tokio::test]
async fn an_aborted_execution_is_resumed_and_carries_on_without_repeating_finished_steps() {
    let stack = Stack::connect().await;
    let store = stack.store();
    // Provisioning is down for a while: the order waits, charged.
    let merchant = stack
        .partners()
        .merchant_with(json!([{"partner": "terminals", "operation": "provision",
                               "fault": "unavailable", "for_ms": 6000}]))
        .await;
    let started = std::time::Instant::now();
    let (id, arn) = stack.place(&valid_order(&merchant)).await;
    stack.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
    stack.stop_execution(&arn).await;
    // AWS reports a stopped execution ABORTED; moto reports it FAILED.
    let stopped = stack.execution_status(&arn).await;
    assert!(
        ["ABORTED", "FAILED"].contains(&stopped.as_str()),
        "{stopped}"
    );
    if let Some(left) = Duration::from_millis(6500).checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }

    // The other tests' reconciler passes may resume it first: either way one execution
    // drives it on.
    let order_id = OrderId::parse(&id).unwrap_or_else(OrderId::generate);
    let resumed = resume_or_learn_who(&stack, &order_id).await;
    assert!(resumed.ends_with(&format!(":{id}-r1")), "{resumed}");
    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let recorded = store
        .require_order(&order_id)
        .await
        .ok()
        .and_then(|o| o.execution_arn);
    assert_eq!(recorded.as_deref(), Some(resumed.as_str()));
    for finished in ["ValidateOrder", "ReserveStock", "TakePayment"] {
        assert_eq!(
            step(&view, finished)["attempts"],
            1,
            "{finished} ran again: {view}"
        );
    }
    assert_resumed_once(&stack, &id).await;
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(COMPLETED_NEW_ORDER);
}

#[tokio::test]
async fn an_order_resumed_as_often_as_allowed_is_parked_once_with_the_reason() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = stack.order_without_execution().await;
    stack.counted_as_resumed(&id, 3).await;
    stack.backdate(id.as_str(), 60).await;
    // Two passes at once (the schedule's and an operator's `orderctl reconcile`): it is
    // parked once, with one dead letter.
    tokio::join!(reconcile(&stack), reconcile(&stack));
    reconcile(&stack).await;
    let parked = order(&store, &id).await;
    assert_eq!(parked.status, OrderStatus::Accepted);
    assert_eq!(parked.execution_arn, None, "a parked order is not resumed");
    let reason = parked.parked.map(|p| p.reason).unwrap_or_default();
    assert!(reason.contains("resumed 3 times"), "{reason}");
    // A look walks the whole queue (a receive that leaves messages visible sees only the
    // first few again and again, and the queue holds other tests' letters too).
    let letters = stack
        .dead_letters()
        .look(10_000)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let mine: Vec<_> = letters
        .iter()
        .filter(|l| l.body.order_id == id.as_str())
        .map(|l| (l.body.source.clone(), l.body.error.clone()))
        .collect();
    assert_eq!(
        mine,
        [(
            "reconciler".to_owned(),
            Some("Reconciler.GaveUp".to_owned())
        )]
    );
}

#[tokio::test]
async fn resuming_an_order_whose_execution_is_running_is_refused() {
    let stack = Stack::connect().await;
    let (id, arn) = stack.order_waiting_for_its_courier().await;
    let order_id = OrderId::parse(&id).unwrap_or_else(OrderId::generate);
    let refused = recovery::resume(&stack.store(), &stack.workflow(), &order_id).await;
    assert!(
        matches!(&refused, Err(RecoveryError::StillRunning { execution_arn, .. }) if *execution_arn == arn),
        "{refused:?}"
    );
    stack.partners().deliver(&id).await;
    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
}

#[tokio::test]
async fn a_dead_lettered_order_finishes_its_rollback_when_resumed_and_keeps_its_first_reason() {
    let stack = Stack::connect().await;
    let (id, arn) = stack
        .place_under(&[
            fault("payments", "charge", "refuse"),
            json!({"partner": "warehouse", "operation": "release", "fault": "refuse", "count": 1}),
        ])
        .await;
    assert_eq!(stack.execution_status(&arn).await, "FAILED");
    let stuck: Value = stack.get(&format!("/orders/{id}")).await.body;
    assert_eq!(stuck["status"], "COMPENSATING", "{stuck}");
    assert_eq!(stuck["failure"]["error"], "Payment.Declined", "{stuck}");

    // A pass may resume it first, or even finish its rollback: any of them drives it.
    let order_id = OrderId::parse(&id).unwrap_or_else(OrderId::generate);
    match recovery::resume(&stack.store(), &stack.workflow(), &order_id).await {
        Ok(_)
        | Err(RecoveryError::ResumedElsewhere { .. })
        | Err(RecoveryError::StillRunning { .. })
        | Err(RecoveryError::Ended { .. }) => {}
        Err(error) => panic!("resume: {error}"),
    }
    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "FAILED", "{view}");
    assert_eq!(view["failure"]["step"], "TakePayment", "{view}");
    assert_eq!(view["failure"]["error"], "Payment.Declined", "{view}");
    assert_eq!(step(&view, "ReleaseStock")["status"], "SUCCEEDED");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[("reservations", &["released"]), ("charges", &[])]);
}
