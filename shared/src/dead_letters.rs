//! The workflow dead-letter queue: every order the workflow could not finish or roll
//! back, with what an operator needs (order id, execution, failed step, error, cause,
//! time). Three writers share it: the state machine (`SendOrderToDeadLetterQueue`), the
//! reconciler (orders it gave up on) and, on AWS, an EventBridge rule (executions that
//! ended FAILED, TIMED_OUT or ABORTED). [`DeadLetter::parse`] reads all three shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long [`DeadLetterQueue::look`] holds the messages it walks through; if handing
/// them back fails, they reappear by themselves after this.
pub const LOOK_HOLD: Duration = Duration::from_secs(20);

/// How many messages the queue holds, as SQS counts them (approximately, as SQS does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and neither handed back nor deleted yet: being looked at or replayed.
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

/// What a dead letter says about an order.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterBody {
    pub order_id: String,
    pub execution_arn: Option<String>,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub at: Option<String>,
    /// `workflow`, `reconciler` or `eventbridge`.
    #[serde(default = "workflow")]
    pub source: String,
}

fn workflow() -> String {
    "workflow".to_owned()
}

/// One message of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    #[serde(skip)]
    pub receipt_handle: String,
    /// How many times the message was received (SQS's ApproximateReceiveCount).
    pub receive_count: u32,
    pub body: DeadLetterBody,
}

impl DeadLetter {
    /// Reads a message body: the workflow's or reconciler's JSON, or an EventBridge
    /// "Step Functions Execution Status Change" event. `None` when it is neither.
    pub fn parse(text: &str) -> Option<DeadLetterBody> {
        let value: Value = serde_json::from_str(text).ok()?;
        if value.get("detail-type").and_then(Value::as_str)
            == Some("Step Functions Execution Status Change")
        {
            let detail = value.get("detail")?;
            let name = detail.get("name")?.as_str()?;
            // Executions are named `<order id>` or `<order id>-r<n>`.
            let order_id = name.split("-r").next().unwrap_or(name).to_owned();
            let text = |field: &str| detail.get(field).and_then(Value::as_str).map(str::to_owned);
            return Some(DeadLetterBody {
                order_id,
                execution_arn: text("executionArn"),
                failed_step: None,
                error: text("error").or_else(|| text("status")),
                cause: text("cause"),
                at: value.get("time").and_then(Value::as_str).map(str::to_owned),
                source: "eventbridge".to_owned(),
            });
        }
        serde_json::from_value(value).ok()
    }
}

/// A dead-letter queue operation failed.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter queue {operation} failed: {message}")]
pub struct DeadLetterError {
    pub operation: &'static str,
    pub message: String,
}

