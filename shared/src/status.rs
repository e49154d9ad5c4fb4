//! The life of an order: its statuses and the one table of transitions between them.
//!
//! Every status change in the system goes through [`OrderStatus::check_transition`] and is
//! then written to DynamoDB conditionally on the expected previous status, so two
//! activities can never both move the same order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Stored by the API; the workflow has not validated it yet.
    Accepted,
    /// Re-checked by the workflow against the catalogue.
    Validated,
    StockReserved,
    /// Charged (never for replacements under warranty).
    PaymentTaken,
    /// Terminals assigned to the merchant in the terminal management system.
    Provisioned,
    /// Handed to the courier: from here on the order can no longer be cancelled.
    Shipped,
    Delivered,
    Completed,
    /// Invalid: refused before anything took effect.
    Rejected,
    /// A step failed for good; the completed steps are being undone.
    Compensating,
    /// Ended without completing; `failure` on the order says why.
    Failed,
    /// Cancelled by request; the completed steps are being undone.
    Cancelling,
    Cancelled,
}

use OrderStatus::*;

/// Every allowed move, `(from, to)`. Anything not listed is an illegal transition.
const TRANSITIONS: &[(OrderStatus, OrderStatus)] = &[
    (Accepted, Validated),
    (Accepted, Rejected),
    (Accepted, Failed),
    (Accepted, Cancelling),
    // A cancel before anything began (no execution recorded, no step begun) ends the
    // order at once, in the one conditional write that finds nothing begun.
    (Accepted, Cancelled),
    (Validated, StockReserved),
    // A reservation that failed may still have taken effect (a timeout): it is undone.
    (Validated, Compensating),
    (Validated, Failed),
    (Validated, Cancelling),
    (StockReserved, PaymentTaken),
    // Replacements are free under warranty: no payment step.
    (StockReserved, Provisioned),
    (StockReserved, Compensating),
    (StockReserved, Cancelling),
    (PaymentTaken, Provisioned),
    (PaymentTaken, Compensating),
    (PaymentTaken, Cancelling),
    (Provisioned, Shipped),
    (Provisioned, Compensating),
    (Provisioned, Cancelling),
    (Shipped, Delivered),
    // Lost in transit (delivery never confirmed): undo everything, shipment included.
    (Shipped, Compensating),
    // Delivered after the delivery timeout began the rollback, before anything was undone
    // (the shipment not yet cancelled): the rollback stops and the order completes.
    (Compensating, Delivered),
    (Delivered, Completed),
    (Compensating, Failed),
    (Cancelling, Cancelled),
];

