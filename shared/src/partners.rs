//! The partners an order crosses, as one trait each, and their HTTP adapters.
//!
//! Every call carries an `Idempotency-Key` derived from `(order id, step)`, so a retry
//! after a timeout whose first attempt did take effect returns the first result instead
//! of charging, reserving or shipping twice. Compensations name the order ("release what
//! was reserved for order X"), so they work even when the forward call's answer was lost.
//!
//! Failures are classified once, here: a 5xx, a refused connection or a reset is
//! `Partner.Unavailable`, a 429 `Partner.Throttled`, a timeout `Partner.Timeout`, a 401 or
//! 403 (our credentials refused: after one re-read of the token secret) also
//! `Partner.Unavailable` (all transient, retried by the state machine); any other 4xx is
//! the operation's permanent refusal (`Payment.Declined`, `Stock.Unavailable`, ...), never
//! retried.
//!
//! The wire contract is documented with the simulator that serves it locally:
//! `infra/partner-simulator/README.md`.

use crate::config::{self, ConfigError};
use crate::errors::{ActivityError, ErrorName};
use crate::order::{DeliveryAddress, OrderId, OrderLine};
use crate::steps::Partner;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a partner call may take when `PARTNER_TIMEOUT_MS` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Who a partner call is for, and the key that makes it safe to repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    pub order_id: OrderId,
    pub merchant_id: String,
    /// `<order id>:<step>`: the same for every attempt of one step of one order.
    pub idempotency_key: String,
}

impl CallContext {
    /// The context of `step` for an order.
    pub fn new(order_id: &OrderId, merchant_id: &str, step: &str) -> CallContext {
        CallContext {
            order_id: order_id.clone(),
            merchant_id: merchant_id.to_owned(),
            idempotency_key: format!("{order_id}:{step}"),
        }
    }

    /// The context of `step` for a stored order.
    pub fn for_step(order: &crate::store::OrderRecord, step: &str) -> CallContext {
        CallContext::new(&order.order_id, &order.order.merchant_id, step)
    }

    fn body(&self, fields: Value) -> Value {
        let mut body = json!({"order_id": self.order_id, "merchant_id": self.merchant_id});
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            body.extend(fields);
        }
        body
    }
}

/// How a partner call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerFailure {
    /// 5xx, connection refused or reset, or an answer we could not read.
    Unavailable,
    /// 429: asked to slow down.
    Throttled,
    /// No answer in time; the partner may still have acted.
    Timeout,
    /// 401 or 403: the partner refused our credentials (a token rotated on one side
    /// only, or not yet put in its secret). Our fault, not the order's: retried like an
    /// outage, so an operator can fix the secret before the order is given up.
    Unauthorized,
    /// A permanent refusal (4xx) with the partner's error code.
    Refused { status: u16, code: String },
}

/// A failed partner call: which partner, which operation, what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{partner} {operation} failed: {message}")]
pub struct PartnerError {
    pub partner: Partner,
    pub operation: &'static str,
    pub failure: PartnerFailure,
    pub message: String,
}

impl PartnerError {
    /// The activity error for this failure; a permanent refusal becomes `refused`.
    pub fn into_activity_error(self, order_id: &OrderId, refused: ErrorName) -> ActivityError {
        let name = match &self.failure {
            PartnerFailure::Unavailable | PartnerFailure::Unauthorized => {
                ErrorName::PartnerUnavailable
            }
            PartnerFailure::Throttled => ErrorName::PartnerThrottled,
            PartnerFailure::Timeout => ErrorName::PartnerTimeout,
            PartnerFailure::Refused { .. } => refused,
        };
        ActivityError::new(name, format!("order {order_id}: {self}"))
    }
}

/// The warehouse's answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: String,
}

/// The warehouse's answer to a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// False when nothing was reserved for the order.
    pub released: bool,
    pub reservation_id: Option<String>,
}

