//! Cost per 1,000 orders at AWS list prices (`prices.yaml`), from the work each order
//! was counted doing, and what the memory size would change.

use crate::work::Work;
use crate::BenchError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The price file: each price with its unit, source and the day it was read.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Prices {
    pub region: String,
    pub prices: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Price {
    pub usd: f64,
    pub per: f64,
    pub unit: String,
    pub source: String,
    pub read_on: String,
}

impl Prices {
    pub fn load(path: &Path) -> Result<Prices, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        let prices: Prices = serde_yaml::from_str(&text)
            .map_err(|e| BenchError::Prices(format!("{}: {e}", path.display())))?;
        for name in NEEDED {
            prices.unit(name)?;
        }
        Ok(prices)
    }

    /// The price of one `unit` of `name`.
    fn unit(&self, name: &str) -> Result<f64, BenchError> {
        match self.prices.get(name) {
            Some(price) if price.per > 0.0 && price.usd >= 0.0 => Ok(price.usd / price.per),
            Some(_) => Err(BenchError::Prices(format!(
                "{name}: usd must be ≥ 0 and per > 0"
            ))),
            None => Err(BenchError::Prices(format!("no price named {name}"))),
        }
    }
}

const NEEDED: [&str; 9] = [
    "lambda_requests",
    "lambda_arm64_duration",
    "step_functions_standard_transitions",
    "dynamodb_on_demand_writes",
    "dynamodb_on_demand_reads",
    "sqs_standard_requests",
    "api_gateway_rest_requests",
    "secrets_manager_api_calls",
    "cloudwatch_logs_ingestion",
];

/// The functions API Gateway puts in front of (each of their invocations is one request).
const BEHIND_API_GATEWAY: [&str; 2] = ["orders-api", "courier-webhook"];

/// The chaos run's mix of order kinds (`chaos::load::Mix::default`), all completing.
const CHAOS_MIX: [(&str, f64); 3] = [
    ("new merchant", 0.5),
    ("additional devices", 0.3),
    ("replacement", 0.2),
];

/// USD per 1,000 orders of one scenario, by service.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cost {
    pub scenario: String,
    pub by_service: BTreeMap<String, f64>,
    pub total: f64,
}

impl Cost {
    /// Each service's share of the total, in percent.
    pub fn share(&self, service: &str) -> f64 {
        let usd = self.by_service.get(service).copied().unwrap_or(0.0);
        if self.total > 0.0 {
            100.0 * usd / self.total
        } else {
            0.0
        }
    }
}

pub const SERVICES: [&str; 7] = [
    "Lambda",
    "Step Functions",
    "DynamoDB",
    "API Gateway",
    "SQS",
    "Secrets Manager",
    "CloudWatch Logs",
];

/// What 1,000 orders like `work`'s cost with every function at `memory_mb`.
pub fn per_thousand(work: &Work, prices: &Prices, memory_mb: u64) -> Result<Cost, BenchError> {
    let gb_seconds = work.median("lambda billed ms") / 1000.0 * memory_mb as f64 / 1024.0;
    let api_requests: f64 = BEHIND_API_GATEWAY
        .iter()
        .map(|function| work.median(&format!("invocations {function}")))
        .sum();
    let per_order = [
        (
            "Lambda",
            work.median("lambda invocations") * prices.unit("lambda_requests")?
                + gb_seconds * prices.unit("lambda_arm64_duration")?,
        ),
        (
            "Step Functions",
            (work.median("transitions") + work.median("task retries"))
                * prices.unit("step_functions_standard_transitions")?,
        ),
        (
            "DynamoDB",
            work.median("dynamodb WRU") * prices.unit("dynamodb_on_demand_writes")?
                + work.median("dynamodb RRU") * prices.unit("dynamodb_on_demand_reads")?,
        ),
        (
            "API Gateway",
            api_requests * prices.unit("api_gateway_rest_requests")?,
        ),
        (
            "SQS",
            work.sum_of("sqs:") * prices.unit("sqs_standard_requests")?,
        ),
        (
            "Secrets Manager",
            work.sum_of("secretsmanager:") * prices.unit("secrets_manager_api_calls")?,
        ),
        (
            "CloudWatch Logs",
            work.median("log bytes") / f64::from(1u32 << 30)
                * prices.unit("cloudwatch_logs_ingestion")?,
        ),
    ];
    let by_service: BTreeMap<String, f64> = per_order
        .into_iter()
        .map(|(service, usd)| (service.to_owned(), usd * 1000.0))
        .collect();
    let total = by_service.values().sum();
    Ok(Cost {
        scenario: work.scenario.clone(),
        by_service,
        total,
    })
}

