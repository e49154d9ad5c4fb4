//! The partner-calling activities and compensations, called directly against the
//! emulator's DynamoDB with in-memory partners that count their calls: a step run twice
//! calls its partner once, a refusal fails the step without moving the order, an order
//! cancelled while its partner call ran is not moved on, and a compensation takes the
//! order into COMPENSATING and is itself idempotent. The delivery hand-over between the
//! webhook and AwaitDelivery is checked at the store, in both orders of arrival.

use order_core::activity::{ActivityInput, Rollback};
use order_core::order::OrderLine;
use order_core::partners::{
    Amount, CallContext, Charge, PartnerError, PartnerFailure, Payments, Refund, Release,
    Reservation, Warehouse,
};
use order_core::steps::Partner;
use order_core::store::{Cancellation, Delivery, DeliveryRecorded, OrderStore, TokenStored};
use order_core::{ErrorName, OrderId, OrderStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use system_tests::{
    assert_failure_recorded, catalogue, unique_key, unique_merchant, ScratchSecret, Stack,
};

/// A warehouse that counts its calls and can be told to refuse.
#[derive(Default)]
struct CountingWarehouse {
    reservations: AtomicUsize,
    releases: AtomicUsize,
    refuse: bool,
    keys: Mutex<Vec<String>>,
}

fn refused(operation: &'static str, partner: Partner) -> PartnerError {
    PartnerError {
        partner,
        operation,
        failure: PartnerFailure::Refused {
            status: 409,
            code: "out_of_stock".into(),
        },
        message: "answered 409".into(),
    }
}

impl Warehouse for CountingWarehouse {
    async fn reserve(
        &self,
        call: &CallContext,
        _lines: &[OrderLine],
    ) -> Result<Reservation, PartnerError> {
        self.reservations.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(call.idempotency_key.clone());
        }
        if self.refuse {
            return Err(refused("reserve", Partner::Warehouse));
        }
        Ok(Reservation {
            reservation_id: format!("res-for-{}", call.order_id),
        })
    }

    async fn release(&self, call: &CallContext) -> Result<Release, PartnerError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(call.idempotency_key.clone());
        }
        Ok(Release {
            released: true,
            reservation_id: Some(format!("res-for-{}", call.order_id)),
        })
    }
}

/// A payment processor whose charge cancels the order while it runs (a cancel request
/// that races the step).
struct CancellingPayments {
    store: OrderStore,
    charges: AtomicUsize,
}

impl Payments for CancellingPayments {
    async fn charge(&self, call: &CallContext, amount: &Amount) -> Result<Charge, PartnerError> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        let cancelled = self.store.cancel(&call.order_id).await;
        assert!(
            matches!(cancelled, Ok(Cancellation::Started(_))),
            "{cancelled:?}"
        );
        Ok(Charge {
            charge_id: "chg-raced".into(),
            amount_cents: amount.cents,
            currency: amount.currency.clone(),
        })
    }

    async fn refund(&self, _call: &CallContext) -> Result<Refund, PartnerError> {
        panic!("no refund is asked for in these tests")
    }
}

async fn place(store: &OrderStore) -> OrderId {
    order_core::store::contract::place(store).await.order_id
}

/// Walks an order along the happy path up to `status` (without any partner). Shipping books
/// shipment `shp-1`, which the courier's delivery events name.
async fn advance(store: &OrderStore, id: &OrderId, status: OrderStatus) {
    order_core::store::contract::advance(store, id, status, "shp-1").await;
}

