//! Injected AWS errors, for a window of time (`PUT /__faults`): the router answers a share of
//! the DynamoDB, EventBridge or Step Functions requests it sees with that service's own
//! throttling or outage error, in AWS's wire shape ([`shapes`]), and forwards nothing of
//! them. The rule of the workflow is that such trouble makes it wait and retry, never roll
//! an order back; these rules let the tests prove it against the real binaries.
//!
//! ```text
//! PUT /__faults
//! {"rules": [{"service": "dynamodb", "operation": "TransactWriteItems",
//!             "error": "throttling", "share": 0.3, "seconds": 60}]}
//! ```
//!
//! - `service`: `dynamodb`, `events` or `states` (the names the requests are signed for),
//!   told apart by `X-Amz-Target` (`DynamoDB_20120810.<Op>`, `AWSEvents.<Op>`,
//!   `AWSStepFunctions.<Op>`).
//! - `operation` (optional): one operation (`Query`, `PutEvents`, `StartExecution`...);
//!   without it, every operation of the service.
//! - `error`: `throttling`, `unavailable` (HTTP 503) or `internal` (HTTP 500).
//! - `share` (optional, default 1): the share of matching requests answered with the error,
//!   0 to 1, to a millionth. Chosen by count, not by chance: the n-th matching request is
//!   faulted when `floor(n * share)` grows, so 0.3 faults the 4th, 7th and 10th of ten.
//! - `seconds`: how long the rule lasts from now (fractions allowed, at most a day).
//! - `body_contains` (optional): only requests whose body holds this text (1 to 256
//!   characters), e.g. an order id, or the update expression of one kind of write: a
//!   test faults its own order's requests on a stack other tests share.
//!
//! A PUT replaces every rule; `DELETE /__faults` removes them; `GET /__faults` shows them
//! with how many requests each matched and faulted and the seconds it has left (an expired
//! rule stays listed, inactive, until the next PUT or DELETE). The first active rule that
//! matches a request counts it and decides; later rules do not see it. A body with any
//! problem is refused whole (400, `{"errors": ["rules[0].share: ..."]}`), each problem
//! naming its field.

use serde::Serialize;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

pub mod shapes;

/// The path that sets, shows and clears the rules.
pub const PATH: &str = "/__faults";

/// The longest a rule may last.
const MAX_SECONDS: f64 = 86_400.0;

/// A rule's share is kept in millionths, so that counting it is exact.
const MILLION: u64 = 1_000_000;

/// An AWS service whose requests can be faulted, by the name its requests are signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Dynamodb,
    Events,
    States,
}

impl Service {
    const ALL: [Service; 3] = [Service::Dynamodb, Service::Events, Service::States];

    /// The service and operation a request names in `X-Amz-Target`, if it is one of
    /// these services'.
    pub fn of_target(target: &str) -> Option<(Service, &str)> {
        let (prefix, operation) = target.split_once('.')?;
        let service = Service::ALL
            .into_iter()
            .find(|service| service.target_prefix() == prefix)?;
        Some((service, operation))
    }

    /// The `X-Amz-Target` prefix of the service's JSON protocol.
    fn target_prefix(self) -> &'static str {
        match self {
            Service::Dynamodb => "DynamoDB_20120810",
            Service::Events => "AWSEvents",
            Service::States => "AWSStepFunctions",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Dynamodb => "dynamodb",
            Service::Events => "events",
            Service::States => "states",
        }
    }
}

/// Which error a rule answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The service refuses the request rate (HTTP 400).
    Throttling,
    /// The service is temporarily down (HTTP 503 `ServiceUnavailable`).
    Unavailable,
    /// The service failed inside (HTTP 500).
    Internal,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Throttling, Kind::Unavailable, Kind::Internal];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Throttling => "throttling",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        }
    }
}

/// One parsed rule: every field valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    service: Service,
    /// `None`: every operation of the service.
    operation: Option<String>,
    /// `None`: whatever the request's body holds.
    body_contains: Option<String>,
    kind: Kind,
    /// As given, for showing back.
    share: f64,
    millionths: u64,
    lasts: Duration,
}

