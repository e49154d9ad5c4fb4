//! The ledger: every effect the partners have had (reservations, charges, terminals,
//! shipments, ...), the warehouse's stock, the orders closed by a compensation, and the
//! request and fault counters. `GET /admin/ledger` shows it.
//!
//! Everything here is synchronous and in memory; callers hold the simulator's lock
//! around each call, so each operation is atomic.

use crate::faults::Fault;
use crate::operation::Partner;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// One line of a reservation or provisioning: `quantity` units of `sku`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Reserved,
    Released,
}

/// Stock held for an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub lines: Vec<Line>,
    pub status: ReservationStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Captured,
    Refunded,
}

/// Money taken for an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Charge {
    pub charge_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub amount_cents: u64,
    pub currency: String,
    pub status: ChargeStatus,
    /// Set when refunded.
    pub refund_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalStatus {
    Provisioned,
    Deprovisioned,
}

/// One terminal provisioned for an order (one per unit ordered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Terminal {
    pub terminal_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub sku: String,
    pub status: TerminalStatus,
}

/// Serials a merchant's returned terminals were deactivated under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deactivation {
    pub order_id: String,
    pub merchant_id: String,
    pub serials: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Created,
    Cancelled,
    Delivered,
}

/// A parcel handed to the courier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub tracking_number: String,
    pub order_id: String,
    pub merchant_id: String,
    pub parcels: u32,
    pub status: ShipmentStatus,
    /// Webhook posts made for it, whatever their outcome.
    pub webhook_attempts: u32,
    /// The event's `occurred_at`, once a webhook post was acknowledged with a 2xx.
    pub delivered_at: Option<String>,
    /// Fixed at creation, so every (re)send of its delivery carries the same event id.
    #[serde(skip)]
    pub event_id: String,
    /// The delivery event's exact body, fixed at the first attempt so that retries and
    /// re-sends are byte-identical (same `occurred_at`, same signature).
    #[serde(skip)]
    event: Option<DeliveryEvent>,
    /// Webhook posts currently waiting for an answer.
    #[serde(skip)]
    in_flight: u32,
}

#[derive(Debug, Clone)]
struct DeliveryEvent {
    body: Vec<u8>,
    occurred_at: String,
}

/// A return label made for an order's terminals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReturnLabel {
    pub return_label_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub serials: Vec<String>,
}

/// A notification sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub template: String,
}

/// Partner requests seen: all of them, and those answered from a kept answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub replayed: u64,
}

/// How often each fault was injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub unavailable: u64,
    pub throttled: u64,
    pub slow: u64,
    pub refuse: u64,
    pub hold: u64,
}

/// Why an operation was refused for good (nothing was done).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not enough {sku}: {requested} requested, {available} in stock")]
    OutOfStock {
        sku: String,
        requested: u64,
        available: u64,
    },
    #[error("order {order_id} was closed at the {partner} by a compensation")]
    OrderClosed { partner: Partner, order_id: String },
    #[error("shipment {shipment_id} was already delivered")]
    AlreadyDelivered { shipment_id: String },
    /// Transient: a delivery event is being posted right now; whether it gets through
    /// decides whether the shipment can still be cancelled.
    #[error("the delivery event of shipment {shipment_id} is being sent right now; retry")]
    DeliveryInFlight { shipment_id: String },
}

/// What a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `None` when the order had no captured charge.
    pub refund_id: Option<String>,
    /// The sum refunded (0 when nothing was).
    pub amount_cents: u64,
}

/// Whether to post a delivery event now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Post this body (the attempt is counted and marked in flight: call
    /// [`Ledger::finish_attempt`] when it is answered).
    Send(Vec<u8>),
    /// Do not post: the shipment is cancelled, already delivered (for a scheduled
    /// delivery) or unknown.
    Stop(&'static str),
}

/// Which entries `GET /admin/ledger` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LedgerFilter {
    pub order_id: Option<String>,
    pub merchant_id: Option<String>,
}

impl LedgerFilter {
    fn admits(&self, order_id: &str, merchant_id: &str) -> bool {
        self.order_id.as_deref().is_none_or(|o| o == order_id)
            && self.merchant_id.as_deref().is_none_or(|m| m == merchant_id)
    }
}

#[derive(Debug, Clone)]
struct ClosedOrder {
    partner: Partner,
    order_id: String,
    merchant_id: String,
}

