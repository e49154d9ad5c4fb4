//! The ledger's contract: one suite of checks that every [`Ledger`] implementation must
//! pass, so the in-memory twin cannot drift from the DynamoDB table.
//!
//! [`ledger_contract!`](crate::ledger_contract) turns every check into a `#[tokio::test]`
//! for a backend: `shared/src/store/memory.rs` runs it on [`MemoryStore`](super::MemoryStore)
//! in plain `cargo test`, `tests/store.rs` on [`OrderStore`](super::OrderStore) against the
//! emulator. Each check places orders of its own (a fresh merchant), so the checks share a
//! table safely. Compiled for tests and with the `contract` feature only.

use super::{audited, Actor, AuditTrail, Callers, Retention};
use super::{
    AuditEntry, Cancellation, Delivery, DeliveryRecorded, IndexPosition, Ledger, OrderRecord,
    Placement, Reference, References, StepRecord, StepStart, StepStatus, StoreError, TokenStored,
    Transition,
};
use crate::callers::{Merchants, Permission, Principal, Scope};
use crate::catalogue::Catalogue;
use crate::order::{example_request, Order, OrderId};
use crate::status::OrderStatus;
use crate::steps::{ARRANGE_SHIPMENT, AWAIT_DELIVERY, PROVISION_TERMINALS};
use crate::{ActivityError, ErrorName};
use futures_util::future::join_all;

/// Every check of the suite as a `#[tokio::test]` named after it, each given the ledger
/// that `$ledger` (an expression, evaluated in the async test) makes.
#[macro_export]
macro_rules! ledger_contract {
    ($ledger:expr) => {
        $crate::ledger_contract!(@checks $ledger;
            a_new_order_is_accepted_at_version_one_and_read_back_as_written,
            the_same_key_and_request_find_the_first_order,
            the_same_key_with_another_request_is_reported_as_reused,
            concurrent_requests_with_one_key_create_exactly_one_order,
            a_status_change_bumps_the_version_and_lists_the_order_under_its_new_status,
            a_status_change_from_a_status_the_order_has_left_is_a_conflict_and_changes_nothing,
            an_illegal_transition_is_refused_before_anything_is_written,
            changing_the_status_of_a_missing_order_says_it_does_not_exist,
            a_failure_given_with_a_status_change_is_kept_on_the_order,
            a_step_that_succeeded_is_not_started_again,
            a_failed_step_is_retried_with_its_attempts_counted,
            concurrent_begins_of_one_step_count_every_attempt,
            a_step_success_whose_status_change_conflicts_records_neither,
            a_step_that_succeeds_twice_keeps_its_first_result,
            a_failure_recorded_after_a_success_leaves_the_success_standing,
            a_step_begun_again_after_a_failure_shows_under_way_with_both_attempts,
            a_cancel_moves_an_order_that_has_not_shipped_to_cancelling_once,
            a_cancel_after_shipping_is_too_late_and_changes_nothing,
            a_cancel_racing_the_workflow_to_shipment_lands_or_is_too_late_and_never_fails,
            a_task_token_is_kept_only_while_the_order_is_shipped,
            a_late_copy_of_an_older_attempt_never_replaces_a_newer_attempts_token,
            a_delivery_moves_a_shipped_order_once_and_a_replayed_event_changes_nothing,
            a_delivery_for_another_shipment_is_refused_and_changes_nothing,
            a_delivery_during_a_rollback_that_has_not_cancelled_the_shipment_stops_it,
            a_delivery_after_the_shipment_was_cancelled_is_recorded_and_parks_the_order_once,
            an_event_id_a_courier_reuses_for_another_order_is_recorded_for_that_order,
            a_delivery_before_the_task_token_is_reported_to_the_waiting_step,
            a_park_holds_only_on_the_order_as_read_and_a_claim_clears_it,
            a_merchants_orders_and_orders_by_status_are_listed_oldest_first,
            a_tracking_number_and_terminal_serials_recorded_by_their_steps_find_their_order,
            a_reference_no_successful_step_recorded_finds_nothing,
            orders_are_counted_in_their_status,
            orders_in_a_status_are_listed_from_just_after_a_place_in_the_index_and_below_the_cutoff,
            a_reconcilers_cursor_is_kept_under_its_name_until_cleared,
            audit_records_are_kept_on_their_order_oldest_first_and_change_nothing_else,
            an_audit_record_for_a_missing_order_is_refused,
            a_step_writes_its_event_in_its_success_transaction_once_and_a_refused_change_writes_none,
            a_status_change_alone_writes_its_event_with_it_and_a_conflict_writes_none,
            of_starters_racing_from_one_read_exactly_one_claims_the_order_and_the_others_learn_who,
            an_order_that_has_ended_is_never_claimed_again,
            a_cancel_before_anything_began_ends_the_order_at_once_with_its_event,
            a_cancel_after_a_step_began_or_an_execution_was_recorded_goes_through_cancelling,
            one_key_sent_by_two_callers_places_two_orders_each_recording_its_caller,
            a_callers_scope_is_set_replaced_and_removed_and_each_change_is_audited_with_who_made_it,
            an_action_is_recorded_before_it_is_taken_and_an_unwritable_record_stops_it,
            an_ended_order_is_anonymised_once_and_keeps_everything_but_its_personal_data,
        );
    };
    (@checks $ledger:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let ledger = $ledger;
                $crate::store::contract::$check(&ledger).await;
            }
        )+
    };
}

/// A valid order of a merchant of its own.
pub fn new_order() -> Order {
    let merchant = format!("m-contract-{}", uuid::Uuid::new_v4().simple());
    let catalogue = Catalogue::builtin().unwrap_or_else(|error| panic!("catalogue: {error}"));
    Order::parse(&example_request(&merchant), &catalogue)
        .unwrap_or_else(|problems| panic!("the example order is invalid: {problems}"))
}

/// The API caller the suite's orders are placed by.
pub fn caller() -> Principal {
    principal("contract-caller")
}

/// The role `name` of the suite's account.
fn principal(name: &str) -> Principal {
    Principal::parse(&format!("arn:aws:iam::123456789012:role/{name}"))
        .unwrap_or_else(|error| panic!("{error}"))
}

fn new_key() -> String {
    format!("key-{}", uuid::Uuid::new_v4())
}

/// Stores `order` as a new ACCEPTED order under a fresh key (as the API does before it
/// starts the execution) and returns it as written. Also the integration tests' way to
/// put an order in the table without the API.
pub async fn store_order(ledger: &impl Ledger, order: &Order) -> OrderRecord {
    match ledger
        .place_order(&caller(), &new_key(), order, "hash")
        .await
    {
        Ok(Placement::Created(record)) => record,
        other => panic!("expected a new order, got {other:?}"),
    }
}

/// Places a new order (of a merchant of its own) and returns it as written.
pub async fn place(ledger: &impl Ledger) -> OrderRecord {
    store_order(ledger, &new_order()).await
}

async fn read(ledger: &impl Ledger, id: &OrderId) -> OrderRecord {
    ledger
        .require_order(id)
        .await
        .unwrap_or_else(|error| panic!("reading order {id}: {error}"))
}

async fn move_to(ledger: &impl Ledger, id: &OrderId, from: OrderStatus, to: OrderStatus) {
    ledger
        .transition(id, Transition::new(from, to))
        .await
        .unwrap_or_else(|error| panic!("moving order {id} {from} -> {to}: {error}"));
}

/// Takes a new order along the happy path to SHIPPED, with ArrangeShipment's record naming
/// `shipment_id`, as the workflow leaves it before AwaitDelivery.
pub async fn shipped(ledger: &impl Ledger, shipment_id: &str) -> OrderId {
    let id = place(ledger).await.order_id;
    advance(ledger, &id, OrderStatus::Shipped, shipment_id).await;
    id
}

/// Walks the ACCEPTED order `id` along a new order's happy path
/// ([`OrderStatus::NEW_ORDER_PATH`]) up to `status`, without any partner. Shipping succeeds
/// ArrangeShipment with `shipment_id` in its record, as the workflow does.
pub async fn advance(ledger: &impl Ledger, id: &OrderId, status: OrderStatus, shipment_id: &str) {
    for pair in OrderStatus::NEW_ORDER_PATH.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        if from == status {
            return;
        }
        if to != OrderStatus::Shipped {
            move_to(ledger, id, from, to).await;
            continue;
        }
        let references = References::from([("shipment_id".to_owned(), shipment_id.to_owned())]);
        succeed_moving(ledger, id, ARRANGE_SHIPMENT.name, references, from, to).await;
    }
}

