//! The DynamoDB ledger against the emulator: the ledger's contract suite
//! (`order_core::store::contract`, the same checks `cargo test -p order-core` runs on the
//! in-memory twin), and what only the table has: the items and index entries it writes,
//! and writes that survive another request's cancelled transaction.

mod contract {
    order_core::ledger_contract!(system_tests::Stack::connect().await.store());
}

use order_core::store::{Placement, StepStart, Transition};
use order_core::{Order, OrderId, OrderStatus};
use system_tests::{catalogue, unique_key, unique_merchant, valid_order, Stack};

fn order_for(merchant: &str) -> Order {
    Order::parse(&valid_order(merchant), &catalogue())
        .unwrap_or_else(|problems| panic!("{problems}"))
}

async fn placed(stack: &Stack) -> (OrderId, Order) {
    let order = order_for(&unique_merchant());
    let record = order_core::store::contract::store_order(&stack.store(), &order).await;
    (record.order_id, order)
}

#[tokio::test]
async fn a_new_order_and_its_idempotency_key_are_written_together() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let order = order_for(&merchant);
    let Ok(Placement::Created(record)) = stack
        .store()
        .place_order(&order_core::store::contract::caller(), &key, &order, "h")
        .await
    else {
        panic!("the order was not created");
    };
    assert_eq!(record.status, OrderStatus::Accepted);
    assert_eq!(record.version, 1);
    let caller = order_core::store::contract::caller();
    let pk = order_core::store::idempotency_pk(&caller, &key);
    assert_eq!(stack.items_under(&pk).await, 1);
    let stored = stack.store().get_order(&record.order_id).await;
    assert_eq!(stored, Ok(Some(record)));
}

#[tokio::test]
async fn a_status_change_bumps_the_version_and_moves_the_order_to_its_shard_of_the_status_index_which_holds_keys_only(
) {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let moved = store
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Validated),
        )
        .await;
    let moved = moved.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(moved.status, OrderStatus::Validated);
    assert_eq!(moved.version, 2);
    let shard = order_core::store::status_shard(&id);
    let listed = stack
        .items_where(
            Some(order_core::store::BY_STATUS_INDEX),
            "gsi2pk",
            &format!("STATUS#VALIDATED#{shard}"),
        )
        .await;
    let pk = format!("ORDER#{id}");
    let entry = listed
        .iter()
        .find(|item| item.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
        .unwrap_or_else(|| panic!("order {id} is not listed under STATUS#VALIDATED#{shard}"));
    // Keys only: the table's and the index's, no name, address or anything else.
    let mut attributes: Vec<&str> = entry.keys().map(String::as_str).collect();
    attributes.sort_unstable();
    assert_eq!(attributes, ["gsi2pk", "gsi2sk", "pk", "sk"], "{entry:?}");
    let still_accepted = stack
        .items_where(
            Some(order_core::store::BY_STATUS_INDEX),
            "gsi2pk",
            &format!("STATUS#ACCEPTED#{shard}"),
        )
        .await;
    assert!(
        !still_accepted
            .iter()
            .any(|item| item.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk)),
        "order {id} is still listed as ACCEPTED"
    );
}

#[tokio::test]
async fn a_merchants_orders_are_listed_whole_from_an_index_that_holds_keys_only() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let order = order_for(&merchant);
    let record = order_core::store::contract::store_order(&stack.store(), &order).await;
    let entries = stack
        .items_where(
            Some(order_core::store::BY_MERCHANT_INDEX),
            "gsi1pk",
            &format!("MERCHANT#{merchant}"),
        )
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut attributes: Vec<&str> = entries[0].keys().map(String::as_str).collect();
    attributes.sort_unstable();
    assert_eq!(attributes, ["gsi1pk", "gsi1sk", "pk", "sk"], "{entries:?}");
    let listed = stack
        .store()
        .orders_of_merchant(&merchant, None, 10)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(listed, [record]);
}

