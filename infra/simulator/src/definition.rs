//! The state machine definition (`infra/statemachine/order-workflow.asl.yaml`) read as
//! data, into exactly the Amazon States Language the simulator models. Anything else in
//! the file (a state type, a field, a comparison, an intrinsic, a resource) is refused at
//! load with the state and field named: never skipped.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why the definition could not be read into what the simulator models.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("state {state}: field {field} is not modelled by the simulator ({detail})")]
    Unsupported {
        state: String,
        field: String,
        detail: String,
    },
    #[error("state {state}: field {field} is missing or malformed ({detail})")]
    Malformed {
        state: String,
        field: String,
        detail: String,
    },
    #[error("state {state}: goes to {target}, which is not a state")]
    UnknownTarget { state: String, target: String },
}

/// The workflow: where it starts, its execution timeout, and its states by name.
#[derive(Debug, Clone)]
pub struct Definition {
    pub start_at: String,
    pub timeout_seconds: u64,
    pub states: BTreeMap<String, State>,
}

/// One state, as far as the simulator models it.
#[derive(Debug, Clone)]
pub enum State {
    Task(Task),
    Pass(Pass),
    Choice(Choice),
    Wait(Wait),
    Succeed,
    Fail { error: String, cause: String },
}

/// Where a state goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    State(String),
    End,
}

/// A Task's resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `arn:aws:states:::lambda:invoke`: the function's result is the Task's.
    Lambda,
    /// `arn:aws:states:::lambda:invoke.waitForTaskToken`: the Task ends when its token is
    /// resumed (or times out); the function's own result is ignored.
    LambdaCallback,
    /// `arn:aws:states:::sqs:sendMessage`: the dead-letter queue.
    SqsSend,
}

/// A Task's timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum Timeout {
    Seconds(u64),
    Path(String),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub resource: Resource,
    /// For Lambda Tasks: the function, from `${<Name>FunctionVersionArn}`.
    pub function: Option<String>,
    pub parameters: Value,
    pub result_selector: Option<Value>,
    pub result_path: Option<String>,
    pub timeout: Timeout,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub next: Next,
}

/// One Retry rule.
#[derive(Debug, Clone)]
pub struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub backoff_rate: f64,
    pub max_attempts: u32,
    pub max_delay_seconds: Option<f64>,
    /// `JitterStrategy: FULL`: the delay is drawn uniformly between 0 and the backoff.
    pub full_jitter: bool,
}

/// One Catch rule.
#[derive(Debug, Clone)]
pub struct Catcher {
    pub errors: Vec<String>,
    pub result_path: Option<String>,
    pub next: String,
}

#[derive(Debug, Clone)]
pub struct Pass {
    pub result: Option<Value>,
    pub parameters: Option<Value>,
    pub result_path: Option<String>,
    pub next: Next,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub rules: Vec<(Rule, String)>,
    pub default: Option<String>,
}

/// A Choice rule: a comparison of one variable, or `And` of rules.
#[derive(Debug, Clone)]
pub enum Rule {
    And(Vec<Rule>),
    Test { variable: String, test: Test },
}

#[derive(Debug, Clone)]
pub enum Test {
    IsPresent(bool),
    IsNumeric(bool),
    NumericEquals(f64),
    NumericLessThan(f64),
    /// Less than the number at a path of the input (the outage budget in its config).
    NumericLessThanPath(String),
    NumericGreaterThanEquals(f64),
    NumericLessThanEquals(f64),
    StringEquals(String),
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub seconds_path: String,
    pub next: Next,
}

/// The error names a rule matches, `States.ALL` matching every one.
pub fn matches(errors: &[String], name: &str) -> bool {
    errors.iter().any(|e| e == "States.ALL" || e == name)
}

impl Definition {
    /// Reads the definition file.
    pub fn load(path: &Path) -> Result<Definition, DefinitionError> {
        let read_error = |message: String| DefinitionError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let value: Value = serde_yaml::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        Definition::from_value(&value)
    }

