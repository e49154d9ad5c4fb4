use courier_webhook::Webhook;
use lambda_http::{service_fn, Request};
use order_core::secrets::RotatingSecret;
use order_core::{activity, config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let hook = &Webhook {
        store: activity::start().await?,
        workflow: aws_sdk_sfn::Client::new(&config::aws().await),
        secret: RotatingSecret::from_env(courier_webhook::SECRET_VARIABLE).await?,
    };
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, lambda_http::Error>(courier_webhook::handle(hook, request).await)
    }))
    .await
}