/// All effects and counters.
#[derive(Debug)]
pub struct Ledger {
    stock_per_sku: u64,
    reservations: Vec<Reservation>,
    charges: Vec<Charge>,
    terminals: Vec<Terminal>,
    deactivations: Vec<Deactivation>,
    shipments: Vec<Shipment>,
    return_labels: Vec<ReturnLabel>,
    messages: Vec<Message>,
    closed: Vec<ClosedOrder>,
    requests: RequestCounts,
    faults_injected: FaultCounts,
    stock: BTreeMap<String, u64>,
}

impl Ledger {
    /// An empty ledger whose warehouse holds `stock_per_sku` units of every SKU.
    pub fn new(stock_per_sku: u64) -> Self {
        Ledger {
            stock_per_sku,
            reservations: Vec::new(),
            charges: Vec::new(),
            terminals: Vec::new(),
            deactivations: Vec::new(),
            shipments: Vec::new(),
            return_labels: Vec::new(),
            messages: Vec::new(),
            closed: Vec::new(),
            requests: RequestCounts::default(),
            faults_injected: FaultCounts::default(),
            stock: BTreeMap::new(),
        }
    }

    /// Counts one partner request (`replayed`: answered from a kept answer).
    pub fn count_request(&mut self, replayed: bool) {
        self.requests.total += 1;
        if replayed {
            self.requests.replayed += 1;
        }
    }

    /// Counts one injected fault.
    pub fn count_fault(&mut self, fault: Fault) {
        let counter = match fault {
            Fault::Unavailable => &mut self.faults_injected.unavailable,
            Fault::Throttled => &mut self.faults_injected.throttled,
            Fault::Slow => &mut self.faults_injected.slow,
            Fault::Refuse => &mut self.faults_injected.refuse,
            Fault::Hold => &mut self.faults_injected.hold,
        };
        *counter += 1;
    }

    fn is_closed(&self, partner: Partner, order_id: &str) -> bool {
        self.closed
            .iter()
            .any(|c| c.partner == partner && c.order_id == order_id)
    }

