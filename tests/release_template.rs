//! Release safety, checked on what CloudFormation deploys: `template.yaml` after the SAM
//! transform (infra/translate-sam.py, the translator `sam deploy` runs, offline).
//!
//! - every Lambda Task of the state machine names a published function **version**, so a
//!   state machine version pins exactly the code it was released with;
//! - every function publishes versions behind the alias `live`;
//! - the state machine publishes versions behind an alias with a gradual
//!   DeploymentPreference, and every alarm that preference names is defined in the
//!   template (CloudWatch treats a missing alarm as OK: a misspelt name never rolls back);
//! - new and resumed orders start through that alias, and the state machine may invoke
//!   every version (`function:<name>:*`) of exactly the functions it calls.
//!
//! Needs the lint tools (`bash infra/lint.sh` installs them into .venv-lint; `make test`
//! runs it first).

use serde_json::{Map, Value};
use std::collections::BTreeSet;

type Resources = Map<String, Value>;

fn translated() -> Resources {
    system_tests::translated_template()
}

fn of_type<'a>(resources: &'a Resources, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn referenced(value: &Value) -> Option<&str> {
    value["Ref"].as_str()
}

fn state_machine(resources: &Resources) -> (&String, &Value) {
    let machines = of_type(resources, "AWS::StepFunctions::StateMachine");
    assert_eq!(machines.len(), 1, "one state machine: {machines:?}");
    machines[0]
}

fn definition(resources: &Resources) -> Value {
    let (_, machine) = state_machine(resources);
    machine["Properties"]["Definition"].clone()
}

/// `${Name}` → `Name`, for a definition's substitution placeholders.
fn placeholder(text: &str) -> Option<&str> {
    text.strip_prefix("${")?.strip_suffix('}')
}

#[test]
fn every_lambda_task_names_a_published_version_of_its_function() {
    let resources = translated();
    let (_, machine) = state_machine(&resources);
    let substitutions = &machine["Properties"]["DefinitionSubstitutions"];
    let states = definition(&resources)["States"]
        .as_object()
        .cloned()
        .expect("the definition has States");
    let mut tasks = 0;
    for (name, state) in &states {
        let resource = state["Resource"].as_str().unwrap_or_default();
        if !resource.starts_with("arn:aws:states:::lambda:invoke") {
            continue;
        }
        tasks += 1;
        let function = state["Parameters"]["FunctionName"]
            .as_str()
            .and_then(placeholder)
            .unwrap_or_else(|| panic!("{name}: FunctionName is not a substitution"));
        let target = referenced(&substitutions[function])
            .unwrap_or_else(|| panic!("{name}: ${{{function}}} is not a !Ref"));
        let version = &resources[target];
        assert_eq!(
            version["Type"], "AWS::Lambda::Version",
            "{name} invokes {target}, which is not a published function version: a deploy would change its code under running executions"
        );
        let owner = referenced(&version["Properties"]["FunctionName"])
            .unwrap_or_else(|| panic!("{target} names no function"));
        assert_eq!(
            resources[owner]["Type"], "AWS::Lambda::Function",
            "{target} is a version of {owner}, which is not a function"
        );
    }
    assert_eq!(
        tasks,
        order_core::steps::ALL.len(),
        "one Lambda Task per step"
    );
}

#[test]
fn every_function_publishes_versions_behind_the_alias_live() {
    let resources = translated();
    let functions = of_type(&resources, "AWS::Lambda::Function");
    assert!(
        functions.len() >= 17,
        "too few functions: {}",
        functions.len()
    );
    for (id, _) in functions {
        let alias = of_type(&resources, "AWS::Lambda::Alias")
            .into_iter()
            .find(|(_, a)| referenced(&a["Properties"]["FunctionName"]) == Some(id.as_str()));
        let Some((_, alias)) = alias else {
            panic!("{id} has no alias: give it AutoPublishAlias");
        };
        assert_eq!(alias["Properties"]["Name"], "live", "{id}'s alias");
        let version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}'s alias points at no published version"));
        assert_eq!(resources[version]["Type"], "AWS::Lambda::Version");
    }
}

