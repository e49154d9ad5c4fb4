use courier_webhook::Webhook;
use lambda_http::{service_fn, Request};
use order_core::secrets::RotatingSecret;
use order_core::store::OrderStore;
use order_core::{config, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let aws = config::aws().await;
    let hook = Webhook {
        store: OrderStore::from_config(aws, config::table_name()?),
        workflow: aws_sdk_sfn::Client::new(aws),
        secret: RotatingSecret::from_env(courier_webhook::SECRET_VARIABLE).await?,
    };
    let hook = &hook;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, lambda_http::Error>(courier_webhook::handle(hook, request).await)
    }))
    .await
}
