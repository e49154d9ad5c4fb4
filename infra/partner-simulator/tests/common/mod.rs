//! Test support: a simulator started in-process on 127.0.0.1:0, talked to over real
//! HTTP, and a webhook receiver standing in for our courier webhook.
//!
//! Waiting is event-driven (channels, `deliveries_settled`, polling the ledger); the
//! few waits have a generous liveness guard so a broken build fails instead of hanging.
//! It is never an assertion about speed.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use partner_simulator::{app, AppState, Config, Webhook};
use serde_json::{json, Value};
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a wait may take before the test gives up: a guard against hangs only.
pub const LIVENESS: Duration = Duration::from_secs(60);

/// The value, or a panic naming what failed.
pub fn must<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// `prefix-` and a fresh uuid: merchants, orders and keys no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Awaits `future`, panicking with `what` if it has not finished within [`LIVENESS`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIVENESS, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up waiting: {what}"),
    }
}

/// A simulator answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    pub retry_after: Option<String>,
}

impl Reply {
    /// The error code of an error answer (`""` otherwise).
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// Serves `router` on a free loopback port in the background and returns its address;
/// `what` names the server in a panic.
async fn serve(router: Router, what: &str) -> std::net::SocketAddr {
    let listener = must(
        tokio::net::TcpListener::bind("127.0.0.1:0").await,
        &format!("bind the {what} to 127.0.0.1:0"),
    );
    let addr = must(listener.local_addr(), &format!("the {what}'s address"));
    let what = what.to_owned();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            panic!("{what} stopped: {e}");
        }
    });
    addr
}

/// A running simulator.
pub struct Sim {
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
}

impl Sim {
    /// Starts a simulator with `config` on a free loopback port.
    pub async fn start(config: Config) -> Sim {
        let state = must(AppState::new(config), "simulator state");
        let addr = serve(app(state.clone()), "simulator").await;
        Sim {
            base: format!("http://{addr}"),
            state,
            http: reqwest::Client::new(),
        }
    }

    /// Starts a simulator with the default configuration.
    pub async fn with_defaults() -> Sim {
        Sim::start(Config::default()).await
    }

    /// Sends a request and reads the answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = must(request.send().await, "request to the simulator");
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let retry_after = header("retry-after");
        let text = must(response.text().await, "answer body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            must(serde_json::from_str(&text), &format!("JSON answer: {text}"))
        };
        Reply {
            status,
            body,
            replayed,
            retry_after,
        }
    }

    /// A partner request with an `Idempotency-Key`.
    pub async fn call(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    /// `POST` to the admin API.
    pub async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `GET` from the admin API.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Adds one fault rule and answers its id.
    pub async fn add_rule(&self, rule: Value) -> u64 {
        let reply = self
            .admin_post("/admin/faults", &json!({ "rules": [rule] }))
            .await;
        assert_eq!(reply.status, 201, "rule refused: {:?}", reply.body);
        match reply.body["ids"][0].as_u64() {
            Some(id) => id,
            None => panic!("no rule id in {:?}", reply.body),
        }
    }

    /// The ledger for one merchant.
    pub async fn ledger_of(&self, merchant_id: &str) -> Value {
        let reply = self
            .admin_get(&format!("/admin/ledger?merchant_id={merchant_id}"))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body
    }

    /// The whole ledger.
    pub async fn ledger(&self) -> Value {
        self.admin_get("/admin/ledger").await.body
    }

    /// Polls the merchant's ledger until `done` holds for it, and answers it.
    pub async fn ledger_until(
        &self,
        merchant_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        within(what, async {
            loop {
                let ledger = self.ledger_of(merchant_id).await;
                if done(&ledger) {
                    return ledger;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// An order as the partners see it: ids, lines and address.
pub struct Order {
    pub merchant_id: String,
    pub order_id: String,
}

impl Order {
    /// A new order of a new merchant.
    pub fn fresh() -> Order {
        Order {
            merchant_id: unique("m"),
            order_id: unique("ord"),
        }
    }

    /// Another order of the same merchant.
    pub fn another(&self) -> Order {
        Order {
            merchant_id: self.merchant_id.clone(),
            order_id: unique("ord"),
        }
    }

    /// The body of a compensation (or any request naming only the order).
    pub fn ids(&self) -> Value {
        json!({ "order_id": self.order_id, "merchant_id": self.merchant_id })
    }

    pub fn reservation(&self, sku: &str, quantity: u32) -> Value {
        json!({
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "lines": [{ "sku": sku, "quantity": quantity }],
        })
    }

    pub fn charge(&self, amount_cents: u64) -> Value {
        json!({
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "amount_cents": amount_cents,
            "currency": "EUR",
        })
    }

    pub fn shipment(&self) -> Value {
        json!({
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "address": { "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE" },
            "parcels": 2,
        })
    }
}

/// One post received by the test webhook.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn event(&self) -> Value {
        must(serde_json::from_slice(&self.body), "delivery event JSON")
    }
}

struct ReceiverState {
    posts: mpsc::UnboundedSender<Received>,
    failures_left: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1:0 that answers 500 to its first `failures` posts and
/// 200 afterwards, and passes every post on to the test.
pub struct Receiver {
    pub url: String,
    posts: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Receiver {
        let (sender, posts) = mpsc::unbounded_channel();
        let state = Arc::new(ReceiverState {
            posts: sender,
            failures_left: AtomicUsize::new(failures),
        });
        let router = Router::new()
            .route("/webhooks/courier", post(receive))
            .with_state(state);
        let addr = serve(router, "receiver").await;
        Receiver {
            url: format!("http://{addr}/webhooks/courier"),
            posts,
        }
    }

    /// The next post received.
    pub async fn next(&mut self) -> Received {
        match within("a webhook post", self.posts.recv()).await {
            Some(post) => post,
            None => panic!("the receiver stopped"),
        }
    }

    /// The posts received so far, without waiting.
    pub fn received_so_far(&mut self) -> Vec<Received> {
        let mut posts = Vec::new();
        while let Ok(post) = self.posts.try_recv() {
            posts.push(post);
        }
        posts
    }

    /// A simulator configuration delivering to this receiver with `secret`.
    pub fn config(&self, secret: &str, delivery_delay: Duration) -> Config {
        Config {
            webhook: Some(Webhook {
                url: self.url.clone(),
                secret: secret.to_owned(),
            }),
            delivery_delay,
            ..Config::default()
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let _ = state.posts.send(Received {
        signature: header("x-courier-signature"),
        content_type: header("content-type"),
        body,
    });
    let fail = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
