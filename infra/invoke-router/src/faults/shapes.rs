//! AWS's own error answers, as each service puts them on the wire, so that the SDKs parse an
//! injected fault exactly as they parse the real one (`src/sdk_tests.rs` proves it with
//! the SDK clients the functions use).
//!
//! All three services speak AWS JSON: the error's name in `__type` (an SDK keeps what
//! follows a `#`), its text in `message`, the request id in `x-amzn-RequestId`.
//!
//! | service | `throttling` | `unavailable` | `internal` |
//! |---|---|---|---|
//! | DynamoDB (awsJson1.0) | 400 `ThrottlingException` with `throttlingReasons`; a transaction: 400 `TransactionCanceledException`, every reason `ThrottlingError` | 503 `ServiceUnavailable` | 500 `InternalServerError` |
//! | EventBridge (awsJson1.1) | 400 `ThrottlingException` | 503 `ServiceUnavailable` | 500 `InternalException` |
//! | Step Functions (awsJson1.0) | 400 `ThrottlingException` | 503 `ServiceUnavailable` | 500 `InternalFailure` |
//!
//! Sources:
//! - DynamoDB's errors and their statuses: Developer Guide, "Error handling with DynamoDB"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>):
//!   the `__type` prefix `com.amazonaws.dynamodb.v20120810#`, `InternalServerError` (500)
//!   and `ServiceUnavailable` (503, "DynamoDB is currently unavailable"), both retryable.
//! - Which throttling error an on-demand table gets: Developer Guide, "Understanding GSI
//!   write throttling and back pressure" (`gsi-throttling.html`): a provisioned table or
//!   index answers `ProvisionedThroughputExceededException`, an on-demand one
//!   (`PAY_PER_REQUEST`, as `template.yaml`'s table is) `ThrottlingException`, with a
//!   reason such as `TableWriteKeyRangeThroughputExceeded` (API Reference,
//!   `API_ThrottlingReason.html`). The field is `throttlingReasons` on `ThrottlingException`
//!   and `ThrottlingReasons` on the other two: aws-sdk-dynamodb 1.136's
//!   `protocol_serde/shape_throttling_exception.rs`. A table-level operation (CreateTable,
//!   DescribeTable...) is throttled by the control plane, as
//!   `com.amazon.coral.availability#ThrottlingException` "Rate exceeded" (what DynamoDB
//!   answers; dynalite's tests retry on it against the real service).
//! - A transaction: API Reference, `TransactWriteItems` / `TransactionCanceledException`:
//!   one cancellation reason per item in request order, code `ThrottlingError` with the
//!   message quoted in [`ON_DEMAND_THROTTLED`] "when writes get throttled on an On-Demand
//!   table"; the exception's text is `Message` (capitalised, unlike the others: SDK
//!   `shape_transaction_canceled_exception.rs`) and lists the codes, as AWS and moto write
//!   it. A throttled transaction is a cancelled one: the SDK's retry classifier
//!   (aws-runtime `THROTTLING_ERRORS`) does not retry it, the caller must.
//! - EventBridge and Step Functions: their API References' "Common Errors" pages
//!   (`eventbridge/latest/APIReference/CommonErrors.html`,
//!   `step-functions/latest/apireference/CommonErrors.html`): `ThrottlingException` (400),
//!   `ServiceUnavailable` (503), `InternalFailure` (500). PutEvents models its own 500,
//!   `InternalException` ("This exception occurs due to unexpected causes", the PutEvents
//!   API Reference), which the SDK parses as a typed error; other EventBridge operations
//!   model it too. "Rate exceeded" is the text AWS's throttling carries.

use super::{Kind, Service};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// The text of DynamoDB's on-demand throttling (`TransactionCanceledException`'s
/// `ThrottlingError` reason, API Reference).
pub const ON_DEMAND_THROTTLED: &str = "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html.";

/// The media types of AWS JSON 1.0 (DynamoDB, Step Functions) and 1.1 (EventBridge).
const JSON_1_0: &str = "application/x-amz-json-1.0";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The `__type` prefix of DynamoDB's own errors.
const DYNAMODB: &str = "com.amazonaws.dynamodb.v20120810#";

/// The account in the ARN of a throttled table: moto's default account, which the local
/// stack's resources live in.
const ACCOUNT: &str = "123456789012";

/// An error answer: its HTTP status, media type and JSON body (the router adds the
/// request id).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Value,
}

/// The request an error answers: its operation, body and the region it was signed for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub operation: &'a str,
    pub body: &'a [u8],
    pub region: &'a str,
}

/// `service`'s answer of `kind` to `request`.
pub fn answer(service: Service, kind: Kind, request: Request<'_>) -> Answer {
    match service {
        Service::Dynamodb => dynamodb(kind, request),
        Service::Events => common(kind, JSON_1_1, "InternalException"),
        Service::States => common(kind, JSON_1_0, "InternalFailure"),
    }
}

fn error(status: StatusCode, content_type: &'static str, kind: &str, message: &str) -> Answer {
    Answer {
        status,
        content_type,
        body: json!({"__type": kind, "message": message}),
    }
}

/// EventBridge's and Step Functions' answers (their common errors); `internal` names the
/// service's 500.
fn common(kind: Kind, content_type: &'static str, internal: &str) -> Answer {
    match kind {
        Kind::Throttling => error(
            StatusCode::BAD_REQUEST,
            content_type,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Kind::Unavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            content_type,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ),
        Kind::Internal => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            content_type,
            internal,
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
    }
}

