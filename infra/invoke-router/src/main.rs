//! The local invoke router (development and tests only; never deployed).
//!
//! moto's Step Functions engine sends its Lambda `Invoke` calls to
//! `http://localhost:$MOTO_PORT`; `make up` points `MOTO_PORT` here. This router sends
//! `POST /2015-03-31/functions/{name}/invocations` and the function URLs
//! (`/lambda-url/{name}/...`: the orders API, the courier webhook) to `cargo lambda watch`
//! and forwards every other request to moto, so one endpoint serves every AWS API locally.
//! DynamoDB requests (`X-Amz-Target: DynamoDB_20120810.*`) go to a moto process of their
//! own when `--dynamodb` names one: moto is one Python process on one core, and the table
//! and the workflow engine then each get a core. DynamoDB Streams requests
//! (`DynamoDBStreams_20120810.*`: the local stack's stream poller, `local-stack
//! poll-streams`) go there too, to the process that holds the table and its stream.
//!
//! It also restores the real Lambda contract that `cargo lambda watch` differs from:
//! a function error comes back from watch as HTTP 500, from AWS as HTTP 200 with
//! `X-Amz-Function-Error: Unhandled`. A 500 would make the engine treat a handled
//! business error (say `Payment.Declined`) as a Lambda service failure. And when watch
//! cannot be reached, the router answers the way AWS does (`Lambda.ServiceException`,
//! which the state machine retries) instead of closing the socket.
//!
//! It counts what passes through it (`GET /__meter`, see [`meter`]) for `make bench`, and
//! answers the state machine's invokes itself while the bench measures the workflow's
//! floor (`PUT /__floor`, see [`floor`]).
//!
//! It injects AWS's own errors on request (`PUT /__faults`, see [`faults`]): for a window
//! of time, a share of the DynamoDB, EventBridge or Step Functions requests is answered
//! with the service's throttling, outage (503) or internal (500) error in AWS's wire shape
//! ([`faults::shapes`]) and never forwarded, so that tests can prove that infrastructure
//! trouble makes the workflow wait and the API answer 429/503, against the real binaries.
//!
//! A function URL request whose text body (`application/json`, `text/*`) is not UTF-8 reaches
//! the function with the invalid bytes replaced (U+FFFD), as API Gateway hands a non-binary
//! body to a proxy integration as text; watch would answer 500 without invoking the
//! function (see [`as_text_body`]).
//!
//! And it caps the invocations in flight per function (`--max-in-flight`): one more is
//! refused at once, the way Lambda refuses an invocation over a function's concurrency
//! (HTTP 429 `TooManyRequestsException`, which the state machine retries). cargo lambda
//! watch stalls when about 100 invocations queue for one function; the cap keeps it
//! below that.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod faults;
mod floor;
mod meter;
#[cfg(test)]
mod sdk_tests;

/// Largest request body forwarded (Lambda's synchronous payload limit is 6 MB).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Routes Lambda invokes to cargo lambda watch and everything else to moto")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// cargo lambda watch's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    lambda: String,
    /// moto server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    aws: String,
    /// The base URL of the moto server that serves DynamoDB (default: `--aws`).
    #[arg(long)]
    dynamodb: Option<String>,
    /// Invocations in flight per function at most; one more is throttled
    /// (TooManyRequestsException) as Lambda throttles.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
}

#[derive(Clone)]
struct Router {
    client: reqwest::Client,
    lambda: String,
    aws: String,
    /// Where DynamoDB requests go (`aws` unless told otherwise).
    dynamodb: String,
    max_in_flight: u32,
    /// One semaphore per function name, created on its first invocation.
    in_flight: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    meter: Arc<Mutex<meter::Counts>>,
    /// Whether invokes are answered by the router itself ([`floor`]).
    floor: Arc<std::sync::atomic::AtomicBool>,
    /// The injected errors' rules ([`faults`]).
    faults: Arc<Mutex<faults::Faults>>,
}

