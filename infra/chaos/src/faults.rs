//! The faults of the run, injected through the partner simulator's admin API, and the
//! simulator's ledger that the audit reads.
//!
//! The run owns its stack, so its rules are global (no merchant scoping). The simulator
//! applies the first matching rule that fires, so the rules are listed rarest first and
//! their rates chosen so that each kind lands near its intended share of partner requests.
//! The outage is added mid-run and must come first to be a real outage (otherwise a
//! `slow` rule that fires first would carry a request out during it), so it is added by
//! re-posting the rules with the outage in front (counts already used are carried over).

use crate::ChaosError;
use partner_simulator::client::Admin;
use partner_simulator::faults::{Fault, RuleSpec};
use partner_simulator::ledger::{LedgerFilter, LedgerView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the run injects. Rates are per partner request (each attempt draws again).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Permanent refusals of forward operations (reserve, charge, deactivate,
    /// return_label, provision, ship, send): the order fails and is rolled back (a refused
    /// notification does not fail a delivered order).
    pub refuse_forward: f64,
    /// Permanent refusals of compensations (release, refund, deprovision, cancel): by
    /// design the order goes to the dead-letter queue, which the reconciler and the DLQ
    /// replay must then bring to an end.
    pub refuse_compensation: f64,
    /// The first `refuse_first_releases` stock releases are refused, so that every run
    /// with a rolled-back order exercises the dead-letter path at least once.
    pub refuse_first_releases: u64,
    /// Parcels never delivered by themselves (lost in transit): the delivery times out and
    /// the shipped order is rolled back, shipment cancelled.
    pub hold_deliveries: f64,
    /// Answers held back longer than the partners' client timeout (2 s): the request took
    /// effect but the caller timed out and retries.
    pub slow: f64,
    pub slow_delay_ms: u64,
    /// 503 `unavailable`.
    pub unavailable: f64,
    /// 429 `throttled`.
    pub throttled: f64,
    /// One partner outage, added mid-run.
    pub outage: Outage,
}

/// A partner down for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub partner: String,
    pub for_ms: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            refuse_forward: 0.02,
            refuse_compensation: 0.01,
            refuse_first_releases: 1,
            hold_deliveries: 0.01,
            slow: 0.05,
            slow_delay_ms: 3000,
            // With refusals and slow answers drawn first, 12% + 12% of what is left comes
            // to about 21% transient errors per partner request.
            unavailable: 0.12,
            throttled: 0.12,
            outage: Outage {
                partner: "warehouse".into(),
                for_ms: 15_000,
            },
        }
    }
}

const FORWARD: [(&str, &str); 7] = [
    ("warehouse", "reserve"),
    ("payments", "charge"),
    ("terminals", "deactivate"),
    ("courier", "return_label"),
    ("terminals", "provision"),
    ("courier", "ship"),
    ("notifications", "send"),
];

const COMPENSATIONS: [(&str, &str); 4] = [
    ("warehouse", "release"),
    ("payments", "refund"),
    ("terminals", "deprovision"),
    ("courier", "cancel"),
];

impl FaultPlan {
    /// The rules in force for the whole run, in the order the simulator tries them.
    pub fn steady_rules(&self) -> Vec<RuleSpec> {
        let rule = |partner: &str, operation: &str, fault, rate| RuleSpec {
            rate: Some(rate),
            ..RuleSpec::new(partner, operation, fault)
        };
        let mut rules = Vec::new();
        if self.refuse_first_releases > 0 {
            rules.push(RuleSpec {
                count: Some(self.refuse_first_releases),
                ..RuleSpec::new("warehouse", "release", Fault::Refuse)
            });
        }
        for (partner, operation) in COMPENSATIONS {
            rules.push(rule(
                partner,
                operation,
                Fault::Refuse,
                self.refuse_compensation,
            ));
        }
        for (partner, operation) in FORWARD {
            rules.push(rule(partner, operation, Fault::Refuse, self.refuse_forward));
        }
        rules.push(rule(
            "courier",
            "deliver",
            Fault::Hold,
            self.hold_deliveries,
        ));
        rules.push(RuleSpec {
            delay_ms: Some(self.slow_delay_ms),
            ..rule("*", "*", Fault::Slow, self.slow)
        });
        rules.push(rule("*", "*", Fault::Unavailable, self.unavailable));
        rules.push(rule("*", "*", Fault::Throttled, self.throttled));
        rules
    }

