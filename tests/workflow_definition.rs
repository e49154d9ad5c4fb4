//! Checks over the state machine definition itself (no stack needed): the error names it
//! matches exist, every Task retries transient errors, catches the rest and has a timeout,
//! and the execution's timeout covers the worst-case retry budget, computed from the file.

use order_core::ErrorName;
use serde_json::Value;
use std::collections::BTreeMap;
use system_tests::root;

fn definition() -> Value {
    let path = root().join("infra/statemachine/order-workflow.asl.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(error) => panic!("{}: {error}", path.display()),
    }
}

fn states(definition: &Value) -> BTreeMap<String, Value> {
    definition["States"]
        .as_object()
        .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn tasks(definition: &Value) -> BTreeMap<String, Value> {
    states(definition)
        .into_iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect()
}

fn error_names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["ErrorEquals"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

/// Error names AWS itself raises for Lambda tasks, which Retry may match.
const AWS_NAMES: [&str; 6] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "States.Timeout",
    "States.ALL",
];

#[test]
fn every_error_name_the_definition_matches_exists() {
    let definition = definition();
    for (name, task) in tasks(&definition) {
        for error in error_names(&task["Retry"])
            .into_iter()
            .chain(error_names(&task["Catch"]))
        {
            let known = ErrorName::parse(&error).is_some() || AWS_NAMES.contains(&error.as_str());
            assert!(
                known,
                "{name} matches {error:?}, which is neither ours nor AWS's"
            );
        }
    }
}

#[test]
fn every_task_retries_store_and_lambda_failures_and_never_a_permanent_error() {
    let definition = definition();
    let tasks = tasks(&definition);
    assert!(!tasks.is_empty());
    for (name, task) in tasks {
        let retried = error_names(&task["Retry"]);
        for required in [
            "Store.Unavailable",
            "Lambda.ServiceException",
            "States.Timeout",
        ] {
            assert!(
                retried.iter().any(|e| e == required),
                "{name} does not retry {required}"
            );
        }
        for error in &retried {
            let permanent = ErrorName::parse(error).is_some_and(|n| !n.is_transient());
            assert!(!permanent, "{name} retries the permanent error {error}");
            assert_ne!(error, "States.ALL", "{name} retries everything");
        }
        for retrier in task["Retry"].as_array().into_iter().flatten() {
            assert_eq!(
                retrier["JitterStrategy"], "FULL",
                "{name}: retries need jitter"
            );
            assert!(
                retrier["MaxDelaySeconds"].as_u64().is_some(),
                "{name}: retries need a maximum delay"
            );
        }
    }
}

#[test]
fn every_task_has_a_timeout_and_catches_what_retries_cannot_fix() {
    let definition = definition();
    for (name, task) in tasks(&definition) {
        assert!(
            task["TimeoutSeconds"].as_u64().is_some_and(|t| t > 0),
            "{name} has no TimeoutSeconds"
        );
        assert_eq!(
            error_names(&task["Catch"]),
            ["States.ALL"],
            "{name} must catch everything"
        );
    }
}

/// The longest an attempt sequence of one Task can take: every attempt times out, and
/// every retrier is spent, waiting its capped backoff between attempts.
fn task_budget(task: &Value) -> u64 {
    let timeout = task["TimeoutSeconds"].as_u64().unwrap_or(60);
    let mut attempts = 1;
    let mut waits = 0.0;
    for retrier in task["Retry"].as_array().into_iter().flatten() {
        let max_attempts = retrier["MaxAttempts"].as_u64().unwrap_or(3);
        let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
        let backoff = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
        let cap = retrier["MaxDelaySeconds"].as_f64().unwrap_or(f64::MAX);
        attempts += max_attempts;
        for retry in 0..max_attempts {
            let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
            waits += (interval * backoff.powi(exponent)).min(cap);
        }
    }
    attempts * timeout + waits.ceil() as u64
}

/// The worst case from `state` to the end: the longest path through Next and Catch.
fn worst_case(states: &BTreeMap<String, Value>, state: &str, depth: usize) -> u64 {
    assert!(
        depth <= states.len(),
        "the definition loops through {state}"
    );
    let Some(definition) = states.get(state) else {
        panic!("state {state} does not exist");
    };
    let own = match definition["Type"].as_str() {
        Some("Task") => task_budget(definition),
        Some("Wait") => definition["Seconds"].as_u64().unwrap_or(0),
        _ => 0,
    };
    let mut next: Vec<String> = definition["Next"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    next.extend(
        definition["Catch"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Next"].as_str().map(str::to_owned)),
    );
    own + next
        .iter()
        .map(|n| worst_case(states, n, depth + 1))
        .max()
        .unwrap_or(0)
}

#[test]
fn the_execution_timeout_covers_the_worst_case_retry_budget() {
    let definition = definition();
    let states = states(&definition);
    let start = definition["StartAt"].as_str().unwrap_or_default();
    let budget = worst_case(&states, start, 0);
    let timeout = definition["TimeoutSeconds"].as_u64().unwrap_or(0);
    println!("worst-case retry budget {budget} s, execution timeout {timeout} s");
    assert!(budget > 0);
    assert!(
        timeout >= budget,
        "execution TimeoutSeconds {timeout} < worst case {budget} s"
    );
}

#[test]
fn the_budget_of_a_task_counts_every_attempt_and_capped_wait() {
    let task = serde_json::json!({
        "TimeoutSeconds": 10,
        "Retry": [{"MaxAttempts": 3, "IntervalSeconds": 2, "BackoffRate": 3, "MaxDelaySeconds": 10}]
    });
    // 4 attempts of 10 s, waits 2 + 6 + min(18, 10).
    assert_eq!(task_budget(&task), 40 + 18);
}
