//! Reads `template.yaml` (SAM) and resolves what the local stack needs from it: the
//! tables, queues and state machines to create, each function's binary and environment,
//! and the functions' `Type: DynamoDB` events that the stream poller imitates. Intrinsic
//! functions are resolved to the names the local stack gives resources, so the very file
//! that deploys to AWS describes the local resources.

use crate::stream_poller::filter::Pattern;
use serde_json::{json, Map, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The account id the AWS emulator uses.
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// The stack name the local stack stands for (used by `${AWS::StackName}`).
pub const LOCAL_STACK_NAME: &str = "terminal-orders";

/// The template cannot be read or uses something the local stack cannot resolve.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("template: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(message.into())
}

/// A DynamoDB table as the template declares it, in the shape DescribeTable reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    pub billing_mode: String,
    /// `(attribute, HASH|RANGE)` in order.
    pub key_schema: Vec<(String, String)>,
    /// attribute → type.
    pub attributes: BTreeMap<String, String>,
    /// index name → (key schema, projection type).
    pub indexes: BTreeMap<String, (Vec<(String, String)>, String)>,
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType` (`NEW_IMAGE`...), if the table has a stream.
    pub stream_view_type: Option<String>,
}

/// An SQS queue as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub name: String,
    /// Attributes as SetQueueAttributes takes them (RedrivePolicy as its JSON text).
    pub attributes: BTreeMap<String, String>,
    /// The logical id of the dead-letter queue, if the queue has a redrive policy.
    pub dead_letter_queue: Option<String>,
}

/// A state machine with its definition, substitutions filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineSpec {
    pub logical_id: String,
    pub name: String,
    pub kind: String,
    pub definition: Json,
    /// `AutoPublishAlias`: every deploy publishes a version and points this alias at it.
    pub published_alias: Option<String>,
}

/// A function: the cargo binary that implements it and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    /// The function's `Timeout` (or the Globals' one), in seconds; Lambda's default, 3,
    /// when neither says.
    pub timeout_seconds: u64,
    /// The function's `MemorySize` (or the Globals' one), in MB; Lambda's default, 128.
    pub memory_mb: u64,
}

/// A function's `Type: DynamoDB` event: the event source mapping through which Lambda
/// reads a table's stream and invokes the function with its records. The local stack's
/// stream poller does the same on moto ([`crate::stream_poller`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEventSpec {
    /// `<function logical id>.<event name>`, e.g. `PublishEventsFunction.Outbox`.
    pub name: String,
    /// The binary that implements the function: its name on the local stack.
    pub function: String,
    /// The function's timeout: an invocation that has not answered by then failed.
    pub function_timeout_seconds: u64,
    /// The table whose stream is read (from `Stream: !GetAtt <table>.StreamArn`).
    pub table: String,
    /// Where reading starts in the shards open when polling starts (`StartingPosition`);
    /// shards that appear later are read from their start.
    pub starting_position: StartingPosition,
    /// At most this many records per invocation (`BatchSize`, default 100).
    pub batch_size: usize,
    /// `MaximumRetryAttempts`: how often a batch the function failed is retried before it
    /// is discarded; `None` (`-1`, the default) retries until the function succeeds.
    pub maximum_retry_attempts: Option<u32>,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: the function's
    /// `batchItemFailures` answer says from which record to retry.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria.Filters`: a record is delivered if one of them matches it (all
    /// records when there are none); the others are skipped.
    pub filters: Vec<Pattern>,
}

/// An event source mapping's `StartingPosition` on a DynamoDB stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record the shard still holds.
    TrimHorizon,
    /// Only records written after polling started.
    Latest,
}

impl StartingPosition {
    /// The `ShardIteratorType` of GetShardIterator that starts there.
    pub fn iterator_type(self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
        }
    }
}

/// The properties of a `Type: DynamoDB` event the local stream poller accepts only at the
/// value that changes nothing (it does not implement them), with that value.
const STREAM_EVENT_DEFAULTS: [(&str, &str); 4] = [
    ("MaximumBatchingWindowInSeconds", "0"),
    ("BisectBatchOnFunctionError", "false"),
    ("MaximumRecordAgeInSeconds", "-1"),
    ("ParallelizationFactor", "1"),
];

/// An EventBridge event bus (the order events), under the name the template gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBusSpec {
    pub logical_id: String,
    pub name: String,
}

/// The ARN of the event bus `name`.
pub fn event_bus_arn(region: &str, name: &str) -> String {
    format!("arn:aws:events:{region}:{LOCAL_ACCOUNT}:event-bus/{name}")
}

/// A Secrets Manager secret. Locally it is created under its logical id with a fixed
/// development value ([`local_secret_value`]); on AWS CloudFormation generates the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub logical_id: String,
    pub name: String,
    pub description: String,
}

/// The development value the local stack gives the secret `logical_id` (never used on
/// AWS, where the template has CloudFormation generate a random one).
pub fn local_secret_value(logical_id: &str) -> String {
    format!("local-development-value-of-{logical_id}")
}

/// Everything the local stack creates, resolved for one region.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResources {
    pub region: String,
    pub secrets: Vec<SecretSpec>,
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub state_machines: Vec<StateMachineSpec>,
    pub functions: Vec<FunctionSpec>,
    pub event_buses: Vec<EventBusSpec>,
    /// The functions' `Type: DynamoDB` events that are enabled.
    pub stream_events: Vec<StreamEventSpec>,
}

