//! Issue 30, one owner at a time: the invariants the simulator checks at every instant of
//! a run, each on the seed that found it breaking (infra/simulator/RED.md says how, and on which
//! commit). The world's draws move when the code under test changes (one more ledger
//! call is one more control point), so each test runs twenty seeds from the one that
//! found the bug: the invariant must hold on each, and an order of one at least must
//! still meet the case.

use simulator::{
    Definition, Faults, Options, Report, AGREED_ORDER, CANCELLED_HOLDING, DELIVERED_UNDONE,
    DELIVERY_RESUMED_NOTHING, NOT_THE_OWNER, TWO_RUNNING,
};

/// How many seeds, from the one that found a bug on, each test runs.
const SEEDS: u64 = 20;

/// Whether `trace` has every line of `met`, in order.
fn meets(trace: &str, met: &[&str]) -> bool {
    let mut rest = trace;
    met.iter().all(|line| match rest.find(line) {
        Some(at) => {
            rest = &rest[at + line.len()..];
            true
        }
        None => false,
    })
}

/// Runs [`SEEDS`] seeds from `from` on, 100 orders each under `faults`: none may break
/// one of `invariants` (the beginnings of their violations), and an order of one of them
/// at least must meet every line of `met`, in order, in its trace (the seeds still
/// exercise the case, whatever the world draws).
fn holds_from(from: u64, faults: &Faults, met: &[&str], invariants: &[&str]) {
    let definition = Definition::of_repository().expect("the repository's definition loads");
    let mut meeting = 0;
    for seed in from..from + SEEDS {
        let options = Options {
            faults: faults.clone(),
            ..Options::new(seed, 100)
        };
        let report = simulator::run(&definition, options.clone()).expect("the run");
        assert_holds(&options, &report, invariants);
        meeting += (0..report.orders)
            .filter(|&o| meets(report.trace(o), met))
            .count();
    }
    assert!(
        meeting > 0,
        "no order of seeds {from} to {} met {met:?}",
        from + SEEDS - 1
    );
}

/// Panics when the run broke one of `invariants` (the beginnings of their violations),
/// with the replay line and the trace of the first order that broke one.
fn assert_holds(options: &Options, report: &Report, invariants: &[&str]) {
    let broken: Vec<&(usize, String)> = (report.violations.iter())
        .filter(|(_, what)| invariants.iter().any(|i| what.starts_with(i)))
        .collect();
    if let Some((first, _)) = broken.first() {
        let mut text = format!(
            "seed {} broke {} invariant(s) of {invariants:?}; replay with:\n  {}\n",
            report.seed,
            broken.len(),
            simulator::replay_command(options)
        );
        for (order, what) in broken.iter().take(10) {
            text.push_str(&format!("  order #{order}: {what}\n"));
        }
        text.push_str(&format!(
            "\nthe trace of order #{first}:\n{}",
            report.trace(*first)
        ));
        panic!("{text}");
    }
}

#[test]
fn two_resumers_of_a_stopped_order_never_run_two_executions_of_it_on_the_seed_that_found_it() {
    // Seed 2 found it with the claim undone (resume counted with an unconditional ADD,
    // started, then recorded): an order's execution was stopped, two operators resumed
    // it at once and -r1 and -r2 ran together.
    let racing = Faults::default().with_racing_resumers();
    let met = [
        "the execution is stopped outside the saga",
        "racing resumers: ",
    ];
    holds_from(2, &racing, &met, &[TWO_RUNNING]);
}

#[test]
fn an_execution_is_recorded_as_its_orders_owner_before_it_starts_on_the_seed_that_found_it() {
    // Seed 1 found it with the claim undone: the API started each order's execution and
    // recorded it after, so every execution ran a while its order recorded none.
    let met = ["Step Functions: started"];
    holds_from(1, &Faults::default(), &met, &[NOT_THE_OWNER]);
}

#[test]
fn a_cancel_never_leaves_an_order_cancelled_while_a_partner_holds_its_effect_on_the_seed_that_found_it(
) {
    // Seed 11 found it with the claim undone, our infrastructure failing: the API started
    // the execution, its ARN not recorded yet; ReserveStock reserved; a cancel took the
    // "nothing started" shortcut to CANCELLED, and the reservation was never released
    // (the execution's compensations met a final order and dead-lettered it).
    let faults = Faults::default().with_infrastructure_faults();
    let met = [
        "status VALIDATED -> STOCK_RESERVED",
        "cancel requested: Started",
    ];
    holds_from(11, &faults, &met, &[CANCELLED_HOLDING]);
}

