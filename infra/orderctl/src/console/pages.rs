//! The console's pages as HTML (maud escapes every value put into them). Rendering only:
//! what a page shows is gathered by the handlers in `find`, `order` and `actions`.

use crate::orders::{duration_between, note_with, source_label, Execution};
use crate::output::{clip, duration, time};
use crate::timeline::Row;
use maud::{html, Markup, DOCTYPE};
use order_core::dead_letters::{DeadLetter, QueueCounts};
use order_core::steps::{self, StepRole};
use order_core::store::{AuditRecord, OrderRecord, StepRecord};
use order_core::{OrderId, OrderStatus};

/// A page: the header with the search box on every page, then `body`.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · orders console" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    a.brand href="/" { "Orders console" }
                    a href="/" { "Statuses" }
                    a href="/stuck" { "Stuck" }
                    a href="/dead-letters" { "Dead letters" }
                    form method="get" action="/find" role="search" {
                        input type="search" name="q" required
                            placeholder="order id, merchant id, tracking number or terminal serial"
                            aria-label="Find an order";
                        button type="submit" { "Find" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that needs nothing else of the console (no style sheet, no links): what a
/// request without the launch secret gets, since nothing else is served to it.
pub fn standalone(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · orders console" }
            }
            body {
                h1 { (title) }
                p.error-message { (message) }
            }
        }
    }
}

/// An error page: what went wrong, in the words of the error.
pub fn error(title: &str, message: &str) -> Markup {
    layout(
        title,
        html! {
            h1 { (title) }
            p.failure.error-message { (message) }
            p { a href="/" { "Back to the statuses" } }
        },
    )
}

/// How a status looks: bad (failed and its way there), good (delivered, done), busy
/// (being undone), plain.
fn status_badge(status: OrderStatus) -> Markup {
    let tone = match status {
        OrderStatus::Failed | OrderStatus::Rejected | OrderStatus::Compensating => "bad",
        OrderStatus::Completed | OrderStatus::Delivered => "good",
        OrderStatus::Cancelling | OrderStatus::Cancelled => "busy",
        _ => "",
    };
    html! { span class={ "status " (tone) } { (status) } }
}

/// The link to an order's page.
fn order_link(id: &OrderId) -> Markup {
    html! { a.mono href={ "/orders/" (id) } { (id) } }
}

/// Why an order needs a look, in a few words: whether it is parked and its failure.
fn note(order: &OrderRecord) -> String {
    note_with(order, |failure| {
        format!("{} at {}: {}", failure.error, failure.step, failure.reason)
    })
}

/// A table of orders, one line each, linking to their pages.
pub fn order_table(orders: &[OrderRecord]) -> Markup {
    html! {
        table.orders {
            thead { tr { th { "Order" } th { "Status" } th { "Kind" } th { "Merchant" }
                         th { "Created (UTC)" } th { "Last change (UTC)" } th { "Note" } } }
            tbody {
                @for order in orders {
                    tr {
                        td { (order_link(&order.order_id)) }
                        td { (status_badge(order.status)) }
                        td { (order.order.kind.as_str()) }
                        td { a href={ "/find?q=" (urlencode(&order.order.merchant_id)) } { (order.order.merchant_id) } }
                        td { (time(&order.created_at)) }
                        td { (time(&order.updated_at)) }
                        td { (clip(&note(order), 120)) }
                    }
                }
            }
        }
    }
}

/// `text` for a query string.
pub fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The start page: how many orders each status holds.
pub fn home(counts: &[(OrderStatus, usize)]) -> Markup {
    layout(
        "Statuses",
        html! {
            h1 { "Orders by status" }
            p.muted { "Counted in the by-status index. Find one order with the box above; "
                      a href="/stuck" { "stuck orders" } " have not changed for a while; "
                      a href="/dead-letters" { "the dead-letter queue" } " holds what the workflow could not finish." }
            div.counts {
                @for (status, count) in counts {
                    a href={ "/orders?status=" (status) } {
                        div { (status_badge(*status)) }
                        div.n { (count) }
                    }
                }
            }
        },
    )
}

/// One group of search results: what matched (`tracking number TRK-1`) and its orders.
pub struct Found {
    pub what: String,
    pub orders: Vec<OrderRecord>,
    /// Said under the group: that a listing was cut at its limit.
    pub note: Option<String>,
}

