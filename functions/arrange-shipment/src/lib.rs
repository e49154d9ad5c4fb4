//! ArrangeShipment: hands the terminals to the courier and moves the order PROVISIONED ->
//! SHIPPED, recording the tracking number. From here on the order can no longer be
//! cancelled. A refusal (undeliverable address) is `Shipment.Rejected` (never retried);
//! undone by CancelShipment.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Courier;
use order_core::steps::ARRANGE_SHIPMENT as STEP;
use order_core::store::Ledger;
use order_core::OrderStatus;

/// Ships one order.
pub async fn handle(store: &impl Ledger, courier: &impl Courier, input: ActivityInput) -> Outcome {
    let plan = |_: &_| Move::to(OrderStatus::Provisioned, OrderStatus::Shipped);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let parcels = order.order.total_quantity();
        let shipment = courier
            .ship(&call, &order.order.delivery_address, parcels)
            .await?;
        Ok(activity::references([
            ("shipment_id", Some(shipment.shipment_id)),
            ("tracking_number", Some(shipment.tracking_number)),
        ]))
    })
    .await
}