    /// The definition in the repository (`infra/statemachine/order-workflow.asl.yaml`).
    pub fn of_repository() -> Result<Definition, DefinitionError> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Definition::load(&root.join("infra/statemachine/order-workflow.asl.yaml"))
    }

    /// Reads a definition already parsed as JSON.
    pub fn from_value(value: &Value) -> Result<Definition, DefinitionError> {
        let mut top = Fields::new("(top level)", value)?;
        let start_at = top.string("StartAt")?;
        let timeout_seconds = top
            .optional_u64("TimeoutSeconds")?
            .unwrap_or(u64::MAX / 2000);
        top.optional("Comment");
        let states_value = top.required("States")?;
        top.done()?;
        let Some(raw) = states_value.as_object() else {
            return Err(malformed("(top level)", "States", "not a map"));
        };
        let mut states = BTreeMap::new();
        for (name, state) in raw {
            states.insert(name.clone(), State::parse(name, state)?);
        }
        let definition = Definition {
            start_at,
            timeout_seconds,
            states,
        };
        definition.check_targets()?;
        Ok(definition)
    }

    /// Every `StartAt`, `Next`, `Default` and Catch target names a state.
    fn check_targets<'a>(&'a self) -> Result<(), DefinitionError> {
        let mut targets: Vec<(&str, &str)> = vec![("(top level)", self.start_at.as_str())];
        for (name, state) in &self.states {
            let name = name.as_str();
            let next = |n: &'a Next| match n {
                Next::State(s) => Some((name, s.as_str())),
                Next::End => None,
            };
            match state {
                State::Task(task) => {
                    targets.extend(next(&task.next));
                    targets.extend(task.catch.iter().map(|c| (name, c.next.as_str())));
                }
                State::Pass(pass) => targets.extend(next(&pass.next)),
                State::Wait(wait) => targets.extend(next(&wait.next)),
                State::Choice(choice) => {
                    targets.extend(choice.rules.iter().map(|(_, n)| (name, n.as_str())));
                    targets.extend(choice.default.iter().map(|d| (name, d.as_str())));
                }
                State::Succeed | State::Fail { .. } => {}
            }
        }
        match targets
            .into_iter()
            .find(|(_, target)| !self.states.contains_key(*target))
        {
            Some((state, target)) => Err(DefinitionError::UnknownTarget {
                state: state.to_owned(),
                target: target.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

fn malformed(state: &str, field: &str, detail: impl Into<String>) -> DefinitionError {
    DefinitionError::Malformed {
        state: state.to_owned(),
        field: field.to_owned(),
        detail: detail.into(),
    }
}

fn unsupported(state: &str, field: &str, detail: impl Into<String>) -> DefinitionError {
    DefinitionError::Unsupported {
        state: state.to_owned(),
        field: field.to_owned(),
        detail: detail.into(),
    }
}

/// A state's fields, taken one by one: what is left over at the end is not modelled.
struct Fields<'a> {
    state: &'a str,
    map: &'a Map<String, Value>,
    taken: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(state: &'a str, value: &'a Value) -> Result<Fields<'a>, DefinitionError> {
        let map = value
            .as_object()
            .ok_or_else(|| malformed(state, "(state)", "not a map"))?;
        Ok(Fields {
            state,
            map,
            taken: BTreeSet::new(),
        })
    }

    fn optional(&mut self, field: &'a str) -> Option<&'a Value> {
        self.taken.insert(field);
        self.map.get(field)
    }

    fn required(&mut self, field: &'a str) -> Result<&'a Value, DefinitionError> {
        self.optional(field)
            .ok_or_else(|| malformed(self.state, field, "missing"))
    }

    fn string(&mut self, field: &'a str) -> Result<String, DefinitionError> {
        let state = self.state;
        self.optional_string(field)?
            .ok_or_else(|| malformed(state, field, "missing"))
    }

    /// `field`, if there, read by `read` (`Value::as_u64`…); `expected` says what it must
    /// be when `read` finds something else.
    fn optional_as<T>(
        &mut self,
        field: &'a str,
        read: impl FnOnce(&'a Value) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, DefinitionError> {
        let state = self.state;
        self.optional(field)
            .map(|v| read(v).ok_or_else(|| malformed(state, field, format!("not {expected}"))))
            .transpose()
    }

    fn optional_string(&mut self, field: &'a str) -> Result<Option<String>, DefinitionError> {
        self.optional_as(field, |v| v.as_str().map(str::to_owned), "a string")
    }

    fn optional_u64(&mut self, field: &'a str) -> Result<Option<u64>, DefinitionError> {
        self.optional_as(field, Value::as_u64, "a whole number")
    }

    fn optional_f64(&mut self, field: &'a str) -> Result<Option<f64>, DefinitionError> {
        self.optional_as(field, Value::as_f64, "a number")
    }

    /// `Next` or `End: true`.
    fn next(&mut self) -> Result<Next, DefinitionError> {
        let next = self.optional_string("Next")?;
        let end = self.optional("End").and_then(Value::as_bool);
        match (next, end) {
            (Some(next), None) => Ok(Next::State(next)),
            (None, Some(true)) => Ok(Next::End),
            _ => Err(malformed(
                self.state,
                "Next",
                "needs exactly Next or End: true",
            )),
        }
    }

    fn done(self) -> Result<(), DefinitionError> {
        match self.map.keys().find(|k| !self.taken.contains(k.as_str())) {
            Some(field) => Err(unsupported(self.state, field, "unknown to the interpreter")),
            None => Ok(()),
        }
    }
}

fn strings(state: &str, field: &str, value: &Value) -> Result<Vec<String>, DefinitionError> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| malformed(state, field, "not a list of strings"))
}

/// Checks the `.$` values of a Parameters or ResultSelector template: a path, or the one
/// intrinsic the file uses.
fn check_template(state: &str, field: &str, value: &Value) -> Result<(), DefinitionError> {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key.ends_with(".$") {
                    let text = inner
                        .as_str()
                        .ok_or_else(|| malformed(state, field, format!("{key} is not a string")))?;
                    let supported = text.starts_with('$') || text.starts_with("States.MathAdd(");
                    if !supported {
                        return Err(unsupported(
                            state,
                            field,
                            format!("{key}: {text} (only paths and States.MathAdd)"),
                        ));
                    }
                } else {
                    check_template(state, field, inner)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_template(state, field, i)),
        _ => Ok(()),
    }
}

impl State {
    fn parse(name: &str, value: &Value) -> Result<State, DefinitionError> {
        let mut fields = Fields::new(name, value)?;
        let kind = fields.string("Type")?;
        fields.optional("Comment");
        let state = match kind.as_str() {
            "Task" => State::Task(Task::parse(name, &mut fields)?),
            "Pass" => {
                let parameters = fields.optional("Parameters").cloned();
                if let Some(p) = &parameters {
                    check_template(name, "Parameters", p)?;
                }
                State::Pass(Pass {
                    result: fields.optional("Result").cloned(),
                    parameters,
                    result_path: fields.optional_string("ResultPath")?,
                    next: fields.next()?,
                })
            }
            "Choice" => {
                let raw = fields.required("Choices")?;
                let items = raw
                    .as_array()
                    .ok_or_else(|| malformed(name, "Choices", "not a list"))?;
                let mut rules = Vec::new();
                for item in items {
                    let mut rule_fields = Fields::new(name, item)?;
                    let next = rule_fields.string("Next")?;
                    let rule = Rule::parse(name, &mut rule_fields)?;
                    rule_fields.done()?;
                    rules.push((rule, next));
                }
                State::Choice(Choice {
                    rules,
                    default: fields.optional_string("Default")?,
                })
            }
            "Wait" => State::Wait(Wait {
                seconds_path: fields.string("SecondsPath")?,
                next: fields.next()?,
            }),
            "Succeed" => State::Succeed,
            "Fail" => State::Fail {
                error: fields.string("Error")?,
                cause: fields.optional_string("Cause")?.unwrap_or_default(),
            },
            other => return Err(unsupported(name, "Type", other)),
        };
        fields.done()?;
        Ok(state)
    }
}

impl Rule {
    fn parse(state: &str, fields: &mut Fields<'_>) -> Result<Rule, DefinitionError> {
        if let Some(and) = fields.optional("And") {
            let items = and
                .as_array()
                .ok_or_else(|| malformed(state, "And", "not a list"))?;
            let mut rules = Vec::new();
            for item in items {
                let mut inner = Fields::new(state, item)?;
                rules.push(Rule::parse(state, &mut inner)?);
                inner.done()?;
            }
            return Ok(Rule::And(rules));
        }
        let variable = fields.string("Variable")?;
        let number = |v: &Value, field: &str| {
            v.as_f64()
                .ok_or_else(|| malformed(state, field, "not a number"))
        };
        let boolean = |v: &Value, field: &str| {
            v.as_bool()
                .ok_or_else(|| malformed(state, field, "not a boolean"))
        };
        let comparisons = [
            "IsPresent",
            "IsNumeric",
            "NumericEquals",
            "NumericLessThan",
            "NumericLessThanPath",
            "NumericGreaterThanEquals",
            "NumericLessThanEquals",
            "StringEquals",
        ];
        let mut found = None;
        for field in comparisons {
            if let Some(value) = fields.optional(field) {
                if found.is_some() {
                    return Err(malformed(state, field, "a second comparison in one rule"));
                }
                found = Some(match field {
                    "IsPresent" => Test::IsPresent(boolean(value, field)?),
                    "IsNumeric" => Test::IsNumeric(boolean(value, field)?),
                    "NumericEquals" => Test::NumericEquals(number(value, field)?),
                    "NumericLessThan" => Test::NumericLessThan(number(value, field)?),
                    "NumericLessThanPath" => Test::NumericLessThanPath(
                        value
                            .as_str()
                            .ok_or_else(|| malformed(state, field, "not a path"))?
                            .to_owned(),
                    ),
                    "NumericGreaterThanEquals" => {
                        Test::NumericGreaterThanEquals(number(value, field)?)
                    }
                    "NumericLessThanEquals" => Test::NumericLessThanEquals(number(value, field)?),
                    _ => Test::StringEquals(
                        value
                            .as_str()
                            .ok_or_else(|| malformed(state, field, "not a string"))?
                            .to_owned(),
                    ),
                });
            }
        }
        // A comparison the list above does not name is left over and refused by `done`.
        match found {
            Some(test) => Ok(Rule::Test { variable, test }),
            None => {
                let field = fields
                    .map
                    .keys()
                    .find(|k| !["Variable", "Next"].contains(&k.as_str()))
                    .map_or("Choices", String::as_str);
                Err(unsupported(
                    state,
                    field,
                    format!("the rule on {variable} has no comparison the simulator models"),
                ))
            }
        }
    }
}

impl Task {
    fn parse(name: &str, fields: &mut Fields<'_>) -> Result<Task, DefinitionError> {
        let resource = match fields.string("Resource")?.as_str() {
            "arn:aws:states:::lambda:invoke" => Resource::Lambda,
            "arn:aws:states:::lambda:invoke.waitForTaskToken" => Resource::LambdaCallback,
            "arn:aws:states:::sqs:sendMessage" => Resource::SqsSend,
            other => return Err(unsupported(name, "Resource", other)),
        };
        let parameters = fields.required("Parameters")?.clone();
        check_template(name, "Parameters", &parameters)?;
        let function = match resource {
            Resource::SqsSend => None,
            Resource::Lambda | Resource::LambdaCallback => {
                let raw = parameters["FunctionName"].as_str().unwrap_or_default();
                let function = raw
                    .strip_prefix("${")
                    .and_then(|s| s.strip_suffix("FunctionVersionArn}"))
                    .ok_or_else(|| {
                        unsupported(
                            name,
                            "Parameters.FunctionName",
                            format!("{raw:?} is not a ${{<Name>FunctionVersionArn}} placeholder"),
                        )
                    })?;
                Some(function.to_owned())
            }
        };
        let result_selector = fields.optional("ResultSelector").cloned();
        if let Some(selector) = &result_selector {
            check_template(name, "ResultSelector", selector)?;
        }
        let timeout = match (
            fields.optional_u64("TimeoutSeconds")?,
            fields.optional_string("TimeoutSecondsPath")?,
        ) {
            (Some(seconds), None) => Timeout::Seconds(seconds),
            (None, Some(path)) => Timeout::Path(path),
            _ => {
                return Err(malformed(
                    name,
                    "TimeoutSeconds",
                    "every Task needs exactly one of TimeoutSeconds and TimeoutSecondsPath",
                ))
            }
        };
        let mut retry = Vec::new();
        if let Some(raw) = fields.optional("Retry") {
            let items = raw
                .as_array()
                .ok_or_else(|| malformed(name, "Retry", "not a list"))?;
            for item in items {
                let mut f = Fields::new(name, item)?;
                let errors = strings(name, "Retry.ErrorEquals", f.required("ErrorEquals")?)?;
                let jitter = f.optional_string("JitterStrategy")?;
                let full_jitter = match jitter.as_deref() {
                    None | Some("NONE") => false,
                    Some("FULL") => true,
                    Some(other) => return Err(unsupported(name, "Retry.JitterStrategy", other)),
                };
                retry.push(Retrier {
                    errors,
                    interval_seconds: f.optional_f64("IntervalSeconds")?.unwrap_or(1.0),
                    backoff_rate: f.optional_f64("BackoffRate")?.unwrap_or(2.0),
                    max_attempts: f
                        .optional_u64("MaxAttempts")?
                        .map_or(3, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                    max_delay_seconds: f.optional_f64("MaxDelaySeconds")?,
                    full_jitter,
                });
                f.done()?;
            }
        }
        let mut catch = Vec::new();
        if let Some(raw) = fields.optional("Catch") {
            let items = raw
                .as_array()
                .ok_or_else(|| malformed(name, "Catch", "not a list"))?;
            for item in items {
                let mut f = Fields::new(name, item)?;
                catch.push(Catcher {
                    errors: strings(name, "Catch.ErrorEquals", f.required("ErrorEquals")?)?,
                    result_path: f.optional_string("ResultPath")?,
                    next: f.string("Next")?,
                });
                f.done()?;
            }
        }
        Ok(Task {
            resource,
            function,
            parameters,
            result_selector,
            result_path: fields.optional_string("ResultPath")?,
            timeout,
            retry,
            catch,
            next: fields.next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_repository_definition_loads_with_every_field_modelled() {
        let definition = Definition::of_repository().expect("the definition loads");
        assert!(definition.states.contains_key("AwaitDelivery"));
    }

    #[test]
    fn a_field_the_simulator_does_not_model_is_refused_naming_state_and_field() {
        let value = json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "Next": "B", "HeartbeatSeconds": 3},
                       "B": {"Type": "Succeed"}}
        });
        let error = Definition::from_value(&value).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "state A: field HeartbeatSeconds is not modelled by the simulator (unknown to the interpreter)"
        );
    }

    #[test]
    fn a_choice_comparison_the_simulator_does_not_model_is_refused_naming_it() {
        let value = json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Choice", "Default": "B",
                             "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "B"}]},
                       "B": {"Type": "Succeed"}}
        });
        let error = Definition::from_value(&value).expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("state A: field BooleanEquals is not modelled"),
            "{error}"
        );
    }

    #[test]
    fn a_target_that_is_not_a_state_is_refused() {
        let value = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}});
        let error = Definition::from_value(&value).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "state A: goes to Nowhere, which is not a state"
        );
    }

    #[test]
    fn a_state_type_the_simulator_does_not_model_is_refused() {
        let value = json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true}}});
        let error = Definition::from_value(&value).expect_err("refused");
        assert!(error.to_string().contains("field Type"), "{error}");
    }
}
