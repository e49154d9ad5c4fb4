//! IAM enforcement bites: on MiniStack (IAM checked, each function calling AWS with its
//! own role) a function whose policy lacks a permission its code uses fails there. A
//! scratch copy of the packaged template loses one grant, `dynamodb:UpdateItem` of
//! ReserveStock, is deployed on a MiniStack stack of its own, and an order placed there
//! meets AccessDenied for exactly that action at ReserveStock. A permission our own
//! deployment lacks is our infrastructure's trouble, not the order's: the order waits it
//! out in the outage loop (an operator fixes the grant and it goes on), never rolled
//! back. Without this test, a stack where IAM is not checked after all would pass every
//! other test just the same.
//!
//! moto checks no IAM policy (the moto stack runs every function with one set of dummy
//! credentials), so the test says it is skipped there.

use serde_yaml::Value as Yaml;
use std::path::{Path, PathBuf};
use system_tests::{root, skip_on, unique_merchant, valid_order, Backend, OwnStack, Stack};

/// The function that loses a grant, the statement, and the action taken out of it.
const FUNCTION: &str = "ReserveStockFunction";
const STATEMENT: &str = "AdvanceOrders";
const ACTION: &str = "dynamodb:UpdateItem";

#[tokio::test]
async fn a_function_whose_policy_lacks_an_action_its_code_calls_meets_access_denied_and_its_order_waits(
) {
    if skip_on(
        Backend::Moto,
        "moto checks no IAM policy: every function of the moto stack calls with the same dummy credentials",
    ) {
        return;
    }
    let scratch = scratch_build_without_grant();
    let stack = OwnStack::start(&["--build-dir".as_ref(), scratch.0.as_os_str()]);
    let env = stack.env();
    for (name, value) in &env {
        std::env::set_var(name, value);
    }
    let deployed = Stack::connect().await;

    let (id, arn) = deployed.place(&valid_order(&unique_merchant())).await;
    // ReserveStock's retries are spent on the missing grant: the order waits. A stack
    // that checks no IAM runs the order to its end instead: that ends the wait at once,
    // and the check below says so.
    let outage = ["NoteReserveStockOutage", "WaitOutOutage"];
    let entered = system_tests::eventually(
        &format!("execution {arn} waiting out the missing grant, or ending"),
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(250),
        || async {
            let entered = deployed.states_entered(&arn).await;
            let waiting = outage.iter().all(|name| entered.iter().any(|s| s == name));
            let described = deployed
                .sfn()
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await;
            let ended = described
                .is_ok_and(|d| d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running);
            if waiting || ended {
                Ok(entered)
            } else {
                Err(format!("{entered:?}"))
            }
        },
    )
    .await;
    assert!(
        outage.iter().all(|name| entered.iter().any(|s| s == name)),
        "order {id} never met AccessDenied at {FUNCTION} (is IAM enforced on this stack?): it went through {entered:?}"
    );
    // The attempt could not even be counted on the order (that is the UpdateItem it
    // lacks), so what ReserveStock said is in the execution's history.
    let history = deployed
        .sfn()
        .get_execution_history()
        .execution_arn(&arn)
        .max_results(1000)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GetExecutionHistory {arn}: {error:?}"));
    let causes: Vec<String> = history
        .events()
        .iter()
        .filter_map(|e| e.task_failed_event_details())
        .filter_map(|d| d.cause().map(str::to_owned))
        .collect();
    assert!(
        causes
            .iter()
            .any(|c| c.contains("AccessDenied") && c.contains(ACTION)),
        "order {id} waits, but not for the missing {ACTION}: {causes:?}"
    );
    let view = deployed.get(&format!("/orders/{id}")).await.body;
    assert_eq!(
        view["status"], "VALIDATED",
        "never rolled back for it: {view}"
    );
    assert!(
        view["failure"].is_null(),
        "no failure recorded for our own trouble: {view}"
    );
}

/// A scratch directory, removed when dropped: when the test passes and when it fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of `.aws-sam/build` (what `make package` built) whose template no longer grants
/// `ACTION` to `FUNCTION`; the code, the definition and the API's OpenAPI document are the
/// packaged ones, named by absolute path.
fn scratch_build_without_grant() -> Scratch {
    let build = root().join(".aws-sam/build");
    let dir = Scratch(std::env::temp_dir().join(format!("iam-build-{}", uuid::Uuid::new_v4())));
    let scratch = &dir.0;
    std::fs::create_dir_all(scratch).expect("create the scratch build directory");
    std::fs::copy(build.join("ARCHITECTURE"), scratch.join("ARCHITECTURE"))
        .expect("copy .aws-sam/build/ARCHITECTURE (run make package)");
    let text = std::fs::read_to_string(build.join("template.yaml"))
        .expect("read .aws-sam/build/template.yaml (run make package)");
    let mut template: Yaml = serde_yaml::from_str(&text).expect("the packaged template is YAML");
    let resources = template
        .get_mut("Resources")
        .and_then(Yaml::as_mapping_mut)
        .expect("the template has Resources");
    for (_, resource) in resources.iter_mut() {
        let Some(properties) = resource.get_mut("Properties") else {
            continue;
        };
        for key in ["CodeUri", "DefinitionUri"] {
            if let Some(Yaml::String(path)) = properties.get_mut(key) {
                *path = absolute(&build, path);
            }
        }
        // The API's document, included by a path relative to the packaged template.
        let included = properties
            .get_mut("DefinitionBody")
            .and_then(|body| body.get_mut("Fn::Transform"))
            .and_then(|transform| transform.get_mut("Parameters"))
            .and_then(|parameters| parameters.get_mut("Location"));
        if let Some(Yaml::String(path)) = included {
            *path = absolute(&build, path);
        }
    }
    let removed = template["Resources"][FUNCTION]["Properties"]["Policies"]
        .as_sequence_mut()
        .into_iter()
        .flatten()
        .filter_map(|policy| policy.get_mut("Statement").and_then(Yaml::as_sequence_mut))
        .flatten()
        .filter(|statement| statement["Sid"].as_str() == Some(STATEMENT))
        .filter_map(|statement| statement.get_mut("Action").and_then(Yaml::as_sequence_mut))
        .map(|actions| {
            let before = actions.len();
            actions.retain(|action| action.as_str() != Some(ACTION));
            before - actions.len()
        })
        .sum::<usize>();
    assert_eq!(
        removed, 1,
        "{FUNCTION}'s statement {STATEMENT} no longer grants {ACTION}: choose another grant"
    );
    let text = serde_yaml::to_string(&template).expect("the template serialises");
    std::fs::write(scratch.join("template.yaml"), text).expect("write the scratch template");
    dir
}

fn absolute(base: &Path, path: &str) -> String {
    let joined = base.join(path);
    std::fs::canonicalize(&joined)
        .unwrap_or(joined)
        .display()
        .to_string()
}
