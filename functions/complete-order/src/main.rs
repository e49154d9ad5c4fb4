use order_core::activity;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    activity::serve(|input| complete_order::handle(store, input)).await
}
