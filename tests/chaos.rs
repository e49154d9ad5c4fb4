//! The chaos run (infra/chaos) with a hundred orders, on a stack of its own (on the
//! emulator of the stack `make test` runs the tests on: moto, or MiniStack): it injects
//! global fault rules and kills function instances, which would disturb the tests that
//! share the stack `make test` starts. The stack is stopped when the test ends, also when
//! it fails.

use chaos::audit::{OrderFacts, Outcome};
use order_core::dead_letters::DeadLetterBody;
use order_core::steps::{self, StepRole};
use order_core::ErrorName;
use std::time::Duration;
use system_tests::OwnStack;

#[tokio::test]
async fn a_hundred_orders_under_faults_and_crashes_are_all_accounted_for_and_nothing_happens_twice()
{
    let stack = OwnStack::start(&[]);
    let env = chaos::ChaosEnv::from_file(&stack.dir.join("stack.env"))
        .unwrap_or_else(|error| panic!("{error}"));
    let options = chaos::Options {
        orders: 100,
        settle_timeout: Duration::from_secs(10 * 60),
        ..chaos::Options::default()
    };
    let report = chaos::run(&options, &env)
        .await
        .unwrap_or_else(|error| panic!("the chaos run could not be carried out: {error}"));
    println!("{report}");
    assert!(report.invariants_hold(), "{report}");
    // The run did what it claims: orders went through, faults fired, instances died.
    let accepted = report
        .load
        .placed
        .iter()
        .filter(|p| p.accepted().is_some())
        .count();
    assert_eq!(accepted, 100, "{report}");
    assert!(report.faults_injected.unavailable > 0, "{report}");
    assert!(!report.kills.is_empty(), "{report}");
    // And the orders went somewhere: most completed, the faults were ridden out by retries
    // and the refusals rolled back, and the dead-letter queue holds no more than the
    // refused compensations explain (it is not a place where any order counts as done).
    let outcomes = report.audit.outcomes();
    let completed = outcomes.get(&Outcome::Completed).copied().unwrap_or(0);
    assert!(
        completed * 100 >= accepted * MIN_COMPLETED_PERCENT,
        "only {completed} of {accepted} orders completed (at least {MIN_COMPLETED_PERCENT}% must)\n{report}"
    );
    assert!(report.audit.retries() > 0, "no step was retried\n{report}");
    assert!(
        report.audit.compensations_run() > 0,
        "no compensation ran\n{report}"
    );
    let dead_lettered: Vec<&OrderFacts> = report
        .audit
        .facts
        .iter()
        .filter(|f| f.outcome() == Outcome::DeadLettered)
        .collect();
    let unexplained: Vec<String> = dead_lettered
        .iter()
        .filter(|f| !f.dead_letters.iter().any(is_a_refused_compensation))
        .map(|f| format!("{} {:?}", f.order_id, f.dead_letters))
        .collect();
    assert_eq!(
        unexplained,
        Vec::<String>::new(),
        "orders in the dead-letter queue that no refused compensation explains\n{report}"
    );
    assert!(
        dead_lettered.len() as u64 <= report.faults_injected.refuse,
        "{} orders dead-lettered but only {} refusals were injected\n{report}",
        dead_lettered.len(),
        report.faults_injected.refuse
    );
}

/// The share of accepted orders that must complete. The default fault plan refuses about
/// 2% of forward partner requests (several per order), cancels about 3% of the orders and
/// loses about 1% of the parcels: measured runs complete about four in five.
const MIN_COMPLETED_PERCENT: usize = 60;

/// Whether a dead letter is the end of a rollback whose compensation the partner refused
/// for good (what the fault plan's compensation refusals inject).
fn is_a_refused_compensation(letter: &DeadLetterBody) -> bool {
    let compensation = letter
        .failed_step
        .as_deref()
        .and_then(steps::by_name)
        .is_some_and(|step| step.role == StepRole::Compensation);
    let permanent = letter
        .error
        .as_deref()
        .and_then(ErrorName::parse)
        .is_some_and(|name| !name.is_transient());
    compensation && permanent
}
