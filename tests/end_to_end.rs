//! Orders through every real piece: the API (a function URL on the moto stack, the API
//! Gateway stage on MiniStack), a Step Functions execution in the emulator, the
//! activities (cargo lambda watch, or MiniStack's Lambda running the release bootstraps),
//! DynamoDB, and the partner simulator, whose ledger each test audits: what the partners
//! did, not just the status. `make test` runs this file on both stacks.
//!
//! Every test uses a merchant of its own and scopes its fault rules to it, so the tests
//! run in parallel against one stack.

use order_core::Order;
use serde_json::{json, Value};
use system_tests::{
    catalogue, fault, order_of_kind, skip_on, step, steps, unique_key, unique_merchant,
    valid_order, Backend, Ledger, Stack, COMPLETED_NEW_ORDER,
};

const ENDED: [&str; 4] = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];

fn succeeded(names: &[&str]) -> Vec<(String, String, u64)> {
    names
        .iter()
        .map(|n| ((*n).to_owned(), "SUCCEEDED".to_owned(), 1))
        .collect()
}

fn id_list(entries: &[Value], field: &str) -> Vec<String> {
    entries
        .iter()
        .map(|e| e[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Places `order` and waits for its end; returns its id, execution ARN and final view.
async fn run(stack: &Stack, order: &Value) -> (String, String, Value) {
    let (id, arn) = stack.place(order).await;
    let view = stack.wait_for_status(&id, &ENDED).await;
    (id, arn, view)
}

/// Runs a new_merchant order for a merchant whose partners apply `rules`.
async fn run_with(stack: &Stack, rules: Value) -> (String, String, Value) {
    let merchant = stack.partners().merchant_with(rules).await;
    run(stack, &valid_order(&merchant)).await
}

/// The order ended FAILED at `step` with `error`.
fn assert_failed_at(view: &Value, step: &str, error: &str) {
    let failure = (
        &view["status"],
        &view["failure"]["step"],
        &view["failure"]["error"],
    );
    assert_eq!(
        failure,
        (&json!("FAILED"), &json!(step), &json!(error)),
        "{view}"
    );
}

fn assert_one_delivered_order(ledger: &Ledger, view: &Value, terminals: usize) {
    assert_eq!(ledger.statuses("reservations"), ["reserved"], "{ledger:?}");
    assert_eq!(
        ledger.statuses("terminals"),
        vec!["provisioned"; terminals],
        "{ledger:?}"
    );
    assert_eq!(ledger.statuses("shipments"), ["delivered"], "{ledger:?}");
    assert_eq!(ledger.entries("messages").len(), 1, "{ledger:?}");
    let shipment = &ledger.entries("shipments")[0];
    assert_eq!(view["tracking_number"], shipment["tracking_number"]);
    let references = &step(view, "ProvisionTerminals")["references"]["terminal_ids"];
    let mut provisioned = id_list(&ledger.entries("terminals"), "terminal_id");
    let mut recorded: Vec<String> = references
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    provisioned.sort();
    recorded.sort();
    assert_eq!(recorded, provisioned);
}

#[tokio::test]
async fn a_new_merchant_order_is_reserved_charged_provisioned_shipped_delivered_and_completed() {
    let stack = Stack::connect().await;
    let (id, arn, view) = run(&stack, &valid_order(&unique_merchant())).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    assert_eq!(
        steps(&view),
        succeeded(&[
            "ValidateOrder",
            "ReserveStock",
            "TakePayment",
            "ProvisionTerminals",
            "ArrangeShipment",
            "AwaitDelivery",
            "NotifyCustomer",
            "CompleteOrder",
        ])
    );
    let ledger = stack.partners().ledger(&id).await;
    assert_one_delivered_order(&ledger, &view, 3);
    let charges = ledger.entries("charges");
    assert_eq!(ledger.statuses("charges"), ["captured"], "{ledger:?}");
    // 2 x A920-PRO at 349.00 and 1 x P400-PLUS at 159.00, in Berlin.
    assert_eq!(charges[0]["amount_cents"], 2 * 34_900 + 15_900);
    assert_eq!(charges[0]["currency"], "EUR");
    assert_eq!(
        step(&view, "TakePayment")["references"]["charge_id"],
        charges[0]["charge_id"]
    );
    assert!(view["delivery"]["delivered_at"].is_string(), "{view}");
}

#[tokio::test]
async fn an_additional_devices_order_runs_the_same_flow_and_is_charged() {
    let stack = Stack::connect().await;
    let order = order_of_kind("additional_devices", &unique_merchant());
    let (id, arn, view) = run(&stack, &order).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    assert_eq!(view["kind"], "additional_devices");
    let ledger = stack.partners().ledger(&id).await;
    assert_one_delivered_order(&ledger, &view, 3);
    assert_eq!(ledger.statuses("charges"), ["captured"], "{ledger:?}");
}

#[tokio::test]
async fn a_replacement_is_not_charged_deactivates_the_faulty_terminals_and_gets_a_return_label() {
    let stack = Stack::connect().await;
    let order = order_of_kind("replacement", &unique_merchant());
    let (id, arn, view) = run(&stack, &order).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    assert_eq!(
        steps(&view),
        succeeded(&[
            "ValidateOrder",
            "ReserveStock",
            "DeactivateFaultyTerminals",
            "CreateReturnLabel",
            "ProvisionTerminals",
            "ArrangeShipment",
            "AwaitDelivery",
            "NotifyCustomer",
            "CompleteOrder",
        ])
    );
    let ledger = stack.partners().ledger(&id).await;
    assert_one_delivered_order(&ledger, &view, 2);
    assert_eq!(ledger.entries("charges"), Vec::<Value>::new(), "no charge");
    let deactivations = ledger.entries("deactivations");
    assert_eq!(deactivations.len(), 1, "{ledger:?}");
    assert_eq!(
        deactivations[0]["serials"],
        json!(["SN-FAULTY-0001", "SN-FAULTY-0002"])
    );
    let labels = ledger.entries("return_labels");
    assert_eq!(labels.len(), 1, "{ledger:?}");
    assert_eq!(
        step(&view, "CreateReturnLabel")["references"]["return_label_id"],
        labels[0]["return_label_id"]
    );
}

#[tokio::test]
async fn a_declined_payment_releases_the_stock_and_fails_the_order_with_the_reason() {
    let stack = Stack::connect().await;
    let (id, arn, view) = run_with(&stack, json!([fault("payments", "charge", "refuse")])).await;
    assert_failed_at(&view, "TakePayment", "Payment.Declined");
    assert!(
        view["failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("declined")),
        "{view}"
    );
    // Permanent: tried once, never retried.
    assert_eq!(step(&view, "TakePayment")["attempts"], 1);
    assert_eq!(step(&view, "TakePayment")["status"], "FAILED");
    assert_eq!(step(&view, "ReleaseStock")["status"], "SUCCEEDED");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[
        ("reservations", &["released"]),
        ("charges", &[]),
        ("terminals", &[]),
        ("shipments", &[]),
    ]);
}

#[tokio::test]
async fn refused_provisioning_refunds_the_payment_and_releases_the_stock() {
    let stack = Stack::connect().await;
    let merchant = stack
        .partners()
        .merchant_with(json!([fault("terminals", "provision", "refuse")]))
        .await;
    let (id, arn, view) = run(&stack, &valid_order(&merchant)).await;
    assert_failed_at(&view, "ProvisionTerminals", "Provisioning.Rejected");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[
        ("charges", &["refunded"]),
        ("reservations", &["released"]),
        ("terminals", &[]),
    ]);
    // The compensations ran, each once, in reverse order of the steps they undo.
    let ran: Vec<String> = steps(&view).into_iter().map(|s| s.0).collect();
    let compensations = [
        "DeprovisionTerminals",
        "RefundPayment",
        "ReleaseStock",
        "RecordFailure",
    ];
    let ran_compensations: Vec<&str> = ran
        .iter()
        .map(String::as_str)
        .filter(|s| compensations.contains(s))
        .collect();
    assert_eq!(ran_compensations, compensations, "{ran:?}");
}

#[tokio::test]
async fn a_refused_shipment_deprovisions_refunds_and_releases() {
    let stack = Stack::connect().await;
    let (id, _, view) = run_with(&stack, json!([fault("courier", "ship", "refuse")])).await;
    assert_failed_at(&view, "ArrangeShipment", "Shipment.Rejected");
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(
        ledger.statuses("terminals"),
        vec!["deprovisioned"; 3],
        "{ledger:?}"
    );
    ledger.assert_statuses(&[
        ("charges", &["refunded"]),
        ("reservations", &["released"]),
        ("shipments", &[]),
    ]);
    assert_eq!(step(&view, "CancelShipment")["status"], "SUCCEEDED");
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_order_completes_with_the_attempts_recorded() {
    let stack = Stack::connect().await;
    let (id, _, view) = run_with(
        &stack,
        json!([{"partner": "payments", "operation": "charge", "fault": "unavailable", "count": 2}]),
    )
    .await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let payment = step(&view, "TakePayment");
    assert_eq!(payment["status"], "SUCCEEDED");
    assert_eq!(payment["attempts"], 3, "two failures, then success: {view}");
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(ledger.statuses("charges"), ["captured"], "{ledger:?}");
}

#[tokio::test]
async fn an_outage_longer_than_the_fast_retries_is_waited_out_and_the_order_completes() {
    let stack = Stack::connect().await;
    // Four attempts of fast retries fail, then the workflow parks in its outage wait.
    let (id, arn, view) = run_with(&stack, json!([{"partner": "warehouse", "operation": "reserve", "fault": "unavailable", "count": 5}])).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    // ReserveStock met the outage, the shared loop waited it out and went back to it.
    let entered = stack.states_entered(&arn).await;
    let outage = [
        "ReserveStock",
        "NoteReserveStockOutage",
        "WaitOutOutage",
        "RetryStepAfterOutage",
        "ReserveStock",
        "IsItAReplacement",
    ];
    let mut rest = entered.iter();
    assert!(
        outage.iter().all(|want| rest.any(|s| s == want)),
        "{entered:?} does not pass {outage:?} in that order"
    );
    assert!(
        step(&view, "ReserveStock")["attempts"].as_u64() >= Some(6),
        "{view}"
    );
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(ledger.statuses("reservations"), ["reserved"], "{ledger:?}");
}

#[tokio::test]
async fn slow_partners_that_acted_after_the_caller_timed_out_take_effect_exactly_once() {
    let stack = Stack::connect().await;
    let slow = |partner: &str, operation: &str| {
        json!({"partner": partner, "operation": operation,
               "fault": "slow", "count": 1, "delay_ms": 4000})
    };
    let merchant = stack
        .partners()
        .merchant_with(json!([
            slow("warehouse", "reserve"),
            slow("payments", "charge"),
            slow("courier", "ship")
        ]))
        .await;
    let (id, _, view) = run(&stack, &valid_order(&merchant)).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    for name in ["ReserveStock", "TakePayment", "ArrangeShipment"] {
        assert!(
            step(&view, name)["attempts"].as_u64() >= Some(2),
            "{name} timed out once and was retried: {view}"
        );
    }
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(COMPLETED_NEW_ORDER);
}

#[tokio::test]
async fn cancelling_before_shipment_undoes_every_step_and_ends_cancelled() {
    let stack = Stack::connect().await;
    let (id, arn) = stack.order_cancelled_while_charged().await;
    let again = stack.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(
        again.status, 202,
        "cancelling twice is fine: {}",
        again.text
    );

    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "CANCELLED", "{view}");
    assert_eq!(view["failure"]["error"], "Order.Cancelled");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[
        ("charges", &["refunded"]),
        ("reservations", &["released"]),
        ("terminals", &[]),
        ("shipments", &[]),
    ]);
}

#[tokio::test]
async fn an_order_that_has_shipped_cannot_be_cancelled() {
    let stack = Stack::connect().await;
    let (id, _) = stack.order_waiting_for_its_courier().await;
    let reply = stack.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "order_not_cancellable");
    stack.partners().deliver(&id).await;
    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[("charges", &["captured"]), ("shipments", &["delivered"])]);
}