impl Rule {
    fn matches(&self, service: Service, operation: &str, body: &[u8]) -> bool {
        self.service == service
            && self.operation.as_deref().is_none_or(|op| op == operation)
            && self.body_contains.as_deref().is_none_or(|text| {
                body.windows(text.len().max(1))
                    .any(|window| window == text.as_bytes())
            })
    }

    /// Whether the `n`-th matching request (from 1) is faulted: when `floor(n * share)`
    /// grows, so that any first `n` requests hold `floor(n * share)` faults exactly.
    fn faults(&self, n: u64) -> bool {
        let faulted_by = |n: u64| u128::from(n) * u128::from(self.millionths) / u128::from(MILLION);
        faulted_by(n) > faulted_by(n.saturating_sub(1))
    }
}

/// The rules of the last PUT, each with its counts.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Active>,
}

#[derive(Debug)]
struct Active {
    rule: Rule,
    until: Instant,
    matched: u64,
    faulted: u64,
}

/// What a rule decided for a request: answer it with `kind`'s error.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// The rule's place in the list (from 0).
    pub rule: usize,
    pub service: Service,
    pub kind: Kind,
    /// The how-many-th request the rule matched.
    pub matched: u64,
}

impl Faults {
    /// Replaces every rule with `rules`, each lasting from `now`.
    pub fn replace(&mut self, rules: Vec<Rule>, now: Instant) {
        self.rules = rules
            .into_iter()
            .map(|rule| Active {
                until: now + rule.lasts,
                rule,
                matched: 0,
                faulted: 0,
            })
            .collect();
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The error to answer a request for `service`'s `operation` with at `now`, if the
    /// first active rule that matches it says so. That rule counts the request either way.
    pub fn decide(
        &mut self,
        service: Service,
        operation: &str,
        body: &[u8],
        now: Instant,
    ) -> Option<Injection> {
        let (index, active) = self.rules.iter_mut().enumerate().find(|(_, active)| {
            now < active.until && active.rule.matches(service, operation, body)
        })?;
        active.matched += 1;
        if !active.rule.faults(active.matched) {
            return None;
        }
        active.faulted += 1;
        Some(Injection {
            rule: index,
            service,
            kind: active.rule.kind,
            matched: active.matched,
        })
    }

    /// The rules as `GET /__faults` shows them at `now`.
    pub fn view(&self, now: Instant) -> View {
        let rules = self.rules.iter().map(|active| {
            let left = active.until.saturating_duration_since(now);
            RuleView {
                service: active.rule.service,
                operation: active.rule.operation.clone(),
                body_contains: active.rule.body_contains.clone(),
                error: active.rule.kind,
                share: active.rule.share,
                seconds: active.rule.lasts.as_secs_f64(),
                active: !left.is_zero(),
                // To the millisecond, as a person reads it.
                seconds_left: left.as_millis() as f64 / 1000.0,
                matched: active.matched,
                faulted: active.faulted,
            }
        });
        View {
            rules: rules.collect(),
        }
    }
}

/// The body of `GET /__faults` (and of a successful PUT or DELETE).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    pub rules: Vec<RuleView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    pub service: Service,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    pub error: Kind,
    pub share: f64,
    pub seconds: f64,
    pub active: bool,
    pub seconds_left: f64,
    /// Requests the rule counted (it was the first active rule that matched them).
    pub matched: u64,
    /// Of those, the ones answered with its error.
    pub faulted: u64,
}

/// The rules of a `PUT /__faults` body, or every problem in it, each naming its field.
pub fn parse(body: &[u8]) -> Result<Vec<Rule>, Vec<String>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| vec![format!("body: not JSON ({error})")])?;
    let Some(object) = value.as_object() else {
        return Err(vec![
            r#"body: expected an object {"rules": [...]}"#.to_owned()
        ]);
    };
    let mut problems = unknown_fields(object, "", &["rules"]);
    let rules = match object.get("rules") {
        Some(Value::Array(rules)) => rules,
        Some(_) => {
            problems.push("rules: expected a list of rules".to_owned());
            return Err(problems);
        }
        None => {
            problems.push("rules: missing".to_owned());
            return Err(problems);
        }
    };
    let parsed: Vec<Rule> = rules
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| {
            parse_rule(rule, &format!("rules[{index}]"))
                .map_err(|found| problems.extend(found))
                .ok()
        })
        .collect();
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

