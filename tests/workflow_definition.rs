//! Checks over the state machine definition itself (no stack needed), held against the
//! one list of steps (`order_core::steps`) and error names (`order_core::ErrorName`):
//!
//! - every error name it matches exists; every transient one is retried where it can be
//!   raised, no permanent one ever is, and every Task catches what its retries cannot fix;
//! - every Lambda Task invokes the function `steps.rs` names for it, and every step is there;
//! - every Task has a timeout; partner steps wait out long outages in one bounded loop,
//!   written once and keyed by step, which the checks unroll per step;
//! - the saga: a failure undoes every step that may have taken effect, in reverse order,
//!   and what cannot be undone ends in the dead-letter queue and a failed execution;
//! - the execution's timeout covers the worst-case budget, computed from the file.

use order_core::steps::{self, Step, StepRole};
use order_core::{ErrorName, FailureKind};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use system_tests::{of_type, root};

type States = BTreeMap<String, Value>;

fn definition() -> Value {
    let path = root().join("infra/statemachine/order-workflow.asl.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("{}: {error}", path.display()),
    };
    match serde_yaml::from_str(&text) {
        Ok(value) => value,
        Err(error) => panic!("{}: {error}", path.display()),
    }
}

/// The states as the file declares them.
fn declared_states(definition: &Value) -> States {
    let Some(states) = definition["States"].as_object() else {
        panic!("the definition has no States object");
    };
    states.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The states with the outage loop unrolled per step (see `unroll_keyed_loops`): what the
/// checks below walk, so that every path they follow is one an execution can take.
fn states(definition: &Value) -> States {
    unroll_keyed_loops(&declared_states(definition))
}

/// Where the outage loop keeps the name of the step that met the outage.
const OUTAGE_STEP: &str = "$.outage.step";

/// The step a Pass stores in `$.outage.step`, entering the shared outage loop.
fn outage_key(state: &Value) -> Option<&str> {
    if state["Type"] == "Pass" && state["ResultPath"] == OUTAGE_STEP {
        state["Result"].as_str()
    } else {
        None
    }
}

/// A Choice that only asks which step met the outage.
fn is_keyed_choice(state: &Value) -> bool {
    state["Type"] == "Choice"
        && state["Choices"].as_array().is_some_and(|rules| {
            !rules.is_empty() && rules.iter().all(|r| r["Variable"] == OUTAGE_STEP)
        })
}

/// Where a keyed Choice leads for `key`: its rule for the key, else its Default.
fn keyed_next(name: &str, choice: &Value, key: &str) -> String {
    let rules = choice["Choices"].as_array().into_iter().flatten();
    let rule = rules.clone().find(|r| r["StringEquals"] == key);
    match rule.map(|r| &r["Next"]).or(choice.get("Default")) {
        Some(next) => text(next, &format!("{name}: Next for {key}")).to_owned(),
        None => panic!("{name} has no way on for {key}: the execution would fail there"),
    }
}

/// Every edge of a state (Next, Choice rules, Default, Catch), rewritten by `to`.
fn rewrite_edges(state: &mut Value, to: &mut impl FnMut(&str) -> String) {
    let mut rewrite = |slot: &mut Value| {
        if let Some(target) = slot.as_str().map(str::to_owned) {
            *slot = Value::String(to(&target));
        }
    };
    if let Some(next) = state.get_mut("Next") {
        rewrite(next);
    }
    if let Some(default) = state.get_mut("Default") {
        rewrite(default);
    }
    for list in ["Choices", "Catch"] {
        if let Some(entries) = state.get_mut(list).and_then(Value::as_array_mut) {
            for entry in entries {
                if let Some(next) = entry.get_mut("Next") {
                    rewrite(next);
                }
            }
        }
    }
}

/// The outage loop is written once, keyed by step: a step's outage catcher goes to a Pass
/// that stores the step's name in `$.outage.step`, and Choices on that name lead back to
/// the step or on to its failure. Followed without values, the shared states would join
/// every step's outage to every other step's way back. So each keyed Pass gets its own
/// copy of the states it leads to (named `<step>/<state>`), with each keyed Choice
/// replaced by where it leads for that step; the shared states and keyed Choices go.
fn unroll_keyed_loops(declared: &States) -> States {
    let mut unrolled = declared.clone();
    let mut shared = BTreeSet::new();
    for (entry, pass) in declared {
        let Some(key) = outage_key(pass) else {
            continue;
        };
        let copy_of = |name: &str| format!("{key}/{name}");
        let mut todo = Vec::new();
        let follow = |target: &str, todo: &mut Vec<String>| {
            let next = state(declared, target);
            if is_keyed_choice(next) {
                keyed_next(target, next, key)
            } else if next["Type"] == "Task" {
                // Where a spent budget goes (the dead-letter send): the same for every
                // step, so it stays shared.
                target.to_owned()
            } else {
                todo.push(target.to_owned());
                copy_of(target)
            }
        };
        let mut entered = pass.clone();
        rewrite_edges(&mut entered, &mut |target| follow(target, &mut todo));
        unrolled.insert(entry.clone(), entered);
        let mut copied = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !copied.insert(name.clone()) {
                continue;
            }
            let mut copy = state(declared, &name).clone();
            let mut found = Vec::new();
            rewrite_edges(&mut copy, &mut |target| follow(target, &mut found));
            todo.extend(found);
            unrolled.insert(copy_of(&name), copy);
            shared.insert(name);
        }
    }
    for (name, s) in declared {
        if shared.contains(name) || is_keyed_choice(s) {
            unrolled.remove(name);
        }
    }
    unrolled
}

fn state<'a>(states: &'a States, name: &str) -> &'a Value {
    match states.get(name) {
        Some(state) => state,
        None => panic!("state {name} does not exist"),
    }
}

fn tasks(states: &States) -> BTreeMap<String, Value> {
    of_type(states, "Task")
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    match value.as_str() {
        Some(text) => text,
        None => panic!("{what} is not a string: {value}"),
    }
}