/// Begins `step` for the order and makes it succeed with `references`, moving the order
/// from `from` to `to`.
async fn succeed_moving(
    ledger: &impl Ledger,
    id: &OrderId,
    step: &str,
    references: References,
    from: OrderStatus,
    to: OrderStatus,
) {
    let attempt = begin(ledger, id, step).await;
    let transition = Some(Transition::new(from, to));
    ledger
        .succeed_step(&attempt, references, transition)
        .await
        .unwrap_or_else(|error| panic!("{step} of order {id}: {error}"));
}

/// A step as the summaries compare it: name, status, attempts, error.
type StepSummary = (String, StepStatus, u32, Option<String>);

fn step_summary(step: &str, status: StepStatus, attempts: u32, error: Option<&str>) -> StepSummary {
    (step.to_owned(), status, attempts, error.map(str::to_owned))
}

/// The order's steps as the ledger shows them, summarised.
async fn steps_summary(ledger: &impl Ledger, id: &OrderId) -> Vec<StepSummary> {
    let Ok(Some((_, steps))) = ledger.get_order_with_steps(id).await else {
        panic!("order {id} not found");
    };
    steps
        .iter()
        .map(|s| step_summary(&s.step, s.status, s.attempts, s.error.as_deref()))
        .collect()
}

async fn begin(ledger: &impl Ledger, id: &OrderId, step: &str) -> StepRecord {
    match ledger.begin_step(id, step).await {
        Ok(StepStart::Started(record)) => record,
        other => panic!("step {step} of order {id} did not start: {other:?}"),
    }
}

fn delivery(event_id: &str, shipment_id: &str) -> Delivery {
    Delivery {
        event_id: event_id.to_owned(),
        shipment_id: shipment_id.to_owned(),
        delivered_at: "2026-11-28T10:00:00.000Z".to_owned(),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn a_new_order_is_accepted_at_version_one_and_read_back_as_written(ledger: &impl Ledger) {
    let record = place(ledger).await;
    assert_eq!(record.status, OrderStatus::Accepted);
    assert_eq!(record.version, 1);
    assert_eq!(record.resumes, 0);
    let stored = ledger.get_order(&record.order_id).await;
    assert_eq!(stored, Ok(Some(record)));
}

pub async fn the_same_key_and_request_find_the_first_order(ledger: &impl Ledger) {
    let (key, order) = (new_key(), new_order());
    let Ok(Placement::Created(first)) = ledger.place_order(&caller(), &key, &order, "same").await
    else {
        panic!("the order was not created");
    };
    let again = ledger.place_order(&caller(), &key, &order, "same").await;
    assert_eq!(again, Ok(Placement::Replayed(first)));
    assert_eq!(orders_of(ledger, &order.merchant_id).await, 1);
}

/// How many orders the merchant has (the by-merchant listing, at most 10).
async fn orders_of(ledger: &impl Ledger, merchant_id: &str) -> usize {
    match ledger.orders_of_merchant(merchant_id, None, 10).await {
        Ok(orders) => orders.len(),
        Err(error) => panic!("listing the orders of {merchant_id}: {error}"),
    }
}

pub async fn the_same_key_with_another_request_is_reported_as_reused(ledger: &impl Ledger) {
    let (key, order) = (new_key(), new_order());
    let Ok(Placement::Created(first)) = ledger.place_order(&caller(), &key, &order, "a").await
    else {
        panic!("the order was not created");
    };
    let other = new_order();
    let again = ledger.place_order(&caller(), &key, &other, "b").await;
    assert_eq!(
        again,
        Ok(Placement::KeyReused {
            order_id: first.order_id
        })
    );
    assert_eq!(orders_of(ledger, &other.merchant_id).await, 0);
}

pub async fn concurrent_requests_with_one_key_create_exactly_one_order(ledger: &impl Ledger) {
    let (key, order) = (new_key(), new_order());
    let caller = caller();
    let outcomes =
        join_all((0..8).map(|_| ledger.place_order(&caller, &key, &order, "same"))).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for outcome in outcomes {
        match outcome {
            Ok(Placement::Created(record)) => {
                created += 1;
                ids.insert(record.order_id);
            }
            Ok(Placement::Replayed(record)) => {
                ids.insert(record.order_id);
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((ids.len(), created), (1, 1));
    assert_eq!(orders_of(ledger, &order.merchant_id).await, 1);
}

pub async fn a_status_change_bumps_the_version_and_lists_the_order_under_its_new_status(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    let moved = ledger
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Validated),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((moved.status, moved.version), (OrderStatus::Validated, 2));
    assert_eq!(read(ledger, &id).await, moved);
    let listed = ledger
        .orders_in_status(OrderStatus::Validated, None, 100_000)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        listed.iter().any(|order| order.order_id == id),
        "order {id} is not listed as VALIDATED"
    );
    let still_accepted = ledger
        .orders_in_status(OrderStatus::Accepted, None, 100_000)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !still_accepted.iter().any(|order| order.order_id == id),
        "order {id} is still listed as ACCEPTED"
    );
}

pub async fn a_status_change_from_a_status_the_order_has_left_is_a_conflict_and_changes_nothing(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    let result = ledger
        .transition(
            &id,
            Transition::new(OrderStatus::Validated, OrderStatus::StockReserved),
        )
        .await;
    assert_eq!(
        result.map(|r| r.status),
        Err(StoreError::Conflict {
            order_id: id.clone(),
            expected: OrderStatus::Validated,
            actual: OrderStatus::Accepted,
        })
    );
    let unchanged = read(ledger, &id).await;
    assert_eq!(
        (unchanged.status, unchanged.version),
        (OrderStatus::Accepted, 1)
    );
}

pub async fn an_illegal_transition_is_refused_before_anything_is_written(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let result = ledger
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Delivered),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::IllegalTransition { .. })),
        "{result:?}"
    );
    assert_eq!(read(ledger, &id).await.version, 1);
}

pub async fn changing_the_status_of_a_missing_order_says_it_does_not_exist(ledger: &impl Ledger) {
    let id = OrderId::generate();
    let result = ledger
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Validated),
        )
        .await;
    assert_eq!(
        result.map(|r| r.status),
        Err(StoreError::NotFound(id.clone()))
    );
    assert_eq!(ledger.get_order(&id).await, Ok(None));
}

pub async fn a_failure_given_with_a_status_change_is_kept_on_the_order(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let failure = super::Failure::from_catch("ValidateOrder", "States.Timeout", None);
    let moved = ledger
        .transition(
            &id,
            Transition::new(OrderStatus::Accepted, OrderStatus::Failed).because(Some(&failure)),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(moved.failure.as_ref(), Some(&failure));
    assert_eq!(read(ledger, &id).await.failure, Some(failure));
}

pub async fn a_step_that_succeeded_is_not_started_again(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let attempt = begin(ledger, &id, "ValidateOrder").await;
    assert_eq!(attempt.attempts, 1);
    let references = References::from([("checked".to_owned(), "yes".to_owned())]);
    let transition = Transition::new(OrderStatus::Accepted, OrderStatus::Validated);
    let done = ledger
        .succeed_step(&attempt, references.clone(), Some(transition))
        .await;
    assert_eq!(done.as_ref().map(|s| s.status), Ok(StepStatus::Succeeded));
    // What came back without a second read is what the ledger holds.
    let stored = ledger
        .get_order_with_steps(&id)
        .await
        .ok()
        .flatten()
        .map(|(_, steps)| steps);
    assert_eq!(
        stored.and_then(|steps| steps.into_iter().next()),
        done.clone().ok()
    );
    match ledger.begin_step(&id, "ValidateOrder").await {
        Ok(StepStart::AlreadySucceeded(record)) => {
            assert_eq!(record.attempts, 1);
            assert_eq!(record.references, references);
        }
        other => panic!("expected the recorded result, got {other:?}"),
    }
    assert_eq!(read(ledger, &id).await.status, OrderStatus::Validated);
}

pub async fn a_failed_step_is_retried_with_its_attempts_counted(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let error = ActivityError::new(ErrorName::PartnerUnavailable, "warehouse answered 503");
    for attempt in 1..=2 {
        let begun = begin(ledger, &id, "ReserveStock").await;
        assert_eq!(begun.attempts, attempt);
        assert_eq!(ledger.fail_step(&begun, &error).await, Ok(()));
    }
    assert_eq!(
        steps_summary(ledger, &id).await,
        [step_summary(
            "ReserveStock",
            StepStatus::Failed,
            2,
            Some("Partner.Unavailable")
        )]
    );
}

pub async fn concurrent_begins_of_one_step_count_every_attempt(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let started = join_all((0..4).map(|_| ledger.begin_step(&id, "ReserveStock"))).await;
    let mut attempts: Vec<u32> = started
        .into_iter()
        .map(|outcome| match outcome {
            Ok(StepStart::Started(record)) => record.attempts,
            other => panic!("a begin did not start the step: {other:?}"),
        })
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

pub async fn a_step_success_whose_status_change_conflicts_records_neither(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let attempt = begin(ledger, &id, "CompleteOrder").await;
    let wrong = Transition::new(OrderStatus::Validated, OrderStatus::StockReserved);
    let result = ledger
        .succeed_step(&attempt, References::new(), Some(wrong))
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Conflict {
                actual: OrderStatus::Accepted,
                ..
            })
        ),
        "{result:?}"
    );
    let Ok(Some((order, steps))) = ledger.get_order_with_steps(&id).await else {
        panic!("order {id} not found");
    };
    assert_eq!((order.status, order.version), (OrderStatus::Accepted, 1));
    assert_eq!(
        steps.iter().map(|s| s.status).collect::<Vec<_>>(),
        [StepStatus::Started]
    );
}

