//! DeprovisionTerminals (compensation of ProvisionTerminals): takes the order's terminals
//! back from the merchant in the terminal management system. Safe when none were
//! provisioned.

use order_core::activity::{self, Outcome, Rollback};
use order_core::partners::Terminals;
use order_core::steps::DEPROVISION_TERMINALS as STEP;
use order_core::store::Ledger;

/// Deprovisions one order's terminals.
pub async fn handle(store: &impl Ledger, terminals: &impl Terminals, input: Rollback) -> Outcome {
    activity::run_compensation(store, &input, STEP, |_, call| async move {
        let deprovisioning = terminals.deprovision(&call).await?;
        let terminal_ids = deprovisioning.deprovisioned.join(",");
        Ok(activity::references([(
            "deprovisioned",
            Some(terminal_ids),
        )]))
    })
    .await
}
