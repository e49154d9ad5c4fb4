//! The workflow against its floor, on the local stack: N new-merchant orders placed at
//! once, and the time from each order's request to its execution's end, first with the
//! real functions, then with the floor on (the invoke router answers every Task itself:
//! the same definition on the same engine with no function run), same N, same run.

use crate::stats::{percentile, Summary};
use crate::work::Stack;
use crate::BenchError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime};

/// Requests to the orders API open at once while a batch is placed.
const PLACING: usize = 16;

/// How long a batch may take to end before the run fails.
const BATCH_LIMIT: Duration = Duration::from_secs(900);

/// One batch: how long its orders took to end, and how they ended.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    /// Seconds from each order's request to its execution's end.
    pub seconds: Summary,
    pub p95_seconds: f64,
    /// Executions by how they ended (`SUCCEEDED`, `FAILED`, ...).
    pub ended: BTreeMap<String, usize>,
    /// Orders the API did not accept (none expected).
    pub refused: usize,
}

/// N orders at once with the functions and on the floor.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub orders: usize,
    pub ours: Batch,
    pub floor: Batch,
}

impl Comparison {
    pub fn p50_ratio(&self) -> Option<f64> {
        self.ours.seconds.ratio_to(&self.floor.seconds)
    }

    pub fn p95_ratio(&self) -> Option<f64> {
        (self.floor.p95_seconds > 0.0).then(|| self.ours.p95_seconds / self.floor.p95_seconds)
    }
}

/// Every batch size, ours then the floor's; the floor is off again afterwards, even when
/// a batch failed.
pub async fn compare(stack: &Stack, sizes: &[usize]) -> Result<Vec<Comparison>, BenchError> {
    // One order first, so that no batch pays for a function's first invocation.
    batch(stack, 1, false).await?;
    let mut compared = Vec::new();
    for &orders in sizes {
        let ours = batch(stack, orders, false).await;
        let floor = match ours {
            Ok(_) => batch(stack, orders, true).await,
            Err(_) => Ok(empty()),
        };
        stack.floor(false).await?;
        compared.push(Comparison {
            orders,
            ours: ours?,
            floor: floor?,
        });
    }
    Ok(compared)
}

fn empty() -> Batch {
    Batch {
        seconds: Summary {
            median: 0.0,
            min: 0.0,
            max: 0.0,
            runs: 0,
        },
        p95_seconds: 0.0,
        ended: BTreeMap::new(),
        refused: 0,
    }
}

async fn batch(stack: &Stack, orders: usize, floor: bool) -> Result<Batch, BenchError> {
    stack.floor(floor).await?;
    let label = if floor { "floor" } else { "functions" };
    let progress = std::io::stderr().is_terminal();
    if progress {
        eprint!("\r  workflow: {orders} orders at once, {label} ...           ");
    }
    let tag = format!("{:x}-{orders}-{label}", crate::work::run_tag());
    // All at once, but at most PLACING requests open at the API's one local process; each
    // order is timed from its own request.
    let gate = tokio::sync::Semaphore::new(PLACING);
    let placing = (0..orders).map(|index| {
        let (run, gate) = (format!("{tag}-{index}"), &gate);
        async move {
            let _open = gate.acquire().await;
            let sent = SystemTime::now();
            (sent, stack.place_new_merchant_order(&run).await)
        }
    });
    let placed = futures_util::future::join_all(placing).await;
    let mut sent_at = BTreeMap::new();
    let mut refused = 0;
    for (sent, result) in placed {
        match result {
            Ok(id) => {
                sent_at.insert(id, sent);
            }
            Err(error) => {
                refused += 1;
                eprintln!("\n  an order of the batch was not accepted: {error}");
            }
        }
    }
    let started = Instant::now();
    let ended = loop {
        let ended = stack.executions_ended(sent_at.keys()).await?;
        if ended.len() == sent_at.len() {
            break ended;
        }
        if started.elapsed() > BATCH_LIMIT {
            return Err(BenchError::Stack(format!(
                "{} of {orders} executions ({label}) still running after {} s",
                sent_at.len() - ended.len(),
                BATCH_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut seconds = Vec::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (id, (status, stopped)) in &ended {
        *by_status.entry(status.clone()).or_default() += 1;
        if let Some(sent) = sent_at.get(id) {
            let took = stopped.duration_since(*sent).unwrap_or_default();
            seconds.push(took.as_secs_f64());
        }
    }
    Ok(Batch {
        seconds: Summary::of(&seconds).unwrap_or(empty().seconds),
        p95_seconds: percentile(&seconds, 0.95).unwrap_or(0.0),
        ended: by_status,
        refused,
    })
}
