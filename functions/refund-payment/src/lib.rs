//! RefundPayment (compensation of TakePayment): refunds what the order was charged. Safe
//! when nothing was charged; a replacement, free under warranty, is not even asked about.

use order_core::activity::{self, Outcome, Rollback};
use order_core::partners::Payments;
use order_core::steps::REFUND_PAYMENT as STEP;
use order_core::store::Ledger;
use order_core::OrderKind;

/// Refunds one order.
pub async fn handle(store: &impl Ledger, payments: &impl Payments, input: Rollback) -> Outcome {
    activity::run_compensation(store, &input, STEP, |order, call| async move {
        if order.order.kind == OrderKind::Replacement {
            let refunded = "false: replacements are not charged".to_owned();
            return Ok(activity::references([("refunded", Some(refunded))]));
        }
        let refund = payments.refund(&call).await?;
        Ok(activity::references([
            ("refunded", Some(refund.refunded.to_string())),
            ("amount_cents", Some(refund.amount_cents.to_string())),
            ("refund_id", refund.refund_id),
        ]))
    })
    .await
}