fn error_names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["ErrorEquals"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

fn catchers(task: &Value) -> Vec<Value> {
    task["Catch"].as_array().cloned().unwrap_or_default()
}

/// The state a Catch (or any entry with a `Next`) leads to.
fn next_of(entry: &Value, what: &str) -> String {
    text(&entry["Next"], &format!("{what}: Next")).to_owned()
}

fn is_lambda_task(task: &Value) -> bool {
    task["Type"] == "Task"
        && task["Resource"]
            .as_str()
            .is_some_and(|r| r.starts_with("arn:aws:states:::lambda:invoke"))
}

fn is_callback_task(task: &Value) -> bool {
    task["Resource"]
        .as_str()
        .is_some_and(|r| r.ends_with(".waitForTaskToken"))
}

fn is_dead_letter_send(task: &Value) -> bool {
    task["Type"] == "Task" && task["Resource"] == "arn:aws:states:::sqs:sendMessage"
}

/// The step `steps.rs` lists under a state's name, for a Lambda Task.
fn step_of(name: &str) -> Step {
    match steps::by_name(name) {
        Some(step) => step,
        None => panic!("Task {name} runs a Lambda but is not a step in shared/src/steps.rs"),
    }
}

/// Where a state can go next on the happy path: `Next` and every Choice branch.
fn forward_edges(state: &Value) -> Vec<String> {
    let mut next: Vec<String> = state["Next"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    for choice in state["Choices"].as_array().into_iter().flatten() {
        next.extend(choice["Next"].as_str().map(str::to_owned));
    }
    next.extend(state["Default"].as_str().map(str::to_owned));
    next
}

/// Where a state can go next at all: the happy path and every Catch.
fn all_edges(state: &Value) -> Vec<String> {
    let mut next = forward_edges(state);
    next.extend(
        catchers(state)
            .iter()
            .filter_map(|c| c["Next"].as_str().map(str::to_owned)),
    );
    next
}

/// Every state reachable from `start` (itself included) along `edges`, not expanding
/// the successors of the states in `stop_after`.
fn reachable(
    states: &States,
    start: &str,
    edges: fn(&Value) -> Vec<String>,
    stop_after: &[&str],
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_owned()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || stop_after.contains(&name.as_str()) {
            continue;
        }
        todo.extend(edges(state(states, &name)));
    }
    seen
}

/// Every simple path (no state twice) from `start` to `target` along all edges.
fn paths_to(states: &States, start: &str, target: &str) -> Vec<Vec<String>> {
    fn walk(
        states: &States,
        name: &str,
        target: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if path.iter().any(|p| p == name) {
            return;
        }
        path.push(name.to_owned());
        if name == target {
            found.push(path.clone());
        } else {
            for next in all_edges(state(states, name)) {
                walk(states, &next, target, path, found);
            }
        }
        path.pop();
    }
    let mut found = Vec::new();
    walk(states, start, target, &mut Vec::new(), &mut found);
    found
}

/// The template's logical id for a step's function: `DeactivateTerminalsFunction`.
fn logical_id(step: &Step) -> String {
    format!("{}Function", step.function_name())
}

/// What a Lambda Task sees when the invocation itself failed rather than our code: the
/// Lambda service failed or throttled (AWS recommends retrying these:
/// <https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html>),
/// or the function crashed. Unhandled failures arrive as `Lambda.Unknown`, or with the
/// runtime's own error type: `Runtime.ExitError` for a process that died (killed, out of
/// memory, a panic with `panic = "abort"`) and `Sandbox.Timedout` for one that ran past
/// its configured timeout
/// (<https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html>).
/// Every activity is idempotent, so every one of them is retried on every Lambda Task.
const LAMBDA_ERRORS: [&str; 8] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.Unknown",
    "Runtime.ExitError",
    "Sandbox.Timedout",
];

/// What a Lambda Task sees when Lambda throttled the invocation: the function did not run.
const THROTTLED: &str = "Lambda.TooManyRequestsException";

/// The dead-letter send's errors: SQS.AmazonSQSException (the service answered with an
/// error, AWS) and SQS.SdkClientException (the client failed; also what moto's engine
/// raises for any SQS ClientError).
const SQS_ERRORS: [&str; 2] = ["SQS.AmazonSQSException", "SQS.SdkClientException"];

/// Step Functions' own error names a Retry or Catch may match.
const STATES_ERRORS: [&str; 4] = [
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.TaskFailed",
    "States.ALL",
];

/// Whether AWS itself raises `name` (Lambda, Step Functions or SQS), which Retry and Catch
/// may match besides ours.
fn is_aws_name(name: &str) -> bool {
    [&LAMBDA_ERRORS[..], &STATES_ERRORS, &SQS_ERRORS]
        .iter()
        .any(|names| names.contains(&name))
}

// --- 1. error names ----------------------------------------------------------------------

#[test]
fn every_error_name_the_definition_matches_is_ours_or_aws() {
    let states = states(&definition());
    let mut ours = 0;
    for (name, state) in &states {
        for error in error_names(&state["Retry"])
            .into_iter()
            .chain(error_names(&state["Catch"]))
        {
            let is_ours = ErrorName::parse(&error).is_some();
            ours += usize::from(is_ours);
            assert!(
                is_ours || is_aws_name(&error),
                "{name} matches {error:?}, which is neither ours (shared/src/errors.rs) nor AWS's"
            );
        }
    }
    assert!(ours > 0, "the definition matches none of our error names");
}

// --- 2. functions ------------------------------------------------------------------------

#[test]
fn every_lambda_task_invokes_the_function_steps_rs_names_for_it() {
    let states = states(&definition());
    for (name, task) in tasks(&states) {
        if is_dead_letter_send(&task) {
            continue;
        }
        assert!(
            is_lambda_task(&task),
            "Task {name} is neither a Lambda step nor the dead-letter send: {}",
            task["Resource"]
        );
        let step = step_of(&name);
        let expected = format!("${{{}VersionArn}}", logical_id(&step));
        assert_eq!(
            task["Parameters"]["FunctionName"],
            expected,
            "Task {name} must invoke {} (binary {}) through the substitution {expected}",
            logical_id(&step),
            step.function
        );
        assert_eq!(
            task["Parameters"]["Payload"]["order_id.$"], "$.order_id",
            "Task {name} must pass the order id to its activity"
        );
    }
}

#[test]
fn every_step_of_steps_rs_is_a_lambda_task_of_the_workflow() {
    let states = states(&definition());
    for step in steps::ALL {
        let Some(task) = states.get(step.name) else {
            panic!("step {} is not a state of the workflow", step.name);
        };
        assert!(
            is_lambda_task(task),
            "state {} is not a Lambda Task",
            step.name
        );
    }
}

#[test]
fn the_logical_id_of_a_function_is_the_camel_case_of_its_binary() {
    assert_eq!(
        logical_id(&steps::DEACTIVATE_FAULTY_TERMINALS),
        "DeactivateTerminalsFunction"
    );
    assert_eq!(logical_id(&steps::RECORD_FAILURE), "FailOrderFunction");
}

// --- 3. retries --------------------------------------------------------------------------

/// Whether the activity of `step` can raise the transient error `name`. Every transient
/// name must have a rule here: a new one fails the check until someone decides which
/// activities raise it (and so which Tasks must retry it).
fn can_raise(step: &Step, name: ErrorName) -> bool {
    match name {
        ErrorName::PartnerUnavailable | ErrorName::PartnerThrottled | ErrorName::PartnerTimeout => {
            step.partner.is_some()
        }
        // Every activity reads and writes the order in DynamoDB.
        ErrorName::StoreUnavailable => true,
        // AwaitDelivery resumes the execution itself (SendTaskSuccess) when the courier's
        // delivery was recorded before its task token.
        ErrorName::WorkflowUnavailable => step.name == steps::AWAIT_DELIVERY.name,
        // CancelShipment, when the courier says it delivered the parcel and its delivery
        // event has not reached us yet.
        ErrorName::ShipmentDelivered => step.name == steps::CANCEL_SHIPMENT.name,
        other => panic!(
            "{other} is transient but has no rule in can_raise: say which activities raise it"
        ),
    }
}

#[test]
fn every_task_retries_the_transient_errors_it_can_raise_and_nothing_permanent() {
    let states = states(&definition());
    let tasks = tasks(&states);
    assert!(tasks.len() > steps::ALL.len(), "too few Tasks: {tasks:?}");
    for (name, task) in &tasks {
        let retried = error_names(&task["Retry"]);
        let mut required: Vec<&str> = Vec::new();
        if is_lambda_task(task) {
            let step = step_of(name);
            required.extend(
                ErrorName::ALL
                    .iter()
                    .copied()
                    .filter(|n| n.is_transient() && can_raise(&step, *n))
                    .map(ErrorName::as_str),
            );
            required.extend(LAMBDA_ERRORS);
            if is_callback_task(task) {
                // A callback that timed out means the courier never confirmed delivery:
                // waiting again would not make the parcel arrive.
                assert!(
                    !retried.iter().any(|e| e == "States.Timeout"),
                    "{name} retries States.Timeout: a timed-out callback is a failed delivery"
                );
            } else {
                required.push("States.Timeout");
            }
        } else if is_dead_letter_send(task) {
            required.extend(SQS_ERRORS);
        }
        for error in required {
            assert!(
                retried.iter().any(|e| e == error),
                "{name} does not retry {error}"
            );
        }
        for error in &retried {
            let permanent = ErrorName::parse(error).is_some_and(|n| !n.is_transient());
            assert!(!permanent, "{name} retries the permanent error {error}");
            assert_ne!(error, "States.ALL", "{name} retries everything");
            assert_ne!(
                error, "States.TaskFailed",
                "{name} retries States.TaskFailed, which matches permanent errors too"
            );
        }
        for retrier in task["Retry"].as_array().into_iter().flatten() {
            assert_eq!(
                retrier["JitterStrategy"], "FULL",
                "{name}: retries need full jitter"
            );
            assert!(
                retrier["MaxDelaySeconds"].as_u64().is_some_and(|d| d > 0),
                "{name}: retries need a maximum delay"
            );
            assert!(
                retrier["BackoffRate"].as_f64().is_some_and(|b| b >= 1.0),
                "{name}: retries need a BackoffRate of at least 1"
            );
        }
    }
}

