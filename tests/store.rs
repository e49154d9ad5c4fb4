//! The DynamoDB store against the emulator: create-if-absent, idempotency keys,
//! conditional status changes, the activity ledger and the indexes.

use order_core::store::{Placement, StepStart, StepStatus, StoreError, Transition};
use order_core::{ActivityError, ErrorName, Order, OrderId, OrderStatus};
use std::collections::BTreeMap;
use system_tests::{catalogue, unique_key, unique_merchant, valid_order, Stack};

fn order_for(merchant: &str) -> Order {
    Order::parse(&valid_order(merchant), &catalogue())
        .unwrap_or_else(|problems| panic!("{problems}"))
}

async fn placed(stack: &Stack) -> (OrderId, Order) {
    let order = order_for(&unique_merchant());
    match stack
        .store()
        .place_order(&unique_key(), &order, "hash-1")
        .await
    {
        Ok(Placement::Created(record)) => (record.order_id, order),
        other => panic!("expected a new order, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_order_and_its_idempotency_key_are_written_together() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let order = order_for(&merchant);
    let Ok(Placement::Created(record)) = stack.store().place_order(&key, &order, "h").await else {
        panic!("the order was not created");
    };
    assert_eq!(record.status, OrderStatus::Accepted);
    assert_eq!(record.version, 1);
    assert_eq!(stack.items_under(&format!("IDEMPOTENCY#{key}")).await, 1);
    let stored = stack.store().get_order(&record.order_id).await;
    assert_eq!(stored, Ok(Some(record)));
}

#[tokio::test]
async fn the_same_key_and_request_find_the_first_order_and_write_nothing_new() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let order = order_for(&merchant);
    let store = stack.store();
    let Ok(Placement::Created(first)) = store.place_order(&key, &order, "same").await else {
        panic!("the order was not created");
    };
    let again = store.place_order(&key, &order, "same").await;
    assert_eq!(again, Ok(Placement::Replayed(first)));
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_reported_as_reused() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let store = stack.store();
    let Ok(Placement::Created(first)) = store.place_order(&key, &order_for(&merchant), "a").await
    else {
        panic!("the order was not created");
    };
    let other = order_for(&unique_merchant());
    let again = store.place_order(&key, &other, "b").await;
    assert_eq!(
        again,
        Ok(Placement::KeyReused {
            order_id: first.order_id
        })
    );
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_order() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let order = order_for(&merchant);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, key, order) = (stack.store(), key.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            store.place_order(&key, &order, "same").await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        match task.await {
            Ok(Ok(Placement::Created(r) | Placement::Replayed(r))) => {
                ids.insert(r.order_id);
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
}

#[tokio::test]
async fn a_status_change_bumps_the_version_and_moves_the_order_in_the_status_index() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let moved = store
        .transition(&id, OrderStatus::Accepted, OrderStatus::Validated, None)
        .await;
    let moved = moved.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(moved.status, OrderStatus::Validated);
    assert_eq!(moved.version, 2);
    let listed = stack
        .items_where(
            Some(order_core::store::BY_STATUS_INDEX),
            "gsi2pk",
            "STATUS#VALIDATED",
        )
        .await;
    let found = listed.iter().any(|item| {
        item.get("order_id")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(id.as_str())
    });
    assert!(found, "order {id} is not listed under STATUS#VALIDATED");
}

#[tokio::test]
async fn a_status_change_from_a_status_the_order_has_left_is_a_conflict_and_changes_nothing() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let result = store
        .transition(
            &id,
            OrderStatus::Validated,
            OrderStatus::StockReserved,
            None,
        )
        .await;
    assert_eq!(
        result.map(|r| r.status),
        Err(StoreError::Conflict {
            order_id: id.clone(),
            expected: OrderStatus::Validated,
            actual: OrderStatus::Accepted,
        })
    );
    let unchanged = store
        .require_order(&id)
        .await
        .map(|r| (r.status, r.version));
    assert_eq!(unchanged, Ok((OrderStatus::Accepted, 1)));
}

#[tokio::test]
async fn an_illegal_transition_is_refused_before_anything_is_written() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let result = stack
        .store()
        .transition(&id, OrderStatus::Accepted, OrderStatus::Delivered, None)
        .await;
    assert!(
        matches!(result, Err(StoreError::IllegalTransition { .. })),
        "{result:?}"
    );
    let version = stack.store().require_order(&id).await.map(|r| r.version);
    assert_eq!(version, Ok(1));
}

#[tokio::test]
async fn changing_the_status_of_a_missing_order_says_it_does_not_exist() {
    let stack = Stack::connect().await;
    let id = OrderId::generate();
    let result = stack
        .store()
        .transition(&id, OrderStatus::Accepted, OrderStatus::Validated, None)
        .await;
    assert_eq!(
        result.map(|r| r.status),
        Err(StoreError::NotFound(id.clone()))
    );
    assert_eq!(stack.items_under(&format!("ORDER#{id}")).await, 0);
}

