use lambda_runtime::{service_fn, LambdaEvent};
use order_core::catalogue::Catalogue;
use order_core::store::OrderStore;
use order_core::{activity, config, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let store = OrderStore::from_config(&config::aws().await, config::table_name()?);
    let catalogue = Catalogue::builtin()?;
    let (store, catalogue) = (&store, &catalogue);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let input = activity::parse_input(event.payload)?;
            validate_order::handle(store, catalogue, input).await
        },
    ))
    .await
}