/// The chaos run's mix of kinds, from the costs of each kind.
pub fn chaos_mix(costs: &[Cost]) -> Option<Cost> {
    let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
    for (kind, share) in CHAOS_MIX {
        let cost = costs.iter().find(|c| c.scenario == kind)?;
        for (service, usd) in &cost.by_service {
            *by_service.entry(service.clone()).or_default() += share * usd;
        }
    }
    let total = by_service.values().sum();
    Some(Cost {
        scenario: "chaos mix (50/30/20)".into(),
        by_service,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn prices() -> Prices {
        let price = |usd: f64, per: f64| Price {
            usd,
            per,
            unit: "unit".into(),
            source: "test".into(),
            read_on: "2026-11-28".into(),
        };
        let prices = NEEDED.iter().map(|name| {
            let (usd, per) = match *name {
                "lambda_requests" => (0.20, 1e6),
                "lambda_arm64_duration" => (0.0000133334, 1.0),
                "step_functions_standard_transitions" => (0.025, 1000.0),
                "dynamodb_on_demand_writes" => (0.625, 1e6),
                "dynamodb_on_demand_reads" => (0.125, 1e6),
                "api_gateway_rest_requests" => (3.50, 1e6),
                _ => (0.0, 1.0),
            };
            (name.to_string(), price(usd, per))
        });
        Prices {
            region: "us-east-1".into(),
            prices: prices.collect(),
        }
    }

    fn work(scenario: &str, counts: &[(&str, f64)]) -> Work {
        let one = |v: f64| Summary {
            median: v,
            min: v,
            max: v,
            runs: 1,
        };
        Work {
            scenario: scenario.into(),
            ends: "COMPLETED".into(),
            counts: counts
                .iter()
                .map(|(k, v)| (k.to_string(), one(*v)))
                .collect(),
        }
    }

    #[test]
    fn each_service_is_priced_from_the_counted_work() -> Result<(), BenchError> {
        let order = work(
            "new merchant",
            &[
                ("lambda invocations", 10.0),
                ("lambda billed ms", 1024.0),
                ("transitions", 38.0),
                ("task retries", 2.0),
                ("dynamodb WRU", 40.0),
                ("dynamodb RRU", 8.0),
                ("invocations orders-api", 1.0),
                ("invocations courier-webhook", 1.0),
            ],
        );
        let cost = per_thousand(&order, &prices(), 128)?;
        let usd = |service: &str| cost.by_service[service];
        // 10 requests at $0.20/M, 1.024 s × 0.125 GB at $0.0000133334/GB-s; × 1,000 orders.
        assert!((usd("Lambda") - (10.0 * 0.2e-6 + 0.128 * 0.0000133334) * 1000.0).abs() < 1e-12);
        assert!((usd("Step Functions") - 40.0 * 0.025).abs() < 1e-12);
        assert!((usd("DynamoDB") - (40.0 * 0.625 + 8.0 * 0.125) / 1000.0).abs() < 1e-12);
        assert!((usd("API Gateway") - 2.0 * 3.5 / 1000.0).abs() < 1e-12);
        assert!((cost.total - cost.by_service.values().sum::<f64>()).abs() < 1e-12);
        assert!(cost.share("Step Functions") > 90.0, "{cost:?}");
        Ok(())
    }

    #[test]
    fn the_chaos_mix_weighs_each_kind_by_its_share_and_needs_all_three() -> Result<(), BenchError> {
        let costs: Vec<Cost> = ["new merchant", "additional devices", "replacement"]
            .iter()
            .zip([10.0, 20.0, 30.0])
            .map(|(kind, transitions)| {
                per_thousand(&work(kind, &[("transitions", transitions)]), &prices(), 128)
            })
            .collect::<Result<_, _>>()?;
        let mix = chaos_mix(&costs).ok_or(BenchError::Prices("no mix".into()))?;
        let expected = (0.5 * 10.0 + 0.3 * 20.0 + 0.2 * 30.0) * 0.025;
        assert!((mix.total - expected).abs() < 1e-12, "{mix:?}");
        assert_eq!(chaos_mix(&costs[..2]), None);
        Ok(())
    }

    #[test]
    fn the_projects_price_file_has_every_price_with_its_source() -> Result<(), BenchError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("prices.yaml");
        let prices = Prices::load(&path)?;
        for price in prices.prices.values() {
            assert!(
                price.source.starts_with("https://aws.amazon.com/"),
                "{price:?}"
            );
            assert_eq!(price.read_on.len(), "2026-11-28".len(), "{price:?}");
        }
        Ok(())
    }
}
