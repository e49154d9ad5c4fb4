//! The first-invocation floor: a `lambda_runtime` bootstrap with a bare SDK client. Init
//! loads the AWS configuration and builds a DynamoDB client, as a function does; each event
//! `{"order_id": ...}` makes the first call every activity makes, one conditional
//! UpdateItem of the order's item in `TABLE_NAME` that returns it (here it counts
//! attempts of a step named `SdkFloor`), and answers. No tracing, secrets or ledger.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    // The HTTP client the functions' configuration uses (order_core::config::aws_loader).
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let (client, table) = (&client, table.as_str());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let id = event.payload["order_id"]
            .as_str()
            .ok_or("the event has no order_id")?;
        let output = client
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("ORDER#{id}")))
            .key("sk", AttributeValue::S("ORDER".into()))
            .update_expression("ADD #attempts :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#attempts", "attempts:SdkFloor")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await?;
        let attributes = output.attributes().map_or(0, |item| item.len());
        Ok::<Value, Error>(json!({"order_id": id, "attributes": attributes}))
    }))
    .await
}
