//! `dlq list | show | replay`: the workflow dead-letter queue.
//!
//! SQS has no "peek": a message is seen by receiving it. A receive that leaves messages
//! visible (visibility 0) returns the same first few messages again and again on the
//! local emulator (and a random sample on SQS), so a look could never find the twelfth
//! message. `list` and `show` therefore walk the queue holding each message for a
//! moment ([`order_core::dead_letters::LOOK_HOLD`]) and hand every message back (visibility 0) right after: the
//! queue is left as it was, except that each message counts one more receive.
//!
//! `replay` holds the messages it works on long enough to finish ([`replay_hold`]), so
//! that no one else replays them meanwhile, resumes each order through
//! `order_core::recovery::resume`, and deletes a message only once its order was
//! resumed (or had already ended). Every message it keeps is handed back at once.

use crate::cli::{DlqCommand, ReplayArgs};
use crate::context::{endpoint, Context};
use crate::error::{CliError, Exit};
use crate::orders::order_id;
use crate::output::{self, clip, or_dash, print_json, Table};
use order_core::dead_letters::{DeadLetter, DeadLetterQueue};
use order_core::recovery::{self, RecoveryError, Workflow};
use order_core::store::{OrderStore, StoreError};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// The most messages `show` and `replay MESSAGE_ID` walk through to find one.
pub const FIND_LIMIT: usize = 10_000;

/// How long `replay` owns `count` messages: a minute, and two seconds per message.
pub fn replay_hold(count: usize) -> Duration {
    let seconds = u64::try_from(count)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(60);
    // SQS allows at most 12 hours.
    Duration::from_secs(seconds.min(12 * 60 * 60))
}

