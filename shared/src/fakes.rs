//! The five partners faked in process, for the saga tests (`shared/tests/saga.rs`) and the
//! deterministic simulator (`infra/simulator`). A fake decides one thing, in
//! [`FakePartner::act`]: whether a call acts, is refused, fails after acting or pauses
//! first. The answers are built here, the same for every fake, from the call's order id
//! (`res-<order id>`, `chg-<order id>`, …), so a replayed call answers what the first did.
//!
//! Compiled only with the `test-fakes` feature: no Lambda binary carries it.

use crate::order::{DeliveryAddress, OrderId, OrderLine};
use crate::partners::{
    Amount, CallContext, Charge, Courier, Deactivation, Deprovisioning, Message, Notifications,
    PartnerError, Payments, Provisioning, Refund, Release, Reservation, ReturnLabel, Shipment,
    ShipmentCancellation, Terminals, Warehouse,
};
use crate::steps::Partner;
use serde_json::Value;
use std::future::Future;

/// A partner faked in process: implement [`act`](FakePartner::act) and the type is all
/// five partners ([`Warehouse`], [`Payments`], [`Terminals`], [`Courier`],
/// [`Notifications`]).
pub trait FakePartner: Send + Sync {
    /// Takes the call of `operation` (`"reserve"`, `"charge"`, …) on `partner`: `Ok` when
    /// the call acted (or replayed by its key) and its answer reaches the caller, `Err`
    /// when the partner refused it, was unavailable, or acted and then timed out.
    fn act(
        &self,
        partner: Partner,
        operation: &'static str,
        call: &CallContext,
    ) -> impl Future<Output = Result<(), PartnerError>> + Send;
}

/// The fakes' reference of one kind for the call's order: `<prefix>-<order id>`.
fn reference(prefix: &str, call: &CallContext) -> String {
    format!("{prefix}-{}", call.order_id)
}

/// The courier's shipment id for an order, as the fakes answer it (the webhook names it).
pub fn shipment_id(order: &OrderId) -> String {
    format!("shp-{order}")
}

impl<F: FakePartner> Warehouse for F {
    async fn reserve(
        &self,
        call: &CallContext,
        _lines: &[OrderLine],
    ) -> Result<Reservation, PartnerError> {
        self.act(Partner::Warehouse, "reserve", call).await?;
        Ok(Reservation {
            reservation_id: reference("res", call),
        })
    }

    async fn release(&self, call: &CallContext) -> Result<Release, PartnerError> {
        self.act(Partner::Warehouse, "release", call).await?;
        Ok(Release {
            released: true,
            reservation_id: Some(reference("res", call)),
        })
    }
}

impl<F: FakePartner> Payments for F {
    async fn charge(&self, call: &CallContext, amount: &Amount) -> Result<Charge, PartnerError> {
        self.act(Partner::Payments, "charge", call).await?;
        Ok(Charge {
            charge_id: reference("chg", call),
            amount_cents: amount.cents,
            currency: amount.currency.clone(),
        })
    }

    async fn refund(&self, call: &CallContext) -> Result<Refund, PartnerError> {
        self.act(Partner::Payments, "refund", call).await?;
        Ok(Refund {
            refunded: true,
            refund_id: Some(reference("rfd", call)),
            amount_cents: 1,
        })
    }
}

impl<F: FakePartner> Terminals for F {
    async fn provision(
        &self,
        call: &CallContext,
        _lines: &[OrderLine],
    ) -> Result<Provisioning, PartnerError> {
        self.act(Partner::Terminals, "provision", call).await?;
        Ok(Provisioning {
            terminal_ids: vec![reference("trm", call)],
        })
    }

    async fn deprovision(&self, call: &CallContext) -> Result<Deprovisioning, PartnerError> {
        self.act(Partner::Terminals, "deprovision", call).await?;
        Ok(Deprovisioning {
            deprovisioned: vec![reference("trm", call)],
        })
    }

    async fn deactivate(
        &self,
        call: &CallContext,
        serials: &[String],
    ) -> Result<Deactivation, PartnerError> {
        self.act(Partner::Terminals, "deactivate", call).await?;
        Ok(Deactivation {
            deactivated: serials.to_vec(),
        })
    }
}

impl<F: FakePartner> Courier for F {
    async fn ship(
        &self,
        call: &CallContext,
        _address: &DeliveryAddress,
        _parcels: u32,
    ) -> Result<Shipment, PartnerError> {
        self.act(Partner::Courier, "ship", call).await?;
        Ok(Shipment {
            shipment_id: shipment_id(&call.order_id),
            tracking_number: reference("trk", call),
        })
    }

    async fn cancel(&self, call: &CallContext) -> Result<ShipmentCancellation, PartnerError> {
        self.act(Partner::Courier, "cancel", call).await?;
        Ok(ShipmentCancellation {
            cancelled: true,
            shipment_id: Some(shipment_id(&call.order_id)),
        })
    }

    async fn return_label(
        &self,
        call: &CallContext,
        _serials: &[String],
        _address: &DeliveryAddress,
    ) -> Result<ReturnLabel, PartnerError> {
        self.act(Partner::Courier, "return_label", call).await?;
        Ok(ReturnLabel {
            return_label_id: reference("rtl", call),
            label_url: "https://labels.example/fake".into(),
        })
    }
}

impl<F: FakePartner> Notifications for F {
    async fn send(
        &self,
        call: &CallContext,
        _template: &str,
        _data: Value,
    ) -> Result<Message, PartnerError> {
        self.act(Partner::Notifications, "send", call).await?;
        Ok(Message {
            message_id: reference("msg", call),
        })
    }
}
