//! The courier and the delivery hand-over: webhooks booked for the shipments the partners
//! took (lost, early or twice, as the seed decides), the real webhook logic
//! (`order_core::delivery::deliver`), and Step Functions' `SendTaskSuccess` in process.

use super::actions::Done::Delivered;
use super::{Event, SimError, World, DELIVERY_TIMEOUT_MS};
use crate::partners::shipment_id;
use crate::world::{lock, Shared, Trace};
use order_core::delivery::{self, CourierEvent, DeliveryError, Resumed, TaskResumer};
use order_core::store::Delivery;
use order_core::OrderId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Step Functions' `SendTaskSuccess`, in process: resumes the execution waiting with the
/// token, once.
pub struct SimResumer {
    pub(super) shared: Arc<Shared>,
    /// Token -> still waiting.
    pub(super) tokens: Mutex<HashMap<String, bool>>,
    pub(super) resumed: Mutex<Vec<(String, Value)>>,
}

impl TaskResumer for SimResumer {
    async fn resume_task(
        &self,
        order_id: &OrderId,
        task_token: &str,
        delivery: &Delivery,
    ) -> Result<Resumed, String> {
        self.shared.recovery_point().await;
        if self.shared.chance(self.shared.faults.resume_unavailable) {
            self.shared.note(
                order_id,
                Trace::Note("  SendTaskSuccess failed (simulated)".into()),
            );
            self.shared.count("SendTaskSuccess failed");
            return Err("SendTaskSuccess: simulated service error".into());
        }
        let mut tokens = lock(&self.tokens);
        match tokens.get_mut(task_token) {
            Some(waiting) if *waiting => {
                *waiting = false;
                let output = json!({
                    "event_id": delivery.event_id,
                    "shipment_id": delivery.shipment_id,
                    "delivered_at": delivery.delivered_at,
                });
                lock(&self.resumed).push((task_token.to_owned(), output));
                self.shared.count("SendTaskSuccess resumed a waiting task");
                self.shared.note(
                    order_id,
                    Trace::Note(format!("  SendTaskSuccess {task_token}: resumed")),
                );
                Ok(Resumed::Now)
            }
            _ => {
                self.shared
                    .count("SendTaskSuccess found no waiting task (ended or stale token)");
                self.shared.note(
                    order_id,
                    Trace::Note(format!(
                        "  SendTaskSuccess {task_token}: task does not exist (ended or unknown)"
                    )),
                );
                Ok(Resumed::AlreadyResumed)
            }
        }
    }
}

impl<'d> World<'d> {
    /// The courier books webhooks for shipments the partners took.
    pub(super) fn drain_partners(&mut self) {
        let shipped = std::mem::take(&mut self.env.partners.book().shipped);
        for id in shipped {
            let Some(&order) = lock(&self.shared.index).get(&id) else {
                continue;
            };
            let faults = self.options.faults.clone();
            if self.shared.chance(faults.delivery_lost) {
                self.shared.count("delivery event lost");
                self.seen[order].delivery_lost = true;
                self.note_order(
                    order,
                    "  courier: this parcel's delivery event will never come".into(),
                );
                continue;
            }
            // When the parcel is handed over, and when the courier's event about it is
            // sent: at once, except for a late parcel's, which the courier may hold up.
            let early = self.shared.chance(faults.delivery_early);
            let (handed_over, delay) = if early {
                self.shared
                    .count("delivery event sent right after the booking");
                (None, self.shared.below(200))
            } else if self.shared.chance(faults.delivery_late) {
                self.shared
                    .count("parcel delivered around the delivery timeout");
                self.seen[order].delivery_late = true;
                let at =
                    DELIVERY_TIMEOUT_MS - LATE_SPREAD_MS + self.shared.below(2 * LATE_SPREAD_MS);
                (Some(at), at + self.shared.below(LATE_EVENT_LAG_MS))
            } else {
                let at = 1_000 + self.shared.below(3_600_000);
                (Some(at), at)
            };
            if let Some(at) = handed_over {
                lock(&self.shared.parcels).insert(id.clone(), self.now() + at);
            }
            self.after(delay, Event::Webhook { order, tries: 0 });
            if self.shared.chance(faults.delivery_duplicated) {
                self.shared.count("delivery event sent twice");
                let again = delay + self.shared.below(600_000);
                self.after(again, Event::Webhook { order, tries: 0 });
            }
        }
    }

