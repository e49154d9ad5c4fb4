//! The callers' scopes as the table holds them (`CALLERS` / `CALLER#<principal>`), and
//! the audited record of every change to them (`AUDIT#CALLERS` / `AUDIT#<time>#<n>`):
//! what the orders API reads to authorise a request ([`crate::callers`]) and what
//! `orderctl callers` changes. A change and its audit record are written together or not
//! at all. No function's role may write either partition (template.yaml denies its
//! roles every write whose leading key is `CALLERS` or `AUDIT#…`); operators write them
//! with their own credentials.

use super::StoreError;
use crate::callers::{Principal, Scope};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// Who made a change, as recorded: the caller's AWS identity as STS reports it (an ARN,
/// never replaced), and the label an operator gave (`--operator`), beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    /// The STS caller identity's ARN.
    pub identity: &'a str,
    /// A name the operator gave, recorded beside the identity.
    pub label: Option<&'a str>,
}

/// One caller's scope, as stored.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerRecord {
    pub principal: Principal,
    pub scope: Scope,
    /// When it was last set (RFC 3339, milliseconds, UTC).
    pub updated_at: String,
    /// The STS identity that set it.
    pub updated_by: String,
    pub updated_by_label: Option<String>,
}

/// One recorded change to the callers' scopes.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerChange {
    pub principal: Principal,
    /// When (RFC 3339, milliseconds, UTC).
    pub at: String,
    /// The STS identity that made it.
    pub who: String,
    /// The operator's label, beside it.
    pub label: Option<String>,
    /// The scope set, or `None` when the caller's scope was removed.
    pub scope: Option<Scope>,
    /// The scope it replaced, if any.
    pub before: Option<Scope>,
}

/// The callers' scopes: read by the API, changed by operators.
pub trait Callers: Send + Sync {
    /// The caller's scope, read consistently; `None` for a caller without one (who may
    /// do nothing).
    fn caller_scope(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Scope>, StoreError>> + Send;

    /// Sets (or replaces) the caller's scope, with its audit record, in one write.
    fn set_caller_scope(
        &self,
        principal: &Principal,
        scope: &Scope,
        by: &Actor<'_>,
    ) -> impl Future<Output = Result<CallerChange, StoreError>> + Send;

    /// Removes the caller's scope (it may then do nothing), with its audit record, in one
    /// write; `None` (and nothing written) when it had none.
    fn remove_caller_scope(
        &self,
        principal: &Principal,
        by: &Actor<'_>,
    ) -> impl Future<Output = Result<Option<CallerChange>, StoreError>> + Send;

    /// Every caller with a scope, by principal.
    fn callers(&self) -> impl Future<Output = Result<Vec<CallerRecord>, StoreError>> + Send;

    /// The changes to the callers' scopes, newest first, at most `limit`.
    fn caller_changes(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CallerChange>, StoreError>> + Send;
}
