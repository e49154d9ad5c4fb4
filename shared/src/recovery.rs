//! Getting orders that stopped going again, without losing or repeating anything.
//!
//! - [`resume`]: a new execution for an unfinished order (`<id>-r<n>`). Every activity
//!   returns its recorded result when its step already succeeded, so the new execution
//!   replays the finished steps without calling a partner and carries on where the order
//!   stopped; a failed or cancelled order goes on to its compensations.
//! - [`reconcile`]: what the scheduled reconciler does: finds orders that are not final,
//!   have not changed for a grace period and have no running execution (the API stored
//!   the order but starting the execution failed, an execution was aborted or failed),
//!   and resumes them, or parks them in the dead-letter queue once they were resumed
//!   often enough. Idempotent and bounded per run; it reads the by-status index only,
//!   each run walking on from where the last one stopped ([`Ledger::reconcile_cursor`]).
//!
//! Both work over two small traits, [`Executions`] (what they need from Step Functions)
//! and [`DeadLetterSender`], implemented by [`Workflow`] and
//! [`DeadLetterQueue`](crate::dead_letters::DeadLetterQueue) on AWS and by the
//! deterministic simulator (`infra/simulator`) in process, so that both run this code.

use crate::dead_letters::{DeadLetterBody, DeadLetterError, DeadLetterSender};
use crate::order::OrderId;
use crate::status::OrderStatus;
use crate::store::{Cancellation, Claim, IndexPosition, Ledger, StoreError};
use serde::Serialize;

/// The workflow's run-time settings, handed to each execution in its input so that one
/// definition serves production (defaults in the definition) and fast local tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkflowConfig {
    /// How long the workflow waits before trying a step again once its fast retries are
    /// spent on infrastructure trouble (an outage, throttling, a crash).
    pub outage_wait_seconds: u64,
    /// How long it waits for the courier's delivery event.
    pub delivery_timeout_seconds: u64,
    /// How many such waits one execution may spend in all before the order goes to a
    /// person (the dead-letter queue); never to a rollback.
    pub outage_waits_allowed: u64,
}

impl WorkflowConfig {
    /// From `OUTAGE_WAIT_SECONDS`, `DELIVERY_TIMEOUT_SECONDS` and `OUTAGE_WAITS_ALLOWED`.
    pub fn from_env() -> Result<WorkflowConfig, crate::config::ConfigError> {
        Ok(WorkflowConfig {
            outage_wait_seconds: crate::config::positive("OUTAGE_WAIT_SECONDS")?,
            delivery_timeout_seconds: crate::config::positive("DELIVERY_TIMEOUT_SECONDS")?,
            outage_waits_allowed: crate::config::positive("OUTAGE_WAITS_ALLOWED")?,
        })
    }
}

/// The order workflow: its state machine and the settings every execution gets.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub client: aws_sdk_sfn::Client,
    pub state_machine_arn: String,
    pub config: WorkflowConfig,
}

/// Where an execution is, as Step Functions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    Running,
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE.
    Ended(String),
    /// Step Functions has no such execution.
    Missing,
}

/// What recovery needs from Step Functions: where an execution is, starting one under a
/// name, stopping one, and the releases to start on. [`Workflow`] on AWS; an in-process
/// workflow in the deterministic simulator (`infra/simulator`), so that both run the same
/// [`resume`], [`resume_on_latest`] and [`reconcile`].
pub trait Executions: Send + Sync {
    /// What new executions start on: on AWS the alias new orders get (`live`), or the
    /// state machine itself.
    fn state_machine_arn(&self) -> &str;

    /// The state machine itself, whatever version or alias
    /// [`state_machine_arn`](Executions::state_machine_arn) names.
    fn state_machine(&self) -> &str {
        unqualified_state_machine_arn(self.state_machine_arn())
    }

    /// Where the execution `arn` is; [`ExecutionState::Missing`] when there is none.
    fn state(
        &self,
        arn: &str,
    ) -> impl std::future::Future<Output = Result<ExecutionState, RecoveryError>> + Send;

    /// The ARN the execution named `name` gets, whichever version or alias starts it:
    /// known before it starts, so it is recorded on the order first
    /// ([`Ledger::claim_execution`]).
    fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine()
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }

    /// Starts an execution of order `id` named `name` on `target` (the state machine, a
    /// version or an alias) and returns its ARN. An execution of that name that exists
    /// already counts as started while it runs; one that has ended is
    /// [`RecoveryError::NameTaken`].
    fn start_on(
        &self,
        target: &str,
        id: &OrderId,
        name: &str,
    ) -> impl std::future::Future<Output = Result<String, RecoveryError>> + Send;

    /// Stops a running execution (ABORTED); its activities are not undone.
    fn stop(
        &self,
        arn: &str,
        cause: &str,
    ) -> impl std::future::Future<Output = Result<(), RecoveryError>> + Send;

    /// The newest published version of the state machine, or `None` when none was
    /// published.
    fn latest_version(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<String>, RecoveryError>> + Send;
}

/// A recovery step failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    #[error("Step Functions {operation} failed: {message}")]
    Workflow {
        operation: &'static str,
        message: String,
    },
    #[error("order {order_id} has ended {status}; there is nothing to resume")]
    Ended {
        order_id: OrderId,
        status: OrderStatus,
    },
    #[error("order {order_id} still has a running execution ({execution_arn}); to stop it and resume on the newest release: orderctl orders resume --latest {order_id}")]
    StillRunning {
        order_id: OrderId,
        execution_arn: String,
    },
    #[error("{0}")]
    NotSupported(String),
    /// The execution's name is taken by one that has ended (Step Functions keeps names
    /// for 90 days): it is not started again, and does not drive the order.
    #[error(
        "execution {execution_arn} exists already and ended {status}: it was not started again"
    )]
    NameTaken {
        execution_arn: String,
        status: String,
    },
    #[error("order {order_id}: someone else resumed it meanwhile; its execution is now {execution_arn:?}")]
    ResumedElsewhere {
        order_id: OrderId,
        execution_arn: Option<String>,
    },
}

impl From<RecoveryError> for lambda_runtime::Diagnostic {
    fn from(error: RecoveryError) -> Self {
        let name = match &error {
            RecoveryError::Store(StoreError::Unavailable { .. }) => "Store.Unavailable",
            RecoveryError::Workflow { .. } => "Workflow.Unavailable",
            RecoveryError::DeadLetters(_) => "DeadLetters.Unavailable",
            _ => "Internal.Error",
        };
        lambda_runtime::Diagnostic {
            error_type: name.to_owned(),
            error_message: error.to_string(),
        }
    }
}

fn sfn_error<E, R>(
    operation: &'static str,
    error: &aws_sdk_sfn::error::SdkError<E, R>,
) -> RecoveryError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RecoveryError::Workflow {
        operation,
        message: aws_sdk_sfn::error::DisplayErrorContext(error).to_string(),
    }
}

/// The state machine an ARN names, without the version or alias qualifier it may carry:
/// `arn:aws:states:<region>:<account>:stateMachine:<name>[:<version or alias>]`.
pub fn unqualified_state_machine_arn(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((end, _)) => &arn[..end],
        None => arn,
    }
}

