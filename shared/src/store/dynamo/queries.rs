//! Reads of more than one item: an order with its steps, a merchant's orders (orders by
//! status: `by_status`). Queries, never scans.

use super::progress::{order_with_steps, text};
use super::{key as dynamo_key, read, s, unavailable, Item, OrderStore};
use crate::order::OrderId;
use crate::status::OrderStatus;
use crate::store::keys::{order_pk, reconcile_cursor_pk, BY_MERCHANT_INDEX, RECONCILE_CURSOR_SK};
use crate::store::{IndexPosition, OrderRecord, StepRecord, StoreError};

impl OrderStore {
    /// Every item of the partition `pk` whose sort key begins with `sk_prefix` (all of
    /// them for `""`), every page, in sort-key order; `consistent` for a strongly
    /// consistent read. `operation` names the Query in errors.
    pub(super) async fn partition(
        &self,
        operation: &'static str,
        pk: String,
        sk_prefix: &str,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(consistent);
        query = match sk_prefix {
            "" => query.key_condition_expression("pk = :pk"),
            prefix => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
        };
        let mut pages = query.into_paginator().items().send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| unavailable(operation, e))?);
        }
        Ok(items)
    }

    /// The order and all of its step items, in one consistent query.
    pub async fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError> {
        let mut order = None;
        let mut steps = Vec::new();
        let items = self
            .partition("Query(order and steps)", order_pk(id), "", true)
            .await?;
        for item in items {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
            match sk.as_deref() {
                Some("ORDER") => order = Some(item),
                Some(sk) if sk.starts_with("STEP#") => steps.push(item),
                _ => {}
            }
        }
        order
            .map(|order| order_with_steps(order, steps))
            .transpose()
    }

    /// The lifecycle events the order's changes wrote to the outbox, in `event_id` order,
    /// read consistently.
    pub async fn outbox(&self, id: &OrderId) -> Result<Vec<crate::events::OrderEvent>, StoreError> {
        let items = self
            .partition(
                "Query(outbox)",
                order_pk(id),
                crate::store::keys::OUTBOX_PREFIX,
                true,
            )
            .await?;
        items
            .into_iter()
            .map(|item| {
                let record: crate::events::OutboxRecord = read(item, "outbox item")?;
                crate::events::OrderEvent::from_outbox(&record).map_err(|message| {
                    StoreError::Corrupt {
                        key: record.event_id.clone(),
                        message,
                    }
                })
            })
            .collect()
    }

    /// Where the last run of the reconciler `name` stopped (its cursor item), if it
    /// stopped early.
    pub async fn reconcile_cursor(&self, name: &str) -> Result<Option<IndexPosition>, StoreError> {
        let (pk, sk) = (reconcile_cursor_pk(name), RECONCILE_CURSOR_SK);
        let Some(item) = self
            .get_item(dynamo_key(pk.clone(), sk), "GetItem(reconciler cursor)")
            .await?
        else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(match (text("cursor_status"), text("cursor_key")) {
            (Some(status), Some(key)) => Some(IndexPosition {
                status: OrderStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{pk}/{sk}"),
                    message: format!("unknown status {status:?}"),
                })?,
                key,
            }),
            _ => None,
        })
    }

    /// Records where a run of the reconciler `name` stopped, or (`None`) that it reached
    /// the end.
    pub async fn set_reconcile_cursor(
        &self,
        name: &str,
        position: Option<&IndexPosition>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(dynamo_key(
                reconcile_cursor_pk(name),
                RECONCILE_CURSOR_SK,
            )))
            .expression_attribute_values(":now", s(crate::store::now()));
        let update = match position {
            Some(position) => update
                .update_expression(
                    "SET cursor_status = :status, cursor_key = :key, updated_at = :now",
                )
                .expression_attribute_values(":status", s(position.status.as_str()))
                .expression_attribute_values(":key", s(position.key.clone())),
            None => {
                update.update_expression("SET updated_at = :now REMOVE cursor_status, cursor_key")
            }
        };
        update
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable("UpdateItem(reconciler cursor)", e))
    }

    /// A merchant's orders created at or after `since` (an RFC 3339 time), oldest first,
    /// at most `limit`: a Query on the by-merchant index (keys only), then the orders
    /// read with BatchGetItem (an order is never moved in this index: its merchant and
    /// creation time do not change).
    pub async fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_MERCHANT_INDEX)
            .projection_expression("pk, sk")
            .expression_attribute_values(":merchant", s(format!("MERCHANT#{merchant_id}")));
        request = match since {
            Some(since) => request
                .key_condition_expression("gsi1pk = :merchant AND gsi1sk >= :since")
                .expression_attribute_values(":since", s(since)),
            None => request.key_condition_expression("gsi1pk = :merchant"),
        };
        let mut keys = Vec::new();
        let mut pages = request.into_paginator().items().send();
        while keys.len() < limit {
            let Some(item) = pages.next().await else {
                break;
            };
            let item = item.map_err(|e| unavailable("Query(by merchant)", e))?;
            if let (Some(pk), Some(sk)) = (text(&item, "pk"), text(&item, "sk")) {
                keys.push((pk, sk));
            }
        }
        let mut items = self.items_of(&keys, "BatchGetItem(by merchant)").await?;
        let mut orders = Vec::new();
        for (pk, _) in &keys {
            if let Some(item) = items.remove(pk) {
                orders.push(read(item, pk)?);
            }
        }
        Ok(orders)
    }
}
