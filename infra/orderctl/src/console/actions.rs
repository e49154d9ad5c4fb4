//! The console's actions: resume an order, cancel it, replay a dead letter. Each has a
//! confirmation page (what will happen, or why it would be refused) whose form POSTs the
//! action with the console's token. An order's confirmation is a GET (it only reads the
//! order); a dead letter's is a POST, since showing the message means receiving it (SQS
//! has no peek), and no GET may change the queue: its GET page only offers that look.
//! The action runs the same code as the CLI
//! (`order_core::recovery::cancel` and `resume`, `crate::dlq::replay_message`), so every
//! status change stays conditional on the status it was read in; then it is recorded on
//! the order (who, when, what, outcome) and the browser is sent to the order page, which
//! shows the record.

use super::error::ConsoleError;
use super::pages::{self, Confirmation};
use super::Console;
use crate::dlq;
use crate::error::CliError;
use crate::orders::order_id;
use crate::output::time;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::Markup;
use order_core::recovery::{self, ExecutionState, RecoveryError};
use order_core::store::{OrderRecord, StoreError};
use order_core::{OrderId, OrderStatus};
use serde::Deserialize;
use std::sync::Arc;

/// A confirmation form as posted.
#[derive(Debug, Deserialize)]
pub struct Confirmed {
    /// The console's token; a missing one is refused like a wrong one.
    #[serde(default)]
    csrf: String,
}

/// What the confirmation pages say about the order.
fn facts(order: &OrderRecord) -> Vec<(String, String)> {
    let execution = order
        .execution_arn
        .as_deref()
        .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_owned());
    vec![
        ("order".into(), order.order_id.to_string()),
        ("status".into(), order.status.to_string()),
        ("kind".into(), order.order.kind.as_str().to_owned()),
        ("merchant".into(), order.order.merchant_id.clone()),
        (
            "last change".into(),
            format!("{} UTC", time(&order.updated_at)),
        ),
        (
            "execution".into(),
            execution.unwrap_or_else(|| "none (the workflow never started)".into()),
        ),
    ]
}

/// An action on an order: its name, the path under `/orders/{id}/` of its confirmation
/// page and its form, and its verb, for the page's title and button.
struct OrderAction {
    name: &'static str,
    verb: &'static str,
}

const CANCEL: OrderAction = OrderAction {
    name: "cancel",
    verb: "Cancel",
};

const RESUME: OrderAction = OrderAction {
    name: "resume",
    verb: "Resume",
};

impl OrderAction {
    /// Its confirmation page for the order.
    fn confirm(
        &self,
        console: &Console,
        order: &OrderRecord,
        consequence: String,
        refused: Option<String>,
    ) -> Markup {
        let id = &order.order_id;
        let OrderAction { name, verb } = self;
        pages::confirm(&Confirmation {
            title: format!("{verb} order {id}"),
            facts: facts(order),
            consequence,
            refused,
            action: format!("/orders/{id}/{name}"),
            button: format!("{verb} the order"),
            back: format!("/orders/{id}"),
            token: console.guard.token().to_owned(),
        })
    }
}

/// The order an action's form was posted for, once the form's token is checked.
fn posted_for(console: &Console, form: &Confirmed, raw_id: &str) -> Result<OrderId, ConsoleError> {
    console.guard.check_token(&form.csrf)?;
    Ok(order_id(raw_id)?)
}

/// Sends the browser to the order page, which shows the action's audit record (written
/// before the action by `crate::audit::act`, finished with its outcome after it).
fn acted(id: &OrderId) -> Response {
    Redirect::to(&format!("/orders/{id}?acted=1")).into_response()
}

