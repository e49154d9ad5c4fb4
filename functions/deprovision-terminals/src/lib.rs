//! DeprovisionTerminals (compensation of ProvisionTerminals): takes the order's terminals
//! back from the merchant in the terminal management system. Safe when none were
//! provisioned.

use order_core::activity::{self, ActivityOutput, CompensationInput};
use order_core::partners::Terminals;
use order_core::steps::DEPROVISION_TERMINALS as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName};

/// Deprovisions one order's terminals.
pub async fn handle(
    store: &impl Ledger,
    terminals: &impl Terminals,
    input: CompensationInput,
) -> Result<ActivityOutput, ActivityError> {
    activity::run_compensation(store, &input, STEP, |_, call| async move {
        let deprovisioning = terminals
            .deprovision(&call)
            .await
            .map_err(call.refused_as(ErrorName::PartnerRejected))?;
        let terminal_ids = deprovisioning.deprovisioned.join(",");
        Ok(activity::references([(
            "deprovisioned",
            Some(terminal_ids),
        )]))
    })
    .await
}
