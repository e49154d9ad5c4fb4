//! What the integration tests share: the local stack they run against (started by
//! `make test`, which passes its endpoints in the environment), clients for it, and
//! helpers to place and follow orders.

use aws_sdk_dynamodb::types::AttributeValue;
use order_core::catalogue::Catalogue;
use order_core::store::OrderStore;
use order_core::OrderId;
use partner_simulator::client::Admin;
use partner_simulator::faults::RuleSpec;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The local stack's endpoints, from the environment `local-stack exec` provides.
pub struct Stack {
    pub aws: aws_config::SdkConfig,
    pub table: String,
    pub state_machine_arn: String,
    pub orders_api: String,
    pub dir: PathBuf,
}

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: the integration tests run against a local stack; run them with `make test`"
        ),
    }
}

impl Stack {
    pub async fn connect() -> Stack {
        Stack {
            aws: order_core::config::aws().await,
            table: env("TABLE_NAME"),
            state_machine_arn: env("STATE_MACHINE_ARN"),
            orders_api: env("ORDERS_API_URL"),
            dir: PathBuf::from(env("LOCAL_STACK_DIR")),
        }
    }

    /// The stack's own API caller (`ORDERS_API_CALLER_ARN`): every request the tests
    /// sign with the stack's key is this principal's, and the stack granted it every
    /// merchant.
    pub fn caller(&self) -> order_core::callers::Principal {
        let arn = env("ORDERS_API_CALLER_ARN");
        order_core::callers::Principal::parse(&arn).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The table item of the stack's caller's `Idempotency-Key` `key`.
    pub fn idempotency_pk(&self, key: &str) -> String {
        order_core::store::idempotency_pk(&self.caller(), key)
    }

    pub fn store(&self) -> OrderStore {
        OrderStore::from_config(&self.aws, &self.table)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.aws)
    }

    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.aws)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }

    /// The order-events bus the functions publish to (`ORDER_EVENTS_BUS_NAME`).
    pub fn events(&self) -> order_core::events::EventBus {
        order_core::events::EventBus::new(
            aws_sdk_eventbridge::Client::new(&self.aws),
            env(order_core::events::BUS_VARIABLE),
        )
    }

    /// The workflow dead-letter queue's URL.
    pub fn dead_letter_queue_url(&self) -> String {
        env("WORKFLOW_DEAD_LETTER_QUEUE_URL")
    }

    /// The workflow dead-letter queue.
    pub fn dead_letters(&self) -> order_core::dead_letters::DeadLetterQueue {
        order_core::dead_letters::DeadLetterQueue::new(self.sqs(), self.dead_letter_queue_url())
    }

    /// The order workflow as `order_core::recovery` starts and resumes it.
    pub fn workflow(&self) -> order_core::recovery::Workflow {
        order_core::recovery::Workflow {
            client: self.sfn(),
            state_machine_arn: self.state_machine_arn.clone(),
            config: order_core::recovery::WorkflowConfig::from_env()
                .unwrap_or_else(|error| panic!("{error}")),
        }
    }

    /// One reconciler pass over the whole stack, as the scheduled reconciler makes it, of
    /// orders untouched for a second, resuming an order at most `max_resumes` times. Tests
    /// that call it may run each other's passes over their orders.
    pub async fn reconcile(&self, max_resumes: u32) {
        let options = order_core::recovery::ReconcileOptions {
            grace: chrono::Duration::seconds(1),
            limit: 1000,
            max_resumes,
        };
        let escalation = order_core::recovery::Escalation {
            dead_letters: &self.dead_letters(),
        };
        let passed =
            order_core::recovery::reconcile(&self.store(), &self.workflow(), escalation, options)
                .await;
        if let Err(error) = passed {
            panic!("reconcile: {error}");
        }
    }

    /// The workflow DLQ message about order `id`, waiting up to 60 s for it. The queue is
    /// looked at without taking anything out of it.
    pub async fn dead_letter_for(&self, id: &str) -> Value {
        let queue = &self.dead_letters();
        eventually(
            &format!("a dead-letter message for order {id}"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async move {
                let letters = queue.look(10_000).await.expect("the DLQ can be looked at");
                match letters.into_iter().find(|l| l.body.order_id == id) {
                    Some(letter) => {
                        Ok(serde_json::to_value(letter.body).expect("a dead-letter body is JSON"))
                    }
                    None => Err("none yet".to_owned()),
                }
            },
        )
        .await
    }

    pub fn endpoint(&self) -> String {
        env("AWS_ENDPOINT_URL")
    }

    /// The secret the courier signs its webhook calls with, read from the emulator's
    /// Secrets Manager as the webhook function reads it (no function environment holds
    /// it).
    pub async fn webhook_secret(&self) -> String {
        let client = aws_sdk_secretsmanager::Client::new(&self.aws);
        order_core::secrets::read(&client, &env("COURIER_WEBHOOK_SECRET_ID"))
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// The courier webhook's URL (a function of its own).
    pub fn courier_webhook_url(&self) -> String {
        format!("{}/webhooks/courier", env("COURIER_WEBHOOK_URL"))
    }

    /// Makes the invoke router answer AWS calls with AWS's own throttling or outage errors
    /// (`PUT /__faults`, `infra/invoke-router/src/faults.rs`): `rules` as that endpoint
    /// takes them. Every rule lasts its `seconds` and then expires by itself, so a test
    /// that fails midway leaves nothing behind. The moto stack only (MiniStack's functions
    /// call MiniStack directly).
    pub async fn inject_aws_faults(&self, rules: Value) {
        let url = format!("{}/__faults", self.endpoint());
        let body = serde_json::json!({ "rules": rules });
        let reply = http().put(&url).json(&body).send().await;
        let reply = reply.unwrap_or_else(|error| panic!("PUT {url}: {error}"));
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        assert!(status.is_success(), "PUT {url} {body}: {status} {text}");
    }

    /// Ends every fault [`Stack::inject_aws_faults`] set.
    pub async fn clear_aws_faults(&self) {
        let url = format!("{}/__faults", self.endpoint());
        let reply = http().delete(&url).send().await;
        let reply = reply.unwrap_or_else(|error| panic!("DELETE {url}: {error}"));
        assert!(
            reply.status().is_success(),
            "DELETE {url}: {}",
            reply.status()
        );
    }

    /// One read of the stack's tap queue (every order event reaches it through the stack's
    /// rule, as an integrator subscribes): up to ten messages, waiting at most a second.
    /// The events of the orders `ours` names are taken out and returned (each a JSON
    /// EventBridge event); the others are set aside for `aside`, then come back for
    /// whoever reads them (put back at once, they would come round again and again ahead
    /// of ours: a receive does not skip what was just received).
    pub async fn take_tap_events(
        &self,
        ours: impl Fn(&str) -> bool,
        aside: Duration,
    ) -> Vec<Value> {
        let queue = env("ORDER_EVENTS_TAP_QUEUE_URL");
        let sqs = self.sqs();
        let answer = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap_or_else(|error| panic!("ReceiveMessage: {error:?}"));
        let mut taken = Vec::new();
        for message in answer.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default())
                .unwrap_or_else(|error| panic!("an event is JSON: {error}: {message:?}"));
            let mine = ours(body["detail"]["order_id"].as_str().unwrap_or_default());
            if let Some(handle) = message.receipt_handle() {
                if mine {
                    let deleted = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(handle);
                    deleted.send().await.unwrap_or_else(|e| panic!("{e:?}"));
                } else {
                    let seconds = i32::try_from(aside.as_secs()).unwrap_or(i32::MAX);
                    let back = (sqs.change_message_visibility().queue_url(&queue))
                        .receipt_handle(handle)
                        .visibility_timeout(seconds);
                    back.send().await.unwrap_or_else(|e| panic!("{e:?}"));
                }
            }
            if mine {
                taken.push(body);
            }
        }
        taken
    }

    /// The partner simulator's base URL (its admin API and ledger).
    pub fn partner_simulator_url(&self) -> String {
        env("PARTNER_SIMULATOR_URL")
    }

    /// POSTs a body to `/orders` with an Idempotency-Key; returns status, headers, JSON.
    pub async fn post_order(&self, key: Option<&str>, body: &str) -> Reply {
        let mut request = http()
            .post(format!("{}/orders", self.orders_api))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Reply::from(send_signed(request).await).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(send_signed(http().get(format!("{}{path}", self.orders_api))).await).await
    }

    /// Places `order` through the API; returns the order id and the ARN of the execution
    /// the API started (named after the order; the API does not show it to callers).
    pub async fn place(&self, order: &Value) -> (String, String) {
        let reply = self
            .post_order(Some(&unique_key()), &order.to_string())
            .await;
        assert_eq!(reply.status, 202, "POST /orders: {}", reply.text);
        let id = reply.body["order_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let arn = self.execution_arn(&id);
        (id, arn)
    }

    /// Places a valid order for a merchant of its own, for whom the partners apply the
    /// fault `rules` (see [`Partners::merchant_with`]); returns the order id and the ARN.
    pub async fn place_under(&self, rules: &[Value]) -> (String, String) {
        let merchant = self.partners().merchant_with(Value::from(rules)).await;
        self.place(&valid_order(&merchant)).await
    }

    /// The ARN of the execution named `name` of the order workflow.
    pub fn execution_arn(&self, name: &str) -> String {
        order_core::recovery::Workflow {
            client: self.sfn(),
            state_machine_arn: self.state_machine_arn.clone(),
            config: order_core::recovery::WorkflowConfig {
                outage_wait_seconds: 1,
                delivery_timeout_seconds: 1,
                outage_waits_allowed: 1,
            },
        }
        .execution_arn(name)
    }

    /// Sends `method` to `path` of the orders API with an empty body, signed.
    pub async fn send_to_api(&self, method: &str, path: &str) -> Reply {
        let method = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(method) => method,
            Err(error) => panic!("{method}: {error}"),
        };
        let request = http().request(method, format!("{}{path}", self.orders_api));
        Reply::from(send_signed(request).await).await
    }

    /// POSTs to `path` of the orders API with an empty body.
    pub async fn post(&self, path: &str) -> Reply {
        Reply::from(send_signed(http().post(format!("{}{path}", self.orders_api))).await).await
    }

    /// An order stored as the API stores it (ACCEPTED) whose execution was never started,
    /// as when StartExecution failed.
    pub async fn order_without_execution(&self) -> order_core::OrderId {
        let order = order_core::Order::parse(&valid_order(&unique_merchant()), &catalogue())
            .unwrap_or_else(|problems| panic!("{problems}"));
        match self
            .store()
            .place_order(
                &order_core::store::contract::caller(),
                &unique_key(),
                &order,
                "h",
            )
            .await
        {
            Ok(order_core::store::Placement::Created(record)) => record.order_id,
            other => panic!("expected a new order, got {other:?}"),
        }
    }

    /// An UpdateItem of the order `id`'s item, written straight to the table (test data
    /// only the ledger's history could otherwise leave).
    fn order_item_update(
        &self,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.dynamodb()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ORDER#{id}")))
            .key("sk", AttributeValue::S("ORDER".into()))
    }

    /// Counts `resumes` resumes on the order `id` and records no execution, as an order
    /// whose executions all ended without moving it carries them (the count is written
    /// straight to its item: only a started execution's end can leave it so).
    pub async fn counted_as_resumed(&self, id: &order_core::OrderId, resumes: u32) {
        let written = self
            .order_item_update(id.as_str())
            .update_expression("SET resumes = :n")
            .expression_attribute_values(":n", AttributeValue::N(resumes.to_string()))
            .send()
            .await;
        if let Err(error) = written {
            panic!("counting {resumes} resumes on {id}: {error:?}");
        }
    }

    /// Places an order while provisioning is down, so it waits, charged, for the partner
    /// to come back; cancels it there (`202 CANCELLING`). Returns its id and execution ARN;
    /// the workflow then rolls it back.
    pub async fn order_cancelled_while_charged(&self) -> (String, String) {
        let (id, arn) = self
            .place_under(&[fault("terminals", "provision", "unavailable")])
            .await;
        self.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
        let reply = self.post(&format!("/orders/{id}/cancel")).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        assert_eq!(reply.body["status"], "CANCELLING");
        (id, arn)
    }

    /// Places an order whose parcel the courier holds back: its execution waits in
    /// AwaitDelivery until the test delivers it (`partners().deliver`). Returns the order
    /// id and its execution ARN once the order has SHIPPED and AwaitDelivery has begun.
    /// Waits until the SHIPPED order `id` waits for its courier (AwaitDelivery began).
    pub async fn order_waiting_for(&self, id: &str) -> Value {
        let view = self
            .wait_for(id, "waiting for its courier", |view| {
                view["status"] == "SHIPPED"
                    && view["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| s["step"] == "AwaitDelivery")
            })
            .await;
        // AwaitDelivery began; waiting means its task token is stored on the order.
        let order = OrderId::parse(id).unwrap_or_else(|| panic!("{id} is no order id"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stored = self.store().require_order(&order).await;
            match stored {
                Ok(record) if record.task_token.is_some() => return view,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("order {id} stored no task token within 60 s: {other:?}"),
            }
        }
    }

    pub async fn order_waiting_for_its_courier(&self) -> (String, String) {
        let (id, arn) = self
            .place_under(&[fault("courier", "deliver", "hold")])
            .await;
        self.order_waiting_for(&id).await;
        (id, arn)
    }

    /// The partner simulator's admin API.
    pub fn partners(&self) -> Partners {
        Partners {
            admin: Admin::new(http(), &self.partner_simulator_url()),
        }
    }

    /// The names of the states the execution entered, in order.
    pub async fn states_entered(&self, arn: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut pages = self
            .sfn()
            .get_execution_history()
            .execution_arn(arn)
            .into_paginator()
            .items()
            .send();
        while let Some(event) = pages.next().await {
            match event {
                Ok(event) => {
                    if let Some(details) = event.state_entered_event_details() {
                        names.push(details.name().to_owned());
                    }
                }
                Err(error) => panic!("GetExecutionHistory {arn}: {error:?}"),
            }
        }
        names
    }

    /// Polls the execution's history until it has entered every state of `names`, for up
    /// to 90 s; returns the states it entered, in order.
    pub async fn wait_for_states(&self, arn: &str, names: &[&str]) -> Vec<String> {
        eventually(
            &format!("execution {arn} entering {names:?}"),
            Duration::from_secs(90),
            Duration::from_millis(250),
            || async move {
                let entered = self.states_entered(arn).await;
                if names.iter().all(|name| entered.iter().any(|s| s == name)) {
                    Ok(entered)
                } else {
                    Err(format!("{entered:?}"))
                }
            },
        )
        .await
    }

    /// Polls `GET /orders/{id}` until `ready` holds for its view, for up to 90 s.
    pub async fn wait_for(&self, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let ready = &ready;
        eventually(
            &format!("order {id} {what}"),
            Duration::from_secs(90),
            Duration::from_millis(100),
            || async move {
                let reply = self.get(&format!("/orders/{id}")).await;
                if ready(&reply.body) {
                    Ok(reply.body)
                } else {
                    Err(reply.body.to_string())
                }
            },
        )
        .await
    }

    /// Polls `GET /orders/{id}` until the order has one of `statuses`.
    pub async fn wait_for_status(&self, id: &str, statuses: &[&str]) -> Value {
        self.wait_for(id, &format!("in one of {statuses:?}"), |view| {
            view["status"]
                .as_str()
                .is_some_and(|status| statuses.contains(&status))
        })
        .await
    }

    /// Waits until an execution has left RUNNING and returns its status.
    /// Checks that the order `id` is still as the API stored it: ACCEPTED, version 1, no
    /// execution recorded on it and none started under its name.
    pub async fn assert_as_stored(&self, id: &order_core::OrderId, what: &str) {
        let order = self.store().require_order(id).await;
        let order = order.unwrap_or_else(|error| panic!("{what} {id}: {error}"));
        assert_eq!(
            (order.status, order.execution_arn, order.version),
            (order_core::OrderStatus::Accepted, None, 1),
            "{what} {id} was changed"
        );
        assert_eq!(
            self.executions_named(id.as_str()).await,
            0,
            "{what} {id} was started"
        );
    }

    /// The execution `arn` as DescribeExecution tells it; a failed call fails the test.
    pub async fn describe_execution(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let described = self
            .sfn()
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await;
        described.unwrap_or_else(|error| panic!("DescribeExecution {arn}: {error:?}"))
    }

    /// Stops the execution `arn` (StopExecution); a failed call fails the test.
    pub async fn stop_execution(&self, arn: &str) {
        let stopped = self.sfn().stop_execution().execution_arn(arn).send().await;
        if let Err(error) = stopped {
            panic!("StopExecution {arn}: {error:?}");
        }
    }

    pub async fn execution_status(&self, arn: &str) -> String {
        eventually(
            &format!("execution {arn} ended"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async move {
                let description = self.describe_execution(arn).await;
                match description.status.as_str() {
                    "RUNNING" => Err("RUNNING".to_owned()),
                    ended => Ok(ended.to_owned()),
                }
            },
        )
        .await
    }

    /// The names of every execution of the order workflow named `name`.
    /// Every execution of the order `id` (`<id>`, `<id>-r<n>`): (name, status), oldest
    /// first as Step Functions lists them.
    pub async fn executions_of(&self, id: &str) -> Vec<(String, String)> {
        let resumed = format!("{id}-r");
        let mut found: Vec<(String, String)> = self
            .executions()
            .await
            .into_iter()
            .filter(|(name, _)| name == id || name.starts_with(&resumed))
            .collect();
        found.reverse();
        found
    }

    /// Every execution of the state machine: (name, status), newest first.
    async fn executions(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut pages = self
            .sfn()
            .list_executions()
            .state_machine_arn(order_core::recovery::unqualified_state_machine_arn(
                &self.state_machine_arn,
            ))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            match item {
                Ok(execution) => found.push((execution.name, execution.status.as_str().to_owned())),
                Err(error) => panic!("ListExecutions: {error:?}"),
            }
        }
        found
    }

    /// Dates the order `id`'s last change `seconds` back, in its item and the by-status
    /// index, as if it had stood still that long (for the reconciler's grace period,
    /// without a test sleeping through it).
    pub async fn backdate(&self, id: &str, seconds: i64) {
        let order = OrderId::parse(id).unwrap_or_else(|| panic!("{id} is no order id"));
        let record = self
            .store()
            .require_order(&order)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let then = (chrono::DateTime::parse_from_rfc3339(&record.updated_at)
            .unwrap_or_else(|error| panic!("{}: {error}", record.updated_at))
            - chrono::Duration::seconds(seconds))
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let written = self
            .order_item_update(id)
            .update_expression("SET updated_at = :then, gsi2sk = :key")
            .condition_expression("version = :version")
            .expression_attribute_values(":then", AttributeValue::S(then.clone()))
            .expression_attribute_values(":key", AttributeValue::S(format!("{then}#{id}")))
            .expression_attribute_values(":version", AttributeValue::N(record.version.to_string()))
            .send()
            .await;
        if let Err(error) = written {
            panic!("backdating {id}: {error:?}");
        }
    }

    pub async fn executions_named(&self, name: &str) -> usize {
        let executions = self.executions().await;
        executions.iter().filter(|(found, _)| found == name).count()
    }

    /// The items whose `key` attribute is `value`, in the table (`index` None) or in one
    /// of its indexes.
    pub async fn items_where(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
    ) -> Vec<HashMap<String, AttributeValue>> {
        let output = self
            .dynamodb()
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression(format!("{key} = :value"))
            .expression_attribute_values(":value", AttributeValue::S(value.into()))
            .send()
            .await;
        match output {
            Ok(output) => output.items.unwrap_or_default(),
            Err(error) => panic!("Query {index:?} {key} = {value}: {error:?}"),
        }
    }

    /// Sets one attribute of order `id`'s item to `value`, as an older release or another
    /// writer left it.
    pub async fn set_order_attribute(&self, id: &OrderId, name: &str, value: &str) {
        let written = self
            .order_item_update(id.as_str())
            .update_expression("SET #name = :value")
            .expression_attribute_names("#name", name)
            .expression_attribute_values(":value", AttributeValue::S(value.into()))
            .send()
            .await;
        if let Err(error) = written {
            panic!("setting {name} of {id}: {error:?}");
        }
    }

    /// How many items the table holds under `pk`.
    pub async fn items_under(&self, pk: &str) -> usize {
        self.items_where(None, "pk", pk).await.len()
    }

    /// How many orders the by-merchant index lists for `merchant`.
    pub async fn orders_of_merchant(&self, merchant: &str) -> usize {
        let merchant = format!("MERCHANT#{merchant}");
        self.items_where(
            Some(order_core::store::BY_MERCHANT_INDEX),
            "gsi1pk",
            &merchant,
        )
        .await
        .len()
    }
}

/// The partner simulator's admin API: fault rules, deliveries and the ledger, through its
/// typed client.
pub struct Partners {
    admin: Admin,
}

impl Partners {
    /// Adds fault rules (see infra/partner-simulator/README.md), written as JSON for
    /// brevity and read as the simulator's `RuleSpec`, so a misspelt field fails here.
    pub async fn inject(&self, rules: Value) {
        let rules: Vec<RuleSpec> = serde_json::from_value(rules.clone())
            .unwrap_or_else(|e| panic!("not fault rules: {e}: {rules}"));
        if let Err(error) = self.admin.add_faults(&rules).await {
            panic!("{error}");
        }
    }

    /// A merchant of its own for whom the partners apply `rules` (each rule's
    /// `merchant_id` is filled in), so that tests with faults run side by side.
    pub async fn merchant_with(&self, rules: Value) -> String {
        let merchant = unique_merchant();
        let mut rules = rules;
        for rule in rules.as_array_mut().into_iter().flatten() {
            rule["merchant_id"] = Value::from(merchant.clone());
        }
        self.inject(rules).await;
        merchant
    }

    /// How often the fault rules of `merchant` for `partner`/`operation` have fired.
    pub async fn fired(&self, merchant: &str, partner: &str, operation: &str) -> u64 {
        let rules = match self.admin.faults().await {
            Ok(list) => list.rules,
            Err(error) => panic!("{error}"),
        };
        rules
            .iter()
            .filter(|r| r.merchant_id.as_deref() == Some(merchant))
            .filter(|r| r.partner == partner && r.operation == operation)
            .map(|r| r.fired)
            .sum()
    }

    /// How many partner requests were answered from a kept answer (a replayed
    /// idempotency key), in the whole simulator.
    pub async fn replayed_requests(&self) -> u64 {
        match self.admin.ledger(&Default::default()).await {
            Ok(view) => view.requests.replayed,
            Err(error) => panic!("{error}"),
        }
    }

    /// Delivers the order's parcel now (also one held back by a `hold` rule).
    pub async fn deliver(&self, order_id: &str) {
        if let Err(error) = self.admin.deliver(order_id).await {
            panic!("{error}");
        }
    }

    /// The ledger of one order.
    pub async fn ledger(&self, order_id: &str) -> Ledger {
        match self.admin.order_ledger(order_id).await {
            Ok(view) => Ledger(
                serde_json::to_value(view).unwrap_or_else(|e| panic!("the ledger as JSON: {e}")),
            ),
            Err(error) => panic!("{error}"),
        }
    }
}

/// A fault rule of the partner simulator: `fault` on every `operation` at `partner`.
pub fn fault(partner: &str, operation: &str, fault: &str) -> Value {
    serde_json::json!({"partner": partner, "operation": operation, "fault": fault})
}

/// A scratch secret in the emulator's Secrets Manager. [`ScratchSecret::delete`] removes
/// it; a test that fails before that leaves the deletion to `Drop`.
pub struct ScratchSecret {
    pub client: aws_sdk_secretsmanager::Client,
    pub name: String,
    deleted: bool,
}

impl ScratchSecret {
    /// Creates `scratch-<purpose>-<unique>` holding `value`.
    pub async fn create(stack: &Stack, purpose: &str, value: &str) -> ScratchSecret {
        let client = aws_sdk_secretsmanager::Client::new(&stack.aws);
        let name = format!("scratch-{purpose}-{}", unique_key());
        let created = client
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await;
        assert!(created.is_ok(), "create {name}: {created:?}");
        ScratchSecret {
            client,
            name,
            deleted: false,
        }
    }

    /// Puts `value` as the secret's current value (a rotation).
    pub async fn rotate(&self, value: &str) {
        let secret = self.client.put_secret_value().secret_id(&self.name);
        let put = secret.secret_string(value).send().await;
        assert!(put.is_ok(), "put a new value in {}: {put:?}", self.name);
    }

    /// Deletes the secret at once (no recovery window).
    pub async fn delete(mut self) {
        self.deleted = true;
        let deleted = delete_secret(self.client.clone(), self.name.clone()).await;
        assert!(deleted.is_ok(), "delete {}: {deleted:?}", self.name);
    }
}

async fn delete_secret(client: aws_sdk_secretsmanager::Client, name: String) -> Result<(), String> {
    let request = client.delete_secret().secret_id(name);
    let deleted = request.force_delete_without_recovery(true).send().await;
    deleted.map(|_| ()).map_err(|error| format!("{error:?}"))
}

impl Drop for ScratchSecret {
    fn drop(&mut self) {
        // Best effort, for a test that failed first: the emulator goes away with the
        // stack anyway.
        if let (false, Ok(handle)) = (self.deleted, tokio::runtime::Handle::try_current()) {
            handle.spawn(delete_secret(self.client.clone(), self.name.clone()));
        }
    }
}

/// The entries of a JSON map (a template's resources, a definition's states) whose
/// `Type` is `kind`, by name.
pub fn of_type<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    kind: &str,
) -> BTreeMap<String, Value> {
    entries
        .into_iter()
        .filter(|(_, entry)| entry["Type"] == kind)
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect()
}

