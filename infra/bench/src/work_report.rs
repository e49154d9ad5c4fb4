//! The work-per-order and cost part of the report: what each order did, what 1,000 of
//! them cost by service, and the memory size table.

use crate::cost::{self, Cost, Prices};
use crate::stats::Summary;
use crate::work::Work;
use crate::BenchError;
use comfy_table::Table;
use serde::Serialize;

/// The memory sizes the table compares (MB).
const MEMORY_SIZES: [u64; 3] = [128, 256, 512];
/// The memory size at which Lambda gives a function one full vCPU (MB).
const FULL_VCPU_MB: f64 = 1769.0;

/// The rows of the work table: a label and the key of its count.
const ROWS: [(&str, &str); 12] = [
    ("state transitions", "transitions"),
    ("Task retries", "task retries"),
    ("Lambda invocations", "lambda invocations"),
    ("Lambda billed ms (local)", "lambda billed ms"),
    ("DynamoDB requests", "dynamodb:"),
    ("DynamoDB write units", "dynamodb WRU"),
    ("DynamoDB read units", "dynamodb RRU"),
    ("largest item (bytes)", "largest item bytes"),
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
    pub runs: usize,
    pub memory_mb: u64,
    pub prices: Prices,
    pub work: Vec<Work>,
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
        Ok(WorkReport {
            runs,
            memory_mb,
            prices,
            work,
            costs,
            memory,
        })
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
        let mut header = vec![format!("USD per 1,000 orders ({} MB)", self.memory_mb)];
        header.extend(self.costs.iter().map(|c| c.scenario.clone()));
        let mut rows: Vec<Vec<String>> = cost::SERVICES
            .iter()
            .map(|service| {
                let mut row = vec![(*service).to_owned()];
                row.extend(self.costs.iter().map(|c| {
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
        total.extend(self.costs.iter().map(|c| format!("{:.4}", c.total)));
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
        let tables = self.tables().map(|(header, rows)| {
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(header);
            for row in rows {
                table.add_row(row);
            }
            table.to_string()
        });
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
            self.prices.region, self.memory_mb
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
