//! Anonymising an ended order in the table: one UpdateItem of the order item, conditional
//! on the version read, a final status and no earlier anonymising; `updated_at` and the
//! index keys stay, so the order keeps its place in the by-status index.

use super::{is_conditional_failure, s, unavailable, OrderStore};
use crate::store::retention::{Retention, REMOVED};
use crate::store::{now, OrderRecord, StoreError};
use crate::OrderStatus;
use aws_sdk_dynamodb::types::AttributeValue;
use std::future::Future;

impl OrderStore {
    /// See [`Retention::anonymise`].
    pub async fn anonymise(&self, read: &OrderRecord) -> Result<(), StoreError> {
        let finals: Vec<OrderStatus> = OrderStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.is_final())
            .collect();
        let mut update = self
            .update_order_item(&read.order_id)
            .update_expression(
                "SET #order.delivery_address.#name = :removed, \
                 #order.delivery_address.line1 = :removed, \
                 anonymised_at = :at, version = version + :one \
                 REMOVE #order.delivery_address.line2",
            )
            .expression_attribute_names("#order", "order")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":removed", s(REMOVED))
            .expression_attribute_values(":at", s(now()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":version", AttributeValue::N(read.version.to_string()));
        let mut names = Vec::new();
        for (n, status) in finals.iter().enumerate() {
            let name = format!(":final{n}");
            update = update.expression_attribute_values(&name, s(status.to_string()));
            names.push(name);
        }
        let condition = format!(
            "version = :version AND attribute_not_exists(anonymised_at) AND #status IN ({})",
            names.join(", ")
        );
        match update.condition_expression(condition).send().await {
            Ok(_) => Ok(()),
            Err(error) if is_conditional_failure(&error) => Err(StoreError::Changed {
                order_id: read.order_id.clone(),
                read_version: read.version,
            }),
            Err(error) => Err(unavailable("UpdateItem(anonymise order)", error)),
        }
    }
}

impl Retention for OrderStore {
    fn anonymise(&self, read: &OrderRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::anonymise(self, read)
    }
}
