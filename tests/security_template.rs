//! Least privilege and secrets, checked on what CloudFormation deploys: `template.yaml`
//! after the SAM transform.
//!
//! - Each function's role grants exactly the AWS actions its code calls, on exactly the
//!   resources it calls them on ([`CALLS`]): a grant no call needs, or a call without a
//!   grant, fails. The managed policies SAM attaches for the Lambda runtime itself (logs,
//!   X-Ray) are not the code's and are left out; SAM's dead-letter-queue policy is listed
//!   as what it is.
//! - No secret sits in a parameter or an environment variable: variables that name a
//!   secret hold a Secrets Manager secret's ARN, and no parameter is NoEcho.
//! - The open webhook cannot starve the workflow: it and the API have reserved
//!   concurrency (also their ceiling) and the API stage throttles, the webhook route on
//!   its own limits.
//!
//! Needs the lint tools (`bash infra/lint.sh` installs them; `make test` runs it first).

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use system_tests::{of_type, translated_document, translated_template};

type Resources = Map<String, Value>;

/// What each function's code calls: `(IAM action, resource)`, the resource as the
/// template names it (`OrdersTable` for its ARN; `OrdersTable/index/by-status-keys`; `*` where
/// the action takes no resource). Keep it next to the code it describes: when a function
/// starts or stops calling something, change this list and the template's grant.
const CALLS: &[(&str, &[(&str, &str)])] = &[
    (
        // place: GetItem (the idempotency key), TransactWriteItems of three Puts (key,
        // order, Order Accepted's outbox item); the execution ARN and cancelling:
        // UpdateItem (a cancel before the workflow with its outbox Put); GET: Query on the
        // order's key.
        "OrdersApiFunction",
        &[
            ("dynamodb:GetItem", "OrdersTable"),
            ("dynamodb:PutItem", "OrdersTable"),
            ("dynamodb:UpdateItem", "OrdersTable"),
            ("dynamodb:Query", "OrdersTable"),
            ("states:StartExecution", "OrderWorkflowAliaslive"),
            // A start that finds the name taken: does that execution run?
            (
                "states:DescribeExecution",
                "arn:AWS::Partition:states:AWS::Region:AWS::AccountId:execution:OrderWorkflow:*",
            ),
        ],
    ),
    (
        // GetItem (the order, for its Order Delivered); record_delivery:
        // TransactWriteItems of two Updates, a ConditionCheck and two Puts (the event id,
        // the outbox item); then GetItem; SendTaskSuccess; the signing secret.
        "CourierWebhookFunction",
        &[
            ("dynamodb:GetItem", "OrdersTable"),
            ("dynamodb:UpdateItem", "OrdersTable"),
            ("dynamodb:PutItem", "OrdersTable"),
            ("dynamodb:ConditionCheckItem", "OrdersTable"),
            ("states:SendTaskSuccess", "*"),
            ("secretsmanager:GetSecretValue", "CourierWebhookSecret"),
        ],
    ),
    ("ValidateOrderFunction", STEP),
    (
        "ReserveStockFunction",
        &[STEP[0], STEP[1], token("WarehouseApiTokenSecret")],
    ),
    (
        "TakePaymentFunction",
        &[STEP[0], STEP[1], token("PaymentsApiTokenSecret")],
    ),
    (
        "DeactivateTerminalsFunction",
        &[STEP[0], STEP[1], token("TerminalsApiTokenSecret")],
    ),
    (
        "CreateReturnLabelFunction",
        &[STEP[0], STEP[1], token("CourierApiTokenSecret")],
    ),
    (
        "ProvisionTerminalsFunction",
        &[STEP[0], STEP[1], token("TerminalsApiTokenSecret")],
    ),
    (
        "ArrangeShipmentFunction",
        &[STEP[0], STEP[1], token("CourierApiTokenSecret"), OUTBOX],
    ),
    (
        // A delivery recorded before the task token: it resumes the execution itself.
        "AwaitDeliveryFunction",
        &[STEP[0], STEP[1], ("states:SendTaskSuccess", "*")],
    ),
    (
        "NotifyCustomerFunction",
        &[STEP[0], STEP[1], token("NotificationsApiTokenSecret")],
    ),
    ("CompleteOrderFunction", &[STEP[0], STEP[1], OUTBOX]),
    (
        "CancelShipmentFunction",
        &[STEP[0], STEP[1], token("CourierApiTokenSecret")],
    ),
    (
        "DeprovisionTerminalsFunction",
        &[STEP[0], STEP[1], token("TerminalsApiTokenSecret")],
    ),
    (
        "RefundPaymentFunction",
        &[STEP[0], STEP[1], token("PaymentsApiTokenSecret")],
    ),
    (
        "ReleaseStockFunction",
        &[STEP[0], STEP[1], token("WarehouseApiTokenSecret")],
    ),
    ("FailOrderFunction", &[STEP[0], STEP[1], OUTBOX]),
    (
        "ReconcilerFunction",
        &[
            ("dynamodb:Query", "OrdersTable/index/by-status-keys"),
            ("dynamodb:GetItem", "OrdersTable"),
            ("dynamodb:BatchGetItem", "OrdersTable"),
            ("dynamodb:UpdateItem", "OrdersTable"),
            ("states:StartExecution", "OrderWorkflowAliaslive"),
            (
                "states:DescribeExecution",
                "arn:AWS::Partition:states:AWS::Region:AWS::AccountId:execution:OrderWorkflow:*",
            ),
            ("sqs:SendMessage", "WorkflowDeadLetterQueue"),
            // A park writes its Order Needs Operator outbox item in its transaction.
            OUTBOX,
            // Not the code: Lambda itself sends a run that failed its async retries to
            // the function's dead-letter queue, with the function's role.
            ("sqs:SendMessage", "ReconcilerDeadLetterQueue"),
        ],
    ),
    (
        // PutEvents of the outbox's events. Not the code: Lambda's event source mapping
        // reads the table's stream with the function's role (ListStreams has no
        // resource-level permissions), and puts a batch it gave up on in the queue.
        "PublishEventsFunction",
        &[
            ("events:PutEvents", "OrderEventsBus"),
            ("dynamodb:DescribeStream", "OrdersTable.StreamArn"),
            ("dynamodb:GetRecords", "OrdersTable.StreamArn"),
            ("dynamodb:GetShardIterator", "OrdersTable.StreamArn"),
            ("dynamodb:ListStreams", "*"),
            ("sqs:SendMessage", "OutboxDeadLetterQueue"),
        ],
    ),
];