#[tokio::test]
async fn a_delivery_event_sent_twice_resumes_the_order_once() {
    let stack = Stack::connect().await;
    let (id, arn) = stack.order_waiting_for_its_courier().await;
    let shipped = stack.wait_for_status(&id, &["SHIPPED"]).await;
    let event = json!({
        "event_id": format!("evt-test-{}", unique_key()),
        "type": "shipment.delivered",
        "order_id": id,
        "shipment_id": step(&shipped, "ArrangeShipment")["references"]["shipment_id"],
        "tracking_number": shipped["tracking_number"],
        "occurred_at": "2026-11-26T10:00:00.000Z",
    })
    .to_string();
    let send = |signature: String| {
        let url = stack.courier_webhook_url();
        let body = event.clone();
        async move {
            system_tests::http()
                .post(url)
                .header("content-type", "application/json")
                .header("x-courier-signature", signature)
                .body(body)
                .send()
                .await
        }
    };
    let forged = send(system_tests::sign_now(
        "not-the-secret-at-all",
        event.as_bytes(),
    ))
    .await;
    assert_eq!(forged.map(|r| r.status().as_u16()).ok(), Some(401));
    let signature = system_tests::sign_now(&stack.webhook_secret().await, event.as_bytes());
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = send(signature.clone())
            .await
            .unwrap_or_else(|error| panic!("webhook: {error}"));
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        answers.push((status, body["duplicate"].clone()));
    }
    assert_eq!(answers, [(200, json!(false)), (200, json!(true))]);

    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let entered = stack.states_entered(&arn).await;
    let after_delivery = entered.iter().filter(|s| *s == "NotifyCustomer").count();
    assert_eq!(after_delivery, 1, "resumed once: {entered:?}");
    assert_eq!(step(&view, "NotifyCustomer")["attempts"], 1);
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(ledger.entries("messages").len(), 1, "{ledger:?}");
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_puts_the_order_in_the_dead_letter_queue() {
    let stack = Stack::connect().await;
    let (id, arn) = stack
        .place_under(&[
            fault("payments", "charge", "refuse"),
            fault("warehouse", "release", "refuse"),
        ])
        .await;
    assert_eq!(stack.execution_status(&arn).await, "FAILED");
    let message = stack.dead_letter_for(&id).await;
    assert_eq!(message["execution_arn"], arn.as_str());
    assert_eq!(message["failed_step"], "ReleaseStock");
    assert_eq!(message["error"], "Partner.Rejected");
    assert!(
        message["cause"]
            .as_str()
            .is_some_and(|c| c.contains("release")),
        "{message}"
    );
    assert!(message["at"].is_string(), "{message}");
    // The order shows an operator where it stands: still being rolled back.
    let view = stack.get(&format!("/orders/{id}")).await.body;
    assert_eq!(view["status"], "COMPENSATING", "{view}");
    assert_eq!(step(&view, "ReleaseStock")["status"], "FAILED");
    let ledger = stack.partners().ledger(&id).await;
    // The stock it could not give back is still held: that is what the operator fixes.
    ledger.assert_statuses(&[("reservations", &["reserved"]), ("charges", &[])]);
}

