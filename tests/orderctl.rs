//! The operator CLI, run as an operator runs it: the built `orderctl` binary with the
//! stack's environment (which `local-stack exec` gives this process), checked by what
//! it changed in the stack, not only by what it printed.
//!
//! `reconcile` acts on every unfinished order of the stack, so the test that runs it
//! takes [`exclusive`] for writing and the others take it for reading: no other test
//! of this file has an order in flight while it runs.

// The lock only orders this file's tests; each runs on its own thread's runtime, so a
// guard held across an await blocks no other task.
#![allow(clippy::await_holding_lock)]

use order_core::dead_letters::DeadLetterBody;
use serde_json::Value;
use std::time::Duration;
use system_tests::{
    exclusive, shared, skip_on, valid_order, Backend, Stack, COMPLETED_NEW_ORDER, ENDED,
};

/// What one run of `orderctl` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    /// stdout as JSON (Null when it is not JSON).
    json: Value,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The built `orderctl`; a clear failure when the workspace was not built.
fn binary() -> std::path::PathBuf {
    let binary = system_tests::workspace_binary("orderctl");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`; `make test` does)",
        binary.display()
    );
    binary
}

/// Runs a prepared `orderctl` command (at most 120 s) and collects what it did.
async fn run(command: &mut tokio::process::Command) -> Run {
    let output = command.kill_on_drop(true).output();
    let output = match tokio::time::timeout(Duration::from_secs(120), output).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!("cannot run {command:?}: {error}"),
        Err(_) => panic!("{command:?} did not finish within 120 s"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Run {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `orderctl ARGS` with this process's environment plus `env`.
async fn orderctl_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    run(tokio::process::Command::new(binary())
        .args(args)
        .envs(env.iter().copied()))
    .await
}

async fn orderctl(args: &[&str]) -> Run {
    orderctl_with(args, &[]).await
}

/// The timeline rows of `orders show --json` of one kind (`order`, `step`, `execution`).
fn rows<'a>(shown: &'a Value, kind: &str) -> Vec<&'a Value> {
    shown["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn an_order_stored_without_an_execution_is_listed_by_its_status_and_by_its_merchant() {
    let _running = shared();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;

    let by_status = orderctl(&[
        "orders", "list", "--status", "accepted", "--limit", "10000", "--json",
    ])
    .await;
    assert_eq!(by_status.code, 0, "{by_status}");
    let listed = by_status.json["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mine = listed.iter().find(|o| o["order_id"] == id.as_str());
    assert!(
        mine.is_some_and(|o| o["status"] == "ACCEPTED" && o["execution_arn"].is_null()),
        "{id} not listed as ACCEPTED: {by_status}"
    );
    assert!(
        listed.iter().all(|o| o["status"] == "ACCEPTED"),
        "{by_status}"
    );

    let order = stack.store().require_order(&id).await;
    let merchant = order.map(|o| o.order.merchant_id).unwrap_or_default();
    let by_merchant = orderctl(&["orders", "list", "--merchant", &merchant, "--since", "1h"]).await;
    assert_eq!(by_merchant.code, 0, "{by_merchant}");
    assert!(
        by_merchant.stdout.contains(id.as_str()) && by_merchant.stdout.contains("ACCEPTED"),
        "{by_merchant}"
    );
}

#[tokio::test]
async fn resuming_an_order_that_never_started_runs_it_to_completed_and_show_has_its_whole_timeline()
{
    let _running = shared();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;

    let resumed = orderctl(&["orders", "resume", id.as_str(), "--json"]).await;
    assert_eq!(resumed.code, 0, "{resumed}");
    // The first execution of an order is named after it, as the API names it.
    assert_eq!(resumed.json["execution_name"], id.as_str(), "{resumed}");
    stack.wait_for_status(id.as_str(), &["COMPLETED"]).await;

    let shown = orderctl(&["orders", "show", id.as_str(), "--json"]).await;
    assert_eq!(shown.code, 0, "{shown}");
    assert_eq!(shown.json["order"]["status"], "COMPLETED", "{shown}");
    assert!(
        shown.json["order"]["tracking_number"].is_string(),
        "{shown}"
    );
    assert_eq!(shown.json["executions"][0]["name"], id.as_str(), "{shown}");
    assert_eq!(
        shown.json["executions"][0]["status"], "SUCCEEDED",
        "{shown}"
    );
    let steps = rows(&shown.json, "step");
    assert!(
        steps.iter().any(|r| r["state"] == "ValidateOrder"
            && r["event"] == "succeeded"
            && r["attempt"] == 1),
        "no step row for ValidateOrder: {shown}"
    );
    let executions = rows(&shown.json, "execution");
    assert!(
        executions.iter().any(|r| r["state"] == "ValidateOrder"
            && r["event"] == "entered"
            && r["source"] == id.as_str()),
        "no execution row for ValidateOrder: {shown}"
    );
    assert_eq!(
        executions.last().map(|r| &r["event"]),
        Some(&Value::from("succeeded")),
        "{shown}"
    );
    let times: Vec<&str> = shown.json["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["time"].as_str())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "the timeline is not sorted by time: {times:?}"
    );

    let table = orderctl(&["orders", "show", id.as_str()]).await;
    assert_eq!(table.code, 0, "{table}");
    assert!(
        table.stdout.contains("CompleteOrder") && table.stdout.contains("tracking number"),
        "{table}"
    );

    let again = orderctl(&["orders", "resume", id.as_str()]).await;
    assert_eq!(
        again.code, 4,
        "resuming a COMPLETED order must be refused: {again}"
    );
    assert!(again.stderr.contains("has ended COMPLETED"), "{again}");
}

#[tokio::test]
async fn cancel_is_refused_once_an_order_completed_and_cancels_an_order_whose_workflow_never_started(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let (completed, _) = stack
        .place(&valid_order(&system_tests::unique_merchant()))
        .await;
    stack.wait_for_status(&completed, &["COMPLETED"]).await;
    let refused = orderctl(&["orders", "cancel", &completed]).await;
    assert_eq!(refused.code, 4, "{refused}");
    assert!(
        refused.stderr.contains("can no longer be cancelled"),
        "{refused}"
    );
    let view = stack.get(&format!("/orders/{completed}")).await.body;
    assert_eq!(view["status"], "COMPLETED", "{view}");

    let id = stack.order_without_execution().await;
    let cancelled = orderctl(&["orders", "cancel", id.as_str(), "--json"]).await;
    assert_eq!(cancelled.code, 0, "{cancelled}");
    assert_eq!(cancelled.json["status"], "CANCELLED", "{cancelled}");
    let view = stack.get(&format!("/orders/{id}")).await.body;
    assert_eq!(view["status"], "CANCELLED", "{view}");
}

/// The order's audit trail, read consistently.
async fn audit_trail(
    stack: &Stack,
    id: &order_core::OrderId,
) -> Vec<order_core::store::AuditRecord> {
    match stack.store().audit_trail(id).await {
        Ok(trail) => trail,
        Err(error) => panic!("reading the audit trail of {id}: {error}"),
    }
}

#[tokio::test]
async fn each_cli_action_leaves_one_audit_record_naming_the_sts_identity_with_the_operator_beside_it(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let resumed = stack.order_without_execution().await;
    let run = orderctl(&["--operator", "alice", "orders", "resume", resumed.as_str()]).await;
    assert_eq!(run.code, 0, "{run}");
    let cancelled = stack.order_without_execution().await;
    let run = orderctl(&["orders", "cancel", cancelled.as_str(), "--operator", "bob"]).await;
    assert_eq!(run.code, 0, "{run}");
    // A refused action is recorded too, with why.
    let run = orderctl(&["orders", "resume", cancelled.as_str()]).await;
    assert_ne!(run.code, 0, "{run}");

    let resume = audit_trail(&stack, &resumed).await;
    let cancel = audit_trail(&stack, &cancelled).await;
    let identity = resume.first().map(|r| r.who.clone()).unwrap_or_default();
    assert!(
        identity.starts_with("arn:aws:") && !identity.contains("alice"),
        "who acted is the STS identity, never the label: {resume:?}"
    );
    let summary = |trail: &[order_core::store::AuditRecord]| {
        trail
            .iter()
            .map(|r| {
                (
                    r.who.clone(),
                    r.label.clone(),
                    r.action.clone(),
                    r.outcome.clone().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    let resumed_as = format!("resumed as {resumed} (ACCEPTED)");
    assert_eq!(
        summary(&resume),
        [(
            identity.clone(),
            Some("alice".to_owned()),
            "resume".to_owned(),
            resumed_as
        )]
    );
    let cancel = summary(&cancel);
    assert_eq!(cancel.len(), 2, "{cancel:?}");
    assert_eq!(
        cancel[0],
        (
            identity.clone(),
            Some("bob".to_owned()),
            "cancel".to_owned(),
            "started: the order is CANCELLED".to_owned()
        )
    );
    assert_eq!(
        (&cancel[1].0, &cancel[1].1, cancel[1].2.as_str()),
        (&identity, &None, "resume")
    );
    assert!(cancel[1].3.starts_with("refused: "), "{cancel:?}");
}

#[tokio::test]
async fn an_order_ended_longer_ago_than_the_retention_period_loses_its_personal_data_and_nothing_else(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let store = stack.store();
    let (old, recent) = (
        stack.order_without_execution().await,
        stack.order_without_execution().await,
    );
    for id in [&old, &recent] {
        let run = orderctl(&["orders", "cancel", id.as_str()]).await;
        assert_eq!(run.code, 0, "{run}");
    }
    stack.backdate(old.as_str(), 400 * 24 * 3600).await;
    // This test's backdated order ended before any place an earlier pass stopped at.
    let cleared = store
        .set_reconcile_cursor("anonymiser/CANCELLED", None)
        .await;
    assert!(cleared.is_ok(), "{cleared:?}");
    let before = store
        .require_order(&old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let run = orderctl(&["orders", "anonymise", "--older-than-days", "365", "--json"]).await;
    assert_eq!(run.code, 0, "{run}");
    let anonymised: Vec<&str> = run.json["anonymised"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(anonymised.contains(&old.as_str()), "{run}");
    assert!(!anonymised.contains(&recent.as_str()), "{run}");

    let after = store
        .require_order(&old)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = &after.order.delivery_address;
    assert_eq!(
        (address.name.as_str(), address.line1.as_str()),
        ("[removed]", "[removed]")
    );
    assert_eq!(
        (
            after.status,
            &after.updated_at,
            &address.city,
            &after.order.merchant_id
        ),
        (
            before.status,
            &before.updated_at,
            &before.order.delivery_address.city,
            &before.order.merchant_id
        )
    );
    let view = stack.get(&format!("/orders/{old}")).await.body;
    assert_eq!(view["delivery_address"]["name"], "[removed]", "{view}");
    let kept = store
        .require_order(&recent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(kept.order.delivery_address.name, "[removed]");
}

#[tokio::test]
async fn cancelling_a_charged_order_through_orderctl_rolls_it_back_with_a_refund() {
    let _running = shared();
    let stack = Stack::connect().await;
    let (id, _) = stack
        .place_under(&[system_tests::fault("terminals", "provision", "unavailable")])
        .await;
    stack.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
    let cancelled = orderctl(&["orders", "cancel", &id, "--json"]).await;
    assert_eq!(cancelled.code, 0, "{cancelled}");
    assert_eq!(cancelled.json["status"], "CANCELLING", "{cancelled}");
    let view = stack.wait_for_status(&id, &["CANCELLED", "FAILED"]).await;
    assert_eq!(view["status"], "CANCELLED", "{view}");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[("reservations", &["released"]), ("charges", &["refunded"])]);
}

#[tokio::test]
async fn showing_an_order_that_does_not_exist_exits_3_and_says_so() {
    let _running = shared();
    let unknown = order_core::OrderId::generate();
    let shown = orderctl(&["orders", "show", unknown.as_str()]).await;
    assert_eq!(shown.code, 3, "{shown}");
    assert!(
        shown
            .stderr
            .contains(&format!("order {unknown} does not exist")),
        "{shown}"
    );

    let as_json = orderctl(&["orders", "show", unknown.as_str(), "--json"]).await;
    assert_eq!(
        (as_json.code, &as_json.json["error"]["exit_code"]),
        (3, &Value::from(3)),
        "{as_json}"
    );
}

#[tokio::test]
async fn redrive_on_the_local_emulator_is_refused_with_exit_4_and_points_to_resume() {
    let _running = shared();
    let stack = Stack::connect().await;
    let (id, _) = stack
        .place(&valid_order(&system_tests::unique_merchant()))
        .await;
    stack.wait_for_status(&id, &ENDED).await;
    let redriven = orderctl(&["orders", "redrive", &id]).await;
    assert_eq!(redriven.code, 4, "{redriven}");
    assert!(
        redriven
            .stderr
            .contains("does not support RedriveExecution")
            && redriven.stderr.contains("orders resume"),
        "{redriven}"
    );
}

#[tokio::test]
async fn a_dead_letter_is_listed_shown_and_replayed_which_resumes_its_order_and_removes_the_message(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    let queue = stack.dead_letters();
    let sent = queue
        .send(&DeadLetterBody {
            order_id: id.to_string(),
            execution_arn: None,
            failed_step: Some("ValidateOrder".into()),
            error: Some("Test.DeadLetter".into()),
            cause: Some("sent by tests/orderctl.rs".into()),
            at: None,
            source: "workflow".into(),
        })
        .await;
    assert!(sent.is_ok(), "{sent:?}");

    let listed = orderctl(&["dlq", "list", "--limit", "10000", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed}");
    let message = listed.json["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["body"]["order_id"] == id.as_str());
    let message_id = match message {
        Some(m) => m["message_id"].as_str().unwrap_or_default().to_owned(),
        None => panic!("the dead letter of {id} is not listed: {listed}"),
    };

    let shown = orderctl(&["dlq", "show", &message_id, "--json"]).await;
    assert_eq!(shown.code, 0, "{shown}");
    assert_eq!(
        (
            &shown.json["message"]["body"]["error"],
            &shown.json["order"]["status"]
        ),
        (&Value::from("Test.DeadLetter"), &Value::from("ACCEPTED")),
        "{shown}"
    );

    let replayed = orderctl(&["dlq", "replay", &message_id, "--json"]).await;
    assert_eq!(replayed.code, 0, "{replayed}");
    let result = &replayed.json["results"][0];
    assert_eq!(
        (
            &result["outcome"],
            &result["deleted"],
            &result["execution_name"]
        ),
        (
            &Value::from("resumed"),
            &Value::Bool(true),
            &Value::from(id.as_str())
        ),
        "{replayed}"
    );
    let order = stack.store().require_order(&id).await.ok();
    assert!(
        order.is_some_and(|o| o.execution_arn.is_some()),
        "the order was not resumed"
    );
    let trail = audit_trail(&stack, &id).await;
    assert_eq!(
        trail
            .iter()
            .map(|r| (r.action.clone(), r.outcome.clone()))
            .collect::<Vec<_>>(),
        [(
            format!("replay dead letter {message_id}"),
            Some(format!("resumed as {id} (ACCEPTED)"))
        )],
        "exactly one record of the replay"
    );
    stack.wait_for_status(id.as_str(), &["COMPLETED"]).await;

    let gone = orderctl(&["dlq", "show", &message_id]).await;
    assert_eq!(
        gone.code, 3,
        "the replayed message is still in the queue: {gone}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_exits_5_and_names_the_endpoint() {
    let _running = shared();
    let endpoint = [("AWS_ENDPOINT_URL", "http://127.0.0.1:1")];
    let listed = orderctl_with(&["orders", "list"], &endpoint).await;
    assert_eq!(listed.code, 5, "{listed}");
    assert!(
        listed
            .stderr
            .contains("cannot reach the AWS endpoint http://127.0.0.1:1"),
        "{listed}"
    );

    let dead_letters = orderctl_with(&["dlq", "list", "--json"], &endpoint).await;
    assert_eq!(dead_letters.code, 5, "{dead_letters}");
    assert_eq!(
        dead_letters.json["error"]["kind"], "unreachable",
        "{dead_letters}"
    );
}

#[tokio::test]
async fn a_missing_setting_exits_2_naming_its_flag_and_variable() {
    let _running = shared();
    let listed = run(tokio::process::Command::new(binary())
        .args(["orders", "list"])
        .env_remove("TABLE_NAME"))
    .await;
    assert_eq!(listed.code, 2, "{listed}");
    assert!(
        listed.stderr.contains("--table") && listed.stderr.contains("TABLE_NAME"),
        "{listed}"
    );
}

#[tokio::test]
async fn the_help_documents_the_exit_codes_scripts_rely_on() {
    let help = orderctl(&["--help"]).await;
    assert_eq!(help.code, 0, "{help}");
    for line in [
        "0  done",
        "2  usage",
        "3  the order or the message does not exist",
        "4  refused",
        "5  the AWS endpoint cannot be reached",
    ] {
        assert!(
            help.stdout.contains(line),
            "--help does not say {line:?}: {help}"
        );
    }
}

#[tokio::test]
async fn reconcile_resumes_an_order_stored_without_an_execution_once_it_is_older_than_the_grace() {
    let _alone = exclusive();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Stored just now: younger than the grace (5 s), so its StartExecution may still come.
    let young = stack.order_without_execution().await;

    // Every stale order of the stack is reconciled; only this test's orders are checked.
    let reconciled = orderctl(&[
        "reconcile",
        "--grace-seconds",
        "5",
        "--limit",
        "10000",
        "--json",
    ])
    .await;
    assert_eq!(reconciled.code, 0, "{reconciled}");
    let mine = reconciled.json["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["order_id"] == id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(mine["action"], "resumed", "{reconciled}");
    let arn = mine["execution_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The resumed execution exists (describing it fails the test otherwise).
    stack.describe_execution(&arn).await;

    let listed = reconciled.json["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["order_id"] == young.as_str());
    assert_eq!(listed, None, "the young order was reconciled: {reconciled}");
    stack.assert_as_stored(&young, "the young order").await;
    stack.wait_for_status(id.as_str(), &["COMPLETED"]).await;
}

#[tokio::test]
async fn releases_shows_the_version_the_alias_routes_new_orders_to_and_its_running_executions() {
    if skip_on(
        Backend::MiniStack,
        "DescribeExecution reports no stateMachineVersionArn or stateMachineAliasArn (the version an execution runs is not shown)",
    ) {
        return;
    }
    let _running = shared();
    let stack = Stack::connect().await;
    let (_, waiting) = stack.order_waiting_for_its_courier().await;
    let version = stack
        .describe_execution(&waiting)
        .await
        .state_machine_version_arn
        .expect("an order placed through the API runs on a published version");

    let listed = orderctl(&["releases", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed}");
    let releases = listed.json["releases"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(release) = releases
        .iter()
        .find(|r| r["version_arn"] == version.as_str())
    else {
        panic!("{version} is not listed: {listed}");
    };
    assert!(
        release["running"].as_u64() >= Some(1),
        "the order waiting for its courier runs on it: {listed}"
    );
    assert_eq!(release["deletable"], false, "{listed}");
    assert_eq!(
        releases[0]["routing"],
        serde_json::json!(["live 100%"]),
        "the alias routes every new order to the newest version: {listed}"
    );
    assert_eq!(
        release["function_versions"].as_array().map(Vec::len),
        Some(15),
        "the version names the function of each of the 15 Lambda Tasks: {listed}"
    );

    let table = orderctl(&["releases"]).await;
    assert_eq!(table.code, 0, "{table}");
    assert!(
        table.stdout.contains("ROUTES NEW ORDERS") && table.stdout.contains("live 100%"),
        "{table}"
    );
}

#[tokio::test]
async fn resume_latest_stops_the_running_execution_and_the_order_completes_on_a_new_one() {
    let _running = shared();
    let stack = Stack::connect().await;
    let (id, first) = stack.order_waiting_for_its_courier().await;

    let refused = orderctl(&["orders", "resume", &id]).await;
    assert_eq!(
        refused.code, 4,
        "a running execution is not resumed twice: {refused}"
    );
    assert!(
        refused.stderr.contains("orderctl orders resume --latest"),
        "the refusal names the hotfix path: {refused}"
    );

    let moved = orderctl(&["orders", "resume", "--latest", &id, "--json"]).await;
    assert_eq!(moved.code, 0, "{moved}");
    assert_eq!(moved.json["stopped"], first.as_str(), "{moved}");
    assert_eq!(moved.json["execution_name"], format!("{id}-r1"), "{moved}");
    let newest = orderctl(&["releases", "--json"]).await.json["releases"][0]["version_arn"].clone();
    assert!(newest.is_string(), "the stack publishes versions");
    assert_eq!(
        moved.json["release"], newest,
        "--latest resumes on the newest version, whatever the alias routes: {moved}"
    );

    // The new execution replays the finished steps and waits for the same parcel.
    let resumed_arn = moved.json["execution_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    stack
        .wait_for(&id, "waiting on its new execution", |view| {
            view["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["step"] == "AwaitDelivery" && s["attempts"].as_u64() >= Some(2))
        })
        .await;
    let order_id = order_core::OrderId::parse(&id).expect("the API gives order ids");
    let recorded = stack.store().require_order(&order_id).await.ok();
    assert_eq!(
        recorded.and_then(|o| o.execution_arn).as_deref(),
        Some(resumed_arn.as_str()),
        "the order records its new execution"
    );
    stack.partners().deliver(&id).await;
    let done = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(stack.execution_status(&resumed_arn).await, "SUCCEEDED");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(COMPLETED_NEW_ORDER);
}
