//! CancelShipment (compensation of ArrangeShipment, the rollback's first step): calls
//! the parcel back before it is delivered. Safe when nothing was shipped. A parcel that
//! was delivered is never rolled back past: when the courier's delivery event was
//! recorded first the order is DELIVERED and this step ends the rollback
//! (`Order.Delivered`: the order completes); when the courier says "already delivered"
//! before its event reached us, the step waits for the event like an outage
//! (`Shipment.Delivered`), and the next attempt finds the order DELIVERED.

use order_core::activity::{self, Outcome, Rollback};
use order_core::partners::{Courier, PartnerError, PartnerFailure};
use order_core::steps::CANCEL_SHIPMENT as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName};

/// The courier's refusal code for a parcel it has delivered.
const ALREADY_DELIVERED: &str = "already_delivered";

/// Cancels one order's shipment.
pub async fn handle(store: &impl Ledger, courier: &impl Courier, input: Rollback) -> Outcome {
    activity::run_compensation(store, &input, STEP, |order, call| async move {
        let cancellation = match courier.cancel(&call).await {
            Err(PartnerError {
                failure: PartnerFailure::Refused { code, .. },
                message,
                ..
            }) if code == ALREADY_DELIVERED => {
                return Err(ActivityError::new(
                    ErrorName::ShipmentDelivered,
                    format!(
                        "order {}: the courier says the parcel was delivered ({message}); waiting for its delivery event",
                        order.order_id
                    ),
                )
                .into())
            }
            other => other?,
        };
        Ok(activity::references([
            ("cancelled", Some(cancellation.cancelled.to_string())),
            ("shipment_id", cancellation.shipment_id),
        ]))
    })
    .await
}