fn failed<E: std::error::Error>(operation: &'static str, error: E) -> DeadLetterError {
    DeadLetterError {
        operation,
        message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}

/// What puts an order in front of an operator: the [`DeadLetterQueue`] on AWS, a list in
/// the deterministic simulator (`infra/simulator`), so that both run the same reconciler
/// (`crate::recovery::reconcile`).
pub trait DeadLetterSender: Send + Sync {
    /// Sends one dead letter.
    fn send(
        &self,
        body: &DeadLetterBody,
    ) -> impl std::future::Future<Output = Result<(), DeadLetterError>> + Send;
}

impl DeadLetterSender for DeadLetterQueue {
    fn send(
        &self,
        body: &DeadLetterBody,
    ) -> impl std::future::Future<Output = Result<(), DeadLetterError>> + Send {
        DeadLetterQueue::send(self, body)
    }
}

/// The workflow dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        DeadLetterQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many messages the queue holds (GetQueueAttributes). Unlike a receive, this
    /// changes nothing: no message is hidden and no receive is counted.
    pub async fn counts(&self) -> Result<QueueCounts, DeadLetterError> {
        use aws_sdk_sqs::types::QueueAttributeName as Name;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(Name::ApproximateNumberOfMessages)
            .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(Name::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| failed("GetQueueAttributes", e))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: Name| {
            attributes
                .get(&name)
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| DeadLetterError {
                    operation: "GetQueueAttributes",
                    message: format!("the answer holds no number for {}", name.as_str()),
                })
        };
        Ok(QueueCounts {
            visible: count(Name::ApproximateNumberOfMessages)?,
            in_flight: count(Name::ApproximateNumberOfMessagesNotVisible)?,
            delayed: count(Name::ApproximateNumberOfMessagesDelayed)?,
        })
    }

    /// Puts an order in front of an operator.
    pub async fn send(&self, body: &DeadLetterBody) -> Result<(), DeadLetterError> {
        let text = serde_json::to_string(body).map_err(|e| DeadLetterError {
            operation: "SendMessage",
            message: e.to_string(),
        })?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(text)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("SendMessage", e))
    }

    /// Up to `max` messages. With `hold` of zero the messages stay visible to everyone
    /// (a look); otherwise they are hidden from other readers for `hold` (to act on them).
    /// Messages that are not dead letters are returned with order id `?`.
    pub async fn receive(
        &self,
        max: usize,
        hold: Duration,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut letters = Vec::new();
        let mut seen = BTreeSet::new();
        let mut empty_answers = 0;
        while letters.len() < max && empty_answers < 2 {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(i32::try_from(hold.as_secs()).unwrap_or(i32::MAX))
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await
                .map_err(|e| failed("ReceiveMessage", e))?;
            let mut new = 0;
            for message in output.messages.unwrap_or_default() {
                let id = message.message_id.clone().unwrap_or_default();
                if !seen.insert(id.clone()) {
                    continue;
                }
                new += 1;
                let text = message.body.clone().unwrap_or_default();
                let body = DeadLetter::parse(&text).unwrap_or_else(|| DeadLetterBody {
                    order_id: "?".into(),
                    execution_arn: None,
                    failed_step: None,
                    error: None,
                    cause: Some(text.chars().take(500).collect()),
                    at: None,
                    source: "unknown".into(),
                });
                let receive_count = message
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                letters.push(DeadLetter {
                    message_id: id,
                    receipt_handle: message.receipt_handle.unwrap_or_default(),
                    receive_count,
                    body,
                });
                if letters.len() >= max {
                    break;
                }
            }
            if new == 0 {
                empty_answers += 1;
            }
        }
        Ok(letters)
    }

    /// Up to `max` messages, leaving the queue as it was (but for one more receive each).
    /// SQS has no peek, and a receive that leaves messages visible returns the same first
    /// few again and again (on the local emulator; a random sample on SQS), so this walks
    /// the queue holding each message for [`LOOK_HOLD`] and hands them all back at once.
    pub async fn look(&self, max: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let letters = self.receive(max, LOOK_HOLD).await?;
        let kept = self.release(&letters.iter().collect::<Vec<_>>()).await;
        if kept > 0 {
            tracing::warn!(
                kept,
                "messages could not be handed back; they reappear when their hold ends"
            );
        }
        Ok(letters)
    }

    /// Hands received messages back to the queue (visibility 0). Best effort: a message
    /// not handed back reappears by itself when its hold ends. Returns how many were not.
    pub async fn release(&self, letters: &[&DeadLetter]) -> usize {
        let mut kept_hidden = 0;
        for chunk in letters.chunks(10) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(index, letter)| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(&letter.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                })
                .collect();
            let Ok(entries) = entries else {
                kept_hidden += chunk.len();
                continue;
            };
            let sent = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(output) => kept_hidden += output.failed().len(),
                Err(_) => kept_hidden += chunk.len(),
            }
        }
        kept_hidden
    }

    /// Removes a message received with [`receive`](Self::receive).
    pub async fn delete(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&letter.receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("DeleteMessage", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_dead_letter_is_read_with_its_context() {
        let text = r#"{"order_id":"ord-1","execution_arn":"arn:x","failed_step":"ReleaseStock","error":"Partner.Rejected","cause":"refused","at":"2026-11-26T10:00:00Z"}"#;
        let body = DeadLetter::parse(text);
        assert_eq!(
            body.map(|b| (b.order_id, b.failed_step, b.error, b.source)),
            Some((
                "ord-1".into(),
                Some("ReleaseStock".into()),
                Some("Partner.Rejected".into()),
                "workflow".into()
            ))
        );
    }

    #[test]
    fn an_eventbridge_status_change_names_the_order_of_a_resumed_execution() {
        let text = r#"{"detail-type":"Step Functions Execution Status Change","source":"aws.states",
            "time":"2026-11-26T10:00:00Z","detail":{"name":"ord-abc-r2","status":"TIMED_OUT",
            "executionArn":"arn:aws:states:eu-west-1:1:execution:OrderWorkflow:ord-abc-r2"}}"#;
        let body = DeadLetter::parse(text);
        assert_eq!(
            body.map(|b| (b.order_id, b.error, b.source)),
            Some((
                "ord-abc".into(),
                Some("TIMED_OUT".into()),
                "eventbridge".into()
            ))
        );
    }

    #[test]
    fn anything_else_is_not_a_dead_letter() {
        assert_eq!(DeadLetter::parse("not json"), None);
        assert_eq!(DeadLetter::parse(r#"{"hello": 1}"#), None);
    }
}
