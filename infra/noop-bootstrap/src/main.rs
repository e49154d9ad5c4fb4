//! The cold-start floor: a `lambda_runtime` bootstrap that answers every event with its
//! input and does nothing else (no AWS client, no tracing, no configuration).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
