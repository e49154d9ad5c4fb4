//! ArrangeShipment: hands the terminals to the courier and moves the order PROVISIONED ->
//! SHIPPED, recording the tracking number. From here on the order can no longer be
//! cancelled. A refusal (undeliverable address) is `Shipment.Rejected` (never retried);
//! undone by CancelShipment.

use order_core::activity::{self, ActivityInput, ActivityOutput, Move};
use order_core::partners::Courier;
use order_core::steps::ARRANGE_SHIPMENT as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, OrderStatus};

/// Ships one order.
pub async fn handle(
    store: &impl Ledger,
    courier: &impl Courier,
    input: ActivityInput,
) -> Result<ActivityOutput, ActivityError> {
    let plan = |_: &_| Move::to(OrderStatus::Provisioned, OrderStatus::Shipped);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let parcels = order.order.total_quantity();
        let shipment = courier
            .ship(&call, &order.order.delivery_address, parcels)
            .await
            .map_err(call.refused_as(ErrorName::ShipmentRejected))?;
        Ok(activity::references([
            ("shipment_id", Some(shipment.shipment_id)),
            ("tracking_number", Some(shipment.tracking_number)),
        ]))
    })
    .await
}
