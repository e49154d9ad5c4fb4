use order_core::events;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    events::serve_announced(fail_order::handle).await
}
