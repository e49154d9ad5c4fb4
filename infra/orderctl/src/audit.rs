//! Every action orderctl takes on an order (the CLI's and the console's cancel, resume,
//! undo, redrive and dead-letter replay) goes through [`act`]: its audit record, naming
//! the STS identity (`--operator` beside it), is written before the action and finished
//! with its outcome after it (`order_core::store::audited`). An action whose record
//! cannot be written is not taken.

use crate::context::Context;
use crate::error::CliError;
use order_core::store::{audited, OrderStore};
use order_core::OrderId;
use std::future::Future;

/// Takes `action` (named `name` in the record) on order `id`, recorded as [`audited`]
/// does; `describe` says its outcome for the record.
pub async fn act<T, E>(
    context: &Context,
    store: &OrderStore,
    id: &OrderId,
    name: &str,
    action: impl Future<Output = Result<T, E>>,
    describe: impl FnOnce(&Result<T, E>) -> String,
) -> Result<Result<T, E>, CliError> {
    let acting = context.acting().await?;
    audited(store, id, &acting.entry(name), action, describe)
        .await
        .map_err(|error| match error {
            order_core::store::StoreError::NotFound(id) => {
                CliError::NotFound(format!("order {id} does not exist"))
            }
            other => {
                let error = CliError::from(other);
                CliError::Failed(format!(
                    "nothing was done: the action's audit record could not be written ({error})"
                ))
            }
        })
}

/// An outcome for the record: `describe(value)`, or `refused: <error>`.
pub fn outcome<T, E: std::fmt::Display>(
    result: &Result<T, E>,
    describe: impl FnOnce(&T) -> String,
) -> String {
    match result {
        Ok(value) => describe(value),
        Err(error) => format!("refused: {error}"),
    }
}