impl LocalResources {
    /// Reads `template` (and the definition files it names, relative to it) and resolves
    /// every resource for `region`, reached through the emulator at `endpoint`.
    ///
    /// `parameters` gives the template's Parameters their local values; a parameter it
    /// does not name takes its Default (see [`local_parameters`]).
    pub fn load(
        template: &Path,
        region: &str,
        endpoint: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<LocalResources, TemplateError> {
        let text = std::fs::read_to_string(template).map_err(|source| TemplateError::Read {
            path: template.to_owned(),
            source,
        })?;
        let yaml: Yaml = serde_yaml::from_str(&text).map_err(|source| TemplateError::Yaml {
            path: template.to_owned(),
            source,
        })?;
        let base = template.parent().unwrap_or(Path::new("."));
        Template::new(yaml, region, endpoint, parameters)?.resources(base)
    }

    /// The environment every local function gets: the union of what the template gives
    /// each. Two functions that need different values for one variable cannot share a
    /// local Lambda emulator, so that is an error.
    pub fn function_environment(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        for function in &self.functions {
            for (name, value) in &function.environment {
                match merged.get(name) {
                    Some(existing) if existing != value => {
                        return Err(invalid(format!(
                            "functions disagree on environment variable {name} ({existing:?} vs {value:?}); the local stack serves all functions with one environment"
                        )))
                    }
                    _ => {
                        merged.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        Ok(merged)
    }

    /// What the local Lambda sandbox reads as `LOCAL_SANDBOX_TIMEOUTS`: every function's
    /// timeout, `binary:seconds,...`.
    pub fn sandbox_timeouts(&self) -> String {
        self.functions
            .iter()
            .map(|f| format!("{}:{}", f.binary, f.timeout_seconds))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The development value of the secret whose id (its local name) the functions'
    /// environment variable `variable` holds, e.g. `COURIER_WEBHOOK_SECRET_ID`.
    pub fn secret_value_named_by(&self, variable: &str) -> Result<String, TemplateError> {
        let environment = self.function_environment()?;
        let name = environment.get(variable).ok_or_else(|| {
            invalid(format!(
                "no function has the environment variable {variable}"
            ))
        })?;
        self.secrets
            .iter()
            .find(|secret| &secret.name == name)
            .map(|secret| local_secret_value(&secret.logical_id))
            .ok_or_else(|| {
                invalid(format!(
                    "{variable} names {name:?}, which is not an AWS::SecretsManager::Secret of the template"
                ))
            })
    }

    /// The local ARN of a state machine by logical id.
    pub fn state_machine_arn(&self, logical_id: &str) -> Option<String> {
        self.state_machines
            .iter()
            .find(|m| m.logical_id == logical_id)
            .map(|m| state_machine_arn(&self.region, &m.name))
    }
}

/// The local values of the template's Parameters: the partner APIs are served by the
/// partner simulator at `partner_simulator_url`, and the workflow's waits are short so
/// tests see outages and lost parcels in seconds. (Secrets are resources, not parameters:
/// see [`SecretSpec`].)
pub fn local_parameters(partner_simulator_url: &str) -> BTreeMap<String, String> {
    let base = partner_simulator_url.trim_end_matches('/');
    let partner = |path: &str| format!("{base}/{path}");
    BTreeMap::from([
        ("WarehouseApiUrl".to_owned(), partner("warehouse")),
        ("PaymentsApiUrl".to_owned(), partner("payments")),
        ("TerminalsApiUrl".to_owned(), partner("terminals")),
        ("CourierApiUrl".to_owned(), partner("courier")),
        ("NotificationsApiUrl".to_owned(), partner("notifications")),
        ("OutageWaitSeconds".to_owned(), "2".to_owned()),
        ("DeliveryTimeoutSeconds".to_owned(), "60".to_owned()),
        ("OutageWaitsAllowed".to_owned(), "30".to_owned()),
    ])
}

pub fn table_arn(region: &str, name: &str) -> String {
    format!("arn:aws:dynamodb:{region}:{LOCAL_ACCOUNT}:table/{name}")
}

/// The table a stream ARN belongs to (`arn:aws:dynamodb:...:table/<name>/stream/<label>`).
pub fn stream_table(stream_arn: &str) -> Option<&str> {
    let (_, after) = stream_arn.split_once(":table/")?;
    let (table, _) = after.split_once("/stream/")?;
    (!table.is_empty()).then_some(table)
}

pub fn state_machine_arn(region: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{LOCAL_ACCOUNT}:stateMachine:{name}")
}

pub fn queue_arn(region: &str, name: &str) -> String {
    format!("arn:aws:sqs:{region}:{LOCAL_ACCOUNT}:{name}")
}

pub fn function_arn(region: &str, binary: &str) -> String {
    format!("arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{binary}")
}

/// The URL the emulator gives a queue, given the endpoint it is reached through.
pub fn queue_url(endpoint: &str, name: &str) -> String {
    format!("{}/{LOCAL_ACCOUNT}/{name}", endpoint.trim_end_matches('/'))
}

struct Template {
    region: String,
    endpoint: String,
    resources: Map<String, Json>,
    globals_function: Json,
    /// Parameter name → its local value (override or Default); `None`: neither.
    parameters: BTreeMap<String, Option<String>>,
}

impl Template {
    fn new(
        yaml: Yaml,
        region: &str,
        endpoint: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Template, TemplateError> {
        let root = to_json(yaml)?;
        let mut parameters = BTreeMap::new();
        for (name, declaration) in root
            .get("Parameters")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let default = match declaration.get("Default") {
                None | Some(Json::Null) => None,
                Some(value) => Some(scalar(value)?),
            };
            parameters.insert(name.clone(), overrides.get(name).cloned().or(default));
        }
        let resources = root
            .get("Resources")
            .and_then(Json::as_object)
            .cloned()
            .ok_or_else(|| invalid("has no Resources"))?;
        let globals_function = root
            .pointer("/Globals/Function")
            .cloned()
            .unwrap_or(Json::Null);
        Ok(Template {
            region: region.to_owned(),
            endpoint: endpoint.to_owned(),
            resources,
            globals_function,
            parameters,
        })
    }

    fn kind(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id)?.get("Type")?.as_str()
    }

    fn properties(&self, logical_id: &str) -> &Json {
        self.resources
            .get(logical_id)
            .and_then(|r| r.get("Properties"))
            .unwrap_or(&Json::Null)
    }

    fn binary(&self, logical_id: &str) -> Result<String, TemplateError> {
        self.resources
            .get(logical_id)
            .and_then(|r| r.pointer("/Metadata/BuildProperties/Binary"))
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid(format!(
                    "function {logical_id} has no Metadata.BuildProperties.Binary: the local stack cannot tell which binary implements it"
                ))
            })
    }

    /// The value `!Ref logical_id` has locally.
    fn reference(&self, logical_id: &str) -> Result<String, TemplateError> {
        match logical_id {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT.into()),
            "AWS::StackName" => return Ok(LOCAL_STACK_NAME.into()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            _ => {}
        }
        if let Some(value) = self.parameters.get(logical_id) {
            return value.clone().ok_or_else(|| {
                invalid(format!(
                    "parameter {logical_id} has no Default and the local stack gives it no value (see local_parameters)"
                ))
            });
        }
        // SAM's `!Ref Function.Version` / `.Alias` (AutoPublishAlias): cargo lambda watch
        // serves one build of each function, so locally every version is the function.
        if let Some((function, "Version" | "Alias")) = logical_id.split_once('.') {
            if self.kind(function) == Some("AWS::Serverless::Function") {
                return Ok(function_arn(&self.region, &self.binary(function)?));
            }
        }
        // The alias SAM generates for a state machine with AutoPublishAlias
        // (`<id>Alias<name>`); the local stack creates it too (see deploy.rs).
        if let Some((machine, alias)) = self.published_alias_of(logical_id) {
            return Ok(format!(
                "{}:{alias}",
                state_machine_arn(&self.region, machine)
            ));
        }
        match self.kind(logical_id) {
            Some("AWS::DynamoDB::Table") => Ok(logical_id.to_owned()),
            Some("AWS::SQS::Queue") => Ok(queue_url(&self.endpoint, logical_id)),
            Some("AWS::Serverless::StateMachine") => {
                Ok(state_machine_arn(&self.region, logical_id))
            }
            Some("AWS::Serverless::Function") => self.binary(logical_id),
            Some("AWS::Logs::LogGroup") => Ok(logical_id.to_owned()),
            // Functions take a secret's ARN or name alike; locally the name is the id.
            Some("AWS::SecretsManager::Secret") => Ok(logical_id.to_owned()),
            Some("AWS::Events::EventBus") => self.event_bus_name(logical_id),
            Some(other) => Err(invalid(format!(
                "!Ref {logical_id} ({other}) has no local value"
            ))),
            None => Err(invalid(format!("!Ref {logical_id}: no such resource"))),
        }
    }

    /// The state machine and alias name of a SAM-generated state machine alias resource.
    fn published_alias_of<'a>(&self, logical_id: &'a str) -> Option<(&'a str, &'a str)> {
        let (machine, alias) = logical_id.split_once("Alias")?;
        let declared = self
            .properties(machine)
            .get("AutoPublishAlias")
            .and_then(Json::as_str);
        (self.kind(machine) == Some("AWS::Serverless::StateMachine") && declared == Some(alias))
            .then_some((machine, alias))
    }

    /// The value `!GetAtt logical_id.attribute` has locally.
    fn attribute(&self, logical_id: &str, attribute: &str) -> Result<String, TemplateError> {
        let region = &self.region;
        match (self.kind(logical_id), attribute) {
            (Some("AWS::Serverless::Function"), "Arn") => {
                Ok(function_arn(region, &self.binary(logical_id)?))
            }
            (Some("AWS::SQS::Queue"), "Arn") => Ok(queue_arn(region, logical_id)),
            (Some("AWS::SQS::Queue"), "QueueName") => Ok(logical_id.to_owned()),
            (Some("AWS::DynamoDB::Table"), "Arn") => Ok(table_arn(region, logical_id)),
            // A stream's ARN ends in a label DynamoDB gives it when the table is created, so
            // it is not known before. Locally it is the ARN that names any stream of the
            // table (as an IAM policy does); the stream poller reads the table's
            // LatestStreamArn.
            (Some("AWS::DynamoDB::Table"), "StreamArn") => {
                let stream = self
                    .properties(logical_id)
                    .pointer("/StreamSpecification/StreamViewType");
                match stream {
                    Some(_) => Ok(format!("{}/stream/*", table_arn(region, logical_id))),
                    None => Err(invalid(format!(
                        "!GetAtt {logical_id}.StreamArn: the table has no StreamSpecification"
                    ))),
                }
            }
            (Some("AWS::Serverless::StateMachine"), "Arn") => {
                Ok(state_machine_arn(region, logical_id))
            }
            (Some("AWS::Serverless::StateMachine"), "Name") => Ok(logical_id.to_owned()),
            (Some("AWS::Events::EventBus"), "Arn") => {
                Ok(event_bus_arn(region, &self.event_bus_name(logical_id)?))
            }
            (Some("AWS::Logs::LogGroup"), "Arn") => Ok(format!(
                "arn:aws:logs:{region}:{LOCAL_ACCOUNT}:log-group:{logical_id}:*"
            )),
            (Some(kind), _) => Err(invalid(format!(
                "!GetAtt {logical_id}.{attribute} ({kind}) has no local value"
            ))),
            (None, _) => Err(invalid(format!(
                "!GetAtt {logical_id}.{attribute}: no such resource"
            ))),
        }
    }

    /// Resolves intrinsic functions in `value` to plain JSON.
    fn resolve(&self, value: &Json) -> Result<Json, TemplateError> {
        if let Some(object) = value.as_object() {
            if object.len() == 1 {
                if let Some((name, argument)) = object.iter().next() {
                    match name.as_str() {
                        "Ref" => {
                            let id = argument
                                .as_str()
                                .ok_or_else(|| invalid("Ref takes a logical id"))?;
                            return self.reference(id).map(Json::String);
                        }
                        "Fn::GetAtt" => {
                            let (id, attribute) = match argument {
                                Json::String(text) => text
                                    .split_once('.')
                                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                                    .ok_or_else(|| invalid(format!("GetAtt {text}")))?,
                                Json::Array(parts) => match parts.as_slice() {
                                    [Json::String(a), Json::String(b)] => (a.clone(), b.clone()),
                                    _ => return Err(invalid("GetAtt takes [id, attribute]")),
                                },
                                _ => return Err(invalid("GetAtt takes id.attribute")),
                            };
                            return self.attribute(&id, &attribute).map(Json::String);
                        }
                        "Fn::Sub" => return self.substitute(argument).map(Json::String),
                        other if other.starts_with("Fn::") => {
                            return Err(invalid(format!(
                                "{other} is not supported by the local stack"
                            )))
                        }
                        _ => {}
                    }
                }
            }
            let mut resolved = Map::new();
            for (key, item) in object {
                resolved.insert(key.clone(), self.resolve(item)?);
            }
            return Ok(Json::Object(resolved));
        }
        if let Some(items) = value.as_array() {
            return items.iter().map(|item| self.resolve(item)).collect();
        }
        Ok(value.clone())
    }

    fn substitute(&self, argument: &Json) -> Result<String, TemplateError> {
        let (text, variables) = match argument {
            Json::String(text) => (text.clone(), Map::new()),
            Json::Array(parts) => match parts.as_slice() {
                [Json::String(text), Json::Object(vars)] => (text.clone(), vars.clone()),
                _ => return Err(invalid("Sub takes a string or [string, variables]")),
            },
            _ => return Err(invalid("Sub takes a string")),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(format!("unclosed ${{ in Sub {text:?}")))?;
            let name = &after[..end];
            let value = if let Some(literal) = name.strip_prefix('!') {
                format!("${{{literal}}}")
            } else if let Some(value) = variables.get(name) {
                scalar(&self.resolve(value)?)?
            } else if let Some((id, attribute)) = name.split_once('.') {
                self.attribute(id, attribute)?
            } else {
                self.reference(name)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resources(&self, base: &Path) -> Result<LocalResources, TemplateError> {
        let mut local = LocalResources {
            region: self.region.clone(),
            secrets: Vec::new(),
            tables: Vec::new(),
            queues: Vec::new(),
            state_machines: Vec::new(),
            functions: Vec::new(),
            event_buses: Vec::new(),
            stream_events: Vec::new(),
        };
        for (logical_id, resource) in &self.resources {
            match resource.get("Type").and_then(Json::as_str) {
                Some("AWS::SecretsManager::Secret") => local.secrets.push(SecretSpec {
                    logical_id: logical_id.clone(),
                    name: logical_id.clone(),
                    description: text_at(self.properties(logical_id), "Description"),
                }),
                Some("AWS::DynamoDB::Table") => local.tables.push(self.table(logical_id)?),
                Some("AWS::SQS::Queue") => local.queues.push(self.queue(logical_id)?),
                Some("AWS::Serverless::StateMachine") => local
                    .state_machines
                    .push(self.state_machine(logical_id, base)?),
                Some("AWS::Serverless::Function") => {
                    let function = self.function(logical_id)?;
                    local.stream_events.extend(self.stream_events(&function)?);
                    local.functions.push(function);
                }
                Some("AWS::Events::EventBus") => local.event_buses.push(EventBusSpec {
                    logical_id: logical_id.clone(),
                    name: self.event_bus_name(logical_id)?,
                }),
                _ => {}
            }
        }
        // Raw event source mappings name their function by logical id (or its alias
        // `live`): read once every function is known.
        for (logical_id, resource) in &self.resources {
            if resource.get("Type").and_then(Json::as_str)
                == Some("AWS::Lambda::EventSourceMapping")
            {
                if let Some(event) = self.event_source_mapping(logical_id, &local.functions)? {
                    local.stream_events.push(event);
                }
            }
        }
        // Dead-letter queues first: a queue's redrive policy names its DLQ's ARN.
        local.queues.sort_by_key(|q| q.dead_letter_queue.is_some());
        for event in &local.stream_events {
            let streamed = (local.tables.iter())
                .any(|table| table.name == event.table && table.stream_view_type.is_some());
            if !streamed {
                return Err(invalid(format!(
                    "{}: the stream of {} is not a stream of a table of the template (its StreamSpecification)",
                    event.name, event.table
                )));
            }
        }
        Ok(local)
    }

    /// An event bus's `Name` (the template must give one: it is what integrators' rules
    /// name).
    fn event_bus_name(&self, logical_id: &str) -> Result<String, TemplateError> {
        let name = self.resolve(&self.properties(logical_id)["Name"])?;
        match name.as_str() {
            Some(name) if !name.is_empty() => Ok(name.to_owned()),
            _ => Err(invalid(format!(
                "{logical_id}: an AWS::Events::EventBus needs a Name"
            ))),
        }
    }

    fn table(&self, logical_id: &str) -> Result<TableSpec, TemplateError> {
        let p = self.resolve(self.properties(logical_id))?;
        if p.get("TableName").is_some() {
            return Err(invalid(format!(
                "{logical_id}: give tables no TableName; CloudFormation names them and functions read the name from TABLE_NAME"
            )));
        }
        let keys = |schema: Option<&Json>| -> Vec<(String, String)> {
            schema
                .and_then(Json::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|k| (text_at(k, "AttributeName"), text_at(k, "KeyType")))
                        .collect()
                })
                .unwrap_or_default()
        };
        let attributes = p
            .get("AttributeDefinitions")
            .and_then(Json::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|a| (text_at(a, "AttributeName"), text_at(a, "AttributeType")))
                    .collect()
            })
            .unwrap_or_default();
        let indexes = p
            .get("GlobalSecondaryIndexes")
            .and_then(Json::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|index| {
                        (
                            text_at(index, "IndexName"),
                            (
                                keys(index.get("KeySchema")),
                                index
                                    .pointer("/Projection/ProjectionType")
                                    .and_then(Json::as_str)
                                    .unwrap_or("ALL")
                                    .to_owned(),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ttl_enabled = p
            .pointer("/TimeToLiveSpecification/Enabled")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        Ok(TableSpec {
            logical_id: logical_id.to_owned(),
            name: logical_id.to_owned(),
            billing_mode: p
                .get("BillingMode")
                .and_then(Json::as_str)
                .unwrap_or("PROVISIONED")
                .to_owned(),
            key_schema: keys(p.get("KeySchema")),
            attributes,
            indexes,
            ttl_attribute: ttl_enabled
                .then(|| {
                    p.pointer("/TimeToLiveSpecification/AttributeName")
                        .and_then(Json::as_str)
                        .map(str::to_owned)
                })
                .flatten(),
            stream_view_type: p
                .pointer("/StreamSpecification/StreamViewType")
                .and_then(Json::as_str)
                .map(str::to_owned),
        })
    }

    fn queue(&self, logical_id: &str) -> Result<QueueSpec, TemplateError> {
        let p = self.resolve(self.properties(logical_id))?;
        let mut attributes = BTreeMap::new();
        let mut dead_letter_queue = None;
        if let Some(properties) = p.as_object() {
            for (name, value) in properties {
                match name.as_str() {
                    "QueueName" | "Tags" => {}
                    "RedrivePolicy" => {
                        let target = value
                            .get("deadLetterTargetArn")
                            .and_then(Json::as_str)
                            .ok_or_else(|| {
                                invalid(format!(
                                    "{logical_id}: RedrivePolicy needs deadLetterTargetArn"
                                ))
                            })?;
                        dead_letter_queue = target.rsplit(':').next().map(str::to_owned);
                        attributes.insert(name.clone(), value.to_string());
                    }
                    _ => {
                        attributes.insert(name.clone(), scalar(value)?);
                    }
                }
            }
        }
        Ok(QueueSpec {
            logical_id: logical_id.to_owned(),
            name: logical_id.to_owned(),
            attributes,
            dead_letter_queue,
        })
    }

    fn state_machine(
        &self,
        logical_id: &str,
        base: &Path,
    ) -> Result<StateMachineSpec, TemplateError> {
        let raw = self.properties(logical_id);
        let uri = raw
            .get("DefinitionUri")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid(format!("{logical_id}: needs a DefinitionUri file")))?;
        let path = base.join(uri);
        let mut text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
            path: path.clone(),
            source,
        })?;
        let substitutions = self.resolve(
            raw.get("DefinitionSubstitutions")
                .unwrap_or(&Json::Object(Map::new())),
        )?;
        if let Some(substitutions) = substitutions.as_object() {
            for (name, value) in substitutions {
                text = text.replace(&format!("${{{name}}}"), &scalar(value)?);
            }
        }
        if let Some(start) = text.find("${") {
            let name: String = text[start..].chars().take_while(|c| *c != '}').collect();
            return Err(invalid(format!(
                "{logical_id}: {path:?} uses {name}}} but DefinitionSubstitutions does not define it",
            )));
        }
        // JSON or YAML, as the definition file may be on AWS (JSON is YAML).
        let definition = serde_yaml::from_str(&text).map_err(|source| TemplateError::Yaml {
            path: path.clone(),
            source,
        })?;
        Ok(StateMachineSpec {
            logical_id: logical_id.to_owned(),
            name: logical_id.to_owned(),
            kind: raw
                .get("Type")
                .and_then(Json::as_str)
                .unwrap_or("STANDARD")
                .to_owned(),
            definition,
            published_alias: raw
                .get("AutoPublishAlias")
                .and_then(Json::as_str)
                .map(str::to_owned),
        })
    }

    fn function(&self, logical_id: &str) -> Result<FunctionSpec, TemplateError> {
        let mut environment = BTreeMap::new();
        for source in [
            self.globals_function.pointer("/Environment/Variables"),
            self.properties(logical_id)
                .pointer("/Environment/Variables"),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(variables) = self.resolve(source)?.as_object() {
                for (name, value) in variables {
                    environment.insert(name.clone(), scalar(value)?);
                }
            }
        }
        // Lambda's defaults when neither the function nor the Globals say.
        let timeout_seconds = self.whole_number(logical_id, "Timeout", 3)?;
        let memory_mb = self.whole_number(logical_id, "MemorySize", 128)?;
        Ok(FunctionSpec {
            logical_id: logical_id.to_owned(),
            binary: self.binary(logical_id)?,
            environment,
            timeout_seconds,
            memory_mb,
        })
    }

    /// The function's enabled `Type: DynamoDB` events, each checked against what the
    /// local stream poller implements: a property it does not implement is an error
    /// unless it has the value that changes nothing.
    fn stream_events(
        &self,
        function: &FunctionSpec,
    ) -> Result<Vec<StreamEventSpec>, TemplateError> {
        let events = self
            .properties(&function.logical_id)
            .get("Events")
            .and_then(Json::as_object);
        let mut specs = Vec::new();
        for (event, declaration) in events.into_iter().flatten() {
            if declaration.get("Type").and_then(Json::as_str) != Some("DynamoDB") {
                continue;
            }
            let name = format!("{}.{event}", function.logical_id);
            let properties = self.resolve(declaration.get("Properties").unwrap_or(&Json::Null))?;
            if let Some(spec) = stream_event(&name, function, &properties, "Stream")? {
                specs.push(spec);
            }
        }
        Ok(specs)
    }

    /// A raw `AWS::Lambda::EventSourceMapping` on a table's stream, for a function of the
    /// template (`FunctionName: !Ref <Function>` or its alias `<Function>Aliaslive`): read
    /// as the function's `Type: DynamoDB` event is (`EventSourceArn` for `Stream`), its
    /// `DestinationConfig` accepted but never used (moto keeps a stream's records for
    /// good, so none expires into the destination; a difference the README names).
    /// `None` for a mapping on anything but a DynamoDB stream.
    fn event_source_mapping(
        &self,
        logical_id: &str,
        functions: &[FunctionSpec],
    ) -> Result<Option<StreamEventSpec>, TemplateError> {
        let declared = self.properties(logical_id);
        let wrong = |what: String| invalid(format!("{logical_id}: {what}"));
        let target = declared
            .get("FunctionName")
            .and_then(|f| f.get("Ref"))
            .and_then(Json::as_str)
            .ok_or_else(|| {
                wrong(
                    "FunctionName must be a !Ref of a function of the template (or its alias live)"
                        .into(),
                )
            })?;
        let function_id = target.strip_suffix("Aliaslive").unwrap_or(target);
        let function = (functions.iter())
            .find(|f| f.logical_id == function_id)
            .ok_or_else(|| {
                wrong(format!(
                    "FunctionName {target} is no function of the template"
                ))
            })?;
        let mut properties = declared.clone();
        if let Some(map) = properties.as_object_mut() {
            map.remove("FunctionName");
            map.remove("DestinationConfig");
        }
        let properties = self.resolve(&properties)?;
        let on_a_stream = (properties.get("EventSourceArn").and_then(Json::as_str))
            .is_some_and(|arn| stream_table(arn).is_some());
        if !on_a_stream {
            return Ok(None);
        }
        stream_event(logical_id, function, &properties, "EventSourceArn")
    }

    /// A whole-number property of the function, or of the Globals, or `default`.
    fn whole_number(
        &self,
        logical_id: &str,
        name: &str,
        default: u64,
    ) -> Result<u64, TemplateError> {
        let value = self
            .properties(logical_id)
            .get(name)
            .or_else(|| self.globals_function.get(name));
        let Some(value) = value else {
            return Ok(default);
        };
        let text = scalar(&self.resolve(value)?)?;
        text.parse().map_err(|_| {
            invalid(format!(
                "{logical_id}: {name} {text:?} is not a whole number"
            ))
        })
    }
}

fn text_at(value: &Json, key: &str) -> String {
    value
        .get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A resolved scalar as the string AWS APIs take.
fn scalar(value: &Json) -> Result<String, TemplateError> {
    match value {
        Json::String(text) => Ok(text.clone()),
        Json::Number(number) => Ok(number.to_string()),
        Json::Bool(flag) => Ok(flag.to_string()),
        other => Err(invalid(format!("expected a scalar, found {other}"))),
    }
}

/// YAML with CloudFormation's short tags (`!Ref x`) to JSON in long form
/// (`{"Ref": "x"}`).
fn to_json(yaml: Yaml) -> Result<Json, TemplateError> {
    Ok(match yaml {
        Yaml::Null => Json::Null,
        Yaml::Bool(flag) => Json::Bool(flag),
        Yaml::Number(number) => {
            if let Some(n) = number.as_i64() {
                json!(n)
            } else if let Some(n) = number.as_u64() {
                json!(n)
            } else {
                json!(number.as_f64().unwrap_or_default())
            }
        }
        Yaml::String(text) => Json::String(text),
        Yaml::Sequence(items) => {
            Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(text) => text,
                    other => serde_yaml::to_string(&other)
                        .map(|s| s.trim().to_owned())
                        .unwrap_or_default(),
                };
                object.insert(key, to_json(value)?);
            }
            Json::Object(object)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                other => format!("Fn::{other}"),
            };
            let mut value = to_json(tagged.value)?;
            if long == "Fn::GetAtt" {
                if let Json::String(text) = &value {
                    if let Some((id, attribute)) = text.split_once('.') {
                        value = json!([id, attribute]);
                    }
                }
            }
            json!({ long: value })
        }
    })
}

