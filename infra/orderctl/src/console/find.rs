//! Finding orders: the start page's counts by status, the search box (order id, merchant
//! id, tracking number, terminal serial), the orders in one status, the stuck ones, and
//! the dead-letter queue. Every read is a GetItem or a Query (the by-status and
//! by-merchant indexes, the lookup items); nothing scans the table. The dead-letter queue
//! is counted on GET and looked at only on a POST (a look receives its messages).

use super::error::ConsoleError;
use super::pages::{self, Found};
use super::Console;
use crate::dlq::FIND_LIMIT;
use crate::orders::order_id;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{SecondsFormat, Utc};
use maud::{html, Markup};
use order_core::recovery;
use order_core::store::{OrderRecord, Reference};
use order_core::{OrderId, OrderStatus};
use serde::Deserialize;
use std::sync::Arc;

/// The most orders a listing or one group of search results shows.
pub const LIST_LIMIT: usize = 200;
/// How long an unfinished order may go without a status change before the stuck list
/// shows it, when the page is not told (`?minutes=`).
pub const DEFAULT_STUCK_MINUTES: u32 = 60;
/// The longest search text taken: longer is no id, serial or tracking number we issue.
const MAX_QUERY_CHARS: usize = 200;

/// `/`: how many orders each status holds (a counting Query per status).
pub async fn home(State(console): State<Arc<Console>>) -> Result<Markup, ConsoleError> {
    let mut counts = Vec::new();
    for status in OrderStatus::ALL {
        counts.push((*status, console.store.count_in_status(*status).await?));
    }
    Ok(pages::home(&counts))
}

#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

/// `/find?q=`: an order id opens that order; anything else is looked up as a merchant
/// id, a tracking number and a terminal serial, and every match is listed.
pub async fn search(
    State(console): State<Arc<Console>>,
    Query(search): Query<Search>,
) -> Result<Response, ConsoleError> {
    let query = search.q.trim();
    if query.is_empty() {
        return Ok(Redirect::to("/").into_response());
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ConsoleError::BadRequest(format!(
            "a search of more than {MAX_QUERY_CHARS} characters cannot match an order id, merchant id, tracking number or serial"
        )));
    }
    if let Some(id) = OrderId::parse(query) {
        return Ok(Redirect::to(&format!("/orders/{id}")).into_response());
    }
    let store = &console.store;
    let mut found = Vec::new();
    let merchant = store.orders_of_merchant(query, None, LIST_LIMIT).await?;
    let note = (merchant.len() == LIST_LIMIT).then(|| {
        format!("The merchant's first {LIST_LIMIT} orders, oldest first; there are more.")
    });
    found.push(Found {
        what: format!("Orders of merchant {query}"),
        orders: merchant,
        note,
    });
    for reference in Reference::ALL {
        let mut orders = Vec::new();
        for id in store.find_by_reference(reference, query).await? {
            // A lookup outlives nothing: orders are never deleted. One that cannot be
            // read is reported by the error page.
            if let Some(order) = store.get_order(&id).await? {
                orders.push(order);
            }
        }
        found.push(Found {
            what: format!("Orders with {reference} {query}"),
            orders,
            note: None,
        });
    }
    Ok(pages::results(query, &found).into_response())
}

#[derive(Debug, Deserialize)]
pub struct InStatus {
    #[serde(default)]
    status: String,
}

/// `/orders?status=`: the orders in one status, oldest change first.
pub async fn in_status(
    State(console): State<Arc<Console>>,
    Query(query): Query<InStatus>,
) -> Result<Markup, ConsoleError> {
    let status =
        OrderStatus::parse(&query.status.trim().to_ascii_uppercase()).ok_or_else(|| {
            let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
            ConsoleError::BadRequest(format!(
                "{:?} is not an order status; one of {}",
                query.status,
                all.join(", ")
            ))
        })?;
    let orders = console
        .store
        .orders_in_status(status, None, LIST_LIMIT)
        .await?;
    let intro = html! {
        "Oldest change first, at most " (LIST_LIMIT) ", from the by-status index."
    };
    Ok(pages::listing(&format!("{status} orders"), intro, &orders))
}

