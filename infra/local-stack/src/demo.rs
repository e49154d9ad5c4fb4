//! `make demo`: six real orders through the running stack, side by side: one of each kind,
//! one whose payment is declined, one that rides out a warehouse outage, and one cancelled
//! while provisioning is down. Each is placed through the orders API's function URL,
//! followed to its end, and shown as a timeline of its steps (attempts, outcome, partner
//! references), next to what the partners' ledger says.

use crate::stack::{read_env, StackError};
use partner_simulator::client::Admin;
use partner_simulator::faults::{Fault, RuleSpec};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the demo waits for all orders to end.
const PATIENCE: Duration = Duration::from_secs(180);
const ENDED: [&str; 4] = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];

fn other(message: impl Into<String>) -> StackError {
    StackError::Other(message.into())
}

/// One demo order: what it shows and how it should end.
struct Scenario {
    title: &'static str,
    kind: &'static str,
    /// Fault rules for this order's merchant (`merchant_id` is filled in).
    faults: Vec<RuleSpec>,
    /// Cancel the order once it reaches this status.
    cancel_at: Option<&'static str>,
    expected: &'static str,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            title: "new merchant",
            kind: "new_merchant",
            faults: vec![],
            cancel_at: None,
            expected: "COMPLETED",
        },
        Scenario {
            title: "additional devices",
            kind: "additional_devices",
            faults: vec![],
            cancel_at: None,
            expected: "COMPLETED",
        },
        Scenario {
            title: "replacement under warranty",
            kind: "replacement",
            faults: vec![],
            cancel_at: None,
            expected: "COMPLETED",
        },
        Scenario {
            title: "payment declined",
            kind: "new_merchant",
            faults: vec![RuleSpec::new("payments", "charge", Fault::Refuse)],
            cancel_at: None,
            expected: "FAILED",
        },
        Scenario {
            title: "warehouse outage ridden out",
            kind: "additional_devices",
            faults: vec![RuleSpec {
                count: Some(5),
                ..RuleSpec::new("warehouse", "reserve", Fault::Unavailable)
            }],
            cancel_at: None,
            expected: "COMPLETED",
        },
        Scenario {
            title: "cancelled before shipping",
            kind: "new_merchant",
            faults: vec![RuleSpec::new("terminals", "provision", Fault::Unavailable)],
            cancel_at: Some("PAYMENT_TAKEN"),
            expected: "CANCELLED",
        },
    ]
}

fn request(kind: &str, merchant: &str) -> Value {
    let mut order = order_core::order::example_request(merchant);
    order["kind"] = Value::from(kind);
    if kind == "replacement" {
        order["lines"] = json!([{"sku": "A920-PRO", "quantity": 2}]);
        order["replace_serials"] = json!(["SN-A920-000417", "SN-A920-000932"]);
    }
    order
}

struct Placed<'a> {
    scenario: &'a Scenario,
    id: String,
    cancelled: bool,
    view: Value,
    elapsed: Option<f64>,
}

