//! The stream poller: Lambda's event source mapping for DynamoDB streams, on the moto
//! stack. moto has DynamoDB Streams but no event source mapping that can run our
//! functions (its Lambda runs code in Docker); MiniStack has its own, so this runs on the
//! moto stack only. For every enabled `Type: DynamoDB` event of a function in
//! template.yaml ([`StreamEventSpec`], read by [`crate::template`], the stack's one reader
//! of the template), it reads the table's stream and invokes the function with its
//! records, the way Lambda does.
//!
//! **Where it runs, and why.** A process of its own, `local-stack poll-streams`, that
//! `up` starts once the stack is up (the table created, every function warmed up) and
//! `down` stops by its PID like every other process of the stack; it listens on nothing.
//! Not a task of the invoke router: the router starts before the table exists and knows
//! nothing of the template, so it would need the mappings handed to it in a second form,
//! and a poller inside it would reach moto and cargo lambda watch behind its own front
//! door. As a client of `AWS_ENDPOINT_URL` (the router) the poller is treated like every
//! other client: its stream reads are routed to the moto process that holds the table
//! and counted apart (`dynamodbstreams:*` in `GET /__meter`), and its invocations take
//! the router's Lambda path, counted in the meter and held to the function's concurrency
//! as Lambda's own invocations are.
//!
//! **What it does**, as Lambda's event source mapping for DynamoDB does:
//! - It reads the table's latest stream (`LatestStreamArn`). The shards open when it
//!   starts are read from `StartingPosition`; shards that appear later from their start,
//!   each once its parent shard has been read to its end. A stream is listed again every
//!   10 s for new shards.
//! - Each shard strictly in order, one batch in flight at a time: up to `BatchSize`
//!   records that pass `FilterCriteria` ([`filter`]), in stream order. A record that
//!   passes no filter is skipped for good, as AWS skips it: never delivered, never
//!   retried. A shard with nothing new is read again after 250 ms (Lambda reads a
//!   DynamoDB stream's shards four times a second).
//! - The function gets Lambda's DynamoDB event ([`batch::event`]). A function error or
//!   timeout retries the whole batch; with `ReportBatchItemFailures`, a
//!   `batchItemFailures` answer retries from the earliest failed record, the records
//!   before it done ([`batch::outcome`]). Retries wait 0.5 s, doubling up to 30 s. With
//!   `MaximumRetryAttempts` -1 (the default) a batch is retried until the function
//!   succeeds; with N, a batch whose first record failed N + 1 times is discarded (logged
//!   as an error; there is no on-failure destination locally). A throttled invocation
//!   (429) or a failure of Lambda itself is retried the same way but is not counted as
//!   an attempt.
//! - One JSON log line per batch delivered (info), retried (warn) or discarded (error),
//!   with the event source, function, shard, record count and sequence numbers.
//!
//! **Where moto's streams differ from AWS's**, and what the stack does about it:
//! `infra/moto/server.py` drops the records of a cancelled transaction (moto leaves those
//! of the items written before the failing one, and of their undoing), folds a request's
//! records into one per item (moto writes two INSERTs for an UpdateItem on a new key),
//! and expires shard iterators 15 minutes after they are handed out (moto keeps every
//! one for good); [`batch::Record::from_stream`] sets `eventVersion` 1.1 and the stream's
//! region (moto says 1.0 and us-east-1) and gives `ApproximateCreationDateTime` in whole
//! seconds (moto has milliseconds). Left as moto has them: one shard per stream that
//! never closes or splits; records kept for good (AWS trims them after 24 hours);
//! `SizeBytes` overestimated (the record's JSON length); a write that changes nothing
//! still writes a MODIFY record (AWS writes none).

pub mod aws;
pub mod batch;
pub mod filter;
#[cfg(test)]
mod moto_tests;

use crate::template::StreamEventSpec;
use aws::{Aws, AwsError, Invoked, Page};
use batch::{Outcome, Record};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long a shard with nothing new waits before it is read again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often a stream is listed for new shards.
const LISTING_INTERVAL: Duration = Duration::from_secs(10);
/// The wait before the first retry of a batch; it doubles with each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// What the poller logs once it has found every stream: `up` waits for this line.
pub const READY: &str = "stream event sources polling";

/// A stream to poll could not be found when polling started.
#[derive(Debug, thiserror::Error)]
#[error("{event}: cannot find the stream of the table {table}: {error}")]
pub struct NoStream {
    pub event: String,
    pub table: String,
    pub error: AwsError,
}

