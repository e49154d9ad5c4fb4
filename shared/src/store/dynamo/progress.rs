//! Where a step's attempts are counted: on the order item, so that beginning a step is
//! one conditional UpdateItem that also returns the order (no GetItem first).
//!
//! The order item holds, per step begun, `attempts:<step>` (how many times it was begun),
//! `started:<step>` (its first begin) and `begun:<step>` (its latest), and in
//! `succeeded_steps` (a string set) the steps that succeeded: a begin is refused for
//! those. The step item (`STEP#<step>`) is written when an attempt ends, with its
//! result. What an order's steps look like is both read together ([`order_with_steps`]):
//! an attempt begun after the step item was last written is under way (STARTED).
//!
//! Orders placed before this layout have no `ledger_version`: their step items are the
//! whole record, so a begin of such an order also reads the step item.

use super::{read, Item};
use crate::order::OrderId;
use crate::store::{OrderRecord, StepRecord, StepStatus, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;

/// The order item's attribute that marks the layout: steps counted on the order.
pub(super) const LEDGER_VERSION: &str = "ledger_version";
/// The layout's version, as [`LEDGER_VERSION`] holds it.
pub(super) const STEPS_ON_ORDER: &str = "2";
/// The order item's string set of the steps that succeeded.
pub(super) const SUCCEEDED_STEPS: &str = "succeeded_steps";

/// The attribute counting `step`'s begins.
pub(super) fn attempts_attribute(step: &str) -> String {
    format!("attempts:{step}")
}

/// The attribute holding `step`'s first begin.
pub(super) fn started_attribute(step: &str) -> String {
    format!("started:{step}")
}

/// The attribute holding `step`'s latest begin.
pub(super) fn begun_attribute(step: &str) -> String {
    format!("begun:{step}")
}

/// Whether the order item has the layout's marker (placed since steps are counted on it).
pub(super) fn counts_steps(order_item: &Item) -> bool {
    order_item.contains_key(LEDGER_VERSION)
}

/// A step's begins as the order item counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    attempts: u32,
    started_at: String,
    begun_at: String,
}

pub(super) fn text(item: &Item, attribute: &str) -> Option<String> {
    item.get(attribute)
        .and_then(|v| v.as_s().ok())
        .map(String::to_owned)
}

/// Every step the order item counts begins of.
fn progress(order_item: &Item) -> BTreeMap<String, Progress> {
    order_item
        .iter()
        .filter_map(|(name, value)| {
            let step = name.strip_prefix("attempts:")?;
            let attempts = value.as_n().ok()?.parse().ok()?;
            let started_at = text(order_item, &started_attribute(step)).unwrap_or_default();
            let begun_at = text(order_item, &begun_attribute(step)).unwrap_or(started_at.clone());
            let progress = Progress {
                attempts,
                started_at,
                begun_at,
            };
            Some((step.to_owned(), progress))
        })
        .collect()
}

impl Progress {
    /// The step under way, as these begins say, with no result recorded yet.
    fn under_way(self, order_id: &OrderId, step: &str) -> StepRecord {
        StepRecord {
            order_id: order_id.clone(),
            step: step.to_owned(),
            status: StepStatus::Started,
            attempts: self.attempts,
            started_at: self.started_at,
            updated_at: self.begun_at,
            finished_at: None,
            references: BTreeMap::new(),
            error: None,
            error_message: None,
        }
    }

    /// The step's `item` with these begins counted: an attempt begun after the item's
    /// last result is under way; a success stands.
    fn over(self, item: StepRecord) -> StepRecord {
        if item.status == StepStatus::Succeeded {
            StepRecord {
                attempts: item.attempts.max(self.attempts),
                ..item
            }
        } else if self.attempts > item.attempts {
            StepRecord {
                status: StepStatus::Started,
                attempts: self.attempts,
                updated_at: self.begun_at,
                ..item
            }
        } else {
            item
        }
    }
}

/// The attempt at `step` the order item counts, as under way: what a begin returns.
pub(super) fn attempt(order: &OrderRecord, order_item: &Item, step: &str) -> StepRecord {
    let counted = progress(order_item)
        .remove(step)
        .unwrap_or_else(|| Progress {
            attempts: 1,
            started_at: order.updated_at.clone(),
            begun_at: order.updated_at.clone(),
        });
    counted.under_way(&order.order_id, step)
}

/// A step's item as the order item counts it (attempts begun since included).
pub(super) fn as_counted(order_item: &Item, record: StepRecord) -> StepRecord {
    match progress(order_item).remove(&record.step) {
        Some(counted) => counted.over(record),
        None => record,
    }
}