/// A compensation's input, as the state machine sends it after TakePayment was declined.
fn rollback(id: &OrderId) -> Rollback {
    Rollback {
        order_id: id.to_string(),
        failed_step: Some("TakePayment".into()),
        error: Some("Payment.Declined".into()),
        cause: Some(r#"{"errorType":"Payment.Declined","errorMessage":"card declined"}"#.into()),
    }
}

fn input(id: &OrderId) -> ActivityInput {
    ActivityInput {
        order_id: id.to_string(),
    }
}

async fn status(store: &OrderStore, id: &OrderId) -> OrderStatus {
    store
        .require_order(id)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .status
}

/// The steps stored for order `id`, read back, as `(step, status, error)`.
async fn stored_steps(
    store: &OrderStore,
    id: &OrderId,
) -> Vec<(String, order_core::store::StepStatus, Option<String>)> {
    let (_, steps) = store
        .get_order_with_steps(id)
        .await
        .expect("the order can be read")
        .expect("the order is stored");
    steps
        .into_iter()
        .map(|s| (s.step, s.status, s.error))
        .collect()
}

#[tokio::test]
async fn a_step_run_twice_calls_its_partner_once_with_the_key_of_the_order_and_step() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Validated).await;
    let warehouse = CountingWarehouse::default();
    let first = reserve_stock::handle(&store, &warehouse, input(&id)).await;
    let second = reserve_stock::handle(&store, &warehouse, input(&id)).await;
    let summary = |r: &Result<order_core::activity::ActivityOutput, order_core::ActivityError>| {
        r.as_ref()
            .map(|o| {
                (
                    o.status,
                    o.replayed,
                    o.references.get("reservation_id").cloned(),
                )
            })
            .map_err(|e| e.name)
    };
    let reservation = Some(format!("res-for-{id}"));
    assert_eq!(
        summary(&first),
        Ok((OrderStatus::StockReserved, false, reservation.clone()))
    );
    assert_eq!(
        summary(&second),
        Ok((OrderStatus::StockReserved, true, reservation))
    );
    assert_eq!(warehouse.reservations.load(Ordering::SeqCst), 1);
    let keys = warehouse.keys.lock().map(|k| k.clone()).unwrap_or_default();
    assert_eq!(keys, [format!("{id}:ReserveStock")]);
}

#[tokio::test]
async fn a_refusal_fails_the_step_with_its_permanent_name_and_leaves_the_order_where_it_was() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Validated).await;
    let warehouse = CountingWarehouse {
        refuse: true,
        ..CountingWarehouse::default()
    };
    let result = reserve_stock::handle(&store, &warehouse, input(&id)).await;
    let error = result.err().map(|e| {
        (
            e.name,
            e.message.contains("out_of_stock") || e.message.contains("409"),
        )
    });
    assert_eq!(error, Some((ErrorName::StockUnavailable, true)));
    assert_eq!(status(&store, &id).await, OrderStatus::Validated);
    let steps = store.get_order_with_steps(&id).await.ok().flatten();
    let step = steps.and_then(|(_, steps)| steps.into_iter().find(|s| s.step == "ReserveStock"));
    assert_eq!(
        step.map(|s| (s.status, s.error)),
        Some((
            order_core::store::StepStatus::Failed,
            Some("Stock.Unavailable".to_owned())
        ))
    );
}

#[tokio::test]
async fn an_order_cancelled_while_its_partner_call_ran_is_not_moved_on() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::StockReserved).await;
    let payments = CancellingPayments {
        store: store.clone(),
        charges: AtomicUsize::new(0),
    };
    let result = take_payment::handle(&store, &payments, &catalogue(), input(&id)).await;
    assert_eq!(
        result.err().map(|e| e.name),
        Some(ErrorName::OrderCancelled)
    );
    assert_eq!(payments.charges.load(Ordering::SeqCst), 1);
    // The charge happened; the compensation path (RefundPayment) undoes it.
    assert_eq!(status(&store, &id).await, OrderStatus::Cancelling);
    assert_eq!(
        stored_steps(&store, &id).await,
        [(
            "TakePayment".to_owned(),
            order_core::store::StepStatus::Failed,
            Some("Order.Cancelled".to_owned())
        )],
        "the step is not recorded as done"
    );
}

#[tokio::test]
async fn a_compensation_takes_the_order_into_compensating_with_its_failure_and_runs_once() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::PaymentTaken).await;
    let warehouse = CountingWarehouse::default();
    let first = release_stock::handle(&store, &warehouse, rollback(&id)).await;
    let second = release_stock::handle(&store, &warehouse, rollback(&id)).await;
    let summary = |r: &Result<order_core::activity::ActivityOutput, order_core::ActivityError>| {
        r.as_ref()
            .map(|o| (o.status, o.replayed))
            .map_err(|e| e.name)
    };
    assert_eq!(summary(&first), Ok((OrderStatus::Compensating, false)));
    assert_eq!(summary(&second), Ok((OrderStatus::Compensating, true)));
    assert_eq!(warehouse.releases.load(Ordering::SeqCst), 1);
    // The failure that started the rollback is on the order from its first step on.
    let recorded = ["TakePayment", "Payment.Declined", "card declined"];
    assert_failure_recorded(&store, &id, OrderStatus::Compensating, recorded).await;
}