/// What a charge asks for: an amount in the currency's smallest unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Amount {
    #[serde(rename = "amount_cents")]
    pub cents: u64,
    pub currency: String,
}

/// The payment processor's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub charge_id: String,
    pub amount_cents: u64,
    pub currency: String,
}

/// The payment processor's answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// False when the order was never charged.
    pub refunded: bool,
    pub refund_id: Option<String>,
    #[serde(default)]
    pub amount_cents: u64,
}

/// Terminals assigned to the merchant, one id per unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioning {
    pub terminal_ids: Vec<String>,
}

/// Terminals taken back from the merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprovisioning {
    pub deprovisioned: Vec<String>,
}

/// Terminals (by serial) that no longer take payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivation {
    pub deactivated: Vec<String>,
}

/// The courier's answer to a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub tracking_number: String,
}

/// The courier's answer to a cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCancellation {
    /// False when nothing had been shipped for the order.
    pub cancelled: bool,
    pub shipment_id: Option<String>,
}

/// A label the merchant sends faulty terminals back with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLabel {
    pub return_label_id: String,
    pub label_url: String,
}

/// A message handed to the notification service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
}

/// The warehouse: holds stock for an order until it ships.
pub trait Warehouse: Send + Sync {
    fn reserve(
        &self,
        call: &CallContext,
        lines: &[OrderLine],
    ) -> impl Future<Output = Result<Reservation, PartnerError>> + Send;
    fn release(
        &self,
        call: &CallContext,
    ) -> impl Future<Output = Result<Release, PartnerError>> + Send;
}

/// The payment processor.
pub trait Payments: Send + Sync {
    fn charge(
        &self,
        call: &CallContext,
        amount: &Amount,
    ) -> impl Future<Output = Result<Charge, PartnerError>> + Send;
    fn refund(
        &self,
        call: &CallContext,
    ) -> impl Future<Output = Result<Refund, PartnerError>> + Send;
}

/// The terminal management system.
pub trait Terminals: Send + Sync {
    fn provision(
        &self,
        call: &CallContext,
        lines: &[OrderLine],
    ) -> impl Future<Output = Result<Provisioning, PartnerError>> + Send;
    fn deprovision(
        &self,
        call: &CallContext,
    ) -> impl Future<Output = Result<Deprovisioning, PartnerError>> + Send;
    fn deactivate(
        &self,
        call: &CallContext,
        serials: &[String],
    ) -> impl Future<Output = Result<Deactivation, PartnerError>> + Send;
}

/// The courier.
pub trait Courier: Send + Sync {
    fn ship(
        &self,
        call: &CallContext,
        address: &DeliveryAddress,
        parcels: u32,
    ) -> impl Future<Output = Result<Shipment, PartnerError>> + Send;
    fn cancel(
        &self,
        call: &CallContext,
    ) -> impl Future<Output = Result<ShipmentCancellation, PartnerError>> + Send;
    fn return_label(
        &self,
        call: &CallContext,
        serials: &[String],
        address: &DeliveryAddress,
    ) -> impl Future<Output = Result<ReturnLabel, PartnerError>> + Send;
}

/// The notification service (e-mail, SMS, app push).
pub trait Notifications: Send + Sync {
    fn send(
        &self,
        call: &CallContext,
        template: &str,
        data: Value,
    ) -> impl Future<Output = Result<Message, PartnerError>> + Send;
}

/// One partner's HTTP API: base URL, credentials and timeouts from configuration.
#[derive(Debug, Clone)]
pub struct HttpPartner {
    partner: Partner,
    base_url: String,
    token: Option<Token>,
    client: reqwest::Client,
}

/// A partner's API token, kept out of `Debug` output so no log line can carry it. One
/// read from Secrets Manager is re-read when the partner refuses it (at most once per
/// [`crate::secrets::REFRESH_INTERVAL`]): a token rotated since the cold start is then
/// picked up without a redeploy.
#[derive(Clone)]
struct Token {
    value: Arc<tokio::sync::RwLock<String>>,
    source: Option<Arc<TokenSource>>,
}