impl Workflow {
    /// The workflow a function starts executions of: `STATE_MACHINE_ARN` (the alias new
    /// orders run on) and the [`WorkflowConfig`] from the environment.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Workflow, crate::config::ConfigError> {
        Ok(Workflow {
            client: aws_sdk_sfn::Client::new(aws),
            state_machine_arn: crate::config::required("STATE_MACHINE_ARN")?,
            config: WorkflowConfig::from_env()?,
        })
    }

    /// The state machine itself, whatever version or alias `state_machine_arn` names.
    pub fn state_machine(&self) -> &str {
        unqualified_state_machine_arn(&self.state_machine_arn)
    }

    /// The ARN Step Functions gives the execution named `name` (also when it was started
    /// through a version or an alias).
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine()
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }

    /// Starts an execution for order `id` named `name` through `state_machine_arn` (on
    /// AWS the alias `live`: the release new orders get); an execution of that name that
    /// exists already counts as started (Step Functions refuses a second one).
    pub async fn start(&self, id: &OrderId, name: &str) -> Result<String, RecoveryError> {
        self.start_on(&self.state_machine_arn, id, name).await
    }

    /// Like [`Workflow::start`], on `target`: the state machine, a version or an alias.
    pub async fn start_on(
        &self,
        target: &str,
        id: &OrderId,
        name: &str,
    ) -> Result<String, RecoveryError> {
        // The outage counter starts here, so the workflow enters no state to set it.
        let input =
            serde_json::json!({"order_id": id, "config": self.config, "outage": {"waits": 0}});
        let result = self
            .client
            .start_execution()
            .state_machine_arn(target)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.execution_arn),
            // Taken: by this very execution started before (a retry whose first answer
            // was lost) it counts as started only while it runs.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_already_exists()) =>
            {
                let arn = self.execution_arn(name);
                match self.state(&arn).await? {
                    ExecutionState::Running => Ok(arn),
                    ExecutionState::Ended(status) => Err(RecoveryError::NameTaken {
                        execution_arn: arn,
                        status,
                    }),
                    ExecutionState::Missing => Err(RecoveryError::Workflow {
                        operation: "StartExecution",
                        message: format!(
                            "the name {name} is taken, yet no execution {arn} can be described"
                        ),
                    }),
                }
            }
            Err(error) => Err(sfn_error("StartExecution", &error)),
        }
    }

    /// Where the execution `arn` is.
    pub async fn state(&self, arn: &str) -> Result<ExecutionState, RecoveryError> {
        let result = self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await;
        match result {
            Ok(output) if output.status.as_str() == "RUNNING" => Ok(ExecutionState::Running),
            Ok(output) => Ok(ExecutionState::Ended(output.status.as_str().to_owned())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_does_not_exist()) =>
            {
                Ok(ExecutionState::Missing)
            }
            Err(error) => Err(sfn_error("DescribeExecution", &error)),
        }
    }

    /// Stops a running execution (AWS: ABORTED). Its activities are not undone: the
    /// order keeps its status, and whatever resumes it replays the finished steps.
    pub async fn stop(&self, arn: &str, cause: &str) -> Result<(), RecoveryError> {
        self.client
            .stop_execution()
            .execution_arn(arn)
            .cause(cause)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| sfn_error("StopExecution", &error))
    }

    /// The newest published version of the state machine, or `None` when none was
    /// published (the local stack: moto cannot start executions through versions).
    pub async fn latest_version(&self) -> Result<Option<String>, RecoveryError> {
        let output = self
            .client
            .list_state_machine_versions()
            .state_machine_arn(self.state_machine())
            .max_results(1)
            .send()
            .await
            .map_err(|error| sfn_error("ListStateMachineVersions", &error))?;
        // Step Functions lists versions newest first.
        Ok(output
            .state_machine_versions()
            .first()
            .map(|v| v.state_machine_version_arn().to_owned()))
    }

    /// Step Functions' own redrive of a failed execution (from the state that failed).
    /// Backends without it (the local emulator) get a clear [`RecoveryError::NotSupported`].
    pub async fn redrive(&self, arn: &str) -> Result<(), RecoveryError> {
        let result = self
            .client
            .redrive_execution()
            .execution_arn(arn)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let text = aws_sdk_sfn::error::DisplayErrorContext(&error).to_string();
                // The local emulator (moto) has no RedriveExecution: it answers a bare
                // "500 Internal Server Error" page; other backends say so in words.
                let status = error.raw_response().map(|r| r.status().as_u16());
                let unsupported = match status {
                    Some(500) => text.contains("<title>500 Internal Server Error</title>"),
                    Some(400 | 404 | 501) => {
                        text.contains("not yet implemented")
                            || text.contains("has not been implemented")
                            || text.contains("UnknownOperation")
                            || text.contains("InvalidAction")
                            || text.contains("not supported")
                            || text.contains("NotImplemented")
                    }
                    _ => false,
                };
                if unsupported {
                    Err(RecoveryError::NotSupported(
                        "this Step Functions backend does not support RedriveExecution; use `orderctl orders resume <order id>`, which starts a new execution that skips the completed steps".to_owned(),
                    ))
                } else {
                    Err(RecoveryError::Workflow {
                        operation: "RedriveExecution",
                        message: text,
                    })
                }
            }
        }
    }
}

// Each hands back the inherent method's future as it is: a wrapping `async fn` would add
// a layer to every caller's future (the reconciler's `main` is already deep).
impl Executions for Workflow {
    fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    fn state(
        &self,
        arn: &str,
    ) -> impl std::future::Future<Output = Result<ExecutionState, RecoveryError>> + Send {
        Workflow::state(self, arn)
    }

    fn start_on(
        &self,
        target: &str,
        id: &OrderId,
        name: &str,
    ) -> impl std::future::Future<Output = Result<String, RecoveryError>> + Send {
        Workflow::start_on(self, target, id, name)
    }

    fn stop(
        &self,
        arn: &str,
        cause: &str,
    ) -> impl std::future::Future<Output = Result<(), RecoveryError>> + Send {
        Workflow::stop(self, arn, cause)
    }

    fn latest_version(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<String>, RecoveryError>> + Send {
        Workflow::latest_version(self)
    }
}

/// A resumed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resumption {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub execution_name: String,
    pub execution_arn: String,
    /// What the new execution was started on: the alias (the release new orders get),
    /// the newest state machine version (`resume_on_latest`), or the state machine.
    pub release: String,
    /// The execution that was still running and was stopped first (`resume_on_latest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Starts a new execution for an unfinished order whose execution is not running. An
/// order that never had one gets the execution the API would have started (named after
/// the order); later ones are `<id>-r<n>`. Clears the order's parked mark.
pub async fn resume(
    store: &impl Ledger,
    workflow: &impl Executions,
    id: &OrderId,
) -> Result<Resumption, RecoveryError> {
    resume_on(store, workflow, id, None).await
}

/// The hotfix path: moves an unfinished order onto the newest release. Its running
/// execution, if any, is stopped first (it may be stuck on, or failing because of, the
/// release it started on); then `<id>-r<n>` starts on the newest published state machine
/// version, whatever share of new orders the alias gives it during a canary (on the
/// state machine itself where no version is published, as on the local stack). The
/// ledger replays every finished step, so no partner is called again for them.
pub async fn resume_on_latest(
    store: &impl Ledger,
    workflow: &impl Executions,
    id: &OrderId,
) -> Result<Resumption, RecoveryError> {
    let target = workflow
        .latest_version()
        .await?
        .unwrap_or_else(|| workflow.state_machine().to_owned());
    resume_on(store, workflow, id, Some(target)).await
}

/// [`resume`] (`latest: None`: through `workflow.state_machine_arn`, refusing while an
/// execution runs) or [`resume_on_latest`] (`Some(target)`: stopping a running one).
async fn resume_on(
    store: &impl Ledger,
    workflow: &impl Executions,
    id: &OrderId,
    latest: Option<String>,
) -> Result<Resumption, RecoveryError> {
    let order = store.require_order(id).await?;
    if order.status.is_final() {
        return Err(RecoveryError::Ended {
            order_id: id.clone(),
            status: order.status,
        });
    }
    let mut stopped = None;
    if let Some(arn) = &order.execution_arn {
        let state = workflow.state(arn).await?;
        if state == ExecutionState::Missing && order.parked.is_none() {
            // Claimed, and never started (its start met our infrastructure's failure):
            // start that one now, under its name, without counting another resume. Two
            // resumers that both get here start one execution: Step Functions takes a
            // name once. (A parked order gets a new claim, which clears the mark.)
            return start_claimed(workflow, id, arn, order.status, latest).await;
        }
        if state == ExecutionState::Running {
            if latest.is_none() {
                return Err(RecoveryError::StillRunning {
                    order_id: id.clone(),
                    execution_arn: arn.clone(),
                });
            }
            workflow
                .stop(
                    arn,
                    "orderctl orders resume --latest: moved to the newest release",
                )
                .await?;
            tracing::info!(order_id = %id, execution = %arn, "stopped the running execution to move the order to the newest release");
            stopped = Some(arn.clone());
        }
    }
    // The owner is recorded before it acts: the new execution's ARN (known from its
    // name) and the resume count, on condition that the order still has the count and
    // execution read above. Of racing resumers (an operator, the console, `dlq replay`,
    // two reconciler runs) exactly one gets here; the others learn who won.
    let name = match order.execution_arn {
        None => id.to_string(),
        Some(_) => format!("{id}-r{}", order.resumes + 1),
    };
    claim_next(store, workflow, &order, order.status, &name).await?;
    let release = latest.unwrap_or_else(|| workflow.state_machine_arn().to_owned());
    // A start that fails leaves the claimed execution missing: the next resume (the
    // reconciler's) finds it so and starts the one after it.
    let arn = workflow.start_on(&release, id, &name).await?;
    tracing::info!(order_id = %id, execution = %name, status = %order.status, release = %release, "order resumed");
    Ok(Resumption {
        order_id: id.clone(),
        status: order.status,
        execution_name: name,
        execution_arn: arn,
        release,
        stopped,
    })
}

/// The partner effects an order still holds: its forward steps with an effect that began
/// (a step that failed may have acted) whose compensation has not succeeded, by step
/// name. None for an order rolled back as it should be, or on which nothing began.
pub fn effects_held(steps: &[crate::store::StepRecord]) -> Vec<&'static str> {
    let succeeded = |name: &str| {
        steps
            .iter()
            .any(|s| s.step == name && s.status == crate::store::StepStatus::Succeeded)
    };
    crate::steps::ALL
        .iter()
        .filter(|step| step.role == crate::steps::StepRole::Forward)
        .filter_map(|step| Some((step.name, step.compensation?)))
        .filter(|(name, _)| steps.iter().any(|s| s.step == *name))
        .filter(|(_, undo)| !succeeded(undo))
        .map(|(name, _)| name)
        .collect()
}

