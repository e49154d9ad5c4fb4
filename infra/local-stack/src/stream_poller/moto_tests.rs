//! The poller against a real moto, launched by `infra/moto/server.py` as the stack
//! launches it (the moto of `.venv`, `make venv`), with the outbox's table and event
//! source read from a template, and a fake function standing in for cargo lambda watch's
//! invoke endpoint. Each test's moto is stopped by its PID when the test ends, passed or
//! failed.

use super::aws::{Aws, Endpoints};
use super::run;
use crate::deploy::{self, Clients};
use crate::process::{self, Tracked};
use crate::signing::Signer;
use crate::template::{LocalResources, StreamEventSpec};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";

/// A moto process of the test's own, stopped by its PID when dropped.
struct Moto {
    process: Tracked,
    url: String,
    dir: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        process::stop(&self.process, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// moto on a free port, its shard iterators living `iterator_seconds`.
async fn moto(iterator_seconds: u32) -> Moto {
    let python = root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "no moto at {}: run `make venv`",
        python.display()
    );
    let port = process::free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
    let dir = std::env::temp_dir().join(format!("stream-poller-moto-{port}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let log = dir.join("moto.log");
    let server = root().join("infra/moto/server.py").display().to_string();
    let args = [
        server,
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    let env = [(
        "MOTO_SHARD_ITERATOR_SECONDS".to_owned(),
        iterator_seconds.to_string(),
    )];
    let process = process::spawn("moto", &python, &args, &env, &root(), &log);
    let process = process.unwrap_or_else(|e| panic!("{e}"));
    let moto = Moto {
        process,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    while http
        .get(format!("{}/moto-api/", moto.url))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline && moto.process.is_alive(),
            "moto did not start:\n{}",
            process::tail(&log, 20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

/// The outbox's table, created in `moto` from the template, and its event source.
async fn outbox(moto: &Moto, template: &str) -> (Clients, StreamEventSpec) {
    let path = moto.dir.join("template.yaml");
    std::fs::write(&path, template).unwrap_or_else(|e| panic!("{e}"));
    let resources = LocalResources::load(&path, REGION, &moto.url, &Default::default());
    let resources = resources.unwrap_or_else(|e| panic!("{e}"));
    let clients = Clients::local(&moto.url, REGION).await;
    let tables = LocalResources {
        secrets: Vec::new(),
        queues: Vec::new(),
        state_machines: Vec::new(),
        event_buses: Vec::new(),
        ..resources.clone()
    };
    deploy::deploy(&clients, &tables)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let source = resources.stream_events.first().cloned();
    (clients, source.unwrap_or_else(|| panic!("no stream event")))
}

fn item(order: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("ORDER#{order}"))),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

async fn put(clients: &Clients, order: &str, sk: &str) {
    let put = clients.dynamodb.put_item().table_name("OrdersTable");
    let put = put.set_item(Some(item(order, sk))).send().await;
    put.unwrap_or_else(|e| panic!("PutItem {sk}: {e}"));
}

/// What the fake function answers its `n`th invocation (from 0) of `event`:
/// `(function error, answer)`.
type Script = dyn Fn(usize, &Json) -> (bool, Json) + Send + Sync;

/// A fake cargo lambda watch: records every invocation's event and answers by `script`.
/// Returns its base URL and the events received.
async fn function(script: Arc<Script>) -> (String, Arc<Mutex<Vec<Json>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/2015-03-31/functions/publish-events/invocations",
        axum::routing::post(move |body: String| {
            let (seen, script) = (seen.clone(), script.clone());
            async move {
                let event: Json = serde_json::from_str(&body).unwrap_or(Json::Null);
                let mut events = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let (failed, answer) = script(events.len(), &event);
                events.push(event);
                let mut headers = HeaderMap::new();
                if failed {
                    headers.insert(
                        "x-amz-function-error",
                        HeaderValue::from_static("Unhandled"),
                    );
                }
                (StatusCode::OK, headers, answer.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
    let listener = listener.unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// The poller for `source`, reading `moto` and invoking the function at `lambda`.
fn poller(moto: &Moto, lambda: &str, source: StreamEventSpec) -> tokio::task::JoinHandle<()> {
    let endpoints = Endpoints {
        dynamodb: moto.url.clone(),
        streams: moto.url.clone(),
        lambda: lambda.to_owned(),
    };
    let aws = Aws::new(endpoints, Signer::new("test", "test", REGION));
    let aws = aws.unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        if let Err(error) = run(aws, vec![source]).await {
            panic!("{error}");
        }
    })
}

/// Waits until `count` events have arrived, then a little longer for any extra one.
async fn events(received: &Mutex<Vec<Json>>, count: usize) -> Vec<Json> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let now = || {
        received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    while now().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    now()
}

/// Each event's records as their sort keys.
fn sort_keys(events: &[Json]) -> Vec<Vec<String>> {
    let keys = |event: &Json| -> Vec<String> {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let key = |r: &Json| r["dynamodb"]["Keys"]["sk"]["S"].as_str().map(str::to_owned);
        records.iter().map(|r| key(r).unwrap_or_default()).collect()
    };
    events.iter().map(keys).collect()
}

/// The sequence number of the record with sort key `sk` in `event`.
fn sequence_of(event: &Json, sk: &str) -> Option<String> {
    let records = event["Records"].as_array()?;
    let record = records
        .iter()
        .find(|r| r["dynamodb"]["Keys"]["sk"]["S"] == json!(sk))?;
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn outbox_records_reach_the_function_in_order_and_a_failed_one_again_from_where_it_failed() {
    let moto = moto(900).await;
    let (clients, source) = outbox(&moto, crate::template::tests::OUTBOX).await;
    put(&clients, "o-1", "EVENT#0001#order.placed").await;
    put(&clients, "o-1", "ORDER").await;
    // A transaction cancelled by its second item never happened: its outbox item is not
    // delivered (moto alone would leave it in the stream).
    let never = TransactWriteItem::builder().put(
        Put::builder()
            .table_name("OrdersTable")
            .set_item(Some(item("o-2", "EVENT#0001#order.placed")))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let refused = TransactWriteItem::builder().put(
        Put::builder()
            .table_name("OrdersTable")
            .set_item(Some(item("o-1", "ORDER")))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let cancelled = (clients.dynamodb.transact_write_items())
        .transact_items(never.build())
        .transact_items(refused.build())
        .send()
        .await;
    assert!(
        cancelled.is_err(),
        "the transaction was meant to be cancelled"
    );
    put(&clients, "o-1", "EVENT#0002#order.paid").await;

    // The first invocation reports the second record failed; the others succeed.
    let script: Arc<Script> = Arc::new(|n, event: &Json| {
        let failed = sequence_of(event, "EVENT#0002#order.paid").filter(|_| n == 0);
        let failures: Vec<Json> = failed
            .iter()
            .map(|id| json!({"itemIdentifier": id}))
            .collect();
        (false, json!({"batchItemFailures": failures}))
    });
    let (lambda, received) = function(script).await;
    let polling = poller(&moto, &lambda, source);
    let events = events(&received, 2).await;
    polling.abort();

    assert_eq!(
        sort_keys(&events),
        [
            vec!["EVENT#0001#order.placed", "EVENT#0002#order.paid"],
            vec!["EVENT#0002#order.paid"],
        ]
    );
    assert_eq!(
        sequence_of(&events[0], "EVENT#0002#order.paid"),
        sequence_of(&events[1], "EVENT#0002#order.paid")
    );
    let stream = (clients.dynamodb.describe_table().table_name("OrdersTable"))
        .send()
        .await
        .ok()
        .and_then(|d| d.table?.latest_stream_arn);
    for event in &events {
        let parsed: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{e}: {event}"));
        for record in parsed.records {
            assert_eq!(record.event_name, "INSERT");
            assert_eq!(record.aws_region, REGION);
            assert_eq!(record.event_source_arn, stream);
            assert!(record.change.new_image.get("pk").is_some());
        }
    }
}

#[tokio::test]
async fn a_failing_function_gets_the_batch_again_and_later_records_arrive_after_its_iterator_expired(
) {
    // Iterators live 1 s; the retries below wait 0.5 s and 1 s, so the iterator the
    // poller holds has expired when it reads on.
    let moto = moto(1).await;
    let (clients, source) = outbox(&moto, crate::template::tests::OUTBOX).await;
    put(&clients, "o-1", "EVENT#0001#order.placed").await;
    let script: Arc<Script> = Arc::new(|n, _: &Json| {
        let failed = n < 2;
        let answer = json!({"errorType": "Store.Unavailable", "errorMessage": "throttled"});
        (failed, if failed { answer } else { json!({}) })
    });
    let (lambda, received) = function(script).await;
    let polling = poller(&moto, &lambda, source);
    let first = events(&received, 3).await;
    put(&clients, "o-1", "EVENT#0002#order.paid").await;
    let all = events(&received, 4).await;
    polling.abort();

    let placed = vec!["EVENT#0001#order.placed"];
    assert_eq!(
        sort_keys(&first),
        [placed.clone(), placed.clone(), placed.clone()]
    );
    assert_eq!(
        sort_keys(&all),
        [
            placed.clone(),
            placed.clone(),
            placed,
            vec!["EVENT#0002#order.paid"]
        ]
    );
}

#[tokio::test]
async fn a_batch_is_discarded_after_its_last_retry_and_the_next_one_is_delivered() {
    let moto = moto(900).await;
    let template = crate::template::tests::OUTBOX
        .replace("MaximumRetryAttempts: -1", "MaximumRetryAttempts: 1");
    let (clients, source) = outbox(&moto, &template).await;
    put(&clients, "o-1", "EVENT#0001#order.placed").await;
    let poison = "EVENT#0001#order.placed";
    let script: Arc<Script> = Arc::new(move |_, event: &Json| {
        let failed = sequence_of(event, poison).is_some();
        (
            failed,
            if failed {
                json!({"errorType": "Bug"})
            } else {
                json!({})
            },
        )
    });
    let (lambda, received) = function(script).await;
    let polling = poller(&moto, &lambda, source);
    let failed = events(&received, 2).await;
    put(&clients, "o-1", "EVENT#0002#order.paid").await;
    let all = events(&received, 3).await;
    polling.abort();

    assert_eq!(sort_keys(&failed).len(), 2, "one invocation and one retry");
    assert_eq!(
        sort_keys(&all),
        [vec![poison], vec![poison], vec!["EVENT#0002#order.paid"]]
    );
}
