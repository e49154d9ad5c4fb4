//! The steps of the order workflow: one list that names every state that runs an
//! activity, the Lambda function that implements it, the partner it calls and the step
//! that undoes it. The state machine (`infra/statemachine/order-workflow.asl.yaml`), the
//! activity functions and the workflow checks in `tests/workflow_definition.rs` all use
//! these names; the checks hold the definition to this list.

use crate::errors::ErrorName;

/// What a step is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRole {
    /// Moves the order forward.
    Forward,
    /// Undoes a forward step's effect at a partner (saga compensation).
    Compensation,
    /// Records how the order ended (REJECTED, FAILED, CANCELLED).
    Record,
}

/// The partner a step talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Partner {
    Warehouse,
    Payments,
    Terminals,
    Courier,
    Notifications,
}

impl Partner {
    /// Every partner, in the order of the declaration.
    pub const ALL: &'static [Partner] = <Partner as strum::VariantArray>::VARIANTS;

    /// The partner's name in logs, errors and the simulator's URLs: `warehouse`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The environment variable holding the partner's base URL: `WAREHOUSE_API_URL`.
    pub const fn url_variable(self) -> &'static str {
        match self {
            Partner::Warehouse => "WAREHOUSE_API_URL",
            Partner::Payments => "PAYMENTS_API_URL",
            Partner::Terminals => "TERMINALS_API_URL",
            Partner::Courier => "COURIER_API_URL",
            Partner::Notifications => "NOTIFICATIONS_API_URL",
        }
    }

    /// The environment variable holding the id (ARN or name) of the Secrets Manager
    /// secret with the partner's API token: `WAREHOUSE_API_TOKEN_SECRET`. Each partner has
    /// its own, so no partner ever sees another's credential.
    pub const fn token_secret_variable(self) -> &'static str {
        match self {
            Partner::Warehouse => "WAREHOUSE_API_TOKEN_SECRET",
            Partner::Payments => "PAYMENTS_API_TOKEN_SECRET",
            Partner::Terminals => "TERMINALS_API_TOKEN_SECRET",
            Partner::Courier => "COURIER_API_TOKEN_SECRET",
            Partner::Notifications => "NOTIFICATIONS_API_TOKEN_SECRET",
        }
    }
}

impl std::fmt::Display for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The state's name in the definition, and the step item's name in the ledger.
    pub name: &'static str,
    /// The Lambda binary (and function directory under `functions/`) that runs it.
    pub function: &'static str,
    pub role: StepRole,
    /// The partner it calls, if any: a Task that calls one retries its transient errors.
    pub partner: Option<Partner>,
    /// The step that undoes it, for a forward step with an effect at a partner.
    pub compensation: Option<&'static str>,
    /// The error a permanent refusal of the partner call becomes, the name the definition
    /// catches: `Stock.Unavailable` for ReserveStock; `Partner.Rejected` where no more
    /// specific name applies.
    pub refused: ErrorName,
}

const fn step(
    name: &'static str,
    function: &'static str,
    role: StepRole,
    partner: Option<Partner>,
    compensation: Option<&'static str>,
) -> Step {
    Step {
        name,
        function,
        role,
        partner,
        compensation,
        refused: ErrorName::PartnerRejected,
    }
}

