//! `releases`: the state machine versions a deploy published (one per release), where the
//! alias routes new orders, and how many executions still run on each version.
//!
//! A running execution keeps the version it started on, and that version names the
//! function versions it was released with, until the execution ends (up to 15 days: an
//! order waits up to 14 for its courier). A version may be deleted once no execution
//! runs on it, no alias routes to it and it is not the newest (the one `orders resume
//! --latest` uses). CloudFormation never deletes one: SAM retains every version it
//! publishes, function versions included.

use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output::{or_dash, print_json, Table};
use order_core::recovery::unqualified_state_machine_arn;
use serde::Serialize;
use std::collections::BTreeMap;

/// One release as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The version's ARN; `None` for executions started on the state machine itself
    /// (not through a version or an alias).
    pub version_arn: Option<String>,
    /// When the version was published.
    pub created: Option<String>,
    /// Aliases routing new orders here, with their share: `live 90%`.
    pub routing: Vec<String>,
    /// Executions still running on it.
    pub running: usize,
    /// The function versions its definition invokes.
    pub function_versions: Vec<String>,
    /// Safe to delete: nothing runs on it, nothing routes to it, and it is not the newest.
    pub deletable: bool,
}

/// What the releases are made from, as Step Functions reports it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// (version ARN, created), newest first.
    pub versions: Vec<(String, String)>,
    /// alias name → [(version ARN, weight %)].
    pub routes: BTreeMap<String, Vec<(String, i32)>>,
    /// version ARN (`None`: the state machine itself) → running executions.
    pub running: BTreeMap<Option<String>, usize>,
    /// version ARN → the function versions its definition invokes.
    pub functions: BTreeMap<String, Vec<String>>,
}

