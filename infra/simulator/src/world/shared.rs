//! What the world, the ledger and the partners share: the one seeded generator every
//! decision draws from, the simulated clock, the orders' traces, the broken invariants
//! and the tally of faults met; the partner faults decided per call, and the windows in
//! which our own services fail.

use super::Faults;
use crate::faults::Windows;
use crate::partners::UNDO;
use order_core::partners::PartnerFailure;
use order_core::steps::Partner;
use order_core::OrderId;
use order_core::OrderStatus;
use rand_core::Rng;
use rand_pcg::Pcg64Mcg;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// One of our own services failing in windows of time ([`Faults`]' `Windows` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The order-events bus refuses every publish.
    BusUnavailable,
    /// The order-events bus throttles a share of the publishes.
    BusThrottling,
    /// DynamoDB throttles a share of every kind of request.
    StoreThrottling,
    /// Lambda throttles every invocation.
    LambdaThrottling,
    /// Step Functions throttles a share of `StartExecution` calls.
    StartThrottling,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::BusUnavailable,
        Service::BusThrottling,
        Service::StoreThrottling,
        Service::LambdaThrottling,
        Service::StartThrottling,
    ];

    /// Its windows in `faults`.
    pub fn windows(self, faults: &Faults) -> Windows {
        match self {
            Service::BusUnavailable => faults.bus_unavailable,
            Service::BusThrottling => faults.bus_throttling,
            Service::StoreThrottling => faults.store_throttling,
            Service::LambdaThrottling => faults.lambda_throttling,
            Service::StartThrottling => faults.start_throttling,
        }
    }

    /// What a request that fails this way met, for the tally.
    pub fn tally(self) -> &'static str {
        match self {
            Service::BusUnavailable => "window: the order-events bus refused a publish",
            Service::BusThrottling => "window: the order-events bus throttled a publish",
            Service::StoreThrottling => "window: DynamoDB throttled a request",
            Service::LambdaThrottling => "window: Lambda throttled an invocation",
            Service::StartThrottling => "window: Step Functions throttled a StartExecution",
        }
    }
}

