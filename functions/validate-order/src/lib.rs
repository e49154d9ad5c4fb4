//! ValidateOrder: re-checks the stored order against today's catalogue (a SKU or market
//! may have been withdrawn since the API accepted it) and moves it ACCEPTED -> VALIDATED.
//! An order that no longer passes fails with `Order.Invalid`, which is never retried.

use order_core::activity::{self, ActivityInput, Move, Outcome, References};
use order_core::catalogue::Catalogue;
use order_core::steps::VALIDATE_ORDER as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, Order, OrderStatus};

/// Validates one order. Idempotent: run again after success, it returns the recorded result.
pub async fn handle(store: &impl Ledger, catalogue: &Catalogue, input: ActivityInput) -> Outcome {
    let plan = |_: &_| Move::to(OrderStatus::Accepted, OrderStatus::Validated);
    activity::run_step(store, &input, STEP, plan, |order, _| async move {
        Order::parse(&order.order.to_json(), catalogue).map_err(|problems| {
            ActivityError::new(
                ErrorName::OrderInvalid,
                format!(
                    "order {} no longer passes validation: {problems}",
                    order.order_id
                ),
            )
        })?;
        Ok(References::new())
    })
    .await
}
