//! The callers' scopes in the table: one item per caller in the `CALLERS` partition, and
//! one audit item per change in `AUDIT#CALLERS`, written in the change's transaction.

use super::{build_error, key, put_new, read, s, unavailable, write, Item, OrderStore};
use crate::callers::{Principal, Scope};
use crate::store::callers::{Actor, CallerChange, CallerRecord, Callers};
use crate::store::keys::{
    audit_sk, caller_sk, AUDIT_PREFIX, CALLERS_PK, CALLER_AUDIT_PK, CALLER_PREFIX,
};
use crate::store::{now, StoreError};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use std::future::Future;

impl OrderStore {
    fn caller_key(principal: &Principal) -> Item {
        key(CALLERS_PK.to_owned(), &caller_sk(principal))
    }

    /// The caller's stored record, read consistently.
    async fn caller_record(
        &self,
        principal: &Principal,
    ) -> Result<Option<CallerRecord>, StoreError> {
        let item = self
            .get_item(Self::caller_key(principal), "GetItem(caller scope)")
            .await?;
        item.map(|item| read(item, "caller scope")).transpose()
    }

    /// Writes `record` (or removes the caller's item, when `None`) and `change`, in one
    /// transaction; the caller's item must still be as `before` was read (absent, or at
    /// its `updated_at`), so two operators changing one caller at once do not lose one
    /// change without a trace: the second is refused and tries again.
    async fn write_change(
        &self,
        principal: &Principal,
        record: Option<&CallerRecord>,
        before: Option<&CallerRecord>,
        change: &CallerChange,
    ) -> Result<(), StoreError> {
        const OP: &str = "TransactWriteItems(caller scope change)";
        let caller_key = Self::caller_key(principal);
        let (condition, values) = match before {
            None => ("attribute_not_exists(pk)".to_owned(), None),
            Some(before) => (
                "updated_at = :read".to_owned(),
                Some(s(before.updated_at.clone())),
            ),
        };
        let first = match record {
            Some(record) => {
                let mut item = write(record, "caller scope")?;
                item.extend(caller_key);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(&condition);
                let put = match &values {
                    Some(value) => put.expression_attribute_values(":read", value.clone()),
                    None => put,
                };
                TransactWriteItem::builder()
                    .put(put.build().map_err(|e| build_error(OP, e))?)
                    .build()
            }
            None => {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(caller_key))
                    .condition_expression(&condition);
                let delete = match &values {
                    Some(value) => delete.expression_attribute_values(":read", value.clone()),
                    None => delete,
                };
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(|e| build_error(OP, e))?)
                    .build()
            }
        };
        let mut audit = write(change, "caller change")?;
        let n = uuid::Uuid::new_v4().simple().to_string();
        audit.extend(key(
            CALLER_AUDIT_PK.to_owned(),
            &audit_sk(&change.at, &n[..8]),
        ));
        let result = self
            .client
            .transact_write_items()
            .transact_items(first)
            .transact_items(put_new(&self.table, audit, OP)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let codes = super::cancellation_codes(&error);
                if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                    Err(StoreError::Unavailable {
                        operation: OP,
                        message: format!(
                            "the scope of {principal} changed while it was being changed; try again"
                        ),
                    })
                } else {
                    Err(unavailable(OP, error))
                }
            }
        }
    }

    /// See [`Callers::caller_scope`].
    pub async fn caller_scope(&self, principal: &Principal) -> Result<Option<Scope>, StoreError> {
        Ok(self
            .caller_record(principal)
            .await?
            .map(|record| record.scope))
    }

    /// See [`Callers::set_caller_scope`].
    pub async fn set_caller_scope(
        &self,
        principal: &Principal,
        scope: &Scope,
        by: &Actor<'_>,
    ) -> Result<CallerChange, StoreError> {
        let before = self.caller_record(principal).await?;
        let at = now();
        let record = CallerRecord {
            principal: principal.clone(),
            scope: scope.clone(),
            updated_at: at.clone(),
            updated_by: by.identity.to_owned(),
            updated_by_label: by.label.map(str::to_owned),
        };
        let change = CallerChange {
            principal: principal.clone(),
            at,
            who: by.identity.to_owned(),
            label: by.label.map(str::to_owned),
            scope: Some(scope.clone()),
            before: before.as_ref().map(|b| b.scope.clone()),
        };
        self.write_change(principal, Some(&record), before.as_ref(), &change)
            .await?;
        Ok(change)
    }

    /// See [`Callers::remove_caller_scope`].
    pub async fn remove_caller_scope(
        &self,
        principal: &Principal,
        by: &Actor<'_>,
    ) -> Result<Option<CallerChange>, StoreError> {
        let Some(before) = self.caller_record(principal).await? else {
            return Ok(None);
        };
        let change = CallerChange {
            principal: principal.clone(),
            at: now(),
            who: by.identity.to_owned(),
            label: by.label.map(str::to_owned),
            scope: None,
            before: Some(before.scope.clone()),
        };
        self.write_change(principal, None, Some(&before), &change)
            .await?;
        Ok(Some(change))
    }

    /// See [`Callers::callers`].
    pub async fn callers(&self) -> Result<Vec<CallerRecord>, StoreError> {
        let items = self
            .partition("Query(callers)", CALLERS_PK.to_owned(), CALLER_PREFIX, true)
            .await?;
        items
            .into_iter()
            .map(|item| read(item, "caller scope"))
            .collect()
    }

    /// See [`Callers::caller_changes`].
    pub async fn caller_changes(&self, limit: usize) -> Result<Vec<CallerChange>, StoreError> {
        let items = self
            .partition(
                "Query(caller changes)",
                CALLER_AUDIT_PK.to_owned(),
                AUDIT_PREFIX,
                true,
            )
            .await?;
        let mut changes = items
            .into_iter()
            .map(|item| read(item, "caller change"))
            .collect::<Result<Vec<CallerChange>, _>>()?;
        changes.reverse();
        changes.truncate(limit);
        Ok(changes)
    }
}

impl Callers for OrderStore {
    fn caller_scope(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Option<Scope>, StoreError>> + Send {
        OrderStore::caller_scope(self, principal)
    }

    fn set_caller_scope(
        &self,
        principal: &Principal,
        scope: &Scope,
        by: &Actor<'_>,
    ) -> impl Future<Output = Result<CallerChange, StoreError>> + Send {
        OrderStore::set_caller_scope(self, principal, scope, by)
    }

    fn remove_caller_scope(
        &self,
        principal: &Principal,
        by: &Actor<'_>,
    ) -> impl Future<Output = Result<Option<CallerChange>, StoreError>> + Send {
        OrderStore::remove_caller_scope(self, principal, by)
    }

    fn callers(&self) -> impl Future<Output = Result<Vec<CallerRecord>, StoreError>> + Send {
        OrderStore::callers(self)
    }

    fn caller_changes(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CallerChange>, StoreError>> + Send {
        OrderStore::caller_changes(self, limit)
    }
}