pub async fn a_step_that_succeeds_twice_keeps_its_first_result(ledger: &impl Ledger) {
    // Two runs of one step (an invocation retried while the first still ran) both began;
    // the second to finish gets the first one's result, and the order moved once.
    let id = place(ledger).await.order_id;
    let faster = begin(ledger, &id, "ReserveStock").await;
    let slower = begin(ledger, &id, "ReserveStock").await;
    let transition = Transition::new(OrderStatus::Accepted, OrderStatus::Validated);
    let first = References::from([("reservation_id".to_owned(), "res-1".to_owned())]);
    let second = References::from([("reservation_id".to_owned(), "res-2".to_owned())]);
    let done = ledger
        .succeed_step(&faster, first.clone(), Some(transition))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let again = ledger
        .succeed_step(&slower, second, Some(transition))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // The faster run's success, as stored: both attempts counted.
    assert_eq!((done.attempts, again.attempts), (1, 2));
    assert_eq!(
        again,
        StepRecord {
            attempts: 2,
            ..done
        }
    );
    assert_eq!(again.references, first);
    let order = read(ledger, &id).await;
    assert_eq!((order.status, order.version), (OrderStatus::Validated, 2));
}

pub async fn a_failure_recorded_after_a_success_leaves_the_success_standing(ledger: &impl Ledger) {
    // The slower of two runs of one step failed after the faster one succeeded: the step
    // stays SUCCEEDED, so a replay returns its result instead of acting again.
    let id = place(ledger).await.order_id;
    let slower = begin(ledger, &id, "ReserveStock").await;
    let attempt = begin(ledger, &id, "ReserveStock").await;
    let references = References::from([("reservation_id".to_owned(), "res-1".to_owned())]);
    ledger
        .succeed_step(&attempt, references.clone(), None)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let error = ActivityError::new(ErrorName::PartnerUnavailable, "timed out");
    assert_eq!(ledger.fail_step(&slower, &error).await, Ok(()));
    match ledger.begin_step(&id, "ReserveStock").await {
        Ok(StepStart::AlreadySucceeded(record)) => {
            assert_eq!(record.references, references);
            assert_eq!(record.error, None);
        }
        other => panic!("the success did not stand: {other:?}"),
    }
}

pub async fn a_step_begun_again_after_a_failure_shows_under_way_with_both_attempts(
    ledger: &impl Ledger,
) {
    // The view of a step whose retry is running: under way, both attempts counted, the
    // last failure still shown until the step ends again.
    let id = place(ledger).await.order_id;
    let first = begin(ledger, &id, "ReserveStock").await;
    let error = ActivityError::new(ErrorName::PartnerUnavailable, "timed out");
    assert_eq!(ledger.fail_step(&first, &error).await, Ok(()));
    let second = begin(ledger, &id, "ReserveStock").await;
    assert_eq!((second.status, second.attempts), (StepStatus::Started, 2));
    assert_eq!(second.started_at, first.started_at);
    assert_eq!(
        steps_summary(ledger, &id).await,
        [step_summary(
            "ReserveStock",
            StepStatus::Started,
            2,
            Some("Partner.Unavailable")
        )]
    );
}

pub async fn a_cancel_moves_an_order_that_has_not_shipped_to_cancelling_once(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    move_to(ledger, &id, OrderStatus::Accepted, OrderStatus::Validated).await;
    let first = ledger.cancel(&id).await;
    assert!(
        matches!(&first, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelling),
        "{first:?}"
    );
    let second = ledger.cancel(&id).await;
    assert!(
        matches!(&second, Ok(Cancellation::AlreadyCancelling(order)) if order.version == 3),
        "{second:?}"
    );
}

pub async fn a_cancel_before_anything_began_ends_the_order_at_once_with_its_event(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    let cancelled = ledger.cancel(&id).await;
    let ended = match cancelled {
        Ok(Cancellation::Started(order)) => order,
        other => panic!("cancelling order {id}: {other:?}"),
    };
    assert_eq!(
        (ended.status, ended.version),
        (OrderStatus::Cancelled, 2),
        "one write"
    );
    assert_eq!(read(ledger, &id).await, ended);
    let written = ledger.outbox(&id).await.unwrap_or_default();
    let statuses: Vec<OrderStatus> = written.iter().map(|e| e.detail.status).collect();
    assert_eq!(statuses, [OrderStatus::Accepted, OrderStatus::Cancelled]);
    assert_eq!(written[1].detail.occurred_at, ended.updated_at);
    let again = ledger.cancel(&id).await;
    assert!(
        matches!(&again, Ok(Cancellation::AlreadyCancelling(order)) if order.version == 2),
        "{again:?}"
    );
}

pub async fn a_cancel_after_a_step_began_or_an_execution_was_recorded_goes_through_cancelling(
    ledger: &impl Ledger,
) {
    // A step begun with no execution recorded: data from before executions were recorded
    // first, whose execution may run unrecorded.
    let begun = place(ledger).await.order_id;
    let started = ledger.begin_step(&begun, "ValidateOrder").await;
    assert!(started.is_ok(), "{started:?}");
    // An execution recorded, nothing begun yet: it is starting.
    let claimed = place(ledger).await.order_id;
    let arn = format!("arn:execution:{claimed}");
    let claim = super::Claim {
        read_status: OrderStatus::Accepted,
        read_resumes: 0,
        read_arn: None,
        resumes: 0,
        arn: &arn,
    };
    assert_eq!(ledger.claim_execution(&claimed, &claim).await, Ok(()));
    for id in [begun, claimed] {
        let cancelled = ledger.cancel(&id).await;
        assert!(
            matches!(&cancelled, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelling),
            "{cancelled:?}"
        );
        let written = ledger.outbox(&id).await.unwrap_or_default();
        assert_eq!(written.len(), 1, "no Order Cancelled yet: {written:?}");
    }
}

pub async fn a_cancel_after_shipping_is_too_late_and_changes_nothing(ledger: &impl Ledger) {
    let id = shipped(ledger, &unique("shp")).await;
    let before = read(ledger, &id).await;
    let result = ledger.cancel(&id).await;
    assert_eq!(result, Ok(Cancellation::TooLate(before.clone())));
    assert_eq!(read(ledger, &id).await, before);
    let missing = OrderId::generate();
    assert_eq!(
        ledger.cancel(&missing).await,
        Err(StoreError::NotFound(missing.clone()))
    );
}

pub async fn a_cancel_racing_the_workflow_to_shipment_lands_or_is_too_late_and_never_fails(
    ledger: &impl Ledger,
) {
    // A workflow moves the order to SHIPPED as fast as the ledger lets it; a cancel sent
    // after 0..8 reads of the order races it. The cancel lands (the workflow's next move
    // then finds the order CANCELLING) or finds the order SHIPPED: never an error, and
    // both sides agree on who won.
    for reads in 0..8 {
        let id = place(ledger).await.order_id;
        // Its execution is recorded before it starts, as every starter does.
        let arn = format!("arn:execution:{id}");
        let claim = super::Claim {
            read_status: OrderStatus::Accepted,
            read_resumes: 0,
            read_arn: None,
            resumes: 0,
            arn: &arn,
        };
        assert_eq!(ledger.claim_execution(&id, &claim).await, Ok(()));
        let workflow = async {
            for pair in OrderStatus::NEW_ORDER_PATH.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                if from == OrderStatus::Shipped {
                    break;
                }
                match ledger.transition(&id, Transition::new(from, to)).await {
                    Ok(_) => tokio::task::yield_now().await,
                    Err(StoreError::Conflict { actual, .. }) => return Err(actual),
                    Err(error) => panic!("moving order {id} {from} -> {to}: {error}"),
                }
            }
            Ok(OrderStatus::Shipped)
        };
        let cancel = async {
            for _ in 0..reads {
                read(ledger, &id).await;
                tokio::task::yield_now().await;
            }
            ledger.cancel(&id).await
        };
        let (moved, cancelled) = futures_util::join!(workflow, cancel);
        let stored = read(ledger, &id).await.status;
        match cancelled {
            Ok(Cancellation::Started(order)) => {
                assert_eq!(order.status, OrderStatus::Cancelling, "after {reads} reads");
                assert_eq!(moved, Err(OrderStatus::Cancelling), "after {reads} reads");
                assert_eq!(stored, OrderStatus::Cancelling, "after {reads} reads");
            }
            Ok(Cancellation::TooLate(order)) => {
                assert_eq!(order.status, OrderStatus::Shipped, "after {reads} reads");
                assert_eq!(moved, Ok(OrderStatus::Shipped), "after {reads} reads");
                assert_eq!(stored, OrderStatus::Shipped, "after {reads} reads");
            }
            other => panic!("a cancel after {reads} reads: {other:?}"),
        }
    }
}

