//! `openapi.yaml` describes the API the code implements, and nothing else: offline, no
//! stack. Here, in the crate that sees both functions (the webhook depends on the orders
//! API), it is held to the code and to template.yaml both ways:
//!
//! - routes: the document's operations are exactly the routes of the orders router
//!   (`functions/orders-api/src/lib.rs`) and the webhook's `PATH` (POST only); each
//!   documented operation is served and every other method on its path is
//!   `405 method_not_allowed`; and they are exactly the `Api` events of template.yaml, with
//!   IAM (`AWS_IAM`) on the orders routes and the signature (`courierSignature`) on the
//!   webhook;
//! - error codes: every `code` the functions answer (each `ApiError::new(StatusCode::X,
//!   "code", ..)` in their sources) is in the `ErrorCode` enum with its status
//!   (`x-error-statuses`), and the other way round; each operation's responses list each of
//!   their codes under that status only, and every code a route can answer appears in the
//!   responses of some operation.

use lambda_http::http::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The sources that turn errors into HTTP answers; their `#[cfg(test)]` parts are left out.
const SOURCES: &[&str] = &[
    "functions/orders-api/src/lib.rs",
    "functions/orders-api/src/error.rs",
    "functions/orders-api/src/orders.rs",
    "functions/orders-api/src/caller.rs",
    "functions/courier-webhook/src/lib.rs",
];
/// Codes answered for paths and methods the document does not list (behind API Gateway,
/// API Gateway answers those itself), so no operation lists them.
const UNROUTED_CODES: &[&str] = &["route_not_found", "method_not_allowed"];
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The methods sent to every documented path (OPTIONS and HEAD are left to the transport).
const PROBED_METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn document() -> Value {
    serde_yaml::from_str(&read("openapi.yaml"))
        .unwrap_or_else(|error| panic!("openapi.yaml: {error}"))
}

/// `value`, with `$ref`s (local ones only) followed.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut value = value;
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("openapi.yaml: $ref {reference} is not local"));
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("openapi.yaml: $ref {reference} points nowhere"));
    }
    value
}

/// Every `(path, METHOD)` the document lists, with the operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut operations = BTreeMap::new();
    let paths = doc["paths"].as_object().expect("openapi.yaml has paths");
    for (path, item) in paths {
        for method in HTTP_METHODS {
            if let Some(operation) = item.get(*method) {
                operations.insert((path.clone(), method.to_uppercase()), operation);
            }
        }
    }
    operations
}

/// The security schemes an operation requires (its own, else the document's).
fn security(doc: &Value, operation: &Value) -> BTreeSet<String> {
    let requirements = operation.get("security").unwrap_or(&doc["security"]);
    requirements
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect()
}

/// The `code` values a response schema allows, where it narrows them (`properties.code.enum`
/// in it or in its `allOf` / `oneOf` / `anyOf` parts).
fn narrowed_codes(doc: &Value, schema: &Value, codes: &mut BTreeSet<String>) {
    let schema = resolve(doc, schema);
    if let Some(list) = schema
        .pointer("/properties/code/enum")
        .and_then(Value::as_array)
    {
        codes.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            narrowed_codes(doc, part, codes);
        }
    }
}

/// `(status, code, "METHOD path")` for every error code an operation's responses list.
fn documented_answers(doc: &Value) -> Vec<(u16, String, String)> {
    let mut answers = Vec::new();
    for ((path, method), operation) in operations(doc) {
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let response = resolve(doc, response);
            let Some(schema) = response.pointer("/content/application~1json/schema") else {
                continue;
            };
            let mut codes = BTreeSet::new();
            narrowed_codes(doc, schema, &mut codes);
            let status: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{method} {path}: status {status} is not a number"));
            for code in codes {
                answers.push((status, code, format!("{method} {path}")));
            }
        }
    }
    answers
}

fn status_number(name: &str) -> u16 {
    match name {
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "CONFLICT" => 409,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "UNPROCESSABLE_ENTITY" => 422,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        other => panic!("StatusCode::{other} answers an error: add it here and to openapi.yaml"),
    }
}

/// Every string literal in `text`.
fn literals(text: &str) -> Vec<&str> {
    text.split('"').skip(1).step_by(2).collect()
}