impl Router {
    /// A place among `function`'s invocations in flight, if one is free.
    fn admit(&self, function: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(function.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_in_flight as usize)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, meter::Counts> {
        self.meter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, faults::Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("refusing to listen on {0}: the router binds loopback addresses only")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}

#[tokio::main]
async fn main() -> Result<(), StartError> {
    tracing_subscriber::fmt().json().with_target(false).init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        return Err(StartError::NotLoopback(args.listen));
    }
    let router = Router {
        client: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?,
        lambda: args.lambda.trim_end_matches('/').to_owned(),
        aws: args.aws.trim_end_matches('/').to_owned(),
        dynamodb: args
            .dynamodb
            .as_deref()
            .unwrap_or(&args.aws)
            .trim_end_matches('/')
            .to_owned(),
        max_in_flight: args.max_in_flight,
        in_flight: Arc::default(),
        meter: Arc::default(),
        floor: Arc::default(),
        faults: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.listen,
            source,
        })?;
    tracing::info!(listen = %args.listen, lambda = %router.lambda, aws = %router.aws, dynamodb = %router.dynamodb, max_in_flight = router.max_in_flight, "invoke router listening");
    let app = axum::Router::new().fallback(route).with_state(router);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn route(State(router): State<Router>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body unreadable or over {MAX_BODY_BYTES} bytes: {error}"),
            )
        }
    };
    if parts.method == Method::GET && parts.uri.path() == meter::PATH {
        return axum::Json(router.meter().clone()).into_response();
    }
    if parts.method == Method::PUT && parts.uri.path() == floor::PATH {
        return match floor::parse_switch(&body) {
            Some(on) => {
                router.floor.store(on, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(on, "workflow floor switched");
                plain(
                    StatusCode::OK,
                    format!("floor {}", if on { "on" } else { "off" }),
                )
            }
            None => plain(StatusCode::BAD_REQUEST, "send `on` or `off`".into()),
        };
    }
    if parts.uri.path() == faults::PATH {
        return fault_rules(&router, &parts.method, &body);
    }
    let function = (parts.method == Method::POST)
        .then(|| invoked_function(parts.uri.path()))
        .flatten();
    if let Some(function) = function {
        return invoke(&router, &function, &parts.headers, body).await;
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let upstream = match url_function(parts.uri.path()) {
        Some(function) => Upstream::FunctionUrl(function),
        None => Upstream::Aws,
    };
    let body = match upstream {
        Upstream::FunctionUrl(_) => as_text_body(&parts.headers, body),
        Upstream::Aws => body,
    };
    if let Upstream::Aws = upstream {
        if let Some(fault) = inject_fault(&router, &parts.headers, &body) {
            return fault;
        }
    }
    let mut headers = parts.headers;
    if let Upstream::FunctionUrl(_) = upstream {
        set_caller(&mut headers);
    }
    let request = (parts.method, path_and_query, &headers, body);
    forward(&router, upstream, request).await
}

/// The header a function URL's request carries its caller's IAM principal in: the local
/// stack's stand-in for API Gateway's IAM authorization, which reports the caller in the
/// event (`requestContext.identity.userArn`). The orders API reads it only when its
/// `LOCAL_CALLER_HEADER` names it (the local stack sets that; template.yaml never does).
pub const CALLER_HEADER: &str = "x-local-caller";

/// The account the local stack's principals belong to (moto's).
const LOCAL_ACCOUNT: &str = "123456789012";

/// Replaces whatever caller header the request came with by the caller its SigV4
/// signature names: the access key id `K` of `Credential=K/...` is the IAM user
/// `arn:aws:iam::123456789012:user/K` (moto checks no signature, so the key id is all
/// there is to go by; the stack's own key is `test`). An unsigned request has no caller.
fn set_caller(headers: &mut HeaderMap) {
    headers.remove(CALLER_HEADER);
    let key_id = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(signing_key_id);
    let principal = key_id.map(|key| format!("arn:aws:iam::{LOCAL_ACCOUNT}:user/{key}"));
    if let Some(value) = principal.and_then(|p| HeaderValue::from_str(&p).ok()) {
        headers.insert(CALLER_HEADER, value);
    }
}

/// The access key id a SigV4 `Authorization` header names.
fn signing_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let key = credential.split('/').next()?;
    let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then_some(key)
}

