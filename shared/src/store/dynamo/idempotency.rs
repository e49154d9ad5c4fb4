//! Placing an order: the order and its caller's `Idempotency-Key` written together, or
//! the order the caller's key placed before found. A key item past its `expires_at` is
//! expired from that moment: the placement's condition takes it over (DynamoDB's TTL
//! deletes such items up to days late, and they must not be honoured meanwhile).

use super::progress::{LEDGER_VERSION, STEPS_ON_ORDER};
use super::{
    build_error, cancellation_codes, key, order_key, put_new, read, s, unavailable, write, Item,
    OrderStore,
};
use crate::callers::Principal;
use crate::order::Order;
use crate::status::OrderStatus;
use crate::store::idempotency::{IdempotencyRecord, IDEMPOTENCY_TTL_SECONDS};
use crate::store::keys::{idempotency_pk, merchant_index_values, status_index_values};
use crate::store::{OrderRecord, Placement, StoreError};
use chrono::Utc;

impl OrderStore {
    /// Stores a new ACCEPTED order under an `Idempotency-Key`, or finds the order that key
    /// already placed. Order and key are written together or not at all.
    pub async fn place_order(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        const OP: &str = "TransactWriteItems(place order)";
        let mut record = OrderRecord::accepted(order, request_hash);
        record.placed_by = Some(caller.clone());
        let (order_id, created_at) = (record.order_id.clone(), record.created_at.clone());
        let mut order_item = write(&record, "order")?;
        order_item.extend(order_key(&order_id));
        let (gsi1pk, gsi1sk) = merchant_index_values(&order.merchant_id, &created_at, &order_id);
        order_item.insert("gsi1pk".into(), s(gsi1pk));
        order_item.insert("gsi1sk".into(), s(gsi1sk));
        let (gsi2pk, gsi2sk) = status_index_values(OrderStatus::Accepted, &created_at, &order_id);
        order_item.insert("gsi2pk".into(), s(gsi2pk));
        order_item.insert("gsi2sk".into(), s(gsi2sk));
        // Steps are counted on this order item (`progress`).
        order_item.insert(
            LEDGER_VERSION.into(),
            aws_sdk_dynamodb::types::AttributeValue::N(STEPS_ON_ORDER.into()),
        );

        let placed_at = Utc::now().timestamp();
        let expires_at = placed_at + IDEMPOTENCY_TTL_SECONDS;
        let mut key_item = write(
            &IdempotencyRecord {
                order_id: order_id.clone(),
                request_hash: request_hash.to_owned(),
                created_at,
                expires_at,
            },
            "idempotency key",
        )?;
        key_item.extend(key(idempotency_pk(caller, idempotency_key), "IDEMPOTENCY"));
        // New, or an expired key's item taken over.
        let key_put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(key_item))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(
                ":now",
                aws_sdk_dynamodb::types::AttributeValue::N(placed_at.to_string()),
            )
            .build()
            .map_err(|e| build_error(OP, e))?;

        let put = |item: Item| put_new(&self.table, item, OP);
        let accepted = crate::events::OrderEvent::accepted(&record);
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(key_put)
                    .build(),
            )
            .transact_items(put(order_item)?)
            .transact_items(super::outbox_put(&self.table, &accepted, None, OP)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Placement::Created(record)),
            Err(error) => {
                let key_taken = cancellation_codes(&error)
                    .first()
                    .is_some_and(|code| code.as_deref() == Some("ConditionalCheckFailed"));
                if !key_taken {
                    return Err(unavailable(OP, error));
                }
                self.find_placement(caller, idempotency_key, request_hash)
                    .await
            }
        }
    }

    async fn find_placement(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        request_hash: &str,
    ) -> Result<Placement, StoreError> {
        let key = key(idempotency_pk(caller, idempotency_key), "IDEMPOTENCY");
        let item = self.get_item(key, "GetItem(idempotency key)").await?;
        let vanished = || StoreError::Unavailable {
            operation: "GetItem(idempotency key)",
            message: "the idempotency key expired while being read; retry".into(),
        };
        // Gone, or expired, between our write and this read: the caller may retry.
        let Some(item) = item else {
            return Err(vanished());
        };
        let existing: IdempotencyRecord = read(item, "idempotency key")?;
        if existing.expires_at <= Utc::now().timestamp() {
            return Err(vanished());
        }
        if existing.request_hash != request_hash {
            return Ok(Placement::KeyReused {
                order_id: existing.order_id,
            });
        }
        let record = self
            .get_order(&existing.order_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(existing.order_id.clone()))?;
        Ok(Placement::Replayed(record))
    }
}
