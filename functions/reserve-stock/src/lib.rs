//! ReserveStock: asks the warehouse to hold the order's terminals and moves the order
//! VALIDATED -> STOCK_RESERVED. Not enough stock is `Stock.Unavailable` (never retried);
//! undone by ReleaseStock.

use order_core::activity::{self, ActivityInput, ActivityOutput, Move};
use order_core::partners::Warehouse;
use order_core::steps::RESERVE_STOCK as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, OrderStatus};

/// Reserves one order's stock. Idempotent: the warehouse sees the same key on every try.
pub async fn handle(
    store: &impl Ledger,
    warehouse: &impl Warehouse,
    input: ActivityInput,
) -> Result<ActivityOutput, ActivityError> {
    let plan = |_: &_| Move::to(OrderStatus::Validated, OrderStatus::StockReserved);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let reservation = warehouse
            .reserve(&call, &order.order.lines)
            .await
            .map_err(call.refused_as(ErrorName::StockUnavailable))?;
        Ok(activity::references([(
            "reservation_id",
            Some(reservation.reservation_id),
        )]))
    })
    .await
}