/// `per_hour` windows on average over `span_ms`, each `min_ms` to `max_ms` long, drawn
/// from `dice`: (from, to) in simulated milliseconds.
pub(super) fn draw_windows(
    dice: &mut Pcg64Mcg,
    per_hour: f64,
    min_ms: u64,
    max_ms: u64,
    span_ms: u64,
) -> Vec<(u64, u64)> {
    let expected = per_hour * span_ms as f64 / 3_600_000.0;
    let whole = expected.floor() as u64;
    let extra =
        u64::from(((dice.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < expected.fract());
    (0..whole + extra)
        .map(|_| {
            let from = dice.next_u64() % span_ms.max(1);
            let length = min_ms + dice.next_u64() % (max_ms.saturating_sub(min_ms)).max(1);
            (from, from + length)
        })
        .collect()
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
    /// The orders whose planned refusal a partner answered: a business refusal met.
    pub(super) refused: Mutex<HashSet<OrderId>>,
    /// Our own services' fault windows: (service, from, to) in simulated milliseconds.
    pub(super) windows: Vec<(Service, u64, u64)>,
    /// How often each fault and interleaving happened.
    pub(super) tally: Mutex<BTreeMap<&'static str, u64>>,
    /// Whether the world is polling a recovery action (a cancel, a resume, the
    /// reconciler, the API's start, the courier's webhook): while it is, every ledger
    /// and Step Functions call is a control point ([`Shared::recovery_point`]).
    pub(super) acting: AtomicBool,
    /// Orders whose recorded execution (the claim) changed since the world last looked.
    pub(super) owners: Mutex<Vec<OrderId>>,
    /// Status changes written since the world last looked: (order, new status).
    pub(super) moves: Mutex<Vec<(OrderId, OrderStatus)>>,
    /// When the courier delivers each shipped order's parcel (simulated milliseconds):
    /// its first delivery event is sent then, or accepted (an event sent right after the
    /// booking, which stands for a hand-over the ledger learns of early, delivers when
    /// accepted). None for a parcel lost in transit.
    pub(super) parcels: Mutex<HashMap<OrderId, u64>>,
    /// The parcels the courier called back before delivering them (its cancel acted):
    /// they are never delivered.
    pub(super) recalled: Mutex<HashSet<OrderId>>,
}

/// Simulated milliseconds as a date: the run starts at 2026-11-29T00:00:00Z.
pub(crate) fn date(ms: u64) -> chrono::DateTime<chrono::Utc> {
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

    pub(crate) fn now(&self) -> u64 {
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

    /// A control point before a ledger or Step Functions call of a recovery action: the
    /// call waits for the world's next poll of the action, so that other events (another
    /// resumer, the reconciler, the execution's steps, a cancel) run between what the
    /// action read and what it writes or starts. Nothing for an activity's calls (their
    /// control points are the partners' and [`Shared::pause_before_write`]'s).
    pub async fn recovery_point(&self) {
        if self.acting.load(Ordering::Relaxed) {
            crate::partners::ControlPoint(false).await;
        }
    }

    /// Notes that the order's recorded execution changed, for the invariants checked as
    /// they happen.
    pub fn owner_changed(&self, id: &OrderId) {
        lock(&self.owners).push(id.clone());
    }

    /// Notes a status change written, for the invariants checked as they happen.
    pub fn moved(&self, id: &OrderId, to: OrderStatus) {
        lock(&self.moves).push((id.clone(), to));
    }

    /// Whether an activity pauses before this ledger write.
    pub fn pause_before_write(&self) -> bool {
        self.chance(self.faults.pause_before_write)
    }

    /// Whether the store fails this write.
    pub fn store_fault(&self) -> bool {
        self.chance(self.faults.store_unavailable)
    }

    /// Whether `service` fails this request: the simulated clock is in one of its windows
    /// and the request falls in its share (counted in the tally). Outside every window
    /// nothing is drawn, so a run without windows makes the draws it made before they
    /// existed.
    pub fn fails(&self, service: Service) -> bool {
        let now = self.now();
        let inside = self
            .windows
            .iter()
            .any(|(s, from, to)| *s == service && (*from..*to).contains(&now));
        let share = service.windows(&self.faults).share;
        let failed = inside && (share >= 1.0 || self.chance(share));
        if failed {
            self.count(service.tally());
        }
        failed
    }

    /// The courier called the order's parcel back (before delivering it): its delivery
    /// event never comes.
    pub fn recall(&self, order: &OrderId) {
        if !self.delivered(order) {
            lock(&self.recalled).insert(order.clone());
        }
    }

    /// The courier's delivery event for the order was accepted: its parcel was delivered
    /// by now, whenever the world had planned it.
    pub fn delivery_accepted(&self, order: &OrderId) {
        let now = self.now();
        let mut parcels = lock(&self.parcels);
        let at = parcels.entry(order.clone()).or_insert(now);
        *at = (*at).min(now);
    }

    /// Whether the courier delivered the order's parcel by now.
    pub fn delivered(&self, order: &OrderId) -> bool {
        let now = self.now();
        !lock(&self.recalled).contains(order)
            && lock(&self.parcels).get(order).is_some_and(|at| *at <= now)
    }

    /// Whether a partner refused one of the order's forward calls for good.
    pub fn met_refusal(&self, order: &OrderId) -> bool {
        lock(&self.refused).contains(order)
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
        } else if lock(&self.refusals).get(order) == Some(&operation) {
            lock(&self.refused).insert(order.clone());
            Some(PartnerFailure::Refused {
                status: 422,
                code: "refused_in_simulation".into(),
            })
        } else if compensation && self.chance(self.faults.compensation_refusal) {
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