/// What a search found.
pub fn results(query: &str, found: &[Found]) -> Markup {
    layout(
        "Find",
        html! {
            h1 { "Find “" (query) "”" }
            @if found.iter().all(|f| f.orders.is_empty()) {
                p.notice.nothing {
                    "No order, merchant, tracking number or terminal serial matches “" (query) "”. "
                    "Tracking numbers and serials are known once their step succeeded "
                    "(ArrangeShipment; ProvisionTerminals or DeactivateFaultyTerminals)."
                }
            }
            @for group in found.iter().filter(|f| !f.orders.is_empty()) {
                h2 { (group.what) }
                (order_table(&group.orders))
                @if let Some(note) = &group.note { p.muted { (note) } }
            }
        },
    )
}

/// A listing of orders under a title, with a sentence on what it holds.
pub fn listing(title: &str, intro: Markup, orders: &[OrderRecord]) -> Markup {
    layout(
        title,
        html! {
            h1 { (title) }
            p.muted { (intro) }
            @if orders.is_empty() { p { "None." } } @else { (order_table(orders)) }
        },
    )
}

/// A form of one button that POSTs to `action` with the console's token (and `fields`):
/// how the pages ask for what changes something, a look at the queue included.
fn post_button(action: &str, token: &str, fields: &[(&str, &str)], label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(token);
            @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
            button type="submit" { (label) }
        }
    }
}

/// What a look at the queue does, said beside every button that does it.
const A_LOOK: &str = "SQS has no peek: looking receives every message, holds it for a moment and hands it back, so each look counts one more receive of each message. The console looks only when asked.";

/// How many messages the queue holds, in a sentence.
fn queue_counts(counts: &QueueCounts) -> Markup {
    html! {
        span.queue-counts {
            span.visible { (counts.visible) } " message(s) waiting, "
            span.in-flight { (counts.in_flight) } " being looked at or replayed, "
            span.delayed { (counts.delayed) } " delayed"
        }
    }
}

/// `GET /dead-letters`: the queue's counts (nothing received) and the form that looks.
pub fn dead_letters(counts: &QueueCounts, token: &str) -> Markup {
    layout(
        "Dead letters",
        html! {
            h1 { "Dead-letter queue" }
            p { "The queue holds " (queue_counts(counts)) " (SQS's approximate counts)." }
            div.actions { (post_button("/dead-letters", token, &[], "Look at the messages")) }
            p.muted { (A_LOOK) " Replaying a message resumes its order and deletes the message once the order runs again." }
        },
    )
}

/// `POST /dead-letters`: the messages as looked at (nothing taken out of the queue); with
/// `about`, only that order's.
pub fn dead_letters_looked_at(
    letters: &[DeadLetter],
    limit: usize,
    about: Option<&OrderId>,
    token: &str,
) -> Markup {
    let title = match about {
        Some(id) => format!("Dead letters about order {id}"),
        None => "Dead-letter queue".to_owned(),
    };
    layout(
        &title,
        html! {
            h1 { (title) }
            p.muted { "Looked at just now, without taking anything out (one more receive of each message). "
                      "Replaying a message resumes its order and deletes the message once the order runs again." }
            @if letters.is_empty() {
                @match about {
                    Some(id) => { p.nothing { "No message in the dead-letter queue is about order " (id) "." } }
                    None => { p.nothing { "The dead-letter queue is empty." } }
                }
            } @else {
                (letter_table(letters, token))
                @if about.is_none() && letters.len() >= limit { p.muted { "The first " (limit) " messages; there may be more." } }
            }
            @if let Some(id) = about { p { a href={ "/orders/" (id) } { "Back to order " (id) } } }
        },
    )
}

