//! The table's keys and index values: one table holds
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | the order | `ORDER#<id>` | `ORDER` |
//! | one per workflow step (the activity ledger) | `ORDER#<id>` | `STEP#<step>` |
//! | one per caller and API `Idempotency-Key` (expires after a day) | `IDEMPOTENCY#<caller hash>#<key>` | `IDEMPOTENCY` |
//! | one per caller of the API: the merchants it may act for and what it may do (`orderctl callers`) | `CALLERS` | `CALLER#<principal ARN>` |
//! | one per change to a caller's scope | `AUDIT#CALLERS` | `AUDIT#<time>#<n>` |
//! | one per courier event (expires after 30 days) | `COURIER_EVENT#<order id>#<event id>` (an id reused for another order is that order's) | `EVENT` |
//! | one per operator action on the order (the audit trail; before, in the order's own partition) | `AUDIT#ORDER#<id>` | `AUDIT#<time>#<n>` |
//! | one per tracking number and order (written with ArrangeShipment's success) | `TRACKING#<number>` | `ORDER#<id>` |
//! | one per terminal serial and order (written with ProvisionTerminals' or DeactivateFaultyTerminals' success) | `SERIAL#<serial>` | `ORDER#<id>` |
//! | one per lifecycle event the order's changes wrote (the outbox; the table's stream delivers it to the bus; expires after 30 days) | `ORDER#<id>` | `OUTBOX#<event id>` |
//! | where a reconciler's last run stopped in the by-status index (one per reconciler: the scheduled one and `orderctl reconcile` share `reconciler`) | `RECONCILER#<name>` | `CURSOR` |
//!
//! A lookup item holds `order_id`, the `step` that recorded it and `recorded_at`; a
//! Query of its partition finds the orders of a tracking number or serial (a serial can
//! belong to the order that provisioned it and to the one that replaced it).
//! Orders are indexed by merchant (`by-merchant-keys`: `gsi1pk = MERCHANT#<id>`, sorted by
//! creation) and by status (`by-status-keys`: `gsi2pk = STATUS#<status>#<shard>`, sorted
//! by last change), so operators find stuck and failed orders without a scan.
//!
//! The by-status index is written in [`STATUS_SHARDS`] partitions per status (the shard
//! of an order is fixed by its id), so no status is one hot index partition: every write
//! of an order's status lands in one of them, and readers query them all and merge. Both
//! indexes project keys only: no name, address or partner reference is copied into it; readers
//! read the orders they list ([`status_partitions`]). Items written before the shards
//! (`STATUS#<status>`, no shard) are still read: that partition is queried as one more
//! shard, so nothing needs rewriting.

use super::Reference;
use crate::callers::Principal;
use crate::order::OrderId;
use crate::status::OrderStatus;

/// Index of orders by merchant: keys only (template.yaml).
pub const BY_MERCHANT_INDEX: &str = "by-merchant-keys";
/// Index of orders by status: keys only (template.yaml), in [`STATUS_SHARDS`] partitions
/// per status.
pub const BY_STATUS_INDEX: &str = "by-status-keys";

/// How many by-status index partitions each status is spread over. Each takes about a
/// thousand writes a second (a DynamoDB partition's limit); readers query every one, so
/// more shards cost every listing one more Query each.
pub const STATUS_SHARDS: u32 = 8;

/// How long a courier event id is remembered for de-duplication: longer than the courier
/// retries an event and than the workflow waits for a delivery.
pub const COURIER_EVENT_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The item that remembers courier event `event_id` for order `id`: per order, so an id
/// a courier reuses for another order's parcel is that order's event, never a duplicate.
pub(super) fn courier_event_pk(id: &OrderId, event_id: &str) -> String {
    format!("COURIER_EVENT#{id}#{event_id}")
}

/// The partition of the lookup items of one partner reference.
pub(super) fn lookup_pk(reference: Reference, value: &str) -> String {
    format!("{}#{value}", reference.key_prefix())
}

/// The prefix of every outbox item's sort key: what the stream's event source mapping
/// lets through to `publish-events` (template.yaml, `PublishEventsFunction`).
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

/// How long an outbox item stays after its change: far longer than the stream keeps the
/// record (24 hours) that delivers it.
pub const OUTBOX_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

/// An outbox item's sort key.
pub(super) fn outbox_sk(event_id: &str) -> String {
    format!("{OUTBOX_PREFIX}{event_id}")
}

