//! The audit records of an order (`AUDIT#ORDER#<id>` / `AUDIT#<time>#<n>`): begun only if
//! the order exists, never over another record, finished once, in a partition no
//! function's role may write. Records written before they moved there (in the order's own
//! partition, same sort keys, always finished) are read too.

use super::{
    build_error, cancellation_codes, is_conditional_failure, key, order_key, put_new, read, s,
    unavailable, write, Item, OrderStore,
};
use crate::order::OrderId;
use crate::store::keys::{audit_sk, order_audit_pk, order_pk, AUDIT_PREFIX};
use crate::store::{now, AuditEntry, AuditRecord, AuditTrail, StoreError};
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use std::future::Future;

/// An audit item as the code reads it, its sort key kept as the record's key.
fn record(item: Item) -> Result<AuditRecord, StoreError> {
    let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
    let mut record: AuditRecord = read(item, AUDIT_PREFIX)?;
    record.key = sk.unwrap_or_default();
    Ok(record)
}

impl OrderStore {
    /// See [`AuditTrail::begin_audit`]: one transaction that checks the order exists and
    /// puts the record.
    pub async fn begin_audit(
        &self,
        id: &OrderId,
        entry: &AuditEntry<'_>,
    ) -> Result<AuditRecord, StoreError> {
        const OP: &str = "TransactWriteItems(audit record)";
        let at = now();
        let n = uuid::Uuid::new_v4().simple().to_string();
        let sk = audit_sk(&at, &n[..8]);
        let record = AuditRecord::begun(id, entry, at, sk.clone());
        let mut item = write(&record, &order_pk(id))?;
        item.extend(key(order_audit_pk(id), &sk));
        let exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| build_error(OP, e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(exists).build())
            .transact_items(put_new(&self.table, item, OP)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(record),
            Err(error) => {
                let codes = cancellation_codes(&error);
                if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                    Err(StoreError::NotFound(id.clone()))
                } else {
                    Err(unavailable(OP, error))
                }
            }
        }
    }

    /// See [`AuditTrail::finish_audit`].
    pub async fn finish_audit(&self, begun: &AuditRecord, outcome: &str) -> Result<(), StoreError> {
        const OP: &str = "UpdateItem(audit outcome)";
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_audit_pk(&begun.order_id), &begun.key)))
            .update_expression("SET outcome = :outcome, finished_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(outcome)")
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":at", s(now()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Finished before (or no such record): the first outcome stands.
            Err(error) if is_conditional_failure(&error) => Ok(()),
            Err(error) => Err(unavailable(OP, error)),
        }
    }

    /// The order's audit records, oldest first: its audit partition's and those written
    /// before in the order's own, in two consistent Queries.
    pub async fn audit_trail(&self, id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        let (current, legacy) = tokio::join!(
            self.partition(
                "Query(audit records)",
                order_audit_pk(id),
                AUDIT_PREFIX,
                true
            ),
            self.partition(
                "Query(earlier audit records)",
                order_pk(id),
                AUDIT_PREFIX,
                true
            ),
        );
        let mut records = legacy?
            .into_iter()
            .chain(current?)
            .map(record)
            .collect::<Result<Vec<AuditRecord>, _>>()?;
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(records)
    }
}

impl AuditTrail for OrderStore {
    fn begin_audit(
        &self,
        id: &OrderId,
        entry: &AuditEntry<'_>,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send {
        OrderStore::begin_audit(self, id, entry)
    }

    fn finish_audit(
        &self,
        record: &AuditRecord,
        outcome: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::finish_audit(self, record, outcome)
    }

    fn audit_trail(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send {
        OrderStore::audit_trail(self, id)
    }
}
