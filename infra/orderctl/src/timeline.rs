//! One order as one timeline: what the order item says (created, last change, failure,
//! delivery, parked), what each step of the activity ledger says (started, succeeded or
//! failed after n attempts), and what Step Functions recorded for every execution of the
//! order (states entered, task attempts that failed, were retried or succeeded, waits,
//! how the execution ended), sorted by time.
//!
//! Execution events that only repeat what the next row says (TaskStarted, the first
//! TaskScheduled, Pass and Choice states exiting) are left out.

use chrono::{DateTime, SecondsFormat, Utc};
use order_core::store::{OrderRecord, StepRecord, StepStatus};
use serde::Serialize;
use std::collections::HashMap;

/// Where a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Order,
    Step,
    Execution,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// RFC 3339, UTC, milliseconds; `None` when the record's time is unreadable.
    pub time: Option<String>,
    #[serde(skip)]
    pub at: Option<DateTime<Utc>>,
    pub kind: RowKind,
    /// `order`, `step`, or the execution's name (`<id>`, `<id>-r1`, ...).
    pub source: String,
    /// The state (executions), step (steps) or status (order) the row is about.
    pub state: Option<String>,
    pub attempt: Option<u32>,
    /// `created`, `updated`, `started`, `entered`, `retried`, `succeeded`, `failed`,
    /// `timed out`, `waited`, `aborted`, `redriven`, `delivered`, `parked`.
    pub event: String,
    /// The error name, e.g. `Partner.Unavailable`.
    pub error: Option<String>,
    /// What was said about it: the error message, failure reason, park reason.
    pub cause: Option<String>,
    pub duration_ms: Option<i64>,
}

impl Row {
    fn new(at: Option<DateTime<Utc>>, kind: RowKind, source: &str, event: &str) -> Row {
        Row {
            time: at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            at,
            kind,
            source: source.to_owned(),
            state: None,
            attempt: None,
            event: event.to_owned(),
            error: None,
            cause: None,
            duration_ms: None,
        }
    }

    fn state(mut self, state: impl Into<String>) -> Row {
        self.state = Some(state.into());
        self
    }

    fn attempt(mut self, attempt: u32) -> Row {
        self.attempt = Some(attempt);
        self
    }

    fn error(mut self, error: Option<String>, cause: Option<String>) -> Row {
        self.error = error.filter(|e| !e.is_empty());
        self.cause = cause.filter(|c| !c.is_empty());
        self
    }

