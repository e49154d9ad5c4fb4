//! A function process that dies in the middle of an invocation, on the local stack:
//! the invocation fails as it does on AWS Lambda (HTTP 200, `X-Amz-Function-Error:
//! Unhandled`, error type `Runtime.ExitError`), the workflow retries it like every crash
//! name AWS gives (tests/workflow_definition.rs holds every Task to that), and the order
//! still completes, with the extra attempt in its step record and nothing done twice.
//!
//! The activity is held inside its partner call by a slow warehouse (it acts, then
//! answers after 1.5 s, within the 2 s partner timeout), and its process is killed with
//! SIGKILL, by PID, while the step record shows it running.

use serde_json::{json, Value};
use system_tests::{catalogue, step, valid_order, Stack};
use tokio::sync::Mutex;

/// Both tests kill every reserve-stock process: one at a time.
static KILLING: Mutex<()> = Mutex::const_new(());

const SLOW_RESERVE: fn() -> Value = || {
    json!([{"partner": "warehouse", "operation": "reserve", "fault": "slow",
            "count": 1, "delay_ms": 1500}])
};

/// Kills every running reserve-stock process (never the sandbox around it); returns how
/// many were killed.
fn kill_reserve_stock() -> usize {
    let dir = std::env::var("LOCAL_STACK_DIR").expect("run inside `local-stack exec`");
    let watch = local_stack::process::read_pids(std::path::Path::new(&dir))
        .into_iter()
        .find(|p| p.name == "cargo-lambda-watch" && p.is_alive())
        .expect("cargo lambda watch is running");
    chaos::processes::instances(watch.pid)
        .iter()
        .filter(|i| i.function == "reserve-stock")
        .filter(|i| chaos::processes::kill(i))
        .count()
}

/// The error names of the Task failures in an execution's history.
async fn task_failures(stack: &Stack, arn: &str) -> Vec<String> {
    let history = stack
        .sfn()
        .get_execution_history()
        .execution_arn(arn)
        .max_results(1000)
        .send()
        .await
        .expect("GetExecutionHistory");
    history
        .events()
        .iter()
        .filter_map(|e| e.task_failed_event_details())
        .filter_map(|d| d.error().map(str::to_owned))
        .collect()
}

/// Waits until ReserveStock of `id` has begun and not finished.
async fn reserve_stock_in_flight(stack: &Stack, id: &str) {
    stack
        .wait_for(id, "reserving stock", |view| {
            view["steps"].as_array().into_iter().flatten().any(|s| {
                s["step"] == "ReserveStock" && s["status"] == "STARTED" && s["attempts"] == 1
            })
        })
        .await;
}

#[tokio::test]
async fn an_activity_killed_mid_invocation_is_retried_as_runtime_exit_error_and_the_order_completes(
) {
    let _one_at_a_time = KILLING.lock().await;
    let stack = Stack::connect().await;
    let merchant = stack.partners().merchant_with(SLOW_RESERVE()).await;
    let (id, arn) = stack.place(&valid_order(&merchant)).await;
    reserve_stock_in_flight(&stack, &id).await;
    // Killed only once the warehouse has taken the call (the slow rule fired: it acted
    // and holds its answer back), so the retry meets a reservation already made.
    system_tests::eventually(
        "the warehouse took the reservation",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        || async {
            match stack
                .partners()
                .fired(&merchant, "warehouse", "reserve")
                .await
            {
                0 => Err("not yet".to_owned()),
                n => Ok(n),
            }
        },
    )
    .await;
    let replayed_before = stack.partners().replayed_requests().await;
    assert!(
        kill_reserve_stock() >= 1,
        "no reserve-stock process to kill"
    );

    let view = stack.wait_for_status(&id, &["COMPLETED", "FAILED"]).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let attempts = step(&view, "ReserveStock")["attempts"].as_u64();
    assert_eq!(
        attempts,
        Some(2),
        "the killed attempt and its retry are both counted: {view}"
    );
    let failures = task_failures(&stack, &arn).await;
    assert_eq!(
        failures,
        ["Runtime.ExitError"],
        "the engine saw Lambda's crash name, once"
    );
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(
        ledger.statuses("reservations"),
        ["reserved"],
        "one reservation, the killed attempt's: {ledger:?}"
    );
    assert!(
        stack.partners().replayed_requests().await > replayed_before,
        "the retry's call was answered from the killed attempt's kept answer (its key)"
    );
}

#[tokio::test]
async fn a_direct_invoke_whose_process_dies_gets_lambdas_crash_answer() {
    let _one_at_a_time = KILLING.lock().await;
    let stack = Stack::connect().await;
    let merchant = stack.partners().merchant_with(SLOW_RESERVE()).await;
    // An order stored and validated without an execution: only this invoke works on it.
    let order =
        order_core::Order::parse(&valid_order(&merchant), &catalogue()).expect("a valid order");
    let id = order_core::store::contract::store_order(&stack.store(), &order)
        .await
        .order_id;
    let input = order_core::activity::ActivityInput {
        order_id: id.to_string(),
    };
    validate_order::handle(&stack.store(), &catalogue(), input)
        .await
        .expect("validate the order");

    let url = format!(
        "{}/2015-03-31/functions/reserve-stock/invocations",
        stack.endpoint()
    );
    let invoke = tokio::spawn(
        system_tests::http()
            .post(url)
            .body(json!({"order_id": id.to_string()}).to_string())
            .send(),
    );
    reserve_stock_in_flight(&stack, id.as_str()).await;
    assert!(
        kill_reserve_stock() >= 1,
        "no reserve-stock process to kill"
    );
    let answer = invoke
        .await
        .expect("the invoke task")
        .expect("an answer, not a dropped connection");
    assert_eq!(
        answer.status(),
        200,
        "Lambda answers a crashed invocation with 200"
    );
    assert_eq!(
        answer
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok()),
        Some("Unhandled")
    );
    assert!(answer.headers().contains_key("x-amzn-requestid"));
    let body: Value = answer.json().await.expect("a JSON body");
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with("Runtime exited with error: signal: killed"),
        "{message}"
    );
}
