//! The real activity handlers, by the function name the definition's Tasks invoke
//! (`${<Name>FunctionVersionArn}`), run as Lambda would run them.

use crate::bus::SimBus;
use crate::ledger::Audited;
use crate::partners::SimPartners;
use crate::world::SimResumer;
use order_core::activity::{self, ActivityInput, ActivityOutput, Rollback};
use order_core::catalogue::Catalogue;
use order_core::steps;
use order_core::ActivityError;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The activity functions' Lambda timeout (`Timeout: 15` in template.yaml's Globals; a
/// test holds the two together).
pub const FUNCTION_TIMEOUT_MS: u64 = 15_000;

pub(crate) type Invocation = Pin<Box<dyn Future<Output = Result<ActivityOutput, ActivityError>>>>;

/// Whether a handler is wired for `function`, the name in `${<Name>FunctionVersionArn}`:
/// one is for every step's function (`order_core::steps::ALL`).
pub(crate) fn is_wired(function: &str) -> bool {
    steps::ALL
        .iter()
        .any(|step| step.function_name() == function)
}

#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) ledger: Arc<Audited>,
    pub(crate) partners: Arc<SimPartners>,
    pub(crate) resumer: Arc<SimResumer>,
    pub(crate) catalogue: Arc<Catalogue>,
    /// The API caller the merchants' orders are placed by.
    pub(crate) caller: order_core::callers::Principal,
    /// The order-events bus the steps, the API and the reconciler publish to
    /// (`order_core::events`).
    pub(crate) events: Arc<SimBus>,
}

/// Runs the real handler of `function` on `payload` as Lambda would
/// (`order_core::activity::invoke`: input parsed, panics caught). A step's order event is
/// written to the outbox with its change; the bus gets it from there
/// ([`crate::bus::SimBus::deliver`]), never from the step.
pub(crate) fn invoke(function: &str, payload: Value, env: Env) -> Invocation {
    let function = function.to_owned();
    Box::pin(async move {
        let (l, p, r, c) = (&*env.ledger, &*env.partners, &*env.resumer, &*env.catalogue);
        match function.as_str() {
            "ValidateOrder" => {
                activity::invoke(&|i: ActivityInput| validate_order::handle(l, c, i), payload).await
            }
            "ReserveStock" => activity::invoke(&|i| reserve_stock::handle(l, p, i), payload).await,
            "TakePayment" => activity::invoke(&|i| take_payment::handle(l, p, c, i), payload).await,
            "DeactivateTerminals" => {
                activity::invoke(&|i| deactivate_terminals::handle(l, p, i), payload).await
            }
            "CreateReturnLabel" => {
                activity::invoke(&|i| create_return_label::handle(l, p, i), payload).await
            }
            "ProvisionTerminals" => {
                activity::invoke(&|i| provision_terminals::handle(l, p, i), payload).await
            }
            "ArrangeShipment" => {
                activity::invoke(&|i| arrange_shipment::handle(l, p, i), payload).await
            }
            "AwaitDelivery" => {
                activity::invoke(&|i| await_delivery::handle(l, r, i), payload).await
            }
            "NotifyCustomer" => {
                activity::invoke(&|i| notify_customer::handle(l, p, i), payload).await
            }
            "CompleteOrder" => activity::invoke(&|i| complete_order::handle(l, i), payload).await,
            "CancelShipment" => {
                activity::invoke(&|i: Rollback| cancel_shipment::handle(l, p, i), payload).await
            }
            "DeprovisionTerminals" => {
                activity::invoke(&|i| deprovision_terminals::handle(l, p, i), payload).await
            }
            "RefundPayment" => {
                activity::invoke(&|i| refund_payment::handle(l, p, i), payload).await
            }
            "ReleaseStock" => activity::invoke(&|i| release_stock::handle(l, p, i), payload).await,
            _ => activity::invoke(&|i| fail_order::handle(l, i), payload).await,
        }
    })
}