    fn ensure_open(&self, partner: Partner, order_id: &str) -> Result<(), Refusal> {
        if self.is_closed(partner, order_id) {
            return Err(Refusal::OrderClosed {
                partner,
                order_id: order_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Closes the order at `partner`: later original requests for it are refused.
    fn close(&mut self, partner: Partner, order_id: &str, merchant_id: &str) {
        if !self.is_closed(partner, order_id) {
            self.closed.push(ClosedOrder {
                partner,
                order_id: order_id.to_owned(),
                merchant_id: merchant_id.to_owned(),
            });
        }
    }

    /// Units of `sku` in stock (`--stock-per-sku` for a SKU never seen).
    pub fn stock_of(&self, sku: &str) -> u64 {
        self.stock.get(sku).copied().unwrap_or(self.stock_per_sku)
    }

    /// Reserves the lines' units for the order, all or nothing. Several lines of one SKU
    /// add up. Refused if the order is closed or a SKU is short.
    pub fn reserve(
        &mut self,
        order_id: &str,
        merchant_id: &str,
        lines: &[Line],
    ) -> Result<Reservation, Refusal> {
        self.ensure_open(Partner::Warehouse, order_id)?;
        let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
        for line in lines {
            *wanted.entry(line.sku.as_str()).or_default() += u64::from(line.quantity);
        }
        for (sku, requested) in &wanted {
            let available = self.stock_of(sku);
            if available < *requested {
                return Err(Refusal::OutOfStock {
                    sku: (*sku).to_owned(),
                    requested: *requested,
                    available,
                });
            }
        }
        for (sku, requested) in wanted {
            let left = self.stock_of(sku) - requested;
            self.stock.insert(sku.to_owned(), left);
        }
        let reservation = Reservation {
            reservation_id: new_id("res"),
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            lines: lines.to_vec(),
            status: ReservationStatus::Reserved,
        };
        self.reservations.push(reservation.clone());
        Ok(reservation)
    }

    /// Releases every reservation of the order (their units go back to stock) and closes
    /// the order at the warehouse. Answers the first reservation released, if any.
    pub fn release(&mut self, order_id: &str, merchant_id: &str) -> Option<String> {
        self.close(Partner::Warehouse, order_id, merchant_id);
        let mut released = None;
        let mut returned: Vec<Line> = Vec::new();
        for reservation in &mut self.reservations {
            if reservation.order_id == order_id && reservation.status == ReservationStatus::Reserved
            {
                reservation.status = ReservationStatus::Released;
                returned.extend(reservation.lines.iter().cloned());
                released.get_or_insert_with(|| reservation.reservation_id.clone());
            }
        }
        for line in returned {
            let stock = self
                .stock_of(&line.sku)
                .saturating_add(u64::from(line.quantity));
            self.stock.insert(line.sku, stock);
        }
        released
    }

    /// Captures a charge. Refused if the order is closed at payments.
    pub fn charge(
        &mut self,
        order_id: &str,
        merchant_id: &str,
        amount_cents: u64,
        currency: &str,
    ) -> Result<Charge, Refusal> {
        self.ensure_open(Partner::Payments, order_id)?;
        let charge = Charge {
            charge_id: new_id("chg"),
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            amount_cents,
            currency: currency.to_owned(),
            status: ChargeStatus::Captured,
            refund_id: None,
        };
        self.charges.push(charge.clone());
        Ok(charge)
    }

    /// Refunds every captured charge of the order under one refund id and closes the
    /// order at payments.
    pub fn refund(&mut self, order_id: &str, merchant_id: &str) -> Refund {
        self.close(Partner::Payments, order_id, merchant_id);
        let mut refund = Refund {
            refund_id: None,
            amount_cents: 0,
        };
        for charge in &mut self.charges {
            if charge.order_id == order_id && charge.status == ChargeStatus::Captured {
                let refund_id = refund.refund_id.get_or_insert_with(|| new_id("ref"));
                charge.status = ChargeStatus::Refunded;
                charge.refund_id = Some(refund_id.clone());
                refund.amount_cents += charge.amount_cents;
            }
        }
        refund
    }

    /// Provisions one terminal per unit of the lines and answers their ids. Refused if
    /// the order is closed at terminals.
    pub fn provision(
        &mut self,
        order_id: &str,
        merchant_id: &str,
        lines: &[Line],
    ) -> Result<Vec<String>, Refusal> {
        self.ensure_open(Partner::Terminals, order_id)?;
        let mut ids = Vec::new();
        for line in lines {
            for _ in 0..line.quantity {
                let terminal_id = format!("TID-{}", random_chars(12));
                ids.push(terminal_id.clone());
                self.terminals.push(Terminal {
                    terminal_id,
                    order_id: order_id.to_owned(),
                    merchant_id: merchant_id.to_owned(),
                    sku: line.sku.clone(),
                    status: TerminalStatus::Provisioned,
                });
            }
        }
        Ok(ids)
    }

    /// Deprovisions every provisioned terminal of the order, closes the order at
    /// terminals and answers the ids deprovisioned.
    pub fn deprovision(&mut self, order_id: &str, merchant_id: &str) -> Vec<String> {
        self.close(Partner::Terminals, order_id, merchant_id);
        self.terminals
            .iter_mut()
            .filter(|t| t.order_id == order_id && t.status == TerminalStatus::Provisioned)
            .map(|t| {
                t.status = TerminalStatus::Deprovisioned;
                t.terminal_id.clone()
            })
            .collect()
    }

    /// Records that the serials were deactivated.
    pub fn deactivate(&mut self, order_id: &str, merchant_id: &str, serials: &[String]) {
        self.deactivations.push(Deactivation {
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            serials: serials.to_vec(),
        });
    }

    /// Creates a shipment (status `created`). Refused if the order is closed at the
    /// courier.
    pub fn ship(
        &mut self,
        order_id: &str,
        merchant_id: &str,
        parcels: u32,
    ) -> Result<Shipment, Refusal> {
        self.ensure_open(Partner::Courier, order_id)?;
        let shipment = Shipment {
            shipment_id: new_id("shp"),
            tracking_number: format!("TRK{}", random_chars(10)),
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            parcels,
            status: ShipmentStatus::Created,
            webhook_attempts: 0,
            delivered_at: None,
            event_id: new_id("evt"),
            event: None,
            in_flight: 0,
        };
        self.shipments.push(shipment.clone());
        Ok(shipment)
    }

    /// Cancels every undelivered shipment of the order, closes the order at the courier
    /// and answers the first shipment cancelled, if any.
    ///
    /// Refused (nothing cancelled, order not closed) if a shipment of the order was
    /// delivered, or, transiently, while a delivery event for one is being posted.
    pub fn cancel(&mut self, order_id: &str, merchant_id: &str) -> Result<Option<String>, Refusal> {
        let of_order = || self.shipments.iter().filter(|s| s.order_id == order_id);
        if let Some(s) = of_order().find(|s| s.status == ShipmentStatus::Delivered) {
            return Err(Refusal::AlreadyDelivered {
                shipment_id: s.shipment_id.clone(),
            });
        }
        if let Some(s) = of_order().find(|s| s.in_flight > 0) {
            return Err(Refusal::DeliveryInFlight {
                shipment_id: s.shipment_id.clone(),
            });
        }
        self.close(Partner::Courier, order_id, merchant_id);
        let mut cancelled = None;
        for shipment in &mut self.shipments {
            if shipment.order_id == order_id && shipment.status == ShipmentStatus::Created {
                shipment.status = ShipmentStatus::Cancelled;
                cancelled.get_or_insert_with(|| shipment.shipment_id.clone());
            }
        }
        Ok(cancelled)
    }

    /// Makes a return label.
    pub fn return_label(
        &mut self,
        order_id: &str,
        merchant_id: &str,
        serials: &[String],
    ) -> ReturnLabel {
        let label = ReturnLabel {
            return_label_id: new_id("rl"),
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            serials: serials.to_vec(),
        };
        self.return_labels.push(label.clone());
        label
    }

    /// Records a message sent and answers its id.
    pub fn message(&mut self, order_id: &str, merchant_id: &str, template: &str) -> String {
        let message_id = new_id("msg");
        self.messages.push(Message {
            message_id: message_id.clone(),
            order_id: order_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            template: template.to_owned(),
        });
        message_id
    }

    /// The latest shipment of the order.
    pub fn shipment_of_order(&self, order_id: &str) -> Option<&Shipment> {
        self.shipments.iter().rev().find(|s| s.order_id == order_id)
    }

    /// Starts one webhook post for the shipment, or says why not. `resend` (the admin
    /// API) also sends for a delivered shipment; a cancelled one is never sent.
    /// `now` becomes the event's `occurred_at` if this is the shipment's first attempt.
    pub fn start_attempt(
        &mut self,
        shipment_id: &str,
        resend: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Attempt {
        let Some(shipment) = self
            .shipments
            .iter_mut()
            .find(|s| s.shipment_id == shipment_id)
        else {
            return Attempt::Stop("unknown shipment");
        };
        match shipment.status {
            ShipmentStatus::Cancelled => return Attempt::Stop("shipment cancelled"),
            ShipmentStatus::Delivered if !resend => return Attempt::Stop("already delivered"),
            _ => {}
        }
        let event = shipment.event.get_or_insert_with(|| {
            let occurred_at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let body = json!({
                "event_id": shipment.event_id,
                "type": "shipment.delivered",
                "order_id": shipment.order_id,
                "shipment_id": shipment.shipment_id,
                "tracking_number": shipment.tracking_number,
                "occurred_at": occurred_at,
            });
            DeliveryEvent {
                body: body.to_string().into_bytes(),
                occurred_at,
            }
        });
        let body = event.body.clone();
        shipment.webhook_attempts += 1;
        shipment.in_flight += 1;
        Attempt::Send(body)
    }

    /// Ends a webhook post started with [`Ledger::start_attempt`]; `acknowledged` (a 2xx)
    /// marks the shipment delivered at the event's `occurred_at`.
    pub fn finish_attempt(&mut self, shipment_id: &str, acknowledged: bool) {
        let Some(shipment) = self
            .shipments
            .iter_mut()
            .find(|s| s.shipment_id == shipment_id)
        else {
            return;
        };
        shipment.in_flight = shipment.in_flight.saturating_sub(1);
        if acknowledged && shipment.status == ShipmentStatus::Created {
            shipment.status = ShipmentStatus::Delivered;
            shipment.delivered_at = shipment.event.as_ref().map(|e| e.occurred_at.clone());
        }
    }

    /// The ledger as `GET /admin/ledger` shows it: effects and closed orders narrowed by
    /// `filter`; `requests`, `faults_injected` and `stock` are always global.
    pub fn view(&self, filter: &LedgerFilter) -> LedgerView {
        fn pick<T: Clone>(
            items: &[T],
            filter: &LedgerFilter,
            ids: impl Fn(&T) -> (&str, &str),
        ) -> Vec<T> {
            items
                .iter()
                .filter(|item| {
                    let (order_id, merchant_id) = ids(item);
                    filter.admits(order_id, merchant_id)
                })
                .cloned()
                .collect()
        }
        let closed_at = |partner: Partner| -> Vec<String> {
            self.closed
                .iter()
                .filter(|c| c.partner == partner && filter.admits(&c.order_id, &c.merchant_id))
                .map(|c| c.order_id.clone())
                .collect()
        };
        LedgerView {
            reservations: pick(&self.reservations, filter, |r| {
                (&r.order_id, &r.merchant_id)
            }),
            charges: pick(&self.charges, filter, |c| (&c.order_id, &c.merchant_id)),
            terminals: pick(&self.terminals, filter, |t| (&t.order_id, &t.merchant_id)),
            deactivations: pick(&self.deactivations, filter, |d| {
                (&d.order_id, &d.merchant_id)
            }),
            shipments: pick(&self.shipments, filter, |s| (&s.order_id, &s.merchant_id)),
            return_labels: pick(&self.return_labels, filter, |l| {
                (&l.order_id, &l.merchant_id)
            }),
            messages: pick(&self.messages, filter, |m| (&m.order_id, &m.merchant_id)),
            closed_orders: ClosedOrders {
                warehouse: closed_at(Partner::Warehouse),
                payments: closed_at(Partner::Payments),
                terminals: closed_at(Partner::Terminals),
                courier: closed_at(Partner::Courier),
            },
            requests: self.requests,
            faults_injected: self.faults_injected,
            stock: self.stock.clone(),
        }
    }
}

/// The ledger as `GET /admin/ledger` answers it (fields in the README's order): what the
/// server sends and what [`crate::client::Admin::ledger`] reads, one type for both.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LedgerView {
    pub reservations: Vec<Reservation>,
    pub charges: Vec<Charge>,
    pub terminals: Vec<Terminal>,
    pub deactivations: Vec<Deactivation>,
    pub shipments: Vec<Shipment>,
    pub return_labels: Vec<ReturnLabel>,
    pub messages: Vec<Message>,
    pub closed_orders: ClosedOrders,
    pub requests: RequestCounts,
    pub faults_injected: FaultCounts,
    pub stock: BTreeMap<String, u64>,
}

/// The orders closed by a compensation, per partner (notifications has none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClosedOrders {
    pub warehouse: Vec<String>,
    pub payments: Vec<String>,
    pub terminals: Vec<String>,
    pub courier: Vec<String>,
}

/// A new id: `prefix-` and 16 random lowercase hex digits (`chg-3f9c...`).
fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..16])
}

