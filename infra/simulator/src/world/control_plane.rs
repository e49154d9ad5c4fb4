//! Step Functions' control plane and the workflow dead-letter queue, in process, for the
//! real recovery code (`order_core::recovery`: the operator's resume, the reconciler):
//! [`SimStepFunctions`] answers where an execution is and takes the starts and stops
//! asked of it, which the world then carries out ([`World::carry_out`]), throttling a
//! share of the starts in the seed's windows;
//! [`SimDeadLetterQueue`] keeps the orders parked for an operator.

use super::{Event, Execution, SimError, World};
use crate::world::{lock, Service, Shared, Trace};
use order_core::dead_letters::{DeadLetterBody, DeadLetterError, DeadLetterSender};
use order_core::recovery::{ExecutionState, Executions, RecoveryError};
use order_core::OrderId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The state machine, through its alias `live`, as the recovery code sees it.
const STATE_MACHINE: &str = "arn:aws:states:sim:000000000000:stateMachine:OrderWorkflow";

/// The ARN of the execution named `name`.
pub(super) fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:sim:execution:OrderWorkflow:{name}")
}

/// What the recovery code asked of Step Functions, for the world to carry out.
#[derive(Debug)]
pub(super) enum Asked {
    Start {
        id: OrderId,
        arn: String,
        input: Value,
    },
    Stop {
        arn: String,
    },
}

/// `StartExecution`, `DescribeExecution`, `StopExecution` and
/// `ListStateMachineVersions`, in process.
pub struct SimStepFunctions {
    /// The clock and the windows in which starts are throttled.
    shared: Arc<Shared>,
    /// The `config` every execution's input carries.
    config: Value,
    /// Where each execution is, by ARN.
    executions: Mutex<HashMap<String, ExecutionState>>,
    /// Starts and stops asked since the world last carried them out.
    asked: Mutex<Vec<Asked>>,
}

