//! The stable error names that activities report and the state machine's `Retry` and
//! `Catch` blocks match on.
//!
//! Lambda reports an error's `error_type` to Step Functions, which is what `ErrorEquals`
//! compares against. The runtime's default is a Rust type name, which no definition can
//! match, so every activity error is turned into a [`lambda_runtime::Diagnostic`] whose
//! `error_type` is exactly one of these names.

use lambda_runtime::Diagnostic;

/// One stable error name. Whether an error is worth retrying is a property of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::EnumString)]
pub enum ErrorName {
    /// A partner answered 5xx, refused the connection or is in an outage.
    #[strum(serialize = "Partner.Unavailable")]
    PartnerUnavailable,
    /// A partner asked us to slow down (429).
    #[strum(serialize = "Partner.Throttled")]
    PartnerThrottled,
    /// A partner did not answer in time; it may still have acted, hence idempotency keys.
    #[strum(serialize = "Partner.Timeout")]
    PartnerTimeout,
    /// DynamoDB throttled us or could not be reached.
    #[strum(serialize = "Store.Unavailable")]
    StoreUnavailable,
    /// Step Functions could not be reached (resuming a waiting execution).
    #[strum(serialize = "Workflow.Unavailable")]
    WorkflowUnavailable,
    /// The order breaks a rule (unknown SKU, bad quantity, ...); retrying cannot help.
    #[strum(serialize = "Order.Invalid")]
    OrderInvalid,
    /// The order the workflow was started for does not exist in the table.
    #[strum(serialize = "Order.NotFound")]
    OrderNotFound,
    /// The order is in a status this step cannot start from (someone else moved it).
    #[strum(serialize = "Order.Conflict")]
    OrderConflict,
    /// The warehouse has not enough stock for a line.
    #[strum(serialize = "Stock.Unavailable")]
    StockUnavailable,
    /// The payment processor declined the charge.
    #[strum(serialize = "Payment.Declined")]
    PaymentDeclined,
    /// The terminal management system refused to provision.
    #[strum(serialize = "Provisioning.Rejected")]
    ProvisioningRejected,
    /// The courier refused the shipment (e.g. undeliverable address).
    #[strum(serialize = "Shipment.Rejected")]
    ShipmentRejected,
    /// The order was cancelled while the step ran.
    #[strum(serialize = "Order.Cancelled")]
    OrderCancelled,
    /// The courier's delivery was recorded before the rollback undid anything (a delivery
    /// that arrived after the delivery timeout): the rollback stops, the order completes.
    #[strum(serialize = "Order.Delivered")]
    OrderDelivered,
    /// The courier will not cancel the shipment: it says the parcel was delivered, but its
    /// delivery event has not reached us yet. Waited for like an outage (the event is on
    /// its way; the next attempt finds the order DELIVERED): never rolled back past.
    #[strum(serialize = "Shipment.Delivered")]
    ShipmentDelivered,
    /// A partner refused a request for good (4xx) where no more specific name applies,
    /// e.g. a refund the payment processor will not make.
    #[strum(serialize = "Partner.Rejected")]
    PartnerRejected,
    /// A bug or misconfiguration (bad activity input, missing setting): never retried.
    #[strum(serialize = "Internal.Error")]
    Internal,
}

impl ErrorName {
    /// Every name, in the order of the declaration: the list workflow checks compare
    /// definitions with.
    pub const ALL: &'static [ErrorName] = <ErrorName as strum::VariantArray>::VARIANTS;

    /// The name exactly as it appears in `error_type` and in `ErrorEquals`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Which kind of failure the name reports: what the workflow does with it.
    pub const fn kind(self) -> FailureKind {
        match self {
            ErrorName::PartnerUnavailable
            | ErrorName::PartnerThrottled
            | ErrorName::PartnerTimeout
            | ErrorName::StoreUnavailable
            | ErrorName::WorkflowUnavailable
            | ErrorName::ShipmentDelivered => FailureKind::Infrastructure,
            ErrorName::OrderInvalid
            | ErrorName::StockUnavailable
            | ErrorName::PaymentDeclined
            | ErrorName::ProvisioningRejected
            | ErrorName::ShipmentRejected
            | ErrorName::OrderCancelled
            | ErrorName::OrderDelivered
            | ErrorName::PartnerRejected => FailureKind::Business,
            ErrorName::OrderNotFound | ErrorName::OrderConflict | ErrorName::Internal => {
                FailureKind::Defect
            }
        }
    }

