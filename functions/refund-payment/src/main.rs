use order_core::activity;
use order_core::partners::HttpPayments;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let payments = &HttpPayments::from_env().await?;
    activity::serve(|input| refund_payment::handle(store, payments, input)).await
}
