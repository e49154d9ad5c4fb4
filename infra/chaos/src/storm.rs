//! An infrastructure storm (`--profile storm`): our own AWS services in trouble while
//! orders run, injected by the local stack's invoke router with AWS's own error shapes
//! (`PUT /__faults`, `infra/invoke-router/src/faults.rs`). DynamoDB throttles a share of
//! every request for a while, and in the middle of it the order-events bus is down. The
//! rule the audit then holds the run to (invariant 5): such trouble makes orders wait,
//! it never rolls one back or parks it.
//!
//! Only the moto stack routes the functions' AWS calls through the router; on MiniStack
//! the storm cannot be injected and the run says so.

use crate::ChaosError;
use serde_json::{json, Value};
use std::time::Duration;

/// The storm's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    /// Where in the load's planned length the storm begins (0..1).
    pub at: f64,
    /// The share of DynamoDB requests (every operation) answered `ThrottlingException`.
    pub dynamodb_share: f64,
    pub dynamodb_for: Duration,
    /// How long into the DynamoDB storm the event bus goes down, and for how long: every
    /// `PutEvents` answered `503 ServiceUnavailable`.
    pub events_after: Duration,
    pub events_for: Duration,
}

impl Default for Storm {
    /// 30 % of DynamoDB requests throttled for 60 s, the event bus down for the 30 s in
    /// the middle of it.
    fn default() -> Self {
        Storm {
            at: 0.3,
            dynamodb_share: 0.3,
            dynamodb_for: Duration::from_secs(60),
            events_after: Duration::from_secs(15),
            events_for: Duration::from_secs(30),
        }
    }
}

/// What the router reported about the storm when it was over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StormCounts {
    /// When the storm began and ended, wall clock (RFC 3339 to the millisecond).
    pub began: String,
    pub ended: String,
    /// Requests each rule matched and answered with its fault: `(rule, matched, faulted)`.
    pub rules: Vec<(String, u64, u64)>,
}

impl Storm {
    /// The router's rules at `elapsed` into the storm: the DynamoDB throttling for what is
    /// left of it, and the bus outage once it has begun. A `PUT /__faults` replaces every
    /// rule, so each step of the storm sends all the rules in force.
    fn rules(&self, elapsed: Duration) -> Value {
        let left = |length: Duration| length.saturating_sub(elapsed).as_secs_f64();
        let mut rules = vec![json!({
            "service": "dynamodb", "error": "throttling",
            "share": self.dynamodb_share, "seconds": left(self.dynamodb_for)
        })];
        if elapsed >= self.events_after {
            let events_end = self.events_after + self.events_for;
            rules.push(json!({
                "service": "events", "operation": "PutEvents", "error": "unavailable",
                "share": 1.0, "seconds": left(events_end)
            }));
        }
        json!({ "rules": rules })
    }

    pub fn describe(&self) -> Vec<String> {
        vec![
            format!(
                "storm (invoke router): DynamoDB ThrottlingException on {:.0} % of every request for {} s",
                self.dynamodb_share * 100.0,
                self.dynamodb_for.as_secs()
            ),
            format!(
                "storm (invoke router): the order-events bus down (PutEvents 503) for {} s, from {} s into the DynamoDB storm",
                self.events_for.as_secs(),
                self.events_after.as_secs()
            ),
        ]
    }

    /// Runs the storm through the router at `endpoint` (the stack's `AWS_ENDPOINT_URL`):
    /// the DynamoDB throttling now, the bus outage `events_after` later, then waits for
    /// both to pass and reads what the router counted. The rules expire by themselves, so
    /// a run that stops midway leaves nothing behind.
    pub async fn blow(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
    ) -> Result<StormCounts, ChaosError> {
        let url = format!("{}/__faults", endpoint.trim_end_matches('/'));
        let began = now();
        put(http, &url, &self.rules(Duration::ZERO)).await?;
        tokio::time::sleep(self.events_after).await;
        put(http, &url, &self.rules(self.events_after)).await?;
        let end = self.dynamodb_for.max(self.events_after + self.events_for);
        tokio::time::sleep(end.saturating_sub(self.events_after)).await;
        let ended = now();
        let counted = http
            .get(&url)
            .send()
            .await
            .map_err(|e| ChaosError::Http(format!("GET {url}: {e}")))?;
        let counted: Value = counted
            .json()
            .await
            .map_err(|e| ChaosError::Http(format!("GET {url}: {e}")))?;
        http.delete(&url)
            .send()
            .await
            .map_err(|e| ChaosError::Http(format!("DELETE {url}: {e}")))?;
        let rules = (counted["rules"].as_array().into_iter().flatten())
            .map(|rule| {
                (
                    format!(
                        "{} {} {}",
                        rule["service"].as_str().unwrap_or("?"),
                        rule["operation"].as_str().unwrap_or("*"),
                        rule["error"].as_str().unwrap_or("?")
                    ),
                    rule["matched"].as_u64().unwrap_or(0),
                    rule["faulted"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        Ok(StormCounts {
            began,
            ended,
            rules,
        })
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn put(http: &reqwest::Client, url: &str, rules: &Value) -> Result<(), ChaosError> {
    let answer = http
        .put(url)
        .json(rules)
        .send()
        .await
        .map_err(|e| ChaosError::Http(format!("PUT {url}: {e}")))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let text = answer.text().await.unwrap_or_default();
    Err(ChaosError::Options(format!(
        "the storm needs the moto stack's invoke router at {url}, which answered {status}: {text} (MiniStack's functions call MiniStack directly)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_sends_the_throttling_first_and_both_rules_for_what_is_left_of_them_later() {
        let storm = Storm::default();
        let first = storm.rules(Duration::ZERO);
        assert_eq!(first["rules"].as_array().map(Vec::len), Some(1));
        assert_eq!(first["rules"][0]["service"], "dynamodb");
        assert_eq!(first["rules"][0]["share"], 0.3);
        assert_eq!(first["rules"][0]["seconds"], 60.0);
        let middle = storm.rules(Duration::from_secs(15));
        assert_eq!(middle["rules"][0]["seconds"], 45.0);
        assert_eq!(middle["rules"][1]["service"], "events");
        assert_eq!(middle["rules"][1]["operation"], "PutEvents");
        assert_eq!(middle["rules"][1]["error"], "unavailable");
        assert_eq!(middle["rules"][1]["seconds"], 30.0);
    }
}