/// The releases, newest first; executions on the state machine itself last.
pub fn releases(facts: &Facts) -> Vec<Release> {
    let mut out: Vec<Release> = facts
        .versions
        .iter()
        .enumerate()
        .map(|(index, (arn, created))| {
            let routing: Vec<String> = facts
                .routes
                .iter()
                .flat_map(|(alias, routes)| {
                    routes
                        .iter()
                        .filter(|(target, _)| target == arn)
                        .map(move |(_, weight)| format!("{alias} {weight}%"))
                })
                .collect();
            let running = facts.running.get(&Some(arn.clone())).copied().unwrap_or(0);
            Release {
                version_arn: Some(arn.clone()),
                created: Some(created.clone()),
                deletable: running == 0 && routing.is_empty() && index > 0,
                routing,
                running,
                function_versions: facts.functions.get(arn).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let unversioned = facts.running.get(&None).copied().unwrap_or(0);
    if unversioned > 0 || facts.versions.is_empty() {
        out.push(Release {
            version_arn: None,
            created: None,
            routing: Vec::new(),
            running: unversioned,
            function_versions: Vec::new(),
            deletable: false,
        });
    }
    out
}

/// The table `orderctl releases` prints.
pub fn table(releases: &[Release]) -> Table {
    let mut table = Table::new(&[
        "VERSION",
        "PUBLISHED",
        "ROUTES NEW ORDERS",
        "RUNNING",
        "FUNCTIONS",
        "MAY BE DELETED",
    ])
    .right(3)
    .right(4);
    for release in releases {
        let version = match &release.version_arn {
            Some(arn) => arn.rsplit(':').next().unwrap_or(arn).to_owned(),
            None => "(the state machine itself)".to_owned(),
        };
        table.row(vec![
            version,
            or_dash(release.created.as_deref()),
            if release.routing.is_empty() {
                "-".to_owned()
            } else {
                release.routing.join(", ")
            },
            release.running.to_string(),
            release.function_versions.len().to_string(),
            if release.deletable { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table
}

/// Runs `orderctl releases`.
pub async fn run(context: &Context) -> Result<Exit, CliError> {
    let workflow = context.workflow()?;
    let machine = unqualified_state_machine_arn(&workflow.state_machine_arn).to_owned();
    let facts = gather(&context.sfn(), &machine).await?;
    let releases = releases(&facts);
    if context.json {
        print_json(&serde_json::json!({"state_machine": machine, "releases": releases}));
        return Ok(Exit::Ok);
    }
    println!("{}", table(&releases).render());
    if facts.versions.is_empty() {
        println!(
            "\n{machine} has no published versions: executions run on the state machine itself (the local stack deploys no versions: moto cannot start executions through them)."
        );
    } else {
        println!(
            "\nDelete a version that may be deleted with `aws stepfunctions delete-state-machine-version --state-machine-version-arn <ARN>` (its function versions too, once no remaining version names them)."
        );
    }
    Ok(Exit::Ok)
}

/// A failed Step Functions call, with the SDK's whole error context, classified like
/// every other AWS error of the CLI (unreachable endpoint, ...).
fn failed<E, R>(operation: &str, error: aws_sdk_sfn::error::SdkError<E, R>) -> CliError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let error = aws_sdk_sfn::error::DisplayErrorContext(error);
    CliError::classify(format!("Step Functions {operation} failed: {error}"))
}

/// Asks Step Functions for the versions, the aliases' routing, the running executions
/// and each version's definition.
async fn gather(sfn: &aws_sdk_sfn::Client, machine: &str) -> Result<Facts, CliError> {
    let mut facts = Facts::default();
    let mut token = None;
    loop {
        let page = sfn
            .list_state_machine_versions()
            .state_machine_arn(machine)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| failed("ListStateMachineVersions", e))?;
        for version in page.state_machine_versions() {
            facts.versions.push((
                version.state_machine_version_arn().to_owned(),
                version.creation_date().to_string(),
            ));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let aliases = sfn
        .list_state_machine_aliases()
        .state_machine_arn(machine)
        .send()
        .await
        .map_err(|e| failed("ListStateMachineAliases", e))?;
    for alias in aliases.state_machine_aliases() {
        let described = sfn
            .describe_state_machine_alias()
            .state_machine_alias_arn(alias.state_machine_alias_arn())
            .send()
            .await
            .map_err(|e| failed("DescribeStateMachineAlias", e))?;
        let name = described.name().unwrap_or("alias").to_owned();
        let routes = described
            .routing_configuration()
            .iter()
            .map(|r| (r.state_machine_version_arn().to_owned(), r.weight()))
            .collect();
        facts.routes.insert(name, routes);
    }
    let mut token = None;
    loop {
        let page = sfn
            .list_executions()
            .state_machine_arn(machine)
            .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| failed("ListExecutions", e))?;
        for execution in page.executions() {
            let version = execution.state_machine_version_arn().map(str::to_owned);
            *facts.running.entry(version).or_default() += 1;
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for (arn, _) in &facts.versions {
        let described = sfn
            .describe_state_machine()
            .state_machine_arn(arn)
            .send()
            .await
            .map_err(|e| failed("DescribeStateMachine", e))?;
        facts
            .functions
            .insert(arn.clone(), invoked_functions(described.definition()));
    }
    Ok(facts)
}

/// The function ARNs a definition's Lambda Tasks name, sorted, each once.
pub fn invoked_functions(definition: &str) -> Vec<String> {
    let Ok(definition) = serde_json::from_str::<serde_json::Value>(definition) else {
        return Vec::new();
    };
    let mut found: Vec<String> = definition["States"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, state)| state["Parameters"]["FunctionName"].as_str())
        .filter(|name| name.contains(":function:"))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: &str = "arn:aws:states:eu-central-1:123456789012:stateMachine:OrderWorkflow";

    fn version(n: u32) -> String {
        format!("{MACHINE}:{n}")
    }

    /// Three releases: 3 is the canary (10%), 2 takes the rest, 1 is routed nowhere.
    fn facts(running_on_1: usize) -> Facts {
        Facts {
            versions: vec![
                (version(3), "2026-11-28T09:00:00Z".into()),
                (version(2), "2026-11-20T09:00:00Z".into()),
                (version(1), "2026-11-10T09:00:00Z".into()),
            ],
            routes: BTreeMap::from([("live".to_owned(), vec![(version(3), 10), (version(2), 90)])]),
            running: BTreeMap::from([
                (Some(version(3)), 2),
                (Some(version(2)), 40),
                (Some(version(1)), running_on_1),
            ]),
            functions: BTreeMap::new(),
        }
    }

    #[test]
    fn a_version_with_running_executions_may_not_be_deleted() {
        let listed = releases(&facts(3));
        let oldest = &listed[2];
        assert_eq!(oldest.version_arn.as_deref(), Some(version(1).as_str()));
        assert_eq!(oldest.running, 3);
        assert!(!oldest.deletable);
    }

    #[test]
    fn an_unrouted_older_version_with_nothing_running_may_be_deleted() {
        let listed = releases(&facts(0));
        assert!(listed[2].deletable, "{listed:?}");
    }

    #[test]
    fn routed_versions_and_the_newest_are_never_deletable() {
        let mut quiet = facts(0);
        quiet.running.clear();
        let listed = releases(&quiet);
        assert_eq!(listed[0].routing, ["live 10%"]);
        assert_eq!(listed[1].routing, ["live 90%"]);
        assert!(
            !listed[0].deletable,
            "the newest version is resume --latest's"
        );
        assert!(!listed[1].deletable, "the alias routes orders to it");
    }

    #[test]
    fn executions_on_the_state_machine_itself_are_listed_apart() {
        let facts = Facts {
            running: BTreeMap::from([(None, 4)]),
            ..Facts::default()
        };
        let listed = releases(&facts);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].version_arn, None);
        assert_eq!(listed[0].running, 4);
        let text = table(&listed).render();
        assert!(text.contains("(the state machine itself)"), "{text}");
    }

    #[test]
    fn the_function_versions_of_a_definition_are_its_lambda_tasks() {
        let definition = serde_json::json!({"States": {
            "A": {"Type": "Task", "Parameters": {"FunctionName": "arn:aws:lambda:r:1:function:a:7"}},
            "B": {"Type": "Task", "Parameters": {"FunctionName": "arn:aws:lambda:r:1:function:a:7"}},
            "C": {"Type": "Task", "Parameters": {"QueueUrl": "https://sqs"}},
            "D": {"Type": "Pass"}
        }})
        .to_string();
        assert_eq!(
            invoked_functions(&definition),
            ["arn:aws:lambda:r:1:function:a:7"]
        );
    }
}
