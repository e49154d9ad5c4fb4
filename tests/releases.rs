//! A release on the local stack: the stack publishes the definition as a state machine
//! version behind the alias `live`, as SAM's AutoPublishAlias does on AWS, and new
//! orders start through the alias. This test releases a new definition the way a deploy
//! does (UpdateStateMachine with publish, then the alias moves to the new version) while
//! an order waits for its courier, and shows the running order finishing on the version
//! it started on while a new order runs on the new one.
//!
//! The new definition differs by one Pass state after AwaitDelivery, so only executions
//! of the new version pass through it, and only after the release: the waiting order
//! reaches that point of its workflow after the release, on its own version.
//!
//! The stack is put back as it was (alias on the version it routed to, definition as
//! deployed) whether the test passes or fails. Locally only the definition is pinned:
//! cargo lambda watch serves one build of each function (see the README).

use serde_json::Value;
use system_tests::Stack;

const MARKER: &str = "ReleasedAfterTheOrderStarted";

/// The definition with the marker state between AwaitDelivery and what follows it.
fn with_marker(definition: &str) -> String {
    let mut definition: Value = serde_json::from_str(definition).expect("a JSON definition");
    let states = definition["States"]
        .as_object_mut()
        .expect("the definition has States");
    let after = states["AwaitDelivery"]["Next"].clone();
    states.insert(
        MARKER.to_owned(),
        serde_json::json!({"Type": "Pass", "Comment": "Only in the new release.", "Next": after}),
    );
    states
        .get_mut("AwaitDelivery")
        .expect("AwaitDelivery")
        .as_object_mut()
        .expect("a state object")
        .insert("Next".to_owned(), Value::from(MARKER));
    definition.to_string()
}

async fn route_alias(stack: &Stack, alias: &str, version: &str) {
    let routing = aws_sdk_sfn::types::RoutingConfigurationListItem::builder()
        .state_machine_version_arn(version)
        .weight(100)
        .build()
        .expect("a routing entry");
    stack
        .sfn()
        .update_state_machine_alias()
        .state_machine_alias_arn(alias)
        .routing_configuration(routing)
        .send()
        .await
        .expect("UpdateStateMachineAlias");
}

/// The newest published version of the state machine `machine`, if any.
async fn latest_version(stack: &Stack, machine: &str) -> Option<String> {
    stack
        .sfn()
        .list_state_machine_versions()
        .state_machine_arn(machine)
        .max_results(1)
        .send()
        .await
        .expect("ListStateMachineVersions")
        .state_machine_versions()
        .first()
        .map(|version| version.state_machine_version_arn().to_owned())
}

async fn version_of(stack: &Stack, execution: &str) -> Option<String> {
    stack
        .describe_execution(execution)
        .await
        .state_machine_version_arn
}

#[tokio::test]
async fn an_order_started_before_a_release_finishes_on_its_own_version_while_new_orders_run_on_the_new_one(
) {
    let stack = Stack::connect().await;
    let alias = stack.state_machine_arn.clone();
    let machine = order_core::recovery::unqualified_state_machine_arn(&alias).to_owned();
    assert_ne!(alias, machine, "STATE_MACHINE_ARN is the alias `live`");
    let described = stack
        .sfn()
        .describe_state_machine_alias()
        .state_machine_alias_arn(&alias)
        .send()
        .await
        .expect("DescribeStateMachineAlias");
    let before = described.routing_configuration()[0]
        .state_machine_version_arn()
        .to_owned();
    let deployed = stack
        .sfn()
        .describe_state_machine()
        .state_machine_arn(&machine)
        .send()
        .await
        .expect("DescribeStateMachine")
        .definition;

    // The version the release publishes, for the clean-up to delete whatever happens.
    let published: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let scenario = {
        let stack = Stack::connect().await;
        let (alias, machine, before, deployed, published) = (
            alias.clone(),
            machine.clone(),
            before.clone(),
            deployed.clone(),
            published.clone(),
        );
        tokio::spawn(async move {
            let (first, first_arn) = stack.order_waiting_for_its_courier().await;
            assert_eq!(version_of(&stack, &first_arn).await, Some(before.clone()));

            // The release: what `sam deploy` does with AutoPublishAlias.
            let released = stack
                .sfn()
                .update_state_machine()
                .state_machine_arn(&machine)
                .definition(with_marker(&deployed))
                .publish(true)
                .send()
                .await
                .expect("UpdateStateMachine with publish")
                .state_machine_version_arn
                .expect("a new version");
            assert_ne!(released, before);
            if let Ok(mut slot) = published.lock() {
                *slot = Some(released.clone());
            }
            route_alias(&stack, &alias, &released).await;

            let (second, second_arn) = stack.order_waiting_for_its_courier().await;
            assert_eq!(
                version_of(&stack, &second_arn).await,
                Some(released.clone())
            );
            for id in [&first, &second] {
                stack.partners().deliver(id).await;
            }
            for id in [&first, &second] {
                let view = stack.wait_for_status(id, &["COMPLETED", "FAILED"]).await;
                assert_eq!(view["status"], "COMPLETED", "{view}");
            }
            let first_states = stack.states_entered(&first_arn).await;
            let second_states = stack.states_entered(&second_arn).await;
            assert!(
                first_states.iter().any(|s| s == "NotifyCustomer")
                    && !first_states.iter().any(|s| s == MARKER),
                "the order started before the release finished on its own version: {first_states:?}"
            );
            assert!(
                second_states.iter().any(|s| s == MARKER),
                "the order started after the release ran the new version: {second_states:?}"
            );
            assert_eq!(version_of(&stack, &first_arn).await, Some(before));
        })
    };
    let outcome = scenario.await;

    // Put the stack back for the tests that follow, whatever happened.
    route_alias(&stack, &alias, &before).await;
    stack
        .sfn()
        .update_state_machine()
        .state_machine_arn(&machine)
        .definition(deployed)
        .send()
        .await
        .expect("restore the deployed definition");
    // And delete the version the release published, so that a later `resume --latest` on
    // this stack starts on the deployed definition, not on the marker's.
    let released = published.lock().ok().and_then(|slot| slot.clone());
    if let Some(released) = released {
        stack
            .sfn()
            .delete_state_machine_version()
            .state_machine_version_arn(&released)
            .send()
            .await
            .expect("delete the published marker version");
        assert_ne!(
            latest_version(&stack, &machine).await,
            Some(released),
            "the marker version is gone"
        );
    }
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}
