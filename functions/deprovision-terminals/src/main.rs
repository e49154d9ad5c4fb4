use order_core::activity;
use order_core::partners::HttpTerminals;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let terminals = &HttpTerminals::from_env().await?;
    activity::serve(|input| deprovision_terminals::handle(store, terminals, input)).await
}
