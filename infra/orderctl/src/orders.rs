//! `orders list | show | resume | redrive | cancel`.
//!
//! Each reads or changes orders only through the shared crate (`OrderStore`,
//! `order_core::recovery`), the same code the API and the reconciler run, so the CLI
//! cannot move an order in a way the workflow would not.

use crate::audit::{act, outcome};
use crate::cli::{ListArgs, OrdersCommand};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output::{self, clip, or_dash, print_json, Table};
use crate::timeline::{self, Row, RowKind};
use order_core::recovery;
use order_core::store::{Cancellation, Failure, OrderRecord, OrderStore, StepRecord};
use order_core::view::{Audience, OrderView};
use order_core::OrderId;
use serde::Serialize;
use serde_json::json;

/// Runs one `orders` command.
pub async fn run(context: &Context, command: OrdersCommand) -> Result<Exit, CliError> {
    match command {
        OrdersCommand::List(args) => list(context, args).await,
        OrdersCommand::Show { id } => show(context, &id).await,
        OrdersCommand::Resume { id, latest } => resume(context, &id, latest).await,
        OrdersCommand::Redrive { id } => redrive(context, &id).await,
        OrdersCommand::Cancel { id } => cancel(context, &id).await,
        OrdersCommand::HoldingEffects { limit } => holding_effects(context, limit).await,
        OrdersCommand::Undo { id } => undo(context, &id).await,
        OrdersCommand::Anonymise {
            older_than_days,
            limit,
        } => anonymise(context, older_than_days, limit).await,
    }
}

/// An order id as typed; one that cannot be an id cannot be found either (exit 3).
pub fn order_id(text: &str) -> Result<OrderId, CliError> {
    OrderId::parse(text.trim()).ok_or_else(|| {
        CliError::NotFound(format!(
            "order {text} does not exist (order ids look like ord-<32 hex digits>)"
        ))
    })
}

/// One line of `orders list`.
#[derive(Debug, Serialize)]
struct Listed<'a> {
    order_id: &'a OrderId,
    status: &'a str,
    kind: &'a str,
    merchant_id: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
    execution_arn: Option<&'a str>,
    resumes: u32,
    failure: Option<&'a order_core::store::Failure>,
    parked: Option<&'a order_core::store::Parked>,
}

impl<'a> From<&'a OrderRecord> for Listed<'a> {
    fn from(order: &'a OrderRecord) -> Self {
        Listed {
            order_id: &order.order_id,
            status: order.status.as_str(),
            kind: order.order.kind.as_str(),
            merchant_id: &order.order.merchant_id,
            created_at: &order.created_at,
            updated_at: &order.updated_at,
            execution_arn: order.execution_arn.as_deref(),
            resumes: order.resumes,
            failure: order.failure.as_ref(),
            parked: order.parked.as_ref(),
        }
    }
}

/// Why an order needs a look, in a few words: whether it is parked and its failure, put
/// by `failed`. The CLI's list and the console's order tables say it alike.
pub fn note_with(order: &OrderRecord, failed: impl Fn(&Failure) -> String) -> String {
    let parked = order
        .parked
        .as_ref()
        .map(|parked| format!("parked: {}", parked.reason));
    let failure = order.failure.as_ref().map(failed);
    parked
        .into_iter()
        .chain(failure)
        .collect::<Vec<_>>()
        .join("; ")
}

/// [`note_with`] as the CLI's list says it.
fn note(order: &OrderRecord) -> String {
    note_with(order, |failure| {
        format!(
            "failed at {}: {} - {}",
            failure.step, failure.error, failure.reason
        )
    })
}

async fn list(context: &Context, args: ListArgs) -> Result<Exit, CliError> {
    let store = context.store()?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let orders = find(&store, &args, limit).await?;
    if context.json {
        let listed: Vec<Listed> = orders.iter().map(Listed::from).collect();
        print_json(&json!({ "orders": listed }));
        return Ok(Exit::Ok);
    }
    if orders.is_empty() {
        println!("no orders found");
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&["ORDER", "STATUS", "KIND", "MERCHANT", "UPDATED", "NOTE"]);
    for order in &orders {
        table.row(vec![
            order.order_id.to_string(),
            order.status.to_string(),
            order.order.kind.as_str().to_owned(),
            order.order.merchant_id.clone(),
            output::time(&order.updated_at),
            clip(&note(order), 70),
        ]);
    }
    output::print_listing(&table, orders.len(), limit, "order(s)");
    Ok(Exit::Ok)
}

