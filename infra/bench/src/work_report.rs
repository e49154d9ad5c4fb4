//! The work-per-order and cost part of the report: what each order did, what 1,000 of
//! them cost by service, and the memory size table.

use crate::cost::{self, Cost, Prices};
use crate::report::text_table;
use crate::stats::Summary;
use crate::work::Work;
use crate::BenchError;
use serde::Serialize;

/// The memory sizes the table compares (MB).
const MEMORY_SIZES: [u64; 3] = [128, 256, 512];
/// The memory size at which Lambda gives a function one full vCPU (MB).
const FULL_VCPU_MB: f64 = 1769.0;

/// The rows of the work table: a label and the key of its count.
const ROWS: [(&str, &str); 13] = [
    ("state transitions", "transitions"),
    ("Task retries", "task retries"),
    ("Lambda invocations", "lambda invocations"),
    ("Lambda billed ms (local)", "lambda billed ms"),
    ("DynamoDB requests", "dynamodb:"),
    ("DynamoDB write units", "dynamodb WRU"),
    ("DynamoDB read units", "dynamodb RRU"),
    ("order item (bytes)", "order item bytes"),
    ("largest step item (bytes)", "step item bytes"),
    ("Step Functions requests", "states:"),
    ("SQS requests", "sqs:"),
    ("log bytes", "log bytes"),
    ("seconds to final (local)", "seconds to final"),
];

#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub memory_mb: u64,
    /// USD per 1,000 new-merchant orders, every function at this size.
    pub usd_per_thousand: f64,
    /// The slowest function's init at this size, if the cold start was measured.
    pub init_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkReport {
    /// Orders of each scenario.
    pub runs: usize,
    pub work: Vec<Work>,
    #[serde(flatten)]
    pub cost: CostReport,
}

/// What the work costs: per scenario and the chaos mix at the template's memory size,
/// and the new-merchant order at each size of the table.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub memory_mb: u64,
    pub prices: Prices,
    pub costs: Vec<Cost>,
    pub memory: Vec<MemoryRow>,
}

impl WorkReport {
    /// `slowest_init_ms`: the slowest function's median init measured on this machine's
    /// full core, if the cold start was measured.
    pub fn new(
        runs: usize,
        memory_mb: u64,
        prices: Prices,
        work: Vec<Work>,
        slowest_init_ms: Option<f64>,
    ) -> Result<WorkReport, BenchError> {
        let mut costs = work
            .iter()
            .map(|w| cost::per_thousand(w, &prices, memory_mb))
            .collect::<Result<Vec<_>, _>>()?;
        costs.extend(cost::chaos_mix(&costs));
        let new_merchant = work.first().ok_or(BenchError::Missing {
            what: "the new-merchant order's work".into(),
        })?;
        let memory = MEMORY_SIZES
            .iter()
            .map(|&size| {
                Ok(MemoryRow {
                    memory_mb: size,
                    usd_per_thousand: cost::per_thousand(new_merchant, &prices, size)?.total,
                    init_ms: slowest_init_ms.map(|ms| ms * (FULL_VCPU_MB / size as f64).max(1.0)),
                })
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        let cost = CostReport {
            memory_mb,
            prices,
            costs,
            memory,
        };
        Ok(WorkReport { runs, work, cost })
    }

    fn cell(work: &Work, key: &str) -> String {
        let summary = match key.strip_suffix(':') {
            // A service's requests: the sum of its operations' medians.
            Some(_) => {
                let total = work.sum_of(key);
                Summary {
                    median: total,
                    min: total,
                    max: total,
                    runs: 1,
                }
            }
            None => work.counts.get(key).cloned().unwrap_or(Summary {
                median: 0.0,
                min: 0.0,
                max: 0.0,
                runs: 1,
            }),
        };
        let decimals = if key == "seconds to final" { 1 } else { 0 };
        if summary.min == summary.max {
            format!("{:.*}", decimals, summary.median)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                decimals, summary.median, decimals, summary.min, decimals, summary.max
            )
        }
    }

    fn work_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["per order".to_owned()];
        header.extend(
            self.work
                .iter()
                .map(|w| format!("{} → {}", w.scenario, w.ends)),
        );
        let rows = ROWS
            .iter()
            .map(|(label, key)| {
                let mut row = vec![(*label).to_owned()];
                row.extend(self.work.iter().map(|w| Self::cell(w, key)));
                row
            })
            .collect();
        (header, rows)
    }

