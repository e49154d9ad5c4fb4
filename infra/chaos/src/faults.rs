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
use serde::Deserialize;
use serde_json::{json, Value};
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
    pub fn steady_rules(&self) -> Vec<Value> {
        let mut rules = Vec::new();
        if self.refuse_first_releases > 0 {
            rules.push(json!({"partner": "warehouse", "operation": "release",
                              "fault": "refuse", "count": self.refuse_first_releases}));
        }
        for (partner, operation) in COMPENSATIONS {
            rules.push(json!({"partner": partner, "operation": operation,
                              "fault": "refuse", "rate": self.refuse_compensation}));
        }
        for (partner, operation) in FORWARD {
            rules.push(json!({"partner": partner, "operation": operation,
                              "fault": "refuse", "rate": self.refuse_forward}));
        }
        rules.push(json!({"partner": "courier", "operation": "deliver",
                          "fault": "hold", "rate": self.hold_deliveries}));
        rules.push(json!({"partner": "*", "operation": "*", "fault": "slow",
                          "rate": self.slow, "delay_ms": self.slow_delay_ms}));
        rules.push(
            json!({"partner": "*", "operation": "*", "fault": "unavailable",
                          "rate": self.unavailable}),
        );
        rules.push(
            json!({"partner": "*", "operation": "*", "fault": "throttled",
                          "rate": self.throttled}),
        );
        rules
    }

    /// The outage: every request to the partner answers 503 for `for_ms`.
    pub fn outage_rule(&self) -> Value {
        json!({"partner": self.outage.partner, "operation": "*", "fault": "unavailable",
               "rate": 1.0, "for_ms": self.outage.for_ms})
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

/// The partner simulator's admin API.
#[derive(Clone)]
pub struct Simulator {
    http: reqwest::Client,
    base: String,
}

fn simulator_error(what: &str, message: impl std::fmt::Display) -> ChaosError {
    ChaosError::Simulator {
        what: what.to_owned(),
        message: message.to_string(),
    }
}

impl Simulator {
    pub fn new(http: reqwest::Client, base: &str) -> Simulator {
        Simulator {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        expected: u16,
    ) -> Result<Value, ChaosError> {
        let response = request.send().await.map_err(|e| simulator_error(what, e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| simulator_error(what, e))?;
        if status != expected {
            return Err(simulator_error(
                what,
                format!(
                    "answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                ),
            ));
        }
        serde_json::from_str(&text).map_err(|e| simulator_error(what, e))
    }

    pub async fn health(&self) -> Result<(), ChaosError> {
        let url = format!("{}/health", self.base);
        self.call("GET /health", self.http.get(url), 200)
            .await
            .map(|_| ())
    }

    /// Sets the seed of the fault draws, drawn by merchant: each order of the run has a
    /// merchant of its own, planned from the run's seed and id, while its order id is
    /// random; so a replay (same seed, same run id) draws the same faults for each order.
    pub async fn set_seed(&self, seed: u64) -> Result<(), ChaosError> {
        let url = format!("{}/admin/seed", self.base);
        let request = self
            .http
            .put(url)
            .json(&json!({ "seed": seed, "draws": "by_merchant" }));
        self.call("PUT /admin/seed", request, 200).await.map(|_| ())
    }

    /// Removes every rule; returns how many there were.
    pub async fn clear_faults(&self) -> Result<u64, ChaosError> {
        let url = format!("{}/admin/faults", self.base);
        let answer = self
            .call("DELETE /admin/faults", self.http.delete(url), 200)
            .await?;
        Ok(answer["removed"].as_u64().unwrap_or_default())
    }

    pub async fn add_faults(&self, rules: &[Value]) -> Result<Vec<u64>, ChaosError> {
        let url = format!("{}/admin/faults", self.base);
        let request = self.http.post(url).json(&json!({ "rules": rules }));
        let answer = self.call("POST /admin/faults", request, 201).await?;
        Ok(answer["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect())
    }

    /// The rules in force, as `GET /admin/faults` lists them (with `fired`, `expired`).
    pub async fn faults(&self) -> Result<Vec<Value>, ChaosError> {
        let url = format!("{}/admin/faults", self.base);
        let answer = self
            .call("GET /admin/faults", self.http.get(url), 200)
            .await?;
        Ok(answer["rules"].as_array().cloned().unwrap_or_default())
    }

    /// Puts `rule` in front of the rules in force: lists them, removes them, and posts
    /// `rule` followed by the live ones (a `count` reduced by what already fired; used-up
    /// and expiring rules are left out).
    pub async fn put_first(&self, rule: Value) -> Result<(), ChaosError> {
        let current = self.faults().await?;
        let mut rules = vec![rule];
        for listed in current {
            if listed["expired"] == true || !listed["for_ms"].is_null() {
                continue;
            }
            let fired = listed["fired"].as_u64().unwrap_or_default();
            let mut spec = json!({
                "partner": listed["partner"], "operation": listed["operation"],
                "fault": listed["fault"], "rate": listed["rate"], "delay_ms": listed["delay_ms"],
            });
            for optional in ["merchant_id", "sku"] {
                if !listed[optional].is_null() {
                    spec[optional] = listed[optional].clone();
                }
            }
            if let Some(count) = listed["count"].as_u64() {
                if fired >= count {
                    continue;
                }
                spec["count"] = json!(count - fired);
            }
            rules.push(spec);
        }
        self.clear_faults().await?;
        self.add_faults(&rules).await.map(|_| ())
    }

    /// The whole ledger.
    pub async fn ledger(&self) -> Result<Ledger, ChaosError> {
        let url = format!("{}/admin/ledger", self.base);
        let value = self
            .call("GET /admin/ledger", self.http.get(url), 200)
            .await?;
        serde_json::from_value(value).map_err(|e| simulator_error("GET /admin/ledger", e))
    }
}

/// One entry of the ledger, whatever its kind: whose it is and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub order_id: String,
    /// Shipments only.
    #[serde(default)]
    pub shipment_id: String,
    #[serde(default)]
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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub replayed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct FaultCounts {
    #[serde(default)]
    pub unavailable: u64,
    #[serde(default)]
    pub throttled: u64,
    #[serde(default)]
    pub slow: u64,
    #[serde(default)]
    pub refuse: u64,
    #[serde(default)]
    pub hold: u64,
}

/// What the partners did (`GET /admin/ledger`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Ledger {
    #[serde(default)]
    pub reservations: Vec<Entry>,
    #[serde(default)]
    pub charges: Vec<Entry>,
    #[serde(default)]
    pub terminals: Vec<Entry>,
    #[serde(default)]
    pub deactivations: Vec<Entry>,
    #[serde(default)]
    pub shipments: Vec<Entry>,
    #[serde(default)]
    pub return_labels: Vec<Entry>,
    #[serde(default)]
    pub messages: Vec<Entry>,
    #[serde(default)]
    pub requests: RequestCounts,
    #[serde(default)]
    pub faults_injected: FaultCounts,
}

/// One order's entries.
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
    pub fn is_empty(&self) -> bool {
        self.reservations.is_empty()
            && self.charges.is_empty()
            && self.terminals.is_empty()
            && self.deactivations.is_empty()
            && self.shipments.is_empty()
            && self.return_labels.is_empty()
            && self.messages.is_empty()
    }

    /// The merchants its entries name.
    pub fn merchants(&self) -> Vec<&str> {
        let mut merchants: Vec<&str> = [
            &self.reservations,
            &self.charges,
            &self.terminals,
            &self.deactivations,
            &self.shipments,
            &self.return_labels,
            &self.messages,
        ]
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
        type Field = fn(&mut OrderLedger) -> &mut Vec<Entry>;
        let kinds: [(&Vec<Entry>, Field); 7] = [
            (&self.reservations, |o| &mut o.reservations),
            (&self.charges, |o| &mut o.charges),
            (&self.terminals, |o| &mut o.terminals),
            (&self.deactivations, |o| &mut o.deactivations),
            (&self.shipments, |o| &mut o.shipments),
            (&self.return_labels, |o| &mut o.return_labels),
            (&self.messages, |o| &mut o.messages),
        ];
        for (entries, field) in kinds {
            for entry in entries {
                field(orders.entry(entry.order_id.clone()).or_default()).push(entry.clone());
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
        let faults: Vec<&str> = rules.iter().filter_map(|r| r["fault"].as_str()).collect();
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
        assert!(rules.iter().all(|r| r.get("merchant_id").is_none()));
    }

    #[test]
    fn the_ledger_is_grouped_by_order_whatever_the_kind() {
        let ledger: Ledger = match serde_json::from_value(json!({
            "reservations": [{"reservation_id": "r1", "order_id": "o1", "merchant_id": "m1", "lines": [], "status": "reserved"}],
            "charges": [{"charge_id": "c1", "order_id": "o1", "merchant_id": "m1", "amount_cents": 1, "currency": "EUR", "status": "captured", "refund_id": null},
                        {"charge_id": "c2", "order_id": "o2", "merchant_id": "m2", "amount_cents": 1, "currency": "EUR", "status": "refunded", "refund_id": "f"}],
            "messages": [{"message_id": "x", "order_id": "o2", "merchant_id": "m2", "template": "t"}],
            "faults_injected": {"unavailable": 3, "throttled": 0, "slow": 1, "refuse": 0, "hold": 0},
            "requests": {"total": 10, "replayed": 2}
        })) {
            Ok(ledger) => ledger,
            Err(error) => panic!("{error}"),
        };
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
