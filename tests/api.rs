//! The orders API through cargo lambda watch's function URL: bad input is refused with
//! every problem listed and nothing written; idempotency keys replay or refuse.

use serde_json::{json, Value};
use system_tests::{fault, unique_key, unique_merchant, valid_order, Backend, Reply, Stack};

/// Posts `body` and checks it was refused with 400 and exactly `problems`, with no order,
/// no idempotency key and so no execution written for it.
async fn assert_refused(stack: &Stack, merchant: &str, body: &str, problems: &[&str]) -> Reply {
    let key = unique_key();
    let reply = stack.post_order(Some(&key), body).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "invalid_request", "{}", reply.text);
    assert_eq!(reply.problems(), problems);
    assert_eq!(stack.items_under(&stack.idempotency_pk(&key)).await, 0);
    assert_eq!(stack.orders_of_merchant(merchant).await, 0);
    reply
}

fn with(mut order: Value, pointer: &str, value: Value) -> String {
    if let Some(slot) = order.pointer_mut(pointer) {
        *slot = value;
    }
    order.to_string()
}

#[tokio::test]
async fn malformed_json_is_refused_with_its_position() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let body = format!("{{\"kind\": \"new_merchant\", \"merchant_id\": \"{merchant}\",");
    let reply = stack.post_order(Some(&unique_key()), &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let problems = reply.problems();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("$: malformed JSON: EOF while parsing"),
        "{problems:?}"
    );
    assert_eq!(stack.orders_of_merchant(&merchant).await, 0);
}

/// Posts a valid order of a merchant of its own with `changes` (JSON pointer, new value)
/// made, and checks it is refused as [`assert_refused`] says.
async fn refused_when(changes: &[(&str, Value)], problems: &[&str]) {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let mut order = valid_order(&merchant);
    for (pointer, value) in changes {
        match order.pointer_mut(pointer) {
            Some(slot) => *slot = value.clone(),
            None => panic!("the valid order has no {pointer}"),
        }
    }
    assert_refused(&stack, &merchant, &order.to_string(), problems).await;
}

#[tokio::test]
async fn wrong_types_are_each_named() {
    let changes = [
        ("/kind", json!(7)),
        ("/lines/0/quantity", json!("two")),
        ("/delivery_address/city", json!(["Berlin"])),
    ];
    let problems = [
        "kind: must be a string, not a number",
        "lines[0].quantity: must be a number, not a string",
        "delivery_address.city: must be a string, not an array",
    ];
    refused_when(&changes, &problems).await;
}

#[tokio::test]
async fn an_unknown_sku_is_refused() {
    let problems = ["lines[1].sku: unknown SKU \"T-1000\""];
    refused_when(&[("/lines/1/sku", json!("T-1000"))], &problems).await;
}

#[tokio::test]
async fn a_quantity_of_zero_or_over_fifty_is_refused() {
    let changes = [
        ("/lines/0/quantity", json!(0)),
        ("/lines/1/quantity", json!(51)),
    ];
    let problems = [
        "lines[0].quantity: must be between 1 and 50",
        "lines[1].quantity: must be between 1 and 50",
    ];
    refused_when(&changes, &problems).await;
}

#[tokio::test]
async fn missing_address_fields_are_each_named() {
    let address = json!({"name": "Café Blau", "country": "DE"});
    let problems =
        ["line1", "city", "postal_code"].map(|f| format!("delivery_address.{f}: is required"));
    let problems: Vec<&str> = problems.iter().map(String::as_str).collect();
    refused_when(&[("/delivery_address", address)], &problems).await;
}