/// One stream event source (a function's `Type: DynamoDB` event, or a raw event source
/// mapping, whose stream ARN is the property `stream_key`), checked against what the
/// local stream poller implements: a property it does not implement is an error unless
/// it has the value that changes nothing. `None` for a disabled one.
fn stream_event(
    name: &str,
    function: &FunctionSpec,
    properties: &Json,
    stream_key: &str,
) -> Result<Option<StreamEventSpec>, TemplateError> {
    let wrong = |what: String| invalid(format!("{name}: {what}"));
    let properties = properties
        .as_object()
        .ok_or_else(|| wrong("a DynamoDB event needs Properties".into()))?;
    let mut spec = StreamEventSpec {
        name: name.to_owned(),
        function: function.binary.clone(),
        function_timeout_seconds: function.timeout_seconds,
        table: String::new(),
        starting_position: StartingPosition::TrimHorizon,
        batch_size: 100,
        maximum_retry_attempts: None,
        report_batch_item_failures: false,
        filters: Vec::new(),
    };
    let mut enabled = true;
    let mut starting_position = None;
    for (property, value) in properties {
        let text = || scalar(value).map_err(|e| wrong(format!("{property}: {e}")));
        match property.as_str() {
            key if key == stream_key => {
                let arn = text()?;
                let table = stream_table(&arn)
                    .ok_or_else(|| wrong(format!("Stream {arn:?} is not a table's stream ARN")))?;
                spec.table = table.to_owned();
            }
            "StartingPosition" => {
                starting_position = Some(match text()?.as_str() {
                    "TRIM_HORIZON" => StartingPosition::TrimHorizon,
                    "LATEST" => StartingPosition::Latest,
                    other => return Err(wrong(format!("StartingPosition {other:?}: a DynamoDB stream starts at TRIM_HORIZON or LATEST"))),
                });
            }
            "BatchSize" => {
                spec.batch_size = text()?
                    .parse()
                    .ok()
                    .filter(|size| (1..=10_000).contains(size))
                    .ok_or_else(|| wrong(format!("BatchSize {value} is not 1 to 10000")))?;
            }
            "MaximumRetryAttempts" => {
                spec.maximum_retry_attempts = match text()?.parse::<i64>() {
                    Ok(-1) => None,
                    Ok(attempts @ 0..=10_000) => u32::try_from(attempts).ok(),
                    _ => {
                        return Err(wrong(format!(
                            "MaximumRetryAttempts {value} is not -1 or 0 to 10000"
                        )))
                    }
                };
            }
            "FunctionResponseTypes" => {
                for kind in value.as_array().into_iter().flatten() {
                    match kind.as_str() {
                        Some("ReportBatchItemFailures") => spec.report_batch_item_failures = true,
                        _ => {
                            return Err(wrong(format!(
                                "FunctionResponseTypes: {kind} is not ReportBatchItemFailures"
                            )))
                        }
                    }
                }
            }
            "FilterCriteria" => {
                let filters = value.get("Filters").and_then(Json::as_array);
                for filter in filters.into_iter().flatten() {
                    let pattern =
                        filter
                            .get("Pattern")
                            .and_then(Json::as_str)
                            .ok_or_else(|| {
                                wrong(
                                    "every filter of FilterCriteria needs a Pattern (a JSON text)"
                                        .into(),
                                )
                            })?;
                    let pattern = Pattern::parse(pattern)
                        .map_err(|e| wrong(format!("filter pattern {pattern}: {e}")))?;
                    spec.filters.push(pattern);
                }
            }
            "Enabled" => enabled = text()? != "false",
            other => {
                let default = STREAM_EVENT_DEFAULTS
                    .iter()
                    .find(|(name, _)| *name == other);
                match default {
                    Some((_, default)) if text()? == *default => {}
                    Some((_, default)) => {
                        return Err(wrong(format!(
                            "{other} {value}: the local stream poller implements only {default}"
                        )))
                    }
                    None => {
                        return Err(wrong(format!(
                            "{other} is not implemented by the local stream poller"
                        )))
                    }
                }
            }
        }
    }
    spec.starting_position = starting_position
        .ok_or_else(|| wrong("a DynamoDB event needs a StartingPosition".into()))?;
    if spec.table.is_empty() {
        return Err(wrong("a DynamoDB event needs a Stream".into()));
    }
    Ok(enabled.then_some(spec))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn template(text: &str) -> Template {
        let yaml: Yaml = serde_yaml::from_str(text).unwrap_or(Yaml::Null);
        let overrides = BTreeMap::from([("Given".to_owned(), "local".to_owned())]);
        match Template::new(yaml, "eu-west-1", "http://127.0.0.1:4566", &overrides) {
            Ok(template) => template,
            Err(error) => panic!("{error}"),
        }
    }

    const FUNCTION: &str = "
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          QUEUE_ARN: !GetAtt Queue.Arn
          WHERE: !Sub '${AWS::Region}/${Worker.Arn}/${!Literal}'
";

    #[test]
    fn short_tags_resolve_to_local_names() -> Result<(), TemplateError> {
        let t = template(FUNCTION);
        let worker = t.function("Worker")?;
        assert_eq!(worker.binary, "worker");
        assert_eq!(
            worker.environment.get("QUEUE_ARN").map(String::as_str),
            Some("arn:aws:sqs:eu-west-1:123456789012:Queue")
        );
        assert_eq!(
            worker.environment.get("WHERE").map(String::as_str),
            Some("eu-west-1/arn:aws:lambda:eu-west-1:123456789012:function:worker/${Literal}")
        );
        Ok(())
    }

    #[test]
    fn parameters_take_their_local_value_or_default_and_one_with_neither_is_named() {
        let t = template(
            "Parameters:\n  Given: { Type: String, Default: aws }\n  Defaulted: { Type: Number, Default: 30 }\n  Secret: { Type: String, NoEcho: true }\nResources: {}\n",
        );
        assert_eq!(t.reference("Given").ok(), Some("local".to_owned()));
        assert_eq!(t.reference("Defaulted").ok(), Some("30".to_owned()));
        assert_eq!(
            t.reference("Secret").map_err(|e| e.to_string()),
            Err("template: parameter Secret has no Default and the local stack gives it no value (see local_parameters)".to_owned())
        );
    }

    #[test]
    fn an_unsupported_intrinsic_is_named_in_the_error() {
        let t = template(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: { BuildProperties: { Binary: f } }\n    Properties:\n      Environment: { Variables: { X: !If [c, a, b] } }\n",
        );
        let error = t.function("F").map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err("template: Fn::If is not supported by the local stack".to_owned())
        );
    }

    #[test]
    fn a_queue_redrive_policy_names_its_dead_letter_queue() -> Result<(), TemplateError> {
        let t = template(
            "Resources:\n  Dlq:\n    Type: AWS::SQS::Queue\n  Work:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: 30\n      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3 }\n",
        );
        let resources = t.resources(Path::new("."))?;
        let names: Vec<_> = resources.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["Dlq", "Work"]);
        let work = &resources.queues[1];
        assert_eq!(work.dead_letter_queue.as_deref(), Some("Dlq"));
        assert_eq!(
            work.attributes.get("RedrivePolicy").map(String::as_str),
            Some(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:Dlq","maxReceiveCount":3}"#
            )
        );
        assert_eq!(
            work.attributes.get("VisibilityTimeout").map(String::as_str),
            Some("30")
        );
        Ok(())
    }

    /// The outbox's table and publisher as template.yaml declares them.
    pub(crate) const OUTBOX: &str = r#"
