//! Placing the orders: N orders at a steady rate through the orders API, each for a
//! merchant of its own (so the by-merchant index shows whether a key made a second
//! order), all three kinds. A few are sent again with the same Idempotency-Key (the same
//! order, re-formatted: must be the same order back; or a changed order: must be 422),
//! and a few are cancelled shortly after they were placed (202 or 409 are both fine).
//!
//! A request that gets no answer (a killed orders-api instance never answers) or a 5xx
//! is sent again with the same key, as a client should: that is what the key is for.

use crate::rng::Rng;
use crate::ChaosError;
use local_stack::signing::Signer;
use order_core::OrderKind;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// API requests in flight at most: beyond this the run falls behind its rate (and says
/// so). The orders API runs on a few instances (cargo lambda watch's `--concurrency`,
/// fewer once some are killed), which also answer the courier's delivery webhooks; a
/// client that kept more requests waiting would delay those past the courier's 10 s
/// timeout, the courier would send them again, and the queue would grow until it reaches
/// the 100 invocations cargo lambda watch (1.9.2) queues per function. At that point
/// watch stops serving every function: it waits for room in that queue while holding
/// the lock all queues share.
const MAX_IN_FLIGHT: usize = 4;
/// Attempts per API request (the first included) when nothing or a 5xx answered.
const API_ATTEMPTS: u32 = 6;
/// No new order is sent once the API has answered nothing for this long while requests
/// were waiting: the stack stopped working, and the run says so instead of waiting for
/// every remaining order to time out.
const API_SILENCE: Duration = Duration::from_secs(120);

/// What share of the orders gets what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub new_merchant: f64,
    pub additional_devices: f64,
    /// The rest are replacements.
    pub resend_same: f64,
    pub resend_different: f64,
    pub cancel: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            new_merchant: 0.5,
            additional_devices: 0.3,
            resend_same: 0.04,
            resend_different: 0.02,
            cancel: 0.03,
        }
    }
}

/// A second request with an order's Idempotency-Key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The same order (formatted differently): must answer 202 with the same order id.
    SameBody,
    /// Another order: must answer 422 `idempotency_key_reused`.
    DifferentBody,
}

/// One order to place.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPlan {
    pub index: usize,
    pub kind: OrderKind,
    pub merchant_id: String,
    pub key: String,
    pub body: Value,
    pub quantity: u32,
    pub probe: Option<(Probe, Duration)>,
    pub cancel_after: Option<Duration>,
}

const SKUS: [&str; 5] = ["A920-PRO", "A80", "S1F2", "V400M", "P400-PLUS"];
const ADDRESSES: [(&str, &str, &str); 6] = [
    ("DE", "Berlin", "10119"),
    ("FR", "Paris", "75002"),
    ("NL", "Amsterdam", "1012 AB"),
    ("AT", "Wien", "1010"),
    ("IE", "Dublin", "D02 X285"),
    ("ES", "Madrid", "28013"),
];

fn delay_ms(rng: &mut Rng, from: u64, to: u64) -> Duration {
    let span = usize::try_from(to.saturating_sub(from)).unwrap_or(0);
    Duration::from_millis(from + u64::try_from(rng.below(span + 1)).unwrap_or(0))
}

/// The orders of a run: `run` makes keys and merchants unique to it, `seed` decides
/// everything else.
pub fn plan(orders: usize, seed: u64, run: &str, mix: Mix) -> Vec<OrderPlan> {
    let mut rng = Rng::stream(seed, 1);
    (0..orders)
        .map(|index| {
            let draw = rng.unit();
            let kind = if draw < mix.new_merchant {
                OrderKind::NewMerchant
            } else if draw < mix.new_merchant + mix.additional_devices {
                OrderKind::AdditionalDevices
            } else {
                OrderKind::Replacement
            };
            let merchant_id = format!("m-chaos-{run}-{index:05}");
            let (country, city, postal_code) = ADDRESSES[rng.below(ADDRESSES.len())];
            let first = rng.below(SKUS.len());
            let mut lines = vec![(SKUS[first], 1 + rng.below(3))];
            if kind != OrderKind::Replacement && rng.chance(0.4) {
                lines.push((SKUS[(first + 1 + rng.below(SKUS.len() - 1)) % SKUS.len()], 1 + rng.below(3)));
            }
            let quantity: usize = lines.iter().map(|(_, q)| q).sum();
            let mut body = json!({
                "kind": kind.as_str(),
                "merchant_id": merchant_id,
                "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
                "delivery_address": {
                    "name": format!("Chaos Shop {index}"), "line1": format!("Teststraße {}", index % 200 + 1),
                    "city": city, "postal_code": postal_code, "country": country,
                },
            });
            if kind == OrderKind::Replacement {
                body["replace_serials"] = (0..quantity)
                    .map(|n| format!("SN-{}-{index:05}-{n}", run.to_uppercase()))
                    .collect();
            }
            let probe_draw = rng.unit();
            let probe = if probe_draw < mix.resend_same {
                Some((Probe::SameBody, delay_ms(&mut rng, 0, 3000)))
            } else if probe_draw < mix.resend_same + mix.resend_different {
                Some((Probe::DifferentBody, delay_ms(&mut rng, 0, 3000)))
            } else {
                None
            };
            let cancel_after = rng
                .chance(mix.cancel)
                .then(|| delay_ms(&mut rng, 200, 4000));
            OrderPlan {
                index,
                kind,
                merchant_id,
                key: format!("chaos-{run}-{index:05}"),
                body,
                quantity: u32::try_from(quantity).unwrap_or(u32::MAX),
                probe,
                cancel_after,
            }
        })
        .collect()
}