struct TokenSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    read_at: tokio::sync::Mutex<std::time::Instant>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    fn fixed(value: String) -> Token {
        Token {
            value: Arc::new(tokio::sync::RwLock::new(value)),
            source: None,
        }
    }

    async fn current(&self) -> String {
        self.value.read().await.clone()
    }

    /// Reads the secret again if it may be (it came from one, and not within the refresh
    /// interval); whether the value changed.
    async fn refresh(&self, partner: Partner) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let mut read_at = source.read_at.lock().await;
        if read_at.elapsed() < crate::secrets::REFRESH_INTERVAL {
            return false;
        }
        *read_at = std::time::Instant::now();
        match crate::secrets::read(&source.client, &source.secret_id).await {
            Ok(value) => {
                let mut current = self.value.write().await;
                let changed = *current != value;
                *current = value;
                tracing::info!(%partner, changed, "partner token read again after a refusal");
                changed
            }
            Err(error) => {
                tracing::error!(%partner, %error, "cannot read the partner token again");
                false
            }
        }
    }
}

/// Partner settings are missing or malformed, or the HTTP client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PartnerConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("HTTP client for {partner}: {source}")]
    Client {
        partner: Partner,
        source: reqwest::Error,
    },
    #[error("API token of {partner}: {source}")]
    Token {
        partner: Partner,
        source: crate::secrets::SecretError,
    },
}

/// A partner's base URL must be `https://`; plain `http://` only to this machine (the
/// local stack's partner simulator on 127.0.0.1), so that no token or order crosses a
/// network in the clear.
fn check_base_url(partner: Partner, base_url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: partner.url_variable(),
        reason,
    };
    let url = reqwest::Url::parse(base_url)
        .map_err(|error| invalid(format!("{base_url:?} is not a URL ({error})")))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(format!(
            "{base_url:?} is plain http to another machine: partners are reached over https (http only on 127.0.0.1)"
        ))),
        other => Err(invalid(format!("{base_url:?} is not an http(s) URL ({other})"))),
    }
}

impl HttpPartner {
    /// The adapter for `partner` at `base_url`.
    pub fn new(
        partner: Partner,
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpPartner, PartnerConfigError> {
        check_base_url(partner, base_url)?;
        // A partner that answers with a redirect is answered as it is: a 3xx is a
        // failure, never followed (to a host the request, with its token, was not for).
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| PartnerConfigError::Client { partner, source })?;
        Ok(HttpPartner {
            partner,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.map(Token::fixed),
            client,
        })
    }