#[tokio::test]
async fn a_compensation_leaves_a_cancelling_order_cancelling_and_refuses_a_completed_one() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let cancelling = place(&store).await;
    advance(&store, &cancelling, OrderStatus::StockReserved).await;
    assert!(matches!(
        store.cancel(&cancelling).await,
        Ok(Cancellation::Started(_))
    ));
    let warehouse = CountingWarehouse::default();
    let released = release_stock::handle(&store, &warehouse, rollback(&cancelling)).await;
    assert_eq!(released.map(|o| o.status), Ok(OrderStatus::Cancelling));
    assert_eq!(status(&store, &cancelling).await, OrderStatus::Cancelling);
    assert_eq!(
        stored_steps(&store, &cancelling).await,
        [(
            "ReleaseStock".to_owned(),
            order_core::store::StepStatus::Succeeded,
            None
        )]
    );

    let delivered = place(&store).await;
    advance(&store, &delivered, OrderStatus::Delivered).await;
    let refused = release_stock::handle(&store, &warehouse, rollback(&delivered)).await;
    assert_eq!(
        refused.err().map(|e| e.name),
        Some(ErrorName::OrderDelivered),
        "a delivered order's rollback stops"
    );
    assert_eq!(
        warehouse.releases.load(Ordering::SeqCst),
        1,
        "nothing undone for the delivered order"
    );
    assert_eq!(status(&store, &delivered).await, OrderStatus::Delivered);
    // (ArrangeShipment is the step `advance` ships the order with.)
    assert_eq!(
        stored_steps(&store, &delivered).await,
        [
            (
                "ArrangeShipment".to_owned(),
                order_core::store::StepStatus::Succeeded,
                None
            ),
            (
                "ReleaseStock".to_owned(),
                order_core::store::StepStatus::Failed,
                Some("Order.Delivered".to_owned())
            )
        ],
        "the refused compensation is recorded as failed, not done"
    );
}

fn delivery() -> Delivery {
    Delivery {
        event_id: format!("evt-{}", unique_key()),
        shipment_id: "shp-1".into(),
        delivered_at: "2026-11-26T10:00:00.000Z".into(),
    }
}

#[tokio::test]
async fn a_token_stored_first_is_found_by_the_delivery_and_a_repeated_event_changes_nothing() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    assert_eq!(
        store
            .store_task_token(
                &id,
                &order_core::store::TaskToken {
                    token: "token-1",
                    attempt: None
                }
            )
            .await,
        Ok(TokenStored::Waiting)
    );
    let event = delivery();
    let first = record_delivery(&store, &id, &event).await;
    let order = match first {
        Ok(DeliveryRecorded::Now(order)) => order,
        other => panic!("{other:?}"),
    };
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.task_token.as_deref(), Some("token-1"));
    assert_eq!(order.delivery.as_ref(), Some(&event));
    let version = order.version;
    // The same event again is recognised by its id.
    let again = record_delivery(&store, &id, &event).await;
    assert!(
        matches!(&again, Ok(DeliveryRecorded::Duplicate(o)) if o.version == version),
        "{again:?}"
    );
    // Another event for the same shipment finds the order delivered.
    let other = record_delivery(&store, &id, &delivery()).await;
    assert!(
        matches!(&other, Ok(DeliveryRecorded::Before(o)) if o.version == version),
        "{other:?}"
    );
    // An event for another shipment is refused, before and after the delivery alike.
    let wrong = Delivery {
        shipment_id: "shp-2".into(),
        ..delivery()
    };
    assert_eq!(
        record_delivery(&store, &id, &wrong).await,
        Ok(DeliveryRecorded::WrongShipment)
    );
    assert_eq!(
        store.require_order(&id).await.map(|o| o.version).ok(),
        Some(version)
    );
}

#[tokio::test]
async fn a_delivery_for_another_shipment_than_the_one_booked_changes_nothing() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    let wrong = Delivery {
        shipment_id: "shp-someone-else".into(),
        ..delivery()
    };
    assert_eq!(
        record_delivery(&store, &id, &wrong).await,
        Ok(DeliveryRecorded::WrongShipment)
    );
    assert_eq!(status(&store, &id).await, OrderStatus::Shipped);
    // The event id was not kept: the courier's corrected event with it is recorded.
    let corrected = Delivery {
        shipment_id: "shp-1".into(),
        ..wrong
    };
    assert!(matches!(
        record_delivery(&store, &id, &corrected).await,
        Ok(DeliveryRecorded::Now(_))
    ));
}

