//! Work per order, counted on the local stack (`make bench` runs the bench inside
//! `local-stack exec`): one order at a time, for each kind and for a failure path, the
//! invoke router's meter read before and after (every Lambda invocation and AWS request
//! of the functions passes through it), the execution's history, the order's items and
//! the bytes the functions logged. The bench's own AWS calls go to the emulator directly,
//! so they are not counted.

use crate::stats::Summary;
use crate::BenchError;
use aws_sdk_dynamodb::types::AttributeValue;
use partner_simulator::client::Admin;
use partner_simulator::faults::{Fault, RuleSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The longest wait between two tries of one order's request.
const PLACE_RETRY_LIMIT: Duration = Duration::from_secs(8);

/// How long one order may take to reach its final status before the run fails.
const ORDER_LIMIT: Duration = Duration::from_secs(120);

/// An order the bench places, and how it must end.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    kind: &'static str,
    pub ends: &'static str,
    /// A partner operation refused for this order's merchant.
    refused: Option<(&'static str, &'static str)>,
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "new merchant",
        kind: "new_merchant",
        ends: "COMPLETED",
        refused: None,
    },
    Scenario {
        name: "additional devices",
        kind: "additional_devices",
        ends: "COMPLETED",
        refused: None,
    },
    Scenario {
        name: "replacement",
        kind: "replacement",
        ends: "COMPLETED",
        refused: None,
    },
    Scenario {
        name: "payment declined",
        kind: "new_merchant",
        ends: "FAILED",
        refused: Some(("payments", "charge")),
    },
];

/// The router's meter (`GET /__meter`), as it serves it.
#[derive(Debug, Default, Clone, Deserialize)]
struct Meter {
    invocations: BTreeMap<String, Invocations>,
    requests: BTreeMap<String, u64>,
    /// DynamoDB items touched, by kind of item: `order`, `step`, `other`.
    #[serde(default)]
    dynamodb_by_item: BTreeMap<String, DynamoItems>,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct Invocations {
    count: u64,
    billed_ms: u64,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct DynamoItems {
    written: u64,
    written_in_transactions: u64,
    read_consistent: u64,
    read_eventually: u64,
    read_in_transactions: u64,
}

/// What one scenario's orders did: each figure the median of the runs, with min and max.
/// Keys: `transitions`, `task retries`, `lambda invocations`, `lambda billed ms`,
/// `invocations <function>`, `<service>:<Operation>` per AWS request, `dynamodb WRU`,
/// `dynamodb RRU`, `order item bytes`, `step item bytes`, `log bytes`, `seconds to final`.
#[derive(Debug, Clone, Serialize)]
pub struct Work {
    pub scenario: String,
    pub ends: String,
    pub counts: BTreeMap<String, Summary>,
}

impl Work {
    /// The median of `key`, 0 when the orders never did it.
    pub fn median(&self, key: &str) -> f64 {
        self.counts.get(key).map_or(0.0, |s| s.median)
    }

    /// The medians of every key starting with `prefix`, summed (`dynamodb:`).
    pub fn sum_of(&self, prefix: &str) -> f64 {
        let matching = self
            .counts
            .iter()
            .filter(|(key, _)| key.starts_with(prefix));
        // From +0.0: an empty float sum is -0.0, which would print as "-0".
        matching.fold(0.0, |total, (_, s)| total + s.median)
    }
}

/// The stack the bench runs in, from the variables `local-stack exec` sets.
pub struct Stack {
    http: reqwest::Client,
    router: String,
    orders_api: String,
    partners: Admin,
    table: String,
    /// The state machine, unqualified (executions through any alias or version).
    state_machine: String,
    dynamodb: aws_sdk_dynamodb::Client,
    sfn: aws_sdk_sfn::Client,
    function_log: PathBuf,
    /// Signs the bench's API requests as the stack's own caller (the API authorises
    /// each caller by its scope; `local_stack::callers`).
    signer: local_stack::signing::Signer,
}

fn variable(name: &'static str) -> Result<String, BenchError> {
    std::env::var(name).map_err(|_| BenchError::Missing {
        what: format!("{name} (run the work part inside `local-stack exec`, as `make bench` does)"),
    })
}

impl Stack {
    /// `request`, signed as the stack's own API caller.
    fn signed(&self, mut request: reqwest::Request) -> Result<reqwest::Request, BenchError> {
        self.signer
            .sign(&mut request)
            .map_err(|error| BenchError::Stack(format!("signing the bench's request: {error}")))?;
        Ok(request)
    }

    pub async fn from_env() -> Result<Stack, BenchError> {
        // The emulators themselves, not the router: the bench's own reads are not counted.
        let emulator = variable("AWS_EMULATOR_URL")?;
        let aws = order_core::config::aws_loader()
            .endpoint_url(&emulator)
            .load()
            .await;
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(variable("AWS_EMULATOR_DYNAMODB_URL")?)
            .build();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| BenchError::Http {
                what: "the HTTP client".into(),
                source,
            })?;
        Ok(Stack {
            router: variable("AWS_ENDPOINT_URL")?,
            orders_api: variable("ORDERS_API_URL")?,
            partners: Admin::new(http.clone(), &variable("PARTNER_SIMULATOR_URL")?),
            http,
            table: variable("TABLE_NAME")?,
            // arn:aws:states:region:account:stateMachine:name[:alias]
            state_machine: variable("STATE_MACHINE_ARN")?
                .split(':')
                .take(7)
                .collect::<Vec<_>>()
                .join(":"),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sfn: aws_sdk_sfn::Client::new(&aws),
            function_log: PathBuf::from(variable("LOCAL_STACK_DIR")?)
                .join("logs")
                .join("cargo-lambda-watch.log"),
            signer: local_stack::signing::Signer::from_env(),
        })
    }

    async fn meter(&self) -> Result<Meter, BenchError> {
        let url = format!("{}/__meter", self.router.trim_end_matches('/'));
        let fail = |source| BenchError::Http {
            what: format!("the router's meter at {url}"),
            source,
        };
        let answer = self.http.get(&url).send().await.map_err(fail)?;
        answer
            .error_for_status()
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)
    }

