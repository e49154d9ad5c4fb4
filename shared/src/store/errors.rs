//! What a ledger operation can fail with, and the error name each failure gives the
//! state machine.

use crate::errors::{ActivityError, ErrorName};
use crate::order::OrderId;
use crate::status::{IllegalTransition, OrderStatus};

/// A store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} does not exist")]
    NotFound(OrderId),
    #[error("order {order_id} is {actual}, not {expected}: someone else moved it")]
    Conflict {
        order_id: OrderId,
        expected: OrderStatus,
        actual: OrderStatus,
    },
    #[error("order {order_id}: {source}")]
    IllegalTransition {
        order_id: OrderId,
        source: IllegalTransition,
    },
    /// DynamoDB throttled, failed or could not be reached: worth retrying.
    #[error("DynamoDB {operation} failed: {message}")]
    Unavailable {
        operation: &'static str,
        message: String,
    },
    /// An item does not have the shape this code writes.
    #[error("item {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    /// The order changed since it was read (a resume, a step, a cancel): a write
    /// conditional on the version read was not made.
    #[error("order {order_id} changed since it was read at version {read_version}")]
    Changed {
        order_id: OrderId,
        read_version: u64,
    },
    /// Someone else recorded another execution of the order since it was read (another
    /// resumer, or the API's retry): they drive it now.
    #[error("order {order_id}: someone else started or resumed it since it was read (its execution is now {execution_arn:?})")]
    Claimed {
        order_id: OrderId,
        execution_arn: Option<String>,
    },
}

impl From<StoreError> for ActivityError {
    fn from(error: StoreError) -> Self {
        let name = match &error {
            StoreError::NotFound(_) => ErrorName::OrderNotFound,
            StoreError::Conflict {
                actual: OrderStatus::Cancelling | OrderStatus::Cancelled,
                ..
            } => ErrorName::OrderCancelled,
            StoreError::Conflict { .. }
            | StoreError::Claimed { .. }
            | StoreError::Changed { .. } => ErrorName::OrderConflict,
            StoreError::Unavailable { .. } => ErrorName::StoreUnavailable,
            StoreError::IllegalTransition { .. } | StoreError::Corrupt { .. } => {
                ErrorName::Internal
            }
        };
        ActivityError::new(name, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_names_the_state_machine_matches() {
        let id = OrderId::generate();
        let cases = [
            (StoreError::NotFound(id.clone()), ErrorName::OrderNotFound),
            (
                StoreError::Conflict {
                    order_id: id.clone(),
                    expected: OrderStatus::Accepted,
                    actual: OrderStatus::Cancelling,
                },
                ErrorName::OrderCancelled,
            ),
            (
                StoreError::Conflict {
                    order_id: id.clone(),
                    expected: OrderStatus::Accepted,
                    actual: OrderStatus::Failed,
                },
                ErrorName::OrderConflict,
            ),
            (
                StoreError::Unavailable {
                    operation: "GetItem",
                    message: "throttled".into(),
                },
                ErrorName::StoreUnavailable,
            ),
        ];
        for (error, name) in cases {
            assert_eq!(ActivityError::from(error).name, name);
        }
    }
}
