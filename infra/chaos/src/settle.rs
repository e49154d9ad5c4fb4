//! After the load: waiting until no execution runs, the reconciler, and one replay of the
//! workflow dead-letter queue, the way an operator would.

use crate::env::Clients;
use crate::ChaosError;
use order_core::dead_letters::{DeadLetter, DeadLetterBody};
use order_core::recovery::{self, Action, ReconcileOptions, RecoveryError};
use order_core::OrderId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The names of the executions of the order workflow that are RUNNING (every page).
pub async fn running_executions(clients: &Clients) -> Result<Vec<String>, ChaosError> {
    let workflow = &clients.workflow;
    let mut names = Vec::new();
    let mut pages = workflow
        .client
        .list_executions()
        // Every execution, whichever version or alias it was started through.
        .state_machine_arn(workflow.state_machine())
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .max_results(1000)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let execution = item.map_err(|e| ChaosError::Workflow {
            operation: "ListExecutions",
            message: aws_sdk_sfn::error::DisplayErrorContext(e).to_string(),
        })?;
        names.push(execution.name);
    }
    Ok(names)
}

/// How waiting for quiet went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quiet {
    pub reached: bool,
    pub waited: Duration,
    /// What still ran when the deadline passed (empty when quiet was reached).
    pub still_running: Vec<String>,
    /// Why waiting stopped before the deadline without quiet: the stack stopped working.
    pub stalled: Option<String>,
}

/// With no execution ending for this long, the run checks that the stack still answers.
const STALL: Duration = Duration::from_secs(300);

/// Whether the orders API still answers (a GET of an order that does not exist: 404),
/// within 15 s.
pub async fn stack_answers(clients: &Clients) -> Result<(), String> {
    let url = format!(
        "{}/orders/ord-00000000000000000000000000000000",
        clients.env.orders_api_url
    );
    let mut request = clients
        .http
        .get(&url)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("GET {url}: {e}"))?;
    clients
        .signer
        .sign(&mut request)
        .map_err(|e| e.to_string())?;
    let answer = clients
        .http
        .execute(request)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    match answer.status().as_u16() {
        404 => Ok(()),
        status => Err(format!("GET {url} answered {status}, expected 404")),
    }
}

