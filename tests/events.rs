//! The order lifecycle events, end to end: orders of every kind, a declined payment, a
//! cancel and an order the reconciler gives up on run through the stack, and the events
//! their functions put on the order-events bus arrive, through the stack's rule
//! (`OrderEventsTap`, as an integrator subscribes), in the tap queue. Each order must
//! produce exactly its documented sequence of detail-types, each detail must be version 1
//! of `infra/events/order-lifecycle.v1.schema.json` (checked field by field by the strict
//! `order_core::events::Detail`), and every publish of one change must carry the same
//! event id and the same detail.

use order_core::events::{Detail, Lifecycle};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use system_tests::{fault, order_of_kind, unique_merchant, Stack};

/// How long the events of one order may take to arrive after it ended.
const ARRIVAL: Duration = Duration::from_secs(120);
/// The reconciler's resume limit in the test that parks an order: the one
/// `tests/recovery.rs` passes, so a pass here parks nothing a pass there would not.
const RESUMES_ALLOWED: u32 = 3;

/// The tests of this file read one queue and take what they read out of it: one at a time.
static TAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one order put on the bus: each event id once (with its lifecycle and detail), and
/// how many arrived more than once (EventBridge and the outbox's stream deliver at least
/// once).
#[derive(Debug, Default)]
struct Received {
    events: BTreeMap<String, (Lifecycle, Detail)>,
    repeats: usize,
}

impl Received {
    /// The events in the order their changes happened (`occurred_at`), not the order
    /// they arrived in: EventBridge to SQS keeps no order.
    fn in_order(&self) -> Vec<(Lifecycle, Detail)> {
        let mut events: Vec<_> = self.events.values().cloned().collect();
        events.sort_by(|a, b| a.1.occurred_at.cmp(&b.1.occurred_at));
        events
    }
}

/// How long to go on reading after every expected event arrived, to see any that should
/// not have come.
const LINGER: Duration = Duration::from_secs(3);

/// Reads the tap queue until every order of `expected` has each of its event ids (then
/// `LINGER` more, for extras), taking its own orders' messages out. Another order's
/// message (another test's, another run's) is set aside and comes back for whoever reads
/// it after this read.
async fn collect(
    stack: &Stack,
    expected: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Received> {
    let mut received: BTreeMap<String, Received> = BTreeMap::new();
    let started = Instant::now();
    let mut all_arrived: Option<Instant> = None;
    loop {
        let complete = expected.iter().all(|(order, ids)| {
            ids.iter().all(|id| {
                received
                    .get(order)
                    .is_some_and(|r| r.events.contains_key(id))
            })
        });
        match (complete, all_arrived) {
            (true, None) => all_arrived = Some(Instant::now()),
            (true, Some(at)) if at.elapsed() >= LINGER => return received,
            (false, _) => assert!(
                started.elapsed() < ARRIVAL,
                "the order events did not all arrive; expected {expected:#?}, so far: {received:#?}"
            ),
            _ => {}
        }
        // Other orders' messages are set aside for as long as this read can last.
        let taken = stack
            .take_tap_events(|order| expected.contains_key(order), ARRIVAL)
            .await;
        for body in taken {
            let order = body["detail"]["order_id"].as_str().unwrap_or_default();
            assert_eq!(body["source"], "terminal-orders", "{body}");
            let lifecycle: Lifecycle = serde_json::from_value(body["detail-type"].clone())
                .unwrap_or_else(|e| panic!("an undocumented detail-type: {e}: {body}"));
            let detail: Detail = serde_json::from_value(body["detail"].clone())
                .unwrap_or_else(|e| panic!("a detail that is not version 1: {e}: {body}"));
            assert_eq!(detail.schema_version, "1");
            assert_eq!(
                body["time"].as_str().map(|t| t.get(..19)),
                Some(detail.occurred_at.get(..19)),
                "the event's time is when the change happened: {body}"
            );
            let entry = received.entry(order.to_owned()).or_default();
            match entry.events.get(&detail.event_id) {
                Some((_, first)) => {
                    assert_eq!(first, &detail, "one event id, two different details");
                    entry.repeats += 1;
                }
                None => {
                    entry
                        .events
                        .insert(detail.event_id.clone(), (lifecycle, detail));
                }
            }
        }
    }
}

/// The event ids an order must publish: `<order>/<STATUS>` for each status.
fn ids(order: &str, statuses: &[&str]) -> Vec<String> {
    statuses.iter().map(|s| format!("{order}/{s}")).collect()
}

fn detail_types(received: &Received) -> Vec<&'static str> {
    received
        .in_order()
        .iter()
        .map(|(l, _)| l.detail_type())
        .collect()
}

/// The order published `Order Accepted`, then `end` with a reason, and nothing else;
/// returns the reason.
fn ended_with(received: &Received, end: &str) -> order_core::events::Reason {
    assert_eq!(
        detail_types(received),
        ["Order Accepted", end],
        "{received:#?}"
    );
    let reason = received
        .in_order()
        .get(1)
        .and_then(|(_, detail)| detail.reason.clone());
    reason.unwrap_or_else(|| panic!("{end} without a reason: {received:#?}"))
}