#[tokio::test]
async fn a_step_that_succeeded_is_not_started_again() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let Ok(StepStart::Started(first)) = store.begin_step(&id, "ValidateOrder").await else {
        panic!("the step did not start");
    };
    assert_eq!(first.attempts, 1);
    let references = BTreeMap::from([("checked".to_owned(), "yes".to_owned())]);
    let transition = Transition {
        from: OrderStatus::Accepted,
        to: OrderStatus::Validated,
        failure: None,
    };
    let done = store
        .succeed_step(&id, "ValidateOrder", references.clone(), Some(transition))
        .await;
    assert_eq!(done.as_ref().map(|s| s.status), Ok(StepStatus::Succeeded));
    match store.begin_step(&id, "ValidateOrder").await {
        Ok(StepStart::AlreadySucceeded(record)) => {
            assert_eq!(record.attempts, 1);
            assert_eq!(record.references, references);
        }
        other => panic!("expected the recorded result, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_step_is_retried_with_its_attempts_counted() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let error = ActivityError::new(ErrorName::PartnerUnavailable, "warehouse answered 503");
    for _ in 0..2 {
        assert!(matches!(
            store.begin_step(&id, "ReserveStock").await,
            Ok(StepStart::Started(_))
        ));
        assert_eq!(store.fail_step(&id, "ReserveStock", &error).await, Ok(()));
    }
    let Ok(Some((_, steps))) = store.get_order_with_steps(&id).await else {
        panic!("order {id} not found");
    };
    let step = steps.iter().find(|s| s.step == "ReserveStock");
    let summary = step.map(|s| (s.status, s.attempts, s.error.clone()));
    assert_eq!(
        summary,
        Some((
            StepStatus::Failed,
            2,
            Some("Partner.Unavailable".to_owned())
        ))
    );
}

#[tokio::test]
async fn a_step_success_whose_status_change_conflicts_records_neither() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    assert!(matches!(
        store.begin_step(&id, "CompleteOrder").await,
        Ok(StepStart::Started(_))
    ));
    let wrong = Transition {
        from: OrderStatus::Validated,
        to: OrderStatus::StockReserved,
        failure: None,
    };
    let result = store
        .succeed_step(&id, "CompleteOrder", BTreeMap::new(), Some(wrong))
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Conflict {
                actual: OrderStatus::Accepted,
                ..
            })
        ),
        "{result:?}"
    );
    let Ok(Some((order, steps))) = store.get_order_with_steps(&id).await else {
        panic!("order {id} not found");
    };
    assert_eq!(order.status, OrderStatus::Accepted);
    assert_eq!(
        steps.iter().map(|s| s.status).collect::<Vec<_>>(),
        [StepStatus::Started]
    );
}

#[tokio::test]
async fn writes_made_while_another_transaction_is_cancelled_are_kept() {
    // A cancelled transaction (here: a replayed idempotency key) must not undo what other
    // requests wrote meanwhile. Stock moto 5.2.5 restores whole-table snapshots and loses
    // such writes; infra/moto/server.py makes item operations atomic, as on AWS.
    let stack = Stack::connect().await;
    let key = unique_key();
    let order = order_for(&unique_merchant());
    let first = match stack.store().place_order(&key, &order, "h").await {
        Ok(Placement::Created(record)) => record.order_id,
        other => panic!("expected a new order, got {other:?}"),
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, key, order, first) = (stack.store(), key.clone(), order.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                // Cancelled every time: the key exists, and its order is found instead.
                let replayed = store.place_order(&key, &order, "h").await;
                assert!(
                    matches!(&replayed, Ok(Placement::Replayed(record)) if record.order_id == first),
                    "{replayed:?}"
                );
            }
            Vec::new()
        }));
    }
    for _ in 0..4 {
        let stack_store = stack.store();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..40 {
                let placed = stack_store.place_order(&unique_key(), &order, "h").await;
                let Ok(Placement::Created(record)) = placed else {
                    panic!("a new key did not create an order: {placed:?}");
                };
                let started = stack_store
                    .begin_step(&record.order_id, "ValidateOrder")
                    .await;
                assert!(
                    matches!(started, Ok(StepStart::Started(_))),
                    "order {}: {started:?}",
                    record.order_id
                );
                ids.push(record.order_id);
            }
            ids
        }));
    }
    let mut written = Vec::new();
    for task in tasks {
        written.extend(
            task.await
                .expect("a writer task failed (see its panic above)"),
        );
    }
    assert_eq!(written.len(), 160);
    for id in written {
        let found = stack.store().get_order_with_steps(&id).await;
        let steps = match found {
            Ok(Some((_, steps))) => steps
                .iter()
                .map(|s| (s.step.clone(), s.attempts))
                .collect::<Vec<_>>(),
            other => panic!("order {id} lost or unreadable: {other:?}"),
        };
        assert_eq!(steps, [("ValidateOrder".to_owned(), 1)], "order {id}");
    }
}
