//! CompleteOrder: the last step of the workflow; marks a delivered order COMPLETED.

use order_core::activity::{self, ActivityInput, Move, Outcome, References};
use order_core::steps::COMPLETE_ORDER as STEP;
use order_core::store::Ledger;
use order_core::OrderStatus;

/// Completes one order. Idempotent: run again after success, it returns the recorded result.
pub async fn handle(store: &impl Ledger, input: ActivityInput) -> Outcome {
    let plan = |_: &_| Move::to(OrderStatus::Delivered, OrderStatus::Completed);
    activity::run_step(store, &input, STEP, plan, |_, _| async {
        Ok(References::new())
    })
    .await
}
