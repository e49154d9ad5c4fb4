//! The orders API held to `openapi.yaml` by a property-based tester built for OpenAPI:
//! schemathesis (pinned, `.venv-openapi`, `make contract-venv`) generates schema-valid and
//! schema-violating requests for every operation of the `orders` tag and checks every
//! answer: no 5xx, no status the document does not list, the body matches its schema, the
//! documented content type and headers. On MiniStack the requests go through API Gateway,
//! built from the same document, and a request without its SigV4 signature must be
//! refused too. The cases are in `infra/contract/test_orders_api.py`; this test runs them
//! against the stack under test and reports what was sent.

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use system_tests::{root, Backend};

/// Cases per operation and generation mode (positive, negative); `CONTRACT_EXAMPLES`
/// overrides it.
const EXAMPLES: &str = "25";

/// The operations the contract test must have reached, each with schema-valid and
/// schema-violating cases.
const OPERATIONS: &[&str] = &[
    "POST /orders",
    "GET /orders/{id}",
    "POST /orders/{id}/cancel",
];

#[test]
fn schemathesis_finds_every_orders_api_answer_documented_schema_valid_and_no_server_error() {
    let python = root().join(".venv-openapi/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: `make contract-venv` installs schemathesis (make test does it first)",
        python.display()
    );
    let log = std::env::temp_dir().join(format!("contract-{}.jsonl", uuid::Uuid::new_v4()));
    let examples = std::env::var("CONTRACT_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_owned());
    let iam = Backend::current() == Backend::MiniStack;
    let run = Command::new(&python)
        .current_dir(root())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg("infra/contract/test_orders_api.py")
        .env("CONTRACT_EXAMPLES", &examples)
        .env("CONTRACT_LOG", &log)
        .env("CONTRACT_IAM", if iam { "1" } else { "0" })
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{output}"
    );

    // operation -> mode -> status -> count
    let mut sent: BTreeMap<String, BTreeMap<String, BTreeMap<u64, u32>>> = BTreeMap::new();
    for line in written.lines() {
        let case: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("contract log line {line:?}: {error}"));
        let (Some(operation), Some(mode), Some(status)) = (
            case["operation"].as_str(),
            case["mode"].as_str(),
            case["status"].as_u64(),
        ) else {
            panic!("contract log line without operation, mode and status: {line}");
        };
        *sent
            .entry(operation.to_owned())
            .or_default()
            .entry(mode.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    let total: u32 = sent
        .values()
        .flat_map(|m| m.values())
        .flat_map(|s| s.values())
        .sum();
    let mut report = format!(
        "schemathesis on {}: {total} cases, {examples} per operation and mode, all passed\n",
        Backend::current().name()
    );
    for (operation, modes) in &sent {
        for (mode, statuses) in modes {
            report.push_str(&format!("  {operation:<28} {mode:<18} {statuses:?}\n"));
        }
    }
    // Kept for the record (cargo test shows a passing test's output only with --nocapture).
    let saved = root().join(format!("target/contract-{}.txt", Backend::current().name()));
    if let Err(error) = std::fs::write(&saved, &report) {
        println!("cannot write {}: {error}", saved.display());
    }
    print!("{report}");
    // The linked sequences reached real orders: read and cancelled by the id placing gave.
    for (operation, status) in [("GET /orders/{id}", 200), ("POST /orders/{id}/cancel", 202)] {
        let answered = sent
            .get(operation)
            .and_then(|modes| modes.get("stateful positive"))
            .and_then(|statuses| statuses.get(&status));
        assert!(
            answered.is_some(),
            "no linked {operation} answered {status}:\n{output}"
        );
    }
    for operation in OPERATIONS {
        for mode in ["positive", "negative"] {
            let cases: u32 = sent
                .get(*operation)
                .and_then(|modes| modes.get(mode))
                .map_or(0, |statuses| statuses.values().sum());
            assert!(cases > 0, "no {mode} case reached {operation}:\n{output}");
        }
    }
}