    /// The adapter configured by `<PARTNER>_API_URL`, `<PARTNER>_API_TOKEN_SECRET` (the
    /// id of the Secrets Manager secret holding the partner's token, read here, once per
    /// cold start) and `PARTNER_TIMEOUT_MS` (default 2000).
    pub async fn from_env(partner: Partner) -> Result<HttpPartner, PartnerConfigError> {
        let base_url = config::required(partner.url_variable())?;
        check_base_url(partner, &base_url)?;
        let secret_id =
            crate::secrets::id_from_env(partner.token_secret_variable()).map_err(|source| {
                PartnerConfigError::Token {
                    partner,
                    source: source.into(),
                }
            })?;
        let timeout = match std::env::var("PARTNER_TIMEOUT_MS") {
            Err(_) => DEFAULT_TIMEOUT,
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "PARTNER_TIMEOUT_MS",
                    reason: format!("{text:?} is not a positive number of milliseconds"),
                })?,
        };
        let secrets = aws_sdk_secretsmanager::Client::new(&config::aws().await);
        HttpPartner::with_secret(partner, &base_url, secrets, secret_id, timeout).await
    }

    /// The adapter for `partner` at `base_url`, presenting the token in Secrets Manager
    /// secret `secret_id` (read now). When the partner refuses the token (401, 403) the
    /// secret is read again, at once the first time and then at most once per
    /// [`crate::secrets::REFRESH_INTERVAL`], and a changed token is tried once more.
    pub async fn with_secret(
        partner: Partner,
        base_url: &str,
        secrets: aws_sdk_secretsmanager::Client,
        secret_id: String,
        timeout: Duration,
    ) -> Result<HttpPartner, PartnerConfigError> {
        let token = crate::secrets::read(&secrets, &secret_id)
            .await
            .map_err(|source| PartnerConfigError::Token { partner, source })?;
        let never = std::time::Instant::now()
            .checked_sub(crate::secrets::REFRESH_INTERVAL)
            .unwrap_or_else(std::time::Instant::now);
        let mut adapter = HttpPartner::new(partner, base_url, None, timeout)?;
        adapter.token = Some(Token {
            value: Arc::new(tokio::sync::RwLock::new(token)),
            source: Some(Arc::new(TokenSource {
                client: secrets,
                secret_id,
                read_at: tokio::sync::Mutex::new(never),
            })),
        });
        Ok(adapter)
    }

    /// POSTs `body` to `path` with the call's idempotency key and reads the answer.
    async fn post<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        call: &CallContext,
        body: Value,
    ) -> Result<T, PartnerError> {
        let error = |failure: PartnerFailure, message: String| PartnerError {
            partner: self.partner,
            operation,
            failure,
            message,
        };
        let url = format!("{}/{path}", self.base_url);
        let body = call.body(body);
        tracing::debug!(partner = %self.partner, operation, key = %call.idempotency_key, "calling partner");
        let mut response = self
            .send(&url, call, &body)
            .await
            .map_err(|e| error(transport_failure(&e), describe(&e)))?;
        let refused_credentials = matches!(response.status().as_u16(), 401 | 403);
        if refused_credentials {
            if let Some(token) = &self.token {
                if token.refresh(self.partner).await {
                    response = self
                        .send(&url, call, &body)
                        .await
                        .map_err(|e| error(transport_failure(&e), describe(&e)))?;
                }
            }
        }
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| error(transport_failure(&e), describe(&e)))?;
        let failure = classify(status.as_u16(), &text);
        match failure {
            None => serde_json::from_str(&text).map_err(|e| {
                error(
                    PartnerFailure::Unavailable,
                    format!(
                        "answered {status} with an unreadable body ({e}): {}",
                        clip(&text)
                    ),
                )
            }),
            Some(PartnerFailure::Unauthorized) => Err(error(
                PartnerFailure::Unauthorized,
                format!(
                    "answered {status}: the partner refused our credentials; check the token in the secret named by {} ({})",
                    self.partner.token_secret_variable(),
                    clip(&text)
                ),
            )),
            Some(failure) => Err(error(
                failure,
                format!("answered {status}: {}", clip(&text)),
            )),
        }
    }

    /// One POST of `body` with the call's idempotency key and the current token.
    async fn send(
        &self,
        url: &str,
        call: &CallContext,
        body: &Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .client
            .post(url)
            .header("Idempotency-Key", &call.idempotency_key)
            .json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.current().await);
        }
        request.send().await
    }
}

/// What an HTTP status means for the caller: `None` for success.
pub fn classify(status: u16, body: &str) -> Option<PartnerFailure> {
    match status {
        200..=299 => None,
        408 => Some(PartnerFailure::Timeout),
        401 | 403 => Some(PartnerFailure::Unauthorized),
        429 => Some(PartnerFailure::Throttled),
        400..=499 => {
            let code = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.get("code")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("http_{status}"));
            Some(PartnerFailure::Refused { status, code })
        }
        _ => Some(PartnerFailure::Unavailable),
    }
}

fn transport_failure(error: &reqwest::Error) -> PartnerFailure {
    if error.is_timeout() {
        PartnerFailure::Timeout
    } else {
        PartnerFailure::Unavailable
    }
}