#[tokio::test]
async fn an_order_that_fails_validation_in_the_workflow_ends_rejected_with_its_reason() {
    let stack = Stack::connect().await;
    // An order the API accepted, whose SKU has since left the catalogue.
    let mut order = Order::parse(&valid_order(&unique_merchant()), &catalogue())
        .unwrap_or_else(|problems| panic!("{problems}"));
    order.lines[1].sku = "DISCONTINUED-1".into();
    let id = order_core::store::contract::store_order(&stack.store(), &order)
        .await
        .order_id;
    let started = stack
        .sfn()
        .start_execution()
        .state_machine_arn(&stack.state_machine_arn)
        .name(id.as_str())
        .input(json!({"order_id": id}).to_string())
        .send()
        .await;
    let arn = started
        .unwrap_or_else(|error| panic!("{error:?}"))
        .execution_arn;
    let view = stack.wait_for_status(id.as_str(), &ENDED).await;
    assert_eq!(view["status"], "REJECTED", "{view}");
    assert_eq!(view["failure"]["step"], "ValidateOrder");
    assert_eq!(view["failure"]["error"], "Order.Invalid");
    let reason = view["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("lines[1].sku: unknown SKU \"DISCONTINUED-1\""),
        "{reason}"
    );
    // A permanent error is caught, never retried: one attempt, nothing else ran.
    assert_eq!(
        steps(&view),
        [
            ("ValidateOrder".to_owned(), "FAILED".to_owned(), 1),
            ("RecordFailure".to_owned(), "SUCCEEDED".to_owned(), 1)
        ]
    );
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    let entered = stack.states_entered(&arn).await;
    let from_validation: Vec<&str> = entered
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "ValidateOrder")
        .collect();
    assert_eq!(
        from_validation,
        [
            "ValidateOrder",
            "NoteValidateOrderFailed",
            "RecordFailure",
            "OrderEndedWithoutCompleting"
        ]
    );
    let ledger = stack.partners().ledger(id.as_str()).await;
    assert_eq!(ledger.entries("reservations"), Vec::<Value>::new());
}

