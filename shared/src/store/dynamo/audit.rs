//! The audit records of an order (`AUDIT#ORDER#<id>` / `AUDIT#<time>#<n>`): written only
//! if the order exists, never over another record, in a partition no function's role may
//! write. Records written before they moved there (in the order's own partition, same
//! sort keys) are read too.

use super::{
    build_error, cancellation_codes, order_key, put_new, read, s, unavailable, write, OrderStore,
};
use crate::order::OrderId;
use crate::store::keys::{audit_sk, order_audit_pk, order_pk, AUDIT_PREFIX};
use crate::store::{now, AuditEntry, AuditRecord, StoreError};
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};

impl OrderStore {
    /// Records an operator action on the order: one transaction that checks the order
    /// exists and puts the record.
    pub async fn record_audit(
        &self,
        id: &OrderId,
        entry: &AuditEntry<'_>,
    ) -> Result<AuditRecord, StoreError> {
        const OP: &str = "TransactWriteItems(audit record)";
        let record = AuditRecord::new(id, entry, now());
        let n = uuid::Uuid::new_v4().simple().to_string();
        let mut item = write(&record, &order_pk(id))?;
        item.insert("pk".into(), s(order_audit_pk(id)));
        item.insert("sk".into(), s(audit_sk(&record.at, &n[..8])));
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
            .map(|item| read(item, AUDIT_PREFIX))
            .collect::<Result<Vec<AuditRecord>, _>>()?;
        records.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(records)
    }
}
