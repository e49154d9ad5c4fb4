use order_core::activity;
use order_core::partners::HttpWarehouse;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let warehouse = &HttpWarehouse::from_env().await?;
    activity::serve(|input| release_stock::handle(store, warehouse, input)).await
}
