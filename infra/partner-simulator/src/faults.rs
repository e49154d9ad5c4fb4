//! Fault rules: which requests they match, and the deterministic decision whether one
//! fires.
//!
//! Whether a matching rule fires is a pure function of `(seed, rule id, partner,
//! Idempotency-Key, attempt number of that key)` ([`draw`]), so a run with the same seed
//! and the same requests makes the same decisions whatever the interleaving. The only
//! state that depends on the order of requests is a rule's `fired` count, which `count`
//! limits. With [`Draws::ByMerchant`] the order id in the key is replaced by the merchant
//! id before drawing, so a run whose order ids are random (the orders API makes them) but
//! whose merchants are planned from a seed draws the same faults when it is replayed.
//!
//! Faults other than `hold` apply to partner requests; `hold` applies only to the
//! courier's [`Operation::Deliver`] (whether a new shipment is delivered by itself).

use crate::operation::{Operation, Partner};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// How long a `slow` answer is held back when the rule names no `delay_ms`.
pub const DEFAULT_SLOW_DELAY_MS: u64 = 3000;

/// What a fired rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 503 `unavailable`, nothing done.
    Unavailable,
    /// 429 `throttled` with `Retry-After: 1`, nothing done.
    Throttled,
    /// The request is carried out and its answer kept, then held back `delay_ms`.
    Slow,
    /// The operation's permanent refusal (`out_of_stock`, `declined` or `rejected`).
    Refuse,
    /// The parcel of a new shipment is never delivered by itself (deliver only).
    Hold,
}

impl Fault {
    /// Every fault, in the order of the ledger's `faults_injected`.
    pub const ALL: [Fault; 5] = [
        Fault::Unavailable,
        Fault::Throttled,
        Fault::Slow,
        Fault::Refuse,
        Fault::Hold,
    ];

    /// The fault's name: `unavailable`, `throttled`, `slow`, `refuse`, `hold`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Fault::Unavailable => "unavailable",
            Fault::Throttled => "throttled",
            Fault::Slow => "slow",
            Fault::Refuse => "refuse",
            Fault::Hold => "hold",
        }
    }
}

/// A rule as posted to `POST /admin/faults`. Unknown fields are refused so a typo
/// (`"merchant": "m-1"`) cannot silently widen a rule to every merchant.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A partner's name or `*` (the default).
    #[serde(default = "any")]
    pub partner: String,
    /// An operation's name or `*` (the default).
    #[serde(default = "any")]
    pub operation: String,
    /// Only requests for this merchant (default: any).
    pub merchant_id: Option<String>,
    /// Only requests whose lines name this SKU (default: any). Requests without lines
    /// never match a rule with a SKU.
    pub sku: Option<String>,
    /// What the rule does when it fires.
    pub fault: Fault,
    /// The share of matching requests it fires on, in `[0, 1]` (default 1).
    pub rate: Option<f64>,
    /// Fires at most this many times (default: unlimited).
    pub count: Option<u64>,
    /// For `slow`: how long the answer is held back (default 3000).
    pub delay_ms: Option<u64>,
    /// Expires that long after it was added (default: never).
    pub for_ms: Option<u64>,
}

fn any() -> String {
    "*".to_owned()
}

impl RuleSpec {
    /// A rule for every request of `operation` at `partner` (`*` for any), with no
    /// other condition: narrow it with the struct update syntax.
    pub fn new(partner: &str, operation: &str, fault: Fault) -> RuleSpec {
        RuleSpec {
            partner: partner.to_owned(),
            operation: operation.to_owned(),
            merchant_id: None,
            sku: None,
            fault,
            rate: None,
            count: None,
            delay_ms: None,
            for_ms: None,
        }
    }
}

/// Why a posted rule was refused (nothing of that post is added).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("unknown partner {0:?}: expected warehouse, payments, terminals, courier, notifications or *")]
    UnknownPartner(String),
    #[error("unknown operation {0:?}: expected reserve, release, charge, refund, provision, deprovision, deactivate, ship, cancel, return_label, send, deliver or *")]
    UnknownOperation(String),
    #[error(
        "operation {operation} belongs to {owner}, not to {partner}: the rule would never match"
    )]
    WrongPartner {
        operation: Operation,
        owner: Partner,
        partner: Partner,
    },
    #[error("fault hold applies to operation deliver (or *) only, not to {0}")]
    HoldOnRequest(Operation),
    #[error("operation deliver can only be held (fault hold), not {}", .0.as_str())]
    DeliverWithoutHold(Fault),
    #[error("rate must be a number from 0 to 1, not {0}")]
    Rate(f64),
}

