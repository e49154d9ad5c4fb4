//! `make demo`: places one real order through the orders API's function URL and follows
//! it through its Step Functions execution into DynamoDB, printing what happens.

use crate::deploy::Clients;
use crate::stack::{read_env, StackError};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the demo waits for the order to finish.
const PATIENCE: Duration = Duration::from_secs(120);

fn other(message: impl Into<String>) -> StackError {
    StackError::Other(message.into())
}

/// Runs the demo against the stack in `dir`. Returns whether the order completed.
pub async fn run(dir: &Path) -> Result<bool, StackError> {
    let env = read_env(&dir.join("stack.env"))?;
    let get = |name: &str| {
        env.get(name).cloned().ok_or_else(|| {
            other(format!(
                "{name} is missing from {}",
                dir.join("stack.env").display()
            ))
        })
    };
    let api = get("ORDERS_API_URL")?;
    let clients = Clients::local(&get("AWS_ENDPOINT_URL")?, &get("AWS_REGION")?).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| other(e.to_string()))?;

    let merchant = format!("m-demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let order = order_core::order::example_request(&merchant);
    println!("Placing a new_merchant order for {merchant}: 2 x A920-PRO, 1 x P400-PLUS, to Berlin");
    let started = Instant::now();
    let response = http
        .post(format!("{api}/orders"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&order)
        .send()
        .await
        .map_err(|e| other(format!("POST {api}/orders: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if status.as_u16() != 202 {
        return Err(other(format!("POST /orders answered {status}: {body}")));
    }
    let id = body["order_id"].as_str().unwrap_or_default().to_owned();
    let execution_arn = body["execution_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("  POST /orders -> {status}");
    println!("  order id       {id}");
    println!("  execution ARN  {execution_arn}");
    println!();
    println!("  {:>7}  status", "elapsed");

    let mut last_status = String::new();
    let mut view = Value::Null;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let response = http
            .get(format!("{api}/orders/{id}"))
            .send()
            .await
            .map_err(|e| other(format!("GET /orders/{id}: {e}")))?;
        view = response.json().await.unwrap_or_default();
        let current = view["status"].as_str().unwrap_or("?").to_owned();
        if current != last_status {
            println!("  {:>6.2}s  {current}", started.elapsed().as_secs_f64());
            last_status = current;
        }
        if matches!(
            last_status.as_str(),
            "COMPLETED" | "FAILED" | "REJECTED" | "CANCELLED"
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();

    let execution_status = wait_for_execution(&clients, &execution_arn).await;
    println!();
    println!("  Steps (from GET /orders/{id}):");
    println!(
        "  {:<16} {:<10} {:>8}  {:<24}  {:<24}",
        "step", "status", "attempts", "started", "finished"
    );
    for step in view["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<10} {:>8}  {:<24}  {:<24}",
            step["step"].as_str().unwrap_or_default(),
            step["status"].as_str().unwrap_or_default(),
            step["attempts"].as_u64().unwrap_or_default(),
            step["started_at"].as_str().unwrap_or_default(),
            step["finished_at"].as_str().unwrap_or("-"),
        );
    }
    println!();
    println!("  Step Functions execution: {execution_status}");
    let completed = last_status == "COMPLETED" && execution_status == "SUCCEEDED";
    if completed {
        println!("Order {id} reached COMPLETED in {elapsed:.2} s.");
    } else {
        println!(
            "Order {id} ended {last_status} (execution {execution_status}) after {elapsed:.2} s."
        );
        if let Some(failure) = view.get("failure").filter(|f| !f.is_null()) {
            println!("  failure: {failure}");
        }
    }
    Ok(completed)
}

/// The execution's status once it has left RUNNING (or RUNNING after 10 s).
async fn wait_for_execution(clients: &Clients, arn: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = clients
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map(|d| d.status.as_str().to_owned())
            .unwrap_or_else(|e| {
                format!("unknown ({})", aws_sdk_sfn::error::DisplayErrorContext(e))
            });
        if status != "RUNNING" || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