Resources:
  OrdersTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
        - { AttributeName: sk, AttributeType: S }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
        - { AttributeName: sk, KeyType: RANGE }
      StreamSpecification:
        StreamViewType: NEW_IMAGE
  PublishEventsFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: makefile, BuildProperties: {Binary: publish-events}}
    Properties:
      Timeout: 10
      Events:
        Outbox:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt OrdersTable.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
            MaximumRetryAttempts: -1
            FunctionResponseTypes: [ReportBatchItemFailures]
            FilterCriteria:
              Filters:
                - Pattern: '{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}'
"#;

    #[test]
    fn a_dynamodb_event_becomes_a_stream_event_source_with_its_settings(
    ) -> Result<(), TemplateError> {
        let resources = template(OUTBOX).resources(Path::new("."))?;
        assert_eq!(
            resources.tables[0].stream_view_type.as_deref(),
            Some("NEW_IMAGE")
        );
        let [outbox] = resources.stream_events.as_slice() else {
            panic!("one stream event, not {:?}", resources.stream_events);
        };
        let pattern = r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}"#;
        let expected = StreamEventSpec {
            name: "PublishEventsFunction.Outbox".into(),
            function: "publish-events".into(),
            function_timeout_seconds: 10,
            table: "OrdersTable".into(),
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 10,
            maximum_retry_attempts: None,
            report_batch_item_failures: true,
            filters: vec![Pattern::parse(pattern).map_err(invalid)?],
        };
        assert_eq!(outbox, &expected);
        Ok(())
    }

    #[test]
    fn lambdas_defaults_apply_and_a_disabled_event_is_not_polled() -> Result<(), TemplateError> {
        let minimal = OUTBOX.replace("            BatchSize: 10\n", "").replace(
            "            MaximumRetryAttempts: -1\n",
            "            MaximumRetryAttempts: 2\n",
        );
        let resources = template(&minimal).resources(Path::new("."))?;
        let outbox = &resources.stream_events[0];
        assert_eq!(
            (outbox.batch_size, outbox.maximum_retry_attempts),
            (100, Some(2))
        );
        let disabled = OUTBOX.replace("BatchSize: 10", "BatchSize: 10\n            Enabled: false");
        let resources = template(&disabled).resources(Path::new("."))?;
        assert_eq!(resources.stream_events, []);
        Ok(())
    }

    #[test]
    fn a_stream_setting_the_local_poller_does_not_implement_stops_the_stack_with_its_name() {
        let error = |text: &str| {
            template(text)
                .resources(Path::new("."))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let bisect = OUTBOX.replace(
            "BatchSize: 10",
            "BatchSize: 10\n            BisectBatchOnFunctionError: true",
        );
        assert_eq!(
            error(&bisect),
            Err("template: PublishEventsFunction.Outbox: BisectBatchOnFunctionError true: the local stream poller implements only false".into())
        );
        let at_default = OUTBOX.replace(
            "BatchSize: 10",
            "BatchSize: 10\n            ParallelizationFactor: 1",
        );
        assert_eq!(error(&at_default), Ok(()));
        let destination = OUTBOX.replace(
            "BatchSize: 10",
            "BatchSize: 10\n            DestinationConfig: {}",
        );
        assert_eq!(
            error(&destination),
            Err("template: PublishEventsFunction.Outbox: DestinationConfig is not implemented by the local stream poller".into())
        );
        let filter = OUTBOX.replace(r#"[{"prefix": "EVENT#"}]"#, r##"[{"suffix": "#"}]"##);
        assert!(error(&filter).is_err_and(|e| e.contains(r#""suffix" is not implemented"#)));
        let too_big = OUTBOX.replace("BatchSize: 10", "BatchSize: 10001");
        assert!(error(&too_big).is_err_and(|e| e.contains("BatchSize 10001 is not 1 to 10000")));
    }

    #[test]
    fn a_stream_of_a_table_without_a_stream_specification_is_refused() {
        let no_stream = OUTBOX.replace(
            "      StreamSpecification:\n        StreamViewType: NEW_IMAGE\n",
            "",
        );
        let error = template(&no_stream).resources(Path::new(".")).map(|_| ());
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err(
                "template: !GetAtt OrdersTable.StreamArn: the table has no StreamSpecification"
                    .into()
            )
        );
    }

    #[test]
    fn the_project_template_resolves_completely() -> Result<(), TemplateError> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let resources = LocalResources::load(
            &root,
            "us-east-1",
            "http://127.0.0.1:4566",
            &local_parameters("http://127.0.0.1:4597"),
        )?;
        assert_eq!(resources.tables.len(), 1);
        assert!(!resources.state_machines.is_empty());
        let env = resources.function_environment()?;
        assert_eq!(
            env.get("TABLE_NAME").map(String::as_str),
            Some("OrdersTable")
        );
        let definition = resources.state_machines[0].definition.to_string();
        assert!(!definition.contains("${"), "unsubstituted: {definition}");
        // The operator resources (EventBridge rule, queue policy, KMS key, SNS topic,
        // alarms, dashboard) exist on AWS only; the queues they watch exist locally too.
        let mut queues: Vec<_> = resources.queues.iter().map(|q| q.name.as_str()).collect();
        queues.sort_unstable();
        assert_eq!(
            queues,
            [
                "OutboxDeadLetterQueue",
                "ReconcilerDeadLetterQueue",
                "WorkflowDeadLetterQueue"
            ]
        );
        assert!(resources.functions.iter().any(|f| f.binary == "reconciler"));
        // The outbox's event source mapping (a raw AWS::Lambda::EventSourceMapping on the
        // table's stream) is what the moto stack's stream poller runs.
        let [outbox] = resources.stream_events.as_slice() else {
            panic!("one stream event source, not {:?}", resources.stream_events);
        };
        assert_eq!(
            (
                outbox.function.as_str(),
                outbox.table.as_str(),
                outbox.batch_size,
                outbox.maximum_retry_attempts,
                outbox.report_batch_item_failures,
                outbox.filters.len(),
                outbox.starting_position
            ),
            (
                "publish-events",
                "OrdersTable",
                10,
                None,
                true,
                1,
                StartingPosition::TrimHorizon
            )
        );
        assert_eq!(
            env.get("WORKFLOW_DEAD_LETTER_QUEUE_URL")
                .map(String::as_str),
            Some("http://127.0.0.1:4566/123456789012/WorkflowDeadLetterQueue")
        );
        assert_eq!(
            env.get("STATE_MACHINE_ARN").map(String::as_str),
            Some("arn:aws:states:us-east-1:123456789012:stateMachine:OrderWorkflow:live"),
            "functions start executions through the alias the template publishes"
        );
        Ok(())
    }
}