/// Polls the stream of every source and delivers its records until the process is
/// stopped. Returns early only when a source's table has no stream (then nothing is
/// polled).
pub async fn run(aws: Aws, sources: Vec<StreamEventSpec>) -> Result<(), NoStream> {
    let mut streams = Vec::new();
    for source in sources {
        match aws.latest_stream_arn(&source.table).await {
            Ok(arn) => streams.push((Arc::new(source), arn)),
            Err(error) => {
                return Err(NoStream {
                    event: source.name,
                    table: source.table,
                    error,
                })
            }
        }
    }
    tracing::info!(sources = streams.len(), "{READY}");
    let mut polling = JoinSet::new();
    for (source, stream) in streams {
        polling.spawn(poll_stream(aws.clone(), source, stream));
    }
    while polling.join_next().await.is_some() {}
    Ok(())
}

/// Reads every shard of `stream` for `source`, a shard only after its parent, and lists
/// the stream again for new shards. Never returns.
async fn poll_stream(aws: Aws, source: Arc<StreamEventSpec>, stream: String) {
    tracing::info!(
        source = source.name,
        function = source.function,
        stream,
        "polling stream"
    );
    let mut readers = JoinSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut first_listing = true;
    loop {
        match aws.shards(&stream).await {
            Ok(shards) => {
                let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
                for shard in &shards {
                    let parent_unread = shard
                        .parent
                        .as_deref()
                        .is_some_and(|p| listed.contains(p) && !finished.contains(p));
                    if parent_unread || started.contains(&shard.id) {
                        continue;
                    }
                    let start = if first_listing {
                        source.starting_position.iterator_type()
                    } else {
                        "TRIM_HORIZON"
                    };
                    let reader = ShardReader {
                        aws: aws.clone(),
                        source: source.clone(),
                        stream: stream.clone(),
                        shard: shard.id.clone(),
                    };
                    readers.spawn(reader.run(start));
                    started.insert(shard.id.clone());
                }
                first_listing = false;
            }
            Err(error) => {
                tracing::warn!(source = source.name, stream, %error, "stream not listed");
            }
        }
        tokio::select! {
            Some(Ok(shard)) = readers.join_next() => {
                finished.insert(shard);
            }
            () = tokio::time::sleep(LISTING_INTERVAL) => {}
        }
    }
}

/// One shard of one source's stream, read and delivered in order.
struct ShardReader {
    aws: Aws,
    source: Arc<StreamEventSpec>,
    stream: String,
    shard: String,
}

/// How the current batch has fared.
#[derive(Debug, Default)]
struct Retries {
    /// Failed invocations in a row, of any kind: the next retry's delay.
    failures: u32,
    /// Invocations in which the function failed the batch's first record (function
    /// errors, timeouts, batch item failures): what `MaximumRetryAttempts` counts.
    attempts: u32,
}