/// The order and its steps from the order item and the step items of its partition, in
/// the order the steps began.
pub fn order_with_steps(
    order_item: Item,
    step_items: Vec<Item>,
) -> Result<(OrderRecord, Vec<StepRecord>), StoreError> {
    let mut counted = progress(&order_item);
    let order: OrderRecord = read(order_item, "ORDER")?;
    let mut steps = Vec::new();
    for item in step_items {
        let record: StepRecord = read(item, "STEP")?;
        steps.push(match counted.remove(&record.step) {
            Some(p) => p.over(record),
            None => record,
        });
    }
    // Steps begun that have no item yet.
    steps.extend(
        counted
            .into_iter()
            .map(|(step, p)| p.under_way(&order.order_id, &step)),
    );
    steps.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    Ok((order, steps))
}

/// The string set holding one step's name.
pub(super) fn step_set(step: &str) -> AttributeValue {
    AttributeValue::Ss(vec![step.to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;
    use crate::order::{example_request, Order};

    fn order_item(counts: &[(&str, u32)]) -> Item {
        let catalogue = Catalogue::builtin()
            .unwrap_or_else(|error| panic!("the built-in catalogue loads: {error}"));
        let body = example_request("m-1").to_string();
        let order = Order::parse_json(body.as_bytes(), &catalogue)
            .unwrap_or_else(|problems| panic!("the example order is valid: {problems:?}"));
        let record = OrderRecord::accepted(&order, "hash");
        let mut item = super::super::write(&record, "order")
            .unwrap_or_else(|error| panic!("the order item is writable: {error}"));
        for (step, attempts) in counts {
            item.insert(
                attempts_attribute(step),
                AttributeValue::N(attempts.to_string()),
            );
            item.insert(started_attribute(step), AttributeValue::S("t1".into()));
            item.insert(
                begun_attribute(step),
                AttributeValue::S(format!("t{attempts}")),
            );
        }
        item
    }

    fn step_item(order: &OrderRecord, step: &str, status: &str, attempts: u32) -> Item {
        let record = StepRecord {
            order_id: order.order_id.clone(),
            step: step.to_owned(),
            status: serde_json::from_value(serde_json::json!(status))
                .unwrap_or_else(|error| panic!("{status} is a step status: {error}")),
            attempts,
            started_at: "t1".into(),
            updated_at: "t9".into(),
            finished_at: Some("t9".into()),
            references: BTreeMap::new(),
            error: (status == "FAILED").then(|| "Partner.Unavailable".to_owned()),
            error_message: None,
        };
        super::super::write(&record, "step")
            .unwrap_or_else(|error| panic!("the step item is writable: {error}"))
    }

    fn summary(steps: &[StepRecord]) -> Vec<(&str, StepStatus, u32, Option<&str>)> {
        steps
            .iter()
            .map(|s| (s.step.as_str(), s.status, s.attempts, s.error.as_deref()))
            .collect()
    }

    #[test]
    fn a_step_counted_on_the_order_without_an_item_is_under_way() {
        let item = order_item(&[("ValidateOrder", 2)]);
        let (_, steps) = order_with_steps(item, vec![])
            .unwrap_or_else(|error| panic!("the items are readable: {error}"));
        assert_eq!(
            summary(&steps),
            [("ValidateOrder", StepStatus::Started, 2, None)]
        );
        assert_eq!(
            (steps[0].started_at.as_str(), steps[0].updated_at.as_str()),
            ("t1", "t2")
        );
    }

    #[test]
    fn a_failed_step_begun_again_is_under_way_and_a_success_stands_with_every_attempt() {
        let item = order_item(&[("ReserveStock", 3), ("ValidateOrder", 2)]);
        let order: OrderRecord = read(item.clone(), "ORDER")
            .unwrap_or_else(|error| panic!("the order is readable: {error}"));
        let steps = vec![
            step_item(&order, "ReserveStock", "FAILED", 2),
            step_item(&order, "ValidateOrder", "SUCCEEDED", 1),
        ];
        let (_, steps) = order_with_steps(item, steps)
            .unwrap_or_else(|error| panic!("the items are readable: {error}"));
        let mut found = summary(&steps);
        found.sort_by_key(|(step, ..)| *step);
        assert_eq!(
            found,
            [
                (
                    "ReserveStock",
                    StepStatus::Started,
                    3,
                    Some("Partner.Unavailable")
                ),
                ("ValidateOrder", StepStatus::Succeeded, 2, None),
            ]
        );
    }

    #[test]
    fn an_order_placed_before_steps_were_counted_on_it_reads_its_step_items_as_they_are() {
        let item = order_item(&[]);
        assert!(
            !counts_steps(&item),
            "no ledger_version on an old order item"
        );
        let order: OrderRecord = read(item.clone(), "ORDER")
            .unwrap_or_else(|error| panic!("the order is readable: {error}"));
        let steps = vec![step_item(&order, "ReserveStock", "FAILED", 2)];
        let (_, steps) = order_with_steps(item, steps)
            .unwrap_or_else(|error| panic!("the items are readable: {error}"));
        assert_eq!(
            summary(&steps),
            [(
                "ReserveStock",
                StepStatus::Failed,
                2,
                Some("Partner.Unavailable")
            )]
        );
    }
}
