//! The summary of a run: what was done to the stack, what became of the orders, and
//! each invariant with its verdict and examples.

use crate::audit::{Audit, Outcome};
use crate::faults::{FaultCounts, RequestCounts};
use crate::load::{LoadOutcome, Probe};
use crate::processes::Killed;
use crate::settle::{Quiet, Reconciliation, Replay};
use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};
use std::time::Duration;

/// How many example orders a failed invariant lists.
const EXAMPLES: usize = 10;

/// Everything a run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub orders: usize,
    pub rate: f64,
    pub seed: u64,
    /// Makes the run's keys and merchants unique: `m-chaos-<run>-<n>`.
    pub run_id: String,
    pub fault_plan: Vec<String>,
    pub wall: Duration,
    /// `(phase, how long)` in order.
    pub phases: Vec<(&'static str, Duration)>,
    pub load: LoadOutcome,
    /// When the outage started, since the start of the load.
    pub outage_at: Option<Duration>,
    /// The infrastructure storm, when the run had one: when, and what the router faulted.
    pub storm: Option<crate::storm::StormCounts>,
    pub kills: Vec<Killed>,
    /// Live instances per function before the first kill and after the load.
    pub instances_before: BTreeMap<String, usize>,
    pub instances_after: BTreeMap<String, usize>,
    pub first_quiet: Quiet,
    pub second_quiet: Quiet,
    /// `(rule, fired)` of the fault rules, read before they were removed.
    pub rules_fired: Vec<(String, u64)>,
    pub faults_injected: FaultCounts,
    pub partner_requests: RequestCounts,
    pub reconciliation: Reconciliation,
    pub replay: Replay,
    /// Messages in the dead-letter queue at the end, by order (all orders, any run).
    pub dead_letters_at_end: usize,
    pub audit: Audit,
    /// Set when the stack itself stopped working (the API or the functions stopped
    /// answering): what the run saw.
    pub stack_failure: Option<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn invariants_hold(&self) -> bool {
        self.audit.holds()
    }

    /// p50 and p95 of the seconds from placement to an end state.
    pub fn time_to_end(&self) -> Option<(f64, f64)> {
        let mut seconds: Vec<f64> = self
            .audit
            .facts
            .iter()
            .filter_map(|f| f.seconds_to_end())
            .collect();
        if seconds.is_empty() {
            return None;
        }
        seconds.sort_by(f64::total_cmp);
        Some((percentile(&seconds, 0.50), percentile(&seconds, 0.95)))
    }

    /// Placement to end of the orders in flight during the storm (how many, p50, max) and
    /// of the others (how many, p50): how long the storm made orders wait.
    #[allow(clippy::type_complexity)]
    pub fn storm_waits(&self) -> Option<((usize, f64, f64), (usize, f64))> {
        let storm = self.storm.as_ref()?;
        let (mut during, mut others) = (Vec::new(), Vec::new());
        for facts in &self.audit.facts {
            let (Some(record), Some(seconds)) = (facts.record.as_ref(), facts.seconds_to_end())
            else {
                continue;
            };
            // RFC 3339 in UTC to the millisecond: the strings order as the times do.
            let overlapped = record.created_at.as_str() < storm.ended.as_str()
                && record.updated_at.as_str() > storm.began.as_str();
            if overlapped {
                during.push(seconds);
            } else {
                others.push(seconds);
            }
        }
        during.sort_by(f64::total_cmp);
        others.sort_by(f64::total_cmp);
        let max = *during.last()?;
        let others_p50 = if others.is_empty() {
            0.0
        } else {
            percentile(&others, 0.5)
        };
        Some((
            (during.len(), percentile(&during, 0.5), max),
            (others.len(), others_p50),
        ))
    }

    /// Ended orders per minute, from the first order's creation to the last one's end.
    pub fn orders_per_minute(&self) -> Option<f64> {
        let mut first = None;
        let mut last = None;
        let mut ended = 0usize;
        for record in self.audit.facts.iter().filter_map(|f| f.record.as_ref()) {
            let Ok(created) = chrono::DateTime::parse_from_rfc3339(&record.created_at) else {
                continue;
            };
            first = Some(first.map_or(created, |f: chrono::DateTime<_>| f.min(created)));
            if record.status.is_final() {
                ended += 1;
                if let Ok(updated) = chrono::DateTime::parse_from_rfc3339(&record.updated_at) {
                    last = Some(last.map_or(updated, |l: chrono::DateTime<_>| l.max(updated)));
                }
            }
        }
        let minutes = (last? - first?).num_milliseconds() as f64 / 60_000.0;
        (minutes > 0.0).then(|| ended as f64 / minutes)
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a wait for quiet ended, as the report says it: `reached` or `NOT reached`.
fn reached(quiet: &Quiet) -> &'static str {
    if quiet.reached {
        "reached"
    } else {
        "NOT reached"
    }
}

fn duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

impl Display for Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let placed = &self.load.placed;
        let accepted = placed.iter().filter(|p| p.accepted().is_some()).count();
        writeln!(
            f,
            "chaos run {}: {} orders at {}/s, seed {}; wall time {}",
            self.run_id,
            self.orders,
            self.rate,
            self.seed,
            duration(self.wall)
        )?;
        writeln!(
            f,
            "  replay: chaos --orders {} --rate {} --seed {} --run-id {} (the same orders, merchants and fault draws per order; the kills, the outage and the interleaving follow the clock)",
            self.orders, self.rate, self.seed, self.run_id
        )?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(name, d)| format!("{name} {}", duration(*d)))
            .collect();
        writeln!(f, "  phases: {}", phases.join(" | "))?;
        if let Some(failure) = &self.stack_failure {
            writeln!(f, "  THE STACK STOPPED WORKING: {failure}")?;
        }
        writeln!(f)?;

        writeln!(f, "faults (partner simulator rules, global)")?;
        for line in &self.fault_plan {
            writeln!(f, "  {line}")?;
        }
        if let Some(at) = self.outage_at {
            writeln!(f, "  outage started {} into the load", duration(at))?;
        }
        if let Some(storm) = &self.storm {
            writeln!(f, "  storm from {} to {}", storm.began, storm.ended)?;
            for (rule, matched, faulted) in &storm.rules {
                writeln!(f, "    {rule}: {faulted} of {matched} requests faulted")?;
            }
            match self.storm_waits() {
                Some(((during, during_p50, during_max), (others, others_p50))) => writeln!(
                    f,
                    "  how long orders waited because of the storm: the {during} in flight during it took p50 {during_p50:.1} s, max {during_max:.1} s from placement to end; the {others} others p50 {others_p50:.1} s"
                )?,
                None => writeln!(f, "  no order ended that was in flight during the storm")?,
            }
        }
        let total = self.partner_requests.total;
        let injected = self.faults_injected;
        writeln!(
            f,
            "  injected: unavailable {} ({}), throttled {} ({}), slow {} ({}), refuse {} ({}), hold {} of {} partner requests ({} answered from a kept answer)",
            injected.unavailable,
            share(injected.unavailable, total),
            injected.throttled,
            share(injected.throttled, total),
            injected.slow,
            share(injected.slow, total),
            injected.refuse,
            share(injected.refuse, total),
            injected.hold,
            total,
            self.partner_requests.replayed
        )?;
        let fired: Vec<String> = self
            .rules_fired
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        writeln!(
            f,
            "  rules fired (counted from the outage on, when the rules were posted again): {}",
            fired.join(", ")
        )?;
        writeln!(f)?;

        writeln!(
            f,
            "crashes (SIGKILL of function instances: cargo lambda watch's, or MiniStack's bootstraps)"
        )?;
        if self.kills.is_empty() {
            writeln!(f, "  none")?;
        }
        let mut by_function: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for kill in &self.kills {
            by_function
                .entry(kill.function.as_str())
                .or_default()
                .push(format!("pid {} at {}", kill.pid, duration(kill.at)));
        }
        for (function, kills) in &by_function {
            let before = self.instances_before.get(*function).copied().unwrap_or(0);
            let after = self.instances_after.get(*function).copied().unwrap_or(0);
            writeln!(
                f,
                "  {function:<22} {} killed ({}); instances {before} -> {after}{}",
                kills.len(),
                kills.join(", "),
                if after < before {
                    " (not replaced by watch)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(f)?;

        let count = |probe: Probe| {
            let of_kind: Vec<_> = placed
                .iter()
                .filter_map(|p| p.probe.as_ref())
                .filter(|(k, _)| *k == probe)
                .collect();
            let ok = of_kind
                .iter()
                .filter(|(_, a)| match probe {
                    Probe::SameBody => a.status == Some(202),
                    Probe::DifferentBody => a.status == Some(422),
                })
                .count();
            (of_kind.len(), ok)
        };
        let (same, same_ok) = count(Probe::SameBody);
        let (different, different_ok) = count(Probe::DifferentBody);
        let cancels: Vec<_> = placed.iter().filter_map(|p| p.cancel.as_ref()).collect();
        let cancel_status = |s: u16| cancels.iter().filter(|a| a.status == Some(s)).count();
        writeln!(f, "orders API")?;
        writeln!(
            f,
            "  POST /orders: {} orders sent, {accepted} accepted (202), {} not accepted, {} requests re-sent after no answer or a 5xx",
            placed.len(),
            placed.len() - accepted,
            self.load.api_retries
        )?;
        writeln!(
            f,
            "  same key again: same order {same} (202: {same_ok}), another order {different} (422: {different_ok}); cancels {} (202: {}, 409: {}, other: {})",
            cancels.len(),
            cancel_status(202),
            cancel_status(409),
            cancels.len() - cancel_status(202) - cancel_status(409)
        )?;
        for (key, answer) in self.audit.not_accepted.iter().take(EXAMPLES) {
            writeln!(f, "    not accepted: {key}: {}", answer.describe())?;
        }
        let mut took: Vec<f64> = placed
            .iter()
            .filter(|p| p.answer.attempts > 0)
            .map(|p| p.took.as_secs_f64())
            .collect();
        took.sort_by(f64::total_cmp);
        if !took.is_empty() {
            writeln!(
                f,
                "  POST /orders answered in p50 {:.2} s, p95 {:.2} s, max {:.1} s (retries included)",
                percentile(&took, 0.5),
                percentile(&took, 0.95),
                took[took.len() - 1]
            )?;
        }
        writeln!(
            f,
            "  placing took {} ({:.1} orders/s achieved){}",
            duration(self.load.duration),
            placed.len() as f64 / self.load.duration.as_secs_f64().max(0.001),
            if self.load.stopped_early {
                "; STOPPED EARLY: the stack stopped answering"
            } else {
                ""
            }
        )?;
        if self.load.holds > 0 {
            writeln!(
                f,
                "  placement held {} times, {} in all, while too many executions were running (the stack's capacity)",
                self.load.holds,
                duration(self.load.held)
            )?;
        }
        writeln!(f)?;

        writeln!(f, "recovery")?;
        writeln!(
            f,
            "  first quiet: {} after {}{}",
            reached(&self.first_quiet),
            duration(self.first_quiet.waited),
            if self.first_quiet.reached {
                String::new()
            } else {
                format!(" ({} still running)", self.first_quiet.still_running.len())
            }
        )?;
        let r = &self.reconciliation;
        writeln!(
            f,
            "  reconciler (grace 0 s): {} unfinished orders looked at, {} resumed, {} parked in the DLQ, {} running, {} already parked, {} changed, {} failed",
            r.looked_at,
            r.resumed.len(),
            r.parked.len(),
            r.running,
            r.already_parked,
            r.changed,
            r.failed.len()
        )?;
        for (order, error) in r.failed.iter().take(EXAMPLES) {
            writeln!(f, "    could not reconcile {order}: {error}")?;
        }
        for (order, reason) in r.parked.iter().take(EXAMPLES) {
            writeln!(f, "    parked {order}: {reason}")?;
        }
        let d = &self.replay;
        writeln!(
            f,
            "  DLQ replay: {} messages seen, {} orders resumed, {} already ended, {} already running again, {} left (other runs / unreadable), {} could not be resumed",
            d.seen,
            d.resumed.len(),
            d.ended,
            d.running,
            d.foreign,
            d.failed.len()
        )?;
        for said in d.said.iter().take(EXAMPLES) {
            writeln!(f, "    {said}")?;
        }
        for (order, error) in d.failed.iter().take(EXAMPLES) {
            writeln!(f, "    not resumed {order}: {error}")?;
        }
        writeln!(
            f,
            "  second quiet: {} after {}; DLQ messages at the end: {}",
            reached(&self.second_quiet),
            duration(self.second_quiet.waited),
            self.dead_letters_at_end
        )?;
        writeln!(f)?;

        writeln!(f, "orders by outcome")?;
        let outcomes = self.audit.outcomes();
        for outcome in Outcome::ALL {
            let n = outcomes.get(&outcome).copied().unwrap_or(0);
            if n > 0
                || matches!(
                    outcome,
                    Outcome::Completed | Outcome::Failed | Outcome::Unfinished
                )
            {
                writeln!(f, "  {:<34} {n:>6}", outcome.label())?;
            }
        }
        for facts in self
            .audit
            .facts
            .iter()
            .filter(|x| x.outcome() == Outcome::DeadLettered)
            .take(EXAMPLES)
        {
            let letter = &facts.dead_letters[0];
            writeln!(
                f,
                "    in the DLQ {} ({}): {} at {}: {}",
                facts.order_id,
                facts.record.as_ref().map_or("?", |r| r.status.as_str()),
                letter.error.as_deref().unwrap_or("?"),
                letter.failed_step.as_deref().unwrap_or("?"),
                letter
                    .cause
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect::<String>()
            )?;
        }
        let origins = self.audit.origins();
        if !origins.is_empty() {
            writeln!(
                f,
                "  what started the orders that did not complete (only business may roll back or park):"
            )?;
            for ((origin, outcome), n) in &origins {
                writeln!(
                    f,
                    "    {:<14} {:<26} {:<22} -> {:<26} {n:>5}",
                    origin.kind.as_str(),
                    origin.step,
                    origin.error,
                    outcome.label()
                )?;
            }
        }
        writeln!(
            f,
            "  {:<34} {:>6}",
            "step retries (attempts - 1)",
            self.audit.retries()
        )?;
        writeln!(
            f,
            "  {:<34} {:>6}",
            "compensations run (SUCCEEDED)",
            self.audit.compensations_run()
        )?;
        match (self.orders_per_minute(), self.time_to_end()) {
            (Some(per_minute), Some((p50, p95))) => writeln!(
                f,
                "  throughput {per_minute:.0} orders/min; placement to end state p50 {p50:.1} s, p95 {p95:.1} s"
            )?,
            _ => writeln!(f, "  no order ended: no throughput")?,
        }
        writeln!(f)?;

        writeln!(f, "invariants")?;
        writeln!(
            f,
            "  {:<4} {:<92} {:<6} {:>7} {:>9}",
            "#", "invariant", "result", "checked", "violated"
        )?;
        for invariant in &self.audit.invariants {
            writeln!(
                f,
                "  {:<4} {:<92} {:<6} {:>7} {:>9}",
                invariant.number,
                invariant.name,
                if invariant.holds() { "PASS" } else { "FAIL" },
                invariant.checked,
                invariant.violations.len()
            )?;
            for violation in invariant.violations.iter().take(EXAMPLES) {
                writeln!(f, "         {}: {}", violation.order_id, violation.what)?;
            }
        }
        writeln!(
            f,
            "\n{}",
            if self.invariants_hold() {
                "ALL INVARIANTS HOLD: nothing accepted was lost, nothing happened twice."
            } else {
                "INVARIANTS VIOLATED: see above."
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_taken_by_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.95), 95.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
    }
}