const RULE_FIELDS: [&str; 6] = [
    "service",
    "operation",
    "body_contains",
    "error",
    "share",
    "seconds",
];

fn parse_rule(value: &Value, at: &str) -> Result<Rule, Vec<String>> {
    let Some(rule) = value.as_object() else {
        return Err(vec![format!(
            "{at}: expected an object with {}",
            RULE_FIELDS.join(", ")
        )]);
    };
    let mut problems = unknown_fields(rule, &format!("{at}."), &RULE_FIELDS);
    let mut problem =
        |field: &str, message: String| problems.push(format!("{at}.{field}: {message}"));

    let service = match rule.get("service") {
        None => Err("missing".to_owned()),
        Some(value) => one_of(value, &Service::ALL, |s| s.name()),
    };
    let service = service.map_err(|message| problem("service", message)).ok();
    let operation = match rule.get("operation") {
        None => Ok(None),
        Some(Value::String(name)) if is_operation_name(name) => Ok(Some(name.clone())),
        Some(other) => Err(format!(
            "expected an operation name such as \"Query\" or \"PutEvents\", got {other}"
        )),
    };
    let operation = operation
        .map_err(|message| problem("operation", message))
        .ok();
    let body_contains = match rule.get("body_contains") {
        None => Ok(None),
        Some(Value::String(text)) if (1..=256).contains(&text.chars().count()) => {
            Ok(Some(text.clone()))
        }
        Some(other) => Err(format!(
            "expected a text of 1 to 256 characters, got {other}"
        )),
    };
    let body_contains = body_contains
        .map_err(|message| problem("body_contains", message))
        .ok();
    let kind = match rule.get("error") {
        None => Err("missing".to_owned()),
        Some(value) => one_of(value, &Kind::ALL, |k| k.name()),
    };
    let kind = kind.map_err(|message| problem("error", message)).ok();
    let share = match rule.get("share") {
        None => Ok(1.0),
        Some(value) => value
            .as_f64()
            .filter(|share| (0.0..=1.0).contains(share))
            .ok_or_else(|| format!("expected a number from 0 to 1, got {value}")),
    };
    let share = share.map_err(|message| problem("share", message)).ok();
    let seconds = match rule.get("seconds") {
        None => Err("missing: a rule lasts a given number of seconds".to_owned()),
        Some(value) => value
            .as_f64()
            .filter(|seconds| *seconds > 0.0 && *seconds <= MAX_SECONDS)
            .ok_or_else(|| {
                format!("expected a number above 0 and at most {MAX_SECONDS}, got {value}")
            }),
    };
    let seconds = seconds.map_err(|message| problem("seconds", message)).ok();

    match (service, operation, body_contains, kind, share, seconds) {
        (
            Some(service),
            Some(operation),
            Some(body_contains),
            Some(kind),
            Some(share),
            Some(seconds),
        ) if problems.is_empty() => {
            Ok(Rule {
                service,
                operation,
                body_contains,
                kind,
                share,
                // Within 0..=1 by the check above, so the product fits.
                millionths: (share * MILLION as f64).round() as u64,
                lasts: Duration::from_secs_f64(seconds),
            })
        }
        _ => Err(problems),
    }
}

/// The one of `choices` that `value` names.
fn one_of<T: Copy>(
    value: &Value,
    choices: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    let found = value
        .as_str()
        .and_then(|text| choices.iter().copied().find(|choice| name(*choice) == text));
    found.ok_or_else(|| {
        let names: Vec<_> = choices.iter().map(|choice| name(*choice)).collect();
        format!("expected one of {}, got {value}", names.join(", "))
    })
}