/// `GET /orders/{id}/cancel`.
pub async fn confirm_cancel(
    State(console): State<Arc<Console>>,
    Path(raw_id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = order_id(&raw_id)?;
    let order = console.store.require_order(&id).await?;
    let (consequence, refused) = match order.status {
        OrderStatus::Cancelling | OrderStatus::Cancelled => (
            "Nothing: a cancel changes nothing now.".to_owned(),
            Some(format!("The order is {} already.", order.status)),
        ),
        OrderStatus::Accepted if order.execution_arn.is_none() => (
            "The order is CANCELLED at once if nothing has begun on it (no execution is recorded for it, so none runs); if its workflow begins first, the workflow rolls it back.".to_owned(),
            None,
        ),
        status if status.is_cancellable() => (
            "The order moves to CANCELLING (only if it is still in the status above). At its next step its workflow undoes what was done (cancel shipment, deprovision terminals, refund payment, release stock, as far as they happened) and ends it CANCELLED.".to_owned(),
            None,
        ),
        status => (
            "Nothing: orders can be cancelled until they ship.".to_owned(),
            Some(format!("The order is {status}: it can no longer be cancelled.")),
        ),
    };
    Ok(CANCEL.confirm(&console, &order, consequence, refused))
}

/// `POST /orders/{id}/cancel`: `order_core::recovery::cancel`, recorded.
pub async fn cancel(
    State(console): State<Arc<Console>>,
    Path(raw_id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, ConsoleError> {
    let id = posted_for(&console, &form, &raw_id)?;
    // Recorded on the order by cancel_order itself, as the CLI's cancel is; a refusal is
    // the record's outcome, shown on the order page.
    match crate::orders::cancel_order(&console.context, &id).await {
        Ok(_) => Ok(acted(&id)),
        Err(error @ (CliError::NotFound(_) | CliError::Failed(_))) => Err(error.into()),
        Err(_) => Ok(acted(&id)),
    }
}

/// `GET /orders/{id}/resume`.
pub async fn confirm_resume(
    State(console): State<Arc<Console>>,
    Path(raw_id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = order_id(&raw_id)?;
    let order = console.store.require_order(&id).await?;
    let workflow = console.context.workflow()?;
    let running = match &order.execution_arn {
        Some(arn) => workflow.state(arn).await? == ExecutionState::Running,
        None => false,
    };
    let name = match order.execution_arn {
        None => id.to_string(),
        Some(_) => format!("{id}-r{}", order.resumes + 1),
    };
    let consequence = format!(
        "A new execution {name} starts on {}. Steps that already succeeded return their recorded results, so no partner is called twice for them; the order goes on from where it stopped (an order being rolled back goes on with its rollback).",
        workflow.state_machine_arn
    );
    let refused = if order.status.is_final() {
        Some(format!(
            "The order has ended ({}): there is nothing to resume.",
            order.status
        ))
    } else if running {
        Some("Its execution is still running: a resume would be refused. Wait for it to end, or stop it and resume on the newest release with `orderctl orders resume --latest`.".to_owned())
    } else {
        None
    };
    Ok(RESUME.confirm(&console, &order, consequence, refused))
}

/// `POST /orders/{id}/resume`: `order_core::recovery::resume`, recorded.
pub async fn resume(
    State(console): State<Arc<Console>>,
    Path(raw_id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, ConsoleError> {
    let id = posted_for(&console, &form, &raw_id)?;
    let workflow = console.context.workflow()?;
    let action = recovery::resume(&console.store, &workflow, &id);
    let result = crate::audit::act(
        &console.context,
        &console.store,
        &id,
        RESUME.name,
        action,
        resume_outcome,
    )
    .await?;
    match result {
        Err(RecoveryError::Store(error @ StoreError::NotFound(_))) => Err(error.into()),
        _ => Ok(acted(&id)),
    }
}

/// A resume's outcome, for its audit record.
fn resume_outcome(result: &Result<recovery::Resumption, RecoveryError>) -> String {
    match result {
        Ok(resumed) => format!(
            "resumed as {} on {}",
            resumed.execution_name, resumed.release
        ),
        Err(RecoveryError::Ended { status, .. }) => {
            format!("refused: the order has ended ({status})")
        }
        Err(RecoveryError::StillRunning { execution_arn, .. }) => {
            format!("refused: its execution {execution_arn} is still running")
        }
        Err(RecoveryError::ResumedElsewhere { execution_arn, .. }) => format!(
            "refused: someone else resumed it meanwhile, as {}",
            execution_arn.as_deref().unwrap_or("-")
        ),
        Err(error) => format!("failed: {error}"),
    }
}

/// `GET /dead-letters/{message_id}` (and `/replay`, where its confirmation was once): a
/// page that reads nothing and offers the look that shows the message.
pub async fn about_replay(
    State(console): State<Arc<Console>>,
    Path(message_id): Path<String>,
) -> Markup {
    pages::dead_letter_unseen(&message_id, console.guard.token())
}

/// `POST /dead-letters/{message_id}`: the message, found by walking the queue as `orderctl
/// dlq show` does (it counts one more receive), and what replaying it would do.
pub async fn confirm_replay(
    State(console): State<Arc<Console>>,
    Path(message_id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Markup, ConsoleError> {
    console.guard.check_token(&form.csrf)?;
    let letter = dlq::find(&console.context, &message_id).await?;
    let body = &letter.body;
    let order = match OrderId::parse(&body.order_id) {
        Some(id) => console.store.get_order(&id).await?,
        None => None,
    };
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut facts = vec![
        ("message".to_owned(), letter.message_id.clone()),
        ("source".to_owned(), body.source.clone()),
        ("failed step".to_owned(), or_dash(&body.failed_step)),
        ("error".to_owned(), or_dash(&body.error)),
        ("cause".to_owned(), or_dash(&body.cause)),
        (
            "at".to_owned(),
            body.at.as_deref().map(time).unwrap_or_default(),
        ),
        (
            "received".to_owned(),
            format!("{} time(s)", letter.receive_count),
        ),
    ];
    let refused = match &order {
        Some(order) => {
            facts.extend(facts_of_order(order));
            None
        }
        None => Some(format!(
            "The message names order {:?}, which the order table does not hold: there is nothing to resume.",
            body.order_id
        )),
    };
    Ok(pages::confirm(&Confirmation {
        title: format!("Replay dead letter {}", letter.message_id),
        facts,
        consequence: format!(
            "Order {} is resumed (a new execution; steps that already succeeded are not done again). The message is deleted once the order runs again, or if it has ended meanwhile; it stays in the queue when the order's execution is still running or the resume fails.",
            body.order_id
        ),
        refused,
        action: format!("/dead-letters/{}/replay", pages::urlencode(&letter.message_id)),
        button: "Replay the message".into(),
        back: "/dead-letters".into(),
        token: console.guard.token().to_owned(),
    }))
}

/// The order facts of a replay's confirmation, named as such.
fn facts_of_order(order: &OrderRecord) -> Vec<(String, String)> {
    facts(order)
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "order" => (name, value),
            _ => (format!("order's {name}"), value),
        })
        .collect()
}

/// `POST /dead-letters/{message_id}/replay`: `crate::dlq::replay_message`, recorded on
/// the message's order.
pub async fn replay(
    State(console): State<Arc<Console>>,
    Path(message_id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, ConsoleError> {
    console.guard.check_token(&form.csrf)?;
    // The resume is recorded on the message's order by the replay itself.
    let replayed = dlq::replay_message(&console.context, &message_id).await?;
    let fate = if replayed.deleted { "deleted" } else { "kept" };
    let Some(id) = OrderId::parse(&replayed.order_id) else {
        return Err(ConsoleError::Cli(CliError::NotFound(format!(
            "message {message_id}: {}; message {fate}; it names no order ({:?}), so there was nothing to do",
            replayed.summary(),
            replayed.order_id
        ))));
    };
    Ok(acted(&id))
}