/// Runs one `dlq` command.
pub async fn run(context: &Context, command: DlqCommand) -> Result<Exit, CliError> {
    match command {
        DlqCommand::List { limit } => list(context, to_usize(limit)).await,
        DlqCommand::Show { message_id } => show(context, &message_id).await,
        DlqCommand::Replay(args) => replay(context, args).await,
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Hands messages back to the queue (visibility 0), saying so when some could not be.
async fn release(queue: &DeadLetterQueue, letters: &[&DeadLetter]) {
    let kept_hidden = queue.release(letters).await;
    if kept_hidden > 0 {
        eprintln!(
            "orderctl: {kept_hidden} message(s) could not be handed back to the queue; they reappear when their hold ends"
        );
    }
}

fn not_found(message_id: &str) -> CliError {
    CliError::NotFound(format!(
        "no message {message_id} in the dead-letter queue (it was replayed or deleted, or another reader holds it right now)"
    ))
}

async fn list(context: &Context, limit: usize) -> Result<Exit, CliError> {
    let queue = context.dead_letters()?;
    let letters = queue.look(limit).await?;
    if context.json {
        print_json(&json!({ "messages": letters }));
        return Ok(Exit::Ok);
    }
    if letters.is_empty() {
        println!("the dead-letter queue is empty");
        return Ok(Exit::Ok);
    }
    let mut table = Table::new(&[
        "MESSAGE",
        "ORDER",
        "SOURCE",
        "FAILED STEP",
        "ERROR",
        "AT",
        "RECEIVED",
    ])
    .right(6);
    for letter in &letters {
        let body = &letter.body;
        table.row(vec![
            letter.message_id.clone(),
            body.order_id.clone(),
            body.source.clone(),
            or_dash(body.failed_step.clone()),
            clip(&or_dash(body.error.clone()), 40),
            or_dash(body.at.as_deref().map(output::time)),
            letter.receive_count.to_string(),
        ]);
    }
    output::print_listing(&table, letters.len(), limit, "message(s)");
    Ok(Exit::Ok)
}

/// Where a message's order is now, as `dlq show` reports it.
#[derive(Debug, Serialize)]
struct OrderNow {
    order_id: String,
    /// `None` when there is no such order, or it could not be read (see `note`).
    status: Option<String>,
    updated_at: Option<String>,
    execution_arn: Option<String>,
    resumes: Option<u32>,
    parked: Option<order_core::store::Parked>,
    note: Option<String>,
}

async fn order_now(context: &Context, raw_id: &str) -> Result<OrderNow, CliError> {
    let mut now = OrderNow {
        order_id: raw_id.to_owned(),
        status: None,
        updated_at: None,
        execution_arn: None,
        resumes: None,
        parked: None,
        note: None,
    };
    let Ok(store) = context.store() else {
        now.note = Some("set --table or TABLE_NAME to see the order".into());
        return Ok(now);
    };
    let Ok(id) = order_id(raw_id) else {
        now.note = Some("the message names no order id".into());
        return Ok(now);
    };
    match store.get_order(&id).await {
        Ok(Some(order)) => {
            now.status = Some(order.status.to_string());
            now.updated_at = Some(order.updated_at);
            now.execution_arn = order.execution_arn;
            now.resumes = Some(order.resumes);
            now.parked = order.parked;
        }
        Ok(None) => now.note = Some("no such order in the table".into()),
        Err(error) => return Err(error.into()),
    }
    Ok(now)
}

async fn show(context: &Context, message_id: &str) -> Result<Exit, CliError> {
    let letter = find(context, message_id).await?;
    let order = order_now(context, &letter.body.order_id).await?;
    if context.json {
        print_json(&json!({"message": letter, "order": order}));
        return Ok(Exit::Ok);
    }
    let body = &letter.body;
    let order_line = match (&order.status, &order.note) {
        (Some(status), _) => format!(
            "{} (now {status}, last change {}, resumed {} time(s){})",
            order.order_id,
            order
                .updated_at
                .as_deref()
                .map(output::time)
                .unwrap_or_default(),
            order.resumes.unwrap_or_default(),
            if order.parked.is_some() {
                ", parked"
            } else {
                ""
            }
        ),
        (None, Some(note)) => format!("{} ({note})", order.order_id),
        (None, None) => order.order_id.clone(),
    };
    let mut table = Table::new(&["", ""]);
    let mut field = |name: &str, value: String| table.row(vec![name.to_owned(), value]);
    field("message", letter.message_id.clone());
    field("received", format!("{} time(s)", letter.receive_count));
    field("source", body.source.clone());
    field("order", order_line);
    field("execution", or_dash(body.execution_arn.clone()));
    field("failed step", or_dash(body.failed_step.clone()));
    field("error", or_dash(body.error.clone()));
    field("at", or_dash(body.at.as_deref().map(output::time)));
    let rendered = table.render();
    println!(
        "{}",
        rendered.lines().skip(1).collect::<Vec<_>>().join("\n")
    );
    println!(
        "cause:\n  {}",
        or_dash(body.cause.clone()).replace('\n', "\n  ")
    );
    Ok(Exit::Ok)
}

/// What replaying one message did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A new execution runs the order; the message is deleted.
    Resumed {
        status: String,
        execution_name: String,
        execution_arn: String,
    },
    /// The order had ended meanwhile; the message is deleted.
    AlreadyEnded { status: String },
    /// The order's execution is running; the message is kept.
    StillRunning { execution_arn: String },
    /// Nothing was resumed (or the message could not be deleted); the message is kept.
    Failed {
        message: String,
        #[serde(skip)]
        exit: Exit,
    },
}

/// One replayed message.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub message_id: String,
    pub order_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Whether the message was removed from the queue.
    pub deleted: bool,
}

impl Replayed {
    /// What happened to the order: `resumed as ord-…-r1`.
    pub fn summary(&self) -> String {
        match &self.outcome {
            Outcome::Resumed { execution_name, .. } => format!("resumed as {execution_name}"),
            Outcome::AlreadyEnded { status } => format!("already ended {status}"),
            Outcome::StillRunning { execution_arn } => {
                format!("still running ({execution_arn})")
            }
            Outcome::Failed { message, .. } => format!("failed: {message}"),
        }
    }

    /// One line for people: `ord-… resumed as ord-…-r1; message deleted`.
    pub fn line(&self) -> String {
        let fate = if self.deleted { "deleted" } else { "kept" };
        format!("{} {}; message {fate}", self.order_id, self.summary())
    }