/// Every step: GetItem of the order and its step item; UpdateItem to record the step and
/// move the status (also the Updates inside TransactWriteItems).
const STEP: &[(&str, &str)] = &[
    ("dynamodb:GetItem", "OrdersTable"),
    ("dynamodb:UpdateItem", "OrdersTable"),
];

/// A step whose change is an order event writes its outbox item in the change's
/// transaction (a Put inside TransactWriteItems: PutItem); nothing publishes but
/// publish-events.
const OUTBOX: (&str, &str) = ("dynamodb:PutItem", "OrdersTable");

/// Reading a partner's token at cold start.
const fn token(secret: &'static str) -> (&'static str, &'static str) {
    ("secretsmanager:GetSecretValue", secret)
}

/// A resource as the template names it: `{"Fn::GetAtt": ["T", "Arn"]}` → `T`, `{"Ref":
/// "X"}` → `X`, a `Fn::Sub` text with `${X.Attr}` and `${X}` written as `X`.
fn resource_name(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    if let Some(name) = value["Ref"].as_str() {
        return name.to_owned();
    }
    if let Some(name) = value["Fn::GetAtt"][0].as_str() {
        return match value["Fn::GetAtt"][1].as_str() {
            Some("Arn") | None => name.to_owned(),
            Some(attribute) => format!("{name}.{attribute}"),
        };
    }
    let sub = match &value["Fn::Sub"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => return value.to_string(),
    };
    let mut out = String::new();
    let mut rest = sub.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or(after.len());
        let name = &after[..end];
        out.push_str(name.split_once('.').map_or(name, |(id, _)| id));
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// The `(action, resource)` pairs a role's inline policies allow.
fn granted(role: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for policy in as_list(&role["Properties"]["Policies"]) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            for action in as_list(&statement["Action"]) {
                for resource in as_list(&statement["Resource"]) {
                    let action = action.as_str().unwrap_or_default().to_owned();
                    pairs.insert((action, resource_name(&resource)));
                }
            }
        }
    }
    pairs
}

fn functions(resources: &Resources) -> BTreeMap<String, Value> {
    of_type(resources, "AWS::Lambda::Function")
}

