//! Task states: an attempt invokes the real handler (sometimes twice, sometimes throttled,
//! every attempt throttled inside Lambda's throttling windows),
//! the invocation is polled at its control points (where it may crash or overrun), its
//! result is heard or ignored, and Retry (full jitter) and Catch decide what follows.

use super::{Event, Outcome, SimError, World};
use crate::definition::{matches, Next, Resource, State, Task, Timeout};
use crate::handlers::{invoke, Invocation, FUNCTION_TIMEOUT_MS};
use crate::paths::{self, PathError};
use crate::world::{lock, Service};
use order_core::activity::ActivityOutput;
use order_core::steps::{self, StepRole};
use order_core::ActivityError;
use serde_json::{json, Value};
use std::task::{Context, Poll, Waker};

/// One invocation of a handler in flight.
pub(super) struct Running {
    future: Invocation,
    exec: usize,
    /// `None`: nobody waits for this invocation's result any more.
    attempt: Option<u64>,
    state: String,
    callback: bool,
    timeout_ms: u64,
    /// A second copy of attempt `copy_of` (at-least-once), not yet polled.
    copy_of: Option<u64>,
}

impl<'d> World<'d> {
    /// A Task attempt's `TimeoutSeconds` ran out; nothing happens if it ended before.
    pub(super) fn task_timeout(&mut self, exec: usize, attempt: u64) -> Result<(), SimError> {
        if self.executions[exec].waiting == Some(attempt) {
            let state = self.executions[exec].state.clone();
            self.note(
                exec,
                format!("  {state} invocation {attempt}: States.Timeout"),
            );
            if self.current_task(exec)?.resource == Resource::LambdaCallback {
                self.check_wait_timed_out(self.executions[exec].order, &state);
            }
            self.task_failed(exec, "States.Timeout", "the Task timed out")
        } else {
            Ok(())
        }
    }

    pub(super) fn start_task(
        &mut self,
        exec: usize,
        name: &str,
        task: &'d Task,
        input: Value,
    ) -> Result<(), SimError> {
        self.next_invocation += 1;
        let attempt = self.next_invocation;
        let token =
            (task.resource == Resource::LambdaCallback).then(|| format!("tok-{exec}-{attempt}"));
        self.executions[exec].token = token.clone();
        let context = self.context(exec);
        let parameters = match paths::fill(&task.parameters, &input, &context) {
            Ok(p) => p,
            Err(error) => return self.runtime_error(exec, error),
        };
        if task.resource == Resource::SqsSend {
            self.note(
                exec,
                format!("{name} (SQS sendMessage): {}", parameters["MessageBody"]),
            );
            self.dead_letters
                .push((exec, parameters["MessageBody"].clone()));
            self.executions[exec].waiting = Some(attempt);
            return self.task_succeeded(exec, json!({"MessageId": format!("msg-{attempt}")}));
        }
        let timeout_s = match &task.timeout {
            Timeout::Seconds(s) => *s,
            Timeout::Path(path) => match paths::get(&input, &context, path).and_then(Value::as_u64)
            {
                Some(s) => s,
                None => {
                    return self.runtime_error(
                        exec,
                        PathError(format!("TimeoutSecondsPath {path} is not a number")),
                    )
                }
            },
        };
        let timeout_ms = timeout_s * 1000;
        let function = task.function.clone().unwrap_or_default();
        let payload = parameters["Payload"].clone();
        let retried: u32 = self.executions[exec].retries.iter().sum();
        self.note(
            exec,
            format!(
                "{name} (Task {function}) invocation {attempt}{}",
                if retried > 0 {
                    format!(", retry {retried}")
                } else {
                    String::new()
                }
            ),
        );
        self.executions[exec].waiting = Some(attempt);
        let compensation = steps::ALL
            .iter()
            .any(|s| s.role == StepRole::Compensation && s.function_name() == function);
        let order = self.executions[exec].order;
        if compensation && self.seen[order].compensation.is_none() {
            self.seen[order].compensation = Some(name.to_owned());
        }
        let window = self.shared.fails(Service::LambdaThrottling);
        if window || self.shared.chance(self.options.faults.throttled) {
            self.shared.count("invocation throttled by Lambda");
            self.note(
                exec,
                format!(
                    "  Lambda throttled the invocation (Lambda.TooManyRequestsException){}",
                    if window { ", a throttling window" } else { "" }
                ),
            );
            return self.task_failed(
                exec,
                "Lambda.TooManyRequestsException",
                "simulated: the function's concurrency is used up",
            );
        }
        if let Some(token) = &token {
            lock(&self.env.resumer.tokens).insert(token.clone(), true);
            self.tokens.insert(token.clone(), (exec, attempt));
        }
        self.after(timeout_ms, Event::TaskTimeout { exec, attempt });
        let duplicate = if token.is_some() {
            self.options.faults.duplicate_callback_invocation
        } else {
            self.options.faults.duplicate_invocation
        };
        let copies = if self.shared.chance(duplicate) {
            self.note(exec, "  invoked twice (at-least-once)".into());
            self.shared.count("Task invoked twice");
            2
        } else {
            1
        };
        for copy in 0..copies {
            self.next_invocation += 1;
            let id = self.next_invocation;
            self.running.insert(
                id,
                Running {
                    future: invoke(&function, payload.clone(), self.env.clone()),
                    exec,
                    attempt: (copy == 0).then_some(attempt),
                    state: name.to_owned(),
                    callback: token.is_some(),
                    timeout_ms,
                    copy_of: (copy > 0).then_some(attempt),
                },
            );
            let delay = 1 + self.shared.below(if copy == 0 { 50 } else { 2_000 });
            self.after(delay, Event::Poll(id));
        }
        Ok(())
    }

