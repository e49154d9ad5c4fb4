//! NotifyCustomer: tells the merchant their terminals arrived. Best effort: the state
//! machine catches every failure and completes the order anyway; the order's status does
//! not change here (DELIVERED).

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Notifications;
use order_core::steps::NOTIFY_CUSTOMER as STEP;
use order_core::store::Ledger;
use order_core::OrderStatus;
use serde_json::json;

/// The message template the notification service renders.
pub const TEMPLATE: &str = "terminals_delivered";

/// Notifies one order's merchant.
pub async fn handle(
    store: &impl Ledger,
    notifications: &impl Notifications,
    input: ActivityInput,
) -> Outcome {
    let plan = |_: &_| Move::stay(OrderStatus::Delivered);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let data = json!({
            "kind": order.order.kind,
            "lines": order.order.lines,
            "delivered_at": order.delivery.as_ref().map(|d| d.delivered_at.clone()),
        });
        let message = notifications.send(&call, TEMPLATE, data).await?;
        Ok(activity::references([(
            "message_id",
            Some(message.message_id),
        )]))
    })
    .await
}
