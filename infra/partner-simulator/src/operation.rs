//! The five partners and the operations they offer: the vocabulary shared by the HTTP
//! handlers, the fault rules and the ledger.

use std::fmt;

/// One of the five third parties an order crosses. Its name is the base path of its API
/// (`/warehouse`, ...) and the `partner` of a fault rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partner {
    Warehouse,
    Payments,
    Terminals,
    Courier,
    Notifications,
}

impl Partner {
    /// Every partner, in the order of the README.
    pub const ALL: [Partner; 5] = [
        Partner::Warehouse,
        Partner::Payments,
        Partner::Terminals,
        Partner::Courier,
        Partner::Notifications,
    ];

    /// The partner's name: `warehouse`, `payments`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Partner::Warehouse => "warehouse",
            Partner::Payments => "payments",
            Partner::Terminals => "terminals",
            Partner::Courier => "courier",
            Partner::Notifications => "notifications",
        }
    }

    /// The partner with that name; `None` for anything else (including `*`).
    pub fn from_name(name: &str) -> Option<Partner> {
        Partner::ALL.iter().copied().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Partner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation of one partner. Every one but [`Operation::Deliver`] is a partner
/// request (`POST /{partner}/{resource}`); `Deliver` is the courier's own act of
/// delivering a parcel, which only a `hold` fault can affect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Reserve,
    Release,
    Charge,
    Refund,
    Provision,
    Deprovision,
    Deactivate,
    Ship,
    Cancel,
    ReturnLabel,
    Send,
    Deliver,
}

impl Operation {
    /// Every operation, in the order of the README.
    pub const ALL: [Operation; 12] = [
        Operation::Reserve,
        Operation::Release,
        Operation::Charge,
        Operation::Refund,
        Operation::Provision,
        Operation::Deprovision,
        Operation::Deactivate,
        Operation::Ship,
        Operation::Cancel,
        Operation::ReturnLabel,
        Operation::Send,
        Operation::Deliver,
    ];

    /// The operation's name in fault rules and logs: `reserve`, `return_label`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Reserve => "reserve",
            Operation::Release => "release",
            Operation::Charge => "charge",
            Operation::Refund => "refund",
            Operation::Provision => "provision",
            Operation::Deprovision => "deprovision",
            Operation::Deactivate => "deactivate",
            Operation::Ship => "ship",
            Operation::Cancel => "cancel",
            Operation::ReturnLabel => "return_label",
            Operation::Send => "send",
            Operation::Deliver => "deliver",
        }
    }

    /// The operation with that name; `None` for anything else (including `*`).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The partner that offers it.
    pub const fn partner(self) -> Partner {
        match self {
            Operation::Reserve | Operation::Release => Partner::Warehouse,
            Operation::Charge | Operation::Refund => Partner::Payments,
            Operation::Provision | Operation::Deprovision | Operation::Deactivate => {
                Partner::Terminals
            }
            Operation::Ship | Operation::Cancel | Operation::ReturnLabel | Operation::Deliver => {
                Partner::Courier
            }
            Operation::Send => Partner::Notifications,
        }
    }

    /// The path it is served on; `None` for [`Operation::Deliver`], which is not a request.
    pub const fn path(self) -> Option<&'static str> {
        match self {
            Operation::Reserve => Some("/warehouse/reservations"),
            Operation::Release => Some("/warehouse/releases"),
            Operation::Charge => Some("/payments/charges"),
            Operation::Refund => Some("/payments/refunds"),
            Operation::Provision => Some("/terminals/provisionings"),
            Operation::Deprovision => Some("/terminals/deprovisionings"),
            Operation::Deactivate => Some("/terminals/deactivations"),
            Operation::Ship => Some("/courier/shipments"),
            Operation::Cancel => Some("/courier/cancellations"),
            Operation::ReturnLabel => Some("/courier/return-labels"),
            Operation::Send => Some("/notifications/messages"),
            Operation::Deliver => None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
