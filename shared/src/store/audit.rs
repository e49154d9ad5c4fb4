//! The audit trail of an order: one record per operator action (the ops console's resume,
//! cancel and dead-letter replay), kept on the order's partition beside its steps, so
//! that who did what to an order, when, and with what outcome is read with the order.

use crate::order::OrderId;
use serde::{Deserialize, Serialize};

/// An operator action, as the caller describes it; the ledger stamps the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// Who acted: the caller's AWS identity (an ARN) or the operator name configured.
    pub who: &'a str,
    /// What was asked: `cancel`, `resume`, `replay dead letter <message id>`.
    pub action: &'a str,
    /// What came of it, for a person: `started: CANCELLING`, `refused: ...`.
    pub outcome: &'a str,
}

/// One recorded operator action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub order_id: OrderId,
    /// When it was recorded (RFC 3339, milliseconds, UTC).
    pub at: String,
    pub who: String,
    pub action: String,
    pub outcome: String,
}

impl AuditRecord {
    /// The record of `entry` on order `id`, at `at`.
    pub fn new(id: &OrderId, entry: &AuditEntry<'_>, at: String) -> AuditRecord {
        AuditRecord {
            order_id: id.clone(),
            at,
            who: entry.who.to_owned(),
            action: entry.action.to_owned(),
            outcome: entry.outcome.to_owned(),
        }
    }
}
