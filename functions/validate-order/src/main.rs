use order_core::activity;
use order_core::catalogue::Catalogue;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let catalogue = &Catalogue::builtin()?;
    activity::serve(|input| validate_order::handle(store, catalogue, input)).await
}