fn describe(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn clip(text: &str) -> String {
    const LIMIT: usize = 300;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}

/// Declares the adapter type of one partner around [`HttpPartner`].
macro_rules! http_adapter {
    ($(#[$doc:meta])* $name:ident, $partner:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub HttpPartner);

        impl $name {
            /// The adapter configured from the environment (see [`HttpPartner::from_env`]).
            pub async fn from_env() -> Result<$name, PartnerConfigError> {
                HttpPartner::from_env($partner).await.map($name)
            }
        }
    };
}

http_adapter!(
    /// The warehouse's HTTP API.
    HttpWarehouse,
    Partner::Warehouse
);
http_adapter!(
    /// The payment processor's HTTP API.
    HttpPayments,
    Partner::Payments
);
http_adapter!(
    /// The terminal management system's HTTP API.
    HttpTerminals,
    Partner::Terminals
);
http_adapter!(
    /// The courier's HTTP API.
    HttpCourier,
    Partner::Courier
);
http_adapter!(
    /// The notification service's HTTP API.
    HttpNotifications,
    Partner::Notifications
);

impl Warehouse for HttpWarehouse {
    async fn reserve(
        &self,
        call: &CallContext,
        lines: &[OrderLine],
    ) -> Result<Reservation, PartnerError> {
        let body = json!({ "lines": lines });
        self.0.post("reserve", "reservations", call, body).await
    }

    async fn release(&self, call: &CallContext) -> Result<Release, PartnerError> {
        self.0.post("release", "releases", call, json!({})).await
    }
}

impl Payments for HttpPayments {
    async fn charge(&self, call: &CallContext, amount: &Amount) -> Result<Charge, PartnerError> {
        self.0.post("charge", "charges", call, json!(amount)).await
    }

    async fn refund(&self, call: &CallContext) -> Result<Refund, PartnerError> {
        self.0.post("refund", "refunds", call, json!({})).await
    }
}

impl Terminals for HttpTerminals {
    async fn provision(
        &self,
        call: &CallContext,
        lines: &[OrderLine],
    ) -> Result<Provisioning, PartnerError> {
        let body = json!({ "lines": lines });
        self.0.post("provision", "provisionings", call, body).await
    }

    async fn deprovision(&self, call: &CallContext) -> Result<Deprovisioning, PartnerError> {
        self.0
            .post("deprovision", "deprovisionings", call, json!({}))
            .await
    }

    async fn deactivate(
        &self,
        call: &CallContext,
        serials: &[String],
    ) -> Result<Deactivation, PartnerError> {
        let body = json!({ "serials": serials });
        self.0.post("deactivate", "deactivations", call, body).await
    }
}

impl Courier for HttpCourier {
    async fn ship(
        &self,
        call: &CallContext,
        address: &DeliveryAddress,
        parcels: u32,
    ) -> Result<Shipment, PartnerError> {
        let body = json!({"address": address, "parcels": parcels});
        self.0.post("ship", "shipments", call, body).await
    }

    async fn cancel(&self, call: &CallContext) -> Result<ShipmentCancellation, PartnerError> {
        self.0
            .post("cancel", "cancellations", call, json!({}))
            .await
    }

    async fn return_label(
        &self,
        call: &CallContext,
        serials: &[String],
        address: &DeliveryAddress,
    ) -> Result<ReturnLabel, PartnerError> {
        let body = json!({"serials": serials, "address": address});
        self.0
            .post("return_label", "return-labels", call, body)
            .await
    }
}

impl Notifications for HttpNotifications {
    async fn send(
        &self,
        call: &CallContext,
        template: &str,
        data: Value,
    ) -> Result<Message, PartnerError> {
        let body = json!({"template": template, "data": data});
        self.0.post("send", "messages", call, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partner_is_reached_over_https_and_plain_http_only_on_this_machine() {
        let checked = |url: &str| check_base_url(Partner::Payments, url).map_err(|e| e.to_string());
        assert_eq!(checked("https://payments.example.com/v1"), Ok(()));
        for local in [
            "http://127.0.0.1:4600",
            "http://localhost:4600",
            "http://[::1]:4600",
        ] {
            assert_eq!(checked(local), Ok(()), "{local}");
        }
        let remote = checked("http://payments.example.com");
        assert!(
            remote
                .as_ref()
                .is_err_and(|e| e.contains("plain http to another machine")),
            "{remote:?}"
        );
        for bad in ["ftp://payments.example.com", "payments.example.com"] {
            assert!(checked(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_partner_that_answers_with_a_redirect_is_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let target = elsewhere.local_addr().expect("its address");
        let partner = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = format!("http://{}", partner.local_addr().expect("its address"));
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = partner.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target}/charges\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let adapter = HttpPartner::new(Partner::Payments, &base, None, Duration::from_secs(2))
            .expect("the adapter");
        let call = CallContext::new(&OrderId::generate(), "m-1", "TakePayment");
        let answered: Result<Value, PartnerError> = adapter
            .post("charge", "charges", &call, serde_json::json!({}))
            .await;
        assert!(
            matches!(&answered, Err(e) if e.failure == PartnerFailure::Unavailable),
            "{answered:?}"
        );
        let followed = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
        assert!(followed.is_err(), "the redirect was followed");
    }

    #[test]
    fn server_errors_are_unavailable_429_is_throttled_and_401_refused_credentials() {
        assert_eq!(classify(503, ""), Some(PartnerFailure::Unavailable));
        assert_eq!(classify(500, "oops"), Some(PartnerFailure::Unavailable));
        assert_eq!(classify(429, ""), Some(PartnerFailure::Throttled));
        assert_eq!(classify(408, ""), Some(PartnerFailure::Timeout));
        assert_eq!(classify(401, ""), Some(PartnerFailure::Unauthorized));
        assert_eq!(classify(403, "{}"), Some(PartnerFailure::Unauthorized));
        assert_eq!(classify(201, "{}"), None);
    }

    #[test]
    fn a_client_error_is_a_refusal_with_the_partners_code() {
        assert_eq!(
            classify(
                402,
                r#"{"code": "declined", "message": "insufficient funds"}"#
            ),
            Some(PartnerFailure::Refused {
                status: 402,
                code: "declined".into()
            })
        );
        assert_eq!(
            classify(404, "not json"),
            Some(PartnerFailure::Refused {
                status: 404,
                code: "http_404".into()
            })
        );
    }

    #[test]
    fn a_refusal_takes_the_operations_name_and_transient_failures_keep_theirs() {
        let id = OrderId::generate();
        let failure = |failure| PartnerError {
            partner: Partner::Payments,
            operation: "charge",
            failure,
            message: "answered 402".into(),
        };
        let refused = failure(PartnerFailure::Refused {
            status: 402,
            code: "declined".into(),
        })
        .into_activity_error(&id, ErrorName::PaymentDeclined);
        assert_eq!(refused.name, ErrorName::PaymentDeclined);
        assert_eq!(
            refused.message,
            format!("order {id}: payments charge failed: answered 402")
        );
        let timeout =
            failure(PartnerFailure::Timeout).into_activity_error(&id, ErrorName::PaymentDeclined);
        assert_eq!(timeout.name, ErrorName::PartnerTimeout);
        // Refused credentials are our fault, never a declined payment: retried as an outage.
        let unauthorized = failure(PartnerFailure::Unauthorized)
            .into_activity_error(&id, ErrorName::PaymentDeclined);
        assert_eq!(unauthorized.name, ErrorName::PartnerUnavailable);
    }

    #[test]
    fn every_call_of_a_step_carries_the_same_key_and_names_the_order() {
        let id = OrderId::generate();
        let call = CallContext::new(&id, "m-1", "TakePayment");
        assert_eq!(call.idempotency_key, format!("{id}:TakePayment"));
        assert_eq!(
            call.body(json!({"amount_cents": 5})),
            json!({"order_id": id, "merchant_id": "m-1", "amount_cents": 5})
        );
    }
}
