//! What an order can be found by besides its id and its merchant: the references partners
//! gave its steps. A courier's tracking number is known once ArrangeShipment succeeded; a
//! terminal's serial once ProvisionTerminals assigned it (or, for a replacement, once
//! DeactivateFaultyTerminals took the faulty one out of service).
//!
//! Each ledger records these lookups together with the step's success
//! ([`Ledger::succeed_step`](super::Ledger::succeed_step)) and answers
//! [`Ledger::find_by_reference`](super::Ledger::find_by_reference) from them, without a scan.

use super::References;
use crate::steps::{ARRANGE_SHIPMENT, DEACTIVATE_FAULTY_TERMINALS, PROVISION_TERMINALS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A kind of partner reference an operator searches by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[derive(strum::Display, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The courier's tracking number of the order's parcel.
    #[strum(serialize = "tracking number")]
    TrackingNumber,
    /// The serial of a terminal the order provisioned or replaced.
    #[strum(serialize = "terminal serial")]
    TerminalSerial,
}

impl Reference {
    /// Every kind, in the order a search tries them.
    pub const ALL: [Reference; 2] = [Reference::TrackingNumber, Reference::TerminalSerial];

    /// For people: `tracking number`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The prefix of its lookup items' partition key (`TRACKING#<number>`).
    pub(crate) const fn key_prefix(self) -> &'static str {
        match self {
            Reference::TrackingNumber => "TRACKING",
            Reference::TerminalSerial => "SERIAL",
        }
    }
}

/// The steps whose references are findable: (step, reference name, kind). A reference
/// may hold several values separated by commas (one per terminal).
const FINDABLE: &[(&str, &str, Reference)] = &[
    (
        ARRANGE_SHIPMENT.name,
        "tracking_number",
        Reference::TrackingNumber,
    ),
    (
        PROVISION_TERMINALS.name,
        "terminal_ids",
        Reference::TerminalSerial,
    ),
    (
        DEACTIVATE_FAULTY_TERMINALS.name,
        "deactivated_serials",
        Reference::TerminalSerial,
    ),
];

/// The lookups a success of `step` with `references` records: each findable value once.
pub fn findable(step: &str, references: &References) -> BTreeSet<(Reference, String)> {
    FINDABLE
        .iter()
        .filter(|(name, ..)| *name == step)
        .filter_map(|(_, reference, kind)| Some((*kind, references.get(*reference)?)))
        .flat_map(|(kind, values)| {
            values
                .split(',')
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(move |value| (kind, value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn references(pairs: &[(&str, &str)]) -> References {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_shipment_makes_its_tracking_number_findable_and_provisioning_each_serial() {
        let shipped = findable(
            "ArrangeShipment",
            &references(&[("shipment_id", "shp-1"), ("tracking_number", "TRK-9")]),
        );
        assert_eq!(
            shipped.into_iter().collect::<Vec<_>>(),
            [(Reference::TrackingNumber, "TRK-9".to_owned())]
        );
        let provisioned = findable(
            "ProvisionTerminals",
            &references(&[("terminal_ids", "T-2, T-1,,T-2")]),
        );
        assert_eq!(
            provisioned.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            ["T-1", "T-2"]
        );
    }

    #[test]
    fn other_steps_and_other_references_make_nothing_findable() {
        assert!(findable("ReserveStock", &references(&[("tracking_number", "x")])).is_empty());
        assert!(findable("ArrangeShipment", &references(&[("shipment_id", "shp-1")])).is_empty());
    }
}