#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let resources = translated_template();
    let functions = functions(&resources);
    let listed: BTreeSet<&str> = CALLS.iter().map(|(f, _)| *f).collect();
    let deployed: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(
        listed, deployed,
        "CALLS must list every function the template deploys, and only those"
    );
    let mut wrong = Vec::new();
    for (function, calls) in CALLS {
        let role_id = functions[*function]["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no role of the template"));
        let grants = granted(&resources[role_id]);
        let needed: BTreeSet<(String, String)> = calls
            .iter()
            .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
            .collect();
        for unused in grants.difference(&needed) {
            wrong.push(format!(
                "{function}: granted {unused:?}, which its code never calls"
            ));
        }
        for missing in needed.difference(&grants) {
            wrong.push(format!(
                "{function}: calls {missing:?}, which is not granted"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_grant_no_call_needs_and_a_call_without_a_grant() {
    // The comparison itself, on a role as the transform writes one.
    let role = serde_json::json!({"Properties": {"Policies": [{"PolicyDocument": {"Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"],
         "Resource": {"Fn::GetAtt": ["OrdersTable", "Arn"]}},
        {"Effect": "Allow", "Action": "states:DescribeExecution",
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:states:x:execution:${OrderWorkflow.Name}:*"}}
    ]}}]}});
    let grants = granted(&role);
    assert_eq!(
        grants,
        [
            ("dynamodb:GetItem", "OrdersTable"),
            ("dynamodb:Query", "OrdersTable"),
            (
                "states:DescribeExecution",
                "arn:AWS::Partition:states:x:execution:OrderWorkflow:*"
            ),
        ]
        .into_iter()
        .map(|(a, r)| (a.to_owned(), r.to_owned()))
        .collect()
    );
    let needed: BTreeSet<(String, String)> = STEP
        .iter()
        .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
        .collect();
    assert_eq!(
        grants.difference(&needed).count(),
        2,
        "Query and DescribeExecution are not needed by a step"
    );
    assert_eq!(
        needed.difference(&grants).collect::<Vec<_>>(),
        [&("dynamodb:UpdateItem".to_owned(), "OrdersTable".to_owned())]
    );
}

#[test]
fn no_parameter_or_environment_variable_holds_a_secret() {
    let template = system_tests::translated_document();
    let resources = template["Resources"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, parameter) in template["Parameters"].as_object().into_iter().flatten() {
        assert_ne!(
            parameter["NoEcho"],
            Value::Bool(true),
            "parameter {name} is a secret: make it an AWS::SecretsManager::Secret"
        );
        let lower = name.to_ascii_lowercase();
        assert!(
            !["token", "secret", "password", "apikey"]
                .iter()
                .any(|word| lower.contains(word)),
            "parameter {name} looks like a secret"
        );
    }
    let secrets: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SecretsManager::Secret")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        secrets.len(),
        6,
        "a secret per partner and the webhook's: {secrets:?}"
    );
    for (function, resource) in functions(&resources) {
        for (variable, value) in resource["Properties"]["Environment"]["Variables"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let names_a_secret = ["TOKEN", "SECRET", "PASSWORD", "KEY"]
                .iter()
                .any(|word| variable.contains(word));
            if names_a_secret {
                let target = value["Ref"].as_str().unwrap_or_default();
                assert!(
                    secrets.contains(target),
                    "{function}: {variable} must be the ARN of a Secrets Manager secret (!Ref), not {value}"
                );
            }
        }
    }
}

/// A parameter's default, as a number.
fn default_number(document: &Value, parameter: &str) -> u64 {
    let value = &document["Parameters"][parameter]["Default"];
    match value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
    {
        Some(number) => number,
        None => panic!("the parameter {parameter} has no numeric default: {value}"),
    }
}

#[test]
fn each_throttled_function_has_the_concurrency_for_every_request_its_stage_lets_through() {
    // Lambda answers a throttled invocation 429, which API Gateway turns into a 500 for
    // the caller: the function must never be throttled while the stage lets requests
    // through. The stage's limits apply per method, and a burst can arrive at once, so
    // the reserved concurrency must cover every method's burst together.
    let document = translated_document();
    let resources = translated_template();
    for (function, reserved, burst) in [
        (
            "OrdersApiFunction",
            "ApiReservedConcurrency",
            "ApiThrottlingBurstLimit",
        ),
        (
            "CourierWebhookFunction",
            "WebhookReservedConcurrency",
            "WebhookThrottlingBurstLimit",
        ),
    ] {
        let methods = resources
            .values()
            .filter(|r| {
                r["Type"] == "AWS::Lambda::Permission"
                    && r["Properties"]["Principal"] == "apigateway.amazonaws.com"
                    && r["Properties"]["FunctionName"]["Ref"]
                        .as_str()
                        .is_some_and(|f| f.starts_with(function))
            })
            .count() as u64;
        assert!(methods > 0, "{function} serves no route");
        let (reserved, burst) = (
            default_number(&document, reserved),
            default_number(&document, burst),
        );
        assert!(
            reserved >= methods * burst,
            "{function}: {reserved} reserved executions < {methods} methods x a burst of {burst}"
        );
    }
}