/// Every `(code, status)` the functions' sources answer: `StatusCode::X, "code"`, or
/// `StatusCode::X, code` after a `let code = match ... { ... => "a", _ => "b" };`.
fn answers_in_code() -> BTreeMap<String, BTreeSet<u16>> {
    let mut found: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for file in SOURCES {
        let text = read(file);
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, marker) in text.match_indices("StatusCode::") {
            let rest = &text[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            let Some(after) = rest[name.len()..].trim_start().strip_prefix(',') else {
                continue;
            };
            let after = after.trim_start();
            let codes: Vec<&str> = if after.starts_with('"') {
                literals(after).into_iter().take(1).collect()
            } else if after.starts_with("code,") {
                let before = &text[..at];
                let start = before.rfind("let code = match").unwrap_or_else(|| {
                    panic!(
                        "{file}: StatusCode::{name} with a `code` not chosen by `let code = match`"
                    )
                });
                literals(&before[start..])
            } else {
                continue; // a success answer: `StatusCode::ACCEPTED, Json(..)`
            };
            for code in codes {
                assert!(
                    !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{file}: {code:?} after StatusCode::{name} does not look like an error code"
                );
                found
                    .entry(code.to_owned())
                    .or_default()
                    .insert(status_number(&name));
            }
        }
    }
    found
}

#[test]
fn every_error_code_in_the_code_is_documented_with_its_status_and_no_other() {
    let doc = document();
    let error_code = &doc["components"]["schemas"]["ErrorCode"];
    let enumerated: BTreeSet<String> = error_code["enum"]
        .as_array()
        .expect("ErrorCode has an enum")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let statuses: BTreeMap<String, u16> = error_code["x-error-statuses"]
        .as_object()
        .expect("ErrorCode has x-error-statuses")
        .iter()
        .map(|(code, status)| {
            let status = status.as_u64().and_then(|s| u16::try_from(s).ok());
            (
                code.clone(),
                status.unwrap_or_else(|| panic!("x-error-statuses.{code}")),
            )
        })
        .collect();
    let in_code = answers_in_code();
    assert!(
        in_code.len() >= 10,
        "the source scan found too little: {in_code:?}"
    );

    let code_names: BTreeSet<String> = in_code.keys().cloned().collect();
    assert_eq!(
        enumerated, code_names,
        "ErrorCode's enum against the codes in the code"
    );
    let status_names: BTreeSet<String> = statuses.keys().cloned().collect();
    assert_eq!(
        status_names, code_names,
        "x-error-statuses against the codes in the code"
    );
    for (code, answered) in &in_code {
        assert_eq!(
            answered,
            &BTreeSet::from([statuses[code]]),
            "{code}: the statuses the code answers it with against x-error-statuses"
        );
    }

    let answers = documented_answers(&doc);
    for (status, code, operation) in &answers {
        assert_eq!(
            statuses.get(code),
            Some(status),
            "{operation} lists {code} under {status}"
        );
    }
    let listed: BTreeSet<&str> = answers.iter().map(|(_, code, _)| code.as_str()).collect();
    for code in &code_names {
        assert_eq!(
            listed.contains(code.as_str()),
            !UNROUTED_CODES.contains(&code.as_str()),
            "{code}: listed by an operation's responses?"
        );
    }
}

/// `(path, METHOD)` of each `.route("path", method(handler)..)` of the orders router.
fn orders_routes() -> BTreeSet<(String, String)> {
    let text = read("functions/orders-api/src/lib.rs");
    let mut routes = BTreeSet::new();
    for (at, _) in text.match_indices(".route(") {
        let rest = &text[at..];
        let path = literals(rest)
            .first()
            .map(|p| (*p).to_owned())
            .unwrap_or_default();
        let method = ["get(", "post(", "put(", "patch(", "delete("]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, m.trim_end_matches('('))))
            .min()
            .map(|(_, m)| m.to_uppercase())
            .unwrap_or_else(|| panic!("no handler for route {path}"));
        routes.insert((path, method));
    }
    routes
}

/// The orders API with AWS clients that are never called: every probe is refused before
/// the store or the workflow would be.
fn offline_api() -> orders_api::Api {
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    orders_api::Api {
        store: order_core::store::OrderStore::from_config(&aws, "orders"),
        workflow: orders_api::Workflow {
            client: aws_sdk_sfn::Client::new(&aws),
            state_machine_arn: "arn:aws:states:eu-west-1:123456789012:stateMachine:Orders".into(),
            config: orders_api::WorkflowConfig {
                outage_wait_seconds: 1,
                delivery_timeout_seconds: 1,
                outage_waits_allowed: 1,
            },
        },
        catalogue: order_core::catalogue::Catalogue::builtin()
            .unwrap_or_else(|error| panic!("catalogue: {error}")),
        local_caller_header: None,
    }
}