    fn cost_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec![format!("USD per 1,000 orders ({} MB)", self.cost.memory_mb)];
        header.extend(self.cost.costs.iter().map(|c| c.scenario.clone()));
        let mut rows: Vec<Vec<String>> = cost::SERVICES
            .iter()
            .map(|service| {
                let mut row = vec![(*service).to_owned()];
                row.extend(self.cost.costs.iter().map(|c| {
                    format!(
                        "{:.4} ({:.0} %)",
                        c.by_service.get(*service).copied().unwrap_or(0.0),
                        c.share(service)
                    )
                }));
                row
            })
            .collect();
        let mut total = vec!["total".to_owned()];
        total.extend(self.cost.costs.iter().map(|c| format!("{:.4}", c.total)));
        rows.push(total);
        (header, rows)
    }

    fn memory_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = vec![
            "memory".to_owned(),
            "USD per 1,000 new-merchant orders".to_owned(),
            "slowest init, estimated".to_owned(),
        ];
        let rows = self
            .cost
            .memory
            .iter()
            .map(|row| {
                vec![
                    format!("{} MB", row.memory_mb),
                    format!("{:.4}", row.usd_per_thousand),
                    row.init_ms
                        .map_or_else(|| "–".into(), |ms| format!("{ms:.0} ms")),
                ]
            })
            .collect();
        (header, rows)
    }

    fn tables(&self) -> [(Vec<String>, Vec<Vec<String>>); 3] {
        [self.work_rows(), self.cost_rows(), self.memory_rows()]
    }

    pub fn table(&self) -> String {
        let tables = self.tables().map(|(header, rows)| text_table(header, rows));
        tables.join("\n")
    }

    pub fn markdown(&self) -> String {
        let mut text = String::from("### Work per order, counted on the local stack\n\n");
        text.push_str(&format!(
            "{} orders of each scenario, one at a time, after one warm-up order each; medians (min–max where runs differed).\n\n",
            self.runs
        ));
        let [work, costs, memory] = self.tables();
        push_table(&mut text, work);
        text.push_str(&format!(
            "\n### Cost per 1,000 orders\n\nAWS list prices, {} (`infra/bench/prices.yaml`: each price with its source page and the day it was read), arm64 at the template's {} MB.\n\n",
            self.cost.prices.region, self.cost.memory_mb
        ));
        push_table(&mut text, costs);
        text.push_str(&format!(
            "\n### Memory size\n\nDuration assumed the same at every size (the functions wait on DynamoDB and the partners); init assumed CPU-bound, scaled from this machine's full core by {FULL_VCPU_MB:.0} MB ÷ size (Lambda gives one vCPU at {FULL_VCPU_MB:.0} MB).\n\n"
        ));
        push_table(&mut text, memory);
        text
    }
}

fn push_table(text: &mut String, (header, rows): (Vec<String>, Vec<Vec<String>>)) {
    text.push_str(&format!("| {} |\n", header.join(" | ")));
    text.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for row in rows {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
}

/// The workflow against its floor, per batch size.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowReport {
    pub batches: Vec<crate::workflow::Comparison>,
}

