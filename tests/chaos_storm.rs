//! The storm (`make chaos PROFILE=storm`) with a hundred orders, on a moto stack of its
//! own: while orders run, the invoke router throttles 30 % of every DynamoDB request for
//! 60 s and takes the order-events bus down for the 30 s in the middle, with AWS's own
//! error shapes. Our own infrastructure's trouble must make orders wait, never roll one
//! back or park it: the chaos run's invariant 5 holds it to that, beside "none lost,
//! nothing twice". The stack is stopped when the test ends, also when it fails.

use chaos::audit::Outcome;
use std::time::Duration;
use system_tests::{skip_on, Backend, OwnStack};

#[tokio::test]
async fn a_hundred_orders_through_a_dynamodb_throttling_storm_and_a_bus_outage_wait_and_none_is_rolled_back_for_it(
) {
    if skip_on(
        Backend::MiniStack,
        "the storm is injected by the invoke router, which MiniStack's functions do not call through",
    ) {
        return;
    }
    let stack = OwnStack::start(&[]);
    let env = chaos::ChaosEnv::from_file(&stack.dir.join("stack.env"))
        .unwrap_or_else(|error| panic!("{error}"));
    let options = chaos::Options {
        orders: 100,
        rate: 2.0,
        kill_rounds: 0,
        settle_timeout: Duration::from_secs(10 * 60),
        storm: Some(chaos::storm::Storm::default()),
        ..chaos::Options::default()
    };
    let report = chaos::run(&options, &env)
        .await
        .unwrap_or_else(|error| panic!("the chaos run could not be carried out: {error}"));
    println!("{report}");
    assert!(report.invariants_hold(), "{report}");
    // The storm happened and reached the stack: the router faulted requests of both kinds.
    let storm = report
        .storm
        .as_ref()
        .unwrap_or_else(|| panic!("no storm\n{report}"));
    for service in ["dynamodb", "events"] {
        let faulted: u64 = (storm.rules.iter())
            .filter(|(rule, _, _)| rule.starts_with(service))
            .map(|(_, _, faulted)| *faulted)
            .sum();
        assert!(
            faulted > 0,
            "the storm faulted no {service} request\n{report}"
        );
    }
    // Every order ended; the ones in flight during the storm took longer, and none of
    // them is rolled back or parked for it (invariant 5, checked above).
    let outcomes = report.audit.outcomes();
    let ended: usize = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::Rejected,
        Outcome::Cancelled,
    ]
    .iter()
    .map(|o| outcomes.get(o).copied().unwrap_or(0))
    .sum();
    let accepted = (report.load.placed.iter())
        .filter(|p| p.accepted().is_some())
        .count();
    assert_eq!(
        ended + outcomes.get(&Outcome::DeadLettered).copied().unwrap_or(0),
        accepted,
        "{report}"
    );
    let waits = report
        .storm_waits()
        .unwrap_or_else(|| panic!("no order ran during the storm\n{report}"));
    assert!(
        waits.0 .0 > 0,
        "no order was in flight during the storm\n{report}"
    );
}
