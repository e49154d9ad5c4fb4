//! RefundPayment (compensation of TakePayment): refunds what the order was charged. Safe
//! when nothing was charged; a replacement, free under warranty, is not even asked about.

use order_core::activity::{self, ActivityOutput, CompensationInput, References};
use order_core::partners::Payments;
use order_core::steps::REFUND_PAYMENT as STEP;
use order_core::store::Ledger;
use order_core::{ActivityError, ErrorName, OrderKind};

/// Refunds one order.
pub async fn handle(
    store: &impl Ledger,
    payments: &impl Payments,
    input: CompensationInput,
) -> Result<ActivityOutput, ActivityError> {
    activity::run_compensation(store, &input, STEP, |order, call| async move {
        if order.order.kind == OrderKind::Replacement {
            return Ok(References::from([(
                "refunded".to_owned(),
                "false: replacements are not charged".to_owned(),
            )]));
        }
        let refund = payments
            .refund(&call)
            .await
            .map_err(call.refused_as(ErrorName::PartnerRejected))?;
        let mut references = References::from([
            ("refunded".to_owned(), refund.refunded.to_string()),
            ("amount_cents".to_owned(), refund.amount_cents.to_string()),
        ]);
        if let Some(refund_id) = refund.refund_id {
            references.insert("refund_id".to_owned(), refund_id);
        }
        Ok(references)
    })
    .await
}