#[tokio::test]
async fn a_delivery_recorded_before_the_token_tells_await_delivery_to_resume_itself() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    assert!(matches!(
        record_delivery(&store, &id, &delivery()).await,
        Ok(DeliveryRecorded::Now(_))
    ));
    let stored = store
        .store_task_token(
            &id,
            &order_core::store::TaskToken {
                token: "token-late",
                attempt: None,
            },
        )
        .await;
    assert!(
        matches!(&stored, Ok(TokenStored::AlreadyDelivered(o)) if o.task_token.is_none()),
        "{stored:?}"
    );
}

#[tokio::test]
async fn a_delivery_for_an_order_that_has_not_shipped_is_a_conflict() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Provisioned).await;
    let result = record_delivery(&store, &id, &delivery()).await;
    assert!(
        matches!(
            result,
            Err(order_core::store::StoreError::Conflict {
                actual: OrderStatus::Provisioned,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(status(&store, &id).await, OrderStatus::Provisioned);
}

#[tokio::test]
async fn cancelling_is_refused_once_the_order_has_shipped_and_repeating_it_is_harmless() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let shipped = place(&store).await;
    advance(&store, &shipped, OrderStatus::Shipped).await;
    assert!(matches!(
        store.cancel(&shipped).await,
        Ok(Cancellation::TooLate(o)) if o.status == OrderStatus::Shipped
    ));
    let provisioned = place(&store).await;
    advance(&store, &provisioned, OrderStatus::Provisioned).await;
    assert!(matches!(
        store.cancel(&provisioned).await,
        Ok(Cancellation::Started(o)) if o.status == OrderStatus::Cancelling
    ));
    assert!(matches!(
        store.cancel(&provisioned).await,
        Ok(Cancellation::AlreadyCancelling(_))
    ));
}

fn waiting(id: &OrderId, token: &str) -> await_delivery::AwaitDeliveryInput {
    await_delivery::AwaitDeliveryInput {
        order_id: id.to_string(),
        task_token: token.to_owned(),
        execution: Some(id.to_string()),
        attempt: Some(0),
        outage_waits: Some(0),
    }
}

#[tokio::test]
async fn await_delivery_parks_a_shipped_order_with_its_token() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    let parked = await_delivery::handle(&store, &stack.sfn(), waiting(&id, "token-a")).await;
    assert_eq!(
        parked.map(|o| (o.status, o.replayed)),
        Ok((OrderStatus::Shipped, false))
    );
    let order = store.require_order(&id).await.ok();
    assert_eq!(order.and_then(|o| o.task_token), Some("token-a".to_owned()));
}

/// An execution that parks the way AwaitDelivery does (a `.waitForTaskToken` task, which
/// fails with States.Timeout after 30 s), for order `id`: a one-state machine whose task
/// hands its token over through an SQS queue. Returns the execution's ARN and the token.
async fn an_execution_parked_with_its_token(stack: &Stack, id: &OrderId) -> (String, String) {
    let name = format!("parked-{}", &unique_key()[..8]);
    let queue_url = stack
        .sqs()
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("the token queue can be created")
        .queue_url
        .expect("CreateQueue answers with the queue's URL");
    let definition = serde_json::json!({
        "StartAt": "AwaitDelivery",
        "States": {"AwaitDelivery": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": queue_url,
                "MessageBody": {"order_id.$": "$.order_id", "task_token.$": "$$.Task.Token"}
            },
            "TimeoutSeconds": 30,
            "End": true
        }}
    });
    let machine = stack
        .sfn()
        .create_state_machine()
        .name(&name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/ParkedForDeliveryRole")
        .send()
        .await
        .expect("the parking state machine can be created")
        .state_machine_arn;
    let execution = stack
        .sfn()
        .start_execution()
        .state_machine_arn(machine)
        .name(id.as_str())
        .input(serde_json::json!({"order_id": id}).to_string())
        .send()
        .await
        .expect("the parking execution starts")
        .execution_arn;
    let (queue_url, id) = (&queue_url, &id);
    let token = system_tests::eventually(
        &format!("execution {execution} hands over its task token"),
        std::time::Duration::from_secs(60),
        std::time::Duration::ZERO,
        || async move {
            let received = stack
                .sqs()
                .receive_message()
                .queue_url(queue_url)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("the token queue can be read");
            let Some(body) = received.messages().first().and_then(|m| m.body()) else {
                return Err("no message yet".to_owned());
            };
            let message: serde_json::Value =
                serde_json::from_str(body).expect("the task's message is JSON");
            assert_eq!(message["order_id"], id.as_str(), "{message}");
            message["task_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a message without a token: {message}"))
        },
    )
    .await;
    (execution, token)
}