/// A status change the life cycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl OrderStatus {
    /// Every status, in the order of the declaration.
    pub const ALL: &'static [OrderStatus] = <OrderStatus as strum::VariantArray>::VARIANTS;

    /// The statuses a new merchant's order passes through when nothing goes wrong: the
    /// first eight declared, ACCEPTED to COMPLETED (a test holds each step to the table).
    pub const NEW_ORDER_PATH: &'static [OrderStatus] = Self::ALL.split_at(8).0;

    /// The status as stored and shown: `STOCK_RESERVED`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        text.parse().ok()
    }

    /// `Ok` when the life cycle allows moving from `self` to `to`.
    pub fn check_transition(self, to: OrderStatus) -> Result<(), IllegalTransition> {
        if TRANSITIONS.contains(&(self, to)) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The statuses this one may move to.
    pub fn next(self) -> impl Iterator<Item = OrderStatus> {
        TRANSITIONS
            .iter()
            .filter(move |(from, _)| *from == self)
            .map(|(_, to)| *to)
    }

    /// Final statuses never change again.
    pub fn is_final(self) -> bool {
        self.next().next().is_none()
    }

    /// Statuses in which partners may hold effects of the order that a failure must undo:
    /// a compensation moves such an order to COMPENSATING first.
    pub fn has_effects_to_undo(self) -> bool {
        self.check_transition(Compensating).is_ok()
    }

    /// Whether a cancel request can still stop the order (not once it has shipped).
    pub fn is_cancellable(self) -> bool {
        self.check_transition(Cancelling).is_ok()
    }

    /// Every status a cancel moves an order on from: those that may go to CANCELLING.
    pub fn cancellable() -> impl Iterator<Item = OrderStatus> {
        Self::ALL.iter().copied().filter(|s| s.is_cancellable())
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The life cycle written out once more, status by status, the way an operator would
    /// describe it; the test below holds the table to it for every one of the 169 pairs.
    fn expected_next(status: OrderStatus) -> &'static [OrderStatus] {
        match status {
            Accepted => &[Validated, Rejected, Failed, Cancelling, Cancelled],
            Validated => &[StockReserved, Compensating, Failed, Cancelling],
            StockReserved => &[PaymentTaken, Provisioned, Compensating, Cancelling],
            PaymentTaken => &[Provisioned, Compensating, Cancelling],
            Provisioned => &[Shipped, Compensating, Cancelling],
            Shipped => &[Delivered, Compensating],
            Delivered => &[Completed],
            Compensating => &[Delivered, Failed],
            Cancelling => &[Cancelled],
            Completed | Rejected | Failed | Cancelled => &[],
        }
    }

    #[test]
    fn every_pair_of_statuses_is_allowed_exactly_when_the_life_cycle_says_so() {
        for from in OrderStatus::ALL.iter().copied() {
            for to in OrderStatus::ALL.iter().copied() {
                let allowed = expected_next(from).contains(&to);
                let result = from.check_transition(to);
                assert_eq!(result.is_ok(), allowed, "{from} -> {to}");
                if !allowed {
                    assert_eq!(result, Err(IllegalTransition { from, to }));
                }
            }
        }
    }

    #[test]
    fn an_illegal_transition_says_which_move_was_refused() {
        assert_eq!(
            Completed
                .check_transition(Accepted)
                .map_err(|e| e.to_string()),
            Err("an order cannot go from COMPLETED to ACCEPTED".to_owned())
        );
    }

    #[test]
    fn the_table_lists_no_move_twice_and_no_move_to_itself() {
        let unique: BTreeSet<_> = TRANSITIONS.iter().collect();
        assert_eq!(unique.len(), TRANSITIONS.len());
        assert!(TRANSITIONS.iter().all(|(from, to)| from != to));
    }

    /// The statuses for which `holds` is true, in declaration order.
    fn statuses_where(holds: fn(OrderStatus) -> bool) -> Vec<OrderStatus> {
        OrderStatus::ALL
            .iter()
            .copied()
            .filter(|s| holds(*s))
            .collect()
    }

    #[test]
    fn a_new_orders_path_takes_only_allowed_steps_from_accepted_to_completed() {
        let path = OrderStatus::NEW_ORDER_PATH;
        assert_eq!((path[0], path[path.len() - 1]), (Accepted, Completed));
        assert!(path.contains(&PaymentTaken), "a new merchant pays");
        for pair in path.windows(2) {
            assert_eq!(pair[0].check_transition(pair[1]), Ok(()));
        }
    }

    #[test]
    fn exactly_the_four_end_states_are_final() {
        let finals = statuses_where(OrderStatus::is_final);
        assert_eq!(finals, [Completed, Rejected, Failed, Cancelled]);
    }

    /// `start` and every status the table lets it reach, in any number of moves.
    fn reachable_from(start: OrderStatus) -> BTreeSet<OrderStatus> {
        let mut reached = BTreeSet::from([start]);
        let mut frontier = vec![start];
        while let Some(status) = frontier.pop() {
            for next in status.next() {
                if reached.insert(next) {
                    frontier.push(next);
                }
            }
        }
        reached
    }

    #[test]
    fn every_status_is_reachable_from_accepted() {
        assert_eq!(reachable_from(Accepted).len(), OrderStatus::ALL.len());
    }

    #[test]
    fn every_unfinished_order_can_still_reach_an_end() {
        for status in OrderStatus::ALL.iter().copied() {
            let reached = reachable_from(status);
            assert!(reached.iter().any(|s| s.is_final()), "{status} is stuck");
        }
    }

    #[test]
    fn orders_are_cancellable_until_they_ship() {
        let cancellable = statuses_where(OrderStatus::is_cancellable);
        assert_eq!(
            cancellable,
            [
                Accepted,
                Validated,
                StockReserved,
                PaymentTaken,
                Provisioned
            ]
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL.iter().copied() {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).ok();
            assert_eq!(json, Some(format!("\"{}\"", status.as_str())));
        }
    }
}
