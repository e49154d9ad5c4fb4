//! The order-events bus (EventBridge `PutEvents`) in process: it keeps what was published,
//! for the invariants, and fails as the seed's windows say: unavailable (every publish
//! fails) or throttling a share of the publishes. Nothing in the saga publishes: every
//! change writes its event to the outbox in its own transaction, and the table's stream
//! hands each outbox item to `publish-events`, which retries a refused one until the bus
//! takes it ([`SimBus::deliver`]). So a window of bus trouble can only delay events, never
//! fail a step or an API call.

use crate::world::{Service, Shared, Trace};
use order_core::events::{OrderEvent, PublishError, Publisher, Recorder};
use order_core::OrderId;
use std::sync::{Arc, Mutex};

/// How many polls [`SimBus::pump_until_empty`] makes before the windows are surely over.
const MAX_OFFERS: u32 = 8;

/// The bus, faked.
pub struct SimBus {
    shared: Arc<Shared>,
    published: Recorder,
    /// Outbox items written and not yet taken by the bus, in the order written.
    pending: Mutex<Vec<OrderEvent>>,
    /// The event ids handed to the stream so far.
    seen: Mutex<std::collections::HashSet<String>>,
}

impl SimBus {
    pub fn new(shared: Arc<Shared>) -> SimBus {
        SimBus {
            shared,
            published: Recorder::default(),
            pending: Mutex::new(Vec::new()),
            seen: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Everything the bus took, in order.
    pub fn published(&self) -> Vec<OrderEvent> {
        self.published.published()
    }

    /// Hands what an order's outbox holds to the stream: each item not seen before waits
    /// for [`SimBus::pump`], in the order written.
    pub fn written(&self, outbox: Vec<OrderEvent>) {
        let mut seen = lock(&self.seen);
        let mut pending = lock(&self.pending);
        for event in outbox {
            if seen.insert(event.detail.event_id.clone()) {
                pending.push(event);
            }
        }
    }

    /// Whether outbox items wait for the bus.
    pub fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// One poll of the stream by `publish-events`: each waiting item is offered to the
    /// bus; the refused wait for the next poll (Lambda's event source mapping retries
    /// them, in order per order). Returns how many were refused.
    pub async fn pump(&self) -> usize {
        let waiting = std::mem::take(&mut *lock(&self.pending));
        let mut refused = Vec::new();
        let mut held: std::collections::HashSet<String> = std::collections::HashSet::new();
        for event in waiting {
            // In order per order: once one is refused, the order's later ones wait too.
            let order = event.detail.order_id.clone();
            if held.contains(&order) || self.publish(&event).await.is_err() {
                held.insert(order);
                refused.push(event);
            }
        }
        let count = refused.len();
        let mut pending = lock(&self.pending);
        refused.append(&mut pending);
        *pending = refused;
        count
    }

    /// The last polls after the run: the stream keeps a record 24 hours, far longer than
    /// any window of the run, so what is left is offered until the bus takes it (past
    /// the windows it takes everything; after [`MAX_OFFERS`] polls the windows are over).
    pub async fn pump_until_empty(&self) {
        for _ in 0..MAX_OFFERS {
            if self.pump().await == 0 {
                return;
            }
        }
        let left = std::mem::take(&mut *lock(&self.pending));
        for event in left {
            let _ = self.published.publish(&event).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Publisher for SimBus {
    async fn publish(&self, event: &OrderEvent) -> Result<(), PublishError> {
        let refused = if self.shared.fails(Service::BusUnavailable) {
            Some("ServiceUnavailable: the bus is unavailable (simulated)")
        } else if self.shared.fails(Service::BusThrottling) {
            Some("ThrottlingException: Rate exceeded (simulated)")
        } else {
            None
        };
        let Some(reason) = refused else {
            return self.published.publish(event).await;
        };
        if let Some(id) = OrderId::parse(&event.detail.order_id) {
            self.shared.note(
                &id,
                Trace::Note(format!(
                    "  bus: {} not published ({reason})",
                    event.lifecycle.detail_type()
                )),
            );
        }
        Err(PublishError {
            detail_type: event.lifecycle.detail_type(),
            event_id: event.detail.event_id.clone(),
            reason: reason.to_owned(),
        })
    }
}