#[test]
fn every_transient_error_name_has_a_rule_for_who_raises_it() {
    for name in ErrorName::ALL.iter().copied().filter(|n| n.is_transient()) {
        // Panics for a transient name without a rule.
        let raisers = steps::ALL.iter().filter(|s| can_raise(s, name)).count();
        assert!(raisers > 0, "no step raises the transient error {name}");
    }
}

#[test]
fn every_lambda_task_retries_every_name_aws_gives_a_crashed_throttled_or_failed_invocation() {
    let states = states(&definition());
    let lambda_tasks: Vec<(String, Value)> = tasks(&states)
        .into_iter()
        .filter(|(_, task)| is_lambda_task(task))
        .collect();
    assert_eq!(
        lambda_tasks.len(),
        steps::ALL.len(),
        "every step is one Lambda Task"
    );
    for (name, task) in &lambda_tasks {
        for error in LAMBDA_ERRORS {
            let retrier = task["Retry"].as_array().into_iter().flatten().find(|r| {
                error_names(&Value::Array(vec![(*r).clone()]))
                    .iter()
                    .any(|e| e == error)
            });
            let Some(retrier) = retrier else {
                panic!("{name} does not retry {error}: on AWS a crash, a function timeout or a throttle would roll the order back");
            };
            assert!(
                retrier["MaxAttempts"].as_u64().is_some_and(|n| n >= 2),
                "{name} retries {error} fewer than twice: {retrier}"
            );
        }
    }
}

#[test]
fn no_activity_outlives_its_task_every_function_timeout_is_shorter_than_the_task_timeout() {
    // A function that ran past its Task's timeout could act at a partner after the Task's
    // retry or the rollback began: Lambda must stop it first (Sandbox.Timedout, retried).
    let resources = local_stack::template::LocalResources::load(
        &root().join("template.yaml"),
        "us-east-1",
        "http://127.0.0.1:9",
        &local_stack::template::local_parameters("http://127.0.0.1:9"),
    )
    .unwrap_or_else(|error| panic!("template.yaml: {error}"));
    let states = states(&definition());
    let mut checked = 0;
    for (name, task) in tasks(&states) {
        if !is_lambda_task(&task) || is_callback_task(&task) {
            continue;
        }
        let step = step_of(&name);
        let Some(function) = resources
            .functions
            .iter()
            .find(|f| f.binary == step.function)
        else {
            panic!("{name}: the template has no function {}", step.function);
        };
        let Some(task_timeout) = task["TimeoutSeconds"].as_u64() else {
            panic!("{name} has no TimeoutSeconds");
        };
        assert!(
            function.timeout_seconds < task_timeout,
            "{name}: {} may run {} s, longer than its Task's {task_timeout} s",
            step.function,
            function.timeout_seconds
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        steps::ALL.len() - 1,
        "every step but AwaitDelivery was checked"
    );
}

/// The longest a retrier keeps retrying: the sum of its capped backoffs.
fn retry_span(retrier: &Value) -> f64 {
    let max_attempts = retrier["MaxAttempts"].as_u64().unwrap_or(3);
    let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let backoff = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
    let cap = retrier["MaxDelaySeconds"].as_f64().unwrap_or(f64::MAX);
    (0..max_attempts)
        .map(|retry| (interval * backoff.powi(i32::try_from(retry).unwrap_or(i32::MAX))).min(cap))
        .sum()
}

#[test]
fn a_throttled_invocation_is_retried_on_its_own_rule_longer_than_a_crash_on_every_lambda_task() {
    let states = states(&definition());
    let mut checked = 0;
    for (name, task) in tasks(&states) {
        if !is_lambda_task(&task) {
            continue;
        }
        let retriers = task["Retry"].as_array().cloned().unwrap_or_default();
        let matching = |error: &str| {
            retriers
                .iter()
                .find(|r| {
                    error_names(&Value::Array(vec![(*r).clone()]))
                        .iter()
                        .any(|e| e == error)
                })
                .cloned()
        };
        let (Some(throttle), Some(crash)) = (matching(THROTTLED), matching("Lambda.Unknown"))
        else {
            panic!("{name} does not retry both throttles and crashes");
        };
        assert!(
            only_throttles(&throttle),
            "{name}: throttles share a rule: {throttle}"
        );
        assert!(
            throttle["MaxAttempts"].as_u64() > crash["MaxAttempts"].as_u64(),
            "{name}: a throttle is retried no more often than a crash"
        );
        assert!(
            retry_span(&throttle) > retry_span(&crash),
            "{name}: throttles are retried over no longer a time than crashes"
        );
        checked += 1;
    }
    assert_eq!(checked, steps::ALL.len(), "every step is one Lambda Task");
}

#[test]
fn a_panicking_activity_is_caught_without_a_retry_on_every_lambda_task() {
    // `order_core::activity::invoke` reports a panic as Internal.Error (tested there).
    let panic_name = ErrorName::Internal.as_str();
    let states = states(&definition());
    for (name, task) in tasks(&states) {
        if !is_lambda_task(&task) {
            continue;
        }
        assert!(
            !error_names(&task["Retry"])
                .iter()
                .any(|e| e == panic_name || e == "States.ALL" || e == "States.TaskFailed"),
            "{name} retries a panic: a bug does not fix itself"
        );
        let caught = catchers(&task).iter().any(|c| {
            error_names(&Value::Array(vec![c.clone()]))
                .iter()
                .any(|e| e == panic_name || e == "States.ALL" || e == "States.TaskFailed")
        });
        assert!(caught, "{name} does not catch {panic_name}: a panicking activity would fail the execution without rolling the order back");
    }
}

// --- 4. catches --------------------------------------------------------------------------

#[test]
fn every_task_catches_what_its_retries_cannot_fix_and_keeps_its_input() {
    let states = states(&definition());
    for (name, task) in tasks(&states) {
        let catchers = catchers(&task);
        let Some(last) = catchers.last() else {
            panic!("{name} has no Catch: a permanent error would fail the execution");
        };
        assert_eq!(
            last["ErrorEquals"],
            serde_json::json!(["States.ALL"]),
            "{name}: the last catcher must catch everything"
        );
        for catcher in &catchers {
            // Without a ResultPath the error replaces the state's input, and the order id
            // the compensations and the failure record need is lost.
            let result_path = text(&catcher["ResultPath"], &format!("{name}: Catch ResultPath"));
            assert!(
                result_path.starts_with("$.") && result_path.len() > 2,
                "{name}: a catcher must put the error beside the input, not replace it ({result_path})"
            );
        }
        for catcher in &catchers[..catchers.len() - 1] {
            assert!(
                !error_names(&Value::Array(vec![catcher.clone()])).contains(&"States.ALL".into()),
                "{name}: States.ALL may only appear in the last catcher"
            );
        }
    }
}

// --- 5. timeouts -------------------------------------------------------------------------

/// The production configuration: what `UseDefaultConfiguration` (the Pass that sets
/// `config`) puts in the execution when the input's config is missing or out of bounds.
fn default_configuration(states: &States) -> (String, Value) {
    let defaults: Vec<_> = states
        .iter()
        .filter(|(_, s)| s["Type"] == "Pass" && s["Parameters"]["config"].is_object())
        .collect();
    let [(name, pass)] = defaults.as_slice() else {
        panic!("expected one Pass that sets config to the defaults, found {defaults:?}");
    };
    assert_eq!(
        pass["ResultPath"], "$",
        "{name} must replace the input, not add to it"
    );
    (name.to_string(), pass["Parameters"]["config"].clone())
}

/// The default value of a `$.config.<key>` path.
fn default_of(defaults: &Value, path: &str) -> u64 {
    let Some(key) = path.strip_prefix("$.config.") else {
        panic!("{path} is not read from the execution's config");
    };
    match defaults[key].as_u64() {
        Some(value) => value,
        None => panic!("the default configuration has no number {key}: {defaults}"),
    }
}

#[test]
fn every_task_has_a_timeout_and_a_timeout_from_the_input_has_a_default() {
    let states = states(&definition());
    let (_, defaults) = default_configuration(&states);
    for (name, task) in tasks(&states) {
        let fixed = task["TimeoutSeconds"].as_u64().is_some_and(|t| t > 0);
        let from_input = task["TimeoutSecondsPath"].as_str();
        assert!(
            fixed || from_input.is_some(),
            "{name} has neither TimeoutSeconds nor TimeoutSecondsPath"
        );
        if let Some(path) = from_input {
            assert!(
                default_of(&defaults, path) > 0,
                "{name}: {path} defaults to 0"
            );
        }
    }
}

#[test]
fn every_state_retrier_and_catcher_says_why_in_a_comment_above_it() {
    let path = root().join("infra/statemachine/order-workflow.asl.yaml");
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = source.lines().collect();
    let commented = |at: usize| {
        lines[..at]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim_start().starts_with('#'))
    };
    // States are the keys indented by two under `States:`; retriers and catchers are the
    // list items that start with their ErrorEquals.
    let mut states_seen = 0;
    let mut entries_seen = 0;
    for (at, line) in lines.iter().enumerate() {
        let is_state = line.starts_with("  ")
            && !line.starts_with("   ")
            && !line.trim_start().starts_with('#')
            && line.ends_with(':');
        let is_entry = line.trim_start().starts_with("- ErrorEquals:");
        if is_state {
            states_seen += 1;
        }
        if is_entry {
            entries_seen += 1;
        }
        if is_state || is_entry {
            assert!(
                commented(at),
                "line {}: {} has no comment above it",
                at + 1,
                line.trim()
            );
        }
    }
    // The text was read the way it is written: as many states and entries as it declares.
    let declared = declared_states(&definition());
    let entries: usize = declared
        .values()
        .map(|s| s["Retry"].as_array().map_or(0, Vec::len) + catchers(s).len())
        .sum();
    assert_eq!(states_seen, declared.len(), "states found in the text");
    assert_eq!(
        entries_seen, entries,
        "retriers and catchers found in the text"
    );
}

