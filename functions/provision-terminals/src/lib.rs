//! ProvisionTerminals: the terminal management system assigns one terminal per unit to
//! the merchant, and the order moves to PROVISIONED (from PAYMENT_TAKEN, or from
//! STOCK_RESERVED for a replacement, which is not charged). A refusal is
//! `Provisioning.Rejected` (never retried); undone by DeprovisionTerminals.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::partners::Terminals;
use order_core::steps::PROVISION_TERMINALS as STEP;
use order_core::store::{Ledger, OrderRecord};
use order_core::{OrderKind, OrderStatus};

/// Where provisioning expects an order of each kind.
pub fn plan(order: &OrderRecord) -> Move {
    match order.order.kind {
        OrderKind::Replacement => Move::to(OrderStatus::StockReserved, OrderStatus::Provisioned),
        OrderKind::NewMerchant | OrderKind::AdditionalDevices => {
            Move::to(OrderStatus::PaymentTaken, OrderStatus::Provisioned)
        }
    }
}

/// Provisions one order's terminals.
pub async fn handle(
    store: &impl Ledger,
    terminals: &impl Terminals,
    input: ActivityInput,
) -> Outcome {
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        let provisioning = terminals.provision(&call, &order.order.lines).await?;
        let terminal_ids = provisioning.terminal_ids.join(",");
        Ok(activity::references([("terminal_ids", Some(terminal_ids))]))
    })
    .await
}