/// A rule in force.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable increasing id, starting at 1, never reused.
    pub id: u64,
    /// `None` for `*`.
    pub partner: Option<Partner>,
    /// `None` for `*`.
    pub operation: Option<Operation>,
    pub merchant_id: Option<String>,
    pub sku: Option<String>,
    pub fault: Fault,
    pub rate: f64,
    pub count: Option<u64>,
    pub delay: Duration,
    pub for_ms: Option<u64>,
    /// When it was added (for `for_ms`).
    pub added_at: Instant,
    /// How often it fired.
    pub fired: u64,
}

impl Rule {
    /// Whether `for_ms` has passed at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.for_ms
            .is_some_and(|ms| now >= self.added_at + Duration::from_millis(ms))
    }

    /// Whether it still can fire at `now`: not expired and `count` not used up.
    fn live(&self, now: Instant) -> bool {
        !self.expired(now) && self.count.is_none_or(|count| self.fired < count)
    }

    /// Whether the request (or delivery) falls under it, leaving the rate aside.
    fn matches(&self, query: &Query<'_>) -> bool {
        let op = query.operation;
        self.partner.is_none_or(|p| p == op.partner())
            && self.operation.is_none_or(|o| o == op)
            && ((self.fault == Fault::Hold) == (op == Operation::Deliver))
            && self
                .merchant_id
                .as_deref()
                .is_none_or(|m| m == query.merchant_id)
            && self
                .sku
                .as_deref()
                .is_none_or(|sku| query.skus.iter().any(|s| s == sku))
    }

    /// The rule as listed by `GET /admin/faults`.
    pub fn view(&self, now: Instant) -> RuleView {
        RuleView {
            id: self.id,
            partner: self.partner.map_or("*", Partner::as_str).to_owned(),
            operation: self.operation.map_or("*", Operation::as_str).to_owned(),
            merchant_id: self.merchant_id.clone(),
            sku: self.sku.clone(),
            fault: self.fault,
            rate: self.rate,
            count: self.count,
            delay_ms: u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            for_ms: self.for_ms,
            fired: self.fired,
            expired: self.expired(now),
        }
    }
}

/// A rule as `GET /admin/faults` lists it: the posted fields with their defaults filled
/// in, plus `id`, `fired` and `expired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub id: u64,
    pub partner: String,
    pub operation: String,
    pub merchant_id: Option<String>,
    pub sku: Option<String>,
    pub fault: Fault,
    pub rate: f64,
    pub count: Option<u64>,
    pub delay_ms: u64,
    pub for_ms: Option<u64>,
    pub fired: u64,
    pub expired: bool,
}

impl RuleView {
    /// The rule as it would be posted to do what is left of it: `count` reduced by what
    /// already fired (`None` once it is used up). `for_ms` is kept as it was posted.
    pub fn remaining(&self) -> Option<RuleSpec> {
        let count = match self.count {
            Some(count) if self.fired >= count => return None,
            Some(count) => Some(count - self.fired),
            None => None,
        };
        Some(RuleSpec {
            partner: self.partner.clone(),
            operation: self.operation.clone(),
            merchant_id: self.merchant_id.clone(),
            sku: self.sku.clone(),
            fault: self.fault,
            rate: Some(self.rate),
            count,
            delay_ms: Some(self.delay_ms),
            for_ms: self.for_ms,
        })
    }
}

/// What a decision is about: one attempt of one request, or the delivery of a new
/// shipment (operation `deliver`, with the key and attempt of the request that created
/// it).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub operation: Operation,
    pub order_id: &'a str,
    pub merchant_id: &'a str,
    /// The SKUs named by the request's lines (empty without lines).
    pub skus: &'a [String],
    pub key: &'a str,
    /// 1 for the first request with this key at this partner, 2 for the second, ...
    pub attempt: u64,
}

/// A rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub rule_id: u64,
    pub fault: Fault,
    /// For `slow`: how long to hold the answer back.
    pub delay: Duration,
}

