//! CancelShipment (compensation of ArrangeShipment): calls the parcel back before it is
//! delivered. Safe when nothing was shipped. A parcel the courier already delivered
//! cannot be cancelled: that refusal is permanent and puts the order in front of an
//! operator (dead-letter queue).

use order_core::activity::{self, Outcome, Rollback};
use order_core::partners::Courier;
use order_core::steps::CANCEL_SHIPMENT as STEP;
use order_core::store::Ledger;

/// Cancels one order's shipment.
pub async fn handle(store: &impl Ledger, courier: &impl Courier, input: Rollback) -> Outcome {
    activity::run_compensation(store, &input, STEP, |_, call| async move {
        let cancellation = courier.cancel(&call).await?;
        Ok(activity::references([
            ("cancelled", Some(cancellation.cancelled.to_string())),
            ("shipment_id", cancellation.shipment_id),
        ]))
    })
    .await
}