    /// Turns the router's workflow floor on or off ([`crate::workflow`]).
    pub async fn floor(&self, on: bool) -> Result<(), BenchError> {
        let url = format!("{}/__floor", self.router.trim_end_matches('/'));
        let fail = |source| BenchError::Http {
            what: format!("PUT {url}"),
            source,
        };
        let switch = if on { "on" } else { "off" };
        let answer = self
            .http
            .put(&url)
            .body(switch)
            .send()
            .await
            .map_err(fail)?;
        answer.error_for_status().map_err(fail)?;
        Ok(())
    }

    /// A new-merchant order placed: its id.
    pub async fn place_new_merchant_order(&self, run: &str) -> Result<String, BenchError> {
        self.place(&SCENARIOS[0], run).await
    }

    /// Which of the executions named `names` have ended: how, and when.
    pub async fn executions_ended<'a>(
        &self,
        names: impl Iterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, (String, std::time::SystemTime)>, BenchError> {
        let wanted: std::collections::BTreeSet<&str> = names.map(String::as_str).collect();
        let mut pages = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.state_machine)
            .into_paginator()
            .items()
            .send();
        let mut ended = BTreeMap::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| BenchError::Stack(format!("ListExecutions: {e}")))?;
            let stopped = item
                .stop_date()
                .and_then(|d| std::time::SystemTime::try_from(*d).ok());
            if let (true, Some(stopped)) = (wanted.contains(item.name()), stopped) {
                ended.insert(
                    item.name().to_owned(),
                    (item.status().as_str().to_owned(), stopped),
                );
            }
        }
        Ok(ended)
    }

    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.function_log).map_or(0, |m| m.len())
    }

    /// Places one order of `scenario` and waits for it to end: its id.
    async fn place(&self, scenario: &Scenario, run: &str) -> Result<String, BenchError> {
        let merchant = format!("m-bench-{run}");
        if let Some((partner, operation)) = scenario.refused {
            let rule = RuleSpec {
                merchant_id: Some(merchant.clone()),
                ..RuleSpec::new(partner, operation, Fault::Refuse)
            };
            let added = self.partners.add_faults(&[rule]).await;
            added.map_err(|e| BenchError::Stack(format!("adding the refusal: {e}")))?;
        }
        let mut order = json!({
            "kind": scenario.kind,
            "merchant_id": merchant,
            "lines": [{"sku": "A920-PRO", "quantity": 2}],
            "delivery_address": {
                "name": "Bench Shop", "line1": "Teststraße 1",
                "city": "Berlin", "postal_code": "10119", "country": "DE",
            },
        });
        if scenario.kind == "replacement" {
            let serial = |n: u8| format!("SN-{}-{n}", run.to_uppercase());
            order["replace_serials"] = json!([serial(1), serial(2)]);
        }
        let url = format!("{}/orders", self.orders_api.trim_end_matches('/'));
        // The local orders API is one process: under a burst a request can time out or be
        // refused. It is sent again with the same key, which is what the key is for.
        let mut wait = Duration::from_millis(250);
        let (status, body) = loop {
            let request = self
                .http
                .post(&url)
                .header("Idempotency-Key", format!("bench-{run}"))
                .json(&order)
                .build()
                .map_err(|source| BenchError::Http {
                    what: format!("POST {url}"),
                    source,
                })?;
            let request = self.signed(request)?;
            let sent = async {
                let answer = self.http.execute(request).await?;
                let status = answer.status();
                Ok::<_, reqwest::Error>((status, answer.json::<Value>().await?))
            };
            match sent.await {
                Ok((status, body)) if !(status.is_server_error() || status.as_u16() == 429) => {
                    break (status, body)
                }
                failed if wait > PLACE_RETRY_LIMIT => {
                    let (status, body) = failed.map_err(|source| BenchError::Http {
                        what: format!("POST {url}"),
                        source,
                    })?;
                    break (status, body);
                }
                _ => tokio::time::sleep(wait).await,
            }
            wait *= 2;
        };
        match body["order_id"].as_str() {
            Some(id) if status.as_u16() == 202 => Ok(id.to_owned()),
            _ => Err(BenchError::Stack(format!(
                "POST /orders answered {status}: {body}"
            ))),
        }
    }

    /// Waits until the order's status is final and its execution has ended: the status.
    async fn settle(&self, id: &str) -> Result<String, BenchError> {
        let started = Instant::now();
        loop {
            let item = self.order_item(id).await?;
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let status = text("status").unwrap_or_default();
            let final_status =
                ["COMPLETED", "FAILED", "CANCELLED", "REJECTED"].contains(&status.as_str());
            if let (true, Some(arn)) = (final_status, text("execution_arn")) {
                if self.execution_status(&arn).await? != "RUNNING" {
                    return Ok(status);
                }
            }
            if started.elapsed() > ORDER_LIMIT {
                return Err(BenchError::Stack(format!(
                    "order {id} is still {status} after {} s",
                    ORDER_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn order_item(&self, id: &str) -> Result<BTreeMap<String, AttributeValue>, BenchError> {
        let key = [("pk", format!("ORDER#{id}")), ("sk", "ORDER".to_owned())];
        let request = self.dynamodb.get_item().table_name(&self.table);
        let request = key.into_iter().fold(request, |r, (name, value)| {
            r.key(name, AttributeValue::S(value))
        });
        let answer = request
            .send()
            .await
            .map_err(|e| BenchError::Stack(format!("reading order {id}: {e}")))?;
        Ok(answer.item.unwrap_or_default().into_iter().collect())
    }

    async fn execution_status(&self, arn: &str) -> Result<String, BenchError> {
        let answer = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await;
        let answer =
            answer.map_err(|e| BenchError::Stack(format!("DescribeExecution {arn}: {e}")))?;
        Ok(answer.status().as_str().to_owned())
    }

    /// The states the execution entered and the Task retries (each a billed transition).
    async fn transitions(&self, id: &str) -> Result<(u64, u64), BenchError> {
        let item = self.order_item(id).await?;
        let arn = item
            .get("execution_arn")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let mut pages = self
            .sfn
            .get_execution_history()
            .execution_arn(&arn)
            .into_paginator()
            .items()
            .send();
        let (mut entered, mut tasks_entered, mut scheduled) = (0, 0, 0);
        while let Some(event) = pages.next().await {
            let event =
                event.map_err(|e| BenchError::Stack(format!("GetExecutionHistory {arn}: {e}")))?;
            let kind = event.r#type().as_str();
            entered += u64::from(kind.ends_with("StateEntered"));
            tasks_entered += u64::from(kind == "TaskStateEntered");
            scheduled += u64::from(kind == "LambdaFunctionScheduled" || kind == "TaskScheduled");
        }
        Ok((entered, scheduled.saturating_sub(tasks_entered)))
    }

    /// The sizes of the order's item and of its largest step item, by DynamoDB's rule.
    async fn item_sizes(&self, id: &str) -> Result<ItemSizes, BenchError> {
        let answer = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("ORDER#{id}")))
            .send()
            .await
            .map_err(|e| BenchError::Stack(format!("reading the items of order {id}: {e}")))?;
        let mut sizes = ItemSizes::default();
        for item in answer.items() {
            let size = item
                .iter()
                .map(|(name, value)| name.len() as u64 + value_size(value))
                .sum::<u64>();
            match item
                .get("sk")
                .and_then(|sk| sk.as_s().ok())
                .map(String::as_str)
            {
                Some("ORDER") => sizes.order = size,
                _ => sizes.step = sizes.step.max(size),
            }
        }
        Ok(sizes)
    }
}

/// The sizes capacity units are taken at, in bytes: the order's item as it ended, and its
/// largest step item (every step item is taken at that size: an upper bound).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ItemSizes {
    order: u64,
    step: u64,
}

impl ItemSizes {
    /// The size an item of `kind` is taken at. Other items (the idempotency key, the
    /// courier event) hold a few short attributes: well under 1 KB, one unit each.
    fn of(&self, kind: &str) -> u64 {
        match kind {
            "order" => self.order,
            "step" => self.step,
            _ => 1,
        }
    }
}

/// An attribute value's size as DynamoDB counts it for capacity units.
fn value_size(value: &AttributeValue) -> u64 {
    let number = |n: &str| {
        let digits = n.trim_start_matches('-').replace('.', "");
        (digits.trim_matches('0').len() as u64).div_ceil(2) + 1
    };
    match value {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Ss(items) => items.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 1,
    }
}

/// Capacity units by AWS's rule: a write unit per started KB of the item (two in a
/// transaction), a read unit per started 4 KB (half for an eventually consistent read,
/// two in a transaction); each kind of item at its size ([`ItemSizes`]).
fn units_by_item(by_item: &BTreeMap<String, DynamoItems>, sizes: ItemSizes) -> (f64, f64) {
    by_item
        .iter()
        .map(|(kind, items)| units(items, sizes.of(kind)))
        .fold((0.0, 0.0), |(w, r), (dw, dr)| (w + dw, r + dr))
}

/// [`units_by_item`] for items all of `item_bytes`.
fn units(items: &DynamoItems, item_bytes: u64) -> (f64, f64) {
    let per_kb = item_bytes.max(1).div_ceil(1024) as f64;
    let per_4kb = item_bytes.max(1).div_ceil(4096) as f64;
    let writes = (items.written + 2 * items.written_in_transactions) as f64 * per_kb;
    let reads = (items.read_consistent as f64
        + 0.5 * items.read_eventually as f64
        + 2.0 * items.read_in_transactions as f64)
        * per_4kb;
    (writes, reads)
}

/// One order's counts: what the meter saw between `before` and `after`, and the rest.
fn counted(before: &Meter, after: &Meter) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    let (mut invocations, mut billed) = (0, 0);
    for (function, now) in &after.invocations {
        let was = before
            .invocations
            .get(function)
            .cloned()
            .unwrap_or_default();
        let count = now.count.saturating_sub(was.count);
        invocations += count;
        billed += now.billed_ms.saturating_sub(was.billed_ms);
        if count > 0 {
            counts.insert(format!("invocations {function}"), count as f64);
        }
    }
    counts.insert("lambda invocations".into(), invocations as f64);
    counts.insert("lambda billed ms".into(), billed as f64);
    for (operation, now) in &after.requests {
        let count = now.saturating_sub(before.requests.get(operation).copied().unwrap_or(0));
        if count > 0 {
            counts.insert(operation.clone(), count as f64);
        }
    }
    counts
}

fn delta(before: &DynamoItems, after: &DynamoItems) -> DynamoItems {
    DynamoItems {
        written: after.written.saturating_sub(before.written),
        written_in_transactions: after
            .written_in_transactions
            .saturating_sub(before.written_in_transactions),
        read_consistent: after.read_consistent.saturating_sub(before.read_consistent),
        read_eventually: after.read_eventually.saturating_sub(before.read_eventually),
        read_in_transactions: after
            .read_in_transactions
            .saturating_sub(before.read_in_transactions),
    }
}

/// Runs `runs` orders of every scenario, one at a time, after one order that warms every
/// function up (cold starts and their secret reads are the cold-start part's subject).
pub async fn measure(stack: &Stack, runs: usize) -> Result<Vec<Work>, BenchError> {
    let tag = format!("{:x}", run_tag());
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let id = stack
            .place(scenario, &format!("{tag}-warm-{index}"))
            .await?;
        stack.settle(&id).await?;
    }
    let progress = std::io::stderr().is_terminal();
    let mut measured = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let mut runs_counts: Vec<BTreeMap<String, f64>> = Vec::new();
        for run in 0..runs {
            if progress {
                eprint!(
                    "\r  work per order: {} {}/{runs}   ",
                    scenario.name,
                    run + 1
                );
            }
            let (before, log_before, started) =
                (stack.meter().await?, stack.log_bytes(), Instant::now());
            let id = stack
                .place(scenario, &format!("{tag}-{index}-{run}"))
                .await?;
            let status = stack.settle(&id).await?;
            let seconds = started.elapsed().as_secs_f64();
            let (after, log_after) = (stack.meter().await?, stack.log_bytes());
            if status != scenario.ends {
                return Err(BenchError::Stack(format!(
                    "order {id} ({}) ended {status}, not {}",
                    scenario.name, scenario.ends
                )));
            }
            let mut counts = counted(&before, &after);
            let (transitions, retries) = stack.transitions(&id).await?;
            let sizes = stack.item_sizes(&id).await?;
            let by_item = after
                .dynamodb_by_item
                .iter()
                .map(|(kind, now)| {
                    let then = before
                        .dynamodb_by_item
                        .get(kind)
                        .cloned()
                        .unwrap_or_default();
                    (kind.clone(), delta(&then, now))
                })
                .collect();
            let (wru, rru) = units_by_item(&by_item, sizes);
            counts.insert("transitions".into(), transitions as f64);
            counts.insert("task retries".into(), retries as f64);
            counts.insert("dynamodb WRU".into(), wru);
            counts.insert("dynamodb RRU".into(), rru);
            counts.insert("order item bytes".into(), sizes.order as f64);
            counts.insert("step item bytes".into(), sizes.step as f64);
            counts.insert(
                "log bytes".into(),
                log_after.saturating_sub(log_before) as f64,
            );
            counts.insert("seconds to final".into(), seconds);
            runs_counts.push(counts);
        }
        measured.push(Work {
            scenario: scenario.name.to_owned(),
            ends: scenario.ends.to_owned(),
            counts: summarise(&runs_counts),
        });
    }
    if progress {
        eprintln!();
    }
    Ok(measured)
}

