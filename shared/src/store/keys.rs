//! The table's keys and index values: one table holds
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | the order | `ORDER#<id>` | `ORDER` |
//! | one per workflow step (the activity ledger) | `ORDER#<id>` | `STEP#<step>` |
//! | one per API `Idempotency-Key` (expires after a day) | `IDEMPOTENCY#<key>` | `IDEMPOTENCY` |
//! | one per courier event (expires after 30 days) | `COURIER_EVENT#<event id>` | `EVENT` |
//!
//! Orders are indexed by merchant (`by-merchant`: `gsi1pk = MERCHANT#<id>`, sorted by
//! creation) and by status (`by-status`: `gsi2pk = STATUS#<status>`, sorted by last
//! change), so operators find stuck and failed orders without a scan.

use crate::order::OrderId;
use crate::status::OrderStatus;

/// Index of orders by merchant.
pub const BY_MERCHANT_INDEX: &str = "by-merchant";
/// Index of orders by status.
pub const BY_STATUS_INDEX: &str = "by-status";

/// How long a courier event id is remembered for de-duplication: longer than the courier
/// retries an event and than the workflow waits for a delivery.
pub const COURIER_EVENT_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

pub(super) fn courier_event_pk(event_id: &str) -> String {
    format!("COURIER_EVENT#{event_id}")
}

pub(super) fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

pub(super) fn step_sk(step: &str) -> String {
    format!("STEP#{step}")
}

pub(super) fn idempotency_pk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

/// The by-merchant index's values for an order: partition and sort key.
pub(super) fn merchant_index_values(
    merchant_id: &str,
    created_at: &str,
    id: &OrderId,
) -> (String, String) {
    (
        format!("MERCHANT#{merchant_id}"),
        format!("{created_at}#{id}"),
    )
}

/// The by-status index's values for an order: partition and sort key.
pub(super) fn status_index_values(
    status: OrderStatus,
    updated_at: &str,
    id: &OrderId,
) -> (String, String) {
    (format!("STATUS#{status}"), format!("{updated_at}#{id}"))
}
