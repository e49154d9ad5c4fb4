//! The states of the definition, stepped: Pass, Choice, Wait, Succeed, Fail (a Task is
//! started in `tasks`), the context object, and how an execution moves on or ends.

use super::{Event, Outcome, SimError, World};
use crate::definition::{Next, State, Test};
use crate::paths::{self, PathError};
use serde_json::{json, Value};

/// The cause of an execution that ran past the definition's `TimeoutSeconds`.
const EXECUTION_TIMED_OUT: &str = "the execution ran past TimeoutSeconds";

impl<'d> World<'d> {
    pub(super) fn context(&self, exec: usize) -> Value {
        let execution = &self.executions[exec];
        let entered = super::shared::date(execution.entered)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // The name is the ARN's last part; the retry count, the state's retries so far.
        let name = execution.arn.rsplit(':').next().unwrap_or_default();
        let retry_count: u32 = execution.retries.iter().sum();
        json!({
            "Execution": {"Id": execution.arn, "Name": name},
            "State": {"Name": execution.state, "EnteredTime": entered, "RetryCount": retry_count},
            "Task": {"Token": execution.token},
        })
    }

    pub(super) fn runtime_error(&mut self, exec: usize, error: PathError) -> Result<(), SimError> {
        let state = self.executions[exec].state.clone();
        self.end(
            exec,
            Outcome::Failed {
                error: "States.Runtime".into(),
                cause: format!("state {state}: {error}"),
            },
        );
        Ok(())
    }

    pub(super) fn end(&mut self, exec: usize, outcome: Outcome) {
        self.note(exec, format!("execution ended: {outcome:?}"));
        // As DescribeExecution would say.
        let status = match &outcome {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed { cause, .. } if cause == EXECUTION_TIMED_OUT => "TIMED_OUT",
            Outcome::Failed { .. } => "FAILED",
            Outcome::Aborted => "ABORTED",
        };
        self.step_functions
            .ended(&self.executions[exec].arn, status);
        self.executions[exec].ended = self.now();
        self.executions[exec].outcome = Some(outcome);
    }

    pub(super) fn go(&mut self, exec: usize, next: &Next) {
        match next {
            Next::End => self.end(exec, Outcome::Succeeded),
            Next::State(name) => {
                let now = self.now();
                let execution = &mut self.executions[exec];
                execution.state = name.clone();
                execution.entered = now;
                execution.retries.clear();
                let delay = self.shared.below(20);
                self.after(delay, Event::Step(exec));
            }
        }
    }