/// What makes this run's merchants, keys and serials its own: the clock, in ms.
pub fn run_tag() -> u128 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis())
}

/// Per key, the summary of its values across runs (0 where a run did not have it).
fn summarise(runs: &[BTreeMap<String, f64>]) -> BTreeMap<String, Summary> {
    let keys: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<f64> = runs
                .iter()
                .map(|r| r.get(key).copied().unwrap_or(0.0))
                .collect();
            Summary::of(&values).map(|summary| (key.clone(), summary))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_sized_as_dynamodb_sizes_it() {
        let item: [(&str, AttributeValue); 4] = [
            ("pk", AttributeValue::S("ORDER#o-1".into())),
            ("version", AttributeValue::N("12".into())),
            ("done", AttributeValue::Bool(true)),
            (
                "lines",
                AttributeValue::L(vec![AttributeValue::S("ab".into())]),
            ),
        ];
        let sizes: Vec<u64> = item
            .iter()
            .map(|(name, value)| name.len() as u64 + value_size(value))
            .collect();
        // "pk" + 9 bytes; "version" + 2 (one digit pair + 1); "done" + 1; "lines" + 3 + 1 + 2.
        assert_eq!(sizes, [11, 9, 5, 11]);
    }

    #[test]
    fn units_follow_aws_rule_for_item_size_transactions_and_consistency() {
        let items = DynamoItems {
            written: 2,
            written_in_transactions: 3,
            read_consistent: 1,
            read_eventually: 2,
            read_in_transactions: 1,
        };
        assert_eq!(units(&items, 900), (8.0, 4.0));
        // A 1.5 KB item: two write units a write; still one read unit a read.
        assert_eq!(units(&items, 1536), (16.0, 4.0));
    }

    #[test]
    fn each_kind_of_item_is_priced_at_its_own_size() {
        let write = |n: u64| DynamoItems {
            written: n,
            ..DynamoItems::default()
        };
        let by_item = BTreeMap::from([
            ("order".to_owned(), write(2)),
            ("step".to_owned(), write(3)),
            ("other".to_owned(), write(1)),
        ]);
        let sizes = ItemSizes {
            order: 1500,
            step: 300,
        };
        // The order at 2 units a write, a step and the other item at 1.
        assert_eq!(units_by_item(&by_item, sizes), (2.0 * 2.0 + 3.0 + 1.0, 0.0));
    }

    #[test]
    fn an_orders_counts_are_what_the_meter_saw_between_the_two_readings() {
        let before = Meter {
            invocations: [(
                "take-payment".to_owned(),
                Invocations {
                    count: 3,
                    billed_ms: 90,
                },
            )]
            .into(),
            requests: [("dynamodb:GetItem".to_owned(), 5)].into(),
            dynamodb_by_item: BTreeMap::new(),
        };
        let mut after = before.clone();
        after.invocations.insert(
            "take-payment".into(),
            Invocations {
                count: 4,
                billed_ms: 121,
            },
        );
        after.requests.insert("dynamodb:GetItem".into(), 7);
        after.requests.insert("states:SendTaskSuccess".into(), 1);
        let counts = counted(&before, &after);
        assert_eq!(counts["lambda invocations"], 1.0);
        assert_eq!(counts["lambda billed ms"], 31.0);
        assert_eq!(counts["invocations take-payment"], 1.0);
        assert_eq!(counts["dynamodb:GetItem"], 2.0);
        assert_eq!(counts["states:SendTaskSuccess"], 1.0);
    }

    #[test]
    fn a_service_never_called_sums_to_a_plain_zero() {
        let work = Work {
            scenario: "new merchant".into(),
            ends: "COMPLETED".into(),
            counts: BTreeMap::new(),
        };
        assert_eq!(format!("{:.1}", work.sum_of("sqs:")), "0.0");
    }

    #[test]
    fn a_key_missing_from_a_run_counts_as_zero_in_its_summary() {
        let runs = [
            BTreeMap::from([
                ("transitions".to_owned(), 20.0),
                ("task retries".to_owned(), 1.0),
            ]),
            BTreeMap::from([("transitions".to_owned(), 20.0)]),
            BTreeMap::from([("transitions".to_owned(), 22.0)]),
        ];
        let summary = summarise(&runs);
        assert_eq!(summary["transitions"].median, 20.0);
        assert_eq!(
            (summary["task retries"].median, summary["task retries"].max),
            (0.0, 1.0)
        );
    }
}