pub async fn a_task_token_is_kept_only_while_the_order_is_shipped(ledger: &impl Ledger) {
    let not_shipped = place(ledger).await.order_id;
    let refused = ledger
        .store_task_token(&not_shipped, &unfenced("token-0"))
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                expected: OrderStatus::Shipped,
                actual: OrderStatus::Accepted,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(read(ledger, &not_shipped).await.task_token, None);
    let id = shipped(ledger, &unique("shp")).await;
    let version = read(ledger, &id).await.version;
    assert_eq!(
        ledger.store_task_token(&id, &unfenced("token-1")).await,
        Ok(TokenStored::Waiting)
    );
    let order = read(ledger, &id).await;
    assert_eq!(order.task_token.as_deref(), Some("token-1"));
    assert_eq!(order.version, version, "a token is not a status change");
}

/// A task token without its attempt (an execution of a definition that did not say).
fn unfenced(token: &str) -> super::TaskToken<'_> {
    super::TaskToken {
        token,
        attempt: None,
    }
}

/// The token `token` of AwaitDelivery's attempt `retry` in the execution `execution`,
/// first entry.
fn fenced<'a>(token: &'a str, execution: &'a str, retry: u32) -> super::TaskToken<'a> {
    after_waits(token, execution, 0, retry)
}

/// The token of attempt `retry` of the entry of AwaitDelivery after `waits` outage waits.
fn after_waits<'a>(
    token: &'a str,
    execution: &'a str,
    waits: u32,
    retry: u32,
) -> super::TaskToken<'a> {
    super::TaskToken {
        token,
        attempt: Some(super::Attempt {
            execution,
            outage_waits: waits,
            retry,
        }),
    }
}

pub async fn a_late_copy_of_an_older_attempt_never_replaces_a_newer_attempts_token(
    ledger: &impl Ledger,
) {
    let id = shipped(ledger, &unique("shp")).await;
    let first = id.to_string();
    let resumed = format!("{id}-r2");
    // Attempt 0 of the first execution, then its retry 1.
    for (token, execution, retry) in [("t-0-0", &first, 0), ("t-0-1", &first, 1)] {
        assert_eq!(
            ledger
                .store_task_token(&id, &fenced(token, execution, retry))
                .await,
            Ok(TokenStored::Waiting)
        );
    }
    // Attempt 0's late copy: refused, the retry's token stays.
    assert_eq!(
        ledger
            .store_task_token(&id, &fenced("t-0-0", &first, 0))
            .await,
        Ok(TokenStored::Superseded)
    );
    assert_eq!(read(ledger, &id).await.task_token.as_deref(), Some("t-0-1"));
    // The same attempt again (Lambda's own retry of the invocation): the same token.
    assert_eq!(
        ledger
            .store_task_token(&id, &fenced("t-0-1", &first, 1))
            .await,
        Ok(TokenStored::Waiting)
    );
    // Entered again after an outage wait, the retry count starts again: its first
    // attempt is newer than every retry of the entry before (found by the simulator,
    // seed 6 of 1,000 orders with late copies and our infrastructure's faults).
    assert_eq!(
        ledger
            .store_task_token(&id, &after_waits("t-0-w1-0", &first, 1, 0))
            .await,
        Ok(TokenStored::Waiting)
    );
    assert_eq!(
        ledger
            .store_task_token(&id, &fenced("t-0-4", &first, 4))
            .await,
        Ok(TokenStored::Superseded)
    );
    // A resumed execution's first attempt is newer than any retry of the first's.
    assert_eq!(
        ledger
            .store_task_token(&id, &fenced("t-2-0", &resumed, 0))
            .await,
        Ok(TokenStored::Waiting)
    );
    assert_eq!(
        ledger
            .store_task_token(&id, &fenced("t-0-7", &first, 7))
            .await,
        Ok(TokenStored::Superseded)
    );
    // An attempt that does not say which it is never replaces one that did.
    assert_eq!(
        ledger.store_task_token(&id, &unfenced("t-old")).await,
        Ok(TokenStored::Superseded)
    );
    assert_eq!(read(ledger, &id).await.task_token.as_deref(), Some("t-2-0"));
    // An unfenced token (stored by an older definition) is replaced by a fenced one.
    let old = shipped(ledger, &unique("shp")).await;
    assert_eq!(
        ledger.store_task_token(&old, &unfenced("t-old")).await,
        Ok(TokenStored::Waiting)
    );
    let name = old.to_string();
    assert_eq!(
        ledger
            .store_task_token(&old, &fenced("t-new", &name, 0))
            .await,
        Ok(TokenStored::Waiting)
    );
    assert_eq!(
        read(ledger, &old).await.task_token.as_deref(),
        Some("t-new")
    );
}

/// The `Order Delivered` the webhook writes with `delivery` of the order `id`.
pub async fn delivered_event(
    ledger: &impl Ledger,
    id: &OrderId,
    delivery: &Delivery,
) -> crate::events::OrderEvent {
    let mut order = read(ledger, id).await;
    order.delivery = Some(delivery.clone());
    match crate::events::OrderEvent::delivered(&order) {
        Some(event) => event,
        None => panic!("no delivered event for {id}"),
    }
}

/// The event ids the order's outbox holds.
pub async fn outbox_ids(ledger: &impl Ledger, id: &OrderId) -> Vec<String> {
    match ledger.outbox(id).await {
        Ok(events) => events.into_iter().map(|e| e.detail.event_id).collect(),
        Err(error) => panic!("the outbox of {id}: {error}"),
    }
}

pub async fn a_delivery_moves_a_shipped_order_once_and_a_replayed_event_changes_nothing(
    ledger: &impl Ledger,
) {
    let shipment = unique("shp");
    let id = shipped(ledger, &shipment).await;
    let event = delivery(&unique("evt"), &shipment);
    let announced = delivered_event(ledger, &id, &event).await;
    let recorded = ledger.record_delivery(&id, &event, &announced).await;
    let Ok(DeliveryRecorded::Now(order)) = recorded else {
        panic!("the delivery was not recorded: {recorded:?}");
    };
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.delivery.as_ref(), Some(&event));
    let Ok(Some((stored, steps))) = ledger.get_order_with_steps(&id).await else {
        panic!("order {id} not found");
    };
    assert_eq!(stored, order);
    let awaited = steps.iter().find(|s| s.step == AWAIT_DELIVERY.name);
    assert_eq!(
        awaited.map(|s| (s.status, s.references.get("event_id"))),
        Some((StepStatus::Succeeded, Some(&event.event_id)))
    );
    assert_eq!(
        outbox_ids(ledger, &id).await,
        [format!("{id}/ACCEPTED"), format!("{id}/DELIVERED")],
        "the placement's and the delivery's events, each written with its change"
    );
    let written = ledger.outbox(&id).await.unwrap_or_default();
    assert_eq!(written.last(), Some(&announced), "as the webhook built it");
    let replayed = ledger.record_delivery(&id, &event, &announced).await;
    assert_eq!(replayed, Ok(DeliveryRecorded::Duplicate(order.clone())));
    let another_event = delivery(&unique("evt"), &shipment);
    let another = delivered_event(ledger, &id, &another_event).await;
    let again = ledger.record_delivery(&id, &another_event, &another).await;
    assert_eq!(again, Ok(DeliveryRecorded::Before(order.clone())));
    assert_eq!(read(ledger, &id).await, order);
    assert_eq!(
        ledger.outbox(&id).await.unwrap_or_default(),
        written,
        "a refused delivery writes no event"
    );
}