/// The partitions only operators write (the callers' scopes, the audit trail), as IAM's
/// `dynamodb:LeadingKeys` patterns: template.yaml denies every function's role any write
/// to them (`FunctionsNeverWriteAuditOrCallers`).
pub const OPERATOR_ONLY_PARTITIONS: [&str; 2] = [CALLERS_PK, "AUDIT#*"];

/// The partition of an order's audit records: outside the order's own, so that the
/// functions, which write the order's partition, can be denied it.
pub(super) fn order_audit_pk(id: &OrderId) -> String {
    format!("AUDIT#{}", order_pk(id))
}

/// The prefix of every audit record's sort key.
pub(super) const AUDIT_PREFIX: &str = "AUDIT#";

/// An audit record's sort key: sorted by time, `n` keeps two of one millisecond apart.
pub(super) fn audit_sk(at: &str, n: &str) -> String {
    format!("{AUDIT_PREFIX}{at}#{n}")
}

/// The partition of the cursor item of the reconciler called `name`.
pub(super) fn reconcile_cursor_pk(name: &str) -> String {
    format!("RECONCILER#{name}")
}

/// The sort key of a reconciler's cursor item.
pub(super) const RECONCILE_CURSOR_SK: &str = "CURSOR";

pub(super) fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

pub(super) fn step_sk(step: &str) -> String {
    format!("STEP#{step}")
}

/// The item of `key` sent by `caller`: keys are the caller's own, so one caller's key
/// never finds another's order. The principal is hashed (SHA-256, first 128 bits) to keep
/// the key short whatever the ARN's length.
pub fn idempotency_pk(caller: &Principal, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(caller.as_str().as_bytes());
    format!("IDEMPOTENCY#{}#{key}", hex::encode(&hash[..16]))
}

/// The partition of the callers' scopes.
pub const CALLERS_PK: &str = "CALLERS";

/// The prefix of a caller's sort key in [`CALLERS_PK`].
pub(super) const CALLER_PREFIX: &str = "CALLER#";

/// A caller's sort key.
pub(super) fn caller_sk(principal: &Principal) -> String {
    format!("{CALLER_PREFIX}{principal}")
}

/// The partition of the audit records of changes to the callers' scopes.
pub(super) const CALLER_AUDIT_PK: &str = "AUDIT#CALLERS";

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

/// The by-status index's values for an order: partition (its status and its shard) and
/// sort key.
pub(super) fn status_index_values(
    status: OrderStatus,
    updated_at: &str,
    id: &OrderId,
) -> (String, String) {
    (
        format!("STATUS#{status}#{}", status_shard(id)),
        format!("{updated_at}#{id}"),
    )
}

/// The shard of an order in the by-status index: fixed by its id (the first bytes of the
/// id's SHA-256, so the same on every machine and release), whatever its status.
pub fn status_shard(id: &OrderId) -> u32 {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(id.as_str().as_bytes());
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) % STATUS_SHARDS
}

/// Every by-status partition of `status` a reader queries: its shards, then the
/// partition of items written before the shards (`STATUS#<status>`).
pub fn status_partitions(status: OrderStatus) -> Vec<String> {
    (0..STATUS_SHARDS)
        .map(|shard| format!("STATUS#{status}#{shard}"))
        .chain(std::iter::once(format!("STATUS#{status}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_spread_over_every_shard_of_their_status_and_keep_their_shard_when_it_changes() {
        let mut per_shard = [0u32; STATUS_SHARDS as usize];
        for _ in 0..4000 {
            let id = OrderId::generate();
            let shard = status_shard(&id);
            per_shard[shard as usize] += 1;
            let (accepted, _) = status_index_values(OrderStatus::Accepted, "t", &id);
            let (shipped, _) = status_index_values(OrderStatus::Shipped, "t", &id);
            assert_eq!(accepted, format!("STATUS#ACCEPTED#{shard}"));
            assert_eq!(shipped, format!("STATUS#SHIPPED#{shard}"));
        }
        // 500 each on average: none under half of it, none over twice.
        assert!(
            per_shard.iter().all(|&n| (250..=1000).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn a_reader_queries_every_shard_of_a_status_and_the_partition_written_before_the_shards() {
        let partitions = status_partitions(OrderStatus::Cancelled);
        assert_eq!(partitions.len(), STATUS_SHARDS as usize + 1);
        assert_eq!(partitions[0], "STATUS#CANCELLED#0");
        assert_eq!(
            partitions.last().map(String::as_str),
            Some("STATUS#CANCELLED")
        );
    }
}
