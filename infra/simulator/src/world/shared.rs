//! What the world, the ledger and the partners share: the one seeded generator every
//! decision draws from, the simulated clock, the orders' traces, the broken invariants
//! and the tally of faults met; and the partner faults decided per call.

use super::Faults;
use crate::partners::UNDO;
use order_core::partners::PartnerFailure;
use order_core::steps::Partner;
use order_core::OrderId;
use order_core::OrderStatus;
use rand_core::Rng;
use rand_pcg::Pcg64Mcg;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One line of an order's trace.
#[derive(Debug, Clone)]
pub enum Trace {
    Partner {
        operation: &'static str,
        outcome: String,
    },
    Status {
        from: OrderStatus,
        to: OrderStatus,
    },
    Store {
        operation: &'static str,
    },
    Note(String),
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trace::Partner { operation, outcome } => write!(f, "  partner {operation}: {outcome}"),
            Trace::Status { from, to } => write!(f, "  ledger: status {from} -> {to}"),
            Trace::Store { operation } => {
                write!(f, "  ledger: {operation} failed (Store.Unavailable)")
            }
            Trace::Note(text) => write!(f, "{text}"),
        }
    }
}

/// Partner faults decided for one call.
pub struct PartnerFault {
    pub pause_before: bool,
    pub before: Option<PartnerFailure>,
    pub after: Option<PartnerFailure>,
}

/// What the world, the ledger and the partners share: the generator, the clock, the
/// traces and the violations.
pub struct Shared {
    pub(super) dice: Mutex<Pcg64Mcg>,
    pub(super) clock: AtomicU64,
    pub(super) faults: Faults,
    pub(super) index: Mutex<HashMap<OrderId, usize>>,
    pub(super) traces: Mutex<Vec<Vec<(u64, Trace)>>>,
    pub(super) violations: Mutex<Vec<(usize, String)>>,
    /// Per partner, outage windows in simulated milliseconds.
    pub(super) outages: Vec<(Partner, u64, u64)>,
    /// The forward operation refused for good for an order, if any.
    pub(super) refusals: Mutex<HashMap<OrderId, &'static str>>,
    /// How often each fault and interleaving happened.
    pub(super) tally: Mutex<BTreeMap<&'static str, u64>>,
}

/// Simulated milliseconds as a date: the run starts at 2026-11-29T00:00:00Z.
pub(super) fn date(ms: u64) -> chrono::DateTime<chrono::Utc> {
    const START_MS: i64 = 1_795_910_400_000;
    let ms = i64::try_from(ms).unwrap_or(i64::MAX - START_MS);
    chrono::DateTime::from_timestamp_millis(START_MS.saturating_add(ms)).unwrap_or_default()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(super) fn roll(&self) -> f64 {
        // 53 random bits: a uniform float in [0, 1).
        (lock(&self.dice).next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.roll() < p
    }

    pub(super) fn below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            lock(&self.dice).next_u64() % n
        }
    }

    /// The simulated clock as a date, for what the ledger and the reconciler read: the
    /// run starts at 2026-11-29T00:00:00Z.
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        date(self.now())
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// Counts one more of `what` (a fault or an interleaving) in the run's tally.
    pub fn count(&self, what: &'static str) {
        *lock(&self.tally).entry(what).or_default() += 1;
    }

    /// Adds a line to the trace of the order.
    pub fn note(&self, id: &OrderId, trace: Trace) {
        if let Some(&i) = lock(&self.index).get(id) {
            self.note_at(i, trace);
        }
    }

    pub(super) fn note_at(&self, order: usize, trace: Trace) {
        let now = self.now();
        if let Some(lines) = lock(&self.traces).get_mut(order) {
            lines.push((now, trace));
        }
    }

    /// Records a broken invariant for the order.
    pub fn violation(&self, id: &OrderId, what: String) {
        if let Some(&i) = lock(&self.index).get(id) {
            self.violation_at(i, what);
        }
    }

    pub(super) fn violation_at(&self, order: usize, what: String) {
        self.note_at(order, Trace::Note(format!("  VIOLATION: {what}")));
        lock(&self.violations).push((order, what));
    }

    /// Whether an activity pauses before this ledger write.
    pub fn pause_before_write(&self) -> bool {
        self.chance(self.faults.pause_before_write)
    }

    /// Whether the store fails this write.
    pub fn store_fault(&self) -> bool {
        self.chance(self.faults.store_unavailable)
    }

    /// The faults of one partner call.
    pub fn partner_fault(
        &self,
        order: &OrderId,
        partner: Partner,
        operation: &'static str,
    ) -> PartnerFault {
        let now = self.now();
        let pause_before = self.chance(self.faults.pause_before_acting);
        let compensation = UNDO.iter().any(|(_, undo)| *undo == operation);
        let before = if self
            .outages
            .iter()
            .any(|(p, from, to)| *p == partner && (*from..*to).contains(&now))
        {
            Some(PartnerFailure::Unavailable)
        } else if lock(&self.refusals).get(order) == Some(&operation)
            || (compensation && self.chance(self.faults.compensation_refusal))
        {
            Some(PartnerFailure::Refused {
                status: 422,
                code: "refused_in_simulation".into(),
            })
        } else if self.chance(self.faults.partner_transient) {
            Some(if self.chance(0.5) {
                PartnerFailure::Unavailable
            } else {
                PartnerFailure::Throttled
            })
        } else {
            None
        };
        let after = (before.is_none() && self.chance(self.faults.partner_timeout_after_acting))
            .then_some(PartnerFailure::Timeout);
        PartnerFault {
            pause_before,
            before,
            after,
        }
    }
}