    fn exit(&self) -> Exit {
        match &self.outcome {
            Outcome::Resumed { .. } | Outcome::AlreadyEnded { .. } => Exit::Ok,
            Outcome::StillRunning { .. } => Exit::Refused,
            Outcome::Failed { exit, .. } => *exit,
        }
    }
}

/// Resumes the order of `letter`; deletes the message only when the order now runs (or
/// had ended already).
async fn replay_one(
    context: &Context,
    store: &OrderStore,
    workflow: &Workflow,
    queue: &DeadLetterQueue,
    letter: &DeadLetter,
) -> Replayed {
    let failed = |message: String, exit: Exit| Outcome::Failed { message, exit };
    let outcome = match order_id(&letter.body.order_id) {
        Err(_) => failed(
            format!(
                "the message names no order ({:?}); read it with `orderctl dlq show {}`",
                letter.body.order_id, letter.message_id
            ),
            Exit::Failed,
        ),
        Ok(id) => match audited_resume(context, store, workflow, &id, &letter.message_id).await {
            Ok(resumed) => Outcome::Resumed {
                status: resumed.status.to_string(),
                execution_name: resumed.execution_name,
                execution_arn: resumed.execution_arn,
            },
            Err(Replay::Resume(RecoveryError::Ended { status, .. })) => Outcome::AlreadyEnded {
                status: status.to_string(),
            },
            Err(Replay::Resume(RecoveryError::StillRunning { execution_arn, .. })) => {
                Outcome::StillRunning { execution_arn }
            }
            // Another resumer (the reconciler, an operator) won the race: it drives the
            // order, as if its execution were already running.
            Err(Replay::Resume(RecoveryError::ResumedElsewhere { execution_arn, .. })) => {
                Outcome::StillRunning {
                    execution_arn: execution_arn.unwrap_or_default(),
                }
            }
            Err(Replay::Resume(RecoveryError::Store(StoreError::NotFound(id)))) => {
                failed(format!("order {id} does not exist"), Exit::NotFound)
            }
            Err(Replay::Resume(error)) => {
                let error = CliError::from(error);
                failed(error.describe(&endpoint()), error.exit())
            }
            Err(Replay::Unrecorded(error)) => failed(error.describe(&endpoint()), error.exit()),
        },
    };
    let mut replayed = Replayed {
        message_id: letter.message_id.clone(),
        order_id: letter.body.order_id.clone(),
        outcome,
        deleted: false,
    };
    if matches!(
        replayed.outcome,
        Outcome::Resumed { .. } | Outcome::AlreadyEnded { .. }
    ) {
        match queue.delete(letter).await {
            Ok(()) => replayed.deleted = true,
            Err(error) => {
                let done = replayed.summary();
                let error = CliError::from(error);
                replayed.outcome = failed(
                    format!(
                        "{done}, but the message could not be deleted: {}",
                        error.describe(&endpoint())
                    ),
                    error.exit(),
                );
            }
        }
    }
    replayed
}

/// Why a replay's resume did not happen.
enum Replay {
    Resume(RecoveryError),
    /// Its audit record could not be written: nothing was done.
    Unrecorded(CliError),
}

/// The resume a replay makes, with its audit record (`replay dead letter <id>`).
async fn audited_resume(
    context: &Context,
    store: &OrderStore,
    workflow: &Workflow,
    id: &order_core::OrderId,
    message_id: &str,
) -> Result<recovery::Resumption, Replay> {
    let name = format!("replay dead letter {message_id}");
    let action = recovery::resume(store, workflow, id);
    let describe = |result: &Result<recovery::Resumption, RecoveryError>| {
        crate::audit::outcome(result, |r| {
            format!("resumed as {} ({})", r.execution_name, r.status)
        })
    };
    match crate::audit::act(context, store, id, &name, action, describe).await {
        Ok(result) => result.map_err(Replay::Resume),
        Err(error) => Err(Replay::Unrecorded(error)),
    }
}

/// Holds the message `message_id` for a replay ([`replay_hold`]), handing every other
/// message it walked past back at once.
async fn hold_one(queue: &DeadLetterQueue, message_id: &str) -> Result<Vec<DeadLetter>, CliError> {
    let held = queue.receive(FIND_LIMIT, replay_hold(1)).await?;
    let (target, others): (Vec<DeadLetter>, Vec<DeadLetter>) =
        held.into_iter().partition(|l| l.message_id == message_id);
    release(queue, &others.iter().collect::<Vec<_>>()).await;
    if target.is_empty() {
        return Err(not_found(message_id));
    }
    Ok(target)
}

