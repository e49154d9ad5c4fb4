//! The injected faults as the SDK clients the functions use see them: the router served on a
//! loopback port in front of a fake emulator, the clients with retries off (unless a test
//! says otherwise) pointed at it, the rules set over HTTP as a test or an operator sets them.

use crate::tests::{router_to, serve};
use crate::{route, Router};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The router in front of a fake emulator that counts what reaches it.
struct Stack {
    router: Router,
    endpoint: String,
    forwarded: Arc<AtomicUsize>,
}

impl Stack {
    async fn start() -> Stack {
        let forwarded = Arc::new(AtomicUsize::new(0));
        let counted = forwarded.clone();
        let emulator = axum::Router::new().fallback(move |headers: HeaderMap| {
            counted.fetch_add(1, Ordering::SeqCst);
            let target = headers.get("x-amz-target").and_then(|t| t.to_str().ok());
            let answer = success(target.unwrap_or_default()).to_string();
            async move { ([("content-type", "application/x-amz-json-1.0")], answer) }
        });
        let emulator = serve(emulator).await;
        let router = router_to("http://127.0.0.1:9".into(), emulator.clone(), emulator);
        let app = axum::Router::new()
            .fallback(route)
            .with_state(router.clone());
        let endpoint = serve(app).await;
        Stack {
            router,
            endpoint,
            forwarded,
        }
    }

    fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// `method /__faults` with `body`: the status and the JSON answer.
    async fn faults(&self, method: reqwest::Method, body: Value) -> (u16, Value) {
        let url = format!("{}{}", self.endpoint, crate::faults::PATH);
        let sent = reqwest::Client::new()
            .request(method, url)
            .body(body.to_string())
            .send()
            .await;
        let answer = ok(sent, "the router answers /__faults");
        let status = answer.status().as_u16();
        let body: Result<Value, _> = answer.json().await;
        (status, ok(body, "/__faults answers JSON"))
    }

    /// Sets `rules`, which the router must accept.
    async fn set(&self, rules: Value) {
        let (status, answer) = self
            .faults(reqwest::Method::PUT, json!({ "rules": rules }))
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_retrying(RetryConfig::disabled())
    }

    fn dynamodb_retrying(&self, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials())
            .retry_config(retry)
            .http_client(http_client())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials())
            .retry_config(RetryConfig::disabled())
            .http_client(http_client())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    fn sfn(&self) -> aws_sdk_sfn::Client {
        let config = aws_sdk_sfn::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials())
            .retry_config(RetryConfig::disabled())
            .http_client(http_client())
            .build();
        aws_sdk_sfn::Client::from_conf(config)
    }
}

fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "sdk-tests")
}

/// The SDK's client as the functions build it (`order_core::config::https_client`): the
/// SDK is compiled without a default one.
fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// What the fake emulator answers each operation: enough for the SDK to parse a success.
fn success(target: &str) -> Value {
    match target {
        "DynamoDB_20120810.Query" => json!({"Items": [], "Count": 0, "ScannedCount": 0}),
        "AWSEvents.PutEvents" => json!({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}),
        "AWSStepFunctions.StartExecution" => json!({
            "executionArn": "arn:aws:states:eu-west-1:123456789012:execution:order-workflow:o-1",
            "startDate": 1_767_225_600,
        }),
        _ => json!({}),
    }
}

fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|error| panic!("{what}: {error:?}"))
}

async fn query(client: &aws_sdk_dynamodb::Client) -> Result<(), QueryError> {
    let sent = client
        .query()
        .table_name("orders")
        .index_name("by-status")
        .key_condition_expression("gsi1pk = :status")
        .expression_attribute_values(":status", AttributeValue::S("ACCEPTED".into()))
        .send()
        .await;
    sent.map(drop).map_err(|error| error.into_service_error())
}

/// A transaction of `items` puts, as the store writes an order with its steps.
async fn transaction(
    client: &aws_sdk_dynamodb::Client,
    items: usize,
) -> Result<(), TransactWriteItemsError> {
    let put = |n: usize| {
        let put = Put::builder()
            .table_name("orders")
            .item("pk", AttributeValue::S("ORDER#o-1".into()))
            .item("sk", AttributeValue::S(format!("STEP#{n}")))
            .build();
        TransactWriteItem::builder()
            .put(ok(put, "a put with its table and item"))
            .build()
    };
    let sent = client
        .transact_write_items()
        .set_transact_items(Some((0..items).map(put).collect()))
        .send()
        .await;
    sent.map(drop).map_err(|error| error.into_service_error())
}