    pub(super) fn poll(&mut self, id: u64) -> Result<(), SimError> {
        let Some(mut running) = self.running.remove(&id) else {
            return Ok(());
        };
        if let Some(attempt) = running.copy_of.take() {
            if running.callback && self.executions[running.exec].waiting != Some(attempt) {
                // The Task retried (or moved on) before this copy began: it stores the
                // token of an attempt that is over.
                self.shared
                    .count("a late copy of a callback Task began after its attempt was over");
                self.note(
                    running.exec,
                    format!(
                        "  {} invocation {attempt}: a late copy begins, its attempt is over",
                        running.state
                    ),
                );
            }
        }
        let mut cx = Context::from_waker(Waker::noop());
        let polled = running.future.as_mut().poll(&mut cx);
        self.drain_partners();
        match polled {
            Poll::Ready(result) => {
                self.drain_resumed()?;
                self.finished(running, result)
            }
            Poll::Pending => {
                let exec = running.exec;
                let state = running.state.clone();
                if let Some(attempt) = running.attempt {
                    if self.shared.chance(self.options.faults.crash) {
                        self.shared.count("invocation crashed at a control point");
                        self.note(exec, format!("  {state} invocation {attempt}: the function crashed (Runtime.ExitError)"));
                        if self.executions[exec].waiting == Some(attempt) {
                            return self.task_failed(exec, "Runtime.ExitError", "simulated crash");
                        }
                        return Ok(());
                    }
                    if !running.callback && self.shared.chance(self.options.faults.overrun) {
                        self.shared.count("invocation overran its Task timeout");
                        self.note(
                            exec,
                            format!(
                                "  {state} invocation {attempt}: the function overruns its timeout"
                            ),
                        );
                        if FUNCTION_TIMEOUT_MS < running.timeout_ms {
                            // Lambda stops the function at its own timeout, before the
                            // Task's: the invocation ends there (Sandbox.Timedout) and acts
                            // no more.
                            if self.executions[exec].waiting == Some(attempt) {
                                return self.task_failed(
                                    exec,
                                    "Sandbox.Timedout",
                                    "the function ran past its timeout",
                                );
                            }
                            return Ok(());
                        }
                        running.attempt = None;
                        // A function timeout longer than the Task's: a hung invocation
                        // goes on for the difference after its Task timed out.
                        let alive = FUNCTION_TIMEOUT_MS.saturating_sub(running.timeout_ms);
                        let delay = running.timeout_ms + self.shared.below(alive.max(1));
                        self.running.insert(id, running);
                        self.after(delay, Event::Poll(id));
                        return Ok(());
                    }
                }
                let delay = self.shared.below(300);
                self.running.insert(id, running);
                self.after(delay, Event::Poll(id));
                Ok(())
            }
        }
    }

