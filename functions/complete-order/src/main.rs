use order_core::events;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    events::serve_announced(complete_order::handle).await
}
