//! The typed admin client against a real simulator over HTTP: every call it makes is
//! answered as its types say, and a refusal comes back as an error naming the call.

mod common;

use common::{unique, Order, Sim};
use partner_simulator::client::{Admin, ClientError};
use partner_simulator::faults::{Draws, Fault, RuleSpec};
use partner_simulator::ledger::ChargeStatus;

fn admin(sim: &Sim) -> Admin {
    Admin::new(reqwest::Client::new(), &sim.base)
}

#[tokio::test]
async fn the_client_adds_lists_and_clears_fault_rules_as_the_server_keeps_them() {
    let sim = Sim::with_defaults().await;
    let admin = admin(&sim);
    if let Err(error) = admin.health().await {
        panic!("{error}");
    }
    let seed = admin.set_seed(7, Draws::ByMerchant).await;
    assert!(
        seed.as_ref()
            .is_ok_and(|s| s.seed == 7 && s.draws == Draws::ByMerchant),
        "{seed:?}"
    );
    let merchant = unique("m");
    let rule = RuleSpec {
        merchant_id: Some(merchant.clone()),
        count: Some(2),
        ..RuleSpec::new("payments", "charge", Fault::Refuse)
    };
    let ids = admin.add_faults(std::slice::from_ref(&rule)).await;
    let Ok([id]) = ids.as_deref() else {
        panic!("one rule added: {ids:?}");
    };
    let listed = admin.faults().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.seed, 7);
    let [view] = listed.rules.as_slice() else {
        panic!("one rule listed: {listed:?}");
    };
    assert_eq!(view.id, *id);
    assert_eq!(view.fired, 0);
    // What is left of it is the rule as posted, its defaults filled in.
    assert_eq!(
        view.remaining(),
        Some(RuleSpec {
            rate: Some(1.0),
            delay_ms: Some(view.delay_ms),
            ..rule
        })
    );
    assert_eq!(admin.clear_faults().await.ok(), Some(1));
    assert!(admin.faults().await.is_ok_and(|list| list.rules.is_empty()));
}

#[tokio::test]
async fn the_client_reads_an_orders_ledger_as_typed_records() {
    let sim = Sim::with_defaults().await;
    let admin = admin(&sim);
    let order = Order::fresh();
    let charged = sim
        .call("/payments/charges", &unique("key"), &order.charge(4200))
        .await;
    assert_eq!(charged.status, 201, "{:?}", charged.body);

    let ledger = admin
        .order_ledger(&order.order_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let [charge] = ledger.charges.as_slice() else {
        panic!("one charge: {ledger:?}");
    };
    assert_eq!(charge.amount_cents, 4200);
    assert_eq!(charge.status, ChargeStatus::Captured);
    assert!(ledger.reservations.is_empty(), "{ledger:?}");
}

#[tokio::test]
async fn a_refused_admin_call_is_an_error_naming_the_call_and_the_answer() {
    let sim = Sim::with_defaults().await;
    let admin = admin(&sim);
    let unknown = admin
        .add_faults(&[RuleSpec::new("bank", "*", Fault::Unavailable)])
        .await;
    assert!(
        matches!(&unknown, Err(ClientError::Refused { what: "POST /admin/faults", status: 400, body })
            if body.contains("unknown partner")),
        "{unknown:?}"
    );
    let no_shipment = admin.deliver(&unique("ord")).await;
    assert!(
        matches!(
            &no_shipment,
            Err(ClientError::Refused {
                what: "POST /admin/deliveries",
                status: 404,
                ..
            })
        ),
        "{no_shipment:?}"
    );
}
