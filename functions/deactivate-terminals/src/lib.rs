//! DeactivateFaultyTerminals (replacements only): the terminals the merchant reported
//! faulty stop taking payments. The order stays STOCK_RESERVED. An unknown serial is
//! `Provisioning.Rejected` (never retried). Not undone: a terminal reported faulty stays
//! deactivated whatever becomes of its replacement.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Terminals;
use order_core::steps::DEACTIVATE_FAULTY_TERMINALS as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, OrderStatus};

/// Deactivates one replacement order's faulty terminals.
pub async fn handle(
    store: &impl Ledger,
    terminals: &impl Terminals,
    input: ActivityInput,
) -> Outcome {
    let plan = |_: &_| Move::stay(OrderStatus::StockReserved);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        if order.order.replace_serials.is_empty() {
            return Err(ActivityError::new(
                ErrorName::Internal,
                format!("order {} names no faulty terminals", order.order_id),
            )
            .into());
        }
        let deactivation = terminals
            .deactivate(&call, &order.order.replace_serials)
            .await?;
        let serials = deactivation.deactivated.join(",");
        Ok(activity::references([(
            "deactivated_serials",
            Some(serials),
        )]))
    })
    .await
}