    /// The outage: every request to the partner answers 503 for `for_ms`.
    pub fn outage_rule(&self) -> RuleSpec {
        RuleSpec {
            rate: Some(1.0),
            for_ms: Some(self.outage.for_ms),
            ..RuleSpec::new(&self.outage.partner, "*", Fault::Unavailable)
        }
    }

    /// One line per rule kind, for the report.
    pub fn describe(&self) -> Vec<String> {
        let pct = |r: f64| format!("{:.1}%", r * 100.0);
        vec![
            format!(
                "transient: unavailable {} + throttled {} of every partner request (about {} together)",
                pct(self.unavailable),
                pct(self.throttled),
                pct((1.0 - self.slow) * (1.0 - self.refuse_forward) * (self.unavailable + (1.0 - self.unavailable) * self.throttled))
            ),
            format!(
                "slow: {} of every partner request, answer held {} ms (client timeout 2000 ms)",
                pct(self.slow),
                self.slow_delay_ms
            ),
            format!(
                "refuse: {} of each forward operation (reserve, charge, deactivate, return_label, provision, ship, send)",
                pct(self.refuse_forward)
            ),
            format!(
                "refuse compensations: {} of release/refund/deprovision/cancel, and the first {} release(s): to the DLQ by design",
                pct(self.refuse_compensation),
                self.refuse_first_releases
            ),
            format!("hold: {} of deliveries lost in transit", pct(self.hold_deliveries)),
            format!(
                "outage: {} down (every operation) for {} s, starting mid-run",
                self.outage.partner,
                self.outage.for_ms / 1000
            ),
        ]
    }
}

/// Puts `rule` in front of the rules in force: lists them, removes them, and posts `rule`
/// followed by what is left of the live ones (a `count` reduced by what already fired;
/// used-up and expiring rules are left out).
pub async fn put_first(simulator: &Admin, rule: RuleSpec) -> Result<(), ChaosError> {
    let current = simulator.faults().await?;
    let mut rules = vec![rule];
    rules.extend(
        current
            .rules
            .iter()
            .filter(|listed| !listed.expired && listed.for_ms.is_none())
            .filter_map(|listed| listed.remaining()),
    );
    simulator.clear_faults().await?;
    simulator.add_faults(&rules).await?;
    Ok(())
}

/// The whole ledger, as the audit reads it.
pub async fn ledger(simulator: &Admin) -> Result<Ledger, ChaosError> {
    let view = simulator.ledger(&LedgerFilter::default()).await?;
    Ledger::try_from(&view).map_err(ChaosError::Ledger)
}

/// One entry of the ledger, whatever its kind: whose it is and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub order_id: String,
    /// Shipments only.
    #[serde(default)]
    pub shipment_id: String,
    pub merchant_id: String,
    /// `reserved|released`, `captured|refunded`, `provisioned|deprovisioned`,
    /// `created|cancelled|delivered`; none for deactivations, labels and messages.
    #[serde(default)]
    pub status: Option<String>,
}

impl Entry {
    pub fn is(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
    }

    /// Records of any kind, each reduced to its entry (through their wire form, which
    /// every kind shares these fields of).
    fn all_of<T: Serialize>(records: &[T]) -> Result<Vec<Entry>, serde_json::Error> {
        serde_json::to_value(records).and_then(serde_json::from_value)
    }
}

pub use partner_simulator::ledger::{FaultCounts, RequestCounts};

/// What the partners did (`GET /admin/ledger`), each entry reduced to whose it is and
/// where it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Every order's entries together.
    pub entries: OrderLedger,
    pub requests: RequestCounts,
    pub faults_injected: FaultCounts,
}

impl TryFrom<&LedgerView> for Ledger {
    type Error = serde_json::Error;

    fn try_from(view: &LedgerView) -> Result<Ledger, serde_json::Error> {
        Ok(Ledger {
            entries: OrderLedger {
                reservations: Entry::all_of(&view.reservations)?,
                charges: Entry::all_of(&view.charges)?,
                terminals: Entry::all_of(&view.terminals)?,
                deactivations: Entry::all_of(&view.deactivations)?,
                shipments: Entry::all_of(&view.shipments)?,
                return_labels: Entry::all_of(&view.return_labels)?,
                messages: Entry::all_of(&view.messages)?,
            },
            requests: view.requests,
            faults_injected: view.faults_injected,
        })
    }
}