/// The message `message_id`, looked at (left in the queue), or [`CliError::NotFound`].
pub async fn find(context: &Context, message_id: &str) -> Result<DeadLetter, CliError> {
    let letters = context.dead_letters()?.look(FIND_LIMIT).await?;
    letters
        .into_iter()
        .find(|l| l.message_id == message_id)
        .ok_or_else(|| not_found(message_id))
}

/// Replays one message as `dlq replay MESSAGE_ID` does: resumes its order, deletes the
/// message only once the order was resumed (or had ended), hands it back otherwise.
pub async fn replay_message(context: &Context, message_id: &str) -> Result<Replayed, CliError> {
    let queue = context.dead_letters()?;
    let store = context.store()?;
    let workflow = context.workflow()?;
    let mut replayed = None;
    for letter in hold_one(&queue, message_id).await? {
        let result = replay_one(context, &store, &workflow, &queue, &letter).await;
        if !result.deleted {
            release(&queue, &[&letter]).await;
        }
        replayed = Some(result);
    }
    replayed.ok_or_else(|| not_found(message_id))
}

async fn replay(context: &Context, args: ReplayArgs) -> Result<Exit, CliError> {
    let queue = context.dead_letters()?;
    let store = context.store()?;
    let workflow = context.workflow()?;
    let letters = match &args.message_id {
        Some(message_id) => hold_one(&queue, message_id).await?,
        None => {
            let limit = to_usize(args.limit);
            queue.receive(limit, replay_hold(limit)).await?
        }
    };
    let total = letters.len();
    let mut results = Vec::new();
    for (index, letter) in letters.iter().enumerate() {
        let replayed = replay_one(context, &store, &workflow, &queue, letter).await;
        if !replayed.deleted {
            release(&queue, &[letter]).await;
        }
        if args.all {
            eprintln!("[{}/{total}] {}", index + 1, replayed.line());
        }
        results.push(replayed);
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let resumed = count(|o| matches!(o, Outcome::Resumed { .. }));
    let ended = count(|o| matches!(o, Outcome::AlreadyEnded { .. }));
    let running = count(|o| matches!(o, Outcome::StillRunning { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let exit = match (&args.message_id, results.first()) {
        (Some(_), Some(result)) => result.exit(),
        _ if failed > 0 => Exit::Failed,
        _ => Exit::Ok,
    };
    if context.json {
        print_json(&json!({
            "results": results,
            "resumed": resumed,
            "already_ended": ended,
            "still_running": running,
            "failed": failed,
        }));
    } else if args.all {
        if results.is_empty() {
            println!("the dead-letter queue is empty");
        } else {
            println!(
                "{total} message(s): {resumed} resumed, {ended} already ended, {running} still running (kept), {failed} failed (kept)"
            );
        }
    } else {
        for result in &results {
            println!("{}", result.line());
        }
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_holds_its_messages_longer_the_more_there_are_but_never_past_12_hours() {
        assert_eq!(replay_hold(1), Duration::from_secs(62));
        assert_eq!(replay_hold(100), Duration::from_secs(260));
        assert_eq!(replay_hold(usize::MAX), Duration::from_secs(43_200));
    }

    #[test]
    fn only_a_resumed_or_ended_order_is_a_successful_replay() {
        let replayed = |outcome| Replayed {
            message_id: "m".into(),
            order_id: "ord-1".into(),
            outcome,
            deleted: false,
        };
        let exits: Vec<Exit> = [
            Outcome::AlreadyEnded {
                status: "COMPLETED".into(),
            },
            Outcome::StillRunning {
                execution_arn: "arn".into(),
            },
            Outcome::Failed {
                message: "gone".into(),
                exit: Exit::NotFound,
            },
        ]
        .into_iter()
        .map(|o| replayed(o).exit())
        .collect();
        assert_eq!(exits, [Exit::Ok, Exit::Refused, Exit::NotFound]);
    }
}
