//! The saga, in memory and in seconds: the real activity handlers (every function crate's
//! `handle`) over the in-memory ledger (`MemoryStore`, held to the DynamoDB table by the
//! contract suite) and partners faked in process. Each forward step and compensation is
//! run twice (Step Functions and Lambda deliver at least once), raced by a cancel, refused
//! by its partner, and run after the order moved under it. No stack, no emulator:
//! `cargo test -p order-core`.

use order_core::activity::{ActivityInput, ActivityOutput, Rollback};
use order_core::catalogue::Catalogue;
use order_core::events::{Lifecycle, OrderEvent};
use order_core::fakes::FakePartner;
use order_core::order::example_request;
use order_core::partners::{CallContext, PartnerError, PartnerFailure};
use order_core::steps::{self, Partner, Step};
use order_core::store::{
    Cancellation, Delivery, DeliveryRecorded, Failure, Ledger, MemoryStore, OrderRecord, Placement,
    StepRecord, StepStatus, TokenStored,
};
use order_core::{ActivityError, ErrorName, Order, OrderId, OrderKind, OrderStatus};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

// ---------------------------------------------------------------------------------------
// Partners, in process: idempotent by the call's key as the real ones are, counting calls
// and effects, refusing or timing out on request.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Partners {
    /// Every call: (operation, idempotency key).
    calls: Mutex<Vec<(&'static str, String)>>,
    /// Effects taken, by (operation, idempotency key): a repeated key acts once.
    effects: Mutex<BTreeSet<(&'static str, String)>>,
    /// Operations refused for good (a 4xx with a code).
    refuse: Mutex<BTreeSet<&'static str>>,
    /// The code a refused operation answers with, when not `refused_in_test`.
    refusal_codes: Mutex<std::collections::BTreeMap<&'static str, &'static str>>,
    /// Operations that act, then time out once (the caller never sees the answer).
    time_out_after_acting: Mutex<BTreeSet<&'static str>>,
    /// An operation during which the order is cancelled (a cancel request racing it).
    cancel_during: Mutex<Option<&'static str>>,
    /// The ledger the cancel goes to.
    ledger: Option<std::sync::Arc<MemoryStore>>,
}

impl Partners {
    fn with_ledger(ledger: std::sync::Arc<MemoryStore>) -> Partners {
        Partners {
            ledger: Some(ledger),
            ..Partners::default()
        }
    }

    fn refuse(&self, operation: &'static str) {
        lock(&self.refuse).insert(operation);
    }

    /// Refuses `operation` for good with the partner's `code`.
    fn refuse_with(&self, operation: &'static str, code: &'static str) {
        lock(&self.refusal_codes).insert(operation, code);
        self.refuse(operation);
    }

    fn calls_of(&self, operation: &str) -> usize {
        lock(&self.calls)
            .iter()
            .filter(|(op, _)| *op == operation)
            .count()
    }

    fn effects_of(&self, operation: &str) -> usize {
        lock(&self.effects)
            .iter()
            .filter(|(op, _)| *op == operation)
            .count()
    }
}

/// The answers are the shared fakes' (`order_core::fakes`, also the simulator's); this
/// decides the calls as each test asks.
impl FakePartner for Partners {
    /// Takes the call; `Err` when told to refuse or to time out.
    async fn act(
        &self,
        partner: Partner,
        operation: &'static str,
        call: &CallContext,
    ) -> Result<(), PartnerError> {
        lock(&self.calls).push((operation, call.idempotency_key.clone()));
        if lock(&self.refuse).contains(operation) {
            return Err(PartnerError {
                partner,
                operation,
                failure: PartnerFailure::Refused {
                    status: 422,
                    code: lock(&self.refusal_codes)
                        .get(operation)
                        .copied()
                        .unwrap_or("refused_in_test")
                        .into(),
                },
                message: "answered 422".into(),
            });
        }
        lock(&self.effects).insert((operation, call.idempotency_key.clone()));
        if *lock(&self.cancel_during) == Some(operation) {
            if let Some(ledger) = &self.ledger {
                let cancelled = ledger.cancel(&call.order_id).await;
                assert!(
                    matches!(cancelled, Ok(Cancellation::Started(_))),
                    "{cancelled:?}"
                );
            }
        }
        if lock(&self.time_out_after_acting).remove(operation) {
            return Err(PartnerError {
                partner,
                operation,
                failure: PartnerFailure::Timeout,
                message: "no answer in time".into(),
            });
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// The steps, dispatched by name to the real handlers, as the state machine's Tasks are.
// ---------------------------------------------------------------------------------------

fn catalogue() -> Catalogue {
    Catalogue::builtin().unwrap_or_else(|error| panic!("catalogue: {error}"))
}

/// Runs the step named `step` for the order: a forward step with `{order_id}`, a
/// compensation with the failure that started the rollback.
async fn run(
    ledger: &impl Ledger,
    partners: &Partners,
    step: Step,
    id: &OrderId,
    failure: Option<&Failure>,
) -> Result<ActivityOutput, ActivityError> {
    let input = ActivityInput {
        order_id: id.to_string(),
    };
    let compensation = Rollback {
        order_id: id.to_string(),
        failed_step: failure.map(|f| f.step.clone()),
        error: failure.map(|f| f.error.clone()),
        cause: failure.map(|f| f.reason.clone()),
    };
    let catalogue = catalogue();
    match step.name {
        "ValidateOrder" => validate_order::handle(ledger, &catalogue, input).await,
        "ReserveStock" => reserve_stock::handle(ledger, partners, input).await,
        "TakePayment" => take_payment::handle(ledger, partners, &catalogue, input).await,
        "DeactivateFaultyTerminals" => deactivate_terminals::handle(ledger, partners, input).await,
        "CreateReturnLabel" => create_return_label::handle(ledger, partners, input).await,
        "ProvisionTerminals" => provision_terminals::handle(ledger, partners, input).await,
        "ArrangeShipment" => arrange_shipment::handle(ledger, partners, input).await,
        "NotifyCustomer" => notify_customer::handle(ledger, partners, input).await,
        "CompleteOrder" => complete_order::handle(ledger, input).await,
        "CancelShipment" => cancel_shipment::handle(ledger, partners, compensation).await,
        "DeprovisionTerminals" => {
            deprovision_terminals::handle(ledger, partners, compensation).await
        }
        "RefundPayment" => refund_payment::handle(ledger, partners, compensation).await,
        "ReleaseStock" => release_stock::handle(ledger, partners, compensation).await,
        "RecordFailure" => {
            let failure = failure.unwrap_or_else(|| panic!("RecordFailure needs the failure"));
            let input = fail_order::FailureInput {
                order_id: id.to_string(),
                failed_step: failure.step.clone(),
                error: failure.error.clone(),
                cause: Some(failure.reason.clone()),
            };
            fail_order::handle(ledger, input).await
        }
        other => panic!("no handler is wired for {other} in this test"),
    }
}

/// The forward steps of a kind before AwaitDelivery, as the definition orders them.
fn path_to_shipping(kind: OrderKind) -> Vec<Step> {
    let mut path = vec![steps::VALIDATE_ORDER, steps::RESERVE_STOCK];
    if kind == OrderKind::Replacement {
        path.extend([
            steps::DEACTIVATE_FAULTY_TERMINALS,
            steps::CREATE_RETURN_LABEL,
        ]);
    } else {
        path.push(steps::TAKE_PAYMENT);
    }
    path.extend([steps::PROVISION_TERMINALS, steps::ARRANGE_SHIPMENT]);
    path
}

/// The partner operation each partner-calling step takes, and what undoes it.
fn operation_of(step: Step) -> Option<&'static str> {
    Some(match step.name {
        "ReserveStock" => "reserve",
        "TakePayment" => "charge",
        "DeactivateFaultyTerminals" => "deactivate",
        "CreateReturnLabel" => "return_label",
        "ProvisionTerminals" => "provision",
        "ArrangeShipment" => "ship",
        "NotifyCustomer" => "send",
        "CancelShipment" => "cancel",
        "DeprovisionTerminals" => "deprovision",
        "RefundPayment" => "refund",
        "ReleaseStock" => "release",
        _ => return None,
    })
}

fn order_of_kind(kind: OrderKind) -> Order {
    let merchant = format!("m-saga-{}", uuid::Uuid::new_v4().simple());
    let mut request = example_request(&merchant);
    request["kind"] = Value::from(kind.as_str());
    if kind == OrderKind::Replacement {
        request["lines"] = serde_json::json!([{"sku": "A920-PRO", "quantity": 2}]);
        request["replace_serials"] = serde_json::json!(["SN-FAULTY-0001", "SN-FAULTY-0002"]);
    }
    Order::parse(&request, &catalogue()).unwrap_or_else(|problems| panic!("{problems}"))
}

async fn place(ledger: &impl Ledger, kind: OrderKind) -> OrderId {
    let key = format!("key-{}", uuid::Uuid::new_v4());
    match ledger
        .place_order(
            &order_core::store::contract::caller(),
            &key,
            &order_of_kind(kind),
            "hash",
        )
        .await
    {
        Ok(Placement::Created(record)) => record.order_id,
        other => panic!("expected a new order, got {other:?}"),
    }
}

async fn read(ledger: &impl Ledger, id: &OrderId) -> (OrderRecord, Vec<StepRecord>) {
    match ledger.get_order_with_steps(id).await {
        Ok(Some(found)) => found,
        other => panic!("order {id}: {other:?}"),
    }
}

async fn step_record(ledger: &impl Ledger, id: &OrderId, step: Step) -> Option<StepRecord> {
    read(ledger, id)
        .await
        .1
        .into_iter()
        .find(|record| record.step == step.name)
}

/// One order of a test: the ledger it is in and the partners its steps call (cancels
/// raced in by the partners go to the same ledger).
struct Saga {
    ledger: std::sync::Arc<MemoryStore>,
    partners: Partners,
    id: OrderId,
}

impl Saga {
    /// A fresh ledger and partners, and an order of `kind` placed in the ledger.
    async fn placed(kind: OrderKind) -> Saga {
        let ledger = std::sync::Arc::new(MemoryStore::new());
        let id = place(&*ledger, kind).await;
        let partners = Partners::with_ledger(ledger.clone());
        Saga {
            ledger,
            partners,
            id,
        }
    }

    /// [`Saga::placed`], then taken through `forward`, each step of which must succeed.
    async fn placed_through(kind: OrderKind, forward: impl IntoIterator<Item = Step>) -> Saga {
        let saga = Saga::placed(kind).await;
        for step in forward {
            saga.succeeds(step, None).await;
        }
        saga
    }

    /// An order of `kind` taken to COMPLETED, every step run twice; with CompleteOrder's
    /// output.
    async fn completed_twice_over(kind: OrderKind) -> (Saga, ActivityOutput) {
        let saga = Saga::placed(kind).await;
        for step in path_to_shipping(kind) {
            saga.succeeds_twice(step, None).await;
        }
        delivered(&*saga.ledger, &saga.id).await;
        saga.succeeds_twice(steps::NOTIFY_CUSTOMER, None).await;
        let done = saga.succeeds_twice(steps::COMPLETE_ORDER, None).await;
        (saga, done)
    }

    /// Runs `step` for the order (see [`run`]).
    async fn run(
        &self,
        step: Step,
        failure: Option<&Failure>,
    ) -> Result<ActivityOutput, ActivityError> {
        run(&*self.ledger, &self.partners, step, &self.id, failure).await
    }

    /// The order's outbox: the events its changes wrote, one per change (`event_id`
    /// order).
    async fn outbox(&self) -> Vec<OrderEvent> {
        match self.ledger.outbox(&self.id).await {
            Ok(events) => events,
            Err(error) => panic!("the outbox of {}: {error}", self.id),
        }
    }

    /// The outbox's events, by lifecycle, in the outbox's order (by event id:
    /// `<order>/<STATUS>`, so alphabetically by status).
    async fn announced(&self) -> Vec<Lifecycle> {
        self.outbox()
            .await
            .into_iter()
            .map(|e| e.lifecycle)
            .collect()
    }

    /// Runs `step`, which must succeed; returns its output.
    async fn succeeds(&self, step: Step, failure: Option<&Failure>) -> ActivityOutput {
        let id = &self.id;
        self.run(step, failure)
            .await
            .unwrap_or_else(|error| panic!("{} of order {id} failed: {error}", step.name))
    }

    /// Runs `step`, which must fail; returns its error.
    async fn fails(&self, step: Step, failure: Option<&Failure>) -> ActivityError {
        let id = &self.id;
        self.run(step, failure)
            .await
            .err()
            .unwrap_or_else(|| panic!("{} of order {id} did not fail", step.name))
    }

    /// Runs RecordFailure, which ends every rollback and must succeed; returns its output.
    async fn ends(&self, failure: &Failure) -> ActivityOutput {
        self.succeeds(steps::RECORD_FAILURE, Some(failure)).await
    }

    /// Runs `step` twice: the second run must return the first one's result, marked
    /// replayed, without calling its partner again.
    async fn succeeds_twice(&self, step: Step, failure: Option<&Failure>) -> ActivityOutput {
        let calls = || lock(&self.partners.calls).len();
        let calls_before = calls();
        let first = self.succeeds(step, failure).await;
        let calls_between = calls();
        let second = self.succeeds(step, failure).await;
        assert!(!first.replayed, "{}: {first:?}", step.name);
        assert!(second.replayed, "{}: {second:?}", step.name);
        assert_eq!(
            (second.references.clone(), second.attempts),
            (first.references.clone(), first.attempts),
            "{}: the replay must return the recorded result",
            step.name
        );
        assert_eq!(
            calls(),
            calls_between,
            "{}: the replay called a partner",
            step.name
        );
        assert_eq!(
            calls_between - calls_before,
            usize::from(operation_of(step).is_some()),
            "{}: one partner call for the first run",
            step.name
        );
        first
    }

    /// The order and its step records.
    async fn read(&self) -> (OrderRecord, Vec<StepRecord>) {
        read(&*self.ledger, &self.id).await
    }

    /// The record of `step`, if it ran.
    async fn step_record(&self, step: Step) -> Option<StepRecord> {
        step_record(&*self.ledger, &self.id, step).await
    }
}

/// Records the courier's delivery of the shipment ArrangeShipment booked (the webhook's
/// half of the hand-over) and the token the AwaitDelivery step would have stored.
async fn delivered(ledger: &impl Ledger, id: &OrderId) {
    assert_eq!(
        ledger
            .store_task_token(
                id,
                &order_core::store::TaskToken {
                    token: "token",
                    attempt: None
                }
            )
            .await,
        Ok(TokenStored::Waiting)
    );
    courier_delivers(ledger, id).await;
}

/// Records the courier's delivery of the shipment ArrangeShipment booked (the webhook's
/// half of the hand-over), with no task token waiting for it (it timed out).
async fn courier_delivers(ledger: &impl Ledger, id: &OrderId) {
    let shipment = step_record(ledger, id, steps::ARRANGE_SHIPMENT)
        .await
        .and_then(|record| record.references.get("shipment_id").cloned())
        .unwrap_or_else(|| panic!("order {id} has no shipment"));
    let event = Delivery {
        event_id: format!("evt-{id}"),
        shipment_id: shipment,
        delivered_at: "2026-11-28T10:00:00.000Z".into(),
    };
    let announced = order_core::store::contract::delivered_event(ledger, id, &event).await;
    let recorded = ledger.record_delivery(id, &event, &announced).await;
    assert!(
        matches!(recorded, Ok(DeliveryRecorded::Now(_))),
        "{recorded:?}"
    );
}

fn failure_of(step: Step, error: &ActivityError) -> Failure {
    let cause =
        serde_json::json!({"errorType": error.name.as_str(), "errorMessage": error.message});
    Failure::from_catch(step.name, error.name.as_str(), Some(&cause.to_string()))
}

/// The compensations the definition runs after `failed` failed, in its order.
fn compensations_after(kind: OrderKind, failed: Step) -> Vec<Step> {
    let done: Vec<Step> = path_to_shipping(kind)
        .into_iter()
        .take_while(|step| step.name != failed.name)
        .collect();
    let mut undo: Vec<Step> = done
        .iter()
        .rev()
        .filter_map(|step| step.compensation)
        .map(|name| {
            steps::ALL
                .into_iter()
                .find(|step| step.name == name)
                .unwrap_or_else(|| panic!("no step named {name}"))
        })
        .collect();
    // A failed step with an effect may have acted (a timeout): it is undone too.
    if let Some(own) = failed.compensation {
        let own = steps::ALL.into_iter().find(|step| step.name == own);
        undo.splice(0..0, own);
    }
    undo
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_kind_completes_and_every_step_run_twice_acts_once() {
    for kind in OrderKind::ALL.iter().copied() {
        let (saga, done) = Saga::completed_twice_over(kind).await;
        assert_eq!(done.status, OrderStatus::Completed, "{kind:?}");
        let (order, records) = saga.read().await;
        assert_eq!(
            (order.status, order.failure),
            (OrderStatus::Completed, None)
        );
        assert!(
            records.iter().all(|r| r.status == StepStatus::Succeeded),
            "{kind:?}: {records:?}"
        );
        for step in path_to_shipping(kind) {
            if let Some(operation) = operation_of(step) {
                assert_eq!(
                    saga.partners.effects_of(operation),
                    1,
                    "{kind:?}: {operation}"
                );
            }
        }
        let charged = saga.partners.effects_of("charge");
        assert_eq!(
            charged,
            usize::from(kind != OrderKind::Replacement),
            "{kind:?}: replacements are free"
        );
    }
}

#[tokio::test]
async fn each_change_integrators_see_is_written_to_the_outbox_with_it_once_and_a_replay_writes_nothing(
) {
    use Lifecycle::*;
    for kind in OrderKind::ALL.iter().copied() {
        // Every step run twice (a replay after each): one outbox item per change.
        let (saga, _) = Saga::completed_twice_over(kind).await;
        // ACCEPTED, COMPLETED, DELIVERED, SHIPPED: one each, however often each ran.
        assert_eq!(
            saga.announced().await,
            [Accepted, Completed, Delivered, Shipped],
            "{kind:?}"
        );
        let outbox = saga.outbox().await;
        let shipped = outbox
            .iter()
            .find(|e| e.lifecycle == Shipped)
            .map(|e| e.detail.clone())
            .unwrap_or_else(|| panic!("{kind:?}: no Order Shipped in {outbox:?}"));
        let (order, records) = saga.read().await;
        let arranged = records
            .iter()
            .find(|r| r.step == steps::ARRANGE_SHIPMENT.name);
        assert_eq!(
            shipped.tracking_number,
            arranged.and_then(|r| r.references.get("tracking_number").cloned()),
            "{kind:?}"
        );
        assert_eq!(
            Some(&shipped.occurred_at),
            arranged.and_then(|r| r.finished_at.as_ref()),
            "{kind:?}: when the ledger recorded the shipment"
        );
        assert_eq!(shipped.merchant_id, order.order.merchant_id, "{kind:?}");
    }
    let saga = Saga::placed_through(OrderKind::NewMerchant, [steps::VALIDATE_ORDER]).await;
    saga.partners.refuse("reserve");
    let refused = saga.fails(steps::RESERVE_STOCK, None).await;
    assert_eq!(
        saga.announced().await,
        [Accepted],
        "a failed step writes no event"
    );
    let failure = failure_of(steps::RESERVE_STOCK, &refused);
    saga.succeeds_twice(steps::RECORD_FAILURE, Some(&failure))
        .await;
    assert_eq!(saga.announced().await, [Accepted, Failed]);
    let outbox = saga.outbox().await;
    let failed = outbox
        .iter()
        .find(|e| e.lifecycle == Failed)
        .map(|e| e.detail.clone())
        .unwrap_or_else(|| panic!("no Order Failed in {outbox:?}"));
    let reason = failed
        .reason
        .clone()
        .unwrap_or_else(|| panic!("{failed:?}"));
    assert_eq!(
        (reason.step.as_str(), reason.error.as_str()),
        ("ReserveStock", refused.name.as_str())
    );
}

#[tokio::test]
async fn every_compensation_run_twice_undoes_once_and_the_order_ends_failed_with_the_first_reason()
{
    // Lost in transit: every forward effect up to the shipment is undone, in reverse.
    for kind in OrderKind::ALL.iter().copied() {
        let saga = Saga::placed_through(kind, path_to_shipping(kind)).await;
        let lost = Failure::from_catch("AwaitDelivery", "States.Timeout", None);
        let undo = compensations_after(kind, steps::AWAIT_DELIVERY);
        let names: Vec<&str> = undo.iter().map(|s| s.name).collect();
        let expected: &[&str] = if kind == OrderKind::Replacement {
            &["CancelShipment", "DeprovisionTerminals", "ReleaseStock"]
        } else {
            &[
                "CancelShipment",
                "DeprovisionTerminals",
                "RefundPayment",
                "ReleaseStock",
            ]
        };
        assert_eq!(names, expected, "{kind:?}");
        for step in undo {
            let output = saga.succeeds_twice(step, Some(&lost)).await;
            assert_eq!(
                output.status,
                OrderStatus::Compensating,
                "{kind:?}: {}",
                step.name
            );
        }
        let later = Failure::from_catch("ReleaseStock", "Partner.Unavailable", None);
        let ended = saga
            .succeeds_twice(steps::RECORD_FAILURE, Some(&later))
            .await;
        assert_eq!(ended.status, OrderStatus::Failed, "{kind:?}");
        let (order, _) = saga.read().await;
        let recorded = order.failure.map(|f| (f.step, f.error));
        assert_eq!(
            recorded,
            Some(("AwaitDelivery".to_owned(), "States.Timeout".to_owned())),
            "{kind:?}: the failure that started the rollback is kept"
        );
        // The kinds that pay are refunded once; a replacement was never charged, so
        // never refunded.
        let refunds = usize::from(kind != OrderKind::Replacement);
        for (operation, done) in [
            ("cancel", 1),
            ("deprovision", 1),
            ("refund", refunds),
            ("release", 1),
        ] {
            assert_eq!(
                saga.partners.effects_of(operation),
                done,
                "{kind:?}: {operation}"
            );
        }
    }
}

#[tokio::test]
async fn a_delivery_after_the_delivery_timeout_before_the_shipment_is_cancelled_completes_the_order_and_undoes_nothing(
) {
    // The delivery timeout began the rollback; CancelShipment met the courier down once
    // (the order is COMPENSATING), then the courier's delivery event arrived. The rollback
    // stops and the order completes: nothing is cancelled, refunded or released.
    for kind in OrderKind::ALL.iter().copied() {
        let saga = Saga::placed_through(kind, path_to_shipping(kind)).await;
        let lost = Failure::from_catch("AwaitDelivery", "States.Timeout", None);
        saga.partners.refuse("cancel");
        let first = saga.fails(steps::CANCEL_SHIPMENT, Some(&lost)).await;
        assert_eq!(first.name, ErrorName::PartnerRejected, "{kind:?}");
        lock(&saga.partners.refuse).remove("cancel");
        assert_eq!(saga.read().await.0.status, OrderStatus::Compensating);
        courier_delivers(&*saga.ledger, &saga.id).await;
        let stopped = saga.fails(steps::CANCEL_SHIPMENT, Some(&lost)).await;
        assert_eq!(stopped.name, ErrorName::OrderDelivered, "{kind:?}");
        saga.succeeds_twice(steps::NOTIFY_CUSTOMER, None).await;
        let done = saga.succeeds_twice(steps::COMPLETE_ORDER, None).await;
        assert_eq!(done.status, OrderStatus::Completed, "{kind:?}");
        for operation in ["cancel", "deprovision", "refund", "release"] {
            assert_eq!(
                saga.partners.effects_of(operation),
                0,
                "{kind:?}: {operation}"
            );
        }
    }
}

#[tokio::test]
async fn a_courier_that_says_delivered_before_its_event_arrives_makes_the_rollback_wait_for_the_event(
) {
    let kind = OrderKind::NewMerchant;
    let saga = Saga::placed_through(kind, path_to_shipping(kind)).await;
    let lost = Failure::from_catch("AwaitDelivery", "States.Timeout", None);
    saga.partners.refuse_with("cancel", "already_delivered");
    let waiting = saga.fails(steps::CANCEL_SHIPMENT, Some(&lost)).await;
    assert_eq!(waiting.name, ErrorName::ShipmentDelivered);
    assert!(
        waiting.name.is_transient(),
        "waited for, never rolled back past"
    );
    // The event arrives; the next attempt ends the rollback.
    courier_delivers(&*saga.ledger, &saga.id).await;
    let stopped = saga.fails(steps::CANCEL_SHIPMENT, Some(&lost)).await;
    assert_eq!(stopped.name, ErrorName::OrderDelivered);
    saga.succeeds(steps::NOTIFY_CUSTOMER, None).await;
    let done = saga.succeeds(steps::COMPLETE_ORDER, None).await;
    assert_eq!(done.status, OrderStatus::Completed);
    assert_eq!(saga.partners.effects_of("refund"), 0);
}

#[tokio::test]
async fn a_delivery_after_the_shipment_was_cancelled_is_recorded_parks_the_order_and_the_rollback_goes_on(
) {
    // The courier confirmed the cancellation, then delivered after all: a person decides
    // with both facts; the rollback it confirmed goes on.
    let kind = OrderKind::NewMerchant;
    let saga = Saga::placed_through(kind, path_to_shipping(kind)).await;
    let lost = Failure::from_catch("AwaitDelivery", "States.Timeout", None);
    saga.succeeds(steps::CANCEL_SHIPMENT, Some(&lost)).await;
    let shipment = saga
        .step_record(steps::ARRANGE_SHIPMENT)
        .await
        .and_then(|record| record.references.get("shipment_id").cloned())
        .unwrap_or_default();
    let event = Delivery {
        event_id: format!("evt-late-{}", saga.id),
        shipment_id: shipment,
        delivered_at: "2026-11-28T10:00:00.000Z".into(),
    };
    let announced =
        order_core::store::contract::delivered_event(&*saga.ledger, &saga.id, &event).await;
    let recorded = saga
        .ledger
        .record_delivery(&saga.id, &event, &announced)
        .await;
    assert!(
        matches!(&recorded, Ok(DeliveryRecorded::AfterRollback(order)) if order.parked.is_some()),
        "{recorded:?}"
    );
    for step in [
        steps::DEPROVISION_TERMINALS,
        steps::REFUND_PAYMENT,
        steps::RELEASE_STOCK,
    ] {
        saga.succeeds(step, Some(&lost)).await;
    }
    let ended = saga.succeeds(steps::RECORD_FAILURE, Some(&lost)).await;
    assert_eq!(ended.status, OrderStatus::Failed);
    let (order, _) = saga.read().await;
    assert_eq!(order.delivery, Some(event), "the delivery is kept");
    assert!(order.parked.is_some(), "and in front of a person");
}

#[tokio::test]
async fn a_cancelled_order_that_still_holds_effects_is_found_and_its_rollback_finished() {
    // Written before a cancel decided "nothing begun" in its own write: the cancel ended
    // the order at once while an unrecorded execution had reserved stock and charged.
    let kind = OrderKind::NewMerchant;
    let saga = Saga::placed_through(
        kind,
        [
            steps::VALIDATE_ORDER,
            steps::RESERVE_STOCK,
            steps::TAKE_PAYMENT,
        ],
    )
    .await;
    for (from, to) in [
        (OrderStatus::PaymentTaken, OrderStatus::Cancelling),
        (OrderStatus::Cancelling, OrderStatus::Cancelled),
    ] {
        let moved = saga
            .ledger
            .transition(&saga.id, order_core::store::Transition::new(from, to))
            .await;
        assert!(moved.is_ok(), "{moved:?}");
    }
    let (_, steps_before) = saga.read().await;
    assert_eq!(
        order_core::recovery::effects_held(&steps_before),
        ["ReserveStock", "TakePayment"],
        "found"
    );
    // `orderctl orders undo` starts an execution: the finished steps replay, the next
    // meets the CANCELLED order, and the rollback runs.
    let stopped = saga.fails(steps::PROVISION_TERMINALS, None).await;
    assert_eq!(stopped.name, ErrorName::OrderCancelled);
    let failure = failure_of(steps::PROVISION_TERMINALS, &stopped);
    for step in compensations_after(kind, steps::PROVISION_TERMINALS) {
        let output = saga.succeeds_twice(step, Some(&failure)).await;
        assert_eq!(output.status, OrderStatus::Cancelled, "{}", step.name);
    }
    let ended = saga.succeeds(steps::RECORD_FAILURE, Some(&failure)).await;
    assert_eq!(ended.status, OrderStatus::Cancelled);
    let (_, steps_after) = saga.read().await;
    assert_eq!(
        order_core::recovery::effects_held(&steps_after),
        Vec::<&str>::new(),
        "finished"
    );
    assert_eq!(saga.partners.effects_of("refund"), 1);
    assert_eq!(saga.partners.effects_of("release"), 1);
}

#[tokio::test]
async fn a_step_refused_by_its_partner_fails_with_its_own_name_moves_nothing_and_is_rolled_back() {
    let refusals = [
        (steps::RESERVE_STOCK, ErrorName::StockUnavailable),
        (steps::TAKE_PAYMENT, ErrorName::PaymentDeclined),
        (steps::PROVISION_TERMINALS, ErrorName::ProvisioningRejected),
        (steps::ARRANGE_SHIPMENT, ErrorName::ShipmentRejected),
    ];
    for (refused, name) in refusals {
        let kind = OrderKind::NewMerchant;
        let before_refused = path_to_shipping(kind)
            .into_iter()
            .take_while(|s| s.name != refused.name);
        let saga = Saga::placed_through(kind, before_refused).await;
        let before = saga.read().await.0;
        let operation = operation_of(refused).unwrap_or_else(|| panic!("{}", refused.name));
        saga.partners.refuse(operation);
        let error = saga.fails(refused, None).await;
        assert_eq!(error.name, name, "{}", refused.name);
        assert_eq!(
            saga.read().await.0,
            before,
            "{} moved the order",
            refused.name
        );
        let record = saga.step_record(refused).await;
        assert_eq!(
            record.map(|r| (r.status, r.error)),
            Some((StepStatus::Failed, Some(name.as_str().to_owned()))),
            "{}",
            refused.name
        );
        assert_eq!(saga.partners.effects_of(operation), 0, "{}", refused.name);
        // The definition's Catch runs the compensations, then RecordFailure.
        let failure = failure_of(refused, &error);
        for step in compensations_after(kind, refused) {
            saga.succeeds(step, Some(&failure)).await;
        }
        let ended = saga.ends(&failure).await;
        assert_eq!(ended.status, OrderStatus::Failed, "{}", refused.name);
        for step in path_to_shipping(kind)
            .into_iter()
            .take_while(|s| s.name != refused.name)
        {
            let (Some(done), Some(undo)) = (operation_of(step), step.compensation) else {
                continue;
            };
            let undo = steps::ALL.into_iter().find(|s| s.name == undo);
            let undone = undo
                .and_then(operation_of)
                .map(|op| saga.partners.effects_of(op));
            assert_eq!(
                (saga.partners.effects_of(done), undone),
                (1, Some(1)),
                "{}: {} must be undone",
                refused.name,
                step.name
            );
        }
    }
}

#[tokio::test]
async fn a_cancel_that_races_a_step_stops_the_order_and_the_rollback_ends_it_cancelled() {
    let kind = OrderKind::NewMerchant;
    let saga = Saga::placed_through(kind, [steps::VALIDATE_ORDER, steps::RESERVE_STOCK]).await;
    *lock(&saga.partners.cancel_during) = Some("charge");
    let error = saga.fails(steps::TAKE_PAYMENT, None).await;
    assert_eq!(error.name, ErrorName::OrderCancelled);
    assert_eq!(saga.read().await.0.status, OrderStatus::Cancelling);
    // The charge happened before the cancel: the rollback refunds it.
    let failure = failure_of(steps::TAKE_PAYMENT, &error);
    for step in compensations_after(kind, steps::TAKE_PAYMENT) {
        let output = saga.succeeds_twice(step, Some(&failure)).await;
        assert_eq!(output.status, OrderStatus::Cancelling, "{}", step.name);
    }
    let ended = saga.ends(&failure).await;
    assert_eq!(ended.status, OrderStatus::Cancelled);
    let reason = saga.read().await.0.failure.map(|f| f.reason);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.starts_with("cancelled on request")),
        "{reason:?}"
    );
    for operation in ["reserve", "charge", "refund", "release"] {
        assert_eq!(saga.partners.effects_of(operation), 1, "{operation}");
    }
}

#[tokio::test]
async fn a_cancel_before_any_step_stops_every_forward_step_without_calling_a_partner() {
    for step in path_to_shipping(OrderKind::NewMerchant) {
        let saga = Saga::placed(OrderKind::NewMerchant).await;
        let cancelled = saga.ledger.cancel(&saga.id).await;
        assert!(
            matches!(cancelled, Ok(Cancellation::Started(_))),
            "{cancelled:?}"
        );
        let error = saga.fails(step, None).await;
        assert_eq!(error.name, ErrorName::OrderCancelled, "{}", step.name);
        assert_eq!(lock(&saga.partners.calls).len(), 0, "{}", step.name);
    }
}

#[tokio::test]
async fn an_execution_that_starts_after_a_cancel_ended_its_order_ends_it_cancelled_with_the_cancels_one_event(
) {
    // On AWS an order can have a running execution and no ARN recorded yet (StartExecution
    // succeeded, the write of its ARN failed), so a cancel ends it CANCELLED at once. The
    // execution's first step then meets the cancel; RecordFailure leaves the order as the
    // cancel ended it and publishes the very event the cancel published.
    let saga = Saga::placed(OrderKind::NewMerchant).await;
    let cancelled = order_core::recovery::cancel(&*saga.ledger, &saga.id).await;
    let order = match cancelled {
        Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelled => order,
        other => panic!("the cancel: {other:?}"),
    };
    assert_eq!(
        saga.announced().await,
        [Lifecycle::Accepted, Lifecycle::Cancelled],
        "the cancel wrote its event with the change"
    );
    let error = saga.fails(steps::VALIDATE_ORDER, None).await;
    assert_eq!(error.name, ErrorName::OrderCancelled);
    let ended = saga.ends(&failure_of(steps::VALIDATE_ORDER, &error)).await;
    assert_eq!(ended.status, OrderStatus::Cancelled);
    assert_eq!(
        saga.read().await.0,
        order,
        "the order as the cancel ended it"
    );
    assert_eq!(lock(&saga.partners.calls).len(), 0);
    assert_eq!(
        saga.announced().await,
        [Lifecycle::Accepted, Lifecycle::Cancelled],
        "the execution's RecordFailure wrote no second end"
    );
}

#[tokio::test]
async fn a_step_whose_order_moved_meanwhile_fails_with_a_conflict_and_calls_no_partner() {
    let saga = Saga::placed(OrderKind::AdditionalDevices).await;
    // ReserveStock expects a VALIDATED order; this one is still ACCEPTED.
    let error = saga.fails(steps::RESERVE_STOCK, None).await;
    assert_eq!(error.name, ErrorName::OrderConflict);
    assert_eq!(lock(&saga.partners.calls).len(), 0);
    let record = saga.step_record(steps::RESERVE_STOCK).await;
    assert_eq!(
        record.map(|r| (r.status, r.attempts)),
        Some((StepStatus::Failed, 1))
    );
}

#[tokio::test]
async fn a_partner_that_acted_but_timed_out_is_retried_with_the_same_key_and_acts_once() {
    let reserved = [steps::VALIDATE_ORDER, steps::RESERVE_STOCK];
    let saga = Saga::placed_through(OrderKind::NewMerchant, reserved).await;
    lock(&saga.partners.time_out_after_acting).insert("charge");
    let error = saga.fails(steps::TAKE_PAYMENT, None).await;
    assert_eq!(error.name, ErrorName::PartnerTimeout);
    // The state machine retries the Task.
    let retried = saga.succeeds(steps::TAKE_PAYMENT, None).await;
    assert_eq!(
        (retried.attempts, retried.status),
        (2, OrderStatus::PaymentTaken)
    );
    assert_eq!(
        (
            saga.partners.calls_of("charge"),
            saga.partners.effects_of("charge")
        ),
        (2, 1)
    );
    let keys: BTreeSet<String> = lock(&saga.partners.calls)
        .iter()
        .filter(|(op, _)| *op == "charge")
        .map(|(_, key)| key.clone())
        .collect();
    assert_eq!(keys.len(), 1, "both attempts carry one idempotency key");
}

#[tokio::test]
async fn a_rollback_that_loses_a_race_with_a_cancel_reads_the_order_again_and_undoes_it() {
    let reserved = [steps::VALIDATE_ORDER, steps::RESERVE_STOCK];
    let saga = Saga::placed_through(OrderKind::NewMerchant, reserved).await;
    saga.partners.refuse("charge");
    let error = saga.fails(steps::TAKE_PAYMENT, None).await;
    // A cancel slips in just before the rollback's first move to COMPENSATING.
    saga.ledger
        .cancel_before_next_move_to(OrderStatus::Compensating);
    let failure = failure_of(steps::TAKE_PAYMENT, &error);
    // The cancel won: the rollback (RefundPayment, ReleaseStock) goes on under CANCELLING,
    // and the order ends CANCELLED.
    let undo = compensations_after(OrderKind::NewMerchant, steps::TAKE_PAYMENT);
    assert_eq!(undo, [steps::REFUND_PAYMENT, steps::RELEASE_STOCK]);
    for step in undo {
        let undone = saga.succeeds(step, Some(&failure)).await;
        assert_eq!(undone.status, OrderStatus::Cancelling, "{}", step.name);
    }
    let ended = saga.ends(&failure).await;
    assert_eq!(ended.status, OrderStatus::Cancelled);
    assert_eq!(
        (
            saga.partners.effects_of("reserve"),
            saga.partners.effects_of("release")
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn recording_a_failure_for_an_order_that_still_holds_effects_is_refused() {
    let reserved = [steps::VALIDATE_ORDER, steps::RESERVE_STOCK];
    let saga = Saga::placed_through(OrderKind::NewMerchant, reserved).await;
    let failure = Failure::from_catch("TakePayment", "Payment.Declined", None);
    let error = saga.fails(steps::RECORD_FAILURE, Some(&failure)).await;
    assert_eq!(error.name, ErrorName::Internal);
    assert_eq!(saga.read().await.0.status, OrderStatus::StockReserved);
    let record = saga.step_record(steps::RECORD_FAILURE).await;
    assert_eq!(record.map(|r| r.status), Some(StepStatus::Failed));
}

#[tokio::test]
async fn every_step_of_the_workflow_that_runs_a_handler_is_exercised_here() {
    // The list of steps is the workflow's; a step added there without a handler wired in
    // `run` fails this test instead of going untested.
    let exercised: BTreeMap<&str, bool> = steps::ALL
        .into_iter()
        .map(|step| {
            let wired = step.name == steps::AWAIT_DELIVERY.name
                || operation_of(step).is_some()
                || ["ValidateOrder", "CompleteOrder", "RecordFailure"].contains(&step.name);
            (step.name, wired)
        })
        .collect();
    let missing: Vec<_> = exercised
        .iter()
        .filter(|(_, wired)| !**wired)
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(missing, Vec::<&str>::new());
}
