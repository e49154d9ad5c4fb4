//! `reconcile`: one run of the reconciler, now, with the same code the scheduled Lambda
//! runs (`order_core::recovery::reconcile`, counted by `reconciler::Summary`). Orders
//! that are not finished, have not changed for the grace period and have no running
//! execution are resumed, or parked in the dead-letter queue once resumed often enough.

use crate::cli::ReconcileArgs;
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output::{clip, print_json, Table};
use order_core::recovery::{self, Action, Escalation, ReconcileOptions};
use reconciler::Summary;

/// Runs the reconciler once and prints what it did to each order, then the counts.
pub async fn run(context: &Context, args: ReconcileArgs) -> Result<Exit, CliError> {
    let store = context.store()?;
    let workflow = context.workflow()?;
    let dead_letters = context.dead_letters()?;
    let escalation = Escalation {
        dead_letters: &dead_letters,
    };
    let options = ReconcileOptions {
        grace: chrono::Duration::seconds(i64::from(args.grace_seconds)),
        limit: usize::try_from(args.limit).unwrap_or(usize::MAX),
        max_resumes: args.max_resumes,
    };
    let summary = Summary::of(recovery::reconcile(&store, &workflow, escalation, options).await?);
    if context.json {
        print_json(&summary);
        return Ok(Exit::Ok);
    }
    if summary.orders.is_empty() {
        println!(
            "no unfinished order is older than {} s: nothing to do",
            args.grace_seconds
        );
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&["ORDER", "STATUS", "ACTION", "DETAIL"]);
    for order in &summary.orders {
        let (action, detail) = match &order.action {
            Action::Running { execution_arn } => ("running", execution_arn.clone()),
            Action::Resumed { execution_arn } => ("resumed", execution_arn.clone()),
            Action::Parked { reason } => ("parked", reason.clone()),
            Action::AlreadyParked => ("already parked", "left for an operator".to_owned()),
            Action::Changed => (
                "changed",
                "changed since it was listed: left for a later run".to_owned(),
            ),
            Action::Failed { error } => ("failed", error.clone()),
        };
        table.row(vec![
            order.order_id.to_string(),
            order.status.to_string(),
            action.to_owned(),
            clip(&detail, 160),
        ]);
    }
    println!("{}", table.render());
    println!(
        "examined {}: {} resumed, {} parked, {} running, {} already parked, {} changed, {} failed",
        summary.examined,
        summary.resumed,
        summary.parked,
        summary.running,
        summary.already_parked,
        summary.changed,
        summary.failed
    );
    if summary.failed > 0 {
        eprintln!(
            "{} orders could not be reconciled (see DETAIL); the next run tries them again",
            summary.failed
        );
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}
