//! The reconciler: run on a schedule (every 5 minutes on AWS; `orderctl reconcile`
//! locally), it finds orders that are not finished, have not changed for a grace period
//! and have no running execution, and resumes them, or parks them in the workflow
//! dead-letter queue with the reason once they were resumed often enough. Nothing
//! accepted is ever silently dropped. See `order_core::recovery` for the rules.

use order_core::dead_letters::DeadLetterQueue;
use order_core::recovery::{
    self, Action, Escalation, ReconcileOptions, Reconciled, RecoveryError, Workflow,
};
use order_core::store::{Ledger, Retention};
use serde::Serialize;

/// What one run did, counted (and each order, for the logs and `orderctl`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub examined: usize,
    pub resumed: usize,
    pub parked: usize,
    pub running: usize,
    pub already_parked: usize,
    /// Changed since the index was read: left alone.
    pub changed: usize,
    /// Could not be reconciled (our infrastructure failed on them); the next run tries
    /// them again.
    pub failed: usize,
    pub orders: Vec<Reconciled>,
    /// Ended orders whose personal data this run removed (past the retention period).
    #[serde(default)]
    pub anonymised: usize,
}

impl Summary {
    /// Counts what was done per order.
    pub fn of(orders: Vec<Reconciled>) -> Summary {
        let mut summary = Summary {
            examined: orders.len(),
            ..Summary::default()
        };
        for order in &orders {
            match order.action {
                Action::Resumed { .. } => summary.resumed += 1,
                Action::Parked { .. } => summary.parked += 1,
                Action::Running { .. } => summary.running += 1,
                Action::AlreadyParked => summary.already_parked += 1,
                Action::Changed => summary.changed += 1,
                Action::Failed { .. } => summary.failed += 1,
            }
        }
        summary.orders = orders;
        summary
    }
}

/// One scheduled run: [`handle`], then the retention pass
/// (`order_core::recovery::anonymise_ended`) over orders that ended more than
/// `retention_days` ago, at most `options.limit` per final status.
pub async fn run(
    store: &(impl Ledger + Retention),
    workflow: &Workflow,
    escalation: Escalation<'_, DeadLetterQueue>,
    options: ReconcileOptions,
    retention_days: u64,
) -> Result<Summary, RecoveryError> {
    let mut summary = handle(store, workflow, escalation, options).await?;
    let cutoff = order_core::store::retention::cutoff(retention_days);
    let pass = recovery::anonymise_ended(store, &cutoff, options.limit).await?;
    tracing::info!(
        anonymised = pass.anonymised.len(),
        looked_at = pass.looked_at,
        more = pass.more,
        retention_days,
        "retention pass finished"
    );
    summary.anonymised = pass.anonymised.len();
    Ok(summary)
}

/// One reconciler run.
#[tracing::instrument(name = "reconcile", skip_all)]
pub async fn handle(
    store: &impl Ledger,
    workflow: &Workflow,
    escalation: Escalation<'_, DeadLetterQueue>,
    options: ReconcileOptions,
) -> Result<Summary, RecoveryError> {
    let summary = Summary::of(recovery::reconcile(store, workflow, escalation, options).await?);
    tracing::info!(
        examined = summary.examined,
        resumed = summary.resumed,
        parked = summary.parked,
        running = summary.running,
        changed = summary.changed,
        failed = summary.failed,
        "reconciler run finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_core::{OrderId, OrderStatus};

    #[test]
    fn a_summary_counts_each_action() {
        let order = |action| Reconciled {
            order_id: OrderId::generate(),
            status: OrderStatus::Accepted,
            action,
        };
        let summary = Summary::of(vec![
            order(Action::Resumed {
                execution_arn: "a".into(),
            }),
            order(Action::Parked { reason: "r".into() }),
            order(Action::Resumed {
                execution_arn: "b".into(),
            }),
            order(Action::AlreadyParked),
            order(Action::Changed),
            order(Action::Failed {
                error: "DynamoDB GetItem failed: throttled".into(),
            }),
        ]);
        assert_eq!(
            (
                summary.examined,
                summary.resumed,
                summary.parked,
                summary.running,
                summary.already_parked,
                summary.changed,
                summary.failed
            ),
            (6, 2, 1, 0, 1, 1, 1)
        );
    }
}