/// A function URL's body as API Gateway hands it to a proxy integration: a JSON or
/// `text/*` body is text, so bytes that are not UTF-8 become U+FFFD and the function
/// answers them (`400 invalid_request`). cargo lambda watch instead answers such a request
/// 500 itself, without invoking the function. Other bodies pass unchanged.
fn as_text_body(headers: &HeaderMap, body: Bytes) -> Bytes {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // Exactly the media types watch reads as text, as written (it passes `APPLICATION/JSON`
    // or `application/vnd.courier+json` on as bytes, which the webhook's signature covers).
    let text = content_type.starts_with("text/") || content_type.starts_with("application/json");
    if !text || std::str::from_utf8(&body).is_ok() {
        return body;
    }
    Bytes::from(String::from_utf8_lossy(&body).into_owned())
}

/// `GET`, `PUT` or `DELETE /__faults`: the rules as they are (after a PUT or DELETE, as
/// they now are), or 400 with every problem of a PUT's body, which then changes nothing.
fn fault_rules(router: &Router, method: &Method, body: &[u8]) -> Response {
    let now = Instant::now();
    match *method {
        Method::GET => {}
        Method::PUT => match faults::parse(body) {
            Ok(rules) => {
                let mut faults = router.faults();
                faults.replace(rules, now);
                let view = faults.view(now);
                let rules = serde_json::to_string(&view.rules).unwrap_or_default();
                tracing::info!(rules, "fault rules set");
            }
            Err(errors) => {
                let body = axum::Json(serde_json::json!({ "errors": errors }));
                return (StatusCode::BAD_REQUEST, body).into_response();
            }
        },
        Method::DELETE => {
            router.faults().clear();
            tracing::info!("fault rules cleared");
        }
        _ => {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} answers GET, PUT and DELETE", faults::PATH),
            );
            let allow = HeaderValue::from_static("GET, PUT, DELETE");
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, allow);
            return response;
        }
    }
    axum::Json(router.faults().view(now)).into_response()
}

/// The injected error that answers this AWS request instead of the emulator, if a fault
/// rule says so ([`faults`]); it is counted in the meter's `faults` and logged.
fn inject_fault(router: &Router, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let target = header("x-amz-target")?;
    let (service, operation) = faults::Service::of_target(target)?;
    let injection = router
        .faults()
        .decide(service, operation, body, Instant::now())?;
    let authorization = header("authorization");
    let metered = meter::Operation::of(authorization, Some(target), body);
    router.meter().faulted(&metered);
    tracing::warn!(
        rule = injection.rule,
        service = service.name(),
        operation,
        error = injection.kind.name(),
        matched = injection.matched,
        "fault injected"
    );
    let request = faults::shapes::Request {
        operation,
        body,
        region: faults::region(authorization),
    };
    Some(aws_error(faults::shapes::answer(
        service,
        injection.kind,
        request,
    )))
}

/// An AWS JSON error answer with its request id.
fn aws_error(answer: faults::shapes::Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.to_string()));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert("x-amzn-requestid", request_id());
    headers.insert(
        "content-type",
        HeaderValue::from_static(answer.content_type),
    );
    response
}

/// Whether a request goes to the moto process that serves DynamoDB: DynamoDB's own and
/// DynamoDB Streams' (a stream lives in the process that holds its table). Both JSON
/// protocols name the API in `X-Amz-Target`.
fn is_for_dynamodb(target: Option<&str>) -> bool {
    target.is_some_and(|target| {
        target.starts_with("DynamoDB_20120810.") || target.starts_with("DynamoDBStreams_20120810.")
    })
}