#[tokio::test]
async fn an_unsigned_order_request_is_refused_before_any_function_runs() {
    if skip_on(
        Backend::Moto,
        "the moto stack serves the API on a function URL, which checks no IAM authorization",
    ) {
        return;
    }
    refused_before_any_function_runs(None, "an unsigned request").await;
}

#[tokio::test]
async fn an_order_request_signed_with_a_wrong_secret_is_refused_before_any_function_runs() {
    if skip_on(
        Backend::Moto,
        "the moto stack serves the API on a function URL, which checks no signature",
    ) {
        return;
    }
    let key = std::env::var("ORDERS_API_ACCESS_KEY_ID").unwrap_or_default();
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let forger = local_stack::signing::Signer::new(&key, "not-the-secret-of-this-key", &region);
    refused_before_any_function_runs(Some(&forger), "a wrong signature").await;
}

/// Places an order signed by `signer` (or not signed): API Gateway must answer 403 and
/// nothing may be written for the order's merchant.
async fn refused_before_any_function_runs(
    signer: Option<&local_stack::signing::Signer>,
    what: &str,
) {
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let mut request = system_tests::http()
        .post(format!("{}/orders", stack.orders_api))
        .header("content-type", "application/json")
        .header("Idempotency-Key", unique_key())
        .body(valid_order(&merchant).to_string())
        .build()
        .expect("the request builds");
    if let Some(signer) = signer {
        signer
            .sign(&mut request)
            .expect("the request can be signed");
    }
    let reply = system_tests::http().execute(request).await;
    let status = reply.map(|r| r.status().as_u16()).ok();
    assert_eq!(status, Some(403), "API Gateway must refuse {what}");
    assert_eq!(
        stack.orders_of_merchant(&merchant).await,
        0,
        "nothing was written"
    );
}