fn letter_table(letters: &[DeadLetter], token: &str) -> Markup {
    html! {
        table.letters {
            thead { tr { th { "Message" } th { "Order" } th { "Source" } th { "Failed step" }
                         th { "Error" } th { "Cause" } th { "At (UTC)" } th { "Received" } th {} } }
            tbody {
                @for letter in letters {
                    @let body = &letter.body;
                    tr {
                        td.mono { (letter.message_id) }
                        td { a.mono href={ "/orders/" (urlencode(&body.order_id)) } { (body.order_id) } }
                        td { (body.source) }
                        td { (body.failed_step.as_deref().unwrap_or("-")) }
                        td { (body.error.as_deref().unwrap_or("-")) }
                        td { (clip(body.cause.as_deref().unwrap_or("-"), 160)) }
                        td { (body.at.as_deref().map(time).unwrap_or_default()) }
                        td.num { (letter.receive_count) }
                        td { (post_button(&format!("/dead-letters/{}", urlencode(&letter.message_id)), token, &[], "Replay…")) }
                    }
                }
            }
        }
    }
}

/// `GET /dead-letters/<message>`: what the console can show of a message without
/// receiving it (its id), and the form that looks at it.
pub fn dead_letter_unseen(message_id: &str, token: &str) -> Markup {
    layout(
        "Dead letter",
        html! {
            div.confirm {
                h1 { "Dead letter " span.mono { (message_id) } }
                p { "To show what the message says and what replaying it would do, the console receives it from the queue." }
                p.muted { (A_LOOK) }
                div.actions {
                    (post_button(&format!("/dead-letters/{}", urlencode(message_id)), token, &[], "Show the message"))
                    a.button href="/dead-letters" { "Back" }
                }
            }
        },
    )
}

/// Everything the order page shows.
pub struct OrderPage<'a> {
    pub order: &'a OrderRecord,
    pub steps: &'a [StepRecord],
    pub executions: &'a [Execution],
    pub rows: &'a [Row],
    pub audits: &'a [AuditRecord],
    /// The dead-letter queue's counts; `Err`: why the console has no queue to count.
    pub dead_letters: Result<QueueCounts, String>,
    /// The console's form token, for the form that looks for the order's dead letters.
    pub token: &'a str,
    /// Show the latest audit record as what was just done.
    pub acted: bool,
}

/// The Step Functions console's page of an execution.
pub fn aws_console_link(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

fn role(step: &str) -> &'static str {
    match steps::by_name(step).map(|s| s.role) {
        Some(StepRole::Compensation) => "compensation",
        Some(StepRole::Record) => "record",
        _ => "forward",
    }
}

