//! What the workspace links, read from `cargo tree` (Cargo.lock, no network).

use std::process::Command;
use system_tests::stdout_of;

/// Every package the workspace's code depends on at run time, `name vX.Y.Z` per line.
fn runtime_packages() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args([
        "tree",
        "--workspace",
        "--locked",
        "--offline",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let stdout = stdout_of(command, "cargo tree");
    let text = String::from_utf8(stdout).expect("cargo tree prints UTF-8");
    let mut packages: Vec<String> = text
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_owned())
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

/// Checks that the workspace links `wanted` (a `name vX.Y.Z` prefix) and none of
/// `unwanted`; `why` says what a failure most likely means.
fn links_one_not_the_others(wanted: &str, unwanted: &[&str], why: &str) {
    let packages = runtime_packages();
    assert!(
        packages.iter().any(|p| p.starts_with(wanted)),
        "{wanted} is not linked: {packages:?}"
    );
    let found: Vec<&String> = packages
        .iter()
        .filter(|p| unwanted.iter().any(|prefix| p.starts_with(prefix)))
        .collect();
    assert!(found.is_empty(), "{why}: {found:?}");
}

#[test]
fn the_aws_sdk_brings_one_http_stack_not_the_legacy_hyper_0_14_and_rustls_0_21() {
    links_one_not_the_others(
        "hyper v1.",
        &[
            "hyper v0.14",
            "rustls v0.21",
            "rustls-webpki v0.101",
            "hyper-rustls v0.24",
        ],
        "the legacy HTTP stack is linked again (an SDK crate with its default features?)",
    );
}

#[test]
fn the_workspace_links_one_crypto_provider_ring_and_not_aws_lc() {
    // ring: reqwest's and the SDK's client's (order_core::config::https_client).
    links_one_not_the_others(
        "ring v0.17",
        &["aws-lc-rs ", "aws-lc-sys "],
        "aws-lc is linked again (an SDK crate with `default-https-client`?)",
    );
}