impl SimStepFunctions {
    pub(super) fn new(shared: Arc<Shared>, config: Value) -> SimStepFunctions {
        SimStepFunctions {
            shared,
            config,
            executions: Mutex::new(HashMap::new()),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// The input an execution of order `id` starts with, as `Workflow::start_on` builds it.
    pub(super) fn input(&self, id: &OrderId) -> Value {
        json!({"order_id": id, "config": self.config, "outage": {"waits": 0}})
    }

    /// The API started execution `arn`.
    pub(super) fn started(&self, arn: &str) {
        lock(&self.executions).insert(arn.to_owned(), ExecutionState::Running);
    }

    /// Execution `arn` ended with `status` (SUCCEEDED, FAILED, TIMED_OUT or ABORTED).
    pub(super) fn ended(&self, arn: &str, status: &str) {
        lock(&self.executions).insert(arn.to_owned(), ExecutionState::Ended(status.to_owned()));
    }

    /// The starts and stops asked so far, in the order asked.
    pub(super) fn take_asked(&self) -> Vec<Asked> {
        std::mem::take(&mut *lock(&self.asked))
    }
}

impl Executions for SimStepFunctions {
    fn state_machine_arn(&self) -> &str {
        "arn:aws:states:sim:000000000000:stateMachine:OrderWorkflow:live"
    }

    fn execution_arn(&self, name: &str) -> String {
        execution_arn(name)
    }

    async fn state(&self, arn: &str) -> Result<ExecutionState, RecoveryError> {
        self.shared.recovery_point().await;
        let state = lock(&self.executions)
            .get(arn)
            .cloned()
            .unwrap_or(ExecutionState::Missing);
        if state == ExecutionState::Missing {
            // The order is named in the execution's name: `<id>` or `<id>-r<n>`.
            let name = arn.rsplit(':').next().unwrap_or_default();
            let id = name.split("-r").next().and_then(OrderId::parse);
            if let Some(id) = id {
                self.shared.note(
                    &id,
                    Trace::Note(format!(
                        "  Step Functions: DescribeExecution {name}: does not exist"
                    )),
                );
            }
        }
        Ok(state)
    }

    async fn start_on(
        &self,
        _target: &str,
        id: &OrderId,
        name: &str,
    ) -> Result<String, RecoveryError> {
        self.shared.recovery_point().await;
        if self.shared.fails(Service::StartThrottling) {
            self.shared.note(
                id,
                Trace::Note(format!(
                    "  Step Functions: StartExecution {name} throttled (ThrottlingException)"
                )),
            );
            return Err(RecoveryError::Workflow {
                operation: "StartExecution",
                message: "ThrottlingException: Rate exceeded (simulated)".into(),
            });
        }
        let arn = execution_arn(name);
        let mut executions = lock(&self.executions);
        // Step Functions starts a name once: the same start again is the running
        // execution; a name whose execution ended is taken.
        match executions.get(&arn) {
            None => {
                executions.insert(arn.clone(), ExecutionState::Running);
                lock(&self.asked).push(Asked::Start {
                    id: id.clone(),
                    arn: arn.clone(),
                    input: self.input(id),
                });
                Ok(arn)
            }
            Some(ExecutionState::Ended(status)) => Err(RecoveryError::NameTaken {
                execution_arn: arn.clone(),
                status: status.clone(),
            }),
            Some(_) => Ok(arn),
        }
    }

    async fn stop(&self, arn: &str, _cause: &str) -> Result<(), RecoveryError> {
        self.shared.recovery_point().await;
        let mut executions = lock(&self.executions);
        match executions.get(arn) {
            Some(ExecutionState::Running) => {
                executions.insert(arn.to_owned(), ExecutionState::Ended("ABORTED".into()));
                lock(&self.asked).push(Asked::Stop {
                    arn: arn.to_owned(),
                });
                Ok(())
            }
            _ => Err(RecoveryError::Workflow {
                operation: "StopExecution",
                message: format!("{arn} is not running (simulated ExecutionDoesNotExist)"),
            }),
        }
    }

    async fn latest_version(&self) -> Result<Option<String>, RecoveryError> {
        self.shared.recovery_point().await;
        Ok(Some(format!("{STATE_MACHINE}:1")))
    }
}

/// The workflow dead-letter queue's `SendMessage`, in process.
#[derive(Default)]
pub struct SimDeadLetterQueue {
    sent: Mutex<Vec<DeadLetterBody>>,
}

impl SimDeadLetterQueue {
    /// The dead letters sent since the last call.
    pub(super) fn take_sent(&self) -> Vec<DeadLetterBody> {
        std::mem::take(&mut *lock(&self.sent))
    }
}

impl DeadLetterSender for SimDeadLetterQueue {
    async fn send(&self, body: &DeadLetterBody) -> Result<(), DeadLetterError> {
        lock(&self.sent).push(body.clone());
        Ok(())
    }
}

impl<'d> World<'d> {
    /// Carries out the starts and stops the recovery code asked for: a stopped execution
    /// ends ABORTED, its in-flight invocations going on unheard; a started one begins at
    /// the definition's start state. Starts run in the order of the orders' indexes, not
    /// in the order asked (the reconciler's follows the random order ids where two orders
    /// changed in the same millisecond), so that a seed replays.
    pub(super) fn carry_out(&mut self) -> Result<(), SimError> {
        let mut asked = self.step_functions.take_asked();
        let order_of = |this: &Self, asked: &Asked| match asked {
            Asked::Start { id, .. } => lock(&this.shared.index).get(id).copied(),
            Asked::Stop { arn } => this.by_arn.get(arn).map(|&e| this.executions[e].order),
        };
        let mut keyed = Vec::with_capacity(asked.len());
        for one in asked.drain(..) {
            let order = order_of(self, &one)
                .ok_or_else(|| SimError::World(format!("{one:?}: no such order")))?;
            keyed.push((order, one));
        }
        // Stable: a stop stays before the start that follows it for the same order.
        keyed.sort_by_key(|(order, _)| *order);
        for (order, one) in keyed {
            match one {
                Asked::Stop { arn } => {
                    let exec = self.by_arn[&arn];
                    if self.executions[exec].outcome.is_none() {
                        self.end_attempt(exec);
                        self.end(exec, super::Outcome::Aborted);
                    }
                }
                Asked::Start { arn, input, .. } => {
                    self.note_order(order, format!("  Step Functions: started {arn}"));
                    self.begin(order, arn, input);
                }
            }
        }
        Ok(())
    }

    /// A new execution of order `order` at the definition's start state.
    pub(super) fn begin(&mut self, order: usize, arn: String, input: Value) -> usize {
        let exec = self.executions.len();
        self.latest[order] = Some(exec);
        self.runs[order].push(exec);
        // Checked after the event: at most one execution runs, the order's owner.
        if let Some(id) = &self.ids[order] {
            self.shared.owner_changed(id);
        }
        self.by_arn.insert(arn.clone(), exec);
        self.step_functions.started(&arn);
        self.executions.push(Execution {
            order,
            arn,
            state: self.definition.start_at.clone(),
            input,
            started: self.now(),
            entered: self.now(),
            retries: Vec::new(),
            waiting: None,
            token: None,
            outcome: None,
            ended: 0,
        });
        self.after(0, Event::Step(exec));
        if self.shared.chance(self.options.faults.execution_dies) {
            let delay = self.shared.below(120_000);
            self.after(delay, Event::Die(exec));
        }
        exec
    }
}