    /// Transient errors may succeed when tried again: exactly the infrastructure ones.
    /// Every Task that can raise one retries it, then waits it out; permanent errors are
    /// never retried: they are caught instead.
    pub const fn is_transient(self) -> bool {
        matches!(self.kind(), FailureKind::Infrastructure)
    }

    /// The name for an `error_type` string, if it is one of ours.
    pub fn parse(name: &str) -> Option<ErrorName> {
        name.parse().ok()
    }
}

/// The two kinds of failure the saga tells apart, and the bugs it must not mistake for
/// either. Once a step's fast retries are spent:
///
/// | kind | examples | then |
/// |---|---|---|
/// | business | a partner's refusal, `Order.Invalid`, a cancel, no delivery in time | the order is rolled back |
/// | infrastructure | a partner's or our own outage or throttling, a crash, no answer in time | waited out in the outage loop; a spent budget goes to a person, never to a rollback |
/// | defect | `Internal.Error`, `Order.Conflict`, `Order.NotFound` | rolled back like a business failure, or dead-lettered where nothing may be undone |
///
/// `tests/workflow_definition.rs` holds the definition to it: no infrastructure name can
/// reach a compensation or the dead-letter queue without passing the outage loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum FailureKind {
    /// A partner refused, the order broke a rule, or it was cancelled: roll it back.
    Business,
    /// A partner or our own infrastructure could not do it now: wait and try again.
    Infrastructure,
    /// A bug or a state the saga did not expect.
    Defect,
}

impl FailureKind {
    /// `business`, `infrastructure` or `defect`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The names AWS gives a Lambda Task whose invocation failed without our code deciding
/// anything: the service failed, throttled the invocation, or the function crashed
/// (`Runtime.ExitError`), ran past its own timeout (`Sandbox.Timedout`), or did not answer
/// within the Task's timeout (`States.Timeout`). All are infrastructure trouble.
pub const AWS_INFRASTRUCTURE_ERRORS: &[&str] = &[
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.Unknown",
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "States.Timeout",
];

/// The kind of the failure `error` (an error name as a Task's catcher records it) of the
/// workflow step `step`. A timeout of AwaitDelivery is the courier's silence: the parcel
/// did not arrive in time, a business failure. Any other name we do not know (a
/// `States.*` runtime error, a misconfigured Task) is a defect.
pub fn kind_of(error: &str, step: &str) -> FailureKind {
    let timeout = matches!(error, "States.Timeout" | "States.HeartbeatTimeout");
    if timeout && step == crate::steps::AWAIT_DELIVERY.name {
        return FailureKind::Business;
    }
    if let Some(name) = ErrorName::parse(error) {
        return name.kind();
    }
    if AWS_INFRASTRUCTURE_ERRORS.contains(&error) {
        FailureKind::Infrastructure
    } else {
        FailureKind::Defect
    }
}

impl std::fmt::Display for ErrorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An activity's failure: a stable name for the state machine and a message for the
/// operator that says which order and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ActivityError {
    pub name: ErrorName,
    pub message: String,
}

/// What a caller of the orders API is told about an error name: a sentence we wrote. The
/// activity's own message (which can quote a partner's answer or an AWS SDK error, with
/// role ARNs and account ids) stays in the logs and in `orderctl`.
pub fn public_reason(error: &str) -> &'static str {
    match ErrorName::parse(error) {
        Some(ErrorName::OrderInvalid) => "the order breaks a catalogue rule",
        Some(ErrorName::StockUnavailable) => {
            "the warehouse does not have enough stock for the order"
        }
        Some(ErrorName::PaymentDeclined) => "the payment processor declined the charge",
        Some(ErrorName::ProvisioningRejected) => {
            "the terminal management system refused to provision the terminals"
        }
        Some(ErrorName::ShipmentRejected) => "the courier refused the shipment",
        Some(ErrorName::OrderCancelled) => "the order was cancelled",
        Some(ErrorName::OrderDelivered) => "the order was delivered",
        Some(ErrorName::ShipmentDelivered) => {
            "the courier says the parcel was delivered; its delivery event is awaited"
        }
        Some(ErrorName::PartnerRejected) => "a partner refused the request",
        Some(
            ErrorName::PartnerUnavailable | ErrorName::PartnerThrottled | ErrorName::PartnerTimeout,
        ) => "a partner could not be reached, even after retries",
        Some(ErrorName::StoreUnavailable | ErrorName::WorkflowUnavailable) => {
            "our systems were unavailable, even after retries"
        }
        Some(ErrorName::OrderNotFound | ErrorName::OrderConflict | ErrorName::Internal) => {
            "an internal error stopped the order; our operators have its details"
        }
        None if error.starts_with("States.") => {
            "a step did not finish in time; our operators have its details"
        }
        None => "the step failed; our operators have its details",
    }
}