pub async fn an_event_id_a_courier_reuses_for_another_order_is_recorded_for_that_order(
    ledger: &impl Ledger,
) {
    // One courier event id, two orders' parcels: each order's delivery is its own.
    let event_id = unique("evt");
    for _ in 0..2 {
        let shipment = unique("shp");
        let id = shipped(ledger, &shipment).await;
        let event = delivery(&event_id, &shipment);
        let announced = delivered_event(ledger, &id, &event).await;
        let recorded = ledger.record_delivery(&id, &event, &announced).await;
        assert!(
            matches!(&recorded, Ok(DeliveryRecorded::Now(order)) if order.status == OrderStatus::Delivered),
            "{recorded:?}"
        );
    }
}

pub async fn a_delivery_during_a_rollback_that_has_not_cancelled_the_shipment_stops_it(
    ledger: &impl Ledger,
) {
    // The delivery timeout began the rollback (SHIPPED -> COMPENSATING); CancelShipment
    // has not succeeded yet. The courier's delivery arrives: the order is DELIVERED.
    let shipment = unique("shp");
    let id = shipped(ledger, &shipment).await;
    move_to(ledger, &id, OrderStatus::Shipped, OrderStatus::Compensating).await;
    begin(ledger, &id, "CancelShipment").await;
    let event = delivery(&unique("evt"), &shipment);
    let announced = delivered_event(ledger, &id, &event).await;
    let recorded = ledger.record_delivery(&id, &event, &announced).await;
    let Ok(DeliveryRecorded::Now(order)) = recorded else {
        panic!("the delivery was not recorded: {recorded:?}");
    };
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.delivery.as_ref(), Some(&event));
    assert_eq!(order.parked, None);
    assert_eq!(
        outbox_ids(ledger, &id).await,
        [format!("{id}/ACCEPTED"), format!("{id}/DELIVERED")]
    );
}

pub async fn a_delivery_after_the_shipment_was_cancelled_is_recorded_and_parks_the_order_once(
    ledger: &impl Ledger,
) {
    // The courier confirmed the cancellation (CancelShipment succeeded), then delivered
    // after all: both facts go to a person; the rollback's status is left alone.
    let shipment = unique("shp");
    let id = shipped(ledger, &shipment).await;
    move_to(ledger, &id, OrderStatus::Shipped, OrderStatus::Compensating).await;
    let cancelled = begin(ledger, &id, "CancelShipment").await;
    let succeeded = ledger
        .succeed_step(&cancelled, References::new(), None)
        .await;
    assert!(succeeded.is_ok(), "{succeeded:?}");
    let before = read(ledger, &id).await;
    let event = delivery(&unique("evt"), &shipment);
    let announced = delivered_event(ledger, &id, &event).await;
    let recorded = ledger.record_delivery(&id, &event, &announced).await;
    let Ok(DeliveryRecorded::AfterRollback(order)) = recorded else {
        panic!("the late delivery was not recorded: {recorded:?}");
    };
    assert_eq!(order.status, OrderStatus::Compensating, "not moved");
    assert_eq!(order.version, before.version, "not a status change");
    assert_eq!(order.delivery.as_ref(), Some(&event));
    let reason = order
        .parked
        .as_ref()
        .map(|p| p.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.contains(&shipment) && reason.contains(&event.event_id),
        "{reason}"
    );
    assert_eq!(
        outbox_ids(ledger, &id).await,
        [format!("{id}/ACCEPTED"), format!("{id}/NEEDS_OPERATOR/0")],
        "the park's event, not a delivery's"
    );
    // The courier sends it again: a duplicate, parked once.
    let again = ledger.record_delivery(&id, &event, &announced).await;
    assert!(
        matches!(&again, Ok(DeliveryRecorded::Duplicate(_))),
        "{again:?}"
    );
    assert_eq!(read(ledger, &id).await, order);
    // Another shipment's event: refused, nothing recorded.
    let stranger = delivery(&unique("evt"), &unique("shp"));
    let refused = ledger.record_delivery(&id, &stranger, &announced).await;
    assert!(
        !matches!(
            &refused,
            Ok(DeliveryRecorded::AfterRollback(_) | DeliveryRecorded::Now(_))
        ),
        "{refused:?}"
    );
    assert_eq!(read(ledger, &id).await, order);
}

pub async fn a_delivery_for_another_shipment_is_refused_and_changes_nothing(ledger: &impl Ledger) {
    let id = shipped(ledger, &unique("shp")).await;
    let before = ledger.get_order_with_steps(&id).await;
    let wrong = delivery(&unique("evt"), &unique("shp-other"));
    let announced = delivered_event(ledger, &id, &wrong).await;
    assert_eq!(
        ledger.record_delivery(&id, &wrong, &announced).await,
        Ok(DeliveryRecorded::WrongShipment)
    );
    assert_eq!(ledger.get_order_with_steps(&id).await, before);
    assert_eq!(outbox_ids(ledger, &id).await, [format!("{id}/ACCEPTED")]);
    let not_shipped = place(ledger).await.order_id;
    let early_delivery = delivery(&unique("evt"), "shp-x");
    let announced = delivered_event(ledger, &not_shipped, &early_delivery).await;
    let early = ledger
        .record_delivery(&not_shipped, &early_delivery, &announced)
        .await;
    assert!(
        matches!(
            early,
            Err(StoreError::Conflict {
                actual: OrderStatus::Accepted,
                ..
            })
        ),
        "{early:?}"
    );
}

pub async fn a_delivery_before_the_task_token_is_reported_to_the_waiting_step(
    ledger: &impl Ledger,
) {
    let shipment = unique("shp");
    let id = shipped(ledger, &shipment).await;
    let event = delivery(&unique("evt"), &shipment);
    let announced = delivered_event(ledger, &id, &event).await;
    let Ok(DeliveryRecorded::Now(delivered)) =
        ledger.record_delivery(&id, &event, &announced).await
    else {
        panic!("the delivery was not recorded");
    };
    let late = ledger.store_task_token(&id, &unfenced("token-late")).await;
    assert_eq!(late, Ok(TokenStored::AlreadyDelivered(Box::new(delivered))));
}

pub async fn a_park_holds_only_on_the_order_as_read_and_a_claim_clears_it(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let as_read = read(ledger, &id).await;
    let needs_operator = crate::events::OrderEvent::needs_operator(&as_read, "resumed too often");
    assert_eq!(
        ledger
            .park(&as_read, "resumed too often", &needs_operator)
            .await,
        Ok(())
    );
    assert_eq!(
        outbox_ids(ledger, &id).await,
        [format!("{id}/ACCEPTED"), format!("{id}/NEEDS_OPERATOR/0")],
        "the park writes its event with it"
    );
    let parked = read(ledger, &id).await;
    assert_eq!(
        parked
            .parked
            .as_ref()
            .map(|p| (p.reason.as_str(), p.letter_pending)),
        Some(("resumed too often", true))
    );
    assert_eq!(parked.version, as_read.version, "not a status change");
    // A second run that read it before the first parked it: parked once.
    assert_eq!(
        ledger.park(&as_read, "again", &needs_operator).await,
        Err(StoreError::Changed {
            order_id: id.clone(),
            read_version: as_read.version,
        })
    );
    assert_eq!(ledger.dead_letter_sent(&id).await, Ok(()));
    let parked = read(ledger, &id).await;
    assert_eq!(
        parked
            .parked
            .as_ref()
            .map(|p| (p.reason.as_str(), p.letter_pending)),
        Some(("resumed too often", false))
    );
    // An operator resumes it: the claim clears the mark and bumps the version.
    let arn = format!("arn:execution:{id}-r1");
    let claim = super::Claim {
        read_status: parked.status,
        read_resumes: 0,
        read_arn: None,
        resumes: 1,
        arn: &arn,
    };
    assert_eq!(ledger.claim_execution(&id, &claim).await, Ok(()));
    let resumed = read(ledger, &id).await;
    assert_eq!((resumed.resumes, resumed.parked.clone()), (1, None));
    // A reconciler that read it before the resume (a stale index copy) parks nothing.
    assert_eq!(
        ledger.park(&parked, "stale", &needs_operator).await,
        Err(StoreError::Changed {
            order_id: id.clone(),
            read_version: parked.version,
        })
    );
    assert_eq!(read(ledger, &id).await, resumed, "nothing written");
    let mut missing = resumed.clone();
    missing.order_id = OrderId::generate();
    assert_eq!(
        ledger.park(&missing, "x", &needs_operator).await,
        Err(StoreError::NotFound(missing.order_id.clone()))
    );
    assert_eq!(
        outbox_ids(ledger, &missing.order_id).await,
        Vec::<String>::new()
    );
}