impl WorkflowReport {
    const HEADER: [&'static str; 7] = [
        "orders at once",
        "functions: p50 s (min–max)",
        "p95 s",
        "floor: p50 s (min–max)",
        "p95 s",
        "p50 × floor",
        "p95 × floor",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        let times = |r: Option<f64>| r.map_or_else(|| "–".into(), |r| format!("{r:.2}×"));
        let spread = |s: &Summary| format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max);
        self.batches
            .iter()
            .map(|c| {
                let ended = |b: &crate::workflow::Batch| {
                    let failed: usize = b
                        .ended
                        .iter()
                        .filter(|(s, _)| *s != "SUCCEEDED")
                        .map(|(_, n)| n)
                        .sum();
                    match (failed, b.refused) {
                        (0, 0) => String::new(),
                        (failed, refused) => {
                            format!(" [{failed} not succeeded, {refused} refused]")
                        }
                    }
                };
                vec![
                    c.orders.to_string(),
                    format!("{}{}", spread(&c.ours.seconds), ended(&c.ours)),
                    format!("{:.1}", c.ours.p95_seconds),
                    format!("{}{}", spread(&c.floor.seconds), ended(&c.floor)),
                    format!("{:.1}", c.floor.p95_seconds),
                    times(c.p50_ratio()),
                    times(c.p95_ratio()),
                ]
            })
            .collect()
    }

    /// The latency and throughput targets, met or missed (those whose batch ran).
    pub fn verdicts(&self) -> Vec<String> {
        let say =
            |met: bool, what: String| format!("{} {what}", if met { "met:" } else { "missed:" });
        let delay = partner_simulator::Config::default()
            .delivery_delay
            .as_secs_f64();
        let mut verdicts = Vec::new();
        for c in &self.batches {
            let (ours, floor) = (c.ours.seconds.median, c.floor.seconds.median);
            match c.orders {
                1 => verdicts.push(say(
                    ours <= 2.0 * floor + delay,
                    format!("one order within 2× the floor plus the courier's {delay:.1} s delay ({ours:.1} s; limit {:.1} s)", 2.0 * floor + delay),
                )),
                50 => verdicts.push(say(
                    c.p50_ratio().is_some_and(|r| r <= 1.5),
                    format!("50 at once: p50 within 1.5× the floor ({})", c.p50_ratio().map_or("–".into(), |r| format!("{r:.2}×"))),
                )),
                200 => {
                    let succeeded = c.ours.ended.get("SUCCEEDED").copied().unwrap_or(0);
                    verdicts.push(say(
                        succeeded == c.orders && c.ours.refused == 0,
                        format!("200 at once: all final, none lost ({succeeded} of 200 completed)"),
                    ));
                }
                _ => {}
            }
        }
        verdicts
    }

    pub fn table(&self) -> String {
        text_table(Self::HEADER, self.rows())
    }

    pub fn markdown(&self) -> String {
        let mut text = String::from("### The workflow against its floor\n\nNew-merchant orders placed at once through the orders API; each order's time from its request to its execution's end. The floor: the same definition on the same engine, the invoke router answering every Task at once (no function runs, the callback task completed at once), same batch size, same run.\n\n");
        let header = Self::HEADER.iter().map(|h| h.to_string()).collect();
        push_table(&mut text, (header, self.rows()));
        text.push('\n');
        for verdict in self.verdicts() {
            text.push_str(&format!("- {verdict}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Batch, Comparison};
    use std::collections::BTreeMap;

    fn batch(p50: f64, succeeded: usize) -> Batch {
        Batch {
            seconds: Summary {
                median: p50,
                min: p50,
                max: p50,
                runs: succeeded,
            },
            p95_seconds: p50,
            ended: BTreeMap::from([("SUCCEEDED".to_owned(), succeeded)]),
            refused: 0,
        }
    }

    #[test]
    fn each_batch_size_is_judged_by_its_own_target() {
        let report = WorkflowReport {
            batches: vec![
                Comparison {
                    orders: 1,
                    ours: batch(1.8, 1),
                    floor: batch(0.2, 1),
                },
                Comparison {
                    orders: 10,
                    ours: batch(9.0, 10),
                    floor: batch(1.0, 10),
                },
                Comparison {
                    orders: 50,
                    ours: batch(14.0, 50),
                    floor: batch(10.0, 50),
                },
                Comparison {
                    orders: 200,
                    ours: batch(60.0, 199),
                    floor: batch(30.0, 200),
                },
            ],
        };
        let verdicts = report.verdicts();
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        // 1.8 s against a limit of 2 × 0.2 + 1.0 (the courier's delay) = 1.4 s.
        assert!(verdicts[0].starts_with("missed: one order"), "{verdicts:?}");
        assert!(verdicts[1].starts_with("met: 50 at once"), "{verdicts:?}");
        assert!(
            verdicts[2].starts_with("missed: 200 at once"),
            "{verdicts:?}"
        );
        assert!(verdicts[2].contains("199 of 200"), "{verdicts:?}");
    }
}