/// What the partners hold for a completed new order: its stock reserved, its charge
/// captured, its parcel delivered (for [`Ledger::assert_statuses`]).
pub const COMPLETED_NEW_ORDER: &[(&str, &[&str])] = &[
    ("reservations", &["reserved"]),
    ("charges", &["captured"]),
    ("shipments", &["delivered"]),
];

/// One order's entries in the partner ledger.
#[derive(Debug)]
pub struct Ledger(pub Value);

impl Ledger {
    /// The entries of one kind (`charges`, `reservations`, ...).
    pub fn entries(&self, kind: &str) -> Vec<Value> {
        self.0[kind].as_array().cloned().unwrap_or_default()
    }

    /// Checks the `status` of every entry of each kind named (`[]`: no entry at all).
    pub fn assert_statuses(&self, expected: &[(&str, &[&str])]) {
        for (kind, statuses) in expected {
            assert_eq!(self.statuses(kind), *statuses, "{kind}: {self:?}");
        }
    }

    /// The `status` of every entry of one kind, in ledger order.
    pub fn statuses(&self, kind: &str) -> Vec<String> {
        self.entries(kind)
            .iter()
            .map(|e| e["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The `(step, status, attempts)` of every step of an order view, in the order they ran.
pub fn steps(view: &Value) -> Vec<(String, String, u64)> {
    view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default().to_owned(),
                s["status"].as_str().unwrap_or_default().to_owned(),
                s["attempts"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The step named `name` in an order view.
pub fn step<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == name))
        .unwrap_or(&Value::Null)
}

/// An HTTP answer, its body parsed as JSON (Null when it is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The reply to a request sent by the caller; panics when nothing answered.
    pub async fn from_result(result: Result<reqwest::Response, reqwest::Error>) -> Reply {
        Reply::from(result).await
    }

    async fn from(result: Result<reqwest::Response, reqwest::Error>) -> Reply {
        let response =
            result.unwrap_or_else(|error| panic!("the orders API did not answer: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// The `path: message` lines of a 400's problems.
    pub fn problems(&self) -> Vec<String> {
        self.body["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["path"].as_str().unwrap_or_default(),
                    p["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Sends a request to the orders API signed with SigV4 (`execute-api`) with the stack's
/// credentials: the API requires IAM authorization on API Gateway (AWS, MiniStack); the
/// moto stack's function URLs ignore the signature. See `local_stack::signing`.
pub async fn send_signed(
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut request = request.build()?;
    if let Err(error) = local_stack::signing::Signer::from_env().sign(&mut request) {
        panic!("{error}");
    }
    http().execute(request).await
}

/// One of the stack's other API callers (`ORDERS_API_<NAME>_…` in stack.env, see
/// `local_stack::callers`): its principal, and requests signed with its own key.
pub struct Caller {
    pub principal: order_core::callers::Principal,
    signer: local_stack::signing::Signer,
    orders_api: String,
}

impl Caller {
    /// The caller `name` (`PORTAL`, `APP`) of the running stack.
    pub fn named(name: &str) -> Caller {
        let var = |part: &str| env(&format!("ORDERS_API_{name}_{part}"));
        let principal = order_core::callers::Principal::parse(&var("ARN"))
            .unwrap_or_else(|error| panic!("{error}"));
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
        Caller {
            principal,
            signer: local_stack::signing::Signer::new(
                &var("ACCESS_KEY_ID"),
                &var("SECRET_ACCESS_KEY"),
                &region,
            ),
            orders_api: env("ORDERS_API_URL"),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let mut request = request
            .build()
            .unwrap_or_else(|error| panic!("building a request: {error}"));
        if let Err(error) = self.signer.sign(&mut request) {
            panic!("{error}");
        }
        Reply::from(http().execute(request).await).await
    }

    /// `POST /orders` with `key`, signed as this caller.
    pub async fn post_order(&self, key: &str, body: &str) -> Reply {
        let request = http()
            .post(format!("{}/orders", self.orders_api))
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(body.to_owned());
        self.send(request).await
    }

    /// `GET /orders/{id}`, signed as this caller.
    pub async fn get_order(&self, id: &str) -> Reply {
        self.send(http().get(format!("{}/orders/{id}", self.orders_api)))
            .await
    }

    /// `POST /orders/{id}/cancel`, signed as this caller.
    pub async fn cancel(&self, id: &str) -> Reply {
        self.send(http().post(format!("{}/orders/{id}/cancel", self.orders_api)))
            .await
    }
}

/// The emulator the stack under test runs on (`LOCAL_STACK_EMULATOR` in its environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// moto with cargo lambda watch (the development stack).
    Moto,
    /// MiniStack: the template deployed through its CloudFormation.
    MiniStack,
}

impl Backend {
    pub fn current() -> Backend {
        match std::env::var("LOCAL_STACK_EMULATOR").as_deref() {
            Ok("ministack") => Backend::MiniStack,
            _ => Backend::Moto,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Backend::Moto => "moto",
            Backend::MiniStack => "ministack",
        }
    }
}

/// Whether the running test must stop here because it cannot hold on `backend` (when that
/// is the stack under test), for the reason `gap` (a known gap of that emulator, listed
/// in the README). Says so on stdout, with the test's name, in a line `make test` counts
/// and lists (`skipped on <backend>: <test>: <gap>`): a test is never skipped silently.
///
/// ```ignore
/// if system_tests::skip_on(Backend::MiniStack, "history lacks TaskStarted") { return; }
/// ```
pub fn skip_on(backend: Backend, gap: &str) -> bool {
    if Backend::current() != backend {
        return false;
    }
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    // Straight to the process's stdout: libtest would swallow a println! of a passing test.
    let _ = writeln!(
        std::io::stdout().lock(),
        "skipped on {}: {test}: {gap}",
        backend.name()
    );
    true
}

pub fn http() -> reqwest::Client {
    match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(client) => client,
        Err(error) => panic!("HTTP client: {error}"),
    }
}

/// Checks what the ledger says of an order: its status, and the failure recorded on it
/// as `[step, error name, reason]`.
pub async fn assert_failure_recorded(
    store: &OrderStore,
    id: &order_core::OrderId,
    status: order_core::OrderStatus,
    [step, error, reason]: [&str; 3],
) {
    let order = store.require_order(id).await.ok();
    assert_eq!(
        order.map(|o| (o.status, o.failure.map(|f| (f.step, f.error, f.reason)))),
        Some((
            status,
            Some((step.to_owned(), error.to_owned(), reason.to_owned()))
        )),
        "order {id}"
    );
}

/// A merchant id no other test uses.
pub fn unique_merchant() -> String {
    format!(
        "m-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn unique_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A valid new_merchant order for `merchant`.
pub fn valid_order(merchant: &str) -> Value {
    order_core::order::example_request(merchant)
}

/// A valid order of `kind` for `merchant` (replacements name one faulty serial per unit).
pub fn order_of_kind(kind: &str, merchant: &str) -> Value {
    let mut order = valid_order(merchant);
    order["kind"] = Value::from(kind);
    if kind == "replacement" {
        order["lines"] = serde_json::json!([{"sku": "A920-PRO", "quantity": 2}]);
        order["replace_serials"] = serde_json::json!(["SN-FAULTY-0001", "SN-FAULTY-0002"]);
    }
    order
}

pub fn catalogue() -> Catalogue {
    Catalogue::builtin().unwrap_or_else(|error| panic!("catalogue: {error}"))
}

/// The workspace root.
/// `template.yaml` after the SAM transform (infra/translate-sam.py, the translator `sam
/// deploy` runs, offline): what CloudFormation deploys. Needs the lint tools (`bash
/// infra/lint.sh` installs them into .venv-lint; `make test` runs it first).
pub fn translated_document() -> Value {
    let root = root();
    let python = root.join(".venv-lint/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash infra/lint.sh` once (it installs the SAM translator)",
        python.display()
    );
    let mut command = std::process::Command::new(&python);
    command
        .arg(root.join("infra/translate-sam.py"))
        .arg(root.join("template.yaml"));
    let stdout = stdout_of(command, "the SAM transform");
    serde_json::from_slice(&stdout).expect("the translated template is JSON")
}

/// What `command` printed, run in the workspace root; panics, with its stderr, when it
/// cannot start or fails.
pub fn stdout_of(mut command: std::process::Command, what: &str) -> Vec<u8> {
    let output = command
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The Resources of the translated template ([`translated_document`]).
pub fn translated_template() -> serde_json::Map<String, Value> {
    translated_document()["Resources"]
        .as_object()
        .cloned()
        .expect("the translated template has Resources")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of the workspace, built next to the test executables.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target/debug/<name>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Stack {
    /// Every item of the table for which `filter` holds (a Scan, all pages; `values` binds
    /// its `:placeholders` to strings). For tests that prove nothing was written under keys
    /// they made up, where no index can be queried by prefix.
    pub async fn scan_where(
        &self,
        filter: &str,
        values: &[(&str, &str)],
    ) -> Vec<HashMap<String, AttributeValue>> {
        let mut request = self
            .dynamodb()
            .scan()
            .table_name(&self.table)
            .filter_expression(filter);
        for (name, value) in values {
            request =
                request.expression_attribute_values(*name, AttributeValue::S((*value).into()));
        }
        let mut items = Vec::new();
        let mut pages = request.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            match item {
                Ok(item) => items.push(item),
                Err(error) => panic!("Scan where {filter}: {error:?}"),
            }
        }
        items
    }
}

/// Polls `probe` every `interval` until it answers `Ok`, and returns that; after `timeout`
/// fails the test naming `what` and the probe's last `Err` (what it saw instead). The one
/// way the tests wait for something.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s; last seen: {seen}",
            timeout.as_secs()
        );
        tokio::time::sleep(interval).await;
    }
}

/// The courier's signature of `body` sent now: `t=<now>,v1=<hmac>`.
pub fn sign_now(secret: &str, body: &[u8]) -> String {
    order_core::delivery::sign(secret, chrono::Utc::now().timestamp(), body)
}

/// A stack started for one test alone, on the emulator of the stack `make test` runs the
/// tests on (`Backend::current`), with `extra` arguments for `local-stack up`; stopped
/// (and its directory removed) on drop, also when the test fails.
pub struct OwnStack {
    pub dir: PathBuf,
}

/// The variables that point at the stack `make test` runs the tests in: a stack started
/// by a test must not inherit them (its functions get their own).
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
    pub fn start(extra: &[&std::ffi::OsStr]) -> OwnStack {
        let stack = OwnStack {
            dir: std::env::temp_dir().join(format!("own-stack-{}", uuid::Uuid::new_v4())),
        };
        let mut command = std::process::Command::new(workspace_binary("local-stack"));
        command
            .arg("up")
            .arg("--dir")
            .arg(&stack.dir)
            .args(["--free-ports", "--no-reload", "--venv"])
            .arg(root().join(".venv"))
            .arg("--emulator")
            .arg(Backend::current().name())
            .args(extra)
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

    /// The stack's `stack.env`.
    pub fn env(&self) -> HashMap<String, String> {
        match local_stack::stack::read_env(&self.dir.join("stack.env")) {
            Ok(env) => env.into_iter().collect(),
            Err(error) => panic!("{error}"),
        }
    }
}

impl Drop for OwnStack {
    fn drop(&mut self) {
        local_stack::stack::down(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The statuses an order ends in.
pub const ENDED: [&str; 4] = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];

/// Orders the tests of one test binary (each binary has its own) around a test that
/// acts on every unfinished order of the stack: that one holds it for writing
/// ([`exclusive`]), the others for reading ([`shared`]).
static EXCLUSIVE: RwLock<()> = RwLock::new(());

/// Held by the tests that may run side by side. Each test runs on a runtime of its own
/// thread, so waiting for the lock blocks nothing else.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test that acts on every unfinished order of the stack.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(PoisonError::into_inner)
}

/// The reference `name` recorded by the first step `step` of an order as the API
/// shows it (`Null` when there is none).
pub fn step_reference<'a>(view: &'a Value, step: &str, name: &str) -> &'a Value {
    view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"] == step)
        .map_or(&Value::Null, |s| &s["references"][name])
}