async fn put_event(client: &aws_sdk_eventbridge::Client) -> Result<(), PutEventsError> {
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name("order-events")
        .source("terminal-orders")
        .detail_type("Order Accepted")
        .detail(r#"{"order_id":"o-1"}"#)
        .build();
    let sent = client.put_events().entries(entry).send().await;
    sent.map(drop).map_err(|error| error.into_service_error())
}

async fn start_execution(
    client: &aws_sdk_sfn::Client,
) -> Result<(), aws_sdk_sfn::operation::start_execution::StartExecutionError> {
    let sent = client
        .start_execution()
        .state_machine_arn("arn:aws:states:eu-west-1:123456789012:stateMachine:order-workflow")
        .name("o-1")
        .input("{}")
        .send()
        .await;
    sent.map(drop).map_err(|error| error.into_service_error())
}

#[tokio::test]
async fn a_throttled_query_is_the_sdks_throttling_exception_naming_the_index_and_never_reaches_the_emulator(
) {
    let stack = Stack::start().await;
    stack
        .set(json!([{"service": "dynamodb", "operation": "Query", "error": "throttling", "seconds": 60}]))
        .await;
    let refused = query(&stack.dynamodb()).await;
    let Err(QueryError::ThrottlingException(throttled)) = refused else {
        panic!("expected ThrottlingException, got {refused:?}");
    };
    let reasons: Vec<_> = throttled
        .throttling_reasons()
        .iter()
        .map(|r| (r.reason(), r.resource()))
        .collect();
    assert_eq!(
        reasons,
        [(
            Some("IndexReadKeyRangeThroughputExceeded"),
            Some("arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/by-status")
        )]
    );
    assert!(throttled.request_id().is_some(), "no x-amzn-RequestId");
    assert_eq!(stack.forwarded(), 0);
}

#[tokio::test]
async fn a_throttled_transaction_is_cancelled_with_a_throttling_error_for_each_of_its_items() {
    let stack = Stack::start().await;
    stack
        .set(json!([{"service": "dynamodb", "operation": "TransactWriteItems", "error": "throttling", "seconds": 60}]))
        .await;
    let refused = transaction(&stack.dynamodb(), 3).await;
    let Err(TransactWriteItemsError::TransactionCanceledException(cancelled)) = refused else {
        panic!("expected TransactionCanceledException, got {refused:?}");
    };
    let codes: Vec<_> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|reason| reason.code())
        .collect();
    assert_eq!(codes, [Some("ThrottlingError"); 3]);
    assert!(
        cancelled
            .message()
            .is_some_and(|m| m.contains("[ThrottlingError, ThrottlingError, ThrottlingError]")),
        "{cancelled:?}"
    );
    assert_eq!(stack.forwarded(), 0);
}

#[tokio::test]
async fn dynamodb_unavailable_is_a_503_and_internal_the_sdks_internal_server_error() {
    let stack = Stack::start().await;
    stack
        .set(json!([{"service": "dynamodb", "operation": "Query", "error": "unavailable", "seconds": 60}]))
        .await;
    let refused = query(&stack.dynamodb()).await;
    let Err(unavailable) = refused else {
        panic!("the query passed");
    };
    assert_eq!(
        unavailable.code(),
        Some("ServiceUnavailable"),
        "{unavailable:?}"
    );
    stack
        .set(json!([{"service": "dynamodb", "error": "internal", "seconds": 60}]))
        .await;
    let refused = transaction(&stack.dynamodb(), 2).await;
    assert!(
        matches!(
            refused,
            Err(TransactWriteItemsError::InternalServerError(_))
        ),
        "{refused:?}"
    );
    assert_eq!(stack.forwarded(), 0);
}

#[tokio::test]
async fn put_events_throttled_is_a_throttling_exception_and_internal_the_sdks_internal_exception() {
    let stack = Stack::start().await;
    let events = stack.eventbridge();
    stack
        .set(json!([{"service": "events", "operation": "PutEvents", "error": "throttling", "seconds": 60}]))
        .await;
    let throttled = put_event(&events).await;
    let Err(throttled) = throttled else {
        panic!("PutEvents passed");
    };
    assert_eq!(
        throttled.code(),
        Some("ThrottlingException"),
        "{throttled:?}"
    );
    assert_eq!(throttled.message(), Some("Rate exceeded"));
    assert!(throttled.request_id().is_some(), "no x-amzn-RequestId");
    stack
        .set(json!([{"service": "events", "error": "internal", "seconds": 60}]))
        .await;
    let failed = put_event(&events).await;
    assert!(
        matches!(failed, Err(PutEventsError::InternalException(_))),
        "{failed:?}"
    );
    stack
        .set(json!([{"service": "events", "error": "unavailable", "seconds": 60}]))
        .await;
    let unavailable = put_event(&events)
        .await
        .err()
        .and_then(|e| e.code().map(str::to_owned));
    assert_eq!(unavailable.as_deref(), Some("ServiceUnavailable"));
    assert_eq!(stack.forwarded(), 0);
}

#[tokio::test]
async fn a_throttled_start_execution_is_a_throttling_exception_until_the_rule_expires() {
    let stack = Stack::start().await;
    let sfn = stack.sfn();
    stack
        .set(json!([{"service": "states", "operation": "StartExecution", "error": "throttling", "seconds": 1}]))
        .await;
    let throttled = start_execution(&sfn).await;
    let code = throttled.as_ref().err().and_then(|e| e.code());
    assert_eq!(code, Some("ThrottlingException"), "{throttled:?}");
    assert_eq!(stack.forwarded(), 0);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let started = start_execution(&sfn).await;
    assert!(
        started.is_ok(),
        "after its window the rule still faults: {started:?}"
    );
    assert_eq!(stack.forwarded(), 1);
    let (_, view) = stack.faults(reqwest::Method::GET, Value::Null).await;
    assert_eq!(view["rules"][0]["active"], false, "{view}");
    assert_eq!(view["rules"][0]["faulted"], 1, "{view}");
}

