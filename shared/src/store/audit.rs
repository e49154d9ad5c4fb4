//! The audit trail of an order: one record per action taken on it by an operator (the
//! CLI's and the console's cancel, resume, undo and dead-letter replay) or by an API
//! caller's cancel, in a partition of its own that no function's role may write.
//!
//! A record is written before the action and finished with its outcome after it
//! ([`audited`]): no action happens without its record, so a process that dies between
//! the two leaves a record that says the action was asked and its outcome is unknown,
//! never an action with no record. Who acted is always the caller's AWS identity (the ARN
//! STS reports, or the API caller's principal); a name an operator gives (`--operator`)
//! is recorded beside it, never instead.

use super::StoreError;
use crate::order::OrderId;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// An action about to be taken on an order, as the actor describes it; the ledger stamps
/// the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// The actor's AWS identity: the STS caller identity's ARN, or the API caller's IAM
    /// principal.
    pub who: &'a str,
    /// A name the operator gave (`--operator`), recorded beside `who`.
    pub label: Option<&'a str>,
    /// What was asked: `cancel`, `resume`, `undo`, `replay dead letter <message id>`.
    pub action: &'a str,
}

/// One recorded action.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub order_id: OrderId,
    /// When the action was asked (RFC 3339, milliseconds, UTC).
    pub at: String,
    pub who: String,
    #[serde(default)]
    pub label: Option<String>,
    pub action: String,
    /// What came of it, for a person (`started: CANCELLING`, `refused: ...`); `None`
    /// while the action runs, and for good when the process stopped before it could say.
    #[serde(default)]
    pub outcome: Option<String>,
    /// When the outcome was recorded.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The record's key within the order's trail (its sort key).
    #[serde(default, skip_serializing)]
    pub key: String,
}

impl AuditRecord {
    /// The record of `entry` on order `id`, asked at `at`, not finished.
    pub fn begun(id: &OrderId, entry: &AuditEntry<'_>, at: String, key: String) -> AuditRecord {
        AuditRecord {
            order_id: id.clone(),
            at,
            who: entry.who.to_owned(),
            label: entry.label.map(str::to_owned),
            action: entry.action.to_owned(),
            outcome: None,
            finished_at: None,
            key,
        }
    }

    /// Who acted, for a person: the identity, and the label beside it.
    pub fn actor(&self) -> String {
        match &self.label {
            Some(label) => format!("{} ({label})", self.who),
            None => self.who.clone(),
        }
    }

    /// The outcome, for a person, or what an unfinished record means.
    pub fn outcome_text(&self) -> &str {
        self.outcome.as_deref().unwrap_or(
            "unknown: the action was asked, its outcome never recorded (look at the order)",
        )
    }
}

/// The audit trail: written by the operators' tools and the API, read by the console.
pub trait AuditTrail: Send + Sync {
    /// Records that `entry`'s action is about to be taken on the order, before it is:
    /// [`StoreError::NotFound`] (and nothing written) when there is no such order.
    fn begin_audit(
        &self,
        id: &OrderId,
        entry: &AuditEntry<'_>,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send;

    /// Records the outcome of the action `record` began, once: a record that has one
    /// already keeps it.
    fn finish_audit(
        &self,
        record: &AuditRecord,
        outcome: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The order's audit records, oldest first (none for an order without any, or no
    /// such order).
    fn audit_trail(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
}

/// Takes an action on order `id` with its audit record: written first (no record, no
/// action: a store that cannot write it fails the action before it is taken), then the
/// action, then its outcome as `describe` says it. What the action returned comes back;
/// a record whose outcome could not be written is logged and left unfinished (the action
/// has happened; the record says it was asked).
pub async fn audited<T, E>(
    trail: &impl AuditTrail,
    id: &OrderId,
    entry: &AuditEntry<'_>,
    action: impl Future<Output = Result<T, E>>,
    describe: impl FnOnce(&Result<T, E>) -> String,
) -> Result<Result<T, E>, StoreError> {
    let record = trail.begin_audit(id, entry).await?;
    let result = action.await;
    let outcome = describe(&result);
    tracing::info!(order_id = %id, who = entry.who, label = entry.label, action = entry.action, outcome, "audited action");
    if let Err(error) = trail.finish_audit(&record, &outcome).await {
        tracing::error!(order_id = %id, %error, action = entry.action, "the action's outcome could not be recorded");
    }
    Ok(result)
}