pub async fn a_merchants_orders_and_orders_by_status_are_listed_oldest_first(ledger: &impl Ledger) {
    let order = new_order();
    let mut placed = Vec::new();
    for _ in 0..3 {
        match ledger.place_order(&caller(), &new_key(), &order, "h").await {
            Ok(Placement::Created(record)) => placed.push(record),
            other => panic!("expected a new order, got {other:?}"),
        }
        // Creation times are kept to the millisecond: keep them apart.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let ids: Vec<_> = placed.iter().map(|r| r.order_id.clone()).collect();
    let listed = ledger
        .orders_of_merchant(&order.merchant_id, None, 10)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        listed.iter().map(|r| &r.order_id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    let limited = ledger
        .orders_of_merchant(&order.merchant_id, None, 2)
        .await
        .map(|orders| orders.len());
    assert_eq!(limited, Ok(2));
    let since = ledger
        .orders_of_merchant(&order.merchant_id, Some(&placed[1].created_at), 10)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        since.iter().map(|r| &r.order_id).collect::<Vec<_>>(),
        ids[1..].iter().collect::<Vec<_>>()
    );
    // Orders that changed before a time: the first two, moved in order.
    for id in &ids[..2] {
        move_to(ledger, id, OrderStatus::Accepted, OrderStatus::Validated).await;
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let cutoff = super::now();
    let stale = ledger
        .orders_in_status(OrderStatus::Validated, Some(&cutoff), 100_000)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let ours: Vec<_> = stale
        .iter()
        .map(|r| &r.order_id)
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(ours, ids[..2].iter().collect::<Vec<_>>());
}

pub async fn orders_in_a_status_are_listed_from_just_after_a_place_in_the_index_and_below_the_cutoff(
    ledger: &impl Ledger,
) {
    let mut moved = Vec::new();
    for _ in 0..4 {
        let id = place(ledger).await.order_id;
        let change = Transition::new(OrderStatus::Accepted, OrderStatus::Validated);
        let record = ledger.transition(&id, change).await;
        moved.push(record.unwrap_or_else(|error| panic!("moving {id}: {error}")));
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // The first three changed before the cutoff, the fourth after it.
    let cutoff = moved[3].updated_at.clone();
    let ids: Vec<&OrderId> = moved.iter().map(|order| &order.order_id).collect();
    let listed = |after: String, before: Option<String>, limit: usize| async move {
        let orders = ledger
            .orders_in_status_after(OrderStatus::Validated, &after, before.as_deref(), limit)
            .await
            .unwrap_or_else(|error| panic!("listing after {after}: {error}"));
        let keys: Vec<String> = orders.iter().map(|o| IndexPosition::of(o).key).collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]) && keys.iter().all(|k| *k > after),
            "oldest first, all after {after}: {keys:?}"
        );
        orders
    };
    let ours = |orders: Vec<OrderRecord>| -> Vec<OrderId> {
        (orders.into_iter().map(|order| order.order_id))
            .filter(|id| ids.contains(&id))
            .collect()
    };
    let first = IndexPosition::of(&moved[0]).key;
    let between = listed(first.clone(), Some(cutoff.clone()), 100_000).await;
    assert_eq!(ours(between), [ids[1].clone(), ids[2].clone()]);
    let open_ended = listed(IndexPosition::of(&moved[2]).key, None, 100_000).await;
    assert_eq!(ours(open_ended), [ids[3].clone()]);
    assert_eq!(listed(first.clone(), None, 1).await.len(), 1);
    // A place at or past the cutoff: nothing, not an error.
    let past = listed(IndexPosition::of(&moved[3]).key, Some(cutoff), 100_000).await;
    assert!(past.is_empty(), "{past:?}");
}

pub async fn a_reconcilers_cursor_is_kept_under_its_name_until_cleared(ledger: &impl Ledger) {
    let (name, other) = (unique("reconciler"), unique("reconciler"));
    let cursor = |name: String| async move {
        ledger
            .reconcile_cursor(&name)
            .await
            .unwrap_or_else(|error| panic!("reading cursor {name}: {error}"))
    };
    let set = |name: String, position: Option<IndexPosition>| async move {
        ledger
            .set_reconcile_cursor(&name, position.as_ref())
            .await
            .unwrap_or_else(|error| panic!("setting cursor {name}: {error}"))
    };
    assert_eq!(cursor(name.clone()).await, None);
    let order = place(ledger).await;
    let here = IndexPosition::of(&order);
    set(name.clone(), Some(here.clone())).await;
    assert_eq!(cursor(name.clone()).await, Some(here.clone()));
    assert_eq!(cursor(other.clone()).await, None, "each name its own");
    let there = IndexPosition {
        status: OrderStatus::Shipped,
        key: format!("{}#later", order.updated_at),
    };
    set(name.clone(), Some(there.clone())).await;
    assert_eq!(cursor(name.clone()).await, Some(there));
    set(name.clone(), None).await;
    assert_eq!(cursor(name.clone()).await, None);
    set(name.clone(), None).await;
    assert_eq!(cursor(name).await, None, "clearing twice is no error");
}

/// The orders the ledger finds for `value`.
async fn found(ledger: &impl Ledger, reference: Reference, value: &str) -> Vec<OrderId> {
    ledger
        .find_by_reference(reference, value)
        .await
        .unwrap_or_else(|error| panic!("finding {reference} {value}: {error}"))
}

pub async fn a_tracking_number_and_terminal_serials_recorded_by_their_steps_find_their_order(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    let (first, second, tracking) = (unique("T"), unique("T"), unique("TRK"));
    advance(ledger, &id, OrderStatus::PaymentTaken, "unused").await;
    let serials = format!("{first},{second}");
    let references = References::from([("terminal_ids".to_owned(), serials)]);
    let (from, to) = (OrderStatus::PaymentTaken, OrderStatus::Provisioned);
    succeed_moving(ledger, &id, PROVISION_TERMINALS.name, references, from, to).await;
    for serial in [&first, &second] {
        let orders = found(ledger, Reference::TerminalSerial, serial).await;
        assert_eq!(orders, std::slice::from_ref(&id), "serial {serial}");
    }
    let references = References::from([
        ("shipment_id".to_owned(), unique("shp")),
        ("tracking_number".to_owned(), tracking.clone()),
    ]);
    let (from, to) = (OrderStatus::Provisioned, OrderStatus::Shipped);
    succeed_moving(ledger, &id, ARRANGE_SHIPMENT.name, references, from, to).await;
    assert_eq!(
        found(ledger, Reference::TrackingNumber, &tracking).await,
        std::slice::from_ref(&id)
    );
    // A tracking number is not a serial: each kind has its own lookups.
    assert_eq!(
        found(ledger, Reference::TerminalSerial, &tracking).await,
        []
    );
    // Lookups are items of their own: the order and its steps read as before.
    let steps = steps_summary(ledger, &id).await;
    assert_eq!(steps.len(), 2, "{steps:?}");
}

pub async fn a_reference_no_successful_step_recorded_finds_nothing(ledger: &impl Ledger) {
    let id = place(ledger).await.order_id;
    let tracking = unique("TRK");
    // A success whose status change conflicts records neither the step nor its lookups.
    let attempt = begin(ledger, &id, ARRANGE_SHIPMENT.name).await;
    let references = References::from([("tracking_number".to_owned(), tracking.clone())]);
    let wrong = Transition::new(OrderStatus::Provisioned, OrderStatus::Shipped);
    let refused = ledger.succeed_step(&attempt, references, Some(wrong)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    // A failed attempt records no reference either.
    let error = ActivityError::new(ErrorName::ShipmentRejected, "undeliverable");
    assert_eq!(ledger.fail_step(&attempt, &error).await, Ok(()));
    assert_eq!(
        found(ledger, Reference::TrackingNumber, &tracking).await,
        []
    );
    assert_eq!(
        found(ledger, Reference::TerminalSerial, &unique("T")).await,
        []
    );
}

pub async fn orders_are_counted_in_their_status(ledger: &impl Ledger) {
    let count = |status| async move {
        ledger
            .count_in_status(status)
            .await
            .unwrap_or_else(|error| panic!("counting {status} orders: {error}"))
    };
    // Other checks place orders meanwhile: the counts only grow by at least ours.
    let before = count(OrderStatus::Rejected).await;
    for _ in 0..3 {
        let id = place(ledger).await.order_id;
        move_to(ledger, &id, OrderStatus::Accepted, OrderStatus::Rejected).await;
    }
    let after = count(OrderStatus::Rejected).await;
    assert!(
        after >= before + 3,
        "{before} REJECTED orders, then {after}"
    );
    let listed = ledger
        .orders_in_status(OrderStatus::Rejected, None, usize::MAX)
        .await
        .map(|orders| orders.len())
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(listed >= 3 && listed <= count(OrderStatus::Rejected).await);
}

pub async fn audit_records_are_kept_on_their_order_oldest_first_and_change_nothing_else(
    ledger: &(impl Ledger + AuditTrail),
) {
    let id = place(ledger).await.order_id;
    let before = ledger.get_order_with_steps(&id).await;
    let entries = [
        (
            AuditEntry {
                who: "arn:aws:iam::123456789012:user/ops",
                label: None,
                action: "cancel",
            },
            "refused: already CANCELLED",
        ),
        (
            AuditEntry {
                who: "arn:aws:sts::123456789012:assumed-role/ops/alice",
                label: Some("alice"),
                action: "resume",
            },
            "resumed as ord-x-r1",
        ),
    ];
    let mut written = Vec::new();
    for (entry, outcome) in &entries {
        let begun = ledger
            .begin_audit(&id, entry)
            .await
            .unwrap_or_else(|error| panic!("recording {entry:?}: {error}"));
        assert_eq!(
            (
                begun.who.as_str(),
                begun.label.as_deref(),
                begun.action.as_str(),
                begun.outcome.as_deref()
            ),
            (entry.who, entry.label, entry.action, None),
            "a begun record has no outcome yet"
        );
        ledger
            .finish_audit(&begun, outcome)
            .await
            .unwrap_or_else(|error| panic!("finishing {entry:?}: {error}"));
        // A second outcome never replaces the first.
        ledger
            .finish_audit(&begun, "something else")
            .await
            .unwrap_or_else(|error| panic!("finishing {entry:?} again: {error}"));
        written.push((
            begun.key.clone(),
            entry.who,
            entry.action,
            Some((*outcome).to_owned()),
        ));
    }
    let trail = ledger
        .audit_trail(&id)
        .await
        .unwrap_or_else(|error| panic!("reading the trail: {error}"));
    let read: Vec<_> = trail
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.who.as_str(),
                r.action.as_str(),
                r.outcome.clone(),
            )
        })
        .collect();
    assert_eq!(read, written, "oldest first, each finished once");
    assert!(trail.iter().all(|r| r.finished_at.is_some()));
    assert_eq!(ledger.get_order_with_steps(&id).await, before);
    let other = place(ledger).await.order_id;
    assert_eq!(ledger.audit_trail(&other).await, Ok(Vec::new()));
}

