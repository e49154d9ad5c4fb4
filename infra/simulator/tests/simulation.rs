//! The simulation as part of `cargo test --workspace`: a bounded number of seeds of the
//! saga under seeded faults and interleavings break no invariant, a seed replays exactly,
//! and a bug planted on purpose is found with a seed that replays it.

use simulator::{Definition, DropKeyOf, Faults, Options, Report};

fn definition() -> Definition {
    Definition::of_repository().expect("the repository's definition loads")
}

/// A trace without the order ids, which the ledger draws at random (`OrderId::generate`).
fn without_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("ord-") {
        out.push_str(&rest[..at]);
        out.push_str("ord-*");
        let tail = &rest[at + 4..];
        let skip = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

fn failing(report: &Report) -> String {
    let options = Options::new(report.seed, report.orders);
    simulator::explain(&options, report)
}

#[test]
fn ten_thousand_orders_over_a_hundred_seeds_break_no_invariant() {
    let definition = definition();
    let mut orders = 0;
    for seed in 1..=100 {
        let report = simulator::run(&definition, Options::new(seed, 100)).expect("the run");
        assert!(report.violations.is_empty(), "{}", failing(&report));
        orders += report.orders;
    }
    assert_eq!(orders, 10_000);
}

#[test]
fn the_same_seed_replays_the_same_run_decision_for_decision() {
    let definition = definition();
    let first = simulator::run(&definition, Options::new(42, 50)).expect("the run");
    let second = simulator::run(&definition, Options::new(42, 50)).expect("the run");
    assert_eq!(first.outcomes, second.outcomes);
    assert_eq!(first.invocations, second.invocations);
    assert_eq!(first.simulated_ms, second.simulated_ms);
    for order in 0..50 {
        assert_eq!(
            without_ids(first.trace(order)),
            without_ids(second.trace(order)),
            "order #{order}"
        );
    }
    let other = simulator::run(&definition, Options::new(43, 50)).expect("the run");
    assert_ne!(
        (first.invocations, first.simulated_ms),
        (other.invocations, other.simulated_ms),
        "another seed must make other decisions"
    );
}

#[test]
fn a_partner_call_that_drops_its_idempotency_key_is_found_and_its_seed_replays_it() {
    let definition = definition();
    let planted = |seed| Options {
        planted: Some(DropKeyOf("charge")),
        ..Options::new(seed, 100)
    };
    let found = (1..=20)
        .map(|seed| simulator::run(&definition, planted(seed)).expect("the run"))
        .find(|report| !report.violations.is_empty())
        .expect("twenty seeds of a hundred orders find a charge taken twice");
    assert!(
        found
            .violations
            .iter()
            .any(|(_, what)| what.starts_with("partner effect charge taken ")),
        "{:?}",
        found.violations
    );
    let options = planted(found.seed);
    let (smallest, shrunk) =
        simulator::shrink(&definition, &options, found).expect("the shrinking runs");
    let explained = simulator::explain(&smallest, &shrunk);
    assert!(
        explained.contains(&format!(
            "cargo run -p simulator --bin simulate -- --seed {} --orders {} --plant-dropped-key charge",
            smallest.seed, smallest.orders
        )),
        "{explained}"
    );
    assert!(explained.contains("partner charge: acted"), "{explained}");
    let replayed = simulator::run(&definition, smallest).expect("the replay");
    assert_eq!(
        replayed.violations, shrunk.violations,
        "the seed replays the failure"
    );
}

#[test]
fn the_same_run_without_the_planted_bug_breaks_nothing() {
    // The planted-bug test above fails for the bug, not for the seeds it uses.
    let definition = definition();
    for seed in 1..=20 {
        let report = simulator::run(&definition, Options::new(seed, 100)).expect("the run");
        assert!(report.violations.is_empty(), "{}", failing(&report));
    }
}

#[test]
fn a_hung_invocation_no_longer_acts_after_the_rollback_on_the_seed_that_found_it() {
    // Seed 3 found a hung invocation calling its partner after the rollback while the
    // functions timed out at 25 s, after their Task's 20 s; they now time out at 15 s. The
    // default faults pause partner calls between the status check and the call.
    assert!(Faults::default().pause_before_acting > 0.0);
    let report = simulator::run(&definition(), Options::new(3, 100)).expect("the run");
    assert!(report.violations.is_empty(), "{}", failing(&report));
}

#[test]
fn a_late_await_delivery_copy_still_replaces_the_task_token_an_open_race_found_on_seed_51() {
    // Kept as found, to be turned around when the race is fixed: the ledger cannot tell a
    // late copy of AwaitDelivery from the current attempt.
    let options = Options {
        faults: Faults::with_late_callback_copies(),
        ..Options::new(51, 100)
    };
    let report = simulator::run(&definition(), options.clone()).expect("the run");
    let found: Vec<&str> = report.violations.iter().map(|(_, w)| w.as_str()).collect();
    assert!(
        found
            .iter()
            .any(|w| w.contains("delivery is recorded but the order never completed")),
        "{found:?}"
    );
    assert!(simulator::replay_command(&options).ends_with("--late-callback-copies"));
}

#[test]
fn the_simulated_function_timeout_is_the_templates() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
    )
    .expect("template.yaml is readable");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
    let timeout = template["Globals"]["Function"]["Timeout"].as_u64();
    assert_eq!(
        timeout.map(|s| s * 1000),
        Some(simulator::FUNCTION_TIMEOUT_MS)
    );
}

#[test]
fn a_task_whose_function_has_no_handler_stops_the_run_naming_the_state() {
    let value = serde_json::json!({
        "StartAt": "ShipToMars",
        "States": {"ShipToMars": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${ShipToMarsFunctionVersionArn}", "Payload": {}},
            "TimeoutSeconds": 20, "End": true}}
    });
    let definition = Definition::from_value(&value).expect("the definition loads");
    let error = simulator::run(&definition, Options::new(1, 1))
        .expect_err("no handler is wired for ShipToMars");
    assert_eq!(
        error.to_string(),
        "state ShipToMars: Parameters.FunctionName is not modelled by the simulator (no handler is wired for ShipToMars)"
    );
}

#[test]
fn a_choice_on_a_variable_that_is_not_there_fails_the_execution_and_the_order_is_lost() {
    let value = serde_json::json!({
        "StartAt": "Check",
        "States": {
            "Check": {"Type": "Choice", "Default": "Done",
                      "Choices": [{"Variable": "$.nothing", "NumericEquals": 1, "Next": "Done"}]},
            "Done": {"Type": "Succeed"}
        }
    });
    let definition = Definition::from_value(&value).expect("the definition loads");
    let report = simulator::run(&definition, Options::new(1, 1)).expect("the run");
    let found: Vec<&str> = report.violations.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(
        found,
        [
            "lost: the execution failed with States.Runtime: state Check: the Choice rule's variable $.nothing is not in the input"
        ]
    );
}
