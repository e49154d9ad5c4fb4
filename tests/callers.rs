//! Callers see and change only their own merchants' orders: the stack's two other API
//! callers (`local_stack::callers`: a portal allowed every route, a merchant app allowed
//! only `GET /orders/*` and `POST /orders` by IAM) are given scopes of their own here,
//! and each places, reads and cancels through the API as itself. On MiniStack each is an
//! IAM user whose signature MiniStack checks and whom API Gateway reports as the caller;
//! on the moto stack each is its signing key, named by the invoke router.
//!
//! One test: the two callers' scopes are the stack's, so the scenarios run one after
//! another on scopes this test alone sets.

use order_core::callers::{Merchants, Permission, Scope};
use order_core::store::{Actor, OrderStore};
use order_core::OrderStatus;
use system_tests::{unique_key, unique_merchant, valid_order, Backend, Caller, Reply, Stack};

const OPERATOR: Actor<'static> = Actor {
    identity: "arn:aws:iam::123456789012:user/callers-test",
    label: Some("tests/callers.rs"),
};

async fn grant(
    store: &OrderStore,
    caller: &Caller,
    merchants: &[&str],
    permissions: &[Permission],
) {
    let scope = Scope {
        merchants: Merchants::Only(merchants.iter().map(|m| (*m).to_owned()).collect()),
        permissions: permissions.iter().copied().collect(),
    };
    store
        .set_caller_scope(&caller.principal, &scope, &OPERATOR)
        .await
        .unwrap_or_else(|error| panic!("granting {}: {error}", caller.principal));
}

fn accepted(reply: &Reply, what: &str) -> String {
    assert_eq!(reply.status, 202, "{what}: {}", reply.text);
    reply.body["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no order id in {}", reply.text))
        .to_owned()
}

fn refused(reply: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (status, Some(code)),
        "{what}: {}",
        reply.text
    );
}

/// A cancel the caller was allowed to make: the order was cancelled (202), or had
/// shipped already (409): the workflow runs on while the test does.
fn reached(reply: &Reply, what: &str) {
    let allowed = matches!(
        (reply.status, reply.body["code"].as_str()),
        (202, _) | (409, Some("order_not_cancellable"))
    );
    assert!(allowed, "{what}: {}", reply.text);
}

async fn status_of(stack: &Stack, id: &str) -> OrderStatus {
    let id = order_core::OrderId::parse(id).unwrap_or_else(|| panic!("{id} is no order id"));
    match stack.store().get_order(&id).await {
        Ok(Some(order)) => order.status,
        other => panic!("order {id}: {other:?}"),
    }
}

