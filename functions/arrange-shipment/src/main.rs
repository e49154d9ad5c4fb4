use order_core::activity;
use order_core::partners::HttpCourier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let courier = &HttpCourier::from_env().await?;
    activity::serve(|input| arrange_shipment::handle(store, courier, input)).await
}
