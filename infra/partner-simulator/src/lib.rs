//! The partner simulator: the five third parties an order crosses (warehouse, payments,
//! terminals, courier, notifications) as one HTTP server, for the local stack and tests
//! only. The contract is `README.md` next to this crate; this crate is its executable
//! form.
//!
//! - [`partners`]: the partner API (validation, idempotency, faults, the operations);
//! - [`ledger`]: every effect, the stock, closed orders and counters;
//! - [`idempotency`]: kept answers per `(partner, Idempotency-Key)`;
//! - [`faults`]: fault rules and their deterministic decisions;
//! - [`deliveries`]: the courier's signed webhook posts with retries;
//! - [`admin`]: the admin API (rules, seed, deliveries, ledger) and its wire types;
//! - [`client`]: a typed client of the admin API, for the tests, the demo and the chaos run.
//!
//! Tests start it in-process: `app(AppState::new(config)?)` served on `127.0.0.1:0`.

pub mod admin;
pub mod client;
pub mod deliveries;
pub mod error;
pub mod faults;
pub mod idempotency;
pub mod ledger;
pub mod operation;
pub mod partners;

use crate::error::ApiError;
use crate::faults::FaultBook;
use crate::idempotency::IdempotencyStore;
use crate::ledger::Ledger;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// Where and how the courier posts delivery events.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The receiver's URL (`http` or `https`).
    pub url: String,
    /// The HMAC-SHA256 key of `X-Courier-Signature`.
    pub secret: String,
}

/// How the simulator behaves; the command-line flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// When set, every partner request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// A partner named here needs its own token instead (each real partner issues its
    /// own credential).
    pub partner_tokens: std::collections::BTreeMap<operation::Partner, String>,
    /// Without it, shipments are never delivered (they stay `created`).
    pub webhook: Option<Webhook>,
    /// From shipment created to its delivery event.
    pub delivery_delay: Duration,
    /// The seed of every fault decision (changeable at run time: `PUT /admin/seed`).
    pub seed: u64,
    /// Units of every SKU the warehouse starts with.
    pub stock_per_sku: u64,
}

impl Default for Config {
    /// The command line's defaults: no token, no webhook, 1 s delivery delay, seed 0,
    /// 1 000 000 units per SKU.
    fn default() -> Self {
        Config {
            token: None,
            partner_tokens: std::collections::BTreeMap::new(),
            webhook: None,
            delivery_delay: Duration::from_millis(1000),
            seed: 0,
            stock_per_sku: 1_000_000,
        }
    }
}

/// Why the simulator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("refusing to listen on {0}: the partner simulator binds loopback addresses only (127.0.0.0/8 or ::1)")]
    NotLoopback(SocketAddr),
    #[error("invalid webhook URL {url:?}: {reason}")]
    WebhookUrl { url: String, reason: String },
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Accepts `addr` only if it is a loopback address (127.0.0.0/8 or ::1): the simulator
/// has no real authentication and must not be reachable from other machines.
pub fn check_listen(addr: SocketAddr) -> Result<SocketAddr, StartError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(StartError::NotLoopback(addr))
    }
}

/// Everything the simulator knows, behind one lock: each request's idempotency lookup,
/// fault decision and effect happen atomically.
#[derive(Debug)]
pub struct World {
    pub ledger: Ledger,
    pub idempotency: IdempotencyStore,
    pub faults: FaultBook,
}

/// The shared state of the server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    world: Mutex<World>,
    http: reqwest::Client,
    /// Delivery tasks running (scheduled or sending), for [`AppState::deliveries_settled`].
    deliveries: watch::Sender<usize>,
}

impl AppState {
    /// A fresh simulator: empty ledger, no rules, seed and stock from `config`. Fails on
    /// a webhook URL that is not `http(s)://…` or if no HTTP client can be built.
    pub fn new(config: Config) -> Result<Self, StartError> {
        if let Some(webhook) = &config.webhook {
            let invalid = |reason: String| StartError::WebhookUrl {
                url: webhook.url.clone(),
                reason,
            };
            let url = reqwest::Url::parse(&webhook.url).map_err(|e| invalid(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("the scheme must be http or https".to_owned()));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()?;
        let world = World {
            ledger: Ledger::new(config.stock_per_sku),
            idempotency: IdempotencyStore::default(),
            faults: FaultBook::new(config.seed),
        };
        Ok(AppState {
            shared: Arc::new(Shared {
                config,
                world: Mutex::new(world),
                http,
                deliveries: watch::Sender::new(0),
            }),
        })
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Locks the world. Never hold the guard across an `.await`. A poisoned lock (a
    /// panic while it was held, i.e. a bug) is taken over rather than propagated.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// Counts a delivery task as running until the returned guard is dropped.
    pub(crate) fn delivery_started(&self) -> DeliveryGuard {
        self.shared.deliveries.send_modify(|n| *n += 1);
        DeliveryGuard {
            deliveries: self.shared.deliveries.clone(),
        }
    }

    /// Waits until no delivery task is running: every scheduled delivery has been
    /// posted (and retried) to the end, or given up. Tests use it instead of sleeping;
    /// a delivery started after a partner answer is already counted when the answer is
    /// sent.
    pub async fn deliveries_settled(&self) {
        let mut running = self.shared.deliveries.subscribe();
        // Fails only if the sender is gone, which `self` keeps alive.
        let _ = running.wait_for(|n| *n == 0).await;
    }
}

/// Marks one delivery task as running while alive.
pub(crate) struct DeliveryGuard {
    deliveries: watch::Sender<usize>,
}

impl Drop for DeliveryGuard {
    fn drop(&mut self) {
        self.deliveries.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The whole HTTP API: the five partners, the admin API and `GET /health`. Unknown paths
/// answer 404 `not_found`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(partners::routes())
        .merge(admin::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
}

/// Listens on `listen` (loopback only) and serves [`app`] until Ctrl-C or SIGTERM.
pub async fn run(listen: SocketAddr, config: Config) -> Result<(), StartError> {
    let addr = check_listen(listen)?;
    let state = AppState::new(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(listen = %addr, "partner simulator listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(StartError::Serve)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("partner simulator stopping");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        match s.parse() {
            Ok(addr) => addr,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn loopback_addresses_are_accepted() {
        for ok in ["127.0.0.1:4597", "127.0.0.2:0", "[::1]:4597"] {
            assert!(check_listen(addr(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn non_loopback_addresses_are_refused_with_a_clear_error() {
        for refused in [
            "0.0.0.0:4597",
            "192.168.1.10:4597",
            "[::]:4597",
            "10.0.0.1:80",
        ] {
            match check_listen(addr(refused)) {
                Err(e @ StartError::NotLoopback(_)) => {
                    assert!(e.to_string().contains("loopback"), "{e}")
                }
                other => panic!("{refused} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn a_webhook_url_that_is_not_http_is_refused() {
        let config = Config {
            webhook: Some(Webhook {
                url: "ftp://127.0.0.1/hook".to_owned(),
                secret: "s".to_owned(),
            }),
            ..Config::default()
        };
        assert!(matches!(
            AppState::new(config),
            Err(StartError::WebhookUrl { .. })
        ));
    }
}
