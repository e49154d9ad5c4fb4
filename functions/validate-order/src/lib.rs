//! ValidateOrder: re-checks the stored order against today's catalogue (a SKU or market
//! may have been withdrawn since the API accepted it) and moves it ACCEPTED -> VALIDATED.
//! An order that no longer passes fails with `Order.Invalid`, which is never retried.

use order_core::activity::{self, ActivityInput, ActivityOutput};
use order_core::catalogue::Catalogue;
use order_core::store::OrderStore;
use order_core::{ActivityError, ErrorName, Order, OrderStatus};
use std::collections::BTreeMap;

pub const STEP: &str = "ValidateOrder";

/// Validates one order. Idempotent: run again after success, it returns the recorded result.
#[tracing::instrument(name = "validate_order", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(
    store: &OrderStore,
    catalogue: &Catalogue,
    input: ActivityInput,
) -> Result<ActivityOutput, ActivityError> {
    let id = activity::order_id(&input.order_id)?;
    activity::run_step(
        store,
        &id,
        STEP,
        OrderStatus::Accepted,
        OrderStatus::Validated,
        |record| async move {
            Order::parse(&record.order.to_json(), catalogue).map_err(|problems| {
                ActivityError::new(
                    ErrorName::OrderInvalid,
                    format!(
                        "order {} no longer passes validation: {problems}",
                        record.order_id
                    ),
                )
            })?;
            Ok(BTreeMap::new())
        },
    )
    .await
}
