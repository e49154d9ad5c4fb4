//! `/orders/{id}`: one order in one view: the order item, its steps (attempts, times,
//! partner references, errors; compensations marked), its executions with their release
//! and a link to each in the AWS console, the dead-letter queue's counts with the form
//! that looks for the order's messages (a look receives them, so only a POST does it),
//! the operators' actions on it, and the merged timeline (`crate::orders::gather`, the
//! same as `orderctl orders show`). Nothing on the page changes anything.

use super::error::ConsoleError;
use super::pages::{self, OrderPage};
use super::Console;
use crate::error::CliError;
use crate::orders::{gather, order_id};
use axum::extract::{Path, Query, State};
use maud::Markup;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct Shown {
    /// Set by the redirect after an action: the page says what was done.
    acted: Option<String>,
}

/// The order page; a 404 page naming the id when there is no such order.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path(raw_id): Path<String>,
    Query(shown): Query<Shown>,
) -> Result<Markup, ConsoleError> {
    let id = order_id(&raw_id)?;
    let order = gather(&console.context, &id).await?;
    let audits = console.store.audit_trail(&id).await?;
    let dead_letters = match console.context.dead_letters() {
        Ok(queue) => Ok(queue.counts().await?),
        Err(CliError::Usage(why)) => Err(why),
        Err(other) => return Err(other.into()),
    };
    Ok(pages::order(&OrderPage {
        order: &order.order,
        steps: &order.steps,
        executions: &order.executions,
        rows: &order.rows,
        audits: &audits,
        dead_letters,
        token: console.guard.token(),
        acted: shown.acted.is_some(),
    }))
}