#[test]
fn the_state_machine_alias_shifts_gradually_and_every_rollback_alarm_it_names_exists() {
    let resources = translated();
    let (machine_id, _) = state_machine(&resources);
    let aliases = of_type(&resources, "AWS::StepFunctions::StateMachineAlias");
    assert_eq!(aliases.len(), 1, "one state machine alias: {aliases:?}");
    let (_, alias) = aliases[0];
    assert_eq!(alias["Properties"]["Name"], "live");
    let preference = &alias["Properties"]["DeploymentPreference"];
    assert!(
        matches!(preference["Type"].as_str(), Some("CANARY" | "LINEAR")),
        "the release must shift gradually: {preference}"
    );
    let version = referenced(&preference["StateMachineVersionArn"])
        .expect("the preference names the new version");
    assert_eq!(
        resources[version]["Type"],
        "AWS::StepFunctions::StateMachineVersion"
    );
    assert_eq!(
        referenced(&resources[version]["Properties"]["StateMachineArn"]),
        Some(machine_id.as_str())
    );

    let alarm_names: BTreeSet<String> = of_type(&resources, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter_map(|(_, a)| a["Properties"]["AlarmName"].as_str().map(str::to_owned))
        .collect();
    let alarms = preference["Alarms"]
        .as_array()
        .expect("the preference names its rollback alarms");
    assert!(!alarms.is_empty(), "a release without rollback alarms");
    for alarm in alarms {
        match (referenced(alarm), alarm.as_str()) {
            (Some(id), _) => assert_eq!(
                resources.get(id).map(|r| &r["Type"]),
                Some(&Value::from("AWS::CloudWatch::Alarm")),
                "rollback alarm {id} is not an alarm of this template"
            ),
            (None, Some(name)) => assert!(
                alarm_names.contains(name),
                "rollback alarm {name:?} is defined nowhere in the template: CloudWatch would report it OK and the release would never roll back"
            ),
            (None, None) => panic!("a rollback alarm that is neither a name nor a !Ref: {alarm}"),
        }
    }
}

#[test]
fn orders_start_through_the_alias_and_the_workflow_may_invoke_every_version_it_names() {
    let resources = translated();
    let (alias_id, _) = of_type(&resources, "AWS::StepFunctions::StateMachineAlias")[0];
    for function in ["OrdersApiFunction", "ReconcilerFunction"] {
        let variables = &resources[function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            referenced(&variables["STATE_MACHINE_ARN"]),
            Some(alias_id.as_str()),
            "{function} must start executions through the alias"
        );
    }

    let (_, machine) = state_machine(&resources);
    let role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .expect("the state machine has a role of this template");
    let mut granted = BTreeSet::new();
    for policy in resources[role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let actions = match &statement["Action"] {
                Value::Array(list) => list.clone(),
                single => vec![single.clone()],
            };
            if !actions.iter().any(|a| a == "lambda:InvokeFunction") {
                continue;
            }
            let targets = match &statement["Resource"] {
                Value::Array(list) => list.clone(),
                single => vec![single.clone()],
            };
            for target in targets {
                let pattern = target["Fn::Sub"].as_str().unwrap_or_else(|| {
                    panic!("an invoke grant that is not `${{Function.Arn}}:*`: {target}")
                });
                let function = pattern
                    .strip_prefix("${")
                    .and_then(|p| p.strip_suffix(".Arn}:*"))
                    .unwrap_or_else(|| {
                        panic!("an invoke grant on {pattern:?}, not on `function:<name>:*`")
                    });
                granted.insert(function.to_owned());
            }
        }
    }
    let substitutions = &machine["Properties"]["DefinitionSubstitutions"];
    let invoked: BTreeSet<String> = substitutions
        .as_object()
        .expect("substitutions")
        .values()
        .filter_map(referenced)
        .filter(|id| resources[*id]["Type"] == "AWS::Lambda::Version")
        .filter_map(|id| referenced(&resources[id]["Properties"]["FunctionName"]))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        granted, invoked,
        "the state machine may invoke the versions of exactly the functions it calls"
    );
}

#[test]
fn no_deploy_deletes_a_published_version_that_running_executions_may_still_use() {
    let resources = translated();
    let versions: Vec<_> = of_type(&resources, "AWS::Lambda::Version")
        .into_iter()
        .chain(of_type(
            &resources,
            "AWS::StepFunctions::StateMachineVersion",
        ))
        .collect();
    assert!(
        versions.len() > order_core::steps::ALL.len(),
        "{versions:?}"
    );
    for (id, version) in versions {
        assert_eq!(
            version["DeletionPolicy"], "Retain",
            "{id}: CloudFormation would delete it when the next release replaces it, under executions pinned to it"
        );
    }
}