#[tokio::test]
async fn two_callers_each_see_place_and_cancel_only_their_own_merchants_orders() {
    let stack = Stack::connect().await;
    let store = stack.store();
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (portal, app) = (Caller::named("PORTAL"), Caller::named("APP"));
    let (portals, apps, shared) = (unique_merchant(), unique_merchant(), unique_merchant());
    let all = [Permission::Read, Permission::Place, Permission::Cancel];
    grant(&store, &portal, &[&portals, &shared], &all).await;
    grant(&store, &app, &[&apps, &shared], &all).await;

    // Each places for its own merchant; the order records who placed it.
    let mine = accepted(
        &portal
            .post_order(&unique_key(), &valid_order(&portals).to_string())
            .await,
        "the portal's order",
    );
    let theirs = accepted(
        &app.post_order(&unique_key(), &valid_order(&apps).to_string())
            .await,
        "the app's order",
    );
    let placed_by = |id: &str| {
        let store = store.clone();
        let id = order_core::OrderId::parse(id).unwrap_or_else(|| panic!("{id}"));
        async move {
            store
                .get_order(&id)
                .await
                .ok()
                .flatten()
                .and_then(|o| o.placed_by)
        }
    };
    assert_eq!(placed_by(&mine).await, Some(portal.principal.clone()));
    assert_eq!(placed_by(&theirs).await, Some(app.principal.clone()));

    // A placement for a merchant outside the scope: 403 naming it, nothing written.
    let outside = portal
        .post_order(&unique_key(), &valid_order(&apps).to_string())
        .await;
    refused(
        &outside,
        403,
        "merchant_not_in_scope",
        "the portal placing for the app's merchant",
    );
    assert!(outside.text.contains(&apps), "{}", outside.text);
    assert_eq!(
        stack.orders_of_merchant(&apps).await,
        1,
        "only the app's own order"
    );

    // Reads: each its own, the other's is no order at all.
    assert_eq!(portal.get_order(&mine).await.status, 200);
    assert_eq!(app.get_order(&theirs).await.status, 200);
    refused(
        &portal.get_order(&theirs).await,
        404,
        "order_not_found",
        "the portal reading the app's order",
    );
    refused(
        &app.get_order(&mine).await,
        404,
        "order_not_found",
        "the app reading the portal's order",
    );
    let unknown = format!("ord-{}", uuid::Uuid::new_v4().simple());
    let missing = portal.get_order(&unknown).await;
    let other = portal.get_order(&theirs).await;
    assert_eq!(
        (missing.status, &missing.body["code"]),
        (other.status, &other.body["code"]),
        "another scope's order answers exactly as no order"
    );

    // Cancels: the other's order is 404 and stays as it was.
    let before = status_of(&stack, &theirs).await;
    refused(
        &portal.cancel(&theirs).await,
        404,
        "order_not_found",
        "the portal cancelling the app's order",
    );
    let after = status_of(&stack, &theirs).await;
    assert!(
        after != OrderStatus::Cancelling && after != OrderStatus::Cancelled,
        "the app's order was {before}, then {after}"
    );

    // One key, sent by both for the same merchant and body: two independent orders.
    let (key, body) = (unique_key(), valid_order(&shared).to_string());
    let first = accepted(
        &portal.post_order(&key, &body).await,
        "the portal's keyed order",
    );
    let second = accepted(&app.post_order(&key, &body).await, "the app's keyed order");
    assert_ne!(first, second, "one caller's key found the other's order");
    let replayed = portal.post_order(&key, &body).await;
    assert_eq!(accepted(&replayed, "the portal's replay"), first);
    // The key reused with another body says so, without naming an order.
    let reused = app.post_order(&key, &valid_order(&apps).to_string()).await;
    refused(
        &reused,
        422,
        "idempotency_key_reused",
        "the app's key with another body",
    );
    assert!(!reused.text.contains(&second), "{}", reused.text);

    // Read and cancel are separate: a caller without the cancel permission in its scope
    // is refused; on MiniStack the app's IAM policy lacks the cancel route too, and API
    // Gateway refuses it before the function runs.
    grant(
        &store,
        &app,
        &[&apps],
        &[Permission::Read, Permission::Place],
    )
    .await;
    let cancel = app.cancel(&theirs).await;
    match Backend::current() {
        Backend::MiniStack => assert_eq!(cancel.status, 403, "IAM: {}", cancel.text),
        Backend::Moto => refused(&cancel, 403, "caller_not_permitted", "the app's cancel"),
    }
    assert_eq!(
        app.get_order(&theirs).await.status,
        200,
        "it may still read"
    );
    grant(&store, &app, &[&apps], &all).await;
    match Backend::current() {
        // IAM still refuses the app the cancel route, whatever its scope says.
        Backend::MiniStack => assert_eq!(app.cancel(&theirs).await.status, 403),
        Backend::Moto => reached(&app.cancel(&theirs).await, "the app cancelling its own"),
    }
    reached(&portal.cancel(&mine).await, "the portal cancelling its own");

    // A caller whose scope is removed may do nothing, not even read its own orders.
    let removed = store.remove_caller_scope(&app.principal, &OPERATOR).await;
    assert!(matches!(removed, Ok(Some(_))), "{removed:?}");
    refused(
        &app.get_order(&theirs).await,
        403,
        "caller_not_permitted",
        "the app without a scope",
    );
    refused(
        &app.post_order(&unique_key(), &valid_order(&apps).to_string())
            .await,
        403,
        "caller_not_permitted",
        "the app placing without a scope",
    );
    assert_eq!(stack.orders_of_merchant(&apps).await, 1);

    // Every change to the scopes above is audited, with who made it.
    let changes = store
        .caller_changes(1000)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let apps_changes = changes
        .iter()
        .filter(|c| c.principal == app.principal && c.at >= started)
        .inspect(|c| {
            assert_eq!(
                (c.who.as_str(), c.label.as_deref()),
                (OPERATOR.identity, OPERATOR.label)
            )
        })
        .count();
    assert_eq!(apps_changes, 4, "the app's four changes: {changes:?}");
}
