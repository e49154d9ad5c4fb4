//! Creates the template's secrets, tables, queues, event buses and state machines in the
//! emulator, and reads them back to check they still match the template. Also the local
//! stack's own tap on the order-events bus ([`tap_order_events`]), which the tests read.

use crate::template::{
    local_secret_value, EventBusSpec, LocalResources, QueueSpec, SecretSpec, StateMachineSpec,
    TableSpec, LOCAL_ACCOUNT,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableDescription,
    TimeToLiveSpecification,
};
use aws_sdk_eventbridge::operation::create_event_bus::CreateEventBusError;
use aws_sdk_sfn::types::StateMachineType;
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::{BTreeMap, HashMap};

/// An AWS call made while deploying or checking failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {resource}: {message}")]
pub struct DeployError {
    pub operation: &'static str,
    pub resource: String,
    pub message: String,
}

fn failed<E: std::error::Error>(operation: &'static str, resource: &str, error: E) -> DeployError {
    DeployError {
        operation,
        resource: resource.to_owned(),
        message: aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
    }
}

/// The clients the deployer uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The configuration they were built from (for other clients on the same endpoint).
    pub config: aws_config::SdkConfig,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub events: aws_sdk_eventbridge::Client,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            config: config.clone(),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }

    /// Clients for the emulator at `endpoint`, with the dummy credentials it accepts.
    pub async fn local(endpoint: &str, region: &str) -> Clients {
        let config = order_core::config::aws_loader()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "local-stack",
            ))
            .load()
            .await;
        Clients::new(&config)
    }
}

/// What deploying created, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    pub queue_urls: BTreeMap<String, String>,
    pub state_machine_arns: BTreeMap<String, String>,
}

/// Creates every resource; ones that exist already are updated to the template.
pub async fn deploy(
    clients: &Clients,
    resources: &LocalResources,
) -> Result<Deployed, DeployError> {
    let mut deployed = Deployed::default();
    for secret in &resources.secrets {
        create_secret(clients, secret).await?;
    }
    for table in &resources.tables {
        create_table(clients, table).await?;
    }
    for bus in &resources.event_buses {
        create_event_bus(clients, bus).await?;
    }
    for queue in &resources.queues {
        let url = create_queue(clients, queue).await?;
        deployed.queue_urls.insert(queue.logical_id.clone(), url);
    }
    for machine in &resources.state_machines {
        let arn = create_state_machine(clients, machine).await?;
        deployed
            .state_machine_arns
            .insert(machine.logical_id.clone(), arn);
    }
    Ok(deployed)
}

/// Creates the secret with its development value. One that exists already keeps its
/// value, as CloudFormation keeps a secret's value on update (a rotation made on a running
/// stack survives a redeploy).
async fn create_secret(clients: &Clients, secret: &SecretSpec) -> Result<(), DeployError> {
    let result = clients
        .secrets
        .create_secret()
        .name(&secret.name)
        .description(&secret.description)
        .secret_string(local_secret_value(&secret.logical_id))
        .send()
        .await;
    kept_if_it_exists(
        result,
        |e| e.is_resource_exists_exception(),
        "CreateSecret",
        &secret.name,
    )
}

/// A create that found the resource there already is fine (`exists` recognises the
/// service's error for that); any other failure is the deploy's.
fn kept_if_it_exists<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    exists: impl FnOnce(&E) -> bool,
    operation: &'static str,
    name: &str,
) -> Result<(), DeployError>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.as_service_error().is_some_and(exists) => Ok(()),
        Err(error) => Err(failed(operation, name, error)),
    }
}

fn key_schema(keys: &[(String, String)]) -> Result<Vec<KeySchemaElement>, DeployError> {
    keys.iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(|e| failed("build key schema", name, e))
        })
        .collect()
}