/// Where a request that is not an invoke goes.
enum Upstream<'a> {
    /// moto, counted as an AWS request.
    Aws,
    /// A function URL of cargo lambda watch (`/lambda-url/{function}/...`: the orders API,
    /// the courier webhook), counted as an invocation of the function.
    FunctionUrl(&'a str),
}

fn url_function(path: &str) -> Option<&str> {
    let function = path.strip_prefix("/lambda-url/")?.split('/').next()?;
    (!function.is_empty()).then_some(function)
}

/// The bare function name of a Lambda Invoke path, or `None` for any other request.
///
/// The name may arrive URL-encoded, as a full ARN, and with a qualifier:
/// `arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Avalidate-order%3A%24LATEST`.
/// cargo lambda watch knows functions by their binary name only.
fn invoked_function(path: &str) -> Option<String> {
    let encoded = path
        .strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")?;
    let name = percent_decode(encoded)?;
    let bare = match name.strip_prefix("arn:") {
        // arn:aws:lambda:region:account:function:name[:qualifier]
        Some(_) => name.split(':').nth(6)?,
        None => name.split(':').next()?,
    };
    (!bare.is_empty()).then(|| bare.to_owned())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
        .unwrap_or(HeaderValue::from_static("local"))
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response
}

/// The answer AWS Lambda gives when the service itself failed: the state machine sees
/// `Lambda.ServiceException`, which its Retry handles.
fn service_exception(message: String) -> Response {
    let body = serde_json::json!({"Type": "Service", "Message": message});
    lambda_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", body)
}

/// An error answer of the Lambda API: its status, `X-Amzn-ErrorType` and JSON body.
fn lambda_error(status: StatusCode, error_type: &'static str, body: serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    headers.insert("x-amzn-requestid", request_id());
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// The answer AWS Lambda gives an invocation over the function's concurrency: the state
/// machine sees `Lambda.TooManyRequestsException`, which its Retry handles.
fn too_many_requests(function: &str, limit: u32) -> Response {
    let body = serde_json::json!({
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": format!("Rate Exceeded: {function} already has {limit} invocations in flight."),
    });
    lambda_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequestsException",
        body,
    )
}

async fn invoke(router: &Router, function: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let Some(_in_flight) = router.admit(function) else {
        tracing::warn!(function, limit = router.max_in_flight, "invoke throttled");
        return too_many_requests(function, router.max_in_flight);
    };
    let started = Instant::now();
    if router.floor.load(std::sync::atomic::Ordering::SeqCst) {
        return floor_answer(router, function, &body, started);
    }
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        router.lambda
    );
    let mut request = router.client.post(&url).body(body);
    for name in [
        "x-amz-invocation-type",
        "x-amz-client-context",
        "content-type",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::warn!(function, %error, "cargo lambda watch unreachable");
            return service_exception(format!("cannot reach the function {function}: {error}"));
        }
    };
    let status = upstream.status();
    let body = match upstream.bytes().await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(function, %error, "function answer cut short");
            return service_exception(format!("the answer of {function} was cut short: {error}"));
        }
    };
    let function_error = status == StatusCode::INTERNAL_SERVER_ERROR && is_function_error(&body);
    router.meter().invoked(function, started.elapsed());
    tracing::info!(
        function,
        status = status.as_u16(),
        function_error,
        millis = started.elapsed().as_millis() as u64,
        "invoke"
    );
    if status.is_server_error() && !function_error {
        return service_exception(format!(
            "{function} failed in the runtime ({status}): {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let status = if function_error {
        StatusCode::OK
    } else {
        status
    };
    invoke_answer(status, body, function_error)
}

/// An invoke's answer as Lambda gives it: a function error is `200` with
/// `X-Amz-Function-Error: Unhandled`.
fn invoke_answer(status: StatusCode, body: Bytes, function_error: bool) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-amzn-requestid", request_id());
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if function_error {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

/// The floor's answer to an invoke: at once, no function run; a callback task is
/// completed right after.
fn floor_answer(router: &Router, function: &str, payload: &[u8], started: Instant) -> Response {
    if let Some(token) = floor::task_token(payload) {
        let (client, aws) = (router.client.clone(), router.aws.clone());
        tokio::spawn(async move { floor::send_task_success(&client, &aws, &token).await });
    }
    router.meter().invoked(function, started.elapsed());
    invoke_answer(StatusCode::OK, floor::answer().to_string().into(), false)
}

/// Whether a 500 from watch carries the function's own error (`{"errorType": ...}`)
/// rather than a failure of the emulator.
fn is_function_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorType").map(serde_json::Value::is_string))
        .unwrap_or(false)
}

const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-connection",
];