/// An AWS operation name: a capital letter, then letters and digits (`TransactWriteItems`).
fn is_operation_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn unknown_fields(object: &Map<String, Value>, at: &str, known: &[&str]) -> Vec<String> {
    object
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| format!("{at}{key}: unknown field (known: {})", known.join(", ")))
        .collect()
}

/// The region a request is signed for (`Credential=AKID/20261128/<region>/...`), or
/// `us-east-1` when it is unsigned.
pub fn region(authorization: Option<&str>) -> &str {
    authorization
        .and_then(|value| value.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').nth(2))
        .filter(|region| !region.is_empty())
        .unwrap_or("us-east-1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> Result<Vec<Rule>, Vec<String>> {
        parse(value.to_string().as_bytes())
    }

    fn one(value: Value) -> Rule {
        match rules(json!({ "rules": [value] })) {
            Ok(mut rules) if rules.len() == 1 => rules.remove(0),
            other => panic!("expected one rule, got {other:?}"),
        }
    }

    #[test]
    fn a_target_names_its_service_and_operation_and_other_targets_name_none() {
        assert_eq!(
            Service::of_target("DynamoDB_20120810.TransactWriteItems"),
            Some((Service::Dynamodb, "TransactWriteItems"))
        );
        assert_eq!(
            Service::of_target("AWSEvents.PutEvents"),
            Some((Service::Events, "PutEvents"))
        );
        assert_eq!(
            Service::of_target("AWSStepFunctions.SendTaskSuccess"),
            Some((Service::States, "SendTaskSuccess"))
        );
        assert_eq!(Service::of_target("AmazonSQS.SendMessage"), None);
        assert_eq!(Service::of_target("DynamoDB_20120810"), None);
    }

    #[test]
    fn a_rule_with_body_contains_faults_only_the_requests_whose_body_holds_its_text() {
        let parsed = rules(
            json!({"rules": [{"service": "dynamodb", "operation": "UpdateItem",
            "body_contains": "ord-42", "error": "internal", "seconds": 10}]}),
        );
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}")
        };
        let now = Instant::now();
        let mut faults = Faults::default();
        faults.replace(parsed, now);
        let mine = br#"{"Key":{"pk":{"S":"ORDER#ord-42"}}}"#;
        let theirs = br#"{"Key":{"pk":{"S":"ORDER#ord-7"}}}"#;
        assert!(faults
            .decide(Service::Dynamodb, "UpdateItem", mine, now)
            .is_some());
        assert_eq!(
            faults.decide(Service::Dynamodb, "UpdateItem", theirs, now),
            None
        );
        assert_eq!(faults.view(now).rules[0].matched, 1, "only its own counted");
        let empty = rules(
            json!({"rules": [{"service": "dynamodb", "body_contains": "",
            "error": "internal", "seconds": 1}]}),
        );
        assert!(
            matches!(&empty, Err(problems) if problems.iter().any(|p| p.starts_with("rules[0].body_contains:"))),
            "{empty:?}"
        );
    }

    #[test]
    fn a_share_of_three_tenths_faults_the_fourth_seventh_and_tenth_of_ten() {
        let rule =
            one(json!({"service": "dynamodb", "error": "throttling", "share": 0.3, "seconds": 60}));
        let faulted: Vec<u64> = (1..=10).filter(|n| rule.faults(*n)).collect();
        assert_eq!(faulted, [4, 7, 10]);
    }

    #[test]
    fn any_first_n_requests_hold_exactly_floor_n_times_share_faults() {
        // 0.29 * 100 is 28.999999999999996 in floating point: counting in millionths
        // keeps it 29.
        for share in [0.0, 0.001, 0.29, 0.3, 0.5, 0.999_999, 1.0] {
            let rule = one(
                json!({"service": "states", "error": "internal", "share": share, "seconds": 1}),
            );
            let millionths = (share * 1e6_f64).round() as u64;
            let mut faulted = 0;
            for n in 1..=1_000u64 {
                faulted += u64::from(rule.faults(n));
                assert_eq!(faulted, n * millionths / MILLION, "share {share} after {n}");
            }
        }
    }

    #[test]
    fn the_first_active_rule_that_matches_counts_the_request_and_an_expired_rule_counts_none() {
        let parsed = rules(json!({"rules": [
            {"service": "dynamodb", "operation": "Query", "error": "throttling", "seconds": 1},
            {"service": "dynamodb", "error": "unavailable", "share": 0.5, "seconds": 10},
        ]}));
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}")
        };
        let start = Instant::now();
        let mut faults = Faults::default();
        faults.replace(parsed, start);
        let query = faults.decide(Service::Dynamodb, "Query", b"", start);
        assert_eq!(query.map(|i| (i.rule, i.kind)), Some((0, Kind::Throttling)));
        // Not a Query: the second rule's first match, which a share of 0.5 lets through.
        assert_eq!(
            faults.decide(Service::Dynamodb, "PutItem", b"", start),
            None
        );
        // Another service: no rule.
        assert_eq!(
            faults.decide(Service::Events, "PutEvents", b"", start),
            None
        );
        // After a second the first rule has expired: the Query is the second rule's.
        let later = start + Duration::from_secs(1);
        let query = faults.decide(Service::Dynamodb, "Query", b"", later);
        assert_eq!(
            query.map(|i| (i.rule, i.kind, i.matched)),
            Some((1, Kind::Unavailable, 2))
        );
        let view = faults.view(later);
        let counts: Vec<_> = view
            .rules
            .iter()
            .map(|r| (r.active, r.matched, r.faulted))
            .collect();
        assert_eq!(counts, [(false, 1, 1), (true, 2, 1)]);
        // Nothing lasts beyond its window.
        assert_eq!(
            faults.decide(
                Service::Dynamodb,
                "Query",
                b"",
                start + Duration::from_secs(10)
            ),
            None
        );
        faults.clear();
        assert_eq!(faults.view(later).rules, []);
    }

    #[test]
    fn every_problem_of_a_body_is_reported_naming_its_field_and_no_rule_is_kept() {
        let problems = rules(json!({"rules": [
            {"service": "dynamodb", "error": "throttling", "seconds": 5},
            {"service": "dynamo", "operation": "query", "error": "slow", "share": 1.5, "seconds": 0, "extra": 1},
            {"service": "states", "error": "throttling"},
        ]}));
        let Err(problems) = problems else {
            panic!("accepted: {problems:?}")
        };
        for field in [
            "rules[1].service",
            "rules[1].operation",
            "rules[1].error",
            "rules[1].share",
            "rules[1].seconds",
            "rules[1].extra",
            "rules[2].seconds",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|problem| problem.starts_with(&format!("{field}:"))),
                "no problem names {field}: {problems:?}"
            );
        }
        assert_eq!(problems.len(), 7, "{problems:?}");
    }

    #[test]
    fn a_body_that_is_not_a_list_of_rules_is_refused() {
        assert_eq!(
            parse(b"not json").map_err(|p| p[0].starts_with("body:")),
            Err(true)
        );
        assert_eq!(
            rules(json!([])).map_err(|p| p[0].starts_with("body:")),
            Err(true)
        );
        assert_eq!(rules(json!({})), Err(vec!["rules: missing".to_owned()]));
        let wrong = rules(json!({"rules": {}, "rule": []}));
        let Err(problems) = wrong else {
            panic!("accepted")
        };
        assert!(problems
            .iter()
            .any(|p| p.starts_with("rule: unknown field")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with("rules: expected a list")));
        // No rules at all is a valid body: nothing is faulted.
        assert_eq!(rules(json!({"rules": []})), Ok(vec![]));
    }

    #[test]
    fn a_request_signed_for_a_region_names_it_and_an_unsigned_one_is_us_east_1() {
        let signed = "AWS4-HMAC-SHA256 Credential=test/20261128/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(region(Some(signed)), "eu-west-1");
        assert_eq!(region(None), "us-east-1");
        assert_eq!(region(Some("Bearer x")), "us-east-1");
    }
}
