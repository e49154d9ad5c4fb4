//! AwaitDelivery: the execution waits here (`.waitForTaskToken`) until the courier says
//! the parcel arrived. This function stores the task token on the SHIPPED order; the
//! courier webhook then records the delivery and resumes the execution. Both halves of
//! the hand-over live in `order_core::delivery`.

use order_core::activity::Outcome;
use order_core::delivery::{self, TaskResumer};
use order_core::store::{Attempt, Ledger, TaskToken};
use serde::Deserialize;

/// What the state machine hands over: the order, the token of the waiting task, and
/// which attempt made it (`$$.Execution.Name`, `$.outage.waits`, `$$.State.RetryCount`;
/// absent from an
/// execution of an older definition), so that a late copy of an older attempt never
/// replaces a newer attempt's token.
#[derive(Debug, Clone, Deserialize)]
pub struct AwaitDeliveryInput {
    pub order_id: String,
    pub task_token: String,
    #[serde(default)]
    pub execution: Option<String>,
    #[serde(default)]
    pub attempt: Option<u32>,
    /// The execution's outage waits when AwaitDelivery was entered (`$.outage.waits`).
    #[serde(default)]
    pub outage_waits: Option<u32>,
}

impl AwaitDeliveryInput {
    /// The token with its attempt, when the definition passed both.
    pub fn token(&self) -> TaskToken<'_> {
        TaskToken {
            token: &self.task_token,
            attempt: match (&self.execution, self.attempt) {
                (Some(execution), Some(retry)) => Some(Attempt {
                    execution,
                    outage_waits: self.outage_waits.unwrap_or(0),
                    retry,
                }),
                _ => None,
            },
        }
    }
}

/// Parks one order's execution until its delivery, or resumes it when the delivery is
/// already recorded ([`delivery::await_delivery`]).
#[tracing::instrument(name = "await_delivery", skip_all, fields(order_id = %input.order_id))]
pub async fn handle(
    store: &impl Ledger,
    workflow: &impl TaskResumer,
    input: AwaitDeliveryInput,
) -> Outcome {
    delivery::await_delivery(store, workflow, &input.order_id, &input.token()).await
}
