//! The by-status index, read. It holds keys only and spreads each status over
//! [`STATUS_SHARDS`](crate::store::STATUS_SHARDS) partitions (`store::keys`): a listing
//! queries every partition of the status at once, merges their entries in sort-key order,
//! then reads the orders they point at (BatchGetItem, consistent) and keeps those still at
//! the place the index showed (an order that moved since is listed at its new place).
//! A round that keeps fewer than asked (some moved) reads on after its last entry, so a
//! short answer always means the stretch ended.

use super::progress::text;
use super::{read, s, unavailable, Item, OrderStore};
use crate::status::OrderStatus;
use crate::store::keys::{status_partitions, BY_STATUS_INDEX};
use crate::store::{OrderRecord, StoreError};
use aws_sdk_dynamodb::types::{KeysAndAttributes, Select};
use futures_util::future::try_join_all;
use std::collections::HashMap;

/// Where a listing's entries lie in one status's index: sort keys above `after` (never
/// `after` itself) and below `before`, or up to it with `before_inclusive`.
#[derive(Debug, Clone, Copy, Default)]
struct Stretch<'a> {
    after: Option<&'a str>,
    before: Option<&'a str>,
    before_inclusive: bool,
}

/// One entry of the index: its partition (status and shard), its sort key, and the key
/// of the order item it points at.
#[derive(Debug, Clone)]
struct Entry {
    partition: String,
    sort_key: String,
    pk: String,
    sk: String,
}

/// The most entries one round reads (and orders one round reads with BatchGetItem).
const ROUND: usize = 100;
/// The most keys one BatchGetItem takes.
const BATCH_GET_KEYS: usize = 100;
/// How often a BatchGetItem's unprocessed keys (throttling) are asked for again before
/// the read fails as unavailable.
const UNPROCESSED_RETRIES: u32 = 8;

/// The stretch's next `want` entries from every partition's lowest (each partition's
/// `want` lowest, and one more when it has more), in sort-key order; and whether the
/// stretch may hold more after them.
fn merge(per_partition: Vec<Vec<Entry>>, want: usize) -> (Vec<Entry>, bool) {
    let some_partition_has_more = per_partition.iter().any(|entries| entries.len() > want);
    let mut entries: Vec<Entry> = per_partition.into_iter().flatten().collect();
    entries.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let more = some_partition_has_more || entries.len() > want;
    entries.truncate(want);
    (entries, more)
}

/// Whether the order item `item` is still where the index entry `entry` showed it (an
/// index is eventually consistent: the order may have moved since).
fn still_at(item: &Item, entry: &Entry) -> bool {
    text(item, "gsi2pk").as_deref() == Some(entry.partition.as_str())
        && text(item, "gsi2sk").as_deref() == Some(entry.sort_key.as_str())
}

