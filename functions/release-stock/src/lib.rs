//! ReleaseStock (compensation of ReserveStock): gives the order's reserved terminals back
//! to the warehouse. Safe when nothing was reserved; the warehouse then refuses a late
//! reservation for the order, so a retry still in flight cannot leave stock held.

use order_core::activity::{self, Outcome, Rollback};
use order_core::partners::Warehouse;
use order_core::steps::RELEASE_STOCK as STEP;
use order_core::store::Ledger;

/// Releases one order's stock.
pub async fn handle(store: &impl Ledger, warehouse: &impl Warehouse, input: Rollback) -> Outcome {
    activity::run_compensation(store, &input, STEP, |_, call| async move {
        let release = warehouse.release(&call).await?;
        Ok(activity::references([
            ("released", Some(release.released.to_string())),
            ("reservation_id", release.reservation_id),
        ]))
    })
    .await
}