/// One order's entries (or, in [`Ledger`], all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderLedger {
    pub reservations: Vec<Entry>,
    pub charges: Vec<Entry>,
    pub terminals: Vec<Entry>,
    pub deactivations: Vec<Entry>,
    pub shipments: Vec<Entry>,
    pub return_labels: Vec<Entry>,
    pub messages: Vec<Entry>,
}

impl OrderLedger {
    /// Every kind's entries, in the ledger's order of kinds.
    fn kinds(&self) -> [&Vec<Entry>; 7] {
        [
            &self.reservations,
            &self.charges,
            &self.terminals,
            &self.deactivations,
            &self.shipments,
            &self.return_labels,
            &self.messages,
        ]
    }

    fn kinds_mut(&mut self) -> [&mut Vec<Entry>; 7] {
        [
            &mut self.reservations,
            &mut self.charges,
            &mut self.terminals,
            &mut self.deactivations,
            &mut self.shipments,
            &mut self.return_labels,
            &mut self.messages,
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.kinds().iter().all(|entries| entries.is_empty())
    }

    /// The merchants its entries name.
    pub fn merchants(&self) -> Vec<&str> {
        let mut merchants: Vec<&str> = self
            .kinds()
            .into_iter()
            .flatten()
            .map(|e| e.merchant_id.as_str())
            .collect();
        merchants.sort_unstable();
        merchants.dedup();
        merchants
    }
}

impl Ledger {
    /// The entries grouped by order id.
    pub fn by_order(&self) -> BTreeMap<String, OrderLedger> {
        let mut orders: BTreeMap<String, OrderLedger> = BTreeMap::new();
        for (kind, entries) in self.entries.kinds().into_iter().enumerate() {
            for entry in entries {
                let order = orders.entry(entry.order_id.clone()).or_default();
                order.kinds_mut()[kind].push(entry.clone());
            }
        }
        orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_rules_refuse_rarely_first_and_err_transiently_last() {
        let rules = FaultPlan::default().steady_rules();
        let faults: Vec<&str> = rules.iter().map(|r| r.fault.as_str()).collect();
        let first_transient = faults
            .iter()
            .position(|f| *f == "unavailable")
            .expect("the steady rules include a transient error");
        let last_refusal = faults
            .iter()
            .rposition(|f| *f == "refuse")
            .expect("the steady rules include a refusal");
        assert!(last_refusal < first_transient, "{faults:?}");
        assert_eq!(faults.last(), Some(&"throttled"));
        // No rule names a merchant: the run owns its stack.
        assert!(rules.iter().all(|r| r.merchant_id.is_none()));
    }

    #[test]
    fn the_ledger_is_grouped_by_order_whatever_the_kind() {
        // The ledger as the simulator sends it.
        let view: LedgerView = match serde_json::from_value(serde_json::json!({
            "reservations": [{"reservation_id": "r1", "order_id": "o1", "merchant_id": "m1", "lines": [], "status": "reserved"}],
            "charges": [{"charge_id": "c1", "order_id": "o1", "merchant_id": "m1", "amount_cents": 1, "currency": "EUR", "status": "captured", "refund_id": null},
                        {"charge_id": "c2", "order_id": "o2", "merchant_id": "m2", "amount_cents": 1, "currency": "EUR", "status": "refunded", "refund_id": "f"}],
            "messages": [{"message_id": "x", "order_id": "o2", "merchant_id": "m2", "template": "t"}],
            "faults_injected": {"unavailable": 3, "throttled": 0, "slow": 1, "refuse": 0, "hold": 0},
            "requests": {"total": 10, "replayed": 2},
            "terminals": [], "deactivations": [], "shipments": [], "return_labels": [],
            "closed_orders": {"warehouse": [], "payments": [], "terminals": [], "courier": []},
            "stock": {"TERM-1": 5}
        })) {
            Ok(view) => view,
            Err(error) => panic!("{error}"),
        };
        let ledger = Ledger::try_from(&view).unwrap_or_else(|e| panic!("{e}"));
        let orders = ledger.by_order();
        assert_eq!(orders.len(), 2);
        assert_eq!(orders["o1"].charges.len(), 1);
        assert!(orders["o1"].reservations[0].is("reserved"));
        assert_eq!(orders["o2"].messages.len(), 1);
        assert_eq!(orders["o2"].merchants(), ["m2"]);
        assert_eq!(ledger.faults_injected.unavailable, 3);
        assert_eq!(ledger.requests.replayed, 2);
    }
}
