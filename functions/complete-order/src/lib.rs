//! CompleteOrder: the last step of the workflow; marks the order COMPLETED.

use order_core::activity::{self, ActivityInput, ActivityOutput};
use order_core::store::OrderStore;
use order_core::{ActivityError, OrderStatus};
use std::collections::BTreeMap;

pub const STEP: &str = "CompleteOrder";

/// Completes one order. Idempotent: run again after success, it returns the recorded result.
#[tracing::instrument(name = "complete_order", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(
    store: &OrderStore,
    input: ActivityInput,
) -> Result<ActivityOutput, ActivityError> {
    let id = activity::order_id(&input.order_id)?;
    activity::run_step(
        store,
        &id,
        STEP,
        OrderStatus::Validated,
        OrderStatus::Completed,
        |_| async { Ok(BTreeMap::new()) },
    )
    .await
}