/// The orders `orders list` shows: queries on the by-status or by-merchant index only.
async fn find(
    store: &OrderStore,
    args: &ListArgs,
    limit: usize,
) -> Result<Vec<OrderRecord>, CliError> {
    if let Some(merchant) = &args.merchant {
        // A merchant's orders are few; with --status they are read whole and filtered.
        let read = if args.status.is_some() {
            usize::MAX
        } else {
            limit
        };
        let mut orders = store
            .orders_of_merchant(merchant, args.since.as_deref(), read)
            .await?;
        if let Some(status) = args.status {
            orders.retain(|order| order.status == status);
        }
        orders.truncate(limit);
        return Ok(orders);
    }
    if let Some(status) = args.status {
        return Ok(store.orders_in_status(status, None, limit).await?);
    }
    let mut orders = Vec::new();
    for status in recovery::unfinished_statuses() {
        let left = limit.saturating_sub(orders.len());
        if left == 0 {
            break;
        }
        orders.extend(store.orders_in_status(status, None, left).await?);
    }
    Ok(orders)
}

/// One execution of an order, as Step Functions describes it.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    pub name: String,
    pub execution_arn: String,
    pub status: String,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    /// The release it runs on: the state machine version (`None`: the state machine
    /// itself, as on the local stack).
    pub version_arn: Option<String>,
    /// The alias it was started through, if any (`live`: the release new orders get).
    pub alias_arn: Option<String>,
}

impl Execution {
    /// The release for people: `version 7 (through live)`, or `the state machine itself`.
    pub fn release(&self) -> String {
        let last = |arn: &str| arn.rsplit(':').next().unwrap_or(arn).to_owned();
        match (&self.version_arn, &self.alias_arn) {
            (Some(version), Some(alias)) => {
                format!("version {} (through {})", last(version), last(alias))
            }
            (Some(version), None) => format!("version {}", last(version)),
            (None, Some(alias)) => format!("alias {}", last(alias)),
            (None, None) => "the state machine itself".to_owned(),
        }
    }
}

/// The names and ARNs the order's executions can have: `<id>`, then `<id>-r1` ...
/// `<id>-r<resumes>`, in the state machine of the order's current execution.
fn execution_candidates(order: &OrderRecord) -> Vec<(String, String)> {
    let Some(current) = &order.execution_arn else {
        return Vec::new();
    };
    let Some((prefix, _)) = current.rsplit_once(':') else {
        return Vec::new();
    };
    let id = order.order_id.as_str();
    let mut names = vec![id.to_owned()];
    names.extend((1..=order.resumes).map(|n| format!("{id}-r{n}")));
    let mut candidates: Vec<(String, String)> = names
        .into_iter()
        .map(|name| (name.clone(), format!("{prefix}:{name}")))
        .collect();
    if !candidates.iter().any(|(_, arn)| arn == current) {
        let name = current.rsplit(':').next().unwrap_or(current).to_owned();
        candidates.push((name, current.clone()));
    }
    candidates
}

fn sfn_failure<E, R>(error: &aws_sdk_sfn::error::SdkError<E, R>, operation: &str) -> CliError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    CliError::classify(format!(
        "Step Functions {operation} failed: {}",
        aws_sdk_sfn::error::DisplayErrorContext(error)
    ))
}

/// The execution `arn`, or `None` when Step Functions has no such execution.
async fn describe(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
    arn: &str,
) -> Result<Option<Execution>, CliError> {
    let result = sfn.describe_execution().execution_arn(arn).send().await;
    let output = match result {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist()) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(sfn_failure(&error, "DescribeExecution")),
    };
    let time = |t: Option<&aws_sdk_sfn::primitives::DateTime>| {
        t.and_then(timeline::smithy_time)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    Ok(Some(Execution {
        name: name.to_owned(),
        execution_arn: arn.to_owned(),
        status: output.status().as_str().to_owned(),
        started_at: time(Some(output.start_date())),
        stopped_at: time(output.stop_date()),
        version_arn: output.state_machine_version_arn().map(str::to_owned),
        alias_arn: output.state_machine_alias_arn().map(str::to_owned),
    }))
}