// --- 6. outages --------------------------------------------------------------------------

/// The bound of a Choice rule that lets the outage loop go round again, and the state it
/// leads to: the rule on `$.outage.waits`, with its `NumericLessThan`, or its
/// `NumericLessThanPath` into the execution's config (read from `defaults`: the input can
/// only lower it, see `the_configuration_from_the_input_never_exceeds_the_defaults`).
fn outage_bound(choice: &Value, defaults: &Value) -> Option<(u64, String)> {
    choice["Choices"].as_array()?.iter().find_map(|rule| {
        if rule["Variable"] != "$.outage.waits" {
            return None;
        }
        let bound = match (
            rule["NumericLessThan"].as_u64(),
            rule["NumericLessThanPath"].as_str(),
        ) {
            (Some(bound), _) => bound,
            (None, Some(path)) => default_of(defaults, path),
            (None, None) => return None,
        };
        Some((bound, rule["Next"].as_str()?.to_owned()))
    })
}

fn is_outage_count(pass: &Value) -> bool {
    pass["Type"] == "Pass"
        && pass["ResultPath"] == "$.outage"
        && pass["Parameters"]["waits.$"] == "States.MathAdd($.outage.waits, 1)"
}

/// Follows `Next` through Pass states from `start`; returns the Pass states passed and the
/// first state that is not a Pass.
fn through_passes(states: &States, start: &str) -> (Vec<Value>, String) {
    let mut passes = Vec::new();
    let mut name = start.to_owned();
    loop {
        let current = state(states, &name);
        if current["Type"] != "Pass" || passes.len() > states.len() {
            return (passes, name);
        }
        passes.push(current.clone());
        name = next_of(current, &name);
    }
}

/// The steps that wait out infrastructure trouble: every Lambda Task but the notification,
/// which is best effort and goes on to CompleteOrder whatever happened.
fn waiting_steps() -> Vec<Step> {
    steps::ALL
        .into_iter()
        .filter(|s| s.name != steps::NOTIFY_CUSTOMER.name)
        .collect()
}

/// The infrastructure names a Lambda Task can see: ours that its activity can raise, and
/// AWS's for a failed, throttled or crashed invocation or (but for a callback, whose
/// timeout is the courier's silence) no answer in time.
fn infrastructure_names(step: &Step, task: &Value) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ErrorName::ALL
        .iter()
        .copied()
        .filter(|n| n.kind() == FailureKind::Infrastructure && can_raise(step, *n))
        .map(|n| n.as_str().to_owned())
        .collect();
    names.extend(
        order_core::errors::AWS_INFRASTRUCTURE_ERRORS
            .iter()
            .filter(|n| **n != "States.Timeout" || !is_callback_task(task))
            .map(|n| (*n).to_owned()),
    );
    for name in &names {
        assert_eq!(
            order_core::errors::kind_of(name, step.name),
            FailureKind::Infrastructure,
            "{name} at {}",
            step.name
        );
    }
    names
}

/// The first catcher of `task` that matches `error`, as Step Functions picks it.
fn catcher_for<'a>(task: &'a Value, error: &str) -> Option<&'a Value> {
    task["Catch"].as_array()?.iter().find(|catcher| {
        error_names(&Value::Array(vec![(*catcher).clone()]))
            .iter()
            .any(|e| {
                e == error
                    || e == "States.ALL"
                    || (e == "States.TaskFailed" && error != "States.Timeout")
            })
    })
}