#[tokio::test]
async fn a_replacement_without_serials_is_refused() {
    let problems = [
        "replace_serials: is required for replacement orders: the serials of the faulty terminals",
    ];
    refused_when(&[("/kind", json!("replacement"))], &problems).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_unread() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let mut order = valid_order(&merchant);
    order["padding"] = json!("x".repeat(70_000));
    let body = order.to_string();
    let reply = assert_refused(
        &stack,
        &merchant,
        &body,
        &[&format!(
            "$: body is {} bytes; at most 65536 are accepted",
            body.len()
        )],
    )
    .await;
    assert_eq!(reply.body["problems"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_request_without_an_idempotency_key_is_refused_and_nothing_is_written() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let reply = stack
        .post_order(None, &valid_order(&merchant).to_string())
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["code"], "missing_idempotency_key");
    assert_eq!(stack.orders_of_merchant(&merchant).await, 0);
}

#[tokio::test]
async fn an_idempotency_key_with_spaces_or_too_long_is_refused() {
    let stack = Stack::connect().await;
    for key in ["has spaces".to_owned(), "k".repeat(129)] {
        let reply = stack
            .post_order(Some(&key), &valid_order(&unique_merchant()).to_string())
            .await;
        assert_eq!(
            (reply.status, reply.body["code"].clone()),
            (400, json!("invalid_idempotency_key"))
        );
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_by_content_type_is_refused() {
    let stack = Stack::connect().await;
    let reply = system_tests::send_signed(
        system_tests::http()
            .post(format!("{}/orders", stack.orders_api))
            .header("content-type", "text/plain")
            .header("Idempotency-Key", unique_key())
            .body(valid_order(&unique_merchant()).to_string()),
    )
    .await;
    let status = reply.map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(415));
}

#[tokio::test]
async fn the_same_key_and_body_return_the_same_order_without_a_second_execution() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let order = valid_order(&merchant);
    let first = stack.post_order(Some(&key), &order.to_string()).await;
    assert_eq!(first.status, 202, "{}", first.text);
    // The same order, formatted differently, is the same request.
    let second = stack
        .post_order(
            Some(&key),
            &serde_json::to_string_pretty(&order).unwrap_or_default(),
        )
        .await;
    assert_eq!(second.status, 202, "{}", second.text);
    assert_eq!(second.body["order_id"], first.body["order_id"]);
    // The replay shows the order as it is now: its workflow may have moved it on since.
    let step_on_path = |body: &serde_json::Value| {
        let status: Option<order_core::OrderStatus> =
            serde_json::from_value(body["status"].clone()).ok();
        let path = order_core::OrderStatus::NEW_ORDER_PATH;
        status.and_then(|status| path.iter().position(|s| *s == status))
    };
    let (was, is) = (step_on_path(&first.body), step_on_path(&second.body));
    assert_eq!(was, Some(0), "the first answer is ACCEPTED: {}", first.text);
    assert!(
        is >= was,
        "the replay went back: {} then {}",
        first.text,
        second.text
    );
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let id = first.body["order_id"].as_str().unwrap_or_default();
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
    assert_eq!(stack.executions_named(id).await, 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused_with_422() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let first = stack
        .post_order(Some(&key), &valid_order(&merchant).to_string())
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let changed = with(valid_order(&merchant), "/lines/0/quantity", json!(3));
    let second = stack.post_order(Some(&key), &changed).await;
    assert_eq!(second.status, 422, "{}", second.text);
    assert_eq!(second.body["code"], "idempotency_key_reused");
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
}

#[tokio::test]
async fn an_unknown_order_id_is_404() {
    let stack = Stack::connect().await;
    let id = order_core::OrderId::generate();
    for path in [format!("/orders/{id}"), "/orders/not-an-id".to_owned()] {
        let reply = stack.get(&path).await;
        assert_eq!(
            (reply.status, reply.body["code"].clone()),
            (404, json!("order_not_found")),
            "{path}"
        );
    }
}

/// What API Gateway answers, itself, a request for a route or method the REST API does not
/// have (on AWS as on MiniStack): the function never sees it, so its own 404/405 JSON
/// errors are reached only where the function serves every path (the moto stack's
/// function URL).
fn assert_refused_by_api_gateway(reply: &Reply) {
    assert!(
        reply.status == 403 && reply.body["message"] == "Missing Authentication Token",
        "not API Gateway's refusal: {} {}",
        reply.status,
        reply.text
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let stack = Stack::connect().await;
    if Backend::current() == Backend::MiniStack {
        let unknown = stack.get("/merchants").await;
        let wrong_method = stack.send_to_api("DELETE", "/orders").await;
        for reply in [unknown, wrong_method] {
            assert_refused_by_api_gateway(&reply);
        }
        return;
    }
    let reply = stack.get("/merchants").await;
    assert_eq!(
        (reply.status, reply.body["code"].clone()),
        (404, json!("route_not_found"))
    );
    let reply = system_tests::http()
        .delete(format!("{}/orders", stack.orders_api))
        .send()
        .await;
    let reply = reply.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(reply.status().as_u16(), 405);
    let body: Value = reply.json().await.unwrap_or_default();
    assert_eq!(body["code"], "method_not_allowed");
}

/// The header the in-process API reads its caller from, as on the local stack.
const CALLER_HEADER: &str = local_stack::callers::LOCAL_CALLER_HEADER.1;

fn post_request(stack: &Stack, key: &str, body: &str) -> lambda_http::Request {
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/orders")
        .header(CALLER_HEADER, stack.caller().as_str())
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(lambda_http::Body::from(body.to_owned()));
    request.unwrap_or_else(|error| panic!("{error}"))
}

fn api(stack: &Stack, sfn: aws_sdk_sfn::Client) -> orders_api::Api {
    orders_api::Api {
        store: stack.store(),
        workflow: orders_api::Workflow {
            client: sfn,
            state_machine_arn: stack.state_machine_arn.clone(),
            config: orders_api::WorkflowConfig::from_env()
                .unwrap_or_else(|error| panic!("{error}")),
        },
        catalogue: system_tests::catalogue(),
        local_caller_header: Some(lambda_http::http::HeaderName::from_static(CALLER_HEADER)),
    }
}

#[tokio::test]
async fn an_order_whose_workflow_could_not_start_is_kept_and_started_by_the_retry() {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let key = unique_key();
    let body = valid_order(&merchant).to_string();
    // The first attempt's StartExecution cannot reach Step Functions (nothing listens on
    // port 9), without retries.
    let unreachable = aws_sdk_sfn::config::Builder::from(&stack.aws)
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled())
        .build();
    let broken = api(&stack, aws_sdk_sfn::Client::from_conf(unreachable));
    let response = orders_api::handle(&broken, post_request(&stack, &key, &body)).await;
    assert_eq!(response.status().as_u16(), 503);
    let error: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
    assert_eq!(error["code"], "workflow_unavailable");
    assert_eq!(
        stack.orders_of_merchant(&merchant).await,
        1,
        "the accepted order was not kept"
    );
    // Kept as accepted, its execution (named after it) claimed before the start and not
    // started, for the retry to start.
    // The index holds keys only: the store reads the order it lists.
    let listed = stack.store().orders_of_merchant(&merchant, None, 10).await;
    let kept = listed
        .unwrap_or_else(|error| panic!("the merchant's orders: {error}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("the index lists no order of {merchant}"));
    let kept_id = kept.order_id.clone();
    assert_eq!(
        (kept.status, kept.execution_arn.as_deref(), kept.version),
        (
            order_core::OrderStatus::Accepted,
            Some(stack.execution_arn(kept_id.as_str()).as_str()),
            2
        ),
        "claimed for its execution before the start, nothing else changed"
    );
    assert_eq!(
        stack.executions_named(kept_id.as_str()).await,
        0,
        "not started"
    );

    // The client retries with the same key: the same order, its execution started.
    let working = api(&stack, stack.sfn());
    let response = orders_api::handle(&working, post_request(&stack, &key, &body)).await;
    assert_eq!(response.status().as_u16(), 202);
    let placed: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
    let id = placed["order_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id, kept_id.as_str(), "the retry found the kept order");
    assert!(
        error["message"].as_str().unwrap_or_default().contains(&id),
        "{error}"
    );
    let view = stack
        .wait_for_status(&id, &["COMPLETED", "FAILED", "REJECTED"])
        .await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.orders_of_merchant(&merchant).await, 1);
    assert_eq!(stack.executions_named(&id).await, 1);
}

#[tokio::test]
async fn cancelling_an_unknown_order_is_404_and_a_get_on_the_cancel_route_is_405() {
    let stack = Stack::connect().await;
    let unknown = order_core::OrderId::generate();
    let reply = stack.post(&format!("/orders/{unknown}/cancel")).await;
    assert_eq!(
        (reply.status, &reply.body["code"]),
        (404, &json!("order_not_found"))
    );
    let reply = stack.get(&format!("/orders/{unknown}/cancel")).await;
    if Backend::current() == Backend::MiniStack {
        assert_refused_by_api_gateway(&reply);
        return;
    }
    assert_eq!(
        (reply.status, &reply.body["code"]),
        (405, &json!("method_not_allowed"))
    );
}

#[tokio::test]
async fn an_order_cancelled_before_its_workflow_started_is_cancelled_at_once() {
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    let reply = stack.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(
        (reply.status, &reply.body["status"]),
        (202, &json!("CANCELLED")),
        "{}",
        reply.text
    );
    let again = stack.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(
        (again.status, &again.body["status"]),
        (202, &json!("CANCELLED"))
    );
}

/// What no API answer may carry: the partner's refusal text (as the simulator words it),
/// AWS account ids and ARNs, SDK error names.
const INTERNAL: [&str; 5] = [
    "injected by fault rule",
    "arn:aws:",
    "123456789012",
    "AccessDeniedException",
    "execution_arn",
];

fn leaks(text: &str) -> Vec<&'static str> {
    INTERNAL.into_iter().filter(|s| text.contains(s)).collect()
}

#[tokio::test]
async fn an_order_refused_by_a_partner_shows_our_sentence_not_the_partners_answer() {
    let stack = Stack::connect().await;
    let (id, _) = stack
        .place_under(&[fault("payments", "charge", "refuse")])
        .await;
    let view = stack
        .wait_for_status(&id, &["FAILED", "REJECTED", "COMPLETED"])
        .await;
    assert_eq!(view["failure"]["error"], "Payment.Declined", "{view}");
    assert_eq!(
        view["failure"]["reason"],
        "the payment processor declined the charge"
    );
    // The store does hold the partner's answer (for operators): the API leaves it out.
    let order_id = order_core::OrderId::parse(&id).expect("the API gives order ids");
    let stored = stack.store().get_order_with_steps(&order_id).await;
    let stored = format!("{stored:?}");
    assert!(stored.contains("injected by fault rule"), "{stored}");
    let shown = stack.get(&format!("/orders/{id}")).await.text;
    assert_eq!(leaks(&shown), Vec::<&str>::new(), "{shown}");
}

#[tokio::test]
async fn an_order_that_failed_on_an_aws_error_shows_its_error_name_and_our_sentence_only() {
    use order_core::store::{Failure, StepStart};
    use order_core::{ActivityError, ErrorName, OrderStatus};
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = stack.order_without_execution().await;
    // What a step records when DynamoDB refuses it: the SDK's error, with the role ARN.
    let sdk_error = "UpdateItem(step) failed: AccessDeniedException: User: \
        arn:aws:sts::123456789012:assumed-role/terminal-orders-ValidateOrderRole/validate-order \
        is not authorized to perform: dynamodb:UpdateItem on resource: \
        arn:aws:dynamodb:eu-central-1:123456789012:table/OrdersTable";
    let started = store.begin_step(&id, "ValidateOrder").await;
    let Ok(StepStart::Started(attempt)) = started else {
        panic!("the step did not start: {started:?}");
    };
    let error = ActivityError::new(ErrorName::StoreUnavailable, sdk_error);
    assert_eq!(store.fail_step(&attempt, &error).await, Ok(()));
    let cause = json!({"errorType": "Store.Unavailable", "errorMessage": sdk_error}).to_string();
    let failure = Failure::from_catch("ValidateOrder", "Store.Unavailable", Some(&cause));
    let moved = store
        .transition(
            &id,
            order_core::store::Transition::new(OrderStatus::Accepted, OrderStatus::Failed)
                .because(Some(&failure)),
        )
        .await;
    assert!(moved.is_ok(), "{moved:?}");

    let reply = stack.get(&format!("/orders/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["failure"]["error"], "Store.Unavailable");
    assert_eq!(
        reply.body["failure"]["reason"],
        "our systems were unavailable, even after retries"
    );
    let step = reply.body["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"] == "ValidateOrder")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&step["error"], &step["reason"]),
        (
            &json!("Store.Unavailable"),
            &json!("our systems were unavailable, even after retries")
        )
    );
    assert_eq!(leaks(&reply.text), Vec::<&str>::new(), "{}", reply.text);
}

#[tokio::test]
async fn the_location_of_a_placed_order_resolved_against_the_request_is_that_order() {
    let stack = Stack::connect().await;
    let order = valid_order(&unique_merchant()).to_string();
    let reply = stack.post_order(Some(&unique_key()), &order).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let location = reply.headers.get("location").and_then(|v| v.to_str().ok());
    let location = location.unwrap_or_else(|| panic!("no Location: {:?}", reply.headers));
    let request = reqwest::Url::parse(&format!("{}/orders", stack.orders_api))
        .unwrap_or_else(|error| panic!("ORDERS_API_URL: {error}"));
    let order_url = request
        .join(location)
        .unwrap_or_else(|error| panic!("Location {location:?}: {error}"));
    // Through API Gateway the stage (`/v1`) stays in the URL.
    let path = order_url.path().to_owned();
    let under_the_api = path.strip_prefix(request.path().trim_end_matches("orders"));
    assert_eq!(
        under_the_api.map(str::to_owned),
        Some(format!(
            "orders/{}",
            reply.body["order_id"].as_str().unwrap_or_default()
        )),
        "{order_url} under {request}"
    );
    let fetched = system_tests::send_signed(system_tests::http().get(order_url.clone())).await;
    let fetched = Reply::from_result(fetched).await;
    assert_eq!(
        (fetched.status, &fetched.body["order_id"]),
        (200, &reply.body["order_id"]),
        "GET {order_url}: {}",
        fetched.text
    );
}