#[tokio::test]
async fn every_order_kind_and_every_way_to_end_publishes_exactly_its_documented_sequence() {
    let _tap = TAP.lock().await;
    let stack = Stack::connect().await;
    let kinds = ["new_merchant", "additional_devices", "replacement"];
    let mut completed = Vec::new();
    for kind in kinds {
        let (id, _) = stack.place(&order_of_kind(kind, &unique_merchant())).await;
        completed.push(id);
    }
    let (declined, _) = stack
        .place_under(&[fault("payments", "charge", "refuse")])
        .await;
    let (cancelled, _) = stack.order_cancelled_while_charged().await;

    let mut expected: BTreeMap<String, Vec<String>> = completed
        .iter()
        .map(|o| {
            (
                o.clone(),
                ids(o, &["ACCEPTED", "SHIPPED", "DELIVERED", "COMPLETED"]),
            )
        })
        .collect();
    expected.insert(declined.clone(), ids(&declined, &["ACCEPTED", "FAILED"]));
    expected.insert(
        cancelled.clone(),
        ids(&cancelled, &["ACCEPTED", "CANCELLED"]),
    );
    let received = collect(&stack, &expected).await;
    for (order, want) in &expected {
        let got: Vec<&String> = received[order].events.keys().collect();
        let mut want: Vec<&String> = want.iter().collect();
        want.sort();
        assert_eq!(got, want, "{order}: exactly its event ids, none more");
    }

    for (kind, order) in kinds.iter().zip(&completed) {
        let got = &received[order];
        assert_eq!(
            detail_types(got),
            [
                "Order Accepted",
                "Order Shipped",
                "Order Delivered",
                "Order Completed"
            ],
            "{kind}: {got:#?}"
        );
        let in_order = got.in_order();
        let shipped = &in_order[1].1;
        assert!(
            shipped
                .tracking_number
                .as_deref()
                .is_some_and(|t| !t.is_empty()),
            "{kind}: Order Shipped carries the tracking number: {shipped:?}"
        );
        let view = stack.get(&format!("/orders/{order}")).await.body;
        assert_eq!(
            Some(json!(shipped.tracking_number)),
            Some(view["tracking_number"].clone()),
            "{kind}: the tracking number the API shows"
        );
        for (lifecycle, detail) in &in_order {
            assert_eq!(detail.order_kind.as_str(), *kind);
            let status = match lifecycle {
                Lifecycle::Accepted => "ACCEPTED",
                Lifecycle::Shipped => "SHIPPED",
                Lifecycle::Delivered => "DELIVERED",
                _ => "COMPLETED",
            };
            assert_eq!(detail.event_id, format!("{order}/{status}"));
        }
    }

    let reason = ended_with(&received[&declined], "Order Failed");
    assert_eq!(
        (reason.step.as_str(), reason.error.as_str()),
        ("TakePayment", "Payment.Declined")
    );
    assert!(!reason.message.is_empty(), "{reason:?}");

    let reason = ended_with(&received[&cancelled], "Order Cancelled");
    assert_eq!(reason.error, "Order.Cancelled");

    let repeats: usize = received.values().map(|r| r.repeats).sum();
    let mut report = format!(
        "order events on {}: {} orders, {repeats} repeated deliveries\n",
        system_tests::Backend::current().name(),
        received.len()
    );
    for (order, got) in &received {
        let in_order = got.in_order();
        let kind = in_order.first().map(|(_, d)| d.order_kind.as_str());
        let end = in_order.last().map(|(_, d)| d.status.as_str());
        report.push_str(&format!(
            "  {order} ({} ending {}): {:?}\n",
            kind.unwrap_or("?"),
            end.unwrap_or("?"),
            detail_types(got)
        ));
    }
    // Kept for the record (cargo test shows a passing test's output only with --nocapture).
    let saved = system_tests::root().join(format!(
        "target/order-events-{}.txt",
        system_tests::Backend::current().name()
    ));
    if let Err(error) = std::fs::write(&saved, &report) {
        println!("cannot write {}: {error}", saved.display());
    }
    print!("{report}");
}

#[tokio::test]
async fn an_order_the_reconciler_gives_up_on_publishes_that_it_needs_an_operator() {
    let _tap = TAP.lock().await;
    let stack = Stack::connect().await;
    // Stored as the API stores it, but its workflow never started, and it has been resumed
    // as often as allowed: the reconciler parks it. The pass sees the whole shared stack,
    // so it uses the limits `tests/recovery.rs` uses and parks nothing that test would not.
    let id = stack.order_without_execution().await;
    stack.counted_as_resumed(&id, RESUMES_ALLOWED).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    stack.reconcile(RESUMES_ALLOWED).await;

    let order = id.to_string();
    let parked = format!("{order}/NEEDS_OPERATOR/{RESUMES_ALLOWED}");
    let expected = BTreeMap::from([(order.clone(), vec![format!("{order}/ACCEPTED"), parked])]);
    let received = collect(&stack, &expected).await;
    let got = &received[&order];
    assert_eq!(
        detail_types(got),
        ["Order Accepted", "Order Needs Operator"],
        "{got:#?}"
    );
    let detail = &got.in_order()[1].1;
    assert_eq!(
        detail.event_id,
        format!("{order}/NEEDS_OPERATOR/{RESUMES_ALLOWED}")
    );
    assert_eq!(detail.status.as_str(), "ACCEPTED");
    let reason = detail
        .reason
        .clone()
        .unwrap_or_else(|| panic!("{detail:?}"));
    assert!(
        reason.message.contains("no execution was ever started")
            && reason
                .message
                .contains(&format!("resumed {RESUMES_ALLOWED} times")),
        "{reason:?}"
    );
}