impl OrderStore {
    /// Orders in `status` whose last change is older than `before` (an RFC 3339 time),
    /// oldest first, at most `limit`: Queries on the by-status index (every shard of the
    /// status), never a scan, then the orders read.
    pub async fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let stretch = Stretch {
            before,
            ..Stretch::default()
        };
        self.orders_in_stretch(status, stretch, limit).await
    }

    /// [`OrderStore::orders_in_status`] after the order whose index sort key is `after`
    /// (left out), up to and including `before` when given.
    pub async fn orders_in_status_after(
        &self,
        status: OrderStatus,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let stretch = Stretch {
            after: Some(after),
            before,
            before_inclusive: true,
        };
        self.orders_in_stretch(status, stretch, limit).await
    }

    /// The orders of `status` in `stretch`, oldest change first, at most `limit`.
    async fn orders_in_stretch(
        &self,
        status: OrderStatus,
        stretch: Stretch<'_>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        if let (Some(after), Some(before)) = (stretch.after, stretch.before) {
            // An empty range: DynamoDB refuses a BETWEEN whose bounds are the wrong way.
            if before <= after {
                return Ok(Vec::new());
            }
        }
        let partitions = status_partitions(status);
        let mut orders = Vec::new();
        let mut after = stretch.after.map(str::to_owned);
        while orders.len() < limit {
            let want = (limit - orders.len()).min(ROUND);
            let round = Stretch {
                after: after.as_deref(),
                ..stretch
            };
            let per_partition = try_join_all(
                partitions
                    .iter()
                    .map(|partition| self.index_entries(partition, round, want)),
            )
            .await?;
            let (entries, more) = merge(per_partition, want);
            let Some(last) = entries.last().map(|entry| entry.sort_key.clone()) else {
                break;
            };
            orders.extend(self.orders_still_at(&entries).await?);
            if !more {
                break;
            }
            after = Some(last);
        }
        orders.truncate(limit);
        Ok(orders)
    }

    /// Up to `want + 1` entries of one index partition in `stretch`, lowest first.
    async fn index_entries(
        &self,
        partition: &str,
        stretch: Stretch<'_>,
        want: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .projection_expression("pk, sk, gsi2pk, gsi2sk")
            .expression_attribute_values(":partition", s(partition));
        let range = match (stretch.after, stretch.before) {
            (None, None) => None,
            (None, Some(before)) => {
                request = request.expression_attribute_values(":before", s(before));
                Some(if stretch.before_inclusive {
                    "gsi2sk <= :before"
                } else {
                    "gsi2sk < :before"
                })
            }
            (Some(after), None) => {
                request = request.expression_attribute_values(":after", s(after));
                Some("gsi2sk > :after")
            }
            // A key condition has one comparison: the bounds themselves are left out
            // below as the stretch says.
            (Some(after), Some(before)) => {
                request = request
                    .expression_attribute_values(":after", s(after))
                    .expression_attribute_values(":before", s(before));
                Some("gsi2sk BETWEEN :after AND :before")
            }
        };
        let condition = match range {
            Some(range) => format!("gsi2pk = :partition AND {range}"),
            None => "gsi2pk = :partition".to_owned(),
        };
        let page_size = i32::try_from(want.saturating_add(2)).unwrap_or(i32::MAX);
        let mut pages = request
            .key_condition_expression(condition)
            .limit(page_size)
            .into_paginator()
            .items()
            .send();
        let mut entries = Vec::new();
        while entries.len() <= want {
            let Some(item) = pages.next().await else {
                break;
            };
            let item = item.map_err(|e| unavailable("Query(by status)", e))?;
            let (Some(pk), Some(sk), Some(sort_key)) =
                (text(&item, "pk"), text(&item, "sk"), text(&item, "gsi2sk"))
            else {
                continue;
            };
            let excluded = Some(sort_key.as_str()) == stretch.after
                || (!stretch.before_inclusive && Some(sort_key.as_str()) == stretch.before);
            if !excluded {
                entries.push(Entry {
                    partition: partition.to_owned(),
                    sort_key,
                    pk,
                    sk,
                });
            }
        }
        Ok(entries)
    }

    /// The orders `entries` point at that are still where the index showed them (same
    /// partition and sort key), in the entries' order.
    async fn orders_still_at(&self, entries: &[Entry]) -> Result<Vec<OrderRecord>, StoreError> {
        let keys: Vec<(String, String)> = entries
            .iter()
            .map(|entry| (entry.pk.clone(), entry.sk.clone()))
            .collect();
        let mut items = self.items_of(&keys, "BatchGetItem(by status)").await?;
        let mut orders = Vec::new();
        for entry in entries {
            let Some(item) = items.remove(&entry.pk) else {
                continue;
            };
            if still_at(&item, entry) {
                orders.push(read(item, &entry.pk)?);
            }
        }
        Ok(orders)
    }

    /// The items at `keys` (`pk`, `sk`; one item per `pk`), read consistently with
    /// BatchGetItem, 100 keys a call; the keys DynamoDB leaves unprocessed (throttling)
    /// are asked for again, with a growing pause, before the read fails as unavailable.
    /// Keys of no item are absent from the answer.
    pub(super) async fn items_of(
        &self,
        keys: &[(String, String)],
        operation: &'static str,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let mut items: HashMap<String, Item> = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            let keys = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("pk".to_owned(), s(pk.clone())),
                        ("sk".to_owned(), s(sk.clone())),
                    ])
                })
                .collect();
            let mut wanted = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| super::build_error(operation, e))?;
            let mut attempt = 0;
            loop {
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .send()
                    .await
                    .map_err(|e| unavailable(operation, e))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let Some(pk) = text(&item, "pk") {
                        items.insert(pk, item);
                    }
                }
                match answer
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .filter(|left| !left.keys.is_empty())
                {
                    None => break,
                    Some(_) if attempt >= UNPROCESSED_RETRIES => {
                        return Err(StoreError::Unavailable {
                            operation,
                            message: format!(
                                "keys still unprocessed after {UNPROCESSED_RETRIES} retries (throttled)"
                            ),
                        })
                    }
                    Some(left) => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(
                            25u64 << attempt.min(6),
                        ))
                        .await;
                        wanted = left;
                    }
                }
            }
        }
        Ok(items)
    }

    /// How many orders are in `status`: every partition of the status counted at once
    /// (`Select: COUNT`, page by page), without reading the orders.
    pub async fn count_in_status(&self, status: OrderStatus) -> Result<usize, StoreError> {
        let counts = try_join_all(
            status_partitions(status)
                .into_iter()
                .map(|partition| async {
                    let mut count = 0;
                    let mut pages = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(BY_STATUS_INDEX)
                        .key_condition_expression("gsi2pk = :partition")
                        .expression_attribute_values(":partition", s(partition))
                        .select(Select::Count)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| unavailable("Query(count by status)", e))?;
                        count += usize::try_from(page.count()).unwrap_or_default();
                    }
                    Ok::<usize, StoreError>(count)
                }),
        )
        .await?;
        Ok(counts.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(partition: &str, sort_key: &str) -> Entry {
        Entry {
            partition: partition.to_owned(),
            sort_key: sort_key.to_owned(),
            pk: format!("ORDER#{sort_key}"),
            sk: "ORDER".to_owned(),
        }
    }

    fn keys(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.sort_key.as_str()).collect()
    }

    #[test]
    fn the_shards_entries_are_merged_in_sort_key_order_and_cut_at_what_was_asked() {
        let (entries, more) = merge(
            vec![
                vec![entry("S#0", "a1"), entry("S#0", "a4")],
                vec![entry("S#1", "a2"), entry("S#1", "a3"), entry("S#1", "a5")],
                vec![],
            ],
            3,
        );
        assert_eq!(keys(&entries), ["a1", "a2", "a3"]);
        assert!(more, "five entries for three asked: more may follow");
    }

    #[test]
    fn a_shard_that_answered_more_than_asked_means_the_stretch_may_go_on() {
        let (entries, more) = merge(
            vec![vec![
                entry("S#0", "a1"),
                entry("S#0", "a2"),
                entry("S#0", "a3"),
            ]],
            2,
        );
        assert_eq!(keys(&entries), ["a1", "a2"]);
        assert!(more);
        let (entries, more) = merge(vec![vec![entry("S#0", "a1")], vec![entry("S#1", "a2")]], 2);
        assert_eq!(keys(&entries), ["a1", "a2"]);
        assert!(
            !more,
            "every shard gave fewer than it could: the stretch ended"
        );
    }

    #[test]
    fn an_order_is_kept_only_while_its_item_is_where_the_index_entry_shows_it() {
        let listed = entry("STATUS#ACCEPTED#3", "2026-12-08T00:00:00.000Z#o1");
        let item = |partition: &str, sort_key: &str| -> Item {
            HashMap::from([
                ("gsi2pk".to_owned(), s(partition)),
                ("gsi2sk".to_owned(), s(sort_key)),
            ])
        };
        assert!(still_at(
            &item("STATUS#ACCEPTED#3", "2026-12-08T00:00:00.000Z#o1"),
            &listed
        ));
        // Moved to another status since, or changed status and back (a later sort key).
        assert!(!still_at(
            &item("STATUS#VALIDATED#3", "2026-12-08T00:00:01.000Z#o1"),
            &listed
        ));
        assert!(!still_at(
            &item("STATUS#ACCEPTED#3", "2026-12-08T00:00:02.000Z#o1"),
            &listed
        ));
        // Another partition under the same sort key (a change within the same millisecond).
        assert!(!still_at(
            &item("STATUS#VALIDATED#3", "2026-12-08T00:00:00.000Z#o1"),
            &listed
        ));
        assert!(!still_at(&HashMap::new(), &listed));
    }
}
