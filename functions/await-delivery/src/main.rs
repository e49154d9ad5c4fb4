use order_core::{activity, config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let workflow = &aws_sdk_sfn::Client::new(&config::aws().await);
    activity::serve(|input| await_delivery::handle(store, workflow, input)).await
}