async fn create_table(clients: &Clients, table: &TableSpec) -> Result<(), DeployError> {
    let name = table.name.as_str();
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(table.billing_mode.as_str()))
        .set_key_schema(Some(key_schema(&table.key_schema)?));
    for (attribute, kind) in &table.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| failed("build attribute", name, e))?,
        );
    }
    for (index, (keys, projection)) in &table.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .set_key_schema(Some(key_schema(keys)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(|e| failed("build index", name, e))?,
        );
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| failed("build stream specification", name, e))?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(error) => return Err(failed("CreateTable", name, error)),
    }
    if let Some(attribute) = &table.ttl_attribute {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| failed("build TTL", name, e))?,
            )
            .send()
            .await
            .map_err(|e| failed("UpdateTimeToLive", name, e))?;
    }
    Ok(())
}

/// Creates the event bus; one that exists already is kept (a bus has nothing to update).
async fn create_event_bus(clients: &Clients, bus: &EventBusSpec) -> Result<(), DeployError> {
    let create = clients.events.create_event_bus().name(&bus.name);
    let exists = |e: &CreateEventBusError| e.is_resource_already_exists_exception();
    kept_if_it_exists(create.send().await, exists, "CreateEventBus", &bus.name)
}

/// The local stack's tap on the order-events bus: a queue of its own and a rule that sends
/// it every order event (source `terminal-orders`), as an integrator subscribes on AWS.
/// Tests and `make demo` read the queue (`ORDER_EVENTS_TAP_QUEUE_URL`). Not part of the
/// template: on AWS each consumer adds its own rule. Returns the queue's URL.
pub async fn tap_order_events(clients: &Clients, bus: &str) -> Result<String, DeployError> {
    const TAP: &str = "OrderEventsTap";
    let url = create_queue(
        clients,
        &QueueSpec {
            logical_id: TAP.to_owned(),
            name: TAP.to_owned(),
            attributes: BTreeMap::from([(
                "MessageRetentionPeriod".to_owned(),
                "1209600".to_owned(),
            )]),
            dead_letter_queue: None,
        },
    )
    .await?;
    // The queue's own ARN: its account is the emulator's (moto's 123456789012,
    // MiniStack's 000000000000), not one we could assume.
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed("GetQueueAttributes", TAP, e))?;
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| DeployError {
            operation: "GetQueueAttributes",
            resource: TAP.to_owned(),
            message: "no QueueArn in the answer".into(),
        })?;
    let pattern = serde_json::json!({"source": [order_core::events::SOURCE]}).to_string();
    clients
        .events
        .put_rule()
        .name(TAP)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|e| failed("PutRule", TAP, e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(TAP)
        .arn(queue_arn)
        .build()
        .map_err(|e| DeployError {
            operation: "PutTargets",
            resource: TAP.to_owned(),
            message: e.to_string(),
        })?;
    let answer = clients
        .events
        .put_targets()
        .rule(TAP)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| failed("PutTargets", TAP, e))?;
    if answer.failed_entry_count() > 0 {
        return Err(DeployError {
            operation: "PutTargets",
            resource: TAP.to_owned(),
            message: format!("{:?}", answer.failed_entries()),
        });
    }
    Ok(url)
}

async fn create_queue(clients: &Clients, queue: &QueueSpec) -> Result<String, DeployError> {
    let attributes: HashMap<QueueAttributeName, String> = queue
        .attributes
        .iter()
        .map(|(name, value)| (QueueAttributeName::from(name.as_str()), value.clone()))
        .collect();
    let output = clients
        .sqs
        .create_queue()
        .queue_name(&queue.name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| failed("CreateQueue", &queue.name, e))?;
    output.queue_url.ok_or_else(|| DeployError {
        operation: "CreateQueue",
        resource: queue.name.clone(),
        message: "no queue URL in the answer".into(),
    })
}