#[tokio::test]
async fn await_delivery_resumes_the_execution_itself_when_the_delivery_came_first() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    let (execution, token) = an_execution_parked_with_its_token(&stack, &id).await;
    let event = delivery();
    assert!(matches!(
        record_delivery(&store, &id, &event).await,
        Ok(DeliveryRecorded::Now(_))
    ));
    // The webhook found no token to resume with; AwaitDelivery, which holds the waiting
    // task's token, must resume the execution itself.
    let resumed = await_delivery::handle(&store, &stack.sfn(), waiting(&id, &token)).await;
    assert_eq!(
        resumed.map(|o| (o.status, o.replayed, o.references.get("event_id").cloned())),
        Ok((OrderStatus::Delivered, true, Some(event.event_id.clone())))
    );
    assert_eq!(stack.execution_status(&execution).await, "SUCCEEDED");
    let output = stack
        .describe_execution(&execution)
        .await
        .output
        .expect("a succeeded execution has an output");
    let output: serde_json::Value =
        serde_json::from_str(&output).expect("the execution's output is JSON");
    assert_eq!(
        output,
        serde_json::json!({
            "event_id": event.event_id,
            "shipment_id": event.shipment_id,
            "delivered_at": event.delivered_at,
        }),
        "the execution goes on with the delivery as AwaitDelivery's result"
    );
    let order = store.require_order(&id).await.ok();
    assert_eq!(order.and_then(|o| o.task_token), None, "no token stored");
}

#[tokio::test]
async fn await_delivery_run_again_after_the_execution_was_resumed_reports_the_delivery() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let id = place(&store).await;
    advance(&store, &id, OrderStatus::Shipped).await;
    let (execution, token) = an_execution_parked_with_its_token(&stack, &id).await;
    assert!(matches!(
        record_delivery(&store, &id, &delivery()).await,
        Ok(DeliveryRecorded::Now(_))
    ));
    let first = await_delivery::handle(&store, &stack.sfn(), waiting(&id, &token)).await;
    assert_eq!(first.map(|o| o.status), Ok(OrderStatus::Delivered));
    assert_eq!(stack.execution_status(&execution).await, "SUCCEEDED");
    // A repeated invocation (its first answer was lost) finds the token used: Step
    // Functions refuses it, and the step still reports the delivery instead of failing.
    let again = await_delivery::handle(&store, &stack.sfn(), waiting(&id, &token)).await;
    assert_eq!(
        again.map(|o| (o.status, o.replayed)),
        Ok((OrderStatus::Delivered, true))
    );
}

#[tokio::test]
async fn a_partner_token_rotated_after_the_cold_start_is_read_again_when_the_partner_refuses_it() {
    use order_core::partners::{HttpPartner, HttpPayments, Payments};
    let stack = Stack::connect().await;
    let deployed = std::env::var("PAYMENTS_API_TOKEN_SECRET").unwrap_or_default();
    // The function started while its secret held a token the partner no longer takes.
    let secret =
        ScratchSecret::create(&stack, "payments-token", "a-token-the-partner-revoked").await;
    let right = order_core::secrets::read(&secret.client, &deployed)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let payments = HttpPartner::with_secret(
        Partner::Payments,
        &format!("{}/payments", stack.partner_simulator_url()),
        secret.client.clone(),
        secret.name.clone(),
        std::time::Duration::from_secs(5),
    )
    .await;
    let payments = HttpPayments(payments.unwrap_or_else(|error| panic!("{error}")));
    // Rotated since: the secret now holds the token the partner takes.
    secret.rotate(&right).await;
    let order = OrderId::generate();
    let call = CallContext::new(&order, &unique_merchant(), "TakePayment");
    // The partner refuses the old token; the adapter reads the secret again and the
    // charge goes through with the new one, once.
    let charged = payments
        .charge(
            &call,
            &Amount {
                cents: 1000,
                currency: "EUR".into(),
            },
        )
        .await;
    assert!(charged.is_ok(), "{charged:?}");
    let ledger = stack.partners().ledger(order.as_str()).await;
    assert_eq!(ledger.entries("charges").len(), 1, "{ledger:?}");
    secret.delete().await;
}

/// Records `delivery` as the webhook does: with the `Order Delivered` built from the order.
async fn record_delivery(
    store: &order_core::store::OrderStore,
    id: &order_core::OrderId,
    delivery: &order_core::store::Delivery,
) -> Result<order_core::store::DeliveryRecorded, order_core::store::StoreError> {
    let announced = order_core::store::contract::delivered_event(store, id, delivery).await;
    store.record_delivery(id, delivery, &announced).await
}