/// Every event of the execution's history, page by page.
async fn history(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>, CliError> {
    let mut events = Vec::new();
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(arn)
        .include_execution_data(false)
        .into_paginator()
        .items()
        .send();
    while let Some(event) = pages.next().await {
        events.push(event.map_err(|e| sfn_failure(&e, "GetExecutionHistory"))?);
    }
    Ok(events)
}

/// The tracking number, once ArrangeShipment recorded it.
pub fn tracking_number(steps: &[StepRecord]) -> Option<String> {
    steps
        .iter()
        .find_map(|s| s.references.get("tracking_number").cloned())
}

/// One order as `orders show` and the console show it: the order item, its steps, its
/// executions and the timeline of all three.
#[derive(Debug, Clone)]
pub struct Shown {
    pub order: OrderRecord,
    pub steps: Vec<StepRecord>,
    pub executions: Vec<Execution>,
    pub rows: Vec<Row>,
}

/// Reads the order `id`, its steps and every execution's history, and merges them into
/// one timeline. [`CliError::NotFound`] names the id when there is no such order.
pub async fn gather(context: &Context, id: &OrderId) -> Result<Shown, CliError> {
    let store = context.store()?;
    let (order, steps) = store
        .get_order_with_steps(id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("order {id} does not exist")))?;
    let sfn = context.sfn();
    let mut executions = Vec::new();
    let mut groups = vec![timeline::order_rows(&order), timeline::step_rows(&steps)];
    for (name, arn) in execution_candidates(&order) {
        let Some(execution) = describe(&sfn, &name, &arn).await? else {
            continue;
        };
        groups.push(timeline::execution_rows(&name, &history(&sfn, &arn).await?));
        executions.push(execution);
    }
    Ok(Shown {
        order,
        steps,
        executions,
        rows: timeline::merge(groups),
    })
}

async fn show(context: &Context, raw_id: &str) -> Result<Exit, CliError> {
    let id = order_id(raw_id)?;
    let Shown {
        order,
        steps,
        executions,
        rows,
    } = gather(context, &id).await?;
    let tracking = tracking_number(&steps);
    if context.json {
        print_json(&json!({
            "order": OrderView::of(&order, &steps, Audience::Operator),
            "executions": executions,
            "outage_waits": timeline::outage_waits(&rows),
            "timeline": rows,
        }));
        return Ok(Exit::Ok);
    }
    println!("order {}  {}", order.order_id, order.status);
    let mut header = Table::new(&["", ""]);
    let mut field = |name: &str, value: String| header.row(vec![format!("  {name}"), value]);
    field("kind", order.order.kind.as_str().to_owned());
    field("merchant", order.order.merchant_id.clone());
    field("created", output::time(&order.created_at));
    field("updated", output::time(&order.updated_at));
    field("tracking number", or_dash(tracking));
    field(
        "failure",
        or_dash(order.failure.as_ref().map(|f| {
            format!(
                "at {}: {} - {} ({})",
                f.step,
                f.error,
                f.reason,
                output::time(&f.at)
            )
        })),
    );
    field(
        "parked",
        or_dash(
            order
                .parked
                .as_ref()
                .map(|p| format!("{} ({})", p.reason, output::time(&p.at))),
        ),
    );
    if let Some(waits) = timeline::outage_waits(&rows) {
        field(
            "outage waits",
            format!(
                "{} by {}: {} met {}{} (infrastructure trouble is waited out, never rolled back)",
                waits.waits,
                waits.execution,
                waits.step,
                waits.error.as_deref().unwrap_or("an error"),
                if waits.waiting_now {
                    "; waiting now"
                } else {
                    ""
                }
            ),
        );
    }
    if executions.is_empty() {
        field("executions", "none".to_owned());
    }
    for execution in &executions {
        let took = match (&execution.started_at, &execution.stopped_at) {
            (Some(a), Some(b)) => duration_between(a, b).map(output::duration),
            _ => None,
        };
        field(
            "execution",
            format!(
                "{} {} (started {}{}, on {})",
                execution.name,
                execution.status,
                execution
                    .started_at
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), output::time),
                took.map(|t| format!(", took {t}")).unwrap_or_default(),
                execution.release()
            ),
        );
    }
    // The header's first row holds the (empty) column names.
    let header = header.render();
    println!("{}", header.lines().skip(1).collect::<Vec<_>>().join("\n"));
    println!();
    println!("{}", timeline_table(&order.order_id, &rows).render());
    Ok(Exit::Ok)
}

