use order_core::activity;
use order_core::partners::HttpNotifications;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let notifications = &HttpNotifications::from_env().await?;
    activity::serve(|input| notify_customer::handle(store, notifications, input)).await
}
