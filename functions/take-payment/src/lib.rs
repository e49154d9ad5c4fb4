//! TakePayment: charges the merchant the catalogue price of the order's terminals and
//! moves it STOCK_RESERVED -> PAYMENT_TAKEN. A declined charge is `Payment.Declined`
//! (never retried); undone by RefundPayment. Replacements are free under warranty and
//! never reach this step.

use order_core::activity::{self, ActivityInput, Move, Outcome};
use order_core::catalogue::Catalogue;
use order_core::partners::{Amount, Payments};
use order_core::steps::TAKE_PAYMENT as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, OrderKind, OrderStatus};

/// Charges one order. Idempotent: the processor sees the same key on every try, so a
/// retry after a timeout never charges twice.
pub async fn handle(
    store: &impl Ledger,
    payments: &impl Payments,
    catalogue: &Catalogue,
    input: ActivityInput,
) -> Outcome {
    let plan = |_: &_| Move::to(OrderStatus::StockReserved, OrderStatus::PaymentTaken);
    activity::run_step(store, &input, STEP, plan, |order, call| async move {
        if order.order.kind == OrderKind::Replacement {
            return Err(ActivityError::new(
                ErrorName::Internal,
                format!(
                    "order {} is a replacement, free under warranty: the workflow must not charge it",
                    order.order_id
                ),
            )
            .into());
        }
        let cents = catalogue.price_cents(&order.order.lines).map_err(|sku| {
            ActivityError::new(
                ErrorName::OrderInvalid,
                format!("order {}: SKU {sku:?} has no price", order.order_id),
            )
        })?;
        let currency = Catalogue::currency(&order.order.delivery_address.country).to_owned();
        let charge = payments.charge(&call, &Amount { cents, currency }).await?;
        Ok(activity::references([
            ("charge_id", Some(charge.charge_id)),
            ("amount_cents", Some(charge.amount_cents.to_string())),
            ("currency", Some(charge.currency)),
        ]))
    })
    .await
}
