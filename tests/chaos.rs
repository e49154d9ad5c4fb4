//! The chaos run (infra/chaos) with a hundred orders, on a stack of its own: it injects
//! global fault rules and kills function instances, which would disturb the tests that
//! share the stack `make test` starts. The stack is stopped when the test ends, also when
//! it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use system_tests::{root, workspace_binary};

/// A stack started for this test alone; stopped (and its directory removed) on drop.
struct OwnStack {
    dir: PathBuf,
}

/// The variables that point at the stack `make test` runs the tests in: the stack started
/// here must not inherit them (its functions get their own from its env file).
fn is_stack_variable(name: &str) -> bool {
    name.starts_with("AWS_")
        || name.ends_with("_URL")
        || name.ends_with("_ARN")
        || matches!(
            name,
            "TABLE_NAME" | "LOCAL_STACK_DIR" | "STACK_DIR" | "PARTNER_SEED" | "LAMBDA_CONCURRENCY"
        )
}

impl OwnStack {
    fn start() -> OwnStack {
        let stack = OwnStack {
            dir: std::env::temp_dir().join(format!("chaos-stack-{}", uuid::Uuid::new_v4())),
        };
        let mut command = Command::new(workspace_binary("local-stack"));
        command
            .arg("up")
            .arg("--dir")
            .arg(&stack.dir)
            .args(["--free-ports", "--no-reload", "--venv"])
            .arg(root().join(".venv"))
            .current_dir(root());
        for (name, _) in std::env::vars() {
            if is_stack_variable(&name) {
                command.env_remove(name);
            }
        }
        let output = match command.output() {
            Ok(output) => output,
            Err(error) => panic!("cannot run local-stack: {error}"),
        };
        assert!(
            output.status.success(),
            "local-stack up failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        stack
    }
}

impl Drop for OwnStack {
    fn drop(&mut self) {
        local_stack::stack::down(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_hundred_orders_under_faults_and_crashes_are_all_accounted_for_and_nothing_happens_twice()
{
    let stack = OwnStack::start();
    let env = match chaos::ChaosEnv::from_file(&stack.dir.join("stack.env")) {
        Ok(env) => env,
        Err(error) => panic!("{error}"),
    };
    let options = chaos::Options {
        orders: 100,
        settle_timeout: Duration::from_secs(10 * 60),
        ..chaos::Options::default()
    };
    let report = match chaos::run(&options, &env).await {
        Ok(report) => report,
        Err(error) => panic!("the chaos run could not be carried out: {error}"),
    };
    println!("{report}");
    assert!(report.invariants_hold(), "{report}");
    // The run did what it claims: orders went through, faults fired, instances died.
    let accepted = report
        .load
        .placed
        .iter()
        .filter(|p| p.accepted().is_some())
        .count();
    assert_eq!(accepted, 100, "{report}");
    assert!(report.faults_injected.unavailable > 0, "{report}");
    assert!(!report.kills.is_empty(), "{report}");
}
