//! How an order is shown: one type for the orders API (`GET /orders/{id}`) and for
//! `orderctl orders show --json`, so the two cannot disagree.
//!
//! A caller of the API sees error names with a sentence we wrote ([`public_reason`]); an
//! operator also sees what the steps said (partner answers, AWS errors), the execution
//! ARN, the resume count and why an order was parked. The operator-only fields are left
//! out of the public view entirely, not sent empty.

use crate::errors::{public_reason, ErrorName};
use crate::order::{DeliveryAddress, OrderKind, OrderLine};
use crate::status::OrderStatus;
use crate::store::{Delivery, OrderRecord, Parked, StepRecord, StepStatus};
use crate::OrderId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who the view is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A caller of the orders API.
    Caller,
    /// An operator (`orderctl`): everything the store holds.
    Operator,
}

/// An order with its steps and headline facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub version: u64,
    pub kind: OrderKind,
    pub merchant_id: String,
    pub lines: Vec<OrderLine>,
    pub delivery_address: DeliveryAddress,
    #[serde(default)]
    pub replace_serials: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub tracking_number: Option<String>,
    pub delivery: Option<Delivery>,
    pub failure: Option<FailureView>,
    pub steps: Vec<StepView>,
    /// Operators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// Operators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<u32>,
    /// Operators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
}

/// Why the order ended without completing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    pub step: String,
    pub error: String,
    /// For a caller, our sentence for `error` (for `Order.Invalid`, our validation's
    /// own); for an operator, what the failing step said.
    pub reason: String,
    pub at: String,
}

/// One step: a forward step or a compensation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub step: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub references: BTreeMap<String, String>,
    pub error: Option<String>,
    /// Our sentence for `error`.
    pub reason: Option<String>,
    /// Operators only: what the step said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl OrderView {
    /// The view of `order` and its `steps` for `audience`.
    pub fn of(order: &OrderRecord, steps: &[StepRecord], audience: Audience) -> OrderView {
        let operator = audience == Audience::Operator;
        let failure = order.failure.as_ref().map(|failure| {
            // ValidateOrder's refusals are our own validation sentences, which tell the
            // merchant what to fix.
            let ours = operator || failure.error == ErrorName::OrderInvalid.as_str();
            FailureView {
                step: failure.step.clone(),
                error: failure.error.clone(),
                reason: if ours {
                    failure.reason.clone()
                } else {
                    public_reason(&failure.error).to_owned()
                },
                at: failure.at.clone(),
            }
        });
        OrderView {
            order_id: order.order_id.clone(),
            status: order.status,
            version: order.version,
            kind: order.order.kind,
            merchant_id: order.order.merchant_id.clone(),
            lines: order.order.lines.clone(),
            delivery_address: order.order.delivery_address.clone(),
            replace_serials: order.order.replace_serials.clone(),
            created_at: order.created_at.clone(),
            updated_at: order.updated_at.clone(),
            tracking_number: steps
                .iter()
                .find_map(|s| s.references.get("tracking_number").cloned()),
            delivery: order.delivery.clone(),
            failure,
            steps: steps
                .iter()
                .map(|s| StepView {
                    step: s.step.clone(),
                    status: s.status,
                    attempts: s.attempts,
                    started_at: s.started_at.clone(),
                    finished_at: s.finished_at.clone(),
                    references: s.references.clone(),
                    error: s.error.clone(),
                    reason: s.error.as_deref().map(|e| public_reason(e).to_owned()),
                    error_message: s.error_message.clone().filter(|_| operator),
                })
                .collect(),
            execution_arn: order.execution_arn.clone().filter(|_| operator),
            resumes: Some(order.resumes).filter(|_| operator),
            parked: order.parked.clone().filter(|_| operator),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Failure;

    fn failed_order() -> (OrderRecord, Vec<StepRecord>) {
        let order = serde_json::json!({
            "order_id": "ord-0123456789abcdef0123456789abcdef",
            "status": "FAILED",
            "version": 7,
            "order": crate::order::example_request("m-1"),
            "request_hash": "h",
            "execution_arn": "arn:aws:states:eu-central-1:123456789012:execution:OrderWorkflow:ord-0123456789abcdef0123456789abcdef",
            "created_at": "2026-11-26T09:00:00.000Z",
            "updated_at": "2026-11-26T09:00:05.000Z",
            "resumes": 1,
            "failure": Failure::from_catch(
                "TakePayment",
                "Store.Unavailable",
                Some(r#"{"errorType":"Store.Unavailable","errorMessage":"AccessDeniedException: arn:aws:iam::123456789012:role/x"}"#),
            ),
        });
        let step = serde_json::json!({
            "order_id": "ord-0123456789abcdef0123456789abcdef",
            "step": "TakePayment",
            "status": "FAILED",
            "attempts": 2,
            "started_at": "2026-11-26T09:00:01.000Z",
            "updated_at": "2026-11-26T09:00:02.000Z",
            "error": "Payment.Declined",
            "error_message": "payments charge failed: answered 402: {\"code\":\"declined\",\"message\":\"card 4242 blocked\"}",
        });
        match (serde_json::from_value(order), serde_json::from_value(step)) {
            (Ok(order), Ok(step)) => (order, vec![step]),
            (order, step) => panic!("fixtures: {order:?} {step:?}"),
        }
    }

    #[test]
    fn a_caller_sees_error_names_and_our_sentences_and_nothing_operators_only() {
        let (order, steps) = failed_order();
        let view = OrderView::of(&order, &steps, Audience::Caller);
        let text = serde_json::to_string(&view).unwrap_or_default();
        for internal in [
            "arn:aws",
            "123456789012",
            "card 4242",
            "execution_arn",
            "resumes",
            "error_message",
        ] {
            assert!(!text.contains(internal), "{internal} in {text}");
        }
        let failure = view
            .failure
            .unwrap_or_else(|| panic!("no failure in {text}"));
        assert_eq!(
            failure.reason,
            "our systems were unavailable, even after retries"
        );
        assert_eq!(
            view.steps[0].reason.as_deref(),
            Some("the payment processor declined the charge")
        );
    }

    #[test]
    fn an_operator_sees_what_the_steps_said_the_execution_and_the_resumes() {
        let (order, steps) = failed_order();
        let view = OrderView::of(&order, &steps, Audience::Operator);
        assert!(view
            .execution_arn
            .is_some_and(|a| a.ends_with(":ord-0123456789abcdef0123456789abcdef")));
        assert_eq!(view.resumes, Some(1));
        assert!(view
            .failure
            .is_some_and(|f| f.reason.contains("AccessDeniedException")));
        assert!(view.steps[0]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("card 4242")));
    }
}