/// Milliseconds from `start` to `end` (RFC 3339 times), when both are readable.
pub fn duration_between(start: &str, end: &str) -> Option<i64> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    Some((parse(end)? - parse(start)?).num_milliseconds())
}

/// Where a row comes from, for people: `order`, `step`, `execution` (the first one,
/// named after the order) or `execution r1` (the first resume).
pub fn source_label(id: &OrderId, row: &Row) -> String {
    match row.kind {
        RowKind::Execution => match row.source.strip_prefix(id.as_str()) {
            Some("") => "execution".to_owned(),
            Some(suffix) => format!("execution {}", suffix.trim_start_matches('-')),
            None => row.source.clone(),
        },
        _ => row.source.clone(),
    }
}

/// The timeline as a table (times in UTC).
fn timeline_table(id: &OrderId, rows: &[Row]) -> Table {
    let mut table = Table::new(&[
        "TIME (UTC)",
        "SOURCE",
        "STATE / STEP",
        "ATTEMPT",
        "EVENT",
        "TOOK",
        "ERROR",
    ])
    .right(3)
    .right(5);
    for row in rows {
        let error = match (&row.error, &row.cause) {
            (Some(error), Some(cause)) => format!("{error}: {cause}"),
            (Some(error), None) => error.clone(),
            (None, Some(cause)) => cause.clone(),
            (None, None) => String::new(),
        };
        table.row(vec![
            row.time
                .as_deref()
                .map_or_else(|| "?".to_owned(), output::time),
            source_label(id, row),
            row.state.clone().unwrap_or_default(),
            row.attempt.map(|a| a.to_string()).unwrap_or_default(),
            row.event.clone(),
            row.duration_ms.map(output::duration).unwrap_or_default(),
            clip(&error, 90),
        ]);
    }
    table
}

async fn resume(context: &Context, raw_id: &str, latest: bool) -> Result<Exit, CliError> {
    let id = order_id(raw_id)?;
    let store = context.store()?;
    let workflow = context.workflow()?;
    let (name, resumed) = if latest {
        let action = recovery::resume_on_latest(&store, &workflow, &id);
        (
            "resume --latest",
            act(
                context,
                &store,
                &id,
                "resume --latest",
                action,
                resumed_outcome,
            )
            .await?,
        )
    } else {
        let action = recovery::resume(&store, &workflow, &id);
        (
            "resume",
            act(context, &store, &id, "resume", action, resumed_outcome).await?,
        )
    };
    let resumed = resumed.map_err(|error| {
        tracing::debug!(action = name, %error, "refused");
        CliError::from(error)
    })?;
    if context.json {
        print_json(&resumed);
    } else {
        if let Some(stopped) = &resumed.stopped {
            println!("stopped the running execution {stopped}");
        }
        println!(
            "order {} ({}) resumed as {}\n  execution {}\n  release   {}",
            resumed.order_id,
            resumed.status,
            resumed.execution_name,
            resumed.execution_arn,
            resumed.release
        );
    }
    Ok(Exit::Ok)
}

/// A resume's outcome, for its audit record.
fn resumed_outcome(result: &Result<recovery::Resumption, recovery::RecoveryError>) -> String {
    outcome(result, |r| {
        format!("resumed as {} ({})", r.execution_name, r.status)
    })
}

/// A CANCELLED order that still holds partner effects.
#[derive(Debug, Serialize)]
struct Holding {
    order_id: OrderId,
    updated_at: String,
    /// The forward steps whose effect was not undone.
    held: Vec<&'static str>,
}