/// Waits until no execution runs, at most `timeout`; a progress line every 10 s.
pub async fn wait_for_quiet(
    clients: &Clients,
    timeout: Duration,
    label: &str,
) -> Result<Quiet, ChaosError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_line = Instant::now();
    let mut failures = 0;
    let mut last_count = usize::MAX;
    let mut last_change = Instant::now();
    loop {
        let running = match running_executions(clients).await {
            Ok(running) => {
                failures = 0;
                running
            }
            // The emulator is busy: a few failed listings in a row are tolerated.
            Err(error) if failures < 5 => {
                failures += 1;
                eprintln!("chaos: {label}: listing executions failed ({error}); trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        if running.is_empty() {
            eprintln!(
                "chaos: {label}: no execution running after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(Quiet {
                reached: true,
                waited: started.elapsed(),
                ..Quiet::default()
            });
        }
        if running.len() != last_count {
            last_count = running.len();
            last_change = Instant::now();
        } else if last_change.elapsed() >= STALL {
            if let Err(problem) = stack_answers(clients).await {
                eprintln!(
                    "chaos: {label}: no execution ended for {} s and the stack does not answer ({problem}); giving up waiting",
                    STALL.as_secs()
                );
                return Ok(Quiet {
                    reached: false,
                    waited: started.elapsed(),
                    still_running: running,
                    stalled: Some(problem),
                });
            }
            last_change = Instant::now();
        }
        if Instant::now() >= deadline {
            eprintln!(
                "chaos: {label}: {} executions still RUNNING after the deadline of {} s; going on without quiet (they will count as not settled)",
                running.len(),
                timeout.as_secs()
            );
            return Ok(Quiet {
                reached: false,
                waited: started.elapsed(),
                still_running: running,
                stalled: None,
            });
        }
        if last_line.elapsed() >= Duration::from_secs(10) {
            last_line = Instant::now();
            eprintln!(
                "chaos: {label}: {} executions running ({:.0} s waited, at most {:.0} s left)",
                running.len(),
                started.elapsed().as_secs_f64(),
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What the reconciler did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub looked_at: usize,
    pub resumed: Vec<String>,
    /// `(order, reason)`
    pub parked: Vec<(String, String)>,
    pub running: usize,
    pub already_parked: usize,
    /// Changed between the index read and the look: left alone.
    pub changed: usize,
    /// `(order, error)`: could not be reconciled (our infrastructure failed on them).
    pub failed: Vec<(String, String)>,
}

/// One reconciler run over every unfinished order, with no grace period.
pub async fn reconcile(clients: &Clients, max_resumes: u32) -> Result<Reconciliation, ChaosError> {
    let options = ReconcileOptions {
        grace: chrono::Duration::zero(),
        limit: 1_000_000,
        max_resumes,
    };
    let done = recovery::reconcile(
        &clients.store,
        &clients.workflow,
        order_core::recovery::Escalation {
            dead_letters: &clients.dead_letters,
        },
        options,
    )
    .await?;
    let mut outcome = Reconciliation {
        looked_at: done.len(),
        ..Reconciliation::default()
    };
    for reconciled in done {
        let id = reconciled.order_id.to_string();
        match reconciled.action {
            Action::Resumed { .. } => outcome.resumed.push(id),
            Action::Parked { reason } => outcome.parked.push((id, reason)),
            Action::Running { .. } => outcome.running += 1,
            Action::AlreadyParked => outcome.already_parked += 1,
            Action::Changed => outcome.changed += 1,
            Action::Failed { error } => outcome.failed.push((id, error)),
        }
    }
    Ok(outcome)
}

/// What the replay of the dead-letter queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// Messages received.
    pub seen: usize,
    /// Orders resumed (message deleted).
    pub resumed: Vec<String>,
    /// Messages about orders that had ended meanwhile (deleted).
    pub ended: usize,
    /// Messages about orders that run again already, e.g. resumed by the reconciler
    /// (deleted: the running execution carries the order, and a new failure sends a new
    /// message).
    pub running: usize,
    /// Messages about orders of other runs, or unreadable: left in the queue.
    pub foreign: usize,
    /// `(order, error)`: could not be resumed; the message is left in the queue.
    pub failed: Vec<(String, String)>,
    /// What each message said: `order: error at step (source)`.
    pub said: Vec<String>,
}

/// How long received messages stay hidden while the replay acts on them.
const REPLAY_HOLD: Duration = Duration::from_secs(120);

async fn release(clients: &Clients, letter: &DeadLetter) -> Result<(), ChaosError> {
    clients
        .sqs
        .change_message_visibility()
        .queue_url(clients.dead_letters.url())
        .receipt_handle(&letter.receipt_handle)
        .visibility_timeout(0)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ChaosError::Sqs {
            operation: "ChangeMessageVisibility",
            message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        })
}

/// Receives every message once; resumes each order of this run and deletes its message
/// once the resume succeeded (or the order has ended or runs again). Everything else is
/// made visible again for the operator.
pub async fn replay_dead_letters(
    clients: &Clients,
    ours: &BTreeSet<String>,
) -> Result<Replay, ChaosError> {
    let letters = clients.dead_letters.receive(100_000, REPLAY_HOLD).await?;
    let mut replay = Replay {
        seen: letters.len(),
        ..Replay::default()
    };
    for letter in &letters {
        let body = &letter.body;
        replay.said.push(format!(
            "{}: {} at {} ({})",
            body.order_id,
            body.error.as_deref().unwrap_or("?"),
            body.failed_step.as_deref().unwrap_or("?"),
            body.source
        ));
        let id = OrderId::parse(&letter.body.order_id).filter(|id| ours.contains(id.as_str()));
        let Some(id) = id else {
            replay.foreign += 1;
            release(clients, letter).await?;
            continue;
        };
        let delete = match recovery::resume(&clients.store, &clients.workflow, &id).await {
            Ok(_) => {
                replay.resumed.push(id.to_string());
                true
            }
            Err(RecoveryError::Ended { .. }) => {
                replay.ended += 1;
                true
            }
            Err(RecoveryError::StillRunning { .. } | RecoveryError::ResumedElsewhere { .. }) => {
                replay.running += 1;
                true
            }
            Err(error) => {
                replay.failed.push((id.to_string(), error.to_string()));
                false
            }
        };
        if delete {
            clients.dead_letters.delete(letter).await?;
        } else {
            release(clients, letter).await?;
        }
    }
    Ok(replay)
}

/// The messages in the queue now, by order id. They are hidden for a few seconds while
/// they are counted, then visible again.
pub async fn dead_letters_now(
    clients: &Clients,
) -> Result<BTreeMap<String, Vec<DeadLetterBody>>, ChaosError> {
    let letters = clients
        .dead_letters
        .receive(100_000, Duration::from_secs(5))
        .await?;
    let mut by_order: BTreeMap<String, Vec<DeadLetterBody>> = BTreeMap::new();
    for letter in letters {
        by_order
            .entry(letter.body.order_id.clone())
            .or_default()
            .push(letter.body);
    }
    Ok(by_order)
}
