//! The order-events bus (EventBridge `PutEvents`) in process: it keeps what was published,
//! for the invariants, and fails as the seed's windows say: unavailable (every publish
//! fails) or throttling a share of the publishes. A failed publish is what the real
//! `EventBus` returns, a `PublishError`: a step's `Events.Unavailable`, the API's 503, a
//! failed reconciler run. Nothing failed is kept: the caller's retry publishes it again.

use crate::world::{Service, Shared, Trace};
use order_core::events::{OrderEvent, PublishError, Publisher, Recorder};
use order_core::OrderId;
use std::sync::Arc;

/// The bus, faked.
pub struct SimBus {
    shared: Arc<Shared>,
    published: Recorder,
}

impl SimBus {
    pub fn new(shared: Arc<Shared>) -> SimBus {
        SimBus {
            shared,
            published: Recorder::default(),
        }
    }

    /// Everything the bus took, in order.
    pub fn published(&self) -> Vec<OrderEvent> {
        self.published.published()
    }
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