async fn create_state_machine(
    clients: &Clients,
    machine: &StateMachineSpec,
) -> Result<String, DeployError> {
    let arn = crate::template::state_machine_arn(clients_region(clients).as_str(), &machine.name);
    let exists = clients
        .sfn
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .is_ok();
    let definition = machine.definition.to_string();
    let publish = machine.published_alias.is_some();
    let version = if exists {
        clients
            .sfn
            .update_state_machine()
            .state_machine_arn(&arn)
            .definition(definition)
            .publish(publish)
            .send()
            .await
            .map_err(|e| failed("UpdateStateMachine", &machine.name, e))?
            .state_machine_version_arn
    } else {
        clients
            .sfn
            .create_state_machine()
            .name(&machine.name)
            .definition(definition)
            .role_arn(format!(
                "arn:aws:iam::{LOCAL_ACCOUNT}:role/{}Role",
                machine.logical_id
            ))
            .r#type(StateMachineType::from(machine.kind.as_str()))
            .publish(publish)
            .send()
            .await
            .map_err(|e| failed("CreateStateMachine", &machine.name, e))?
            .state_machine_version_arn
    };
    if let (Some(alias), Some(version)) = (&machine.published_alias, version) {
        point_alias(clients, &arn, alias, &version).await?;
    }
    Ok(arn)
}

/// Points `alias` of the state machine `arn` at `version` (all new executions), as the
/// end of a SAM deployment does; creates the alias the first time.
pub async fn point_alias(
    clients: &Clients,
    arn: &str,
    alias: &str,
    version: &str,
) -> Result<(), DeployError> {
    let routing = aws_sdk_sfn::types::RoutingConfigurationListItem::builder()
        .state_machine_version_arn(version)
        .weight(100)
        .build()
        .map_err(|e| failed("build alias routing", alias, e))?;
    let alias_arn = format!("{arn}:{alias}");
    let exists = clients
        .sfn
        .describe_state_machine_alias()
        .state_machine_alias_arn(&alias_arn)
        .send()
        .await
        .is_ok();
    if exists {
        clients
            .sfn
            .update_state_machine_alias()
            .state_machine_alias_arn(&alias_arn)
            .routing_configuration(routing)
            .send()
            .await
            .map_err(|e| failed("UpdateStateMachineAlias", &alias_arn, e))?;
    } else {
        clients
            .sfn
            .create_state_machine_alias()
            .name(alias)
            .routing_configuration(routing)
            .send()
            .await
            .map_err(|e| failed("CreateStateMachineAlias", &alias_arn, e))?;
    }
    Ok(())
}

fn clients_region(clients: &Clients) -> String {
    clients
        .sfn
        .config()
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string())
}

/// One way a live resource differs from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub resource: String,
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} is {} but the template says {}",
            self.resource, self.what, self.actual, self.expected
        )
    }
}

fn compare<T: std::fmt::Debug + PartialEq>(
    differences: &mut Vec<Difference>,
    resource: &str,
    what: &str,
    expected: T,
    actual: T,
) {
    if expected != actual {
        differences.push(Difference {
            resource: resource.to_owned(),
            what: what.to_owned(),
            expected: format!("{expected:?}"),
            actual: format!("{actual:?}"),
        });
    }
}

/// Reads every resource back and lists how each differs from the template (none: empty).
pub async fn verify(
    clients: &Clients,
    resources: &LocalResources,
) -> Result<Vec<Difference>, DeployError> {
    let mut differences = Vec::new();
    for secret in &resources.secrets {
        let described = clients
            .secrets
            .describe_secret()
            .secret_id(&secret.name)
            .send()
            .await;
        if let Err(error) = described {
            differences.push(Difference {
                resource: secret.logical_id.clone(),
                what: "secret".into(),
                expected: "exists".into(),
                actual: format!(
                    "missing ({})",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&error)
                ),
            });
        }
    }
    for table in &resources.tables {
        let description = clients
            .dynamodb
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| failed("DescribeTable", &table.name, e))?
            .table
            .unwrap_or_else(|| TableDescription::builder().build());
        let ttl = clients
            .dynamodb
            .describe_time_to_live()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| failed("DescribeTimeToLive", &table.name, e))?
            .time_to_live_description
            .filter(|d| {
                d.time_to_live_status()
                    .is_some_and(|s| s.as_str() == "ENABLED")
            })
            .and_then(|d| d.attribute_name);
        differences.extend(compare_table(table, &description, ttl));
    }
    for queue in &resources.queues {
        let url = clients
            .sqs
            .get_queue_url()
            .queue_name(&queue.name)
            .send()
            .await
            .map_err(|e| failed("GetQueueUrl", &queue.name, e))?
            .queue_url
            .unwrap_or_default();
        let attributes = clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| failed("GetQueueAttributes", &queue.name, e))?
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.as_str().to_owned(), value))
            .collect();
        differences.extend(compare_queue(queue, &attributes));
    }
    for machine in &resources.state_machines {
        let arn = crate::template::state_machine_arn(&resources.region, &machine.name);
        let description = clients
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .map_err(|e| failed("DescribeStateMachine", &machine.name, e))?;
        differences.extend(compare_state_machine(
            machine,
            &description.definition,
            description.r#type.as_str(),
        ));
    }
    Ok(differences)
}