/// What a draw hashes for the request, besides the seed, the rule, the partner and the
/// attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Draws {
    /// The Idempotency-Key as sent.
    #[default]
    ByKey,
    /// The Idempotency-Key with the request's order id replaced by its merchant id (for
    /// runs that give each order a merchant of its own, planned from a seed).
    ByMerchant,
}

/// The rules in force and the seed of their decisions.
#[derive(Debug, Default)]
pub struct FaultBook {
    seed: u64,
    draws: Draws,
    last_id: u64,
    rules: Vec<Rule>,
}

impl FaultBook {
    /// No rules, decisions drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        FaultBook {
            seed,
            draws: Draws::ByKey,
            last_id: 0,
            rules: Vec::new(),
        }
    }

    /// The seed of every decision.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Changes the seed; later decisions use it (rules and their counts are kept).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// What the draws hash besides the key's attempt.
    pub fn draws(&self) -> Draws {
        self.draws
    }

    /// Changes what later draws hash (rules and their counts are kept).
    pub fn set_draws(&mut self, draws: Draws) {
        self.draws = draws;
    }

    /// Adds the rules in order and answers their new ids. If any one is invalid, none is
    /// added.
    pub fn add(&mut self, specs: Vec<RuleSpec>, now: Instant) -> Result<Vec<u64>, RuleError> {
        let mut rules = Vec::with_capacity(specs.len());
        for (offset, spec) in (1..).zip(specs) {
            rules.push(Self::validate(spec, self.last_id + offset, now)?);
        }
        let ids = rules.iter().map(|r| r.id).collect();
        self.last_id += rules.len() as u64;
        self.rules.extend(rules);
        Ok(ids)
    }

    fn validate(spec: RuleSpec, id: u64, now: Instant) -> Result<Rule, RuleError> {
        let partner = pattern(spec.partner, Partner::from_name, RuleError::UnknownPartner)?;
        let operation = pattern(
            spec.operation,
            Operation::from_name,
            RuleError::UnknownOperation,
        )?;
        if let (Some(partner), Some(operation)) = (partner, operation) {
            if operation.partner() != partner {
                return Err(RuleError::WrongPartner {
                    operation,
                    owner: operation.partner(),
                    partner,
                });
            }
        }
        match (operation, spec.fault) {
            (Some(Operation::Deliver), Fault::Hold) | (None, _) => {}
            (Some(Operation::Deliver), fault) => return Err(RuleError::DeliverWithoutHold(fault)),
            (Some(operation), Fault::Hold) => return Err(RuleError::HoldOnRequest(operation)),
            (Some(_), _) => {}
        }
        let rate = spec.rate.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(RuleError::Rate(rate));
        }
        Ok(Rule {
            id,
            partner,
            operation,
            merchant_id: spec.merchant_id,
            sku: spec.sku,
            fault: spec.fault,
            rate,
            count: spec.count,
            delay: Duration::from_millis(spec.delay_ms.unwrap_or(DEFAULT_SLOW_DELAY_MS)),
            for_ms: spec.for_ms,
            added_at: now,
            fired: 0,
        })
    }

    /// Removes one rule; `false` if there is none with that id.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    /// Removes every rule and answers how many there were. Ids are not reused.
    pub fn clear(&mut self) -> usize {
        std::mem::take(&mut self.rules).len()
    }

    /// The rules, oldest first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first live matching rule (oldest first) that fires for `query` at `now`, with
    /// its `fired` count incremented; `None` if none fires.
    pub fn decide(&mut self, query: &Query<'_>, now: Instant) -> Option<Decision> {
        let seed = self.seed;
        let key = match self.draws {
            Draws::ByKey => std::borrow::Cow::Borrowed(query.key),
            Draws::ByMerchant if !query.order_id.is_empty() => {
                std::borrow::Cow::Owned(query.key.replace(query.order_id, query.merchant_id))
            }
            Draws::ByMerchant => std::borrow::Cow::Borrowed(query.key),
        };
        let rule = self.rules.iter_mut().find(|rule| {
            rule.live(now)
                && rule.matches(query)
                && fires(
                    rule.rate,
                    draw(
                        seed,
                        rule.id,
                        query.operation.partner(),
                        &key,
                        query.attempt,
                    ),
                )
        })?;
        rule.fired += 1;
        Some(Decision {
            rule_id: rule.id,
            fault: rule.fault,
            delay: rule.delay,
        })
    }
}