/// One order in one view.
pub fn order(page: &OrderPage<'_>) -> Markup {
    let order = page.order;
    let id = &order.order_id;
    let tracking = crate::orders::tracking_number(page.steps);
    layout(
        id.as_str(),
        html! {
            h1 { "Order " span.mono { (id) } " " (status_badge(order.status)) }
            @if page.acted {
                @if let Some(done) = page.audits.last() {
                    p.notice.acted { "Done: " strong { (done.action) } " — " (done.outcome_text()) " (by " (done.actor()) ", " (time(&done.at)) ")" }
                }
            }
            @if let Some(failure) = &order.failure {
                div.failure.why {
                    strong { "Why it failed: " } "at " strong { (failure.step) } " with " code { (failure.error) } ": "
                    span.reason { (failure.reason) } span.muted { " (" (time(&failure.at)) ")" }
                }
            }
            @if let Some(waits) = crate::timeline::outage_waits(page.rows) {
                div.notice.waiting {
                    strong { "Waiting out infrastructure trouble: " } (waits.step) " met " code { (waits.error.as_deref().unwrap_or("an error")) }
                    "; " (waits.waits) " outage wait(s) by " span.mono { (waits.execution) }
                    @if waits.waiting_now { " — waiting now" }
                    span.muted { " (never rolled back for it; a spent budget goes to the dead-letter queue)" }
                }
            }
            @if let Some(parked) = &order.parked {
                div.failure { strong { "Parked for an operator: " } (parked.reason) span.muted { " (" (time(&parked.at)) ")" } }
            }
            div.actions {
                @if order.status.is_final() {
                    span.muted { "The order has ended (" (order.status) "): nothing to resume or cancel." }
                } @else {
                    a.button href={ "/orders/" (id) "/resume" } { "Resume…" }
                    @if order.status.is_cancellable() {
                        a.button.danger href={ "/orders/" (id) "/cancel" } { "Cancel…" }
                    } @else {
                        span.muted { "Cannot be cancelled any more (" (order.status) ")." }
                    }
                }
            }
            dl.facts {
                dt { "kind" } dd { (order.order.kind.as_str()) }
                dt { "merchant" } dd { a href={ "/find?q=" (urlencode(&order.order.merchant_id)) } { (order.order.merchant_id) } }
                dt { "created" } dd { (time(&order.created_at)) " UTC" }
                dt { "last change" } dd { (time(&order.updated_at)) " UTC" }
                dt { "version" } dd { (order.version) }
                dt { "resumed" } dd { (order.resumes) " time(s)" }
                dt { "tracking number" } dd.tracking { (tracking.unwrap_or_else(|| "-".to_owned())) }
                @if let Some(delivery) = &order.delivery {
                    dt { "delivered" } dd { (time(&delivery.delivered_at)) " (shipment " (delivery.shipment_id) ")" }
                }
                dt { "lines" } dd { @for line in &order.order.lines { (line.quantity) " × " (line.sku) br; } }
                @if !order.order.replace_serials.is_empty() {
                    dt { "replacing" } dd.mono { (order.order.replace_serials.join(", ")) }
                }
                @let address = &order.order.delivery_address;
                dt { "deliver to" } dd { (address.name) ", " (address.line1) ", " (address.postal_code) " " (address.city) ", " (address.country) }
            }

            h2 { "Steps" }
            @if page.steps.is_empty() { p.muted { "No step has run." } } @else {
                table.steps {
                    thead { tr { th { "Step" } th { "Role" } th { "Status" } th { "Attempts" } th { "Started (UTC)" }
                                 th { "Finished (UTC)" } th { "Took" } th { "Partner references" } th { "Error" } } }
                    tbody {
                        @for step in page.steps {
                            tr {
                                td { (step.step) }
                                td { (role(&step.step)) }
                                td { (format!("{:?}", step.status).to_uppercase()) }
                                td.num { (step.attempts) }
                                td { (time(&step.started_at)) }
                                td { (step.finished_at.as_deref().map(time).unwrap_or_default()) }
                                td { (step.finished_at.as_deref().and_then(|f| duration_between(&step.started_at, f)).map(duration).unwrap_or_default()) }
                                td.mono { @for (name, value) in &step.references { (name) "=" (value) br; } }
                                td { @if let Some(error) = &step.error { code { (error) } }
                                     @if let Some(message) = &step.error_message { " " (clip(message, 300)) } }
                            }
                        }
                    }
                }
            }

            h2 { "Executions" }
            @if page.executions.is_empty() { p.muted { "None: the workflow never started for this order." } } @else {
                table.executions {
                    thead { tr { th { "Execution" } th { "Status" } th { "Started (UTC)" } th { "Stopped (UTC)" } th { "Took" }
                                 th { "Release" } th { "AWS console" } } }
                    tbody {
                        @for execution in page.executions {
                            tr {
                                td.mono { (execution.name) }
                                td { (execution.status) }
                                td { (execution.started_at.as_deref().map(time).unwrap_or_default()) }
                                td { (execution.stopped_at.as_deref().map(time).unwrap_or_default()) }
                                td { @if let (Some(a), Some(b)) = (&execution.started_at, &execution.stopped_at) {
                                        (duration_between(a, b).map(duration).unwrap_or_default()) } }
                                td { (execution.release()) }
                                td { a.aws-console href=(aws_console_link(&execution.execution_arn)) rel="noreferrer" { "open" } }
                            }
                        }
                    }
                }
            }

            h2 { "Dead letters" }
            @match &page.dead_letters {
                Err(why) => { p.muted { (why) } }
                Ok(counts) => {
                    p { "The dead-letter queue holds " (queue_counts(counts)) "." }
                    div.actions { (post_button("/dead-letters", page.token, &[("order", id.as_str())], "Look for this order's dead letters")) }
                    p.muted { (A_LOOK) }
                }
            }

            h2 id="audit" { "Operator actions" }
            @if page.audits.is_empty() { p.muted { "None recorded." } } @else {
                table.audit {
                    thead { tr { th { "When (UTC)" } th { "Who" } th { "Action" } th { "Outcome" } } }
                    tbody {
                        @for audit in page.audits.iter().rev() {
                            tr { td { (time(&audit.at)) } td.mono { (audit.actor()) } td { (audit.action) } td { (audit.outcome_text()) } }
                        }
                    }
                }
            }

            h2 { "Timeline" }
            table.timeline {
                thead { tr { th { "Time (UTC)" } th { "Source" } th { "State / step" } th { "Attempt" }
                             th { "Event" } th { "Took" } th { "Error" } } }
                tbody {
                    @for row in page.rows {
                        tr {
                            td { (row.time.as_deref().map(time).unwrap_or_else(|| "?".to_owned())) }
                            td { (source_label(id, row)) }
                            td { (row.state.as_deref().unwrap_or_default()) }
                            td.num { (row.attempt.map(|a| a.to_string()).unwrap_or_default()) }
                            td { (row.event) }
                            td { (row.duration_ms.map(duration).unwrap_or_default()) }
                            td { @if let Some(error) = &row.error { code { (error) } " " }
                                 (clip(row.cause.as_deref().unwrap_or_default(), 300)) }
                        }
                    }
                }
            }
        },
    )
}