/// How a described table differs from its template.
pub fn compare_table(
    spec: &TableSpec,
    table: &TableDescription,
    ttl_attribute: Option<String>,
) -> Vec<Difference> {
    let keys = |schema: &[KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let mut differences = Vec::new();
    let name = &spec.logical_id;
    compare(
        &mut differences,
        name,
        "key schema",
        spec.key_schema.clone(),
        keys(table.key_schema()),
    );
    let attributes: BTreeMap<String, String> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    compare(
        &mut differences,
        name,
        "attribute definitions",
        spec.attributes.clone(),
        attributes,
    );
    let indexes: BTreeMap<String, (Vec<(String, String)>, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            (
                index.index_name().unwrap_or_default().to_owned(),
                (
                    keys(index.key_schema()),
                    index
                        .projection()
                        .and_then(|p| p.projection_type())
                        .map_or("", |p| p.as_str())
                        .to_owned(),
                ),
            )
        })
        .collect();
    compare(
        &mut differences,
        name,
        "global secondary indexes",
        spec.indexes.clone(),
        indexes,
    );
    let billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map_or("PROVISIONED", |b| b.as_str())
        .to_owned();
    compare(
        &mut differences,
        name,
        "billing mode",
        spec.billing_mode.clone(),
        billing,
    );
    compare(
        &mut differences,
        name,
        "time-to-live attribute",
        spec.ttl_attribute.clone(),
        ttl_attribute,
    );
    let stream = table
        .stream_specification()
        .filter(|stream| stream.stream_enabled())
        .and_then(|stream| stream.stream_view_type())
        .map(|view| view.as_str().to_owned());
    compare(
        &mut differences,
        name,
        "stream view type",
        spec.stream_view_type.clone(),
        stream,
    );
    differences
}

/// How a queue's attributes differ from its template. A redrive policy is compared as
/// data (target and receive count), not as text.
pub fn compare_queue(spec: &QueueSpec, attributes: &HashMap<String, String>) -> Vec<Difference> {
    let mut differences = Vec::new();
    for (name, expected) in &spec.attributes {
        let actual = attributes.get(name).cloned();
        if name == "RedrivePolicy" {
            compare(
                &mut differences,
                &spec.logical_id,
                name,
                Some(redrive(expected)),
                actual.as_deref().map(redrive),
            );
        } else {
            compare(
                &mut differences,
                &spec.logical_id,
                name,
                Some(expected.clone()),
                actual,
            );
        }
    }
    if !spec.attributes.contains_key("RedrivePolicy") {
        compare(
            &mut differences,
            &spec.logical_id,
            "RedrivePolicy",
            None,
            attributes.get("RedrivePolicy").map(|text| redrive(text)),
        );
    }
    differences
}

fn redrive(text: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let field = |name: &str| match value.get(name) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    (field("deadLetterTargetArn"), field("maxReceiveCount"))
}