#[tokio::test]
async fn an_order_indexed_before_the_shards_is_still_listed_and_counted_by_its_status() {
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let counted_before = store
        .count_in_status(OrderStatus::Accepted)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // As an order placed before the shards holds it: `STATUS#<status>`, no shard.
    stack
        .set_order_attribute(&id, "gsi2pk", "STATUS#ACCEPTED")
        .await;
    let listed = store
        .orders_in_status(OrderStatus::Accepted, None, usize::MAX)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        listed.iter().any(|order| order.order_id == id),
        "order {id} in the unsharded partition is not listed"
    );
    let counted = store
        .count_in_status(OrderStatus::Accepted)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // Other tests place orders meanwhile: the count never drops this one.
    assert!(counted >= counted_before, "{counted} < {counted_before}");
    let unsharded = stack
        .items_where(
            Some(order_core::store::BY_STATUS_INDEX),
            "gsi2pk",
            "STATUS#ACCEPTED",
        )
        .await;
    assert!(unsharded
        .iter()
        .any(|item| item.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("ORDER#{id}"))));
}

#[tokio::test]
async fn writes_made_while_another_transaction_is_cancelled_are_kept() {
    // A cancelled transaction (here: a replayed idempotency key) must not undo what other
    // requests wrote meanwhile. Stock moto 5.2.5 restores whole-table snapshots and loses
    // such writes; infra/moto/server.py makes item operations atomic, as on AWS.
    let stack = Stack::connect().await;
    let key = unique_key();
    let order = order_for(&unique_merchant());
    let first = match stack
        .store()
        .place_order(&order_core::store::contract::caller(), &key, &order, "h")
        .await
    {
        Ok(Placement::Created(record)) => record.order_id,
        other => panic!("expected a new order, got {other:?}"),
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, key, order, first) = (stack.store(), key.clone(), order.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                // Cancelled every time: the key exists, and its order is found instead.
                let replayed = store.place_order(&order_core::store::contract::caller(), &key, &order, "h").await;
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
                let placed = stack_store
                    .place_order(
                        &order_core::store::contract::caller(),
                        &unique_key(),
                        &order,
                        "h",
                    )
                    .await;
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

#[tokio::test]
async fn a_step_that_succeeded_on_an_order_placed_before_steps_were_counted_on_it_is_not_begun_again(
) {
    use aws_sdk_dynamodb::types::AttributeValue;
    // An order placed by the release before: no `ledger_version` on its item, its steps
    // recorded on their own items only. A resume's replay must find their results.
    let stack = Stack::connect().await;
    let (id, _) = placed(&stack).await;
    let store = stack.store();
    let pk = AttributeValue::S(format!("ORDER#{id}"));
    let removed = stack
        .dynamodb()
        .update_item()
        .table_name(store.table())
        .key("pk", pk.clone())
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("REMOVE ledger_version")
        .send()
        .await;
    assert!(removed.is_ok(), "{removed:?}");
    let step = |name: &str, value: &str| (name.to_owned(), AttributeValue::S(value.to_owned()));
    let written = stack
        .dynamodb()
        .put_item()
        .table_name(store.table())
        .set_item(Some(
            [
                ("pk".to_owned(), pk),
                step("sk", "STEP#ValidateOrder"),
                step("order_id", id.as_str()),
                step("step", "ValidateOrder"),
                step("status", "SUCCEEDED"),
                ("attempts".to_owned(), AttributeValue::N("1".into())),
                step("started_at", "2026-11-01T10:00:00.000Z"),
                step("updated_at", "2026-11-01T10:00:01.000Z"),
                step("finished_at", "2026-11-01T10:00:01.000Z"),
            ]
            .into(),
        ))
        .send()
        .await;
    assert!(written.is_ok(), "{written:?}");
    let again = store.begin_step(&id, "ValidateOrder").await;
    assert!(
        matches!(&again, Ok(StepStart::AlreadySucceeded(record)) if record.attempts >= 1),
        "{again:?}"
    );
    // A step it never began starts as usual.
    let other = store.begin_step(&id, "ReserveStock").await;
    assert!(
        matches!(&other, Ok(StepStart::Started(record)) if record.attempts == 1),
        "{other:?}"
    );
}