/// `None` for `*`, the named value otherwise, or `unknown(name)`.
fn pattern<T>(
    name: String,
    parse: fn(&str) -> Option<T>,
    unknown: fn(String) -> RuleError,
) -> Result<Option<T>, RuleError> {
    if name == "*" {
        return Ok(None);
    }
    match parse(&name) {
        Some(value) => Ok(Some(value)),
        None => Err(unknown(name)),
    }
}

/// The deterministic draw in `[0, 1)` for one rule and one attempt of one key: the first
/// 53 bits of `sha256("{seed}:{rule_id}:{partner}:{attempt}:{key}")` as a fraction.
/// The key goes last so that no two inputs share an encoding.
pub fn draw(seed: u64, rule_id: u64, partner: Partner, key: &str, attempt: u64) -> f64 {
    let digest = Sha256::digest(format!("{seed}:{rule_id}:{partner}:{attempt}:{key}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bits = u64::from_be_bytes(first) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Whether a draw fires at `rate`: rate 1 always fires, rate 0 never does.
pub fn fires(rate: f64, draw: f64) -> bool {
    draw < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fault: Fault) -> RuleSpec {
        RuleSpec {
            merchant_id: Some("m-1".to_owned()),
            ..RuleSpec::new("payments", "charge", fault)
        }
    }

    fn charge(key: &str, attempt: u64) -> Query<'_> {
        Query {
            operation: Operation::Charge,
            order_id: "o-1",
            merchant_id: "m-1",
            skus: &[],
            key,
            attempt,
        }
    }

    /// Which of 200 keys a rule of rate 0.5 fires on, with `seed`.
    fn pattern(seed: u64) -> Vec<bool> {
        (0..200)
            .map(|i| {
                let key = format!("key-{i}");
                fires(0.5, draw(seed, 1, Partner::Payments, &key, 1))
            })
            .collect()
    }

    /// Which of 100 steps of order `order_id` (merchant m-1) a rate-0.5 rule fires on.
    fn order_pattern(draws: Draws, order_id: &str) -> Vec<bool> {
        let mut book = FaultBook::new(7);
        book.set_draws(draws);
        let rule = RuleSpec {
            rate: Some(0.5),
            ..spec(Fault::Unavailable)
        };
        book.add(vec![rule], Instant::now())
            .expect("the rule is valid");
        (0..100)
            .map(|step| {
                let key = format!("{order_id}:Step{step}");
                let query = Query {
                    order_id,
                    ..charge(&key, 1)
                };
                book.decide(&query, Instant::now()).is_some()
            })
            .collect()
    }

    #[test]
    fn drawn_by_merchant_an_order_of_another_id_gets_the_same_faults() {
        let first = order_pattern(Draws::ByMerchant, "ord-aaaa");
        assert_eq!(first, order_pattern(Draws::ByMerchant, "ord-bbbb"));
        assert!(first.contains(&true) && first.contains(&false), "{first:?}");
        assert_ne!(
            order_pattern(Draws::ByKey, "ord-aaaa"),
            order_pattern(Draws::ByKey, "ord-bbbb"),
            "by key, the order id decides"
        );
    }

    #[test]
    fn draws_are_the_same_for_the_same_inputs_and_lie_in_the_unit_interval() {
        for attempt in 1..50 {
            let a = draw(42, 3, Partner::Courier, "k", attempt);
            let b = draw(42, 3, Partner::Courier, "k", attempt);
            assert_eq!(a.to_bits(), b.to_bits());
            assert!((0.0..1.0).contains(&a), "{a}");
        }
    }

    #[test]
    fn rate_decisions_repeat_for_the_same_seed_and_differ_for_another_seed() {
        let first = pattern(42);
        assert_eq!(first, pattern(42));
        assert_ne!(first, pattern(43));
        let fired = first.iter().filter(|f| **f).count();
        assert!(
            (60..=140).contains(&fired),
            "fired {fired} of 200 at rate 0.5"
        );
    }

    #[test]
    fn each_input_of_the_decision_changes_the_draw() {
        let base = draw(1, 1, Partner::Payments, "k", 1);
        assert_ne!(base, draw(2, 1, Partner::Payments, "k", 1));
        assert_ne!(base, draw(1, 2, Partner::Payments, "k", 1));
        assert_ne!(base, draw(1, 1, Partner::Warehouse, "k", 1));
        assert_ne!(base, draw(1, 1, Partner::Payments, "k2", 1));
        assert_ne!(base, draw(1, 1, Partner::Payments, "k", 2));
    }

    #[test]
    fn rate_one_always_fires_and_rate_zero_never_does() {
        assert!(fires(1.0, 0.999_999_999));
        assert!(!fires(0.0, 0.0));
    }

    #[test]
    fn count_limits_how_often_a_rule_fires() {
        let now = Instant::now();
        let mut book = FaultBook::new(0);
        let mut rule = spec(Fault::Unavailable);
        rule.count = Some(2);
        let ids = book.add(vec![rule], now).unwrap_or_default();
        let decisions: Vec<bool> = (1..=3)
            .map(|attempt| book.decide(&charge("k", attempt), now).is_some())
            .collect();
        assert_eq!(decisions, [true, true, false]);
        assert_eq!(ids, [1]);
        assert_eq!(book.rules()[0].fired, 2);
    }

    #[test]
    fn a_rule_for_some_period_stops_firing_when_it_expires() {
        let added = Instant::now();
        let mut book = FaultBook::new(0);
        let mut rule = spec(Fault::Unavailable);
        rule.for_ms = Some(100);
        if let Err(e) = book.add(vec![rule], added) {
            panic!("rule refused: {e}");
        }
        let during = added + Duration::from_millis(99);
        let after = added + Duration::from_millis(100);
        assert!(book.decide(&charge("k", 1), during).is_some());
        assert!(book.decide(&charge("k", 2), after).is_none());
        assert!(book.rules()[0].expired(after));
    }

    #[test]
    fn rules_match_only_their_merchant_operation_and_sku() {
        let now = Instant::now();
        let mut book = FaultBook::new(0);
        let mut by_sku = spec(Fault::Refuse);
        by_sku.partner = "*".to_owned();
        by_sku.operation = "reserve".to_owned();
        by_sku.sku = Some("A920-PRO".to_owned());
        if let Err(e) = book.add(vec![by_sku], now) {
            panic!("rule refused: {e}");
        }
        let with_sku = ["A920-PRO".to_owned()];
        let other_sku = ["P400".to_owned()];
        let reserve = |merchant_id, skus| Query {
            operation: Operation::Reserve,
            order_id: "o-1",
            merchant_id,
            skus,
            key: "k",
            attempt: 1,
        };
        assert!(book.decide(&reserve("m-1", &with_sku), now).is_some());
        assert!(book.decide(&reserve("m-2", &with_sku), now).is_none());
        assert!(book.decide(&reserve("m-1", &other_sku), now).is_none());
        assert!(book.decide(&charge("k", 1), now).is_none());
    }

    #[test]
    fn hold_applies_to_deliveries_only_and_other_faults_to_requests_only() {
        let now = Instant::now();
        let mut book = FaultBook::new(0);
        let mut hold = spec(Fault::Hold);
        hold.partner = "*".to_owned();
        hold.operation = "*".to_owned();
        if let Err(e) = book.add(vec![hold], now) {
            panic!("rule refused: {e}");
        }
        let deliver = Query {
            operation: Operation::Deliver,
            ..charge("k", 1)
        };
        let ship = Query {
            operation: Operation::Ship,
            ..charge("k", 1)
        };
        assert!(book.decide(&ship, now).is_none());
        assert_eq!(
            book.decide(&deliver, now).map(|d| d.fault),
            Some(Fault::Hold)
        );
    }

    #[test]
    fn nonsensical_rules_are_refused_and_none_of_their_post_is_added() {
        let now = Instant::now();
        let mut book = FaultBook::new(0);
        let mut wrong_partner = spec(Fault::Unavailable);
        wrong_partner.operation = "reserve".to_owned();
        let mut held_request = spec(Fault::Hold);
        held_request.operation = "ship".to_owned();
        held_request.partner = "courier".to_owned();
        let mut bad_rate = spec(Fault::Unavailable);
        bad_rate.rate = Some(1.5);
        for bad in [wrong_partner, held_request, bad_rate] {
            assert!(book.add(vec![spec(Fault::Slow), bad], now).is_err());
        }
        assert!(book.rules().is_empty());
    }
}