impl ShardReader {
    /// Reads the shard from `start` (a `ShardIteratorType`) and delivers its records until
    /// the shard is closed and read to its end (never, on moto). Returns the shard's id.
    async fn run(self, start: &'static str) -> String {
        let mut pending: VecDeque<Record> = VecDeque::new();
        let mut iterator: Option<String> = None;
        // The sequence number of the last record read: where a new iterator starts after.
        let mut read_to: Option<String> = None;
        let mut closed = false;
        let mut retries = Retries::default();
        loop {
            if !pending.is_empty() {
                self.deliver(&mut pending, &mut retries).await;
                continue;
            }
            if closed {
                tracing::info!(
                    source = self.source.name,
                    shard = self.shard,
                    "shard read to its end"
                );
                return self.shard;
            }
            match self
                .next_page(&mut iterator, read_to.as_deref(), start)
                .await
            {
                Ok(Page { records, next }) => {
                    let read = records.len();
                    for record in records {
                        self.take(record, &mut pending, &mut read_to);
                    }
                    closed = next.is_none();
                    iterator = next;
                    if read == 0 && !closed {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                Err(error) if error.is("ExpiredIteratorException") => {
                    tracing::info!(
                        source = self.source.name,
                        shard = self.shard,
                        after = read_to.as_deref(),
                        "shard iterator expired; reading on with a new one"
                    );
                }
                Err(error) => {
                    tracing::warn!(source = self.source.name, shard = self.shard, %error, "stream read failed; reading again");
                    tokio::time::sleep(POLL_INTERVAL * 4).await;
                }
            }
        }
    }

    /// The next page of records: from `iterator`, or from a new iterator that starts
    /// after `read_to` (or at `start` when nothing was read yet). An iterator that failed
    /// for another reason than its expiry is kept for the next try.
    async fn next_page(
        &self,
        iterator: &mut Option<String>,
        read_to: Option<&str>,
        start: &str,
    ) -> Result<Page, AwsError> {
        let current = match iterator.take() {
            Some(current) => current,
            None => {
                let (kind, after) = match read_to {
                    Some(sequence) => ("AFTER_SEQUENCE_NUMBER", Some(sequence)),
                    None => (start, None),
                };
                (self.aws)
                    .shard_iterator(&self.stream, &self.shard, kind, after)
                    .await?
            }
        };
        let page = self.aws.records(&current).await;
        if page
            .as_ref()
            .is_err_and(|e| !e.is("ExpiredIteratorException"))
        {
            *iterator = Some(current);
        }
        page
    }

    /// A record read from the stream: queued for delivery if it passes the filters,
    /// otherwise skipped for good.
    fn take(
        &self,
        record: serde_json::Value,
        pending: &mut VecDeque<Record>,
        read_to: &mut Option<String>,
    ) {
        match Record::from_stream(record, &self.stream) {
            Ok(record) => {
                *read_to = Some(record.sequence.clone());
                if filter::keeps(&self.source.filters, &record.json) {
                    pending.push_back(record);
                } else {
                    tracing::debug!(
                        source = self.source.name,
                        sequence = record.sequence,
                        "stream record filtered out"
                    );
                }
            }
            Err(error) => {
                tracing::error!(
                    source = self.source.name,
                    shard = self.shard,
                    error,
                    "stream record unreadable; skipped"
                );
            }
        }
    }

    /// Invokes the function with the first batch of `pending`, and removes what is done:
    /// everything, the records before the earliest failed one, or (after the last retry
    /// `MaximumRetryAttempts` allows) the batch. A retry waits before it returns.
    async fn deliver(&self, pending: &mut VecDeque<Record>, retries: &mut Retries) {
        let source = &self.source;
        let batch: Vec<Record> = pending.iter().take(source.batch_size).cloned().collect();
        let (first, last) = match (batch.first(), batch.last()) {
            (Some(first), Some(last)) => (first.sequence.clone(), last.sequence.clone()),
            _ => return,
        };
        let timeout = Duration::from_secs(source.function_timeout_seconds);
        let started = Instant::now();
        let invoked = (self.aws)
            .invoke(&source.function, &batch::event(&batch), timeout)
            .await;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // (records done, why the rest is retried, whether the function failed them)
        let (done, reason, function_failed) = match invoked {
            Invoked::Answered(answer) => {
                match batch::outcome(&batch, &answer, source.report_batch_item_failures) {
                    Outcome::Delivered => {
                        pending.drain(..batch.len());
                        *retries = Retries::default();
                        tracing::info!(
                            source = source.name,
                            function = source.function,
                            shard = self.shard,
                            records = batch.len(),
                            first_sequence = first,
                            last_sequence = last,
                            millis,
                            "stream batch delivered"
                        );
                        return;
                    }
                    Outcome::RetryFrom { index, reason } => (index, reason, true),
                }
            }
            Invoked::FunctionError(error_type) => {
                (0, format!("the function failed: {error_type}"), true)
            }
            Invoked::TimedOut => (
                0,
                format!(
                    "the function did not answer within its timeout ({} s)",
                    source.function_timeout_seconds
                ),
                true,
            ),
            Invoked::Throttled => (0, "Lambda throttled the invocation".to_owned(), false),
            Invoked::ServiceError(error) => (0, format!("Lambda failed: {error}"), false),
        };
        pending.drain(..done);
        if done > 0 {
            *retries = Retries::default();
        }
        retries.failures += 1;
        if function_failed {
            retries.attempts += 1;
        }
        let retry_from = pending
            .front()
            .map(|r| r.sequence.clone())
            .unwrap_or_default();
        if let Some(allowed) = source.maximum_retry_attempts {
            if retries.attempts > allowed {
                let discarded = pending.len().min(source.batch_size);
                let through = discarded.checked_sub(1).and_then(|i| pending.get(i));
                let through = through.map(|r| r.sequence.clone());
                pending.drain(..discarded);
                *retries = Retries::default();
                tracing::error!(
                    source = source.name,
                    function = source.function,
                    shard = self.shard,
                    records = discarded,
                    first_sequence = retry_from,
                    last_sequence = through,
                    maximum_retry_attempts = allowed,
                    reason,
                    "stream batch discarded after its last retry"
                );
                return;
            }
        }
        let shift = retries.failures.saturating_sub(1).min(16);
        let delay = (FIRST_RETRY_DELAY * 2u32.pow(shift)).min(MAX_RETRY_DELAY);
        tracing::warn!(
            source = source.name,
            function = source.function,
            shard = self.shard,
            records = batch.len(),
            first_sequence = first,
            last_sequence = last,
            delivered = done,
            retry_from,
            attempt = retries.attempts,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            millis,
            reason,
            "stream batch retried"
        );
        tokio::time::sleep(delay).await;
    }
}