    fn since(mut self, start: Option<DateTime<Utc>>) -> Row {
        if let (Some(start), Some(end)) = (start, self.at) {
            self.duration_ms = Some((end - start).num_milliseconds());
        }
        self
    }
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What the order item says.
pub fn order_rows(order: &OrderRecord) -> Vec<Row> {
    let row = |at: &str, event: &str| Row::new(parse(at), RowKind::Order, "order", event);
    let mut rows = vec![row(&order.created_at, "created").state("ACCEPTED")];
    if order.updated_at != order.created_at {
        rows.push(row(&order.updated_at, "updated").state(order.status.as_str()));
    }
    if let Some(failure) = &order.failure {
        rows.push(
            row(&failure.at, "failed")
                .state(failure.step.clone())
                .error(Some(failure.error.clone()), Some(failure.reason.clone())),
        );
    }
    if let Some(delivery) = &order.delivery {
        rows.push(row(&delivery.delivered_at, "delivered").error(
            None,
            Some(format!(
                "shipment {} (courier event {})",
                delivery.shipment_id, delivery.event_id
            )),
        ));
    }
    if let Some(parked) = &order.parked {
        rows.push(row(&parked.at, "parked").error(None, Some(parked.reason.clone())));
    }
    rows
}

/// What the activity ledger says: when each step started and how it ended.
pub fn step_rows(steps: &[StepRecord]) -> Vec<Row> {
    let mut rows = Vec::new();
    for step in steps {
        let started = parse(&step.started_at);
        let row = |at, event: &str| Row::new(at, RowKind::Step, "step", event).state(&step.step);
        rows.push(row(started, "started"));
        match (step.status, &step.finished_at) {
            (StepStatus::Started, _) | (_, None) => {
                if step.attempts > 1 {
                    rows.push(row(parse(&step.updated_at), "retried").attempt(step.attempts));
                }
            }
            (status, Some(finished)) => {
                let event = match status {
                    StepStatus::Failed => "failed",
                    _ => "succeeded",
                };
                rows.push(
                    row(parse(finished), event)
                        .attempt(step.attempts)
                        .error(step.error.clone(), step.error_message.clone())
                        .since(started),
                );
            }
        }
    }
    rows
}

/// One state the execution was in, while reading its history.
struct Visit {
    state: String,
    entered: Option<DateTime<Utc>>,
    attempts: u32,
    attempt_started: Option<DateTime<Utc>>,
}

/// What Step Functions recorded for the execution `name`.
pub fn execution_rows(name: &str, events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut visits: Vec<Visit> = Vec::new();
    // Which visit each event belongs to (following previousEventId), so that a task
    // event is attributed to its state even if branches interleave.
    let mut visit_of: HashMap<i64, usize> = HashMap::new();
    let mut started: Option<DateTime<Utc>> = None;
    for event in events {
        let at = smithy_time(event.timestamp());
        let kind = event.r#type().as_str();
        let row = |event: &str| Row::new(at, RowKind::Execution, name, event);
        if let Some(details) = event.state_entered_event_details() {
            visits.push(Visit {
                state: details.name().to_owned(),
                entered: at,
                attempts: 0,
                attempt_started: None,
            });
            visit_of.insert(event.id(), visits.len() - 1);
            rows.push(row("entered").state(details.name()));
            continue;
        }
        let current = visit_of
            .get(&event.previous_event_id())
            .copied()
            .or_else(|| visits.len().checked_sub(1));
        if let Some(index) = current {
            visit_of.insert(event.id(), index);
        }
        let visit = current.and_then(|index| visits.get_mut(index));
        match kind {
            "ExecutionStarted" => {
                started = at;
                rows.push(row("started"));
            }
            "ExecutionSucceeded" => rows.push(row("succeeded").since(started)),
            "ExecutionFailed" => {
                let details = event.execution_failed_event_details();
                rows.push(
                    row("failed")
                        .error(
                            details.and_then(|d| d.error().map(str::to_owned)),
                            details.and_then(|d| d.cause().map(message_of)),
                        )
                        .since(started),
                );
            }
            "ExecutionAborted" => rows.push(row("aborted").since(started)),
            "ExecutionTimedOut" => rows.push(row("timed out").since(started)),
            "ExecutionRedriven" => rows.push(row("redriven")),
            "TaskScheduled" | "LambdaFunctionScheduled" | "ActivityScheduled" => {
                if let Some(visit) = visit {
                    visit.attempts += 1;
                    visit.attempt_started = at;
                    if visit.attempts > 1 {
                        rows.push(row("retried").state(&visit.state).attempt(visit.attempts));
                    }
                }
            }
            "TaskSucceeded" | "LambdaFunctionSucceeded" | "ActivitySucceeded" => {
                let (state, attempt, since) = visit_summary(visit);
                rows.push(with_state(row("succeeded"), state, attempt).since(since));
            }
            "TaskFailed"
            | "TaskStartFailed"
            | "TaskSubmitFailed"
            | "LambdaFunctionFailed"
            | "LambdaFunctionStartFailed"
            | "LambdaFunctionScheduleFailed"
            | "ActivityFailed"
            | "ActivityScheduleFailed"
            | "TaskTimedOut"
            | "LambdaFunctionTimedOut"
            | "ActivityTimedOut" => {
                let (error, cause) = failure_of(event);
                let label = if kind.ends_with("TimedOut") {
                    "timed out"
                } else {
                    "failed"
                };
                let (state, attempt, since) = visit_summary(visit);
                rows.push(
                    with_state(row(label), state, attempt)
                        .error(error, cause)
                        .since(since),
                );
            }
            "WaitStateExited" => {
                if let Some(visit) = visit {
                    rows.push(row("waited").state(&visit.state).since(visit.entered));
                }
            }
            _ => {}
        }
    }
    rows
}

fn visit_summary(
    visit: Option<&mut Visit>,
) -> (Option<String>, Option<u32>, Option<DateTime<Utc>>) {
    match visit {
        Some(visit) => (
            Some(visit.state.clone()),
            (visit.attempts > 0).then_some(visit.attempts),
            visit.attempt_started.or(visit.entered),
        ),
        None => (None, None, None),
    }
}

fn with_state(mut row: Row, state: Option<String>, attempt: Option<u32>) -> Row {
    row.state = state;
    row.attempt = attempt;
    row
}

/// The error name and cause of a failed or timed-out task event.
fn failure_of(event: &aws_sdk_sfn::types::HistoryEvent) -> (Option<String>, Option<String>) {
    let pair = |error: Option<&str>, cause: Option<&str>| {
        (error.map(str::to_owned), cause.map(message_of))
    };
    if let Some(d) = event.task_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.task_timed_out_event_details() {
        pair(d.error().or(Some("States.Timeout")), d.cause())
    } else if let Some(d) = event.task_start_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.task_submit_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_timed_out_event_details() {
        pair(d.error().or(Some("States.Timeout")), d.cause())
    } else if let Some(d) = event.lambda_function_start_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_schedule_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.activity_failed_event_details() {
        pair(d.error(), d.cause())
    } else if let Some(d) = event.activity_timed_out_event_details() {
        pair(d.error().or(Some("States.Timeout")), d.cause())
    } else {
        (None, None)
    }
}

/// A Lambda error's cause is `{"errorType": ..., "errorMessage": ...}`: its message is
/// what a person wants; anything else is kept as it is.
fn message_of(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

/// What an execution's outage loop shows an operator: the workflow met infrastructure
/// trouble (a partner's or our own outage or throttling, a crash) past a step's fast
/// retries and waits it out instead of rolling the order back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutageWaits {
    /// The execution that waited.
    pub execution: String,
    /// The step that met the trouble last, and its last error before it waited.
    pub step: String,
    pub error: Option<String>,
    /// Outage waits the execution has begun (each `config.outage_wait_seconds` long; the
    /// budget is `config.outage_waits_allowed`).
    pub waits: u32,
    /// Whether its latest state is the wait itself: it is waiting right now.
    pub waiting_now: bool,
}

/// The outage waits of the latest execution among `rows` (a timeline), if it waited.
pub fn outage_waits(rows: &[Row]) -> Option<OutageWaits> {
    let latest = rows
        .iter()
        .filter(|r| r.kind == RowKind::Execution && r.event == "started")
        .max_by_key(|r| r.at)?
        .source
        .clone();
    let mut found: Option<OutageWaits> = None;
    let mut last_error: Option<String> = None;
    let mut last_state: Option<&str> = None;
    for row in rows
        .iter()
        .filter(|r| r.kind == RowKind::Execution && r.source == latest)
    {
        if row.event == "failed" || row.event == "timed out" {
            last_error = row.error.clone();
        }
        if row.event != "entered" {
            continue;
        }
        let state = row.state.as_deref().unwrap_or_default();
        last_state = Some(state);
        if let Some(step) = state
            .strip_prefix("Note")
            .and_then(|s| s.strip_suffix("Outage"))
        {
            let waits = found.as_ref().map_or(0, |f| f.waits);
            found = Some(OutageWaits {
                execution: latest.clone(),
                step: step.to_owned(),
                error: last_error.clone(),
                waits,
                waiting_now: false,
            });
        } else if state == OUTAGE_WAIT_STATE {
            if let Some(found) = found.as_mut() {
                found.waits += 1;
            }
        }
    }
    let mut found = found.filter(|f| f.waits > 0)?;
    found.waiting_now = last_state == Some(OUTAGE_WAIT_STATE);
    Some(found)
}

/// The definition's one outage wait (`infra/statemachine/order-workflow.asl.yaml`).
pub const OUTAGE_WAIT_STATE: &str = "WaitOutOutage";

/// A Step Functions time as a chrono time.
pub fn smithy_time(time: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// All rows, sorted by time (rows without a readable time last); rows of the same time
/// keep the order order → steps → executions.
pub fn merge(groups: Vec<Vec<Row>>) -> Vec<Row> {
    let mut rows: Vec<Row> = groups.into_iter().flatten().collect();
    rows.sort_by_key(|row| (row.at.is_none(), row.at));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered_state(at: i64, source: &str, state: &str) -> Row {
        Row::new(
            DateTime::from_timestamp(at, 0),
            RowKind::Execution,
            source,
            "entered",
        )
        .state(state)
    }

    #[test]
    fn an_execution_waiting_out_trouble_shows_its_step_error_and_waits_and_an_earlier_one_does_not_count(
    ) {
        let at = |s| DateTime::from_timestamp(s, 0);
        let id = "ord-1";
        let resumed = "ord-1-r1";
        let rows = vec![
            Row::new(at(0), RowKind::Execution, id, "started"),
            entered_state(1, id, "NoteTakePaymentOutage"),
            entered_state(2, id, OUTAGE_WAIT_STATE),
            Row::new(at(10), RowKind::Execution, resumed, "started"),
            entered_state(11, resumed, "ArrangeShipment"),
            Row::new(at(12), RowKind::Execution, resumed, "failed")
                .state("ArrangeShipment")
                .error(Some("Store.Unavailable".into()), None),
            entered_state(13, resumed, "NoteArrangeShipmentOutage"),
            entered_state(14, resumed, "OutageWaitsLeft"),
            entered_state(15, resumed, OUTAGE_WAIT_STATE),
        ];
        let waits = outage_waits(&rows);
        assert_eq!(
            waits,
            Some(OutageWaits {
                execution: resumed.into(),
                step: "ArrangeShipment".into(),
                error: Some("Store.Unavailable".into()),
                waits: 1,
                waiting_now: true,
            })
        );
        let mut went_on = rows.clone();
        went_on.push(entered_state(20, resumed, "ArrangeShipment"));
        assert_eq!(
            outage_waits(&went_on).map(|w| (w.waits, w.waiting_now)),
            Some((1, false))
        );
        assert_eq!(
            outage_waits(&rows[..3]).map(|w| w.step),
            Some("TakePayment".into())
        );
        assert_eq!(outage_waits(&rows[..2]), None, "no wait begun yet");
    }
    use aws_sdk_sfn::primitives::DateTime as SfnTime;
    use aws_sdk_sfn::types::{
        HistoryEvent, HistoryEventType, StateEnteredEventDetails, TaskFailedEventDetails,
    };

    fn event(id: i64, previous: i64, ms: i64, kind: HistoryEventType) -> HistoryEvent {
        let built = HistoryEvent::builder()
            .id(id)
            .previous_event_id(previous)
            .timestamp(SfnTime::from_millis(1_790_000_000_000 + ms))
            .r#type(kind)
            .build();
        match built {
            Ok(event) => event,
            Err(error) => panic!("{error}"),
        }
    }

    fn entered(id: i64, previous: i64, ms: i64, name: &str) -> HistoryEvent {
        let mut event = event(id, previous, ms, HistoryEventType::TaskStateEntered);
        event.state_entered_event_details =
            StateEnteredEventDetails::builder().name(name).build().ok();
        event
    }

    fn failed(id: i64, previous: i64, ms: i64, error: &str) -> HistoryEvent {
        let mut event = event(id, previous, ms, HistoryEventType::TaskFailed);
        event.task_failed_event_details = TaskFailedEventDetails::builder()
            .resource_type("lambda")
            .resource("invoke")
            .error(error)
            .cause(r#"{"errorType":"Partner.Unavailable","errorMessage":"warehouse said 503"}"#)
            .build()
            .ok();
        event
    }

    #[test]
    fn a_retried_task_shows_each_failed_attempt_the_retry_and_the_success() {
        use HistoryEventType as T;
        let events = vec![
            event(1, 0, 0, T::ExecutionStarted),
            entered(2, 1, 1, "ReserveStock"),
            event(3, 2, 2, T::TaskScheduled),
            event(4, 3, 2, T::TaskStarted),
            failed(5, 4, 300, "Partner.Unavailable"),
            event(6, 5, 900, T::TaskScheduled),
            event(7, 6, 900, T::TaskStarted),
            event(8, 7, 950, T::TaskSucceeded),
            event(9, 8, 951, T::TaskStateExited),
            event(10, 9, 960, T::ExecutionSucceeded),
        ];
        let rows = execution_rows("ord-1", &events);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.event.as_str(),
                    r.state.as_deref(),
                    r.attempt,
                    r.error.as_deref(),
                    r.duration_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("started", None, None, None, None),
                ("entered", Some("ReserveStock"), None, None, None),
                (
                    "failed",
                    Some("ReserveStock"),
                    Some(1),
                    Some("Partner.Unavailable"),
                    Some(298)
                ),
                ("retried", Some("ReserveStock"), Some(2), None, None),
                ("succeeded", Some("ReserveStock"), Some(2), None, Some(50)),
                ("succeeded", None, None, None, Some(960)),
            ]
        );
        assert_eq!(rows[2].cause.as_deref(), Some("warehouse said 503"));
        assert!(rows.iter().all(|r| r.source == "ord-1"));
    }

    #[test]
    fn rows_are_merged_by_time_with_unreadable_times_last() {
        let at = |ms| DateTime::from_timestamp_millis(ms);
        let a = Row::new(at(20), RowKind::Step, "step", "b");
        let b = Row::new(None, RowKind::Order, "order", "c");
        let c = Row::new(at(10), RowKind::Execution, "ord-1", "a");
        let events: Vec<_> = merge(vec![vec![a, b], vec![c]])
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(events, ["a", "b", "c"]);
    }
}
