//! CreateReturnLabel (replacements only): the courier issues the label the merchant sends
//! the faulty terminals back with. The order stays STOCK_RESERVED. A refusal is
//! `Shipment.Rejected` (never retried). Not undone: an unused label costs nothing.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Courier;
use order_core::steps::CREATE_RETURN_LABEL as STEP;
use order_core::store::Ledger;
use order_core::OrderStatus;

/// Creates one replacement order's return label.
pub async fn handle(store: &impl Ledger, courier: &impl Courier, input: ActivityInput) -> Outcome {
    let plan = |_: &_| Move::stay(OrderStatus::StockReserved);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let label = courier
            .return_label(
                &call,
                &order.order.replace_serials,
                &order.order.delivery_address,
            )
            .await?;
        Ok(activity::references([
            ("return_label_id", Some(label.return_label_id)),
            ("label_url", Some(label.label_url)),
        ]))
    })
    .await
}