    /// Executions resumed by `SendTaskSuccess` go on.
    pub(super) fn drain_resumed(&mut self) -> Result<(), SimError> {
        let resumed = std::mem::take(&mut *lock(&self.env.resumer.resumed));
        for (token, output) in resumed {
            if let Some(&(exec, attempt)) = self.tokens.get(&token) {
                if self.executions[exec].waiting == Some(attempt) {
                    let state = self.executions[exec].state.clone();
                    self.note(
                        exec,
                        format!("  {state} invocation {attempt}: resumed by its token"),
                    );
                    self.task_succeeded(exec, output)?;
                }
            }
        }
        Ok(())
    }

    /// The courier's try `tries` of order `order`'s delivery event: the webhook
    /// (`order_core::delivery::deliver`) runs as an interleaved action.
    pub(super) fn webhook(&mut self, order: usize, tries: u32) -> Result<(), SimError> {
        let id = self.id(order)?;
        if lock(&self.shared.recalled).contains(&id) {
            if tries == 0 {
                self.shared
                    .count("a recalled parcel is never delivered (the courier's cancel acted)");
                self.note_order(
                    order,
                    "courier: the parcel was called back, never delivered".into(),
                );
            }
            return Ok(());
        }
        let event = CourierEvent {
            event_id: format!("evt-{id}"),
            kind: delivery::DELIVERED.to_owned(),
            order_id: id.to_string(),
            shipment_id: shipment_id(&id),
            tracking_number: None,
            occurred_at: "2026-11-29T00:00:00.000Z".to_owned(),
        };
        let (ledger, resumer) = (self.env.ledger.clone(), self.env.resumer.clone());
        let retry = (tries < COURIER_RETRIES).then(|| {
            let tries = tries + 1;
            (courier_backoff(tries), Event::Webhook { order, tries })
        });
        self.spawn(
            "the courier's webhook",
            Some(order),
            retry,
            Box::pin(async move {
                let result = delivery::deliver(&*ledger, &*resumer, &id, &event).await;
                Delivered {
                    order,
                    tries,
                    result,
                }
            }),
        );
        Ok(())
    }

    /// What the webhook answered the courier; a refusal is sent again later.
    pub(super) fn delivered(
        &mut self,
        order: usize,
        tries: u32,
        delivered: Result<order_core::delivery::Delivered, DeliveryError>,
    ) -> Result<(), SimError> {
        let retry = match &delivered {
            Ok(d) => {
                self.shared.count(match (d.duplicate, d.resumed) {
                    (true, _) => "webhook: a repeated event",
                    (false, Some(true)) => "webhook: recorded and resumed the waiting task",
                    (false, Some(false)) => "webhook: recorded, the task was not waiting any more",
                    (false, None) => "webhook: recorded before AwaitDelivery stored its token",
                });
                if self.seen[order].delivered.is_none() {
                    self.seen[order].delivered = Some(self.now());
                }
                self.shared.delivery_accepted(&d.order.order_id);
                self.note_order(
                    order,
                    format!(
                        "courier webhook (try {tries}): recorded, duplicate {}, resumed {:?}",
                        d.duplicate, d.resumed
                    ),
                );
                false
            }
            Err(DeliveryError::WrongShipment { .. }) => {
                self.shared.violation_at(
                    order,
                    format!("the webhook's shipment was refused: {delivered:?}"),
                );
                false
            }
            Err(error) => {
                self.shared
                    .count("webhook refused (not shipped yet, or rolled back), courier retries");
                self.note_order(
                    order,
                    format!("courier webhook (try {tries}): refused: {error}"),
                );
                true
            }
        };
        if retry && tries < COURIER_RETRIES {
            let tries = tries + 1;
            self.after(courier_backoff(tries), Event::Webhook { order, tries });
        }
        Ok(())
    }
}

/// How far from the delivery timeout a late parcel is delivered, either way (simulated
/// milliseconds).
const LATE_SPREAD_MS: u64 = 600_000;

/// How long the courier may hold up the delivery event of a late parcel after handing it
/// over, at most (simulated milliseconds).
const LATE_EVENT_LAG_MS: u64 = 1_200_000;

/// How often the courier sends a refused delivery event again.
const COURIER_RETRIES: u32 = 6;

/// How long the courier waits before its try `tries` (1: the first retry) of a refused
/// delivery event: 30 s, doubling.
fn courier_backoff(tries: u32) -> u64 {
    30_000 * 2u64.pow(tries.saturating_sub(1))
}