pub async fn an_audit_record_for_a_missing_order_is_refused(ledger: &(impl Ledger + AuditTrail)) {
    let missing = OrderId::generate();
    let entry = AuditEntry {
        who: "ops",
        label: None,
        action: "cancel",
    };
    assert_eq!(
        ledger.begin_audit(&missing, &entry).await.map(|_| ()),
        Err(StoreError::NotFound(missing.clone()))
    );
    assert_eq!(ledger.audit_trail(&missing).await, Ok(Vec::new()));
}

pub async fn an_action_is_recorded_before_it_is_taken_and_an_unwritable_record_stops_it(
    ledger: &(impl Ledger + AuditTrail),
) {
    let id = place(ledger).await.order_id;
    let entry = AuditEntry {
        who: "arn:aws:iam::123456789012:user/ops",
        label: None,
        action: "cancel",
    };
    // While the action runs, its record is already there, without an outcome: a process
    // that stopped here would leave exactly this.
    let seen_during = audited(
        ledger,
        &id,
        &entry,
        async {
            let trail = ledger.audit_trail(&id).await;
            Ok::<_, StoreError>(
                trail.map(|t| t.iter().map(|r| r.outcome.clone()).collect::<Vec<_>>()),
            )
        },
        |_| "done".to_owned(),
    )
    .await;
    assert_eq!(seen_during, Ok(Ok(Ok(vec![None]))));
    let trail = ledger.audit_trail(&id).await.unwrap_or_default();
    assert_eq!(
        trail
            .iter()
            .map(|r| r.outcome.as_deref())
            .collect::<Vec<_>>(),
        [Some("done")]
    );
    // No order, no record: the action is never taken.
    let missing = OrderId::generate();
    let mut taken = false;
    let refused = audited(
        ledger,
        &missing,
        &entry,
        async {
            taken = true;
            Ok::<(), StoreError>(())
        },
        |_| String::new(),
    )
    .await;
    assert_eq!(refused, Err(StoreError::NotFound(missing)));
    assert!(!taken, "the action ran without its record");
}

pub async fn a_step_writes_its_event_in_its_success_transaction_once_and_a_refused_change_writes_none(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    advance(ledger, &id, OrderStatus::Provisioned, "").await;
    let order = read(ledger, &id).await;
    let references = References::from([
        ("shipment_id".to_owned(), unique("shp")),
        ("tracking_number".to_owned(), unique("TRK")),
    ]);
    let shipped =
        crate::events::OrderEvent::after_change(&order, OrderStatus::Shipped, None, &references);
    // A change from a status the order is not in is refused, its event with it.
    let attempt = begin(ledger, &id, ARRANGE_SHIPMENT.name).await;
    let wrong = Transition::new(OrderStatus::Validated, OrderStatus::StockReserved)
        .announcing(shipped.as_ref());
    let refused = ledger
        .succeed_step(&attempt, references.clone(), Some(wrong))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(outbox_ids(ledger, &id).await, [format!("{id}/ACCEPTED")]);

    let attempt = begin(ledger, &id, ARRANGE_SHIPMENT.name).await;
    let change = Transition::new(OrderStatus::Provisioned, OrderStatus::Shipped)
        .announcing(shipped.as_ref());
    let record = ledger
        .succeed_step(&attempt, references.clone(), Some(change))
        .await;
    let record = record.unwrap_or_else(|error| panic!("ArrangeShipment of {id}: {error}"));
    let written = ledger.outbox(&id).await.unwrap_or_default();
    let ids: Vec<&str> = written.iter().map(|e| e.detail.event_id.as_str()).collect();
    assert_eq!(ids, [format!("{id}/ACCEPTED"), format!("{id}/SHIPPED")]);
    let event = &written[1];
    assert_eq!(event.lifecycle, crate::events::Lifecycle::Shipped);
    assert_eq!(event.detail.status, OrderStatus::Shipped);
    assert_eq!(
        event.detail.tracking_number.as_deref(),
        references.get("tracking_number").map(String::as_str)
    );
    assert_eq!(
        Some(event.detail.occurred_at.as_str()),
        record.finished_at.as_deref(),
        "stamped with the time the ledger recorded the change"
    );
    // Run again (a replay, a late duplicate): the step stands, nothing more is written.
    let again = ledger.begin_step(&id, ARRANGE_SHIPMENT.name).await;
    assert!(
        matches!(again, Ok(StepStart::AlreadySucceeded(_))),
        "{again:?}"
    );
    assert_eq!(ledger.outbox(&id).await.unwrap_or_default(), written);
}

pub async fn a_status_change_alone_writes_its_event_with_it_and_a_conflict_writes_none(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    move_to(ledger, &id, OrderStatus::Accepted, OrderStatus::Cancelling).await;
    let order = read(ledger, &id).await;
    let cancelled = crate::events::OrderEvent::after_change(
        &order,
        OrderStatus::Cancelled,
        None,
        &References::new(),
    );
    let stale = Transition::new(OrderStatus::Accepted, OrderStatus::Validated)
        .announcing(cancelled.as_ref());
    let conflict = ledger.transition(&id, stale).await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert_eq!(outbox_ids(ledger, &id).await, [format!("{id}/ACCEPTED")]);
    let change = Transition::new(OrderStatus::Cancelling, OrderStatus::Cancelled)
        .announcing(cancelled.as_ref());
    let moved = ledger.transition(&id, change).await;
    let moved = moved.unwrap_or_else(|error| panic!("cancel of {id}: {error}"));
    let written = ledger.outbox(&id).await.unwrap_or_default();
    assert_eq!(
        written.iter().map(|e| e.lifecycle).collect::<Vec<_>>(),
        [
            crate::events::Lifecycle::Accepted,
            crate::events::Lifecycle::Cancelled
        ]
    );
    assert_eq!(written[1].detail.status, OrderStatus::Cancelled);
    assert_eq!(
        written[1].detail.occurred_at, moved.updated_at,
        "stamped with the time the ledger recorded the change"
    );
}

