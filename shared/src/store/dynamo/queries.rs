//! Reads of more than one item: an order with its steps, orders by status, a merchant's
//! orders. Queries, never scans.

use super::progress::order_with_steps;
use super::{read, s, unavailable, OrderStore};
use crate::order::OrderId;
use crate::status::OrderStatus;
use crate::store::keys::{order_pk, BY_MERCHANT_INDEX, BY_STATUS_INDEX};
use crate::store::{OrderRecord, StepRecord, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

impl OrderStore {
    /// The order and all of its step items, in one consistent query.
    pub async fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError> {
        let mut order = None;
        let mut steps = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(order_pk(id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query(order and steps)", e))?;
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

    /// Orders in `status` whose last change is older than `before` (an RFC 3339 time),
    /// oldest first, at most `limit`: a Query on the by-status index, never a scan.
    pub async fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let bound = before.map(|before| ("gsi2sk < :bound", before));
        let key = (BY_STATUS_INDEX, "gsi2pk", s(format!("STATUS#{status}")));
        self.query_index(key, bound, limit, "Query(by status)")
            .await
    }

    /// A merchant's orders created at or after `since` (an RFC 3339 time), oldest first,
    /// at most `limit`: a Query on the by-merchant index.
    pub async fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let bound = since.map(|since| ("gsi1sk >= :bound", since));
        let key = (
            BY_MERCHANT_INDEX,
            "gsi1pk",
            s(format!("MERCHANT#{merchant_id}")),
        );
        self.query_index(key, bound, limit, "Query(by merchant)")
            .await
    }

    /// A Query of `index` for the items whose partition key `key` is `value` and, with a
    /// `bound`, whose sort key meets its condition (on `:bound`); at most `limit`.
    async fn query_index(
        &self,
        (index, key, value): (&str, &str, AttributeValue),
        bound: Option<(&str, &str)>,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut condition = format!("{key} = :key");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_values(":key", value);
        if let Some((sort_condition, bound)) = bound {
            condition.push_str(" AND ");
            condition.push_str(sort_condition);
            request = request.expression_attribute_values(":bound", s(bound));
        }
        self.collect(request.key_condition_expression(condition), limit, what)
            .await
    }

    async fn collect(
        &self,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
        operation: &'static str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut orders = Vec::new();
        let mut pages = request.into_paginator().items().send();
        while orders.len() < limit {
            let Some(item) = pages.next().await else {
                break;
            };
            let item = item.map_err(|e| unavailable(operation, e))?;
            let key = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            orders.push(read(item, &key)?);
        }
        Ok(orders)
    }
}