#[derive(Debug, Deserialize)]
pub struct Stuck {
    minutes: Option<String>,
}

/// `/stuck?minutes=`: unfinished orders whose status has not changed for longer than
/// the threshold (default [`DEFAULT_STUCK_MINUTES`]), oldest change first, status by
/// status.
pub async fn stuck(
    State(console): State<Arc<Console>>,
    Query(query): Query<Stuck>,
) -> Result<Markup, ConsoleError> {
    let minutes = match query.minutes.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_STUCK_MINUTES,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|m| *m <= 60 * 24 * 30)
            .ok_or_else(|| {
                ConsoleError::BadRequest(format!(
                    "minutes must be a whole number from 0 (every unfinished order) to 43200 (30 days), not {text:?}"
                ))
            })?,
    };
    let cutoff = (Utc::now() - chrono::Duration::minutes(i64::from(minutes)))
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut orders: Vec<OrderRecord> = Vec::new();
    for status in recovery::unfinished_statuses() {
        let left = LIST_LIMIT.saturating_sub(orders.len());
        if left == 0 {
            break;
        }
        let found = console
            .store
            .orders_in_status(status, Some(&cutoff), left)
            .await?;
        orders.extend(found);
    }
    let intro = html! {
        "Orders that have not ended and whose status has not changed for more than "
        (minutes) " minutes (since " (crate::output::time(&cutoff)) " UTC), status by status, oldest first, at most "
        (LIST_LIMIT) ". SHIPPED orders wait for their courier for up to 14 days. Another threshold: "
        form.inline method="get" action="/stuck" {
            input type="number" name="minutes" min="0" max="43200" value=(minutes) aria-label="minutes";
            " minutes "
            button type="submit" { "Show" }
        }
    };
    Ok(pages::listing("Stuck orders", intro, &orders))
}

/// `GET /dead-letters`: how many messages the workflow dead-letter queue holds
/// (GetQueueAttributes, which changes nothing), and the form that looks at them.
pub async fn dead_letters(State(console): State<Arc<Console>>) -> Result<Markup, ConsoleError> {
    let queue = console.context.dead_letters()?;
    let counts = queue.counts().await?;
    Ok(pages::dead_letters(&counts, console.guard.token()))
}

/// The form that looks at the dead-letter queue.
#[derive(Debug, Deserialize)]
pub struct Look {
    /// The console's token; a missing one is refused like a wrong one.
    #[serde(default)]
    csrf: String,
    /// Only the messages about this order (from its page); all of them when absent.
    #[serde(default)]
    order: Option<String>,
}

/// `POST /dead-letters`: the messages themselves, looked at as `orderctl dlq list` looks
/// (every message received, held a moment and handed back at once; none deleted). A POST,
/// because SQS has no peek: each look counts one more receive of every message and hides
/// them while it walks the queue. With `order`, only the messages about that order.
pub async fn look_at_dead_letters(
    State(console): State<Arc<Console>>,
    Form(look): Form<Look>,
) -> Result<Markup, ConsoleError> {
    console.guard.check_token(&look.csrf)?;
    let about = match look.order.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(order_id(raw)?),
    };
    let queue = console.context.dead_letters()?;
    let letters = match &about {
        None => queue.look(FIND_LIMIT.min(LIST_LIMIT)).await?,
        Some(id) => queue
            .look(FIND_LIMIT)
            .await?
            .into_iter()
            .filter(|letter| letter.body.order_id == id.as_str())
            .collect(),
    };
    Ok(pages::dead_letters_looked_at(
        &letters,
        LIST_LIMIT,
        about.as_ref(),
        console.guard.token(),
    ))
}