/// What a DynamoDB operation does to a table, for the throttling reason it gets.
enum Access {
    Read,
    Write,
    /// A table-level operation (CreateTable, DescribeTable...): the control plane.
    Table,
}

fn access(operation: &str) -> Access {
    match operation {
        "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems" => Access::Read,
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems" => {
            Access::Write
        }
        _ => Access::Table,
    }
}

fn dynamodb(kind: Kind, request: Request<'_>) -> Answer {
    let body: Value = serde_json::from_slice(request.body).unwrap_or(Value::Null);
    match kind {
        Kind::Throttling => match request.operation {
            "TransactWriteItems" | "TransactGetItems" => transaction_throttled(&body),
            operation => match access(operation) {
                Access::Table => error(
                    StatusCode::BAD_REQUEST,
                    JSON_1_0,
                    "com.amazon.coral.availability#ThrottlingException",
                    "Rate exceeded",
                ),
                Access::Read => throttled(&body, "Read", request.region),
                Access::Write => throttled(&body, "Write", request.region),
            },
        },
        Kind::Unavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON_1_0,
            &format!("{DYNAMODB}ServiceUnavailable"),
            "DynamoDB is currently unavailable. (This should be a temporary state.)",
        ),
        Kind::Internal => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON_1_0,
            &format!("{DYNAMODB}InternalServerError"),
            "The server encountered an internal error trying to fulfill the request.",
        ),
    }
}

/// An on-demand table's throttling of one read or write (`operation_type`): a hot key
/// range, the throttling an on-demand table meets without any limit set. The reason names
/// the index when the request reads one.
fn throttled(body: &Value, operation_type: &str, region: &str) -> Answer {
    let mut answer = error(
        StatusCode::BAD_REQUEST,
        JSON_1_0,
        &format!("{DYNAMODB}ThrottlingException"),
        ON_DEMAND_THROTTLED,
    );
    if let Some(table) = body["TableName"].as_str() {
        let table_arn = format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}");
        let (resource_type, resource) = match body["IndexName"].as_str() {
            Some(index) => ("Index", format!("{table_arn}/index/{index}")),
            None => ("Table", table_arn),
        };
        answer.body["throttlingReasons"] = json!([{
            "reason": format!("{resource_type}{operation_type}KeyRangeThroughputExceeded"),
            "resource": resource,
        }]);
    }
    answer
}

/// A throttled transaction: cancelled, with one `ThrottlingError` reason per item of the
/// request (`TransactItems`).
fn transaction_throttled(body: &Value) -> Answer {
    let items = body["TransactItems"].as_array().map_or(0, Vec::len);
    let reasons = vec![json!({"Code": "ThrottlingError", "Message": ON_DEMAND_THROTTLED}); items];
    let codes = vec!["ThrottlingError"; items].join(", ");
    Answer {
        status: StatusCode::BAD_REQUEST,
        content_type: JSON_1_0,
        body: json!({
            "__type": format!("{DYNAMODB}TransactionCanceledException"),
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"),
            "CancellationReasons": reasons,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamodb_throttling(operation: &str, body: Value) -> Answer {
        let body = body.to_string();
        let request = Request {
            operation,
            body: body.as_bytes(),
            region: "eu-west-1",
        };
        answer(Service::Dynamodb, Kind::Throttling, request)
    }

    #[test]
    fn a_throttled_query_on_an_index_names_the_index_and_a_throttled_write_the_table() {
        let query = dynamodb_throttling(
            "Query",
            json!({"TableName": "orders", "IndexName": "by-status"}),
        );
        assert_eq!(query.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            query.body["throttlingReasons"],
            json!([{
                "reason": "IndexReadKeyRangeThroughputExceeded",
                "resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/by-status",
            }])
        );
        let put = dynamodb_throttling("PutItem", json!({"TableName": "orders"}));
        assert_eq!(
            put.body["throttlingReasons"][0]["reason"],
            "TableWriteKeyRangeThroughputExceeded"
        );
        let describe = dynamodb_throttling("DescribeTable", json!({"TableName": "orders"}));
        assert_eq!(
            describe.body["__type"],
            "com.amazon.coral.availability#ThrottlingException"
        );
    }

    #[test]
    fn a_throttled_transaction_is_cancelled_with_one_reason_per_item() {
        let items = json!({"TransactItems": [{"Put": {}}, {"Update": {}}, {"ConditionCheck": {}}]});
        let cancelled = dynamodb_throttling("TransactWriteItems", items);
        assert_eq!(cancelled.status, StatusCode::BAD_REQUEST);
        let codes: Vec<_> = cancelled.body["CancellationReasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|reason| reason["Code"].clone())
            .collect();
        assert_eq!(codes, vec![json!("ThrottlingError"); 3]);
        assert_eq!(
            cancelled.body["Message"],
            "Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError, ThrottlingError, ThrottlingError]"
        );
    }

    #[test]
    fn each_service_answers_an_outage_with_503_and_an_internal_failure_with_500() {
        let request = Request {
            operation: "PutEvents",
            body: b"{}",
            region: "us-east-1",
        };
        for service in Service::ALL {
            let unavailable = answer(service, Kind::Unavailable, request);
            assert_eq!(
                unavailable.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{service:?}"
            );
            let internal = answer(service, Kind::Internal, request);
            assert_eq!(
                internal.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{service:?}"
            );
        }
        let events = answer(Service::Events, Kind::Throttling, request);
        assert_eq!(events.content_type, "application/x-amz-json-1.1");
    }
}
