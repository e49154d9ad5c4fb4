use order_core::events;
use order_core::partners::HttpCourier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let courier: &'static _ = Box::leak(Box::new(HttpCourier::from_env().await?));
    events::serve_announced(|store, input| arrange_shipment::handle(store, courier, input)).await
}
