use order_core::events::EventBus;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    order_core::telemetry::init();
    let bus = &EventBus::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(publish_events::handle(bus, event.payload).await)
        },
    ))
    .await
}