impl ActivityError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        ActivityError {
            name,
            message: message.into(),
        }
    }
}

impl From<ActivityError> for Diagnostic {
    fn from(error: ActivityError) -> Self {
        Diagnostic {
            error_type: error.name.as_str().to_owned(),
            error_message: error.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_its_string() {
        for name in ErrorName::ALL.iter().copied() {
            assert_eq!(ErrorName::parse(name.as_str()), Some(name));
        }
    }

    #[test]
    fn names_are_unique() {
        let mut seen: Vec<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorName::ALL.len());
    }

    #[test]
    fn only_partner_store_and_workflow_failures_and_an_awaited_delivery_event_are_transient() {
        let transient: Vec<&str> = ErrorName::ALL
            .iter()
            .filter(|n| n.is_transient())
            .map(|n| n.as_str())
            .collect();
        assert_eq!(
            transient,
            [
                "Partner.Unavailable",
                "Partner.Throttled",
                "Partner.Timeout",
                "Store.Unavailable",
                "Workflow.Unavailable",
                "Shipment.Delivered",
            ]
        );
    }

    #[test]
    fn every_name_has_one_kind_and_only_infrastructure_is_transient() {
        for name in ErrorName::ALL.iter().copied() {
            assert_eq!(
                name.is_transient(),
                name.kind() == FailureKind::Infrastructure,
                "{name}"
            );
        }
        assert_eq!(ErrorName::PaymentDeclined.kind(), FailureKind::Business);
        assert_eq!(ErrorName::OrderCancelled.kind(), FailureKind::Business);
        assert_eq!(ErrorName::Internal.kind(), FailureKind::Defect);
    }

    #[test]
    fn a_crash_throttle_or_task_timeout_is_infrastructure_but_a_late_delivery_is_business() {
        for name in AWS_INFRASTRUCTURE_ERRORS {
            assert_eq!(
                kind_of(name, "TakePayment"),
                FailureKind::Infrastructure,
                "{name}"
            );
        }
        assert_eq!(
            kind_of("Store.Unavailable", "CompleteOrder"),
            FailureKind::Infrastructure
        );
        assert_eq!(
            kind_of("States.Timeout", "AwaitDelivery"),
            FailureKind::Business
        );
        assert_eq!(
            kind_of("States.HeartbeatTimeout", "AwaitDelivery"),
            FailureKind::Business
        );
        assert_eq!(
            kind_of("Shipment.Rejected", "ArrangeShipment"),
            FailureKind::Business
        );
        assert_eq!(
            kind_of("States.NoChoiceMatched", "ReserveStock"),
            FailureKind::Defect
        );
        assert_eq!(FailureKind::Infrastructure.as_str(), "infrastructure");
    }

    #[test]
    fn a_diagnostic_carries_the_exact_name_as_error_type() {
        let diagnostic: Diagnostic =
            ActivityError::new(ErrorName::PaymentDeclined, "order ord-1: card declined").into();
        assert_eq!(diagnostic.error_type, "Payment.Declined");
        assert_eq!(diagnostic.error_message, "order ord-1: card declined");
    }

    #[test]
    fn a_public_reason_is_our_sentence_for_the_name_and_generic_for_others() {
        assert_eq!(
            public_reason("Payment.Declined"),
            "the payment processor declined the charge"
        );
        assert_eq!(
            public_reason("Lambda.ServiceException"),
            "the step failed; our operators have its details"
        );
        assert_eq!(
            public_reason("States.Timeout"),
            "a step did not finish in time; our operators have its details"
        );
    }

    #[test]
    fn an_unknown_name_is_not_parsed() {
        assert_eq!(ErrorName::parse("States.ALL"), None);
        assert_eq!(ErrorName::parse("payment.declined"), None);
    }
}