/// Runs the demo against the stack in `dir`. Returns whether every order ended as expected.
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
    let partners = get("PARTNER_SIMULATOR_URL")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| other(e.to_string()))?;
    let simulator = Admin::new(http.clone(), &partners);
    // Requests to the orders API are SigV4-signed with the stack's credentials (API Gateway
    // wants IAM authorization on the MiniStack stack; function URLs ignore it).
    let signer = crate::signing::Signer::from_settings(|name| env.get(name).cloned());
    let (signer, client, api_base) = (&signer, &http, api.as_str());
    let send = move |request: reqwest::RequestBuilder, what: String| async move {
        let mut request = request.build().map_err(|e| other(format!("{what}: {e}")))?;
        if request.url().as_str().starts_with(api_base) {
            signer
                .sign(&mut request)
                .map_err(|e| other(e.to_string()))?;
        }
        let response = client
            .execute(request)
            .await
            .map_err(|e| other(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        Ok::<_, StackError>((status, body))
    };

    let scenarios = scenarios();
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    println!(
        "Placing {} orders through {api}/orders ...",
        scenarios.len()
    );
    let started = Instant::now();
    let mut placed = Vec::new();
    for (n, scenario) in scenarios.iter().enumerate() {
        let merchant = format!("m-demo-{run_id}-{}", n + 1);
        let mut rules = scenario.faults.clone();
        for rule in &mut rules {
            rule.merchant_id = Some(merchant.clone());
        }
        if !rules.is_empty() {
            simulator
                .add_faults(&rules)
                .await
                .map_err(|e| other(e.to_string()))?;
        }
        let (status, body) = send(
            http.post(format!("{api}/orders"))
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&request(scenario.kind, &merchant)),
            "POST /orders".into(),
        )
        .await?;
        if status != 202 {
            return Err(other(format!("POST /orders answered {status}: {body}")));
        }
        let id = body["order_id"].as_str().unwrap_or_default().to_owned();
        println!("  {:<28} {id}  ({})", scenario.title, scenario.kind);
        placed.push(Placed {
            scenario,
            id,
            cancelled: false,
            view: Value::Null,
            elapsed: None,
        });
    }

    println!();
    println!("Following them (statuses as they change):");
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline && placed.iter().any(|p| p.elapsed.is_none()) {
        for order in placed.iter_mut().filter(|p| p.elapsed.is_none()) {
            let (_, view) = send(
                http.get(format!("{api}/orders/{}", order.id)),
                format!("GET /orders/{}", order.id),
            )
            .await?;
            let status = view["status"].as_str().unwrap_or("?").to_owned();
            if order.view["status"].as_str() != Some(status.as_str()) {
                println!(
                    "  {:>6.2}s  {:<28} {status}",
                    started.elapsed().as_secs_f64(),
                    order.scenario.title
                );
            }
            if order.scenario.cancel_at == Some(status.as_str()) && !order.cancelled {
                let (code, body) = send(
                    http.post(format!("{api}/orders/{}/cancel", order.id)),
                    "POST /cancel".into(),
                )
                .await?;
                println!(
                    "  {:>6.2}s  {:<28} POST /orders/{{id}}/cancel -> {code} {}",
                    started.elapsed().as_secs_f64(),
                    order.scenario.title,
                    body["status"].as_str().unwrap_or_default()
                );
                order.cancelled = true;
            }
            if ENDED.contains(&status.as_str()) {
                order.elapsed = Some(started.elapsed().as_secs_f64());
            }
            order.view = view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut all_as_expected = true;
    for order in &placed {
        let ledger = simulator
            .order_ledger(&order.id)
            .await
            .map_err(|e| other(e.to_string()))?;
        let ledger = serde_json::to_value(ledger).map_err(|e| other(e.to_string()))?;
        print_timeline(order, &ledger);
        all_as_expected &= order.view["status"] == order.scenario.expected;
    }

    println!();
    println!(
        "  {:<28} {:<19} {:<10} {:<10} {:>8}",
        "order", "kind", "expected", "ended", "seconds"
    );
    for order in &placed {
        println!(
            "  {:<28} {:<19} {:<10} {:<10} {:>8}",
            order.scenario.title,
            order.scenario.kind,
            order.scenario.expected,
            order.view["status"].as_str().unwrap_or("?"),
            order
                .elapsed
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
        );
    }
    println!();
    if all_as_expected {
        println!("All {} orders ended as expected.", placed.len());
    } else {
        println!("Some orders did not end as expected; see their timelines above and the logs in {}/logs.", dir.display());
    }
    Ok(all_as_expected)
}

fn print_timeline(order: &Placed<'_>, ledger: &Value) {
    let view = &order.view;
    println!();
    println!(
        "{} ({}) {}: {}",
        order.scenario.title,
        order.scenario.kind,
        order.id,
        view["status"].as_str().unwrap_or("?")
    );
    if let Some(tracking) = view["tracking_number"].as_str() {
        println!("  tracking number {tracking}");
    }
    if let Some(failure) = view.get("failure").filter(|f| f.is_object()) {
        println!(
            "  failure at {}: {} - {}",
            failure["step"].as_str().unwrap_or_default(),
            failure["error"].as_str().unwrap_or_default(),
            failure["reason"].as_str().unwrap_or_default()
        );
    }
    println!(
        "  {:<26} {:<10} {:>8}  {:<12}  {:>8}  references",
        "step", "status", "attempts", "started", "took"
    );
    for step in view["steps"].as_array().into_iter().flatten() {
        let started = step["started_at"].as_str().unwrap_or_default();
        let clock = started.get(11..23).unwrap_or(started);
        let took = duration(started, step["finished_at"].as_str());
        let references: Vec<String> = step["references"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let error = step["error"]
            .as_str()
            .map(|e| format!("  error={e}"))
            .unwrap_or_default();
        println!(
            "  {:<26} {:<10} {:>8}  {:<12}  {:>8}  {}{error}",
            step["step"].as_str().unwrap_or_default(),
            step["status"].as_str().unwrap_or_default(),
            step["attempts"].as_u64().unwrap_or_default(),
            clock,
            took,
            clip(&references.join(" "), 70),
        );
    }
    let count = |kind: &str| {
        let entries = ledger[kind].as_array().cloned().unwrap_or_default();
        let statuses: Vec<String> = entries
            .iter()
            .map(|e| e["status"].as_str().unwrap_or("sent").to_owned())
            .collect();
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(",")
        }
    };
    println!(
        "  partner ledger: reservations {} | charges {} | terminals {} | shipments {} | messages {}",
        count("reservations"),
        count("charges"),
        summarise(&count("terminals")),
        count("shipments"),
        count("messages"),
    );
}

/// `provisioned,provisioned,provisioned` → `3 provisioned`.
fn summarise(statuses: &str) -> String {
    let parts: Vec<&str> = statuses.split(',').collect();
    match parts.as_slice() {
        [first, ..] if parts.iter().all(|p| p == first) && parts.len() > 1 => {
            format!("{} {first}", parts.len())
        }
        _ => statuses.to_owned(),
    }
}

fn duration(started: &str, finished: Option<&str>) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(started), finished.and_then(parse)) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds();
            if ms >= 1000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                format!("{ms}ms")
            }
        }
        _ => "-".to_owned(),
    }
}

fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(limit).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_orders_show_every_kind_a_decline_an_outage_and_a_cancellation() {
        let all = scenarios();
        let kinds: std::collections::BTreeSet<_> = all.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.len(), 3);
        let ends: Vec<_> = all.iter().map(|s| s.expected).collect();
        assert_eq!(
            ends,
            [
                "COMPLETED",
                "COMPLETED",
                "COMPLETED",
                "FAILED",
                "COMPLETED",
                "CANCELLED"
            ]
        );
    }

    #[test]
    fn a_step_duration_is_shown_in_milliseconds_or_seconds() {
        assert_eq!(
            duration("2026-11-26T10:00:00.000Z", Some("2026-11-26T10:00:00.250Z")),
            "250ms"
        );
        assert_eq!(
            duration("2026-11-26T10:00:00.000Z", Some("2026-11-26T10:00:02.500Z")),
            "2.5s"
        );
        assert_eq!(duration("2026-11-26T10:00:00.000Z", None), "-");
    }

    #[test]
    fn identical_ledger_statuses_are_counted() {
        assert_eq!(summarise("provisioned,provisioned"), "2 provisioned");
        assert_eq!(summarise("provisioned"), "provisioned");
        assert_eq!(summarise("a,b"), "a,b");
    }
}