/// The same order, changed: another delivery name (valid, but not the same request).
pub fn changed(body: &Value) -> Value {
    let mut other = body.clone();
    let name = other["delivery_address"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    other["delivery_address"]["name"] = Value::from(format!("{name} (changed)"));
    other
}

/// What the API answered one request, in the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// `None`: no answer at all, after every attempt.
    pub status: Option<u16>,
    pub order_id: Option<String>,
    pub code: Option<String>,
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
    /// The transport error or the start of an unexpected body.
    pub detail: Option<String>,
    /// Requests sent (the first included).
    pub attempts: u32,
}

impl Answer {
    pub fn describe(&self) -> String {
        match (self.status, &self.code, &self.detail) {
            (None, _, detail) => format!(
                "no answer after {} attempts ({})",
                self.attempts,
                detail.as_deref().unwrap_or("?")
            ),
            (Some(status), Some(code), _) => format!("{status} {code}"),
            (Some(status), None, _) => status.to_string(),
        }
    }
}

/// One order placed (or not), with its probe and cancellation.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub index: usize,
    pub kind: OrderKind,
    pub merchant_id: String,
    pub key: String,
    pub quantity: u32,
    pub answer: Answer,
    /// Wall-clock time the first request was sent.
    pub placed_at: chrono::DateTime<chrono::Utc>,
    /// From the first request to the last answer (retries included).
    pub took: Duration,
    pub probe: Option<(Probe, Answer)>,
    pub cancel: Option<Answer>,
}

impl Placed {
    /// The order id of a 202.
    pub fn accepted(&self) -> Option<&str> {
        (self.answer.status == Some(202))
            .then_some(self.answer.order_id.as_deref())
            .flatten()
    }
}

/// Everything the load phase did.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    pub placed: Vec<Placed>,
    /// API requests sent again after no answer or a 5xx.
    pub api_retries: u64,
    pub duration: Duration,
    /// The API stopped answering and the remaining orders were not sent.
    pub stopped_early: bool,
    /// How long placement was held back (too many executions running), how many times.
    pub held: Duration,
    pub holds: u32,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    retries: AtomicU64,
    /// Milliseconds since the start of the load when the API last answered anything.
    last_answer_ms: AtomicU64,
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    /// Every request to the API is SigV4-signed (IAM authorization on API Gateway).
    signer: Signer,
    base: String,
    counters: Arc<Counters>,
    started: Instant,
    in_flight: Arc<Semaphore>,
}

