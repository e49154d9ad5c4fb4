//! The activity handlers, called directly (no Lambda) against the emulator: idempotent
//! replays, conflicts, and what they record.

use order_core::activity::ActivityInput;
use order_core::store::{OrderStore, StepStatus, Transition};
use order_core::{ErrorName, Order, OrderId, OrderStatus};
use system_tests::{assert_failure_recorded, catalogue, unique_merchant, valid_order, Stack};

async fn place(store: &OrderStore, order: &Order) -> OrderId {
    order_core::store::contract::store_order(store, order)
        .await
        .order_id
}

fn valid() -> Order {
    Order::parse(&valid_order(&unique_merchant()), &catalogue())
        .unwrap_or_else(|problems| panic!("{problems}"))
}

/// What the table holds for order `id`, read back: its status, its version and its steps
/// as `(step, status, attempts)`.
async fn stored(
    store: &OrderStore,
    id: &OrderId,
) -> (OrderStatus, u64, Vec<(String, StepStatus, u32)>) {
    let (order, steps) = store
        .get_order_with_steps(id)
        .await
        .expect("the order can be read")
        .expect("the order is stored");
    let steps = steps
        .into_iter()
        .map(|s| (s.step, s.status, s.attempts))
        .collect();
    (order.status, order.version, steps)
}

fn input(id: &OrderId) -> ActivityInput {
    ActivityInput {
        order_id: id.to_string(),
    }
}

#[tokio::test]
async fn validating_twice_returns_the_recorded_result_without_a_second_attempt() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store, &valid()).await;
    let first = validate_order::handle(&store, &catalogue(), input(&id)).await;
    let first = first.map(|o| (o.status, o.attempts, o.replayed));
    assert_eq!(first, Ok((OrderStatus::Validated, 1, false)));
    let second = validate_order::handle(&store, &catalogue(), input(&id)).await;
    let second = second.map(|o| (o.status, o.attempts, o.replayed));
    assert_eq!(second, Ok((OrderStatus::Validated, 1, true)));
    assert_eq!(
        stored(&store, &id).await,
        (
            OrderStatus::Validated,
            2,
            vec![("ValidateOrder".to_owned(), StepStatus::Succeeded, 1)]
        ),
        "the replay wrote to the order or its step"
    );
}

#[tokio::test]
async fn an_order_that_no_longer_passes_validation_fails_as_invalid_and_stays_accepted() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let mut order = valid();
    order.lines[0].sku = "WITHDRAWN-MODEL".into();
    let id = place(&store, &order).await;
    let result = validate_order::handle(&store, &catalogue(), input(&id)).await;
    let error = match result {
        Ok(output) => panic!("validated an order with a withdrawn SKU: {output:?}"),
        Err(error) => error,
    };
    assert_eq!(error.name, ErrorName::OrderInvalid);
    assert!(
        error
            .message
            .contains("lines[0].sku: unknown SKU \"WITHDRAWN-MODEL\""),
        "{}",
        error.message
    );
    let Ok(Some((order, steps))) = store.get_order_with_steps(&id).await else {
        panic!("order {id} not found");
    };
    assert_eq!(order.status, OrderStatus::Accepted);
    let step = steps
        .first()
        .map(|s| (s.step.as_str(), s.status, s.error.as_deref()));
    assert_eq!(
        step,
        Some(("ValidateOrder", StepStatus::Failed, Some("Order.Invalid")))
    );
}

#[tokio::test]
async fn completing_an_order_that_was_not_validated_is_a_conflict() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store, &valid()).await;
    let result = complete_order::handle(&store, input(&id)).await;
    assert_eq!(result.map_err(|e| e.name), Err(ErrorName::OrderConflict));
    assert_eq!(
        stored(&store, &id).await,
        (
            OrderStatus::Accepted,
            1,
            vec![("CompleteOrder".to_owned(), StepStatus::Failed, 1)]
        )
    );
}

#[tokio::test]
async fn a_cancelled_order_is_not_validated() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store, &valid()).await;
    let cancelling = store
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Cancelling),
        )
        .await;
    assert!(cancelling.is_ok(), "{cancelling:?}");
    let result = validate_order::handle(&store, &catalogue(), input(&id)).await;
    assert_eq!(result.map_err(|e| e.name), Err(ErrorName::OrderCancelled));
    assert_eq!(
        stored(&store, &id).await,
        (
            OrderStatus::Cancelling,
            2,
            vec![("ValidateOrder".to_owned(), StepStatus::Failed, 1)]
        )
    );
}

#[tokio::test]
async fn an_activity_for_an_unknown_order_fails_as_not_found() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = OrderId::generate();
    let result = complete_order::handle(&store, input(&id)).await;
    assert_eq!(result.map_err(|e| e.name), Err(ErrorName::OrderNotFound));
    assert_eq!(
        stack.items_under(&format!("ORDER#{id}")).await,
        0,
        "nothing is written for an order that does not exist"
    );
}

#[tokio::test]
async fn an_activity_input_without_a_valid_order_id_is_an_internal_error() {
    let stack = Stack::connect().await;
    let result = complete_order::handle(
        &stack.store(),
        ActivityInput {
            order_id: "not-an-order".into(),
        },
    )
    .await;
    assert_eq!(result.map_err(|e| e.name), Err(ErrorName::Internal));
}

fn failure(id: &OrderId, error: &str, message: &str) -> fail_order::FailureInput {
    fail_order::FailureInput {
        order_id: id.to_string(),
        failed_step: "ValidateOrder".into(),
        error: error.into(),
        cause: Some(serde_json::json!({"errorType": error, "errorMessage": message}).to_string()),
    }
}

#[tokio::test]
async fn recording_an_invalid_order_rejects_it_with_its_reason() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store, &valid()).await;
    let result = fail_order::handle(&store, failure(&id, "Order.Invalid", "unknown SKU")).await;
    assert_eq!(result.map(|o| o.status), Ok(OrderStatus::Rejected));
    let recorded = ["ValidateOrder", "Order.Invalid", "unknown SKU"];
    assert_failure_recorded(&store, &id, OrderStatus::Rejected, recorded).await;
}

#[tokio::test]
async fn recording_a_failure_twice_keeps_the_first_reason() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store, &valid()).await;
    let first = fail_order::handle(&store, failure(&id, "States.Timeout", "first")).await;
    assert_eq!(
        first.map(|o| (o.status, o.replayed)),
        Ok((OrderStatus::Failed, false))
    );
    let second = fail_order::handle(&store, failure(&id, "Internal.Error", "second")).await;
    assert_eq!(
        second.map(|o| (o.status, o.replayed)),
        Ok((OrderStatus::Failed, true))
    );
    let reason = store
        .require_order(&id)
        .await
        .map(|o| (o.status, o.failure.map(|f| f.reason)));
    assert_eq!(reason, Ok((OrderStatus::Failed, Some("first".to_owned()))));
}
