// The reconciler's future nests the SDK's futures under `order_core::recovery`'s generic
// ones (over `Executions` and `DeadLetterSender`): deeper than the default limit of 128.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, LambdaEvent};
use order_core::dead_letters::DeadLetterQueue;
use order_core::recovery::{Escalation, ReconcileOptions, Workflow};
use order_core::{activity, config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = &activity::start().await?;
    let aws = &config::aws().await;
    let workflow = &Workflow::from_env(aws)?;
    let dead_letters = &DeadLetterQueue::new(
        aws_sdk_sqs::Client::new(aws),
        config::required("WORKFLOW_DEAD_LETTER_QUEUE_URL")?,
    );
    let escalation = Escalation { dead_letters };
    let options = ReconcileOptions::from_env()?;
    let retention_days = config::positive("ORDER_RETENTION_DAYS")?;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            reconciler::run(store, workflow, escalation, options, retention_days).await
        },
    ))
    .await
}