pub async fn of_starters_racing_from_one_read_exactly_one_claims_the_order_and_the_others_learn_who(
    ledger: &impl Ledger,
) {
    let id = place(ledger).await.order_id;
    let first = format!("arn:execution:{id}");
    let claim = super::Claim {
        read_status: OrderStatus::Accepted,
        read_resumes: 0,
        read_arn: None,
        resumes: 0,
        arn: &first,
    };
    assert_eq!(ledger.claim_execution(&id, &claim).await, Ok(()));
    let order = read(ledger, &id).await;
    assert_eq!(order.execution_arn.as_deref(), Some(first.as_str()));
    assert_eq!(
        (order.resumes, order.version),
        (0, 2),
        "not a status change"
    );
    // The same claim again (a retry that read the order before): the order is claimed.
    assert_eq!(
        ledger.claim_execution(&id, &claim).await,
        Err(StoreError::Claimed {
            order_id: id.clone(),
            execution_arn: Some(first.clone())
        })
    );
    // Resumers racing from one read: every one of them asks to be `-r1`, one wins.
    let names: Vec<String> = (0..5)
        .map(|n| format!("arn:execution:{id}-r1-{n}"))
        .collect();
    let (id_ref, first_ref) = (&id, first.as_str());
    let claims = names.iter().map(|arn| async move {
        let claim = super::Claim {
            read_status: OrderStatus::Accepted,
            read_resumes: 0,
            read_arn: Some(first_ref),
            resumes: 1,
            arn,
        };
        ledger.claim_execution(id_ref, &claim).await
    });
    let results = join_all(claims).await;
    let won: Vec<&String> = (names.iter().zip(&results))
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(won.len(), 1, "exactly one claim wins: {results:?}");
    let order = read(ledger, &id).await;
    assert_eq!(order.execution_arn.as_ref(), Some(won[0]));
    assert_eq!(order.resumes, 1);
    for result in results.iter().filter(|r| r.is_err()) {
        assert_eq!(
            result,
            &Err(StoreError::Claimed {
                order_id: id.clone(),
                execution_arn: Some(won[0].clone())
            }),
            "a loser learns the execution that won"
        );
    }
    let missing = OrderId::generate();
    assert_eq!(
        ledger.claim_execution(&missing, &claim).await,
        Err(StoreError::NotFound(missing.clone()))
    );
}

pub async fn an_order_that_has_ended_is_never_claimed_again(ledger: &impl Ledger) {
    // Cancelled before anything began: a start that read it ACCEPTED must not drive it.
    let id = place(ledger).await.order_id;
    let cancelled = ledger.cancel(&id).await;
    assert!(
        matches!(&cancelled, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelled),
        "{cancelled:?}"
    );
    let arn = format!("arn:execution:{id}");
    let claim = super::Claim {
        read_status: OrderStatus::Accepted,
        read_resumes: 0,
        read_arn: None,
        resumes: 0,
        arn: &arn,
    };
    assert_eq!(
        ledger.claim_execution(&id, &claim).await,
        Err(StoreError::Conflict {
            order_id: id.clone(),
            expected: OrderStatus::Accepted,
            actual: OrderStatus::Cancelled,
        })
    );
    assert_eq!(
        read(ledger, &id).await.execution_arn,
        None,
        "nothing recorded"
    );
}

pub async fn one_key_sent_by_two_callers_places_two_orders_each_recording_its_caller(
    ledger: &impl Ledger,
) {
    let (key, order) = (new_key(), new_order());
    let (portal, app) = (principal(&unique("portal")), principal(&unique("app")));
    let Ok(Placement::Created(first)) = ledger.place_order(&portal, &key, &order, "same").await
    else {
        panic!("the portal's order was not created");
    };
    let Ok(Placement::Created(second)) = ledger.place_order(&app, &key, &order, "same").await
    else {
        panic!("the app's order was not created: one caller's key found another's order");
    };
    assert_ne!(first.order_id, second.order_id);
    assert_eq!(
        read(ledger, &first.order_id).await.placed_by,
        Some(portal.clone())
    );
    assert_eq!(read(ledger, &second.order_id).await.placed_by, Some(app));
    // Each caller's retry finds its own order.
    let again = ledger.place_order(&portal, &key, &order, "same").await;
    assert_eq!(again, Ok(Placement::Replayed(first)));
    assert_eq!(orders_of(ledger, &order.merchant_id).await, 2);
}

pub async fn a_callers_scope_is_set_replaced_and_removed_and_each_change_is_audited_with_who_made_it(
    ledger: &(impl Ledger + Callers),
) {
    let caller = principal(&unique("sales-portal"));
    let operator = Actor {
        identity: "arn:aws:sts::123456789012:assumed-role/ops/alice",
        label: Some("alice"),
    };
    let read_only = Scope {
        merchants: Merchants::Only(["m-1".to_owned(), "m-2".to_owned()].into()),
        permissions: [Permission::Read].into(),
    };
    assert_eq!(ledger.caller_scope(&caller).await, Ok(None));
    let set = ledger
        .set_caller_scope(&caller, &read_only, &operator)
        .await
        .unwrap_or_else(|error| panic!("setting {caller}'s scope: {error}"));
    assert_eq!(
        (set.scope.as_ref(), set.before.as_ref()),
        (Some(&read_only), None)
    );
    assert_eq!(
        ledger.caller_scope(&caller).await,
        Ok(Some(read_only.clone()))
    );

    let everything = Scope::everything();
    let replaced = ledger
        .set_caller_scope(
            &caller,
            &everything,
            &Actor {
                identity: "arn:aws:iam::123456789012:user/bob",
                label: None,
            },
        )
        .await
        .unwrap_or_else(|error| panic!("replacing {caller}'s scope: {error}"));
    assert_eq!(replaced.before, Some(read_only.clone()));
    let listed = ledger
        .callers()
        .await
        .unwrap_or_else(|error| panic!("listing the callers: {error}"));
    let mine: Vec<_> = listed.iter().filter(|c| c.principal == caller).collect();
    assert_eq!(mine.len(), 1, "{listed:?}");
    assert_eq!(mine[0].scope, everything);
    assert_eq!(mine[0].updated_by, "arn:aws:iam::123456789012:user/bob");

    let removed = ledger
        .remove_caller_scope(&caller, &operator)
        .await
        .unwrap_or_else(|error| panic!("removing {caller}'s scope: {error}"));
    assert_eq!(
        removed.map(|c| (c.scope, c.before)),
        Some((None, Some(everything.clone())))
    );
    assert_eq!(ledger.caller_scope(&caller).await, Ok(None));
    // Removing what is not there writes nothing.
    assert_eq!(
        ledger.remove_caller_scope(&caller, &operator).await,
        Ok(None)
    );

    let changes = ledger
        .caller_changes(1000)
        .await
        .unwrap_or_else(|error| panic!("reading the caller changes: {error}"));
    let mine: Vec<(Option<Scope>, &str, Option<&str>)> = changes
        .iter()
        .filter(|c| c.principal == caller)
        .map(|c| (c.scope.clone(), c.who.as_str(), c.label.as_deref()))
        .collect();
    assert_eq!(
        mine,
        vec![
            (None, operator.identity, Some("alice")),
            (Some(everything), "arn:aws:iam::123456789012:user/bob", None),
            (Some(read_only), operator.identity, Some("alice")),
        ],
        "newest first, exactly one record per change"
    );
}

pub async fn an_ended_order_is_anonymised_once_and_keeps_everything_but_its_personal_data(
    ledger: &(impl Ledger + Retention),
) {
    let running = place(ledger).await;
    assert_eq!(
        ledger.anonymise(&running).await,
        Err(StoreError::Changed {
            order_id: running.order_id.clone(),
            read_version: running.version
        }),
        "an order that has not ended keeps its address"
    );
    let id = place(ledger).await.order_id;
    let cancelled = ledger.cancel(&id).await;
    assert!(
        matches!(cancelled, Ok(Cancellation::Started(_))),
        "{cancelled:?}"
    );
    let ended = read(ledger, &id).await;
    assert_eq!(ended.status, OrderStatus::Cancelled);
    let steps_before = steps_summary(ledger, &id).await;
    ledger
        .anonymise(&ended)
        .await
        .unwrap_or_else(|error| panic!("anonymising {id}: {error}"));
    let after = read(ledger, &id).await;
    let address = &after.order.delivery_address;
    assert_eq!(
        (
            address.name.as_str(),
            address.line1.as_str(),
            address.line2.as_deref()
        ),
        (super::retention::REMOVED, super::retention::REMOVED, None)
    );
    let kept = &ended.order.delivery_address;
    assert_eq!(
        (&address.city, &address.postal_code, &address.country),
        (&kept.city, &kept.postal_code, &kept.country)
    );
    assert_eq!(
        (
            after.status,
            after.version,
            &after.updated_at,
            &after.order.lines
        ),
        (
            ended.status,
            ended.version + 1,
            &ended.updated_at,
            &ended.order.lines
        ),
        "everything else as it was, the order's place in the index too"
    );
    assert!(after.anonymised_at.is_some());
    assert_eq!(steps_summary(ledger, &id).await, steps_before);
    // Once: again, or on the stale read, nothing is written.
    for stale in [&ended, &after] {
        assert!(matches!(
            ledger.anonymise(stale).await,
            Err(StoreError::Changed { .. })
        ));
    }
    assert_eq!(read(ledger, &id).await, after);
}