impl Api {
    async fn once(&self, request: reqwest::RequestBuilder) -> Answer {
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Answer {
                detail: Some("the run is shutting down".into()),
                ..Answer::default()
            };
        };
        let mut request = match request.build() {
            Ok(request) => request,
            Err(error) => {
                return Answer {
                    detail: Some(error.to_string()),
                    ..Answer::default()
                }
            }
        };
        if let Err(error) = self.signer.sign(&mut request) {
            return Answer {
                detail: Some(error.to_string()),
                ..Answer::default()
            };
        }
        match self.http.execute(request).await {
            Err(error) => Answer {
                detail: Some(error.to_string()),
                ..Answer::default()
            },
            Ok(response) => {
                let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.counters
                    .last_answer_ms
                    .fetch_max(now, Ordering::Relaxed);
                let status = response.status().as_u16();
                let replayed = response
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v.as_bytes() == b"true");
                let text = response.text().await.unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let field = |name: &str| body[name].as_str().map(str::to_owned);
                Answer {
                    status: Some(status),
                    order_id: field("order_id"),
                    code: field("code"),
                    replayed,
                    detail: (body.is_null() && !text.is_empty())
                        .then(|| text.chars().take(200).collect()),
                    attempts: 0,
                }
            }
        }
    }

    /// Sends the request built by `build`, again (same key) after no answer or a 5xx.
    async fn with_retries(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Answer {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut answer = self.once(build()).await;
            answer.attempts = attempts;
            let transient = answer.status.is_none_or(|s| s >= 500);
            if !transient || attempts >= API_ATTEMPTS {
                return answer;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let pause =
                Duration::from_millis(500u64 << (attempts - 1).min(4)).min(Duration::from_secs(8));
            tokio::time::sleep(pause).await;
        }
    }

    async fn post_order(&self, key: &str, body: String) -> Answer {
        let url = format!("{}/orders", self.base);
        self.with_retries(|| {
            self.http
                .post(&url)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body.clone())
        })
        .await
    }

    async fn cancel(&self, order_id: &str) -> Answer {
        let url = format!("{}/orders/{order_id}/cancel", self.base);
        self.with_retries(|| self.http.post(&url)).await
    }
}

