use order_core::activity;
use order_core::catalogue::Catalogue;
use order_core::partners::HttpPayments;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let payments = &HttpPayments::from_env().await?;
    let catalogue = &Catalogue::builtin()?;
    activity::serve(|input| take_payment::handle(store, payments, catalogue, input)).await
}