/// What an action will do, shown before it is done.
pub struct Confirmation {
    /// `Cancel order ord-…`.
    pub title: String,
    /// The facts the decision rests on: (name, value).
    pub facts: Vec<(String, String)>,
    /// What will happen, in a sentence or two.
    pub consequence: String,
    /// `None`: the action may be done; `Some(why)`: it would be refused.
    pub refused: Option<String>,
    /// Where the form posts.
    pub action: String,
    pub button: String,
    /// Where "back" goes.
    pub back: String,
    pub token: String,
}

/// The confirmation page of an action: GET shows it, its form POSTs the action.
pub fn confirm(page: &Confirmation) -> Markup {
    layout(
        &page.title,
        html! {
            div.confirm {
                h1 { (page.title) }
                dl.facts { @for (name, value) in &page.facts { dt { (name) } dd { (value) } } }
                p.consequence { (page.consequence) }
                @if let Some(why) = &page.refused {
                    p.failure.refused { (why) }
                    p { a.button href=(page.back) { "Back" } }
                } @else {
                    form method="post" action=(page.action) class="actions" {
                        input type="hidden" name="csrf" value=(page.token);
                        button.danger type="submit" name="confirm" value="yes" { (page.button) }
                        a.button href=(page.back) { "Back, do nothing" }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_page_shows_is_escaped() {
        let page = error("Not found", "order <script>alert(1)</script> & co").into_string();
        assert!(
            page.contains("order &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"),
            "{page}"
        );
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn an_execution_links_to_its_page_in_its_regions_step_functions_console() {
        let arn = "arn:aws:states:eu-central-1:123456789012:execution:OrderWorkflow:ord-1";
        assert_eq!(
            aws_console_link(arn),
            "https://eu-central-1.console.aws.amazon.com/states/home?region=eu-central-1#/v2/executions/details/arn:aws:states:eu-central-1:123456789012:execution:OrderWorkflow:ord-1"
        );
    }

    #[test]
    fn the_page_without_the_secret_needs_nothing_else_of_the_console() {
        let page = standalone("Open the URL the console printed", "open <it>").into_string();
        assert!(page.contains("open &lt;it&gt;"), "{page}");
        for loads in ["href=", "src=", "<link", "<script", "<form"] {
            assert!(!page.contains(loads), "{loads} in {page}");
        }
    }

    #[test]
    fn every_dead_letter_button_posts_with_the_consoles_token() {
        let counts = QueueCounts {
            visible: 3,
            in_flight: 1,
            delayed: 0,
        };
        let page = dead_letters(&counts, "t0k3n").into_string();
        assert!(
            page.contains(r#"<form class="inline" method="post" action="/dead-letters"><input type="hidden" name="csrf" value="t0k3n">"#),
            "{page}"
        );
        assert!(page.contains(r#"<span class="visible">3</span>"#), "{page}");
        let unseen = dead_letter_unseen("m/1", "t0k3n").into_string();
        assert!(
            unseen.contains(r#"method="post" action="/dead-letters/m%2F1"><input type="hidden" name="csrf" value="t0k3n">"#),
            "{unseen}"
        );
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        let page = home(&[(OrderStatus::Failed, 2)]).into_string();
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
    }
}
