//! What passed through the router, counted: Lambda invocations per function with their
//! duration billed the way Lambda bills it, every other AWS request by service and
//! operation, with the DynamoDB items each one read or wrote, and the requests the router
//! answered itself with an injected fault ([`crate::faults`]). `make bench` reads it
//! (`GET /__meter`) before and after an order to count that order's work.
//!
//! DynamoDB capacity units are not read from the emulator: moto answers
//! `ReturnConsumedCapacity` with constants (and nothing for transactions). The meter
//! counts the items instead, split the way AWS prices them (transactional, strongly or
//! eventually consistent), and the bench applies AWS's unit rule to them.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The path the meter answers on; no AWS API uses it.
pub const PATH: &str = "/__meter";

/// Everything counted since the router started.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Counts {
    /// Per function name.
    pub invocations: BTreeMap<String, Invocations>,
    /// AWS API requests other than invokes, by `service:Operation`
    /// (`dynamodb:UpdateItem`, `states:SendTaskSuccess`).
    pub requests: BTreeMap<String, u64>,
    /// Requests answered with an injected fault instead, by `service:Operation`: they never
    /// reached the emulator and did no work, so they are not in `requests`.
    pub faults: BTreeMap<String, u64>,
    pub dynamodb: DynamoItems,
    /// The same, by the kind of item (`order`, `step`, `other`: by its sort key), so that
    /// each can be priced at its own size.
    pub dynamodb_by_item: BTreeMap<String, DynamoItems>,
}

/// A function's invocations and their billed duration: each rounded up to the next
/// millisecond, as Lambda bills.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Invocations {
    pub count: u64,
    pub billed_ms: u64,
}

/// DynamoDB items touched, by how AWS prices them.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct DynamoItems {
    /// Put, Update or Delete outside a transaction: one write each.
    pub written: u64,
    /// Every item of a `TransactWriteItems`, condition checks included: two writes each.
    pub written_in_transactions: u64,
    /// Items returned by a strongly consistent read: one read unit per 4 KB.
    pub read_consistent: u64,
    /// Items returned by an eventually consistent read (queries on an index): half that.
    pub read_eventually: u64,
    /// Items of a `TransactGetItems`: two read units each.
    pub read_in_transactions: u64,
}

impl Counts {
    pub fn invoked(&mut self, function: &str, took: Duration) {
        let entry = self.invocations.entry(function.to_owned()).or_default();
        entry.count += 1;
        entry.billed_ms += u64::try_from(took.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
    }

    /// One AWS request that the router answered with an injected fault.
    pub fn faulted(&mut self, operation: &Operation) {
        *self.faults.entry(operation.to_string()).or_default() += 1;
    }

    /// One AWS request that the emulator answered with `status`. A write refused by its
    /// condition is still billed by AWS; other refusals are not.
    pub fn requested(&mut self, operation: &Operation, request: &[u8], status: u16, answer: &[u8]) {
        *self.requests.entry(operation.to_string()).or_default() += 1;
        if operation.service != "dynamodb" {
            return;
        }
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        let (request, answer) = (json(request), json(answer));
        let refused_by_condition = answer["__type"].as_str().is_some_and(|kind| {
            kind.ends_with("ConditionalCheckFailedException")
                || kind.ends_with("TransactionCanceledException")
        });
        if !((200..300).contains(&status) || refused_by_condition) {
            return;
        }
        let entries = |value: &Value| value.as_array().cloned().unwrap_or_default();
        let consistent = request["ConsistentRead"].as_bool() == Some(true);
        let read = |items: &mut DynamoItems| match consistent {
            true => items.read_consistent += 1,
            false => items.read_eventually += 1,
        };
        match operation.name.as_str() {
            "PutItem" => self.count(&request["Item"], |items| items.written += 1),
            "UpdateItem" | "DeleteItem" => self.count(&request["Key"], |items| items.written += 1),
            "TransactWriteItems" => {
                for entry in entries(&request["TransactItems"]) {
                    let part = entry.as_object().and_then(|e| e.values().next().cloned());
                    let part = part.unwrap_or(Value::Null);
                    let item = if part["Item"].is_null() {
                        &part["Key"]
                    } else {
                        &part["Item"]
                    };
                    self.count(item, |items| items.written_in_transactions += 1);
                }
            }
            "TransactGetItems" => {
                for entry in entries(&request["TransactItems"]) {
                    self.count(&entry["Get"]["Key"], |items| {
                        items.read_in_transactions += 1
                    });
                }
            }
            "GetItem" if answer.get("Item").is_some() => self.count(&request["Key"], read),
            "Query" | "Scan" => {
                for item in entries(&answer["Items"]) {
                    self.count(&item, read);
                }
            }
            _ => {}
        }
    }

    /// Counts one item, in the totals and under its kind.
    fn count(&mut self, item: &Value, add: impl Fn(&mut DynamoItems)) {
        add(&mut self.dynamodb);
        add(self
            .dynamodb_by_item
            .entry(item_kind(item).to_owned())
            .or_default());
    }
}

/// What kind of item a key or item is, by its sort key: the order, one of its steps, or
/// anything else (idempotency keys, courier events).
fn item_kind(item: &Value) -> &'static str {
    match item["sk"]["S"].as_str() {
        Some("ORDER") => "order",
        Some(sk) if sk.starts_with("STEP#") => "step",
        _ => "other",
    }
}

/// An AWS operation: the service from the signature's credential scope, the name from
/// `X-Amz-Target` (JSON protocols) or the `Action` form field (query protocols).
///
/// DynamoDB Streams signs as `dynamodb` too; its requests are counted as
/// `dynamodbstreams:*`, apart from the table's: the local stream poller reads the stream
/// several times a second whatever the orders do, and on AWS the reads of Lambda's event
/// source mapping are free, so they must not grow the bench's DynamoDB requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub service: String,
    pub name: String,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.service, self.name)
    }
}