#[test]
fn the_workflow_logs_no_execution_data_unless_an_investigation_turns_it_on() {
    let document = translated_document();
    let machines: Vec<&Value> = document["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|resources| resources.values())
        .filter(|r| r["Type"] == "AWS::StepFunctions::StateMachine")
        .collect();
    assert_eq!(machines.len(), 1);
    let logging = &machines[0]["Properties"]["LoggingConfiguration"];
    assert_eq!(
        logging["IncludeExecutionData"],
        serde_json::json!({"Fn::If": ["LogsExecutionData", true, false]}),
        "{logging}"
    );
    assert_eq!(
        document["Conditions"]["LogsExecutionData"],
        serde_json::json!({"Fn::Equals": [{"Ref": "WorkflowLogExecutionData"}, "true"]})
    );
    assert_eq!(
        document["Parameters"]["WorkflowLogExecutionData"]["Default"], "false",
        "off by default"
    );
}

#[test]
fn refused_webhook_signatures_are_counted_and_alarm_the_operators() {
    let resources = translated_template();
    let filter = &resources["WebhookRefusedSignaturesMetricFilter"]["Properties"];
    assert_eq!(
        filter["LogGroupName"]["Ref"], "CourierWebhookFunctionLogGroup",
        "{filter}"
    );
    assert_eq!(filter["FilterPattern"], "{ $.fields.status = 401 }");
    let alarm = &resources["WebhookRefusedSignaturesAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"], "WebhookRefusedSignatures", "{alarm}");
    assert_eq!(
        alarm["AlarmActions"][0]["Ref"], "OperatorAlertsTopic",
        "{alarm}"
    );
}

#[test]
fn the_reconciler_runs_one_invocation_at_a_time() {
    let resources = translated_template();
    let functions = functions(&resources);
    assert_eq!(
        functions["ReconcilerFunction"]["Properties"]["ReservedConcurrentExecutions"],
        serde_json::json!(1)
    );
}

#[test]
fn the_webhook_and_the_api_have_a_concurrency_ceiling_and_the_stage_throttles() {
    let resources = translated_template();
    let functions = functions(&resources);
    for (function, parameter) in [
        ("CourierWebhookFunction", "WebhookReservedConcurrency"),
        ("OrdersApiFunction", "ApiReservedConcurrency"),
    ] {
        assert_eq!(
            functions[function]["Properties"]["ReservedConcurrentExecutions"]["Ref"], parameter,
            "{function}"
        );
    }
    let stages: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGateway::Stage")
        .collect();
    assert_eq!(stages.len(), 1);
    let settings = as_list(&stages[0]["Properties"]["MethodSettings"]);
    let limits = |path: &str, method: &str| {
        settings
            .iter()
            .find(|s| s["ResourcePath"] == path && s["HttpMethod"] == method)
            .map(|s| {
                (
                    s["ThrottlingRateLimit"]["Ref"].clone(),
                    s["ThrottlingBurstLimit"]["Ref"].clone(),
                )
            })
    };
    assert_eq!(
        limits("/*", "*"),
        Some((
            Value::from("ApiThrottlingRateLimit"),
            Value::from("ApiThrottlingBurstLimit")
        ))
    );
    assert_eq!(
        limits("/~1webhooks~1courier", "POST"),
        Some((
            Value::from("WebhookThrottlingRateLimit"),
            Value::from("WebhookThrottlingBurstLimit")
        ))
    );
    // The webhook route is the one without IAM, and it reaches the webhook function only.
    let webhook_permissions: Vec<&Value> = resources
        .values()
        .filter(|r| {
            r["Type"] == "AWS::Lambda::Permission"
                && r["Properties"]["SourceArn"]
                    .to_string()
                    .contains("/webhooks/courier")
        })
        .collect();
    assert_eq!(webhook_permissions.len(), 1, "{webhook_permissions:?}");
    assert_eq!(
        webhook_permissions[0]["Properties"]["FunctionName"]["Ref"],
        "CourierWebhookFunctionAliaslive",
        "API Gateway invokes the webhook function's alias"
    );
}