/// Finishes the rollback of a CANCELLED order that still holds partner effects: data
/// written before a cancel could only end an order at once when nothing had begun (a
/// cancel then took the "never started" shortcut while an unrecorded execution had
/// reserved stock, taken the payment...). Starts `<id>-r<n>` (recorded first, like every
/// resume): its finished steps replay from the ledger, the first unfinished one meets the
/// CANCELLED order (`Order.Cancelled`), and the compensations undo what it holds; the
/// order stays CANCELLED. `orderctl orders holding-effects` finds such orders;
/// `orderctl orders undo` comes here.
pub async fn undo_cancelled(
    store: &impl Ledger,
    workflow: &impl Executions,
    id: &OrderId,
) -> Result<Resumption, RecoveryError> {
    let (order, steps) = store
        .get_order_with_steps(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
    if order.status != OrderStatus::Cancelled {
        return Err(RecoveryError::NotSupported(format!(
            "order {id} is {}: only a CANCELLED order that still holds effects is undone this way (an unfinished order: orderctl orders resume)",
            order.status
        )));
    }
    let held = effects_held(&steps);
    if held.is_empty() {
        return Err(RecoveryError::NotSupported(format!(
            "order {id} is CANCELLED and holds no partner effect: nothing to undo"
        )));
    }
    if let Some(arn) = &order.execution_arn {
        if workflow.state(arn).await? == ExecutionState::Running {
            return Err(RecoveryError::StillRunning {
                order_id: id.clone(),
                execution_arn: arn.clone(),
            });
        }
    }
    let name = format!("{id}-r{}", order.resumes + 1);
    claim_next(store, workflow, &order, OrderStatus::Cancelled, &name).await?;
    let release = workflow.state_machine_arn().to_owned();
    let started = workflow.start_on(&release, id, &name).await?;
    tracing::warn!(order_id = %id, execution = %name, held = ?held, "undoing what a CANCELLED order still holds");
    Ok(Resumption {
        order_id: id.clone(),
        status: order.status,
        execution_name: name,
        execution_arn: started,
        release,
        stopped: None,
    })
}

/// Records the execution named `name` as the order's owner, with one more resume, on
/// condition that the order is still as `order` was read (its count and execution, and
/// not ended, unless it was read `read_status` CANCELLED to be undone). Of racing
/// starters exactly one gets past this; the others learn who won
/// ([`RecoveryError::ResumedElsewhere`]) or that the order ended ([`RecoveryError::Ended`]).
async fn claim_next(
    store: &impl Ledger,
    workflow: &impl Executions,
    order: &crate::store::OrderRecord,
    read_status: OrderStatus,
    name: &str,
) -> Result<(), RecoveryError> {
    let id = &order.order_id;
    let arn = workflow.execution_arn(name);
    let claim = Claim {
        read_status,
        read_resumes: order.resumes,
        read_arn: order.execution_arn.as_deref(),
        resumes: order.resumes + 1,
        arn: &arn,
    };
    match store.claim_execution(id, &claim).await {
        Ok(()) => Ok(()),
        Err(StoreError::Claimed { execution_arn, .. }) => Err(RecoveryError::ResumedElsewhere {
            order_id: id.clone(),
            execution_arn,
        }),
        // It ended since it was read (its execution finished it, or a cancel).
        Err(StoreError::Conflict { actual, .. }) if actual.is_final() => {
            Err(RecoveryError::Ended {
                order_id: id.clone(),
                status: actual,
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// Starts the execution `arn` recorded on the order (claimed) that never started.
async fn start_claimed(
    workflow: &impl Executions,
    id: &OrderId,
    arn: &str,
    status: OrderStatus,
    latest: Option<String>,
) -> Result<Resumption, RecoveryError> {
    let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
    let release = latest.unwrap_or_else(|| workflow.state_machine_arn().to_owned());
    let started = workflow.start_on(&release, id, &name).await?;
    tracing::info!(order_id = %id, execution = %name, status = %status, release = %release, "order resumed on the execution claimed before");
    Ok(Resumption {
        order_id: id.clone(),
        status,
        execution_name: name,
        execution_arn: started,
        release,
        stopped: None,
    })
}

/// Starts the workflow of a placed order: the API's, for a new order and for a retry of
/// one whose start failed. The execution named after the order is recorded as its owner
/// first (a claim, from the order as read: no execution yet), then started; a retry that
/// finds it recorded starts it again (Step Functions takes the same name and input twice
/// as one execution). Nothing is started for an order that moved on from ACCEPTED or that
/// another execution drives. Returns the ARN of the execution started.
pub async fn start_placed(
    store: &impl Ledger,
    workflow: &impl Executions,
    order: &crate::store::OrderRecord,
) -> Result<Option<String>, RecoveryError> {
    let id = &order.order_id;
    if order.status != OrderStatus::Accepted {
        return Ok(None);
    }
    let arn = workflow.execution_arn(id.as_str());
    match order.execution_arn.as_deref() {
        Some(recorded) if recorded != arn => return Ok(None),
        Some(_) => {}
        None => {
            let claim = Claim {
                read_status: order.status,
                read_resumes: order.resumes,
                read_arn: None,
                resumes: order.resumes,
                arn: &arn,
            };
            match store.claim_execution(id, &claim).await {
                Ok(()) => {}
                // Another starter recorded it, or a cancel ended it first.
                Err(StoreError::Claimed { .. } | StoreError::Conflict { .. }) => return Ok(None),
                Err(error) => return Err(error.into()),
            }
        }
    }
    match workflow
        .start_on(workflow.state_machine_arn(), id, id.as_str())
        .await
    {
        Ok(started) => Ok(Some(started)),
        // Started before and ended without ending the order (the reconciler resumes it
        // onto `<id>-r1`): nothing to start now.
        Err(RecoveryError::NameTaken { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Cancels an order that has not shipped. An order on which nothing has begun (no
/// execution recorded, no step begun) ends CANCELLED at once, decided by the same
/// conditional write that ends it: since every execution is recorded on the order before
/// it starts ([`Ledger::claim_execution`]), no execution can be running behind it. Any
/// other order moves to CANCELLING, and its execution, at its next step, runs the
/// compensations and ends it CANCELLED. The API's cancel route, the console and
/// `orderctl orders cancel` all come here.
pub async fn cancel(store: &impl Ledger, id: &OrderId) -> Result<Cancellation, StoreError> {
    let cancellation = store.cancel(id).await?;
    match &cancellation {
        Cancellation::Started(record) if record.status == OrderStatus::Cancelled => {
            tracing::info!(order_id = %id, "cancelled before anything began");
        }
        Cancellation::Started(_) => {
            tracing::info!(order_id = %id, "cancellation requested; the workflow will roll the order back");
        }
        _ => {}
    }
    Ok(cancellation)
}

/// How far the reconciler goes in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Orders that changed more recently than this are left alone (their workflow may be
    /// about to move them).
    pub grace: chrono::Duration,
    /// At most this many orders are looked at per run.
    pub limit: usize,
    /// An order resumed this many times is parked instead.
    pub max_resumes: u32,
}

impl ReconcileOptions {
    /// From `RECONCILE_GRACE_SECONDS`, `RECONCILE_LIMIT` and `MAX_RESUMES`.
    pub fn from_env() -> Result<ReconcileOptions, crate::config::ConfigError> {
        let grace = crate::config::positive("RECONCILE_GRACE_SECONDS")?;
        Ok(ReconcileOptions {
            grace: chrono::Duration::seconds(i64::try_from(grace).unwrap_or(i64::MAX)),
            limit: usize::try_from(crate::config::positive("RECONCILE_LIMIT")?)
                .unwrap_or(usize::MAX),
            max_resumes: u32::try_from(crate::config::number("MAX_RESUMES")?).unwrap_or(u32::MAX),
        })
    }
}

/// What the reconciler did with one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Its execution is running: nothing to do.
    Running { execution_arn: String },
    /// Started a new execution.
    Resumed { execution_arn: String },
    /// Put in the dead-letter queue.
    Parked { reason: String },
    /// Parked before and not resumed since: left for the operator.
    AlreadyParked,
    /// It changed since the index was read (a resume, a step, a cancel): left alone, for
    /// a later run to find still if it is.
    Changed,
    /// Could not be reconciled (our infrastructure failed on it): the run went on, and a
    /// later run tries it again.
    Failed { error: String },
}

/// One order the reconciler looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub order_id: OrderId,
    pub status: OrderStatus,
    #[serde(flatten)]
    pub action: Action,
}

/// The statuses an order can stand in without having ended.
pub fn unfinished_statuses() -> impl Iterator<Item = OrderStatus> {
    OrderStatus::ALL.iter().copied().filter(|s| !s.is_final())
}

/// What one anonymising pass did ([`anonymise_ended`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Anonymising {
    /// The orders whose personal data it removed.
    pub anonymised: Vec<OrderId>,
    /// Ended orders it looked at (anonymised before, or changed meanwhile, included).
    pub looked_at: usize,
    /// Whether it stopped at its limit in some status: the next pass goes on from there.
    pub more: bool,
}

/// The name under which the anonymising pass keeps its place in the by-status index of
/// a final status (`Ledger::reconcile_cursor`).
fn anonymiser_cursor(status: OrderStatus) -> String {
    format!("anonymiser/{status}")
}

/// Removes the personal data of orders that ended before `before` (an RFC 3339 time:
/// now minus the retention period), at most `limit` per final status, going on from
/// where the last pass stopped: an order ends once, at its last change, so the by-status
/// index lists ended orders in the order they ended, and each pass starts after the last
/// one it looked at. An order changed meanwhile is left for a later pass's reader (it is
/// not anonymised on a stale read).
pub async fn anonymise_ended(
    store: &(impl Ledger + crate::store::Retention),
    before: &str,
    limit: usize,
) -> Result<Anonymising, StoreError> {
    let mut pass = Anonymising::default();
    for status in OrderStatus::ALL.iter().copied().filter(|s| s.is_final()) {
        let cursor = anonymiser_cursor(status);
        let orders = match store.reconcile_cursor(&cursor).await? {
            Some(at) if at.status == status => {
                store
                    .orders_in_status_after(status, &at.key, Some(before), limit)
                    .await?
            }
            _ => store.orders_in_status(status, Some(before), limit).await?,
        };
        pass.looked_at += orders.len();
        pass.more |= orders.len() >= limit;
        for order in &orders {
            if order.anonymised_at.is_some() {
                continue;
            }
            match store.anonymise(order).await {
                Ok(()) => {
                    tracing::info!(order_id = %order.order_id, "personal data removed after the retention period");
                    pass.anonymised.push(order.order_id.clone());
                }
                Err(StoreError::Changed { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        if let Some(last) = orders.last() {
            store
                .set_reconcile_cursor(&cursor, Some(&IndexPosition::of(last)))
                .await?;
        }
    }
    Ok(pass)
}

/// One reconciler run: see the module documentation. Returns what it did per order.
pub async fn reconcile(
    store: &impl Ledger,
    workflow: &impl Executions,
    escalation: Escalation<'_, impl DeadLetterSender>,
    options: ReconcileOptions,
) -> Result<Vec<Reconciled>, RecoveryError> {
    reconcile_at(store, workflow, escalation, options, chrono::Utc::now()).await
}

/// Where the reconciler puts an order it gives up on: a dead letter for the operators'
/// queue (its `Order Needs Operator` event for integrators is written with the park, to
/// the outbox).
pub struct Escalation<'a, D> {
    pub dead_letters: &'a D,
}

impl<D> Clone for Escalation<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D> Copy for Escalation<'_, D> {}

/// [`reconcile`] as if it were `now`: orders that changed after `now - grace` are left
/// alone, and a parked order's dead letter is dated `now`. For a simulated clock.
pub async fn reconcile_at(
    store: &impl Ledger,
    workflow: &impl Executions,
    escalation: Escalation<'_, impl DeadLetterSender>,
    options: ReconcileOptions,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Reconciled>, RecoveryError> {
    let cutoff = (now - options.grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let start = store.reconcile_cursor(RECONCILER).await?;
    let mut done = Vec::new();
    let mut last = None;
    for stretch in rotation(start.as_ref(), &cutoff) {
        let left = options.limit.saturating_sub(done.len());
        if left == 0 {
            break;
        }
        let orders = match stretch.after {
            Some(after) => {
                store
                    .orders_in_status_after(stretch.status, after, Some(&stretch.before), left)
                    .await?
            }
            None => {
                store
                    .orders_in_status(stretch.status, Some(&stretch.before), left)
                    .await?
            }
        };
        for order in orders {
            // One order's failure is reported; the run goes on to the next.
            let action = match reconcile_order(store, workflow, escalation, &order, options, now)
                .await
            {
                Ok(action) => action,
                Err(error) => {
                    tracing::error!(order_id = %order.order_id, status = %order.status, %error, "could not reconcile the order; the run goes on");
                    Action::Failed {
                        error: error.to_string(),
                    }
                }
            };
            tracing::info!(order_id = %order.order_id, status = %order.status, ?action, "reconciled");
            last = Some(IndexPosition::of(&order));
            done.push(Reconciled {
                order_id: order.order_id,
                status: order.status,
                action,
            });
        }
    }
    // Stopped at the limit: the next run walks on from here. Otherwise every order was
    // looked at: the next run starts from the oldest again.
    let stop = last.filter(|_| done.len() >= options.limit);
    if stop != start {
        store
            .set_reconcile_cursor(RECONCILER, stop.as_ref())
            .await?;
    }
    Ok(done)
}

/// The name of the reconciler's cursor ([`Ledger::reconcile_cursor`]): the scheduled
/// reconciler and `orderctl reconcile` walk on from where either stopped.
pub const RECONCILER: &str = "reconciler";

/// One stretch of the by-status index a reconciler run walks: the orders in `status`
/// after the one at `after` (from the oldest when `None`) whose sort key is below
/// `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stretch<'a> {
    status: OrderStatus,
    after: Option<&'a str>,
    before: String,
}

/// The stretches of the by-status index a run walks, in order: from just after where the
/// last run stopped (`start`) to the end of the unfinished statuses, then from the first
/// of them round to where it started, every order unchanged since `cutoff` once. So a
/// run that stops at its limit among orders whose executions run (parcels waiting for
/// their courier) leaves the next run to go on past them instead of starting again from
/// the same oldest orders.
fn rotation<'a>(start: Option<&'a IndexPosition>, cutoff: &str) -> Vec<Stretch<'a>> {
    let statuses: Vec<OrderStatus> = unfinished_statuses().collect();
    let first = start
        .and_then(|start| statuses.iter().position(|s| *s == start.status))
        .unwrap_or(0);
    let mut stretches: Vec<Stretch<'a>> = (0..statuses.len())
        .map(|i| Stretch {
            status: statuses[(first + i) % statuses.len()],
            after: None,
            before: cutoff.to_owned(),
        })
        .collect();
    if let Some(start) = start.filter(|start| statuses.contains(&start.status)) {
        stretches[0].after = Some(start.key.as_str());
        // Round to where it started, the order at `start` included: no sort key
        // (`<time>#<id>`, ids of one length) begins with another, so every later key
        // differs from it within its length and sorts above it with anything appended.
        let up_to = format!("{}~", start.key);
        stretches.push(Stretch {
            status: start.status,
            after: None,
            before: std::cmp::min(cutoff.to_owned(), up_to),
        });
    }
    stretches
}

/// What the reconciler does with one order it found in the by-status index (`listed`, a
/// copy that may be stale): read again, it is left alone if it changed since, resumed, or
/// parked on condition that it is still as read.
async fn reconcile_order(
    store: &impl Ledger,
    workflow: &impl Executions,
    escalation: Escalation<'_, impl DeadLetterSender>,
    listed: &crate::store::OrderRecord,
    options: ReconcileOptions,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Action, RecoveryError> {
    let order = &store.require_order(&listed.order_id).await?;
    if order.version != listed.version || order.status.is_final() {
        return Ok(Action::Changed);
    }
    if let Some(parked) = &order.parked {
        // Parked longer than the grace period with its letter still pending: by a run
        // that died before its dead letter went out (or by a late delivery, which sends
        // none itself): send it now. A younger pending letter is the parker's, about to
        // go out: another run sending it too would send two.
        let pending_long = parked.letter_pending
            && chrono::DateTime::parse_from_rfc3339(&parked.at).map_or(true, |at| {
                now - at.with_timezone(&chrono::Utc) > options.grace
            });
        if pending_long {
            send_dead_letter(store, escalation, order, &parked.reason, now).await?;
            return Ok(Action::Parked {
                reason: parked.reason.clone(),
            });
        }
        return Ok(Action::AlreadyParked);
    }
    let state = match &order.execution_arn {
        None => ExecutionState::Missing,
        Some(arn) => workflow.state(arn).await?,
    };
    let why = match (&state, &order.execution_arn) {
        (ExecutionState::Running, Some(arn)) => {
            return Ok(Action::Running {
                execution_arn: arn.clone(),
            })
        }
        (ExecutionState::Ended(status), _) if status == "SUCCEEDED" => {
            // The workflow ended but the order did not: nothing automatic can be trusted.
            return park(
                store,
                escalation,
                order,
                format!(
                    "its execution SUCCEEDED but the order is still {}",
                    order.status
                ),
                now,
            )
            .await;
        }
        (ExecutionState::Ended(status), _) => format!("its execution ended {status}"),
        (_, None) => "no execution was ever started for it".to_owned(),
        (_, Some(_)) => "its execution does not exist".to_owned(),
    };
    // A claimed execution that never started is started under its name, whatever the
    // count: its start met our infrastructure's failure, which waits and never parks.
    let never_started = matches!(
        (&state, &order.execution_arn),
        (ExecutionState::Missing, Some(_))
    );
    if order.resumes >= options.max_resumes && !never_started {
        return park(
            store,
            escalation,
            order,
            format!(
                "{why}, and it was resumed {} times already (the most the reconciler tries)",
                order.resumes
            ),
            now,
        )
        .await;
    }
    match resume(store, workflow, &order.order_id).await {
        Ok(resumed) => Ok(Action::Resumed {
            execution_arn: resumed.execution_arn,
        }),
        // Moved on or restarted by someone else since it was read: nothing to do now.
        Err(RecoveryError::Ended { .. }) => Ok(Action::Running {
            execution_arn: String::new(),
        }),
        Err(RecoveryError::ResumedElsewhere { execution_arn, .. }) => Ok(Action::Running {
            execution_arn: execution_arn.unwrap_or_default(),
        }),
        Err(RecoveryError::StillRunning { execution_arn, .. }) => {
            Ok(Action::Running { execution_arn })
        }
        Err(error) => Err(error),
    }
}

async fn park(
    store: &impl Ledger,
    escalation: Escalation<'_, impl DeadLetterSender>,
    order: &crate::store::OrderRecord,
    reason: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Action, RecoveryError> {
    // The park goes first, conditional on the order as read and not parked: of racing
    // runs (the schedule's, `orderctl reconcile`) one parks, and only it sends the dead
    // letter. A run that dies in between leaves the letter pending for the next run.
    let event = crate::events::OrderEvent::needs_operator(order, &reason);
    match store.park(order, &reason, &event).await {
        Ok(()) => {}
        Err(StoreError::Changed { .. }) => {
            tracing::info!(order_id = %order.order_id, %reason, "the order changed (resumed, moved or parked by another) before it was parked; it is left alone");
            return Ok(Action::Changed);
        }
        Err(error) => return Err(error.into()),
    }
    send_dead_letter(store, escalation, order, &reason, now).await?;
    tracing::warn!(order_id = %order.order_id, %reason, "order parked in the dead-letter queue");
    Ok(Action::Parked { reason })
}

/// Sends the parked order's dead letter to the operators' queue, then clears its pending
/// mark.
async fn send_dead_letter(
    store: &impl Ledger,
    escalation: Escalation<'_, impl DeadLetterSender>,
    order: &crate::store::OrderRecord,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), RecoveryError> {
    escalation
        .dead_letters
        .send(&DeadLetterBody {
            order_id: order.order_id.to_string(),
            execution_arn: order.execution_arn.clone(),
            failed_step: order.failure.as_ref().map(|f| f.step.clone()),
            error: Some("Reconciler.GaveUp".to_owned()),
            cause: Some(format!("order is {}: {reason}", order.status)),
            at: Some(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            source: "reconciler".to_owned(),
        })
        .await?;
    store.dead_letter_sent(&order.order_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler's options of these tests: the template's 15-minute grace period,
    /// `limit` orders a run, `max_resumes` resumes before a park.
    fn options(limit: usize, max_resumes: u32) -> ReconcileOptions {
        ReconcileOptions {
            grace: chrono::Duration::seconds(900),
            limit,
            max_resumes,
        }
    }

    fn escalation(letters: &FakeDeadLetters) -> Escalation<'_, FakeDeadLetters> {
        Escalation {
            dead_letters: letters,
        }
    }

    #[test]
    fn an_execution_arn_is_derived_from_the_state_machine_and_the_name() {
        let workflow = Workflow {
            client: aws_sdk_sfn::Client::from_conf(
                aws_sdk_sfn::Config::builder()
                    .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
                    .region(aws_sdk_sfn::config::Region::new("eu-west-1"))
                    .build(),
            ),
            state_machine_arn: "arn:aws:states:eu-west-1:123456789012:stateMachine:OrderWorkflow"
                .into(),
            config: WorkflowConfig {
                outage_wait_seconds: 1,
                delivery_timeout_seconds: 1,
                outage_waits_allowed: 1,
            },
        };
        assert_eq!(
            workflow.execution_arn("ord-1-r2"),
            "arn:aws:states:eu-west-1:123456789012:execution:OrderWorkflow:ord-1-r2"
        );
        // Started through the alias, the execution is still the state machine's.
        let through_alias = Workflow {
            state_machine_arn: format!("{}:live", workflow.state_machine_arn),
            ..workflow.clone()
        };
        assert_eq!(
            through_alias.execution_arn("ord-1-r2"),
            workflow.execution_arn("ord-1-r2")
        );
    }

    #[test]
    fn a_version_or_alias_qualifier_is_cut_from_a_state_machine_arn() {
        let machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:OrderWorkflow";
        assert_eq!(unqualified_state_machine_arn(machine), machine);
        assert_eq!(
            unqualified_state_machine_arn(&format!("{machine}:live")),
            machine
        );
        assert_eq!(
            unqualified_state_machine_arn(&format!("{machine}:12")),
            machine
        );
    }

    /// Step Functions in memory: executions by ARN, running or ended.
    #[derive(Default)]
    struct FakeExecutions(std::sync::Mutex<std::collections::HashMap<String, ExecutionState>>);

    impl Executions for FakeExecutions {
        fn state_machine_arn(&self) -> &str {
            "arn:aws:states:eu-west-1:123456789012:stateMachine:OrderWorkflow:live"
        }

        async fn state(&self, arn: &str) -> Result<ExecutionState, RecoveryError> {
            let executions = self.0.lock().unwrap_or_else(|e| e.into_inner());
            Ok(executions
                .get(arn)
                .cloned()
                .unwrap_or(ExecutionState::Missing))
        }

        async fn start_on(
            &self,
            _: &str,
            _: &OrderId,
            name: &str,
        ) -> Result<String, RecoveryError> {
            // As Step Functions: a name is taken for good; taken by a running execution
            // it counts as started (the same input), by an ended one it does not.
            let arn = self.execution_arn(name);
            let mut executions = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match executions.get(&arn) {
                Some(ExecutionState::Ended(status)) => Err(RecoveryError::NameTaken {
                    execution_arn: arn,
                    status: status.clone(),
                }),
                _ => {
                    executions.insert(arn.clone(), ExecutionState::Running);
                    Ok(arn)
                }
            }
        }

        async fn stop(&self, arn: &str, _: &str) -> Result<(), RecoveryError> {
            let mut executions = self.0.lock().unwrap_or_else(|e| e.into_inner());
            executions.insert(arn.to_owned(), ExecutionState::Ended("ABORTED".into()));
            Ok(())
        }

        async fn latest_version(&self) -> Result<Option<String>, RecoveryError> {
            Ok(None)
        }
    }

    /// The dead-letter queue in memory.
    #[derive(Default)]
    struct FakeDeadLetters(std::sync::Mutex<Vec<DeadLetterBody>>);

    impl DeadLetterSender for FakeDeadLetters {
        async fn send(&self, body: &DeadLetterBody) -> Result<(), DeadLetterError> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(body.clone());
            Ok(())
        }
    }

    /// An in-memory ledger whose clock stands still at midnight on 2026-11-29, that time,
    /// and the example order to place in it.
    fn store_with_its_clock_stopped() -> (
        chrono::DateTime<chrono::Utc>,
        crate::store::MemoryStore,
        crate::Order,
    ) {
        let placed = chrono::DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        let store = crate::store::MemoryStore::with_clock(move || placed);
        let catalogue = crate::catalogue::Catalogue::builtin().expect("the catalogue");
        let order = crate::Order::parse(&crate::order::example_request("m-1"), &catalogue)
            .expect("the example order");
        (placed, store, order)
    }

    /// Places `order` in `store` under `key` (also its request hash); its id.
    async fn place(store: &crate::store::MemoryStore, order: &crate::Order, key: &str) -> OrderId {
        match store
            .place_order(&crate::store::contract::caller(), key, order, key)
            .await
        {
            Ok(crate::store::Placement::Created(record)) => record.order_id,
            other => panic!("placed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_start_whose_name_is_taken_by_an_ended_execution_does_not_count_as_started() {
        let (_, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let workflow = FakeExecutions::default();
        let record = store.require_order(&id).await.expect("the order");
        let started = start_placed(&store, &workflow, &record).await;
        let arn = workflow.execution_arn(id.as_str());
        assert_eq!(started.ok().flatten().as_deref(), Some(arn.as_str()));
        // The same start again while it runs (the API's retry, which reads the order
        // with its execution recorded): the same execution.
        let record = store.require_order(&id).await.expect("the order");
        let again = start_placed(&store, &workflow, &record).await;
        assert_eq!(again.ok().flatten().as_deref(), Some(arn.as_str()));
        // Ended without ending the order: a retry starts nothing and says so.
        let stopped = workflow.stop(&arn, "test").await;
        assert!(stopped.is_ok(), "{stopped:?}");
        let after = start_placed(&store, &workflow, &record).await;
        assert!(matches!(after, Ok(None)), "{after:?}");
        let direct = workflow
            .start_on(workflow.state_machine_arn(), &id, id.as_str())
            .await;
        assert!(
            matches!(&direct, Err(RecoveryError::NameTaken { execution_arn, status })
                if *execution_arn == arn && status == "ABORTED"),
            "{direct:?}"
        );
    }

    #[tokio::test]
    async fn an_execution_claimed_but_never_started_is_started_under_its_name_without_counting_a_resume(
    ) {
        // Found by the simulator (seed 50 of 100 orders with our infrastructure's faults):
        // each throttled start cost the order a resume, and after three the reconciler
        // parked an order nobody had refused.
        let (placed, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let workflow = FakeExecutions::default();
        let arn = workflow.execution_arn(&format!("{id}-r3"));
        let claim = Claim {
            read_status: OrderStatus::Accepted,
            read_resumes: 0,
            read_arn: None,
            resumes: 3,
            arn: &arn,
        };
        assert_eq!(store.claim_execution(&id, &claim).await, Ok(()));
        let letters = FakeDeadLetters::default();
        let options = options(10, 3);
        let later = placed + chrono::Duration::hours(1);
        let run = reconcile_at(&store, &workflow, escalation(&letters), options, later).await;
        let actions: Vec<Action> = run.expect("a run").into_iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [Action::Resumed {
                execution_arn: arn.clone()
            }]
        );
        assert_eq!(
            workflow.state(&arn).await.ok(),
            Some(ExecutionState::Running)
        );
        let after = store.require_order(&id).await.expect("the order");
        assert_eq!((after.resumes, after.execution_arn), (3, Some(arn)));
    }

    #[tokio::test]
    async fn only_a_cancelled_order_that_holds_effects_is_undone_and_its_execution_is_claimed_first(
    ) {
        use crate::store::Transition;
        let (_, store, order) = store_with_its_clock_stopped();
        let workflow = FakeExecutions::default();
        let id = place(&store, &order, "key").await;
        // Nothing held: an ACCEPTED order cancelled at once.
        let cancelled = cancel(&store, &id).await;
        assert!(cancelled.is_ok(), "{cancelled:?}");
        let nothing = undo_cancelled(&store, &workflow, &id).await;
        assert!(
            matches!(&nothing, Err(RecoveryError::NotSupported(m)) if m.contains("holds no partner effect")),
            "{nothing:?}"
        );
        // Reserved, then ended CANCELLED without the release.
        let held = place(&store, &order, "held").await;
        for (from, to) in [
            (OrderStatus::Accepted, OrderStatus::Validated),
            (OrderStatus::Validated, OrderStatus::StockReserved),
            (OrderStatus::StockReserved, OrderStatus::Cancelling),
            (OrderStatus::Cancelling, OrderStatus::Cancelled),
        ] {
            store
                .transition(&held, Transition::new(from, to))
                .await
                .expect("moved");
        }
        let begun = store.begin_step(&held, "ReserveStock").await;
        assert!(begun.is_ok(), "{begun:?}");
        let undone = undo_cancelled(&store, &workflow, &held)
            .await
            .expect("undone");
        assert_eq!(undone.execution_name, format!("{held}-r1"));
        assert_eq!(
            workflow.state(&undone.execution_arn).await.ok(),
            Some(ExecutionState::Running)
        );
        let recorded = store.require_order(&held).await.expect("the order");
        assert_eq!(
            (recorded.status, recorded.execution_arn.as_deref()),
            (OrderStatus::Cancelled, Some(undone.execution_arn.as_str()))
        );
        // An unfinished order is resumed, not undone.
        let open = place(&store, &order, "open").await;
        let refused = undo_cancelled(&store, &workflow, &open).await;
        assert!(
            matches!(&refused, Err(RecoveryError::NotSupported(m)) if m.contains("orders resume")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn the_reconciler_reads_its_grace_period_from_the_time_it_is_given() {
        let (placed, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let (workflow, letters) = (FakeExecutions::default(), FakeDeadLetters::default());
        let options = options(10, 1);
        let at = |seconds| placed + chrono::Duration::seconds(seconds);
        let run_at = |seconds| {
            let escalation = escalation(&letters);
            reconcile_at(&store, &workflow, escalation, options, at(seconds))
        };
        let early = run_at(899).await;
        assert_eq!(early.expect("a run"), vec![], "within the grace period");
        let late = run_at(901).await;
        let actions: Vec<_> = late.expect("a run").into_iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [Action::Resumed {
                execution_arn: workflow.execution_arn(id.as_str())
            }],
            "named as the API names it"
        );
        workflow
            .stop(&workflow.execution_arn(id.as_str()), "test")
            .await
            .expect("stopped");
        let parked = run_at(1000).await;
        assert!(matches!(
            parked.expect("a run").as_slice(),
            [Reconciled {
                action: Action::Parked { .. },
                ..
            }]
        ));
        let letters = letters.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].at.as_deref(), Some("2026-11-29T00:16:40.000Z"));
        let written: Vec<_> = (store.outbox(&id).await.expect("the outbox").into_iter())
            .map(|event| (event.lifecycle, event.detail.event_id))
            .collect();
        assert_eq!(
            written,
            [
                (crate::events::Lifecycle::Accepted, format!("{id}/ACCEPTED")),
                (
                    crate::events::Lifecycle::NeedsOperator,
                    format!("{id}/NEEDS_OPERATOR/1")
                )
            ],
            "the placement wrote its event; the park once, counting the resume"
        );
        let record = store
            .get_order(&id)
            .await
            .expect("read")
            .expect("the order");
        assert_eq!(
            record.created_at, "2026-11-29T00:00:00.000Z",
            "stamped by the clock given"
        );
    }

    #[tokio::test]
    async fn a_run_that_stops_at_its_limit_among_running_orders_leaves_the_next_run_to_reach_a_died_order_behind_them(
    ) {
        // Found by the simulator (seed 13 of 1,000 orders: a DELIVERED order whose execution
        // died waited an hour while every run stopped at its limit among SHIPPED orders
        // waiting for their delivery; on AWS deliveries take days). Each run now walks on
        // from where the last one stopped, round the unfinished statuses.
        use crate::store::Transition;
        let (placed, store, order) = store_with_its_clock_stopped();
        let workflow = FakeExecutions::default();
        let mut ids = Vec::new();
        for key in ["waiting-1", "waiting-2", "died"] {
            let id = place(&store, &order, key).await;
            let arn = workflow
                .start_on("live", &id, id.as_str())
                .await
                .expect("started");
            store.set_execution_arn(&id, &arn).expect("recorded");
            ids.push((id, arn));
        }
        let (died, arn) = &ids[2];
        let validated = Transition::new(OrderStatus::Accepted, OrderStatus::Validated);
        store.transition(died, validated).await.expect("moved on");
        workflow.stop(arn, "died").await.expect("stopped");
        let letters = FakeDeadLetters::default();
        let run = |limit| {
            let options = options(limit, 3);
            let later = placed + chrono::Duration::hours(24);
            reconcile_at(&store, &workflow, escalation(&letters), options, later)
        };
        use std::collections::BTreeSet;
        let waiting: BTreeSet<&OrderId> = ids[..2].iter().map(|(id, _)| id).collect();
        // The first run spends its limit on the two ACCEPTED orders whose executions run.
        let first = run(2).await.expect("a run");
        let looked_at: BTreeSet<&OrderId> = first.iter().map(|r| &r.order_id).collect();
        assert_eq!(looked_at, waiting, "{first:?}");
        let cursor = store
            .reconcile_cursor(RECONCILER)
            .await
            .expect("the cursor");
        assert_eq!(cursor.map(|c| c.status), Some(OrderStatus::Accepted));
        // The second walks on past them to the VALIDATED order, resumes it, and comes
        // round to the oldest waiting order with what is left of its limit.
        let second = run(2).await.expect("a run");
        assert_eq!(second.len(), 2, "{second:?}");
        assert_eq!(&second[0].order_id, died);
        assert!(
            matches!(second[0].action, Action::Resumed { .. }),
            "{second:?}"
        );
        assert!(waiting.contains(&second[1].order_id), "{second:?}");
        // A run whose limit reaches every order leaves no cursor: the next starts over.
        let all = run(10).await.expect("a run");
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(store.reconcile_cursor(RECONCILER).await, Ok(None));
    }

    /// Step Functions that cannot be reached for one execution.
    struct UnreachableFor<'a> {
        inner: &'a FakeExecutions,
        arn: String,
    }

    impl Executions for UnreachableFor<'_> {
        fn state_machine_arn(&self) -> &str {
            self.inner.state_machine_arn()
        }

        async fn state(&self, arn: &str) -> Result<ExecutionState, RecoveryError> {
            if arn == self.arn {
                return Err(RecoveryError::Workflow {
                    operation: "DescribeExecution",
                    message: "ThrottlingException: Rate exceeded".into(),
                });
            }
            self.inner.state(arn).await
        }

        async fn start_on(
            &self,
            target: &str,
            id: &OrderId,
            name: &str,
        ) -> Result<String, RecoveryError> {
            self.inner.start_on(target, id, name).await
        }

        async fn stop(&self, arn: &str, cause: &str) -> Result<(), RecoveryError> {
            self.inner.stop(arn, cause).await
        }

        async fn latest_version(&self) -> Result<Option<String>, RecoveryError> {
            self.inner.latest_version().await
        }
    }

    #[tokio::test]
    async fn one_order_the_reconciler_cannot_reconcile_is_reported_and_the_run_goes_on() {
        let (placed, store, order) = store_with_its_clock_stopped();
        let fake = FakeExecutions::default();
        let mut ids = Vec::new();
        for key in ["unreachable", "died"] {
            let id = place(&store, &order, key).await;
            let arn = fake
                .start_on("live", &id, id.as_str())
                .await
                .expect("started");
            store.set_execution_arn(&id, &arn).expect("recorded");
            fake.stop(&arn, "died").await.expect("stopped");
            ids.push((id, arn));
        }
        let workflow = UnreachableFor {
            inner: &fake,
            arn: ids[0].1.clone(),
        };
        let letters = FakeDeadLetters::default();
        let options = options(10, 3);
        let later = placed + chrono::Duration::hours(1);
        let run = reconcile_at(&store, &workflow, escalation(&letters), options, later).await;
        let actions: Vec<(OrderId, Action)> = run
            .expect("the run goes on")
            .into_iter()
            .map(|r| (r.order_id, r.action))
            .collect();
        assert_eq!(actions.len(), 2, "{actions:?}");
        let by_id: std::collections::HashMap<_, _> = actions.into_iter().collect();
        assert!(
            matches!(&by_id[&ids[0].0], Action::Failed { error } if error.contains("Rate exceeded")),
            "{by_id:?}"
        );
        assert!(
            matches!(&by_id[&ids[1].0], Action::Resumed { .. }),
            "{by_id:?}"
        );
    }

    #[tokio::test]
    async fn a_dead_letter_left_pending_is_sent_by_a_later_run_and_not_by_one_racing_its_parker() {
        // A run parked the order (its letter pending) and died, or is about to send it.
        let (placed, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let read = store.require_order(&id).await.expect("the order");
        let event = crate::events::OrderEvent::needs_operator(&read, "gave up");
        assert_eq!(store.park(&read, "gave up", &event).await, Ok(()));
        let (workflow, letters) = (FakeExecutions::default(), FakeDeadLetters::default());
        let options = options(10, 3);
        let sent = |letters: &FakeDeadLetters| letters.0.lock().map(|l| l.len()).unwrap_or(0);
        // A run racing the parker (within the grace period) leaves the letter to it.
        let racing = reconcile_order(
            &store,
            &workflow,
            escalation(&letters),
            &read,
            options,
            placed,
        )
        .await;
        assert!(matches!(racing, Ok(Action::AlreadyParked)), "{racing:?}");
        assert_eq!(sent(&letters), 0);
        // A run past the grace period sends it, once.
        let later = placed + chrono::Duration::hours(1);
        let late = reconcile_order(
            &store,
            &workflow,
            escalation(&letters),
            &read,
            options,
            later,
        )
        .await;
        assert!(matches!(late, Ok(Action::Parked { .. })), "{late:?}");
        let again = reconcile_order(
            &store,
            &workflow,
            escalation(&letters),
            &read,
            options,
            later,
        )
        .await;
        assert!(matches!(again, Ok(Action::AlreadyParked)), "{again:?}");
        assert_eq!(sent(&letters), 1);
    }

    #[tokio::test]
    async fn the_reconciler_parks_nothing_that_was_resumed_after_the_index_was_read() {
        // The index copy says: no execution, resumed as often as allowed. An operator
        // resumed it since; the stale copy must not park it.
        let (placed, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let listed = store.require_order(&id).await.expect("the order");
        let workflow = FakeExecutions::default();
        let resumed = resume(&store, &workflow, &id).await;
        assert!(resumed.is_ok(), "{resumed:?}");
        let letters = FakeDeadLetters::default();
        let options = options(10, 0);
        let later = placed + chrono::Duration::hours(1);
        let action = reconcile_order(
            &store,
            &workflow,
            escalation(&letters),
            &listed,
            options,
            later,
        )
        .await;
        assert!(matches!(action, Ok(Action::Changed)), "{action:?}");
        let now = store.require_order(&id).await.expect("the order");
        assert_eq!(now.parked, None);
        assert!(
            letters.0.lock().map(|l| l.is_empty()).unwrap_or(false),
            "no dead letter"
        );
    }

    #[test]
    fn a_run_walks_from_its_cursor_round_every_unfinished_status_back_to_it() {
        let start = IndexPosition {
            status: OrderStatus::Shipped,
            key: "2026-11-29T00:00:00.000Z#ord-1".to_owned(),
        };
        let cutoff = "2026-11-30T00:00:00.000Z";
        let stretches = rotation(Some(&start), cutoff);
        let statuses: Vec<OrderStatus> = stretches.iter().map(|s| s.status).collect();
        let unfinished: Vec<OrderStatus> = unfinished_statuses().collect();
        let at = unfinished.iter().position(|s| *s == OrderStatus::Shipped);
        let at = at.expect("SHIPPED is unfinished");
        let mut expected = [&unfinished[at..], &unfinished[..at]].concat();
        expected.push(OrderStatus::Shipped);
        assert_eq!(statuses, expected);
        assert_eq!(stretches[0].after, Some(start.key.as_str()));
        assert!(stretches[1..].iter().all(|s| s.after.is_none()));
        let (last, rest) = stretches.split_last().expect("stretches");
        assert_eq!(
            last.before,
            format!("{}~", start.key),
            "back to where it started, that order included"
        );
        assert!(last.before > start.key);
        assert!(rest.iter().all(|s| s.before == cutoff));
        let from_the_oldest = rotation(None, cutoff);
        assert_eq!(
            from_the_oldest.iter().map(|s| s.status).collect::<Vec<_>>(),
            unfinished
        );
        assert!(from_the_oldest.iter().all(|s| s.after.is_none()));
    }

    #[tokio::test]
    async fn a_cancel_of_an_order_whose_execution_is_recorded_asks_that_execution_to_roll_it_back()
    {
        // The API recorded the execution and is about to start it (or started it and
        // nothing has run yet): ending the order at once would leave that execution to
        // take the payment of a CANCELLED order.
        let (_, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let claim = Claim {
            read_status: OrderStatus::Accepted,
            read_resumes: 0,
            read_arn: None,
            resumes: 0,
            arn: "arn:aws:states:eu-west-1:1:execution:wf:x",
        };
        assert_eq!(store.claim_execution(&id, &claim).await, Ok(()));
        let cancelled = cancel(&store, &id).await;
        assert!(
            matches!(&cancelled, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelling),
            "{cancelled:?}"
        );
    }

    #[tokio::test]
    async fn a_cancel_of_an_order_with_a_step_begun_but_no_execution_recorded_asks_for_a_rollback()
    {
        // Data written before executions were recorded first: one may be running
        // unrecorded, and it has begun a step.
        let (_, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let begun = store.begin_step(&id, "ValidateOrder").await;
        assert!(begun.is_ok(), "{begun:?}");
        let cancelled = cancel(&store, &id).await;
        assert!(
            matches!(&cancelled, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelling),
            "{cancelled:?}"
        );
    }

    #[tokio::test]
    async fn a_cancel_before_anything_began_ends_the_order_cancelled_in_one_write() {
        let (_, store, order) = store_with_its_clock_stopped();
        let id = place(&store, &order, "key").await;
        let cancelled = cancel(&store, &id).await;
        assert!(
            matches!(&cancelled, Ok(Cancellation::Started(order)) if order.status == OrderStatus::Cancelled && order.version == 2),
            "{cancelled:?}"
        );
        let outbox = store.outbox(&id).await.map(|events| {
            events
                .iter()
                .map(|event| event.detail.status)
                .collect::<Vec<_>>()
        });
        assert_eq!(
            outbox,
            Ok(vec![OrderStatus::Accepted, OrderStatus::Cancelled])
        );
    }

    #[test]
    fn only_the_four_end_states_are_left_out_of_reconciling() {
        let unfinished: Vec<_> = unfinished_statuses().collect();
        assert_eq!(unfinished.len(), OrderStatus::ALL.len() - 4);
        assert!(!unfinished.contains(&OrderStatus::Completed));
        assert!(unfinished.contains(&OrderStatus::Compensating));
    }

    #[tokio::test]
    async fn an_anonymising_pass_removes_the_personal_data_of_orders_ended_before_the_cutoff_and_goes_on_where_it_stopped(
    ) {
        use crate::store::MemoryStore;
        let store = MemoryStore::new();
        let catalogue = crate::catalogue::Catalogue::builtin().expect("the catalogue");
        let order = crate::Order::parse(&crate::order::example_request("m-1"), &catalogue)
            .expect("the example order");
        let mut ended = Vec::new();
        for n in 0..3 {
            let id = place(&store, &order, &format!("key-{n}")).await;
            assert!(matches!(
                store.cancel(&id).await,
                Ok(Cancellation::Started(_))
            ));
            ended.push(id);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let running = place(&store, &order, "key-running").await;
        let cutoff = (chrono::Utc::now() + chrono::Duration::seconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

        let first = anonymise_ended(&store, &cutoff, 2)
            .await
            .expect("the first pass");
        assert_eq!(
            (first.anonymised.as_slice(), first.more),
            (&ended[..2], true)
        );
        let second = anonymise_ended(&store, &cutoff, 2)
            .await
            .expect("the second pass");
        assert_eq!(
            (second.anonymised.as_slice(), second.more),
            (&ended[2..], false)
        );
        let third = anonymise_ended(&store, &cutoff, 2)
            .await
            .expect("the third pass");
        assert_eq!(
            (third.anonymised.len(), third.looked_at),
            (0, 0),
            "nothing left to look at"
        );

        for id in &ended {
            let order = store.require_order(id).await.expect("the order");
            assert_eq!(
                order.order.delivery_address.name,
                crate::store::retention::REMOVED
            );
        }
        let untouched = store
            .require_order(&running)
            .await
            .expect("the running order");
        assert_ne!(
            untouched.order.delivery_address.name,
            crate::store::retention::REMOVED
        );
        // Orders that ended after the cutoff wait for a later pass.
        let early = chrono::Utc::now() - chrono::Duration::days(1);
        let early = early.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let later = place(&store, &order, "key-later").await;
        assert!(matches!(
            store.cancel(&later).await,
            Ok(Cancellation::Started(_))
        ));
        let none = anonymise_ended(&store, &early, 10).await.expect("a pass");
        assert!(none.anonymised.is_empty(), "{none:?}");
    }
}