async fn forward(
    router: &Router,
    upstream: Upstream<'_>,
    (method, path_and_query, headers, request_body): (Method, &str, &HeaderMap, Bytes),
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let base = match upstream {
        Upstream::Aws if is_for_dynamodb(header("x-amz-target")) => &router.dynamodb,
        Upstream::Aws => &router.aws,
        Upstream::FunctionUrl(_) => &router.lambda,
    };
    let url = format!("{base}{path_and_query}");
    let started = Instant::now();
    let mut request = router
        .client
        .request(method, &url)
        .body(request_body.clone());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let answered = async {
        let answered = (request.send().await).map_err(|e| format!("{base} is unreachable: {e}"))?;
        let (status, headers) = (answered.status(), answered.headers().clone());
        let answer = answered.bytes().await;
        let answer = answer.map_err(|e| format!("the answer of {base} was cut short: {e}"))?;
        Ok::<_, String>((status, headers, answer))
    };
    let (status, upstream_headers, answer) = match answered.await {
        Ok(answered) => answered,
        Err(message) => return plain(StatusCode::BAD_GATEWAY, message),
    };
    match upstream {
        Upstream::Aws => {
            let (authorization, target) = (header("authorization"), header("x-amz-target"));
            let operation = meter::Operation::of(authorization, target, &request_body);
            let status = status.as_u16();
            (router.meter()).requested(&operation, &request_body, status, &answer);
        }
        Upstream::FunctionUrl(function) => router.meter().invoked(function, started.elapsed()),
    }
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    for (name, value) in &upstream_headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response
                .headers_mut()
                .insert(HeaderName::from(name), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_json_body_that_is_not_utf8_reaches_the_function_with_the_invalid_bytes_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let body = super::as_text_body(&headers, Bytes::from_static(b"{\"a\":\"\xff\"}"));
        assert_eq!(&body[..], "{\"a\":\"\u{fffd}\"}".as_bytes());
    }

    #[test]
    fn a_binary_body_and_a_utf8_body_pass_unchanged() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let binary = Bytes::from_static(b"\xff\xfe");
        assert_eq!(super::as_text_body(&headers, binary.clone()), binary);
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let text = Bytes::from_static("caf\u{e9}".as_bytes());
        assert_eq!(super::as_text_body(&headers, text.clone()), text);
        // Media types watch passes on as bytes stay bytes: a signature covers them.
        for kind in ["APPLICATION/JSON", "application/vnd.courier+json"] {
            headers.insert("content-type", HeaderValue::from_static(kind));
            assert_eq!(
                super::as_text_body(&headers, binary.clone()),
                binary,
                "{kind}"
            );
        }
    }

    use super::*;

    #[test]
    fn a_function_url_names_its_function_and_other_paths_do_not() {
        let webhook = "/lambda-url/courier-webhook/webhooks/courier";
        assert_eq!(url_function(webhook), Some("courier-webhook"));
        assert_eq!(url_function("/lambda-url/orders-api"), Some("orders-api"));
        assert_eq!(
            url_function("/lambda-url/orders-api/orders"),
            Some("orders-api")
        );
        assert_eq!(url_function("/lambda-url/"), None);
        assert_eq!(url_function("/2015-03-31/functions/x/invocations"), None);
    }

    #[test]
    fn a_full_arn_with_a_qualifier_becomes_the_binary_name() {
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Avalidate-order%3A%24LATEST/invocations";
        assert_eq!(invoked_function(path).as_deref(), Some("validate-order"));
    }

    #[test]
    fn a_bare_name_and_a_name_with_a_qualifier_are_kept() {
        assert_eq!(
            invoked_function("/2015-03-31/functions/fail-order/invocations").as_deref(),
            Some("fail-order")
        );
        assert_eq!(
            invoked_function("/2015-03-31/functions/fail-order:live/invocations").as_deref(),
            Some("fail-order")
        );
    }

    #[test]
    fn other_aws_requests_are_not_invokes() {
        assert_eq!(invoked_function("/"), None);
        assert_eq!(
            invoked_function("/2015-03-31/functions/x/configuration"),
            None
        );
        assert_eq!(
            invoked_function("/2015-03-31/functions/%ZZ/invocations"),
            None
        );
    }

    /// `app` served on a free loopback port: its base URL.
    pub(super) async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let listener = listener.unwrap_or_else(|error| panic!("bind: {error}"));
        let address = listener.local_addr().map(|a| a.to_string());
        let address = address.unwrap_or_else(|error| panic!("address: {error}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    /// A server that answers every request with `name`.
    async fn answering(name: &'static str) -> String {
        serve(axum::Router::new().fallback(move || async move { name })).await
    }

    /// A router over these upstreams, one invocation in flight per function.
    pub(super) fn router_to(lambda: String, aws: String, dynamodb: String) -> Router {
        Router {
            client: reqwest::Client::new(),
            lambda,
            aws,
            dynamodb,
            max_in_flight: 1,
            in_flight: Arc::default(),
            meter: Arc::default(),
            floor: Arc::default(),
            faults: Arc::default(),
        }
    }

    async fn answer_to(router: &Router, target: Option<&str>) -> String {
        let mut request = Request::builder().method(Method::POST).uri("/");
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        let request = request.body(Body::from("{}"));
        let request = request.unwrap_or_else(|error| panic!("request: {error}"));
        let response = route(State(router.clone()), request).await;
        let body = to_bytes(response.into_body(), 1024).await;
        let body = body.unwrap_or_else(|error| panic!("body: {error}"));
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn dynamodb_requests_reach_their_own_emulator_and_every_other_aws_request_reaches_moto() {
        let router = router_to(
            "http://127.0.0.1:9".into(),
            answering("moto").await,
            answering("dynamodb").await,
        );
        for operation in ["PutItem", "TransactWriteItems", "Query", "CreateTable"] {
            let target = format!("DynamoDB_20120810.{operation}");
            assert_eq!(
                answer_to(&router, Some(&target)).await,
                "dynamodb",
                "{target}"
            );
        }
        for target in [
            Some("AWSStepFunctions.StartExecution"),
            Some("AmazonSQS.SendMessage"),
            Some("AWSEvents.PutEvents"),
            None,
        ] {
            assert_eq!(answer_to(&router, target).await, "moto", "{target:?}");
        }
        let counted = router.meter().requests.clone();
        assert!(
            counted
                .keys()
                .any(|operation| operation.ends_with(":PutItem")),
            "the meter counts DynamoDB requests too: {counted:?}"
        );
    }

    #[tokio::test]
    async fn dynamodb_streams_requests_reach_the_emulator_that_holds_the_table_and_its_stream() {
        let router = router_to(
            "http://127.0.0.1:9".into(),
            answering("moto").await,
            answering("dynamodb").await,
        );
        for operation in [
            "ListStreams",
            "DescribeStream",
            "GetShardIterator",
            "GetRecords",
        ] {
            let target = format!("DynamoDBStreams_20120810.{operation}");
            assert_eq!(
                answer_to(&router, Some(&target)).await,
                "dynamodb",
                "{target}"
            );
        }
        // A name that merely starts alike is not DynamoDB's.
        let lookalike = Some("DynamoDBStreamsX.GetRecords");
        assert_eq!(answer_to(&router, lookalike).await, "moto");
    }

    /// A function behind a fake `cargo lambda watch` whose answers wait until released.
    async fn held_function() -> (Router, Arc<tokio::sync::Notify>) {
        let release = Arc::new(tokio::sync::Notify::new());
        let held = release.clone();
        let app = axum::Router::new().fallback(move || {
            let held = held.clone();
            async move {
                held.notified().await;
                r#"{"ok":true}"#
            }
        });
        let nowhere = || "http://127.0.0.1:9".to_owned();
        let router = router_to(serve(app).await, nowhere(), nowhere());
        (router, release)
    }

    #[tokio::test]
    async fn with_the_floor_on_an_invoke_is_answered_at_once_and_the_function_never_runs() {
        // The function holds every invocation until released: reaching it would time out.
        let (router, _release) = held_function().await;
        router
            .floor
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let payload = Bytes::from_static(br#"{"order_id": "o-1"}"#);
        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            invoke(&router, "take-payment", &HeaderMap::new(), payload),
        )
        .await;
        let Ok(response) = answered else {
            panic!("the invoke reached the function");
        };
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), 1024)
            .await
            .unwrap_or_default();
        let body: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        assert_eq!(body, Some(floor::answer()));
        assert_eq!(router.meter().invocations["take-payment"].count, 1);
    }

    #[tokio::test]
    async fn an_invocation_over_the_cap_is_throttled_as_lambda_throttles_and_the_next_is_served() {
        let (router, release) = held_function().await;
        let busy = router.clone();
        let first = tokio::spawn(async move {
            invoke(&busy, "reserve-stock", &HeaderMap::new(), Bytes::new()).await
        });
        // The first invocation holds the only place until released.
        let free = |router: &Router| {
            let in_flight = router
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            in_flight
                .get("reserve-stock")
                .map(|s| s.available_permits())
        };
        while free(&router) != Some(0) {
            tokio::task::yield_now().await;
        }
        let throttled = invoke(&router, "reserve-stock", &HeaderMap::new(), Bytes::new()).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            throttled.headers().get("x-amzn-errortype"),
            Some(&HeaderValue::from_static("TooManyRequestsException"))
        );
        // Another function has places of its own.
        assert!(router.admit("fail-order").is_some());

        release.notify_one();
        let first = first.await.map(|r| r.status());
        assert_eq!(first.ok(), Some(StatusCode::OK));
        let served = tokio::spawn({
            let router = router.clone();
            async move { invoke(&router, "reserve-stock", &HeaderMap::new(), Bytes::new()).await }
        });
        release.notify_one();
        assert_eq!(served.await.map(|r| r.status()).ok(), Some(StatusCode::OK));
    }

    #[test]
    fn only_a_body_with_an_error_type_is_a_function_error() {
        assert!(is_function_error(
            br#"{"errorType":"Payment.Declined","errorMessage":"no"}"#
        ));
        assert!(!is_function_error(b"Internal Server Error"));
        assert!(!is_function_error(br#"{"message":"boom"}"#));
    }

    #[test]
    fn a_function_urls_caller_is_the_signing_key_and_never_what_the_request_claims() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=portal/20261207/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=00",
            ),
        );
        headers.insert(
            CALLER_HEADER,
            HeaderValue::from_static("arn:aws:iam::123456789012:role/admin"),
        );
        set_caller(&mut headers);
        assert_eq!(
            headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()),
            Some("arn:aws:iam::123456789012:user/portal")
        );
        let mut unsigned = HeaderMap::new();
        unsigned.insert(
            CALLER_HEADER,
            HeaderValue::from_static("arn:aws:iam::123456789012:role/admin"),
        );
        set_caller(&mut unsigned);
        assert_eq!(
            unsigned.get(CALLER_HEADER),
            None,
            "an unsigned request has no caller"
        );
    }
}