impl Operation {
    pub fn of(authorization: Option<&str>, target: Option<&str>, body: &[u8]) -> Operation {
        // `AWS4-HMAC-SHA256 Credential=AKID/20261128/us-east-1/dynamodb/aws4_request, ...`
        let signed_for = authorization
            .and_then(|value| value.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(3))
            .unwrap_or("unsigned");
        let streams = target.is_some_and(|t| t.starts_with("DynamoDBStreams_20120810."));
        let service = if streams {
            "dynamodbstreams"
        } else {
            signed_for
        };
        let action = || {
            std::str::from_utf8(body)
                .ok()?
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
                .map(str::to_owned)
        };
        let name = target
            .and_then(|target| target.rsplit('.').next())
            .map(str::to_owned)
            .or_else(action)
            .unwrap_or_else(|| "unknown".to_owned());
        Operation {
            service: service.to_owned(),
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SIGNED_FOR_DYNAMODB: &str = "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";

    fn dynamodb(name: &str) -> Operation {
        Operation::of(
            Some(SIGNED_FOR_DYNAMODB),
            Some(&format!("DynamoDB_20120810.{name}")),
            b"",
        )
    }

    fn bytes(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn an_operation_is_named_by_its_signing_service_and_its_target_or_action() {
        assert_eq!(dynamodb("UpdateItem").to_string(), "dynamodb:UpdateItem");
        let states = "AWS4-HMAC-SHA256 Credential=a/20261128/eu-west-1/states/aws4_request";
        let target = Some("AWSStepFunctions.SendTaskSuccess");
        assert_eq!(
            Operation::of(Some(states), target, b"").to_string(),
            "states:SendTaskSuccess"
        );
        let sqs = "AWS4-HMAC-SHA256 Credential=a/20261128/eu-west-1/sqs/aws4_request";
        let form = b"Action=SendMessage&Version=2012-11-05";
        assert_eq!(
            Operation::of(Some(sqs), None, form).to_string(),
            "sqs:SendMessage"
        );
        assert_eq!(
            Operation::of(None, None, b"{}").to_string(),
            "unsigned:unknown"
        );
    }

    #[test]
    fn a_stream_read_signed_for_dynamodb_is_counted_apart_from_the_tables_requests() {
        let target = Some("DynamoDBStreams_20120810.GetRecords");
        let read = Operation::of(Some(SIGNED_FOR_DYNAMODB), target, b"{}");
        assert_eq!(read.to_string(), "dynamodbstreams:GetRecords");
        let mut counts = Counts::default();
        counts.requested(&read, b"{}", 200, br#"{"Records": [{}, {}]}"#);
        assert_eq!(counts.dynamodb, DynamoItems::default());
        assert_eq!(counts.requests["dynamodbstreams:GetRecords"], 1);
    }

    #[test]
    fn invocations_are_billed_per_started_millisecond() {
        let mut counts = Counts::default();
        counts.invoked("take-payment", Duration::from_micros(1_001));
        counts.invoked("take-payment", Duration::from_micros(3_000));
        let billed = &counts.invocations["take-payment"];
        assert_eq!((billed.count, billed.billed_ms), (2, 5));
    }

    #[test]
    fn dynamodb_items_are_counted_the_way_aws_prices_them() {
        let mut counts = Counts::default();
        let order = json!({"pk": {"S": "ORDER#o-1"}, "sk": {"S": "ORDER"}});
        let step = json!({"pk": {"S": "ORDER#o-1"}, "sk": {"S": "STEP#ReserveStock"}});
        let transaction = json!({"TransactItems": [
            {"Update": {"Key": order}}, {"Put": {"Item": step}}, {"ConditionCheck": {}}
        ]});
        counts.requested(
            &dynamodb("TransactWriteItems"),
            &bytes(transaction),
            200,
            b"{}",
        );
        let update = bytes(json!({"Key": order}));
        counts.requested(&dynamodb("UpdateItem"), &update, 200, b"{}");
        let consistent = bytes(json!({"ConsistentRead": true}));
        counts.requested(
            &dynamodb("GetItem"),
            &consistent,
            200,
            &bytes(json!({"Item": {}})),
        );
        counts.requested(&dynamodb("GetItem"), &consistent, 200, b"{}");
        let page = bytes(json!({"Items": [{}, {}, {}]}));
        counts.requested(&dynamodb("Query"), b"{}", 200, &page);
        counts.requested(&dynamodb("Query"), &consistent, 200, &page);
        // A write refused by its condition is billed; one refused as invalid is not.
        let failed = bytes(
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}),
        );
        counts.requested(&dynamodb("PutItem"), b"{}", 400, &failed);
        counts.requested(&dynamodb("PutItem"), b"{}", 400, b"{}");
        let expected = DynamoItems {
            written: 2,
            written_in_transactions: 3,
            read_consistent: 4,
            read_eventually: 3,
            read_in_transactions: 0,
        };
        assert_eq!(counts.dynamodb, expected);
        let of = |kind: &str| {
            counts
                .dynamodb_by_item
                .get(kind)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            (of("order").written, of("order").written_in_transactions),
            (1, 1)
        );
        assert_eq!(of("step").written_in_transactions, 1);
        // The condition check names no key here; other reads and writes name none either.
        assert_eq!(of("other").written_in_transactions, 1);
        assert_eq!(of("other").read_consistent, 4);
        assert_eq!(counts.requests["dynamodb:PutItem"], 2);
        assert_eq!(counts.requests["dynamodb:GetItem"], 2);
    }
}
