//! The lookup items of partner references (`TRACKING#<number>`, `SERIAL#<serial>`; see
//! `keys`): written with the success of the step that recorded the reference, read by a
//! Query of their partition.

use super::{build_error, key, s, unavailable, OrderStore};
use crate::order::OrderId;
use crate::store::keys::{lookup_pk, order_pk};
use crate::store::{findable, Reference, References, StoreError};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

/// How many items one TransactWriteItems may hold (DynamoDB's limit).
pub(super) const TRANSACTION_ITEMS: usize = 100;

impl OrderStore {
    /// The writes of the lookup items `step`'s success with `references` makes: Updates
    /// (an Update creates a missing item, so a role allowed UpdateItem needs nothing more;
    /// a repeated write changes nothing that matters).
    pub(super) fn lookup_updates(
        &self,
        id: &OrderId,
        step: &str,
        references: &References,
        now: &str,
    ) -> Result<Vec<Update>, StoreError> {
        findable(step, references)
            .into_iter()
            .map(|(reference, value)| {
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(lookup_pk(reference, &value), &order_pk(id))))
                    .update_expression("SET order_id = :id, step = :step, recorded_at = :now")
                    .expression_attribute_values(":id", s(id.as_str()))
                    .expression_attribute_values(":step", s(step))
                    .expression_attribute_values(":now", s(now))
                    .build()
                    .map_err(|e| build_error("TransactWriteItems(lookups)", e))
            })
            .collect()
    }

    /// Writes lookup items on their own, a transaction of at most
    /// [`TRANSACTION_ITEMS`] at a time: those that do not fit in the step's own
    /// transaction (an order of hundreds of terminals). Written before the step's success,
    /// they name an order a partner did give the reference to, whatever happens next.
    pub(super) async fn write_lookups(&self, updates: Vec<Update>) -> Result<(), StoreError> {
        let mut updates = updates.into_iter().peekable();
        while updates.peek().is_some() {
            let chunk: Vec<TransactWriteItem> = updates
                .by_ref()
                .take(TRANSACTION_ITEMS)
                .map(|update| TransactWriteItem::builder().update(update).build())
                .collect();
            self.client
                .transact_write_items()
                .set_transact_items(Some(chunk))
                .send()
                .await
                .map_err(|e| unavailable("TransactWriteItems(lookups)", e))?;
        }
        Ok(())
    }

    /// The orders `value` was recorded for, in id order: a Query of its lookup partition.
    pub async fn find_by_reference(
        &self,
        reference: Reference,
        value: &str,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut found = Vec::new();
        let items = self
            .partition("Query(lookup)", lookup_pk(reference, value), "", false)
            .await?;
        for item in items {
            let id = item
                .get("order_id")
                .and_then(|v| v.as_s().ok())
                .and_then(|id| OrderId::parse(id));
            match id {
                Some(id) => found.push(id),
                None => {
                    return Err(StoreError::Corrupt {
                        key: lookup_pk(reference, value),
                        message: "a lookup item without a valid order_id".into(),
                    })
                }
            }
        }
        Ok(found)
    }
}