async fn holding_effects(context: &Context, limit: u32) -> Result<Exit, CliError> {
    const PAGE: usize = 100;
    let store = context.store()?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let status = order_core::OrderStatus::Cancelled;
    let (mut examined, mut found, mut after) = (0, Vec::new(), None::<String>);
    while examined < limit {
        let page = PAGE.min(limit - examined);
        let orders = match &after {
            None => store.orders_in_status(status, None, page).await?,
            Some(key) => {
                store
                    .orders_in_status_after(status, key, None, page)
                    .await?
            }
        };
        for order in &orders {
            let Some((_, steps)) = store.get_order_with_steps(&order.order_id).await? else {
                continue;
            };
            let held = recovery::effects_held(&steps);
            if !held.is_empty() {
                found.push(Holding {
                    order_id: order.order_id.clone(),
                    updated_at: order.updated_at.clone(),
                    held,
                });
            }
        }
        examined += orders.len();
        if !context.json {
            eprintln!(
                "looked at {examined} CANCELLED orders, {} holding effects",
                found.len()
            );
        }
        match orders.last() {
            Some(last) if orders.len() == page => {
                after = Some(order_core::store::IndexPosition::of(last).key)
            }
            _ => break,
        }
    }
    if context.json {
        print_json(&json!({"examined": examined, "orders": found}));
    } else if found.is_empty() {
        println!("no CANCELLED order holds a partner effect ({examined} looked at)");
    } else {
        let mut table = Table::new(&["ORDER", "CANCELLED", "HOLDS (not undone)"]);
        for holding in &found {
            table.row(vec![
                holding.order_id.to_string(),
                output::time(&holding.updated_at),
                holding.held.join(", "),
            ]);
        }
        println!("{}", table.render());
        println!(
            "{} of {examined} CANCELLED orders hold effects; finish each with: orderctl orders undo <order>",
            found.len()
        );
    }
    Ok(if found.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

async fn anonymise(context: &Context, days: u64, limit: usize) -> Result<Exit, CliError> {
    if limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    let store = context.store()?;
    let cutoff = order_core::store::retention::cutoff(days);
    let pass = recovery::anonymise_ended(&store, &cutoff, limit).await?;
    if context.json {
        print_json(&pass);
    } else {
        for id in &pass.anonymised {
            println!("{id}: personal data removed");
        }
        let more = if pass.more {
            "; more remain: run it again"
        } else {
            ""
        };
        println!(
            "{} order(s) anonymised of {} ended before {} looked at{more}",
            pass.anonymised.len(),
            pass.looked_at,
            output::time(&cutoff)
        );
    }
    Ok(Exit::Ok)
}

async fn undo(context: &Context, raw_id: &str) -> Result<Exit, CliError> {
    let id = order_id(raw_id)?;
    let store = context.store()?;
    let workflow = context.workflow()?;
    let action = recovery::undo_cancelled(&store, &workflow, &id);
    let undone = act(context, &store, &id, "undo", action, |result| {
        outcome(result, |u| format!("rollback runs as {}", u.execution_name))
    })
    .await??;
    if context.json {
        print_json(&undone);
    } else {
        println!(
            "order {} (CANCELLED): its rollback runs as {}\n  execution {}",
            undone.order_id, undone.execution_name, undone.execution_arn
        );
    }
    Ok(Exit::Ok)
}

async fn redrive(context: &Context, raw_id: &str) -> Result<Exit, CliError> {
    let id = order_id(raw_id)?;
    let store = context.store()?;
    let workflow = context.workflow()?;
    let order = store.require_order(&id).await?;
    let Some(arn) = order.execution_arn else {
        return Err(CliError::Refused(format!(
            "order {id} has no execution to redrive; use `orderctl orders resume {id}`"
        )));
    };
    act(
        context,
        &store,
        &id,
        "redrive",
        workflow.redrive(&arn),
        |result| outcome(result, |_| format!("redriven: {arn}")),
    )
    .await?
    .map_err(CliError::from)?;
    if context.json {
        print_json(&json!({"order_id": id, "execution_arn": arn, "redriven": true}));
    } else {
        println!("order {id}: execution {arn} redriven from the state that failed");
    }
    Ok(Exit::Ok)
}

/// Cancels an order as `orders cancel` and the ops console do
/// (`order_core::recovery::cancel`: conditional on the status it was read in).
/// Cancels the order (`recovery::cancel`; one cancelled at once, its workflow never
/// started, has its `Order Cancelled` written to the outbox with the change). The CLI
/// and the console cancel through it.
pub async fn cancel_order(context: &Context, id: &OrderId) -> Result<Cancellation, CliError> {
    let store = context.store()?;
    let action = recovery::cancel(&store, id);
    Ok(act(context, &store, id, "cancel", action, |result| {
        outcome(result, |cancellation| match cancellation {
            Cancellation::Started(r) => format!("started: the order is {}", r.status),
            Cancellation::AlreadyCancelling(r) => {
                format!("nothing to do: the order is {} already", r.status)
            }
            Cancellation::TooLate(r) => format!(
                "refused: the order is {} and can no longer be cancelled",
                r.status
            ),
        })
    })
    .await??)
}

async fn cancel(context: &Context, raw_id: &str) -> Result<Exit, CliError> {
    let id = order_id(raw_id)?;
    let (outcome, record) = match cancel_order(context, &id).await? {
        Cancellation::Started(record) => ("started", record),
        Cancellation::AlreadyCancelling(record) => ("already_cancelling", record),
        Cancellation::TooLate(record) => {
            return Err(CliError::Refused(format!(
                "order {id} is {} and can no longer be cancelled (orders can be cancelled until they ship)",
                record.status
            )))
        }
    };
    if context.json {
        print_json(&json!({"order_id": id, "status": record.status, "outcome": outcome}));
        return Ok(Exit::Ok);
    }
    let what = match (outcome, record.status) {
        ("started", order_core::OrderStatus::Cancelled) => {
            "cancelled (its workflow had not started: nothing to undo)"
        }
        ("started", _) => "is CANCELLING: its workflow undoes what was done and ends it CANCELLED",
        (_, order_core::OrderStatus::Cancelled) => "was cancelled already",
        _ => "is being cancelled already",
    };
    println!("order {id} {what} (status {})", record.status);
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(arn: Option<&str>, resumes: u32) -> Option<OrderRecord> {
        let value = json!({
            "order_id": "ord-0123456789abcdef0123456789abcdef",
            "status": "FAILED",
            "version": 3,
            "order": order_core::order::example_request("m-1"),
            "request_hash": "h",
            "execution_arn": arn,
            "created_at": "2026-11-26T09:00:00.000Z",
            "updated_at": "2026-11-26T09:00:01.000Z",
            "resumes": resumes,
        });
        serde_json::from_value(value).ok()
    }

    #[test]
    fn the_executions_of_an_order_are_its_id_and_one_per_resume() {
        let arn = "arn:aws:states:eu-west-1:1:execution:OrderWorkflow:ord-0123456789abcdef0123456789abcdef-r2";
        let names: Vec<String> = order(Some(arn), 2)
            .map(|o| execution_candidates(&o))
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "ord-0123456789abcdef0123456789abcdef",
                "ord-0123456789abcdef0123456789abcdef-r1",
                "ord-0123456789abcdef0123456789abcdef-r2"
            ]
        );
    }

    #[test]
    fn an_order_that_never_had_an_execution_has_none_to_show() {
        assert_eq!(
            order(None, 0).map(|o| execution_candidates(&o).len()),
            Some(0)
        );
    }

    #[test]
    fn an_executions_release_is_its_version_and_the_alias_it_came_through() {
        let machine = "arn:aws:states:eu-west-1:1:stateMachine:OrderWorkflow";
        let execution = |version: Option<&str>, alias: Option<&str>| Execution {
            name: "ord-1".into(),
            execution_arn: "arn".into(),
            status: "RUNNING".into(),
            started_at: None,
            stopped_at: None,
            version_arn: version.map(|v| format!("{machine}:{v}")),
            alias_arn: alias.map(|a| format!("{machine}:{a}")),
        };
        assert_eq!(
            execution(Some("7"), Some("live")).release(),
            "version 7 (through live)"
        );
        assert_eq!(execution(Some("7"), None).release(), "version 7");
        assert_eq!(execution(None, None).release(), "the state machine itself");
    }

    #[test]
    fn a_malformed_id_is_an_order_that_does_not_exist() {
        assert_eq!(order_id("42").map_err(|e| e.exit()), Err(Exit::NotFound));
    }
}
