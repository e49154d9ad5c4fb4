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

#[test]
fn the_aws_sdk_brings_one_http_stack_not_the_legacy_hyper_0_14_and_rustls_0_21() {
    let packages = runtime_packages();
    assert!(
        packages.iter().any(|p| p.starts_with("hyper v1.")),
        "the current HTTP client is there: {packages:?}"
    );
    let legacy: Vec<&String> = packages
        .iter()
        .filter(|p| {
            p.starts_with("hyper v0.14")
                || p.starts_with("rustls v0.21")
                || p.starts_with("rustls-webpki v0.101")
                || p.starts_with("hyper-rustls v0.24")
        })
        .collect();
    assert!(
        legacy.is_empty(),
        "the legacy HTTP stack is linked again (an SDK crate with its default features?): {legacy:?}"
    );
}

#[test]
fn the_workspace_links_one_crypto_provider_ring_and_not_aws_lc() {
    let packages = runtime_packages();
    assert!(
        packages.iter().any(|p| p.starts_with("ring v0.17")),
        "ring is there (reqwest and the SDK's client use it): {packages:?}"
    );
    let aws_lc: Vec<&String> = packages
        .iter()
        .filter(|p| p.starts_with("aws-lc-rs ") || p.starts_with("aws-lc-sys "))
        .collect();
    assert!(
        aws_lc.is_empty(),
        "aws-lc is linked again (an SDK crate with `default-https-client`?): {aws_lc:?}"
    );
}
