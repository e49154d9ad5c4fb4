//! ReserveStock: asks the warehouse to hold the order's terminals and moves the order
//! VALIDATED -> STOCK_RESERVED. Not enough stock is `Stock.Unavailable` (never retried);
//! undone by ReleaseStock.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Warehouse;
use order_core::steps::RESERVE_STOCK as STEP;
use order_core::store::Ledger;
use order_core::OrderStatus;

/// Reserves one order's stock. Idempotent: the warehouse sees the same key on every try.
pub async fn handle(
    store: &impl Ledger,
    warehouse: &impl Warehouse,
    input: ActivityInput,
) -> Outcome {
    let plan = |_: &_| Move::to(OrderStatus::Validated, OrderStatus::StockReserved);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let reservation = warehouse.reserve(&call, &order.order.lines).await?;
        Ok(activity::references([(
            "reservation_id",
            Some(reservation.reservation_id),
        )]))
    })
    .await
}