#[test]
fn every_step_but_the_notification_waits_out_infrastructure_trouble_within_the_outage_budget() {
    let definition = definition();
    let states = states(&definition);
    let (_, defaults) = default_configuration(&states);
    for step in waiting_steps() {
        let name = step.name;
        let task = state(&states, name);
        let infrastructure = infrastructure_names(&step, task);
        let retried: BTreeSet<String> = error_names(&task["Retry"]).into_iter().collect();
        assert_eq!(
            retried, infrastructure,
            "{name}: what a Task retries must be exactly the infrastructure trouble it can meet"
        );
        let outage_catchers: Vec<&Value> = catchers(task)
            .iter()
            .filter(|c| c["ResultPath"] == "$.outage.last_error")
            .map(|c| {
                let Some(found) = task["Catch"]
                    .as_array()
                    .and_then(|all| all.iter().find(|a| *a == c))
                else {
                    panic!("{name}: catcher vanished");
                };
                found
            })
            .collect();
        let [outage] = outage_catchers.as_slice() else {
            panic!("{name} must have exactly one outage catcher: {outage_catchers:?}");
        };
        let caught: BTreeSet<String> = error_names(&Value::Array(vec![(*outage).clone()]))
            .into_iter()
            .collect();
        assert_eq!(
            caught, infrastructure,
            "{name}: the outage catcher must catch exactly the infrastructure names"
        );

        let (_, choice_name) = through_passes(&states, &next_of(outage, name));
        let choice = state(&states, &choice_name);
        let Some((bound, wait_name)) = outage_bound(choice, &defaults) else {
            panic!("{name}: {choice_name} is not a Choice bounded on $.outage.waits");
        };
        assert!(
            (1..=144).contains(&bound),
            "{name}: an outage budget of {bound} waits"
        );
        let wait = state(&states, &wait_name);
        assert_eq!(wait["Type"], "Wait", "{name}: {wait_name} is not a Wait");
        assert_eq!(
            wait["SecondsPath"], "$.config.outage_wait_seconds",
            "{name}: the outage wait's length comes from the execution's config"
        );
        let (passes, back) = through_passes(&states, &next_of(wait, &wait_name));
        assert_eq!(
            back, name,
            "{name}: {wait_name} does not lead back to the step"
        );
        assert!(
            passes.iter().any(is_outage_count),
            "{name}: the loop never counts its waits, so it is not bounded"
        );

        // A spent budget goes to a person, with the step and its last error: never to a
        // rollback.
        let (passes, end) = through_passes(&states, text(&choice["Default"], &choice_name));
        assert!(
            is_dead_letter_send(state(&states, &end)),
            "{name}: a spent outage budget must go to the dead-letter queue, not {end}"
        );
        assert!(
            passes.iter().any(|p| p["ResultPath"] == "$.dead_letter"
                && p["Parameters"]["step.$"] == "$.outage.step"
                && p["Parameters"]["error.$"] == "$.outage.last_error"),
            "{name}: a spent budget must name the step and its last error for the person"
        );
    }
}

