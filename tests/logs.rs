//! What the functions log: never a merchant's delivery address or name (personal data),
//! nor a secret, whichever way the order goes. Reads the JSON logs the local stack keeps of its
//! functions (`<stack dir>/logs/cargo-lambda-watch.log`) and of the invoke router, after
//! orders that complete, are declined and rolled back, and are refused by the API, each
//! with an address only this test uses, and checks for the address every other test's
//! orders carry too.

use serde_json::{json, Value};
use system_tests::{fault, unique_key, unique_merchant, valid_order, Stack};

const ENDED: [&str; 4] = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];

/// An order for `merchant` delivered to an address marked with `marker`.
fn marked_order(merchant: &str, marker: &str) -> Value {
    let mut order = valid_order(merchant);
    order["delivery_address"] = json!({
        "name": format!("Logcheck Person {marker}"),
        "line1": format!("{marker} Privacy Lane 7"),
        "line2": format!("Floor {marker}"),
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    });
    order
}

#[tokio::test]
async fn no_function_logs_a_delivery_address_a_name_or_a_secret() {
    let stack = Stack::connect().await;
    let marker = format!("zq{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let plain = unique_merchant();
    let declining = stack
        .partners()
        .merchant_with(json!([fault("payments", "charge", "refuse")]))
        .await;
    let (completed, _) = stack.place(&marked_order(&plain, &marker)).await;
    let (declined, _) = stack.place(&marked_order(&declining, &marker)).await;
    // Refused by the API: the address is valid, a line is not.
    let mut refused = marked_order(&plain, &marker);
    refused["lines"][0]["quantity"] = json!(0);
    let reply = stack
        .post_order(Some(&unique_key()), &refused.to_string())
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let completed = stack.wait_for_status(&completed, &ENDED).await;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    let declined = stack.wait_for_status(&declined, &ENDED).await;
    assert_eq!(declined["status"], "FAILED", "{declined}");

    // Nor any secret: every partner's token and the webhook secret, as deployed: each
    // variable that names a secret (the partners' `*_API_TOKEN_SECRET`, the webhook's).
    let client = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let mut variables: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with("_API_TOKEN_SECRET") || name == "COURIER_WEBHOOK_SECRET_ID")
        .collect();
    variables.sort();
    assert_eq!(
        variables,
        [
            "COURIER_API_TOKEN_SECRET",
            "COURIER_WEBHOOK_SECRET_ID",
            "NOTIFICATIONS_API_TOKEN_SECRET",
            "PAYMENTS_API_TOKEN_SECRET",
            "TERMINALS_API_TOKEN_SECRET",
            "WAREHOUSE_API_TOKEN_SECRET",
        ],
        "the stack's secrets: five partners' tokens and the webhook's"
    );
    let mut secrets = Vec::new();
    for variable in &variables {
        let id = std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is not set"));
        let value = order_core::secrets::read(&client, &id)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(
            value.len() >= 8,
            "{variable}: a secret this short proves nothing"
        );
        secrets.push(value);
    }
    // Every other test's orders go to the example address.
    let mut forbidden = vec![
        marker.clone(),
        "Café Blau".to_owned(),
        "Caf\\u00e9 Blau".to_owned(),
        "Torstraße 1".to_owned(),
    ];
    forbidden.extend(secrets);

    let logs = stack.dir.join("logs");
    let mut lines = 0;
    let mut found = Vec::new();
    for file in ["cargo-lambda-watch.log", "invoke-router.log"] {
        let path = logs.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for line in text.lines() {
            lines += 1;
            for personal in &forbidden {
                if line.contains(personal.as_str()) {
                    found.push(format!(
                        "{file}: {}",
                        line.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    // The orders above did log (their order ids), so the search looked at their lines.
    let ids_logged = std::fs::read_to_string(logs.join("cargo-lambda-watch.log"))
        .map(|text| text.contains(completed["order_id"].as_str().unwrap_or("?")))
        .unwrap_or(false);
    assert!(
        ids_logged,
        "the completed order's id is in the function logs"
    );
    assert!(lines > 0);
    assert_eq!(
        found,
        Vec::<String>::new(),
        "personal data or a secret in the logs"
    );
}