    pub(super) fn state(&self, exec: usize) -> Result<&'d State, SimError> {
        let name = &self.executions[exec].state;
        self.definition
            .states
            .get(name)
            .ok_or_else(|| SimError::World(format!("no state {name}")))
    }

    pub(super) fn step(&mut self, exec: usize) -> Result<(), SimError> {
        if self.executions[exec].outcome.is_some() {
            return Ok(());
        }
        let limit = self.definition.timeout_seconds.saturating_mul(1000);
        if self.now() - self.executions[exec].started > limit {
            self.end(
                exec,
                Outcome::Failed {
                    error: "States.Timeout".into(),
                    cause: EXECUTION_TIMED_OUT.into(),
                },
            );
            return Ok(());
        }
        let name = self.executions[exec].state.clone();
        let state = self.state(exec)?;
        let input = self.executions[exec].input.clone();
        let context = self.context(exec);
        match state {
            State::Pass(pass) => {
                let value = match (&pass.parameters, &pass.result) {
                    (Some(parameters), _) => paths::fill(parameters, &input, &context),
                    (None, Some(result)) => Ok(result.clone()),
                    (None, None) => Ok(input.clone()),
                };
                match value.and_then(|v| paths::set(input, pass.result_path.as_deref(), v)) {
                    Ok(output) => {
                        self.note(exec, format!("{name} (Pass)"));
                        self.executions[exec].input = output;
                        self.go(exec, &pass.next);
                        Ok(())
                    }
                    Err(error) => self.runtime_error(exec, error),
                }
            }
            State::Choice(choice) => {
                let mut chosen = None;
                for (rule, next) in &choice.rules {
                    match evaluate(rule, &input, &context) {
                        Ok(true) => {
                            chosen = Some(next.clone());
                            break;
                        }
                        Ok(false) => {}
                        Err(error) => return self.runtime_error(exec, error),
                    }
                }
                let chosen = chosen.or_else(|| choice.default.clone());
                match chosen {
                    Some(next) => {
                        self.note(exec, format!("{name} (Choice) -> {next}"));
                        self.go(exec, &Next::State(next));
                    }
                    None => self.end(
                        exec,
                        Outcome::Failed {
                            error: "States.NoChoiceMatched".into(),
                            cause: format!("{name}: no rule matched"),
                        },
                    ),
                }
                Ok(())
            }
            State::Wait(wait) => {
                let Some(seconds) =
                    paths::get(&input, &context, &wait.seconds_path).and_then(Value::as_f64)
                else {
                    return self.runtime_error(
                        exec,
                        PathError(format!("SecondsPath {} is not a number", wait.seconds_path)),
                    );
                };
                self.note(exec, format!("{name} (Wait {seconds} s)"));
                self.shared.count("outage waited out (Wait state)");
                let Next::State(next) = &wait.next else {
                    self.end(exec, Outcome::Succeeded);
                    return Ok(());
                };
                let delay = (seconds * 1000.0) as u64;
                let now = self.now();
                let execution = &mut self.executions[exec];
                execution.state = next.clone();
                execution.retries.clear();
                execution.entered = now + delay;
                self.after(delay, Event::Step(exec));
                Ok(())
            }
            State::Succeed => {
                self.end(exec, Outcome::Succeeded);
                Ok(())
            }
            State::Fail { error, cause } => {
                self.end(
                    exec,
                    Outcome::Failed {
                        error: error.clone(),
                        cause: cause.clone(),
                    },
                );
                Ok(())
            }
            State::Task(task) => self.start_task(exec, &name, task, input),
        }
    }
}

/// Whether a Choice rule holds. `And` stops at its first false rule; a comparison other
/// than `IsPresent` on a variable that is not there is the execution's `States.Runtime`
/// error, as in Step Functions (which is why the definition asks `IsPresent` first).
fn evaluate(
    rule: &crate::definition::Rule,
    input: &Value,
    context: &Value,
) -> Result<bool, PathError> {
    use crate::definition::Rule;
    match rule {
        Rule::And(rules) => {
            for rule in rules {
                if !evaluate(rule, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Test { variable, test } => {
            let value = paths::get(input, context, variable);
            if let Test::IsPresent(want) = test {
                return Ok(value.is_some() == *want);
            }
            let Some(value) = value else {
                return Err(PathError(format!(
                    "the Choice rule's variable {variable} is not in the input"
                )));
            };
            let number = value.as_f64();
            if let Test::NumericLessThanPath(path) = test {
                // As in Step Functions, the path must name a number.
                let Some(bound) = paths::get(input, context, path).and_then(Value::as_f64) else {
                    return Err(PathError(format!(
                        "the Choice rule's {path} is not a number in the input"
                    )));
                };
                return Ok(number.is_some_and(|v| v < bound));
            }
            Ok(match test {
                Test::IsPresent(_) => true,
                Test::IsNumeric(want) => number.is_some() == *want,
                Test::NumericEquals(n) => number.is_some_and(|v| v == *n),
                Test::NumericLessThan(n) => number.is_some_and(|v| v < *n),
                Test::NumericLessThanPath(_) => false,
                Test::NumericGreaterThanEquals(n) => number.is_some_and(|v| v >= *n),
                Test::NumericLessThanEquals(n) => number.is_some_and(|v| v <= *n),
                Test::StringEquals(s) => value.as_str() == Some(s.as_str()),
            })
        }
    }
}