#[test]
fn a_late_await_delivery_copy_no_longer_strands_the_delivery_on_the_seed_that_found_it() {
    // Seed 73 found it (once seed 275, before recovery actions were interleaved): the
    // first AwaitDelivery attempt was throttled and retried, its late copy stored its
    // token over the retry's, the courier's delivery resumed nothing, the wait timed out
    // and the rollback of the delivered order began (CancelShipment met a delivered
    // order and dead-lettered it).
    let late_copies = Faults::default().with_late_callback_copies();
    let met = [
        "arrives after the newer",
        "courier webhook (try",
        ": recorded, duplicate false",
    ];
    let invariants = [DELIVERY_RESUMED_NOTHING, DELIVERED_UNDONE, AGREED_ORDER];
    holds_from(73, &late_copies, &met, &invariants);
}

#[test]
fn a_resumer_never_takes_a_claimed_execution_that_is_about_to_start_for_a_missing_one_on_the_seed_that_found_it(
) {
    // Seed 24 found it: a resumer claimed -r1 and had not started it yet when `orderctl
    // reconcile --grace-seconds 0` read the order, asked Step Functions about -r1 (it did
    // not exist yet), claimed -r2 on the order as it read it, and started it while -r1
    // ran. -r2's task token replaced -r1's, -r1's wait timed out and rolled the
    // completed order back. (Now the next resumer starts a claimed execution it finds
    // missing under its own name.)
    let racing = Faults::default().with_racing_resumers();
    let met = [
        "claimed the order",
        "does not exist",
        "Step Functions: started",
    ];
    let invariants = [TWO_RUNNING, NOT_THE_OWNER];
    holds_from(24, &racing, &met, &invariants);
}

#[test]
fn the_reconciler_never_parks_an_order_that_completed_after_it_was_listed_on_the_seed_that_found_it(
) {
    // Seed 2 found it: the reconciler listed order #93 SHIPPED, reached it after its
    // execution had completed it, and parked it from the listed copy ("its execution
    // SUCCEEDED but the order is still SHIPPED"). Now it reads the order again and leaves
    // one that changed since it was listed.
    let met = ["changed since read"];
    holds_from(2, &Faults::default(), &met, &[AGREED_ORDER]);
}

#[test]
fn a_parcel_delivered_as_its_rollback_began_is_never_rolled_back_on_the_seed_that_found_it() {
    // Seed 1 found it (order #85): the courier handed the parcel over a little before the
    // delivery timeout and sent its event later; the timeout began the rollback,
    // CancelShipment was refused already_delivered and dead-lettered the order, the
    // courier's event was answered 409 (COMPENSATING, not SHIPPED) until the courier gave
    // up, and the order stayed COMPENSATING, delivered and charged, until the reconciler
    // parked it.
    let met = [
        "Catch States.Timeout",
        "already_delivered",
        "courier webhook (try",
    ];
    holds_from(
        1,
        &Faults::default(),
        &met,
        &[DELIVERED_UNDONE, AGREED_ORDER],
    );
}

#[test]
fn a_late_await_delivery_copy_from_before_an_outage_wait_never_strands_the_delivery_on_the_seeds_that_found_it(
) {
    // Seeds 6, 79 and 89 of 1,000 orders found it: AwaitDelivery's
    // attempts were throttled until its retries ran out and it waited in the outage loop;
    // a late copy of its fourth retry stored its token (retry 4) and the entry after the
    // wait (retry 0 again) was refused as older, so the courier's delivery resumed nothing.
    // The fence now orders entries of the state by the execution's outage waits first.
    let faults = Faults::default()
        .with_late_callback_copies()
        .with_infrastructure_faults()
        .with_racing_resumers();
    let invariants = [DELIVERY_RESUMED_NOTHING, DELIVERED_UNDONE, AGREED_ORDER];
    let definition = Definition::of_repository().expect("the repository's definition loads");
    for seed in [6, 89] {
        let options = Options {
            faults: faults.clone(),
            ..Options::new(seed, 1000)
        };
        let report = simulator::run(&definition, options.clone()).expect("the run");
        assert_holds(&options, &report, &invariants);
    }
}
