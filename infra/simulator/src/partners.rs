//! The five partners in process, as the real ones behave: idempotent by the call's key,
//! with faults drawn from the run's seed (transient errors, refusals, outage windows,
//! acting and then timing out). Every call that acted pauses once before its answer
//! returns (a control point): there the scheduler may run other orders, deliver a
//! cancel, crash the invocation, or let it overrun its Task timeout. The answers are the
//! shared fakes' (`order_core::fakes`, also the saga tests'); this module decides the calls.

use crate::world::{Shared, Trace};
pub use order_core::fakes::shipment_id;
use order_core::fakes::FakePartner;
use order_core::partners::{CallContext, PartnerError, PartnerFailure};
use order_core::steps::Partner;
use order_core::OrderId;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// A planted bug for the test that proves the simulator finds one: the partner call of
/// this operation loses its idempotency key (each call gets a fresh one), so a retry
/// after a call that acted acts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropKeyOf(pub &'static str);

/// What the partners did, for the invariants.
#[derive(Debug, Default)]
pub struct Book {
    /// Effects taken, by (operation, idempotency key): a repeated key acts once.
    keys: BTreeSet<(&'static str, String)>,
    /// Effects taken per order and operation, each numbered in the order the partners
    /// took them: more than one is an effect taken twice; an undo numbered before the
    /// effect it undoes undid nothing.
    pub effects: BTreeMap<(OrderId, &'static str), Vec<u64>>,
    /// Effects taken so far, all partners together.
    taken: u64,
    /// Orders whose shipment was booked, for the courier's webhook (drained by the world).
    pub shipped: Vec<OrderId>,
    /// Effects taken since the world last looked, for the invariants checked as they
    /// happen (drained by the world).
    pub fresh: Vec<(OrderId, &'static str)>,
    /// Calls that get a fresh key because of the planted bug.
    fresh_keys: u64,
}

/// The partners, faked.
pub struct SimPartners {
    shared: Arc<Shared>,
    book: Mutex<Book>,
    planted: Option<DropKeyOf>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns `Pending` once: the control point between a partner acting and its answer
/// reaching the activity. The simulator polls by hand, so no waker is needed.
pub(crate) struct ControlPoint(pub(crate) bool);

impl Future for ControlPoint {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// The courier's refusal of a cancel for a parcel it delivered.
pub const ALREADY_DELIVERED: &str = "already_delivered";

/// The operations whose effect the failure of an order must undo, and what undoes each.
pub const UNDO: [(&str, &str); 4] = [
    ("reserve", "release"),
    ("charge", "refund"),
    ("provision", "deprovision"),
    ("ship", "cancel"),
];

impl SimPartners {
    pub fn new(shared: Arc<Shared>, planted: Option<DropKeyOf>) -> SimPartners {
        SimPartners {
            shared,
            book: Mutex::new(Book::default()),
            planted,
        }
    }

    /// What the partners did so far.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    fn error(partner: Partner, operation: &'static str, failure: PartnerFailure) -> PartnerError {
        let message = match &failure {
            PartnerFailure::Refused { status, code } => format!("answered {status} {code}"),
            other => format!("{other:?} (simulated)"),
        };
        PartnerError {
            partner,
            operation,
            failure,
            message,
        }
    }
}

/// The five partners' answers are `order_core::fakes`'; this decides, as the seed does,
/// whether each call acts, and pauses at the control points.
impl FakePartner for SimPartners {
    /// Takes the call, or fails it as the seed decides.
    async fn act(
        &self,
        partner: Partner,
        operation: &'static str,
        call: &CallContext,
    ) -> Result<(), PartnerError> {
        let order = &call.order_id;
        let decision = self.shared.partner_fault(order, partner, operation);
        if decision.pause_before {
            self.shared.count("pause before a partner call");
            ControlPoint(false).await;
        }
        // A parcel the courier delivered cannot be called back.
        let before = match operation == "cancel" && self.shared.delivered(order) {
            true => Some(PartnerFailure::Refused {
                status: 409,
                code: ALREADY_DELIVERED.into(),
            }),
            false => decision.before,
        };
        if let Some(failure) = before {
            self.shared.count(match failure {
                PartnerFailure::Refused { .. } => "partner refused for good",
                _ => "partner unavailable or throttled",
            });
            self.shared.note(
                order,
                Trace::Partner {
                    operation,
                    outcome: format!("{failure:?}, did not act"),
                },
            );
            return Err(SimPartners::error(partner, operation, failure));
        }
        let acted = {
            let mut book = lock(&self.book);
            let key = if self.planted.is_some_and(|p| p.0 == operation) {
                book.fresh_keys += 1;
                format!("{}#{}", call.idempotency_key, book.fresh_keys)
            } else {
                call.idempotency_key.clone()
            };
            let new = book.keys.insert((operation, key));
            if new {
                book.taken += 1;
                let number = book.taken;
                book.effects
                    .entry((order.clone(), operation))
                    .or_default()
                    .push(number);
                if operation == "ship" {
                    book.shipped.push(order.clone());
                }
                if operation == "cancel" {
                    self.shared.recall(order);
                }
                book.fresh.push((order.clone(), operation));
            }
            new
        };
        self.shared.count(match (&decision.after, acted) {
            (Some(_), true) => "partner acted, then the call timed out",
            (_, false) => "partner call replayed by its key",
            (None, true) => "partner acted",
        });
        let outcome = match (&decision.after, acted) {
            (Some(failure), true) => format!("acted, then {failure:?}"),
            (Some(failure), false) => format!("replayed by key, then {failure:?}"),
            (None, true) => "acted".to_owned(),
            (None, false) => "replayed by key".to_owned(),
        };
        self.shared
            .note(order, Trace::Partner { operation, outcome });
        ControlPoint(false).await;
        match decision.after {
            Some(failure) => Err(SimPartners::error(partner, operation, failure)),
            None => Ok(()),
        }
    }
}