/// How a state machine differs from its template (definition compared as JSON).
pub fn compare_state_machine(
    spec: &StateMachineSpec,
    definition: &str,
    kind: &str,
) -> Vec<Difference> {
    let mut differences = Vec::new();
    let actual: serde_json::Value = serde_json::from_str(definition).unwrap_or_default();
    if actual != spec.definition {
        differences.push(Difference {
            resource: spec.logical_id.clone(),
            what: "definition".into(),
            expected: "the ASL file with its substitutions".into(),
            actual: "a different definition (redeploy with `make down up`)".into(),
        });
    }
    compare(
        &mut differences,
        &spec.logical_id,
        "type",
        spec.kind.as_str(),
        kind,
    );
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_spec(redrive: Option<&str>) -> QueueSpec {
        let mut attributes = BTreeMap::from([("VisibilityTimeout".to_owned(), "60".to_owned())]);
        if let Some(redrive) = redrive {
            attributes.insert("RedrivePolicy".into(), redrive.into());
        }
        QueueSpec {
            logical_id: "Work".into(),
            name: "Work".into(),
            attributes,
            dead_letter_queue: redrive.map(|_| "Dlq".to_owned()),
        }
    }

    #[test]
    fn a_redrive_policy_with_another_receive_count_is_a_difference() {
        let spec = queue_spec(Some(
            r#"{"deadLetterTargetArn":"arn:dlq","maxReceiveCount":3}"#,
        ));
        let live = HashMap::from([
            ("VisibilityTimeout".to_owned(), "60".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                r#"{"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": "5"}"#.to_owned(),
            ),
        ]);
        let differences = compare_queue(&spec, &live);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].what, "RedrivePolicy");
    }

    #[test]
    fn the_same_redrive_policy_written_differently_is_no_difference() {
        let spec = queue_spec(Some(
            r#"{"deadLetterTargetArn":"arn:dlq","maxReceiveCount":3}"#,
        ));
        let live = HashMap::from([
            ("VisibilityTimeout".to_owned(), "60".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                r#"{"maxReceiveCount": "3", "deadLetterTargetArn": "arn:dlq"}"#.to_owned(),
            ),
        ]);
        assert_eq!(compare_queue(&spec, &live), []);
    }

    #[test]
    fn a_live_redrive_policy_the_template_lacks_is_a_difference() {
        let live = HashMap::from([
            ("VisibilityTimeout".to_owned(), "60".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                r#"{"deadLetterTargetArn":"arn:dlq","maxReceiveCount":1}"#.to_owned(),
            ),
        ]);
        let differences = compare_queue(&queue_spec(None), &live);
        assert_eq!(differences.len(), 1);
    }

    #[test]
    fn a_missing_index_another_key_and_a_missing_stream_are_differences() -> Result<(), DeployError>
    {
        let spec = TableSpec {
            logical_id: "T".into(),
            name: "T".into(),
            billing_mode: "PAY_PER_REQUEST".into(),
            key_schema: vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())],
            attributes: BTreeMap::from([("pk".into(), "S".into()), ("sk".into(), "S".into())]),
            indexes: BTreeMap::from([(
                "by-status".into(),
                (vec![("pk".into(), "HASH".into())], "ALL".into()),
            )]),
            ttl_attribute: Some("expires_at".into()),
            stream_view_type: Some("NEW_IMAGE".into()),
        };
        let live = TableDescription::builder()
            .set_key_schema(Some(key_schema(&[("pk".into(), "HASH".into())])?))
            .build();
        let what: Vec<_> = compare_table(&spec, &live, Some("expires_at".into()))
            .into_iter()
            .map(|d| d.what)
            .collect();
        assert_eq!(
            what,
            [
                "key schema",
                "attribute definitions",
                "global secondary indexes",
                "billing mode",
                "stream view type"
            ]
        );
        Ok(())
    }

    #[test]
    fn a_changed_definition_is_a_difference() {
        let spec = StateMachineSpec {
            logical_id: "M".into(),
            name: "M".into(),
            kind: "STANDARD".into(),
            definition: serde_json::json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
            published_alias: None,
        };
        let same = r#"{"States": {"A": {"Type": "Succeed"}}, "StartAt": "A"}"#;
        assert_eq!(compare_state_machine(&spec, same, "STANDARD"), []);
        let changed = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#;
        assert_eq!(compare_state_machine(&spec, changed, "STANDARD").len(), 1);
    }
}