impl Step {
    /// The function's name in the template, its binary's in camel case:
    /// `DeactivateTerminals` for `deactivate-terminals`. Its logical id is
    /// `<name>Function`; the state machine invokes `${<name>FunctionVersionArn}`.
    pub fn function_name(&self) -> String {
        self.function
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The step whose partner's refusal is `name` instead of `Partner.Rejected`.
    const fn refused_as(self, name: ErrorName) -> Step {
        Step {
            refused: name,
            ..self
        }
    }
}

use Partner::*;
use StepRole::*;

pub const VALIDATE_ORDER: Step = step("ValidateOrder", "validate-order", Forward, None, None);
pub const RESERVE_STOCK: Step = step(
    "ReserveStock",
    "reserve-stock",
    Forward,
    Some(Warehouse),
    Some("ReleaseStock"),
)
.refused_as(ErrorName::StockUnavailable);
pub const TAKE_PAYMENT: Step = step(
    "TakePayment",
    "take-payment",
    Forward,
    Some(Payments),
    Some("RefundPayment"),
)
.refused_as(ErrorName::PaymentDeclined);
/// Replacement only: the faulty terminals stop taking payments. Not undone: a terminal
/// reported faulty stays deactivated whatever becomes of its replacement order.
pub const DEACTIVATE_FAULTY_TERMINALS: Step = step(
    "DeactivateFaultyTerminals",
    "deactivate-terminals",
    Forward,
    Some(Terminals),
    None,
)
.refused_as(ErrorName::ProvisioningRejected);
/// Replacement only: the label the merchant sends the faulty terminals back with. Not
/// undone: an unused label costs nothing and expires.
pub const CREATE_RETURN_LABEL: Step = step(
    "CreateReturnLabel",
    "create-return-label",
    Forward,
    Some(Courier),
    None,
)
.refused_as(ErrorName::ShipmentRejected);
pub const PROVISION_TERMINALS: Step = step(
    "ProvisionTerminals",
    "provision-terminals",
    Forward,
    Some(Terminals),
    Some("DeprovisionTerminals"),
)
.refused_as(ErrorName::ProvisioningRejected);
pub const ARRANGE_SHIPMENT: Step = step(
    "ArrangeShipment",
    "arrange-shipment",
    Forward,
    Some(Courier),
    Some("CancelShipment"),
)
.refused_as(ErrorName::ShipmentRejected);
/// Waits for the courier's delivery event (a task token resumed by the webhook).
pub const AWAIT_DELIVERY: Step = step("AwaitDelivery", "await-delivery", Forward, None, None);
/// Best effort: a failed notification never rolls back a delivered order.
pub const NOTIFY_CUSTOMER: Step = step(
    "NotifyCustomer",
    "notify-customer",
    Forward,
    Some(Notifications),
    None,
);
pub const COMPLETE_ORDER: Step = step("CompleteOrder", "complete-order", Forward, None, None);
pub const CANCEL_SHIPMENT: Step = step(
    "CancelShipment",
    "cancel-shipment",
    Compensation,
    Some(Courier),
    None,
);
pub const DEPROVISION_TERMINALS: Step = step(
    "DeprovisionTerminals",
    "deprovision-terminals",
    Compensation,
    Some(Terminals),
    None,
);
pub const REFUND_PAYMENT: Step = step(
    "RefundPayment",
    "refund-payment",
    Compensation,
    Some(Payments),
    None,
);
pub const RELEASE_STOCK: Step = step(
    "ReleaseStock",
    "release-stock",
    Compensation,
    Some(Warehouse),
    None,
);
pub const RECORD_FAILURE: Step = step("RecordFailure", "fail-order", Record, None, None);

/// Every step, forward steps in happy-path order, then compensations in the order they
/// run (the reverse of their forward steps), then the failure record.
pub const ALL: [Step; 15] = [
    VALIDATE_ORDER,
    RESERVE_STOCK,
    TAKE_PAYMENT,
    DEACTIVATE_FAULTY_TERMINALS,
    CREATE_RETURN_LABEL,
    PROVISION_TERMINALS,
    ARRANGE_SHIPMENT,
    AWAIT_DELIVERY,
    NOTIFY_CUSTOMER,
    COMPLETE_ORDER,
    CANCEL_SHIPMENT,
    DEPROVISION_TERMINALS,
    REFUND_PAYMENT,
    RELEASE_STOCK,
    RECORD_FAILURE,
];

/// The step named `name`, if there is one.
pub fn by_name(name: &str) -> Option<Step> {
    ALL.into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_function_name_is_its_binary_in_camel_case() {
        assert_eq!(
            DEACTIVATE_FAULTY_TERMINALS.function_name(),
            "DeactivateTerminals"
        );
        assert_eq!(RECORD_FAILURE.function_name(), "FailOrder");
    }

    #[test]
    fn step_and_function_names_are_unique() {
        let names: BTreeSet<_> = ALL.iter().map(|s| s.name).collect();
        let functions: BTreeSet<_> = ALL.iter().map(|s| s.function).collect();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(functions.len(), ALL.len());
    }

    #[test]
    fn every_compensation_named_is_a_compensation_step_of_the_same_partner() {
        for forward in ALL.iter().filter(|s| s.compensation.is_some()) {
            let compensation = forward.compensation.and_then(by_name);
            assert_eq!(
                compensation.map(|c| (c.role, c.partner)),
                Some((StepRole::Compensation, forward.partner)),
                "{}",
                forward.name
            );
        }
    }

    #[test]
    fn compensations_are_listed_in_the_reverse_order_of_their_forward_steps() {
        let forward: Vec<_> = ALL.iter().filter_map(|s| s.compensation).rev().collect();
        let compensations: Vec<_> = ALL
            .iter()
            .filter(|s| s.role == StepRole::Compensation)
            .map(|s| s.name)
            .collect();
        assert_eq!(forward, compensations);
    }
}