#[tokio::test]
async fn a_share_of_three_tenths_faults_exactly_three_of_ten_queries_which_the_meter_counts() {
    let stack = Stack::start().await;
    stack
        .set(json!([{"service": "dynamodb", "operation": "Query", "error": "throttling", "share": 0.3, "seconds": 60}]))
        .await;
    let client = stack.dynamodb();
    let mut throttled = Vec::new();
    for n in 1..=10 {
        match query(&client).await {
            Ok(()) => {}
            Err(QueryError::ThrottlingException(_)) => throttled.push(n),
            Err(other) => panic!("query {n}: {other:?}"),
        }
    }
    assert_eq!(throttled, [4, 7, 10]);
    assert_eq!(stack.forwarded(), 7);
    let (_, view) = stack.faults(reqwest::Method::GET, Value::Null).await;
    assert_eq!(
        (&view["rules"][0]["matched"], &view["rules"][0]["faulted"]),
        (&json!(10), &json!(3))
    );
    let meter = stack.router.meter().clone();
    assert_eq!(meter.faults.get("dynamodb:Query"), Some(&3));
    assert_eq!(meter.requests.get("dynamodb:Query"), Some(&7));
}

#[tokio::test]
async fn traffic_no_rule_matches_still_reaches_the_emulator() {
    let stack = Stack::start().await;
    stack
        .set(json!([
            {"service": "dynamodb", "operation": "TransactWriteItems", "error": "throttling", "seconds": 60},
            {"service": "events", "operation": "PutEvents", "error": "unavailable", "share": 0, "seconds": 60},
        ]))
        .await;
    let query = query(&stack.dynamodb()).await;
    assert!(query.is_ok(), "{query:?}");
    let event = put_event(&stack.eventbridge()).await;
    assert!(event.is_ok(), "a share of 0 faults nothing: {event:?}");
    let started = start_execution(&stack.sfn()).await;
    assert!(started.is_ok(), "{started:?}");
    assert_eq!(stack.forwarded(), 3);
    // DELETE ends every rule: the transaction passes too.
    let (status, view) = stack.faults(reqwest::Method::DELETE, Value::Null).await;
    assert_eq!((status, view), (200, json!({"rules": []})));
    let written = transaction(&stack.dynamodb(), 2).await;
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(stack.forwarded(), 4);
}

#[tokio::test]
async fn a_malformed_put_is_refused_naming_the_field_and_the_rules_before_it_stay() {
    let stack = Stack::start().await;
    let before = json!([{"service": "states", "error": "throttling", "seconds": 60}]);
    stack.set(before).await;
    let (status, refused) = stack
        .faults(
            reqwest::Method::PUT,
            json!({"rules": [
                {"service": "dynamodb", "error": "throttling", "seconds": 60},
                {"service": "dynamodb", "error": "throttling", "share": 2, "seconds": 60},
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    let errors = refused["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{refused}");
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.starts_with("rules[1].share:")),
        "{refused}"
    );
    let (_, view) = stack.faults(reqwest::Method::GET, Value::Null).await;
    let services: Vec<_> = view["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["service"].clone())
        .collect();
    assert_eq!(services, [json!("states")], "{view}");
    let query = query(&stack.dynamodb()).await;
    assert!(
        query.is_ok(),
        "the refused body's valid rule was applied: {query:?}"
    );
}

#[tokio::test]
async fn the_sdk_retries_a_throttled_query_itself_but_hands_a_throttled_transaction_to_its_caller()
{
    let stack = Stack::start().await;
    // Every second request of each operation is throttled: the 2nd fails, the 3rd passes.
    stack
        .set(json!([
            {"service": "dynamodb", "operation": "Query", "error": "throttling", "share": 0.5, "seconds": 60},
            {"service": "dynamodb", "operation": "TransactWriteItems", "error": "throttling", "share": 0.5, "seconds": 60},
        ]))
        .await;
    let retrying = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1));
    let client = stack.dynamodb_retrying(retrying);
    assert!(query(&client).await.is_ok());
    let retried = query(&client).await;
    assert!(
        retried.is_ok(),
        "the SDK did not retry the throttled query: {retried:?}"
    );
    assert!(transaction(&client, 2).await.is_ok());
    // A cancelled transaction is not in the SDK's retryable errors, whatever its reasons.
    let handed_back = transaction(&client, 2).await;
    assert!(
        matches!(
            handed_back,
            Err(TransactWriteItemsError::TransactionCanceledException(_))
        ),
        "{handed_back:?}"
    );
    // Two queries and the first transaction; the throttled attempts never.
    assert_eq!(stack.forwarded(), 3);
}