#[test]
fn every_function_logs_to_a_group_of_its_own_kept_for_the_retention_parameter_and_encrypted() {
    let resources = translated_template();
    let mut groups = BTreeSet::new();
    for (function, resource) in functions(&resources) {
        let group = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} names no log group of the stack"));
        assert!(groups.insert(group.to_owned()), "{group} is shared");
        let properties = &resources[group]["Properties"];
        assert_eq!(resources[group]["Type"], "AWS::Logs::LogGroup", "{group}");
        assert_eq!(
            properties["RetentionInDays"]["Ref"], "LogRetentionDays",
            "{group}"
        );
        assert_eq!(
            properties["KmsKeyId"]["Fn::GetAtt"][0], "LogsKey",
            "{group} is encrypted with the stack's logs key"
        );
    }
    let table = resources
        .values()
        .find(|r| r["Type"] == "AWS::DynamoDB::Table")
        .cloned()
        .unwrap_or_default();
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    let stage = resources
        .values()
        .find(|r| r["Type"] == "AWS::ApiGateway::Stage")
        .cloned()
        .unwrap_or_default();
    assert!(
        stage["Properties"]["AccessLogSetting"]["DestinationArn"].is_object(),
        "the API stage writes access logs: {stage}"
    );
}

/// The Deny every function's role carries: `(policy's logical id, the actions, the
/// LeadingKeys patterns)`, when the role has one.
fn operator_only_deny(
    resources: &Resources,
    role: &Value,
) -> Option<(String, BTreeSet<String>, BTreeSet<String>)> {
    for arn in as_list(&role["Properties"]["ManagedPolicyArns"]) {
        let Some(name) = arn["Ref"].as_str() else {
            continue;
        };
        let policy = &resources[name];
        if policy["Type"] != "AWS::IAM::ManagedPolicy" {
            continue;
        }
        for statement in as_list(&policy["Properties"]["PolicyDocument"]["Statement"]) {
            if statement["Effect"] != "Deny"
                || resource_name(&statement["Resource"]) != "OrdersTable"
            {
                continue;
            }
            let actions = as_list(&statement["Action"])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            let keys =
                as_list(&statement["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"])
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
            return Some((name.to_owned(), actions, keys));
        }
    }
    None
}

#[test]
fn no_function_role_may_write_the_callers_scopes_or_the_audit_trail() {
    let resources = translated_template();
    let functions = functions(&resources);
    assert!(
        functions.len() > 10,
        "the template's functions: {}",
        functions.len()
    );
    let writes: BTreeSet<String> = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ]
    .map(str::to_owned)
    .into();
    // The partitions as the code writes them (order_core::store::keys).
    let partitions: BTreeSet<String> = order_core::store::OPERATOR_ONLY_PARTITIONS
        .map(str::to_owned)
        .into();
    let mut wrong = Vec::new();
    for (function, resource) in &functions {
        let role_id = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no role of the template"));
        match operator_only_deny(&resources, &resources[role_id]) {
            None => wrong.push(format!("{function}: its role denies nothing")),
            Some((policy, actions, keys)) => {
                if !writes.is_subset(&actions) {
                    wrong.push(format!(
                        "{function}: {policy} denies {actions:?}, not every write {writes:?}"
                    ));
                }
                if keys != partitions {
                    wrong.push(format!(
                        "{function}: {policy} denies {keys:?}, the code writes {partitions:?}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_deny_check_sees_a_role_without_the_deny_and_one_that_misses_a_partition() {
    let resources: Resources = serde_json::from_value(serde_json::json!({
        "Deny": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {"Statement": [
            {"Effect": "Deny", "Action": ["dynamodb:PutItem"],
             "Resource": {"Fn::GetAtt": ["OrdersTable", "Arn"]},
             "Condition": {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["CALLERS"]}}}
        ]}}}
    }))
    .unwrap_or_default();
    let bare = serde_json::json!({"Properties": {"ManagedPolicyArns": []}});
    assert_eq!(operator_only_deny(&resources, &bare), None);
    let partial = serde_json::json!({"Properties": {"ManagedPolicyArns": [{"Ref": "Deny"}]}});
    let found = operator_only_deny(&resources, &partial);
    assert_eq!(
        found.map(|(_, actions, keys)| (actions.len(), keys.into_iter().collect::<Vec<_>>())),
        Some((1, vec!["CALLERS".to_owned()]))
    );
}