    pub(super) fn finished(
        &mut self,
        running: Running,
        result: Result<ActivityOutput, ActivityError>,
    ) -> Result<(), SimError> {
        let exec = running.exec;
        let described = match &result {
            Ok(out) => format!(
                "ok, {} (attempts {}, replayed {})",
                out.status, out.attempts, out.replayed
            ),
            Err(e) => format!("{}: {}", e.name.as_str(), e.message),
        };
        let Some(attempt) = running.attempt else {
            self.shared
                .count("late or duplicate invocation finished after its Task moved on");
            self.note(
                exec,
                format!(
                    "  {} late or duplicate invocation ended, ignored: {described}",
                    running.state
                ),
            );
            return Ok(());
        };
        if self.executions[exec].waiting != Some(attempt) {
            self.note(
                exec,
                format!(
                    "  {} invocation {attempt} ended after its Task did, ignored: {described}",
                    running.state
                ),
            );
            return Ok(());
        }
        self.note(
            exec,
            format!("  {} invocation {attempt}: {described}", running.state),
        );
        if running.callback {
            return match result {
                Ok(_) => Ok(()),
                Err(error) => self.task_failed(exec, error.name.as_str(), &cause(&error)),
            };
        }
        if self.shared.chance(self.options.faults.result_lost) {
            self.shared.count("result lost after the function finished");
            self.note(
                exec,
                "  the result was lost on its way back (Lambda.ServiceException)".into(),
            );
            return self.task_failed(exec, "Lambda.ServiceException", "simulated: result lost");
        }
        match result {
            Ok(output) => {
                let payload = serde_json::to_value(&output)
                    .map_err(|e| SimError::World(format!("output: {e}")))?;
                self.task_succeeded(exec, json!({"Payload": payload, "StatusCode": 200}))
            }
            Err(error) => self.task_failed(exec, error.name.as_str(), &cause(&error)),
        }
    }

    pub(super) fn current_task(&self, exec: usize) -> Result<&'d Task, SimError> {
        match self.state(exec)? {
            State::Task(task) => Ok(task),
            _ => Err(SimError::World(format!(
                "{} is not a Task",
                self.executions[exec].state
            ))),
        }
    }

    pub(super) fn end_attempt(&mut self, exec: usize) {
        self.executions[exec].waiting = None;
        if let Some(token) = self.executions[exec].token.take() {
            lock(&self.env.resumer.tokens).insert(token.clone(), false);
            self.tokens.remove(&token);
        }
    }

    pub(super) fn task_succeeded(&mut self, exec: usize, raw: Value) -> Result<(), SimError> {
        let task = self.current_task(exec)?;
        let context = self.context(exec);
        self.end_attempt(exec);
        let result = match &task.result_selector {
            Some(selector) => paths::fill(selector, &raw, &context),
            None => Ok(raw),
        };
        let input = std::mem::take(&mut self.executions[exec].input);
        match result.and_then(|r| paths::set(input, task.result_path.as_deref(), r)) {
            Ok(output) => {
                self.executions[exec].input = output;
                self.go(exec, &task.next);
                Ok(())
            }
            Err(error) => self.runtime_error(exec, error),
        }
    }

    pub(super) fn task_failed(
        &mut self,
        exec: usize,
        error: &str,
        cause: &str,
    ) -> Result<(), SimError> {
        let task = self.current_task(exec)?;
        self.end_attempt(exec);
        let name = self.executions[exec].state.clone();
        if let Some(index) = task.retry.iter().position(|r| matches(&r.errors, error)) {
            let retrier = &task.retry[index];
            let retries = &mut self.executions[exec].retries;
            if retries.len() < task.retry.len() {
                retries.resize(task.retry.len(), 0);
            }
            let used = retries[index];
            if used < retrier.max_attempts {
                retries[index] += 1;
                let mut delay = retrier.interval_seconds * retrier.backoff_rate.powi(used as i32);
                if let Some(max) = retrier.max_delay_seconds {
                    delay = delay.min(max);
                }
                self.shared.count("Retry");
                let mut delay_ms = (delay * 1000.0) as u64;
                if retrier.full_jitter {
                    delay_ms = self.shared.below(delay_ms + 1);
                }
                self.note(
                    exec,
                    format!(
                        "  Retry {error} ({}/{}) in {delay_ms} ms",
                        used + 1,
                        retrier.max_attempts
                    ),
                );
                self.after(delay_ms, Event::Step(exec));
                return Ok(());
            }
        }
        match task.catch.iter().find(|c| matches(&c.errors, error)) {
            Some(catcher) => {
                self.shared.count("Catch");
                self.note(exec, format!("  Catch {error} -> {}", catcher.next));
                let input = std::mem::take(&mut self.executions[exec].input);
                let caught = json!({"Error": error, "Cause": cause});
                match paths::set(input, catcher.result_path.as_deref(), caught) {
                    Ok(output) => {
                        self.executions[exec].input = output;
                        self.go(exec, &Next::State(catcher.next.clone()));
                        Ok(())
                    }
                    Err(e) => self.runtime_error(exec, e),
                }
            }
            None => {
                self.end(
                    exec,
                    Outcome::Failed {
                        error: error.to_owned(),
                        cause: format!("{name}: {cause}"),
                    },
                );
                Ok(())
            }
        }
    }
}

/// The Cause Step Functions reports for a Lambda error.
fn cause(error: &ActivityError) -> String {
    json!({"errorType": error.name.as_str(), "errorMessage": error.message}).to_string()
}