#[tokio::test]
async fn the_documented_operations_are_exactly_the_routes_of_the_two_functions() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc).keys().cloned().collect();
    let webhook: BTreeSet<(String, String)> =
        BTreeSet::from([(courier_webhook::PATH.to_owned(), "POST".to_owned())]);
    let mut served = orders_routes();
    assert_eq!(
        served.len(),
        3,
        "the source scan of the orders routes: {served:?}"
    );
    served.extend(webhook.iter().cloned());
    assert_eq!(
        documented, served,
        "openapi.yaml's operations against the code's routes"
    );

    let router = orders_api::router(Arc::new(offline_api()));
    let paths: BTreeSet<&String> = documented.iter().map(|(path, _)| path).collect();
    for path in paths {
        let concrete = path.replace("{id}", "x");
        for method in PROBED_METHODS {
            // No body, no headers: refused before anything is read or written.
            let request = lambda_http::http::Request::builder()
                .method(method.clone())
                .uri(concrete.as_str())
                .body(lambda_http::Body::Empty)
                .unwrap_or_else(|error| panic!("{method} {concrete}: {error}"));
            let response = orders_api::serve(&router, request).await;
            let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
            let status = response.status().as_u16();
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            let key = (path.clone(), method.as_str().to_owned());
            if webhook.iter().any(|(p, _)| p == path) {
                // Another function's path: the orders router does not serve it.
                assert_eq!(code, "route_not_found", "{method} {concrete}");
            } else if documented.contains(&key) {
                assert!(
                    !UNROUTED_CODES.contains(&code.as_str()),
                    "{method} {concrete} is documented but answered {status} {code}"
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (405, "method_not_allowed"),
                    "{method} {concrete} is not documented"
                );
            }
        }
    }
}

#[test]
fn the_document_is_the_deployed_definition_and_its_operations_are_the_api_events_with_their_authorization(
) {
    let doc = document();
    let template: serde_yaml::Value = serde_yaml::from_str(&read("template.yaml"))
        .unwrap_or_else(|error| panic!("template.yaml: {error}"));
    let resources = template["Resources"]
        .as_mapping()
        .expect("template.yaml has Resources");
    let api = &template["Resources"]["OrdersApi"]["Properties"];
    assert_eq!(api["Auth"]["DefaultAuthorizer"].as_str(), Some("AWS_IAM"));
    let include = &api["DefinitionBody"]["Fn::Transform"];
    assert_eq!(
        (
            include["Name"].as_str(),
            include["Parameters"]["Location"].as_str(),
            api["MergeDefinitions"].as_bool()
        ),
        (Some("AWS::Include"), Some("openapi.yaml"), Some(true)),
        "OrdersApi's DefinitionBody is openapi.yaml, merged with the Api events"
    );
    let stage = api["StageName"].as_str().unwrap_or_default();
    let server = doc["servers"][0]["url"].as_str().unwrap_or_default();
    assert!(
        server.ends_with(&format!("/{stage}")),
        "openapi.yaml's server {server} against the stage {stage}"
    );

    // (path, METHOD) -> the security scheme the route needs.
    let mut events = BTreeMap::new();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(function_events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (event, definition) in function_events {
            if definition["Type"].as_str() != Some("Api") {
                continue;
            }
            let properties = &definition["Properties"];
            let path = properties["Path"].as_str().unwrap_or_default().to_owned();
            let method = properties["Method"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase();
            let scheme = match properties["Auth"]["Authorizer"].as_str() {
                None | Some("AWS_IAM") => "AWS_IAM",
                Some("NONE") => "courierSignature",
                Some(other) => panic!("{name:?}.{event:?}: authorizer {other}"),
            };
            events.insert((path, method), BTreeSet::from([scheme.to_owned()]));
        }
    }
    let documented: BTreeMap<(String, String), BTreeSet<String>> = operations(&doc)
        .into_iter()
        .map(|(key, operation)| (key, security(&doc, operation)))
        .collect();
    assert_eq!(
        documented, events,
        "openapi.yaml's operations and their security against template.yaml's Api events"
    );
}