/// `n` (at most 32) random uppercase hex digits.
fn random_chars(n: usize) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    hex[..n.min(hex.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> Line {
        Line {
            sku: sku.to_owned(),
            quantity,
        }
    }

    #[test]
    fn a_short_sku_reserves_nothing_and_lines_of_one_sku_add_up() {
        let mut ledger = Ledger::new(3);
        let refused = ledger.reserve("o-1", "m", &[line("A", 1), line("B", 2), line("B", 2)]);
        assert_eq!(
            refused.err(),
            Some(Refusal::OutOfStock {
                sku: "B".to_owned(),
                requested: 4,
                available: 3
            })
        );
        assert_eq!((ledger.stock_of("A"), ledger.stock_of("B")), (3, 3));
        assert!(ledger.reserve("o-1", "m", &[line("A", 3)]).is_ok());
        assert_eq!(ledger.stock_of("A"), 0);
    }

    #[test]
    fn a_delivered_shipment_cannot_be_cancelled_and_a_cancelled_one_is_never_sent() {
        let now = chrono::Utc::now();
        let mut ledger = Ledger::new(1);
        let delivered = match ledger.ship("o-1", "m", 1) {
            Ok(s) => s.shipment_id,
            Err(e) => panic!("ship refused: {e}"),
        };
        assert!(matches!(
            ledger.start_attempt(&delivered, false, now),
            Attempt::Send(_)
        ));
        assert!(matches!(
            ledger.cancel("o-1", "m"),
            Err(Refusal::DeliveryInFlight { .. })
        ));
        ledger.finish_attempt(&delivered, true);
        assert!(matches!(
            ledger.cancel("o-1", "m"),
            Err(Refusal::AlreadyDelivered { .. })
        ));

        let cancelled = match ledger.ship("o-2", "m", 1) {
            Ok(s) => s.shipment_id,
            Err(e) => panic!("ship refused: {e}"),
        };
        assert_eq!(ledger.cancel("o-2", "m"), Ok(Some(cancelled.clone())));
        assert_eq!(
            ledger.start_attempt(&cancelled, true, now),
            Attempt::Stop("shipment cancelled")
        );
    }
}
