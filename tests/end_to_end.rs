//! Orders through the real pieces: the API's function URL, a Step Functions execution in
//! the emulator, the activities in cargo lambda watch, DynamoDB.

use order_core::store::Placement;
use order_core::Order;
use serde_json::json;
use system_tests::{catalogue, unique_key, unique_merchant, valid_order, Stack};

#[tokio::test]
async fn an_order_posted_to_the_api_is_completed_by_its_execution() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let reply = stack
        .post_order(Some(&unique_key()), &valid_order(&merchant).to_string())
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "ACCEPTED");
    let id = reply.body["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let arn = reply.body["execution_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        arn.ends_with(&format!(":execution:OrderWorkflow:{id}")),
        "{arn}"
    );

    let view = stack
        .wait_for_status(&id, &["COMPLETED", "FAILED", "REJECTED"])
        .await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let steps: Vec<_> = view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["step"].clone(),
                s["status"].clone(),
                s["attempts"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (json!("ValidateOrder"), json!("SUCCEEDED"), json!(1)),
            (json!("CompleteOrder"), json!("SUCCEEDED"), json!(1)),
        ]
    );
    // The table itself, not just the API's view of it.
    let stored = stack
        .store()
        .get_order(&order_core::OrderId::parse(&id).unwrap_or_else(order_core::OrderId::generate))
        .await;
    let stored = stored.map(|o| o.map(|o| (o.status, o.execution_arn, o.version)));
    assert_eq!(
        stored,
        Ok(Some((order_core::OrderStatus::Completed, Some(arn), 4)))
    );
}

#[tokio::test]
async fn an_order_that_fails_validation_in_the_workflow_ends_rejected_with_its_reason() {
    let stack = Stack::connect().await;
    // An order the API accepted, whose SKU has since left the catalogue.
    let mut order = match Order::parse(&valid_order(&unique_merchant()), &catalogue()) {
        Ok(order) => order,
        Err(problems) => panic!("{problems}"),
    };
    order.lines[1].sku = "DISCONTINUED-1".into();
    let id = match stack.store().place_order(&unique_key(), &order, "h").await {
        Ok(Placement::Created(record)) => record.order_id,
        other => panic!("{other:?}"),
    };
    let started = stack
        .sfn()
        .start_execution()
        .state_machine_arn(&stack.state_machine_arn)
        .name(id.as_str())
        .input(json!({"order_id": id}).to_string())
        .send()
        .await;
    let arn = match started {
        Ok(output) => output.execution_arn,
        Err(error) => panic!("{error:?}"),
    };
    let view = stack
        .wait_for_status(id.as_str(), &["REJECTED", "FAILED", "COMPLETED"])
        .await;
    assert_eq!(view["status"], "REJECTED", "{view}");
    assert_eq!(view["failure"]["step"], "ValidateOrder");
    assert_eq!(view["failure"]["error"], "Order.Invalid");
    let reason = view["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("lines[1].sku: unknown SKU \"DISCONTINUED-1\""),
        "{reason}"
    );
    // A permanent error is caught, never retried: one attempt.
    let validate = view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"] == "ValidateOrder");
    assert_eq!(
        validate.map(|s| (s["status"].clone(), s["attempts"].clone())),
        Some((json!("FAILED"), json!(1)))
    );
    // The workflow did its job: the execution ends cleanly, not FAILED.
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let history = stack
        .sfn()
        .get_execution_history()
        .execution_arn(&arn)
        .send()
        .await;
    let history = match history {
        Ok(history) => history,
        Err(error) => panic!("{error:?}"),
    };
    let entered: Vec<String> = history
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect();
    assert_eq!(
        entered,
        [
            "ValidateOrder",
            "NoteValidateOrderFailed",
            "RecordFailure",
            "OrderEndedWithoutCompleting"
        ]
    );
}