async fn place(api: Api, plan: OrderPlan) -> Placed {
    let placed_at = chrono::Utc::now();
    let sent_at = Instant::now();
    api.counters.sent.fetch_add(1, Ordering::Relaxed);
    let answer = api.post_order(&plan.key, plan.body.to_string()).await;
    let took = sent_at.elapsed();
    let counter = if answer.status == Some(202) {
        &api.counters.accepted
    } else {
        &api.counters.refused
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let mut placed = Placed {
        index: plan.index,
        kind: plan.kind,
        merchant_id: plan.merchant_id.clone(),
        key: plan.key.clone(),
        quantity: plan.quantity,
        answer,
        placed_at,
        took,
        probe: None,
        cancel: None,
    };
    let Some(order_id) = placed.accepted().map(str::to_owned) else {
        return placed;
    };
    if let Some((probe, after)) = plan.probe {
        tokio::time::sleep(after).await;
        let body = match probe {
            Probe::SameBody => serde_json::to_string_pretty(&plan.body).unwrap_or_default(),
            Probe::DifferentBody => changed(&plan.body).to_string(),
        };
        placed.probe = Some((probe, api.post_order(&plan.key, body).await));
    }
    if let Some(after) = plan.cancel_after {
        tokio::time::sleep(after).await;
        placed.cancel = Some(api.cancel(&order_id).await);
    }
    placed
}

/// Holds placement back while the stack is behind: `running` is kept up to date by the
/// caller (executions RUNNING now); no order is sent while it is at `max_running` or more.
#[derive(Debug, Clone)]
pub struct Backpressure {
    pub running: Arc<AtomicUsize>,
    pub max_running: usize,
}

/// Placement held back longer than this at once: the stack stopped working.
const LONGEST_HOLD: Duration = Duration::from_secs(300);

/// Places `plans` at `rate` per second, holding back while the stack is behind;
/// progress on stderr every 5 s.
pub async fn run(
    http: &reqwest::Client,
    signer: &Signer,
    orders_api_url: &str,
    plans: Vec<OrderPlan>,
    rate: f64,
    backpressure: Backpressure,
) -> Result<LoadOutcome, ChaosError> {
    let started = Instant::now();
    let api = Api {
        http: http.clone(),
        signer: signer.clone(),
        base: orders_api_url.trim_end_matches('/').to_owned(),
        counters: Arc::new(Counters::default()),
        started,
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    };
    let total = plans.len();
    let done = Arc::new(AtomicBool::new(false));
    let progress = {
        let counters = api.counters.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                eprintln!(
                    "chaos: placing {:>4}/{total} sent, {} accepted, {} refused, {} API retries ({:.0} s)",
                    get(&counters.sent),
                    get(&counters.accepted),
                    get(&counters.refused),
                    get(&counters.retries),
                    started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut placed = Vec::with_capacity(total);
    let mut silent = false;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut due = started;
    let mut held = Duration::ZERO;
    let mut holds = 0u32;
    for plan in plans {
        tokio::time::sleep_until(due.into()).await;
        if !silent && backpressure.running.load(Ordering::Relaxed) >= backpressure.max_running {
            let hold = Instant::now();
            holds += 1;
            if holds == 1 || holds % 20 == 0 {
                eprintln!(
                    "chaos: {} or more executions running: holding placement until the stack catches up (hold {holds})",
                    backpressure.max_running
                );
            }
            while backpressure.running.load(Ordering::Relaxed) >= backpressure.max_running {
                if hold.elapsed() > LONGEST_HOLD {
                    silent = true;
                    eprintln!(
                        "chaos: still {} executions running after {} s: the stack stopped working; the remaining orders are not sent",
                        backpressure.running.load(Ordering::Relaxed),
                        LONGEST_HOLD.as_secs()
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            held += hold.elapsed();
        }
        due = (due + interval).max(Instant::now());
        let counters = &api.counters;
        let waiting = counters.sent.load(Ordering::Relaxed)
            > counters.accepted.load(Ordering::Relaxed) + counters.refused.load(Ordering::Relaxed);
        let last_answer = Duration::from_millis(counters.last_answer_ms.load(Ordering::Relaxed));
        if !silent && waiting && started.elapsed().saturating_sub(last_answer) > API_SILENCE {
            silent = true;
            eprintln!(
                "chaos: the orders API has answered nothing for {} s: the stack stopped working; the remaining orders are not sent",
                API_SILENCE.as_secs()
            );
        }
        if silent {
            placed.push(Placed {
                index: plan.index,
                kind: plan.kind,
                merchant_id: plan.merchant_id,
                key: plan.key,
                quantity: plan.quantity,
                answer: Answer {
                    detail: Some("not sent: the orders API had stopped answering".into()),
                    ..Answer::default()
                },
                placed_at: chrono::Utc::now(),
                took: Duration::ZERO,
                probe: None,
                cancel: None,
            });
            continue;
        }
        tasks.spawn(place(api.clone(), plan));
    }
    while let Some(joined) = tasks.join_next().await {
        placed.push(joined.map_err(|e| ChaosError::Task(e.to_string()))?);
    }
    done.store(true, Ordering::Relaxed);
    progress.abort();
    placed.sort_by_key(|p| p.index);
    Ok(LoadOutcome {
        placed,
        api_retries: api.counters.retries.load(Ordering::Relaxed),
        duration: started.elapsed(),
        stopped_early: silent,
        held,
        holds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_core::catalogue::Catalogue;
    use order_core::Order;
    use std::collections::BTreeSet;

    #[test]
    fn every_planned_order_is_valid_and_the_mix_is_near_what_was_asked() {
        let catalogue = match Catalogue::builtin() {
            Ok(catalogue) => catalogue,
            Err(error) => panic!("{error}"),
        };
        let plans = plan(2000, 42, "t1", Mix::default());
        for plan in &plans {
            let parsed = Order::parse(&plan.body, &catalogue);
            assert!(
                parsed.is_ok(),
                "{}: {:?}",
                plan.body,
                parsed.err().map(|p| p.to_string())
            );
            let changed = Order::parse(&changed(&plan.body), &catalogue);
            assert!(changed.is_ok_and(|c| Some(c) != Order::parse(&plan.body, &catalogue).ok()));
        }
        let share =
            |f: &dyn Fn(&OrderPlan) -> bool| plans.iter().filter(|p| f(p)).count() as f64 / 2000.0;
        let near = |x: f64, target: f64| (x - target).abs() < 0.04;
        assert!(near(share(&|p| p.kind == OrderKind::NewMerchant), 0.5));
        assert!(near(share(&|p| p.kind == OrderKind::Replacement), 0.2));
        assert!(near(share(&|p| p.cancel_after.is_some()), 0.03));
        assert!(near(
            share(&|p| matches!(p.probe, Some((Probe::SameBody, _)))),
            0.04
        ));
        assert!(near(
            share(&|p| matches!(p.probe, Some((Probe::DifferentBody, _)))),
            0.02
        ));
        let merchants: BTreeSet<&str> = plans.iter().map(|p| p.merchant_id.as_str()).collect();
        assert_eq!(merchants.len(), plans.len(), "one merchant per order");
    }

    #[test]
    fn the_same_seed_plans_the_same_orders() {
        assert_eq!(
            plan(50, 7, "r", Mix::default()),
            plan(50, 7, "r", Mix::default())
        );
        assert_ne!(
            plan(50, 7, "r", Mix::default()),
            plan(50, 8, "r", Mix::default())
        );
    }
}