#[test]
fn no_infrastructure_error_reaches_a_compensation_or_the_dead_letter_queue_without_the_outage_loop()
{
    let definition = definition();
    let states = states(&definition);
    let (_, defaults) = default_configuration(&states);
    let undoing = |s: &str| {
        steps::by_name(s)
            .is_some_and(|s| matches!(s.role, StepRole::Compensation | StepRole::Record))
    };
    let mut checked = 0;
    for step in steps::ALL {
        let name = step.name;
        let task = state(&states, name);
        for error in infrastructure_names(&step, task) {
            let Some(catcher) = catcher_for(task, &error) else {
                panic!("{name} catches no {error}: the execution would fail");
            };
            let start = next_of(catcher, name);
            if step.name == steps::NOTIFY_CUSTOMER.name {
                assert_eq!(start, steps::COMPLETE_ORDER.name, "{name}: {error}");
                continue;
            }
            // Every way on from the catcher, up to the first Task, must pass the outage
            // Choice before anything that undoes or gives up.
            let (_, first) = through_passes(&states, &start);
            assert!(
                outage_bound(state(&states, &first), &defaults).is_some(),
                "{name}: {error} goes to {first} without passing the outage loop"
            );
            for reached in reachable(&states, &start, all_edges, &[name]) {
                assert!(
                    reached == name || !undoing(&reached),
                    "{name}: {error} can reach {reached}, which undoes the order"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} (step, error) pairs checked");
}

#[test]
fn the_outage_loop_is_written_once_and_every_step_that_enters_it_comes_back() {
    let declared = declared_states(&definition());
    let waits: Vec<&String> = declared
        .iter()
        .filter(|(_, s)| s["Type"] == "Wait" && s["SecondsPath"] == "$.config.outage_wait_seconds")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(waits.len(), 1, "outage waits: {waits:?}");
    let entering: Vec<&str> = declared.values().filter_map(outage_key).collect();
    assert_eq!(
        entering.iter().copied().collect::<BTreeSet<_>>(),
        waiting_steps()
            .iter()
            .map(|s| s.name)
            .collect::<BTreeSet<_>>(),
        "the steps that store their name in {OUTAGE_STEP}"
    );
    // Unrolled, each of them has its own way round (checked step by step above).
    let unrolled = states(&definition());
    for key in entering {
        assert!(
            unrolled.contains_key(&format!("{key}/{}", waits[0])),
            "{key} does not reach the outage wait"
        );
    }
}

/// The most states an order passes through when nothing goes wrong: a replacement (two
/// steps instead of the payment) whose input lacks a valid config. On AWS each is a billed
/// state transition; it was 14 before the outage loop was shared and its counter came
/// with the input.
const HAPPY_PATH_STATES: usize = 12;

/// The longest happy path (forward edges only) from `name` to the end of the execution.
fn longest_happy_path(states: &States, name: &str, path: &mut Vec<String>) -> Vec<String> {
    assert!(
        !path.iter().any(|p| p == name),
        "the happy path loops at {name}: {path:?}"
    );
    path.push(name.to_owned());
    let mut best = path.clone();
    for next in forward_edges(state(states, name)) {
        let candidate = longest_happy_path(states, &next, path);
        if candidate.len() > best.len() {
            best = candidate;
        }
    }
    path.pop();
    best
}

#[test]
fn the_happy_path_passes_through_no_more_states_than_before() {
    let definition = definition();
    let declared = declared_states(&definition);
    let start = text(&definition["StartAt"], "StartAt");
    let path = longest_happy_path(&declared, start, &mut Vec::new());
    let Some(end) = path.last() else {
        panic!("no happy path from {start}");
    };
    let last = state(&declared, end);
    assert!(
        last["End"] == true || last["Type"] == "Succeed",
        "the happy path ends at {end}, which does not end the execution: {path:?}"
    );
    assert!(
        path.len() <= HAPPY_PATH_STATES,
        "the happy path grew to {} states: {path:?}",
        path.len()
    );
}

#[test]
fn an_order_started_with_its_config_enters_at_most_two_states_besides_its_tasks() {
    // As the API, orderctl and the reconciler start it: the defaults' Pass is not entered.
    let definition = definition();
    let mut declared = declared_states(&definition);
    let (use_defaults, _) = default_configuration(&declared);
    declared.retain(|name, _| *name != use_defaults);
    for s in declared.values_mut() {
        if s["Default"] == use_defaults.as_str() {
            s.as_object_mut().map(|o| o.remove("Default"));
        }
    }
    let start = text(&definition["StartAt"], "StartAt");
    let path = longest_happy_path(&declared, start, &mut Vec::new());
    let besides: Vec<&String> = path
        .iter()
        .filter(|s| declared[*s]["Type"] != "Task")
        .collect();
    assert!(
        besides.len() <= 2,
        "states besides the Tasks: {besides:?} on {path:?}"
    );
}

#[test]
fn the_outage_count_starts_at_zero_before_the_first_task() {
    let definition = definition();
    let states = states(&definition);
    let start = text(&definition["StartAt"], "StartAt");
    let mut first_tasks = 0;
    // Every happy path from the start to its first Task either passes a Pass that sets the
    // counter to 0 or is let through by a Choice rule that checks the input's counter is 0.
    fn walk(states: &States, name: &str, counted: bool, first_tasks: &mut usize) {
        let current = state(states, name);
        if current["Type"] == "Task" {
            *first_tasks += 1;
            assert!(counted, "{name} runs before the outage counter starts at 0");
            return;
        }
        let zero = serde_json::json!({"waits": 0});
        let sets_zero = current["Type"] == "Pass"
            && ((current["ResultPath"] == "$.outage" && current["Result"] == zero)
                || (current["ResultPath"] == "$" && current["Parameters"]["outage"] == zero));
        for rule in current["Choices"].as_array().into_iter().flatten() {
            let mut found = Vec::new();
            comparisons_on(rule, "$.outage.waits", &mut found);
            let checks_zero = found.iter().any(|c| c["NumericEquals"] == 0);
            walk(
                states,
                text(&rule["Next"], name),
                counted || checks_zero,
                first_tasks,
            );
        }
        let mut next: Vec<String> = current["Next"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect();
        next.extend(current["Default"].as_str().map(str::to_owned));
        for next in next {
            walk(states, &next, counted || sets_zero, first_tasks);
        }
    }
    walk(&states, start, false, &mut first_tasks);
    assert!(first_tasks > 0, "no Task after the start");
}

// --- 7. saga -----------------------------------------------------------------------------

/// Where a step stands in the happy path (its place in `steps::ALL`).
fn forward_position(step_name: &str) -> usize {
    match steps::ALL.iter().position(|s| s.name == step_name) {
        Some(position) => position,
        None => panic!("{step_name} is not a step"),
    }
}

/// The compensations a path runs, with the happy-path position of the step each undoes.
fn compensations_on(path: &[String]) -> Vec<(String, usize)> {
    path.iter()
        .filter_map(|name| steps::by_name(name))
        .filter(|s| s.role == StepRole::Compensation)
        .map(|c| {
            let Some(undone) = steps::ALL.iter().find(|f| f.compensation == Some(c.name)) else {
                panic!("compensation {} undoes no step", c.name);
            };
            (c.name.to_owned(), forward_position(undone.name))
        })
        .collect()
}

/// A Task's catchers but its outage catcher: where business failures go.
fn business_catchers(task: &Value) -> Vec<Value> {
    catchers(task)
        .into_iter()
        .filter(|c| c["ResultPath"] != "$.outage.last_error")
        .collect()
}

#[test]
fn a_failure_undoes_every_step_that_may_have_taken_effect_in_reverse_order() {
    let definition = definition();
    let states = states(&definition);
    let record = steps::RECORD_FAILURE.name;
    // Delivered orders are never rolled back: nothing after AwaitDelivery compensates.
    let delivered = [steps::AWAIT_DELIVERY.name];
    let mut checked = 0;
    for effect in steps::ALL.iter().filter(|s| s.role == StepRole::Forward) {
        let Some(compensation) = effect.compensation else {
            continue;
        };
        let later = reachable(&states, effect.name, forward_edges, &delivered);
        for failing in later.iter().filter(|s| states[*s]["Type"] == "Task") {
            // Every catcher of a business failure (the outage catcher never undoes: see
            // `no_infrastructure_error_reaches_a_compensation_...`).
            for catcher in business_catchers(&states[failing]) {
                let paths = paths_to(&states, &next_of(&catcher, failing), record);
                assert!(
                    !paths.is_empty(),
                    "a failure of {failing} ({:?}) never reaches {record}",
                    catcher["ErrorEquals"]
                );
                for path in paths {
                    assert!(
                        path.iter().any(|s| s == compensation),
                        "{failing} fails after {} took effect (or while it may have), \
                         but {compensation} does not run on the way to {record}: {path:?}",
                        effect.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "no compensation was checked");

    // Along every path from a failure to the record, compensations run in the reverse
    // order of the steps they undo.
    for (failing, task) in tasks(&states) {
        for catcher in business_catchers(&task) {
            for path in paths_to(&states, &next_of(&catcher, &failing), record) {
                let undone = compensations_on(&path);
                assert!(
                    undone.windows(2).all(|w| w[0].1 > w[1].1),
                    "compensations after {failing} run out of order: {undone:?}"
                );
            }
        }
    }
}

#[test]
fn a_step_that_cannot_be_undone_ends_in_the_dead_letter_queue_and_a_failed_execution() {
    let states = states(&definition());
    let undoing = steps::ALL
        .into_iter()
        .filter(|s| matches!(s.role, StepRole::Compensation | StepRole::Record));
    for step in undoing {
        let name = step.name;
        let catchers = catchers(state(&states, name));
        let Some(catch_all) = catchers.last() else {
            panic!("{name} has no Catch");
        };
        assert_eq!(catch_all["ResultPath"], "$.dead_letter.error", "{name}");
        let (passes, send) = through_passes(&states, &next_of(catch_all, name));
        assert!(
            passes
                .iter()
                .any(|p| p["ResultPath"] == "$.dead_letter.step" && p["Result"] == name),
            "{name}: its failure must name it as the dead-letter message's step"
        );
        let send_state = state(&states, &send);
        assert!(
            is_dead_letter_send(send_state),
            "{name}: its failure leads to {send}, not the dead-letter send"
        );
        let after = all_edges(send_state);
        assert!(!after.is_empty(), "{send} has no Next");
        for next in after {
            assert_eq!(
                state(&states, &next)["Type"],
                "Fail",
                "after {send}, the execution must fail loudly, not go to {next}"
            );
        }
    }
}

#[test]
fn every_message_to_the_dead_letter_queue_names_the_order_step_and_error() {
    let states = states(&definition());
    let sends: Vec<_> = tasks(&states)
        .into_iter()
        .filter(|(_, t)| is_dead_letter_send(t))
        .collect();
    let [(send, task)] = sends.as_slice() else {
        panic!("expected one dead-letter send, found {}", sends.len());
    };
    assert_eq!(
        task["Parameters"]["QueueUrl"],
        "${WorkflowDeadLetterQueueUrl}"
    );
    let body = &task["Parameters"]["MessageBody"];
    assert_eq!(body["order_id.$"], "$.order_id");
    assert_eq!(body["execution_arn.$"], "$$.Execution.Id");
    assert_eq!(body["failed_step.$"], "$.dead_letter.step");
    assert_eq!(body["error.$"], "$.dead_letter.error.Error");
    assert_eq!(body["cause.$"], "$.dead_letter.error.Cause");
    // Those paths exist on every way in: each comes through a Pass that names the step,
    // which every predecessor reaches by a Catch that stores the error.
    let mut ways_in = 0;
    for (name, s) in &states {
        if !all_edges(s).contains(send) {
            continue;
        }
        if s["Type"] == "Pass"
            && s["ResultPath"] == "$.dead_letter"
            && s["Parameters"]["step.$"] == "$.outage.step"
            && s["Parameters"]["error.$"] == "$.outage.last_error"
        {
            // A spent outage budget: the outage catcher stored the error, the step's
            // Note<Step>Outage its name.
            ways_in += 1;
            continue;
        }
        assert!(
            s["Type"] == "Pass" && s["ResultPath"] == "$.dead_letter.step",
            "{name} goes to {send} without naming the step in $.dead_letter.step"
        );
        for (from, f) in &states {
            if forward_edges(f).contains(name) {
                panic!("{from} reaches {name} without a Catch that stores the error");
            }
            for catcher in catchers(f).iter().filter(|c| c["Next"] == name.as_str()) {
                assert_eq!(catcher["ResultPath"], "$.dead_letter.error", "{from}");
                ways_in += 1;
            }
        }
    }
    assert!(ways_in > 0, "nothing goes to {send}");
}

#[test]
fn a_delivered_order_is_never_rolled_back() {
    let states = states(&definition());
    let after_delivery = forward_edges(state(&states, steps::AWAIT_DELIVERY.name));
    assert!(!after_delivery.is_empty());
    for start in after_delivery {
        for name in reachable(&states, &start, all_edges, &[]) {
            let undoes = steps::by_name(&name)
                .is_some_and(|s| matches!(s.role, StepRole::Compensation | StepRole::Record));
            assert!(!undoes, "after delivery, {start} can lead to {name}");
        }
    }
}

#[test]
fn a_delivery_that_stops_a_rollback_completes_the_order_and_undoes_nothing() {
    let states = states(&definition());
    let name = steps::CANCEL_SHIPMENT.name;
    let catchers = catchers(state(&states, name));
    let stopped = catchers
        .iter()
        .find(|c| c["ErrorEquals"] == serde_json::json!(["Order.Delivered"]))
        .unwrap_or_else(|| panic!("{name} does not catch Order.Delivered: {catchers:?}"));
    let start = next_of(stopped, name);
    let reached = reachable(&states, &start, all_edges, &[]);
    assert!(
        reached.iter().any(|s| s == steps::COMPLETE_ORDER.name),
        "{reached:?}"
    );
    for state in &reached {
        let undoes = steps::by_name(state)
            .is_some_and(|s| matches!(s.role, StepRole::Compensation | StepRole::Record));
        assert!(!undoes, "after a stopped rollback, {state} is reached");
    }
}

// --- 8. notification ---------------------------------------------------------------------

#[test]
fn a_failed_notification_still_completes_the_order() {
    let states = states(&definition());
    let name = steps::NOTIFY_CUSTOMER.name;
    let catchers = catchers(state(&states, name));
    let [catch_all] = catchers.as_slice() else {
        panic!("{name} must have exactly one catcher (States.ALL, no outage loop): {catchers:?}");
    };
    assert_eq!(catch_all["ErrorEquals"], serde_json::json!(["States.ALL"]));
    assert_eq!(next_of(catch_all, name), steps::COMPLETE_ORDER.name);
    assert_eq!(catch_all["ResultPath"], "$.notification_failure");
}

// --- 9. budget ---------------------------------------------------------------------------

/// Lambda stops an invocation after at most 15 minutes.
const LAMBDA_MAX_INVOCATION_SECONDS: u64 = 900;

/// The longest an attempt sequence of one Task can take, given its timeout: every attempt
/// times out, and every retrier is spent, waiting its capped backoff between attempts.
///
/// One refinement for callback Tasks (`.waitForTaskToken`) that do not retry
/// `States.Timeout`: a retried attempt then failed in its Lambda invocation (Lambda or
/// store errors; the webhook only resumes or fails with names never retried), which
/// Lambda ends within 15 minutes, so only the last attempt can wait the whole timeout.
fn task_budget(task: &Value, timeout: u64) -> u64 {
    let retries_timeouts = error_names(&task["Retry"])
        .iter()
        .any(|e| e == "States.Timeout" || e == "States.ALL");
    let retried_attempt = if is_callback_task(task) && !retries_timeouts {
        timeout.min(LAMBDA_MAX_INVOCATION_SECONDS)
    } else {
        timeout
    };
    let mut retries = 0;
    let mut waits = 0.0;
    for retrier in task["Retry"].as_array().into_iter().flatten() {
        let max_attempts = retrier["MaxAttempts"].as_u64().unwrap_or(3);
        let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
        let backoff = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
        let cap = retrier["MaxDelaySeconds"].as_f64().unwrap_or(f64::MAX);
        if !only_throttles(retrier) {
            retries += max_attempts;
        }
        for retry in 0..max_attempts {
            let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
            waits += (interval * backoff.powi(exponent)).min(cap);
        }
    }
    retries * retried_attempt + timeout + waits.ceil() as u64
}

/// Whether a retrier matches throttled invocations only. Lambda answers a throttle at once
/// without running the function, so such a retried attempt costs its backoff and no time
/// of its own.
fn only_throttles(retrier: &Value) -> bool {
    let names = error_names(&Value::Array(vec![retrier.clone()]));
    !names.is_empty() && names.iter().all(|e| e == THROTTLED)
}

/// What one pass through a state can cost at most, with the default configuration.
fn cost(name: &str, state: &Value, defaults: &Value) -> u64 {
    match state["Type"].as_str() {
        Some("Task") => {
            let timeout = match (
                state["TimeoutSeconds"].as_u64(),
                state["TimeoutSecondsPath"].as_str(),
            ) {
                (Some(seconds), _) => seconds,
                (None, Some(path)) => default_of(defaults, path),
                // Step Functions' default for a Task without a timeout: 99999999 s.
                (None, None) => 99_999_999,
            };
            task_budget(state, timeout)
        }
        Some("Wait") => match (state["Seconds"].as_u64(), state["SecondsPath"].as_str()) {
            (Some(seconds), _) => seconds,
            (None, Some(path)) => default_of(defaults, path),
            _ => panic!("Wait {name} has neither Seconds nor SecondsPath"),
        },
        _ => 0,
    }
}

/// What one pass through a state on the outage loop can cost at most. A callback Task
/// goes round the loop only when its every attempt failed in its Lambda invocation
/// (infrastructure trouble; its own timeout is the courier's silence, which is caught as
/// a business failure), so no attempt waited for the courier: each took at most the
/// 15 minutes Lambda allows.
fn loop_cost(name: &str, state: &Value, defaults: &Value) -> u64 {
    if state["Type"] == "Task" && is_callback_task(state) {
        let timeout = match state["TimeoutSecondsPath"].as_str() {
            Some(path) => default_of(defaults, path),
            None => state["TimeoutSeconds"].as_u64().unwrap_or(99_999_999),
        };
        return task_budget(state, timeout.min(LAMBDA_MAX_INVOCATION_SECONDS));
    }
    cost(name, state, defaults)
}

/// The worst case of a definition: the longest path from `start` through Next, Choice and
/// Catch edges, plus its loops. A loop (an edge back to a state on the current path) is
/// left out of the path and counted apart: it must be bounded by a Choice on
/// `$.outage.waits` and count that counter up; the counter is one per execution, so all
/// loops together go round at most `bound` times, each costing at most the dearest loop.
struct WorstCase {
    path: Vec<String>,
    path_seconds: u64,
    bound: u64,
    dearest_loop: Vec<String>,
    loop_seconds: u64,
}

impl WorstCase {
    fn total(&self) -> u64 {
        self.path_seconds + self.bound * self.loop_seconds
    }
}

fn worst_case(states: &States, start: &str, defaults: &Value) -> Result<WorstCase, String> {
    /// The longest path from `name` to an end state, or None if every way on goes back
    /// to a state on the current path (that way is a loop, counted apart).
    fn walk(
        states: &States,
        defaults: &Value,
        name: &str,
        stack: &mut Vec<String>,
        loops: &mut BTreeSet<Vec<String>>,
    ) -> Option<(u64, Vec<String>)> {
        let current = state(states, name);
        let edges = all_edges(current);
        let own = cost(name, current, defaults);
        if edges.is_empty() {
            return Some((own, vec![name.to_owned()]));
        }
        stack.push(name.to_owned());
        let mut best: Option<(u64, Vec<String>)> = None;
        for next in edges {
            if let Some(at) = stack.iter().position(|s| *s == next) {
                loops.insert(stack[at..].to_vec());
                continue;
            }
            if let Some(candidate) = walk(states, defaults, &next, stack, loops) {
                if best.as_ref().is_none_or(|b| candidate.0 > b.0) {
                    best = Some(candidate);
                }
            }
        }
        stack.pop();
        best.map(|(seconds, rest)| {
            let mut path = vec![name.to_owned()];
            path.extend(rest);
            (own + seconds, path)
        })
    }

    let mut loops = BTreeSet::new();
    let Some((path_seconds, path)) = walk(states, defaults, start, &mut Vec::new(), &mut loops)
    else {
        return Err(format!("no path from {start} ends"));
    };
    let mut worst = WorstCase {
        path,
        path_seconds,
        bound: 0,
        dearest_loop: Vec::new(),
        loop_seconds: 0,
    };
    for cycle in loops {
        let bound = cycle
            .iter()
            .find_map(|s| outage_bound(state(states, s), defaults));
        let Some((bound, _)) = bound else {
            return Err(format!(
                "the definition loops through {cycle:?} with no Choice bounding $.outage.waits"
            ));
        };
        if !cycle.iter().any(|s| is_outage_count(state(states, s))) {
            return Err(format!(
                "the loop {cycle:?} never counts $.outage.waits up, so its bound never bites"
            ));
        }
        let seconds: u64 = cycle
            .iter()
            .map(|s| loop_cost(s, state(states, s), defaults))
            .sum();
        worst.bound = worst.bound.max(bound);
        if seconds > worst.loop_seconds {
            worst.loop_seconds = seconds;
            worst.dearest_loop = cycle;
        }
    }
    Ok(worst)
}

/// The comparisons a Choice rule makes on `variable`, through `And`.
fn comparisons_on<'a>(rule: &'a Value, variable: &str, found: &mut Vec<&'a Value>) {
    if rule["Variable"] == variable {
        found.push(rule);
    }
    for inner in rule["And"].as_array().into_iter().flatten() {
        comparisons_on(inner, variable, found);
    }
}

#[test]
fn the_configuration_from_the_input_never_exceeds_the_defaults() {
    // The budget below is computed with the defaults; it holds only if the input cannot
    // ask for longer waits, so the Choice that admits the input's config must bound every
    // value by its default (and keep it positive).
    let states = states(&definition());
    let (use_defaults, defaults) = default_configuration(&states);
    let Some(keys) = defaults.as_object() else {
        panic!("the default configuration is not an object: {defaults}");
    };
    let admitting: Vec<Value> = states
        .values()
        .filter(|s| s["Type"] == "Choice" && s["Default"] == use_defaults.as_str())
        .flat_map(|s| s["Choices"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        !admitting.is_empty(),
        "no Choice falls back to {use_defaults}"
    );
    for rule in &admitting {
        for (key, default) in keys {
            let variable = format!("$.config.{key}");
            let mut found = Vec::new();
            comparisons_on(rule, &variable, &mut found);
            let has = |field: &str, ok: &dyn Fn(&Value) -> bool| {
                found.iter().any(|c| c.get(field).is_some_and(ok))
            };
            assert!(has("IsPresent", &|v| *v == true), "{variable}: IsPresent");
            assert!(has("IsNumeric", &|v| *v == true), "{variable}: IsNumeric");
            assert!(
                has("NumericGreaterThanEquals", &|v| v
                    .as_f64()
                    .is_some_and(|n| n >= 1.0)),
                "{variable} is not checked to be at least 1"
            );
            assert!(
                has("NumericLessThanEquals", &|v| v
                    .as_f64()
                    .zip(default.as_f64())
                    .is_some_and(|(n, d)| n <= d)),
                "{variable} is not bounded by its default {default}"
            );
        }
    }
}

#[test]
fn the_execution_timeout_covers_the_worst_case_budget() {
    let definition = definition();
    let states = states(&definition);
    let (_, defaults) = default_configuration(&states);
    let start = text(&definition["StartAt"], "StartAt");
    let worst = worst_case(&states, start, &defaults).unwrap_or_else(|problem| panic!("{problem}"));
    let timeout = definition["TimeoutSeconds"].as_u64().unwrap_or(0);

    println!("task budgets (s), default configuration {defaults}:");
    for (name, task) in tasks(&states) {
        println!("  {name:<28} {:>9}", cost(&name, &task, &defaults));
    }
    println!("longest path: {} s through", worst.path_seconds);
    for name in &worst.path {
        println!("  {name:<42} {:>9}", cost(name, &states[name], &defaults));
    }
    println!(
        "outage loops: {} x {} s (dearest: {})",
        worst.bound,
        worst.loop_seconds,
        worst.dearest_loop.join(" -> ")
    );
    println!(
        "worst case {} s ({:.2} days); execution TimeoutSeconds {timeout} s ({:.2} days)",
        worst.total(),
        worst.total() as f64 / 86_400.0,
        timeout as f64 / 86_400.0
    );
    assert!(worst.bound > 0, "no outage loop was found");
    assert!(
        timeout >= worst.total(),
        "execution TimeoutSeconds {timeout} < worst case {} s",
        worst.total()
    );
}

#[test]
fn the_budget_of_a_task_counts_every_attempt_and_capped_wait() {
    let task = serde_json::json!({
        "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["Store.Unavailable"], "MaxAttempts": 3,
                   "IntervalSeconds": 2, "BackoffRate": 3, "MaxDelaySeconds": 10}]
    });
    // 4 attempts of 10 s, waits 2 + 6 + min(18, 10).
    assert_eq!(task_budget(&task, 10), 40 + 18);
}

#[test]
fn the_budget_of_a_throttle_counts_its_waits_but_no_time_for_its_attempts() {
    let task = serde_json::json!({
        "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": [THROTTLED], "MaxAttempts": 4,
                   "IntervalSeconds": 1, "BackoffRate": 2, "MaxDelaySeconds": 5}]
    });
    // One attempt of 10 s; the throttled ones ran nothing; waits 1 + 2 + 4 + min(8, 5).
    assert_eq!(task_budget(&task, 10), 10 + 12);
    // A rule that also matches a crash counts its attempts' time.
    let mut shared = task.clone();
    shared["Retry"][0]["ErrorEquals"] = serde_json::json!([THROTTLED, "Lambda.Unknown"]);
    assert_eq!(task_budget(&shared, 10), 5 * 10 + 12);
}

#[test]
fn the_budget_of_a_callback_lets_only_its_last_attempt_wait_the_whole_timeout() {
    let callback = serde_json::json!({
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2,
                   "IntervalSeconds": 1, "BackoffRate": 2, "MaxDelaySeconds": 10}]
    });
    // 2 failed invocations of at most 900 s, waits 1 + 2, then the whole day.
    assert_eq!(task_budget(&callback, 86_400), 2 * 900 + 3 + 86_400);
    // Retrying a timed-out callback would wait the whole timeout again.
    let mut retries_timeouts = callback.clone();
    retries_timeouts["Retry"][0]["ErrorEquals"] = serde_json::json!(["States.Timeout"]);
    assert_eq!(task_budget(&retries_timeouts, 86_400), 3 * 86_400 + 3);
}

#[test]
fn the_worst_case_counts_a_bounded_loop_apart_and_refuses_an_unbounded_one() {
    let defaults = serde_json::json!({"outage_wait_seconds": 100});
    let task = serde_json::json!({
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 10,
        "Catch": [{"ErrorEquals": ["Partner.Unavailable"], "Next": "Left"}],
        "Next": "Done"
    });
    let bounded: States = [
        ("Step", task),
        (
            "Left",
            serde_json::json!({"Type": "Choice", "Default": "Done",
            "Choices": [{"Variable": "$.outage.waits", "NumericLessThan": 3, "Next": "Wait"}]}),
        ),
        (
            "Wait",
            serde_json::json!({"Type": "Wait", "SecondsPath": "$.config.outage_wait_seconds",
            "Next": "Count"}),
        ),
        (
            "Count",
            serde_json::json!({"Type": "Pass", "ResultPath": "$.outage",
            "Parameters": {"waits.$": "States.MathAdd($.outage.waits, 1)"}, "Next": "Step"}),
        ),
        ("Done", serde_json::json!({"Type": "Succeed"})),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let worst =
        worst_case(&bounded, "Step", &defaults).unwrap_or_else(|problem| panic!("{problem}"));
    // The step once (10 s), then 3 rounds of wait (100 s) and the step again (10 s).
    assert_eq!(worst.path_seconds, 10);
    assert_eq!(worst.total(), 10 + 3 * 110);

    let mut unbounded = bounded.clone();
    unbounded.insert(
        "Count".into(),
        serde_json::json!({"Type": "Pass", "Next": "Step"}),
    );
    let refused = worst_case(&unbounded, "Step", &defaults).map(|w| w.total());
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("never counts")),
        "a loop that never counts must be refused, got {refused:?}"
    );
}
