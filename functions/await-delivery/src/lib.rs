//! AwaitDelivery: the execution waits here (`.waitForTaskToken`) until the courier says
//! the parcel arrived. This function stores the task token on the SHIPPED order; the
//! courier webhook (`orders-api`) then records the delivery and resumes the execution.
//!
//! The two can arrive in either order. Both write the order conditionally, so exactly one
//! of them sees both the token and the delivery, and that one resumes the execution: when
//! the delivery was recorded first, this function resumes it itself.

use order_core::activity::{self, ActivityOutput};
use order_core::delivery::{self, Resumed};
use order_core::steps::AWAIT_DELIVERY as STEP;
use order_core::store::{OrderStore, StepStart, TokenStored};
use order_core::{ActivityError, ErrorName, OrderStatus};
use serde::Deserialize;

/// What the state machine hands over: the order and the token of the waiting task.
#[derive(Debug, Clone, Deserialize)]
pub struct AwaitDeliveryInput {
    pub order_id: String,
    pub task_token: String,
}

/// Parks one order's execution until its delivery, or resumes it when the delivery is
/// already recorded. Idempotent: a second run stores the same token again.
#[tracing::instrument(name = "await_delivery", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(
    store: &OrderStore,
    workflow: &aws_sdk_sfn::Client,
    input: AwaitDeliveryInput,
) -> Result<ActivityOutput, ActivityError> {
    let id = activity::order_id(&input.order_id)?;
    if input.task_token.trim().is_empty() {
        return Err(ActivityError::new(
            ErrorName::Internal,
            format!("order {id}: AwaitDelivery was invoked without a task token"),
        ));
    }
    let order = store.require_order(&id).await?;
    let kind = order.order.kind;
    let (record, delivered) = match store.begin_step(&id, STEP.name).await? {
        // The webhook recorded the delivery (and this step) since `order` was read.
        StepStart::AlreadySucceeded(record) => (record, Some(store.require_order(&id).await?)),
        StepStart::Started(record) => match store.store_task_token(&id, &input.task_token).await {
            Ok(TokenStored::Waiting) => (record, None),
            Ok(TokenStored::AlreadyDelivered(order)) => (record, Some(*order)),
            Err(error) => {
                return Err(activity::record_failure(store, &id, STEP.name, error.into()).await)
            }
        },
    };
    let Some(order) = delivered else {
        tracing::info!(
            attempts = record.attempts,
            "waiting for the courier's delivery event"
        );
        return Ok(ActivityOutput::from_step(
            record,
            OrderStatus::Shipped,
            kind,
            false,
        ));
    };
    let Some(delivery) = order.delivery.clone() else {
        return Err(ActivityError::new(
            ErrorName::Internal,
            format!("order {id} is {} without a recorded delivery", order.status),
        ));
    };
    match delivery::resume(workflow, &id, &input.task_token, &delivery).await {
        Ok(Resumed::Now) => tracing::info!("delivery was recorded first; execution resumed"),
        Ok(Resumed::AlreadyResumed) => tracing::info!("execution was resumed already"),
        Err(message) => {
            return Err(ActivityError::new(
                ErrorName::WorkflowUnavailable,
                format!("order {id}: resuming the execution failed: {message}"),
            ))
        }
    }
    Ok(ActivityOutput::from_step(record, order.status, kind, true))
}
