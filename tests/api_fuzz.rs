//! A seeded fuzz test of the orders API through its real function URL: ten thousand
//! malformed or hostile requests, every one invalid by construction, must each get a 4xx
//! JSON error with a documented `code` (the one its defect calls for) and a `message`, and
//! none may write anything: no order, no idempotency key, no step (and so no execution,
//! which is only ever started for a stored order).
//!
//! `FUZZ_SEED=<u64>` replays a run (the seed is printed); `FUZZ_CASES=<n>` changes how many
//! requests are sent (default 10,000). Each request is a pure function of the seed, its
//! index and the run's unique markers, so a reported case can be rebuilt from its index.
//!
//! What the local function URL (cargo lambda watch) cannot carry is not sent: it answers
//! `500` itself, without invoking the function, for a body that is not UTF-8 under a
//! content type it treats as text (`application/json` in lower case, `text/*`, none) and
//! for header values that are not UTF-8. So bytes that are not UTF-8 go in bodies labelled
//! with JSON media types the API accepts and the emulator passes as binary
//! (`APPLICATION/JSON`, `application/vnd.api+json`, ...), and non-ASCII headers are UTF-8.
//! `OPTIONS` is answered by the emulator (CORS) and `HEAD` has no body: neither is sent.

use aws_sdk_dynamodb::types::AttributeValue;
use order_core::catalogue::Catalogue;
use order_core::delivery;
use order_core::order::MAX_BODY_BYTES;
use order_core::Order;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use system_tests::{catalogue, valid_order, Stack};
use tokio::task::JoinSet;

const DEFAULT_SEED: u64 = 20_261_126;
const DEFAULT_CASES: usize = 10_000;
const IN_FLIGHT: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_EXAMPLES: usize = 20;
/// Run-unique merchants every generated order names (queried one by one at the end).
const MERCHANTS: usize = 50;
/// The longest path plus query sent: the emulator answers 414 (not the API) near 64 KiB,
/// API Gateway and function URLs refuse far less.
const MAX_URL_TAIL: usize = 7_500;

/// Every error code the API documents (README "The API"; functions/orders-api/src/lib.rs
/// and functions/courier-webhook/src/lib.rs).
const DOCUMENTED_CODES: &[&str] = &[
    "invalid_request",
    "missing_idempotency_key",
    "invalid_idempotency_key",
    "unsupported_media_type",
    "route_not_found",
    "method_not_allowed",
    "order_not_found",
    "idempotency_key_reused",
    "order_not_cancellable",
    "invalid_signature",
    "stale_signature",
    "payload_too_large",
    "invalid_event",
    "shipment_mismatch",
    "order_not_shipped",
    "store_unavailable",
    "workflow_unavailable",
    "internal",
];

type Expected = &'static [(u16, &'static str)];
const INVALID_REQUEST: Expected = &[(400, "invalid_request")];
const MISSING_KEY: Expected = &[(400, "missing_idempotency_key")];
const INVALID_KEY: Expected = &[(400, "invalid_idempotency_key")];
/// An empty or blank header may be dropped on the way: then the key is missing.
const BLANK_KEY: Expected = &[
    (400, "invalid_idempotency_key"),
    (400, "missing_idempotency_key"),
];
const UNSUPPORTED: Expected = &[(415, "unsupported_media_type")];
/// A blank Content-Type may be dropped on the way: then the (broken) body is judged.
const BLANK_CONTENT_TYPE: Expected = &[(415, "unsupported_media_type"), (400, "invalid_request")];
const NOT_ALLOWED: Expected = &[(405, "method_not_allowed")];
const ORDER_NOT_FOUND: Expected = &[(404, "order_not_found")];
const ODD_PATH: Expected = &[
    (404, "route_not_found"),
    (404, "order_not_found"),
    (405, "method_not_allowed"),
];
const BAD_SIGNATURE: Expected = &[(401, "invalid_signature")];
const STALE_SIGNATURE: Expected = &[(401, "stale_signature")];
const BAD_EVENT: Expected = &[(400, "invalid_event")];
/// The webhook refuses a body over its limit before it computes any signature.
const TOO_LARGE: Expected = &[(413, "payload_too_large")];

/// JSON media types the API accepts; the emulator passes these bodies as text.
const JSON_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/json;charset=UTF-8"),
];
/// JSON media types the API accepts and the emulator passes as binary (any bytes).
const BINARY_SAFE_JSON_TYPES: &[&str] = &[
    "APPLICATION/JSON",
    "Application/Json",
    "application/JSON; charset=utf-8",
    "application/vnd.api+json",
    "application/problem+json",
    "application/merge-patch+json",
];
/// Media types the API refuses (415); the emulator carries any body under them.
const BINARY_WRONG_TYPES: &[&str] = &[
    "application/xml",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----fuzz",
    "image/png",
    "application/pdf",
];
/// Media types the API refuses (415), for UTF-8 bodies.
#[rustfmt::skip]
const TEXT_WRONG_TYPES: &[&str] = &[
    "text/plain", "text/json", "text/html; charset=utf-8", "text/xml", "text/csv",
    "application/jsonx", "application/json5", "application/json-seq", "application/x-json",
    "application/javascript", "application/json+xml", "json", "application", "*/*",
    "application/*", "application /json", "application/ json", ";application/json",
    "application/jsön", "application/json\u{200b}", "\u{202e}application/json",
];

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_hostile_requests_get_json_errors_and_write_nothing() {
    let stack = Stack::connect().await;
    let seed = env_number("FUZZ_SEED", DEFAULT_SEED);
    let total =
        usize::try_from(env_number("FUZZ_CASES", DEFAULT_CASES as u64)).unwrap_or(DEFAULT_CASES);
    assert!(
        total > 0,
        "FUZZ_CASES=0 would send no request and prove nothing: give at least 1"
    );
    let ctx = Ctx::new(
        &stack.orders_api,
        &stack.courier_webhook_url(),
        stack.webhook_secret().await,
    );
    the_write_check_sees_a_planted_item(&stack, &ctx).await;
    println!(
        "api_fuzz: FUZZ_SEED={seed} (set it to replay), run marker {}, {total} requests, \
         {IN_FLIGHT} in flight, against {}",
        ctx.run, stack.orders_api
    );

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap_or_else(|error| panic!("HTTP client: {error}"));
    // Signed as the stack's own caller (every merchant in its scope), as an internal
    // system signs its requests: hostile bodies and headers, not a missing identity.
    let signer = local_stack::signing::Signer::from_env();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut in_flight = JoinSet::new();
    let mut next = 0;
    loop {
        while in_flight.len() < IN_FLIGHT && next < total {
            let case = generate(&ctx, seed, next);
            tally.sent(&case);
            let client = client.clone();
            let signer = signer.clone();
            in_flight.spawn(async move {
                let answer = send(&client, &signer, &case).await;
                (case, answer)
            });
            next += 1;
        }
        match in_flight.join_next().await {
            Some(Ok((case, answer))) => tally.judge(&case, answer),
            Some(Err(error)) => panic!("a request task failed: {error}"),
            None => break,
        }
    }
    let elapsed = started.elapsed();
    tally.print(elapsed);
    assert_eq!(
        tally.judged, total,
        "not every request was answered and judged (FUZZ_SEED={seed})"
    );

    let written = nothing_written(&stack, &ctx, &ctx.merchants).await;
    println!(
        "api_fuzz: written by the run: {} item(s) (queried {} merchants by index; scanned for \
         IDEMPOTENCY#{}*, ORDER#ord-{}*, MERCHANT#m-fuzz-{}*)",
        written.len(),
        ctx.merchants.len(),
        ctx.key_prefix,
        ctx.run,
        ctx.run,
    );
    let mut failure = String::new();
    if tally.violations > 0 {
        let _ = writeln!(
            failure,
            "{} of {total} answers broke the contract (FUZZ_SEED={seed}, run {}); the first {}:",
            tally.violations,
            ctx.run,
            tally.examples.len()
        );
        for example in &tally.examples {
            let _ = writeln!(failure, "  - {example}");
        }
    }
    if !written.is_empty() {
        let _ = writeln!(
            failure,
            "invalid requests wrote to the table (FUZZ_SEED={seed}, run {}):",
            ctx.run
        );
        for item in &written {
            let _ = writeln!(failure, "  - {item}");
        }
    }
    assert!(failure.is_empty(), "{failure}");
}

/// The generator, without a stack: every case is rebuilt identically from its index (so a
/// reported case can be replayed), and in the nine categories whose defect is the order
/// body ([`Category::DEFECTIVE_BODIES`]) no body posted to `/orders` parses as an order
/// (checked inside the generator for every case, and again here). The other eight
/// categories' defect is elsewhere (the key, the media type, the method, the path, the
/// order id, the webhook) and they may carry a valid order on purpose, to show that the
/// defect alone is enough for a refusal.
#[test]
fn the_generator_is_deterministic_and_its_defective_order_bodies_never_parse_as_orders() {
    let mut ctx = Ctx::new(
        "http://127.0.0.1:9/lambda-url/orders-api",
        "http://127.0.0.1:9/lambda-url/courier-webhook/webhooks/courier",
        "fuzz-secret".to_owned(),
    );
    // Signatures carry the time: a stopped clock makes every case the same twice.
    ctx.clock = || 1_800_000_000;
    for seed in [DEFAULT_SEED, 1] {
        let mut counts = BTreeMap::new();
        for index in 0..DEFAULT_CASES {
            let case = generate(&ctx, seed, index);
            if index % 10 == 0 {
                let again = generate(&ctx, seed, index);
                assert!(
                    (&case.method, &case.url, &case.headers, &case.body)
                        == (&again.method, &again.url, &again.headers, &again.body),
                    "seed {seed} case #{index} is not the same twice"
                );
            }
            if Category::DEFECTIVE_BODIES.contains(&case.category) {
                assert_eq!(
                    (&case.method, url_tail(&case.url)),
                    (&Method::POST, "/lambda-url/orders-api/orders".to_owned()),
                    "seed {seed} case #{index}"
                );
                assert_eq!(case.expected, INVALID_REQUEST, "seed {seed} case #{index}");
                let lossy = String::from_utf8_lossy(&case.body).into_owned();
                for body in [&case.body[..], lossy.as_bytes()] {
                    assert!(
                        Order::parse_json(body, &ctx.catalogue).is_err(),
                        "seed {seed} case #{index} posts a valid order: {}",
                        case.summary()
                    );
                }
            }
            *counts.entry(case.category).or_insert(0) += 1;
        }
        for (category, share) in Category::SHARES {
            assert_eq!(
                counts.get(&category),
                Some(&(share * DEFAULT_CASES / 100)),
                "{}",
                category.name()
            );
        }
    }
}

/// What the run's requests could have written, if anything: orders of its merchants (by
/// the by-merchant index), and any item under its idempotency keys or order ids (a Scan).
async fn nothing_written(stack: &Stack, ctx: &Ctx, merchants: &[String]) -> Vec<String> {
    let mut written = Vec::new();
    for merchant in merchants {
        let orders = stack.orders_of_merchant(merchant).await;
        if orders > 0 {
            written.push(format!("{orders} order(s) of merchant {merchant}"));
        }
    }
    let items = stack
        .scan_where(
            "begins_with(pk, :key) OR begins_with(pk, :order) OR begins_with(gsi1pk, :merchant)",
            &[
                (":key", &stack.idempotency_pk(&ctx.key_prefix)),
                (":order", &format!("ORDER#ord-{}", ctx.run)),
                (":merchant", &format!("MERCHANT#m-fuzz-{}", ctx.run)),
            ],
        )
        .await;
    for item in items {
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .map_or("?", String::as_str)
                .to_owned()
        };
        written.push(format!("item pk={} sk={}", text("pk"), text("sk")));
    }
    written
}

/// Proves the write check can fail: an item under the run's markers (not an order, which
/// other processes might pick up) is seen by both the index query and the scan, then
/// deleted again.
async fn the_write_check_sees_a_planted_item(stack: &Stack, ctx: &Ctx) {
    let merchant = format!("m-fuzz-{}-canary", ctx.run);
    let pk = stack.idempotency_pk(&format!("{}canary", ctx.key_prefix));
    let s = |text: &str| AttributeValue::S(text.to_owned());
    let put = stack
        .dynamodb()
        .put_item()
        .table_name(&stack.table)
        .item("pk", s(&pk))
        .item("sk", s("IDEMPOTENCY"))
        .item("gsi1pk", s(&format!("MERCHANT#{merchant}")))
        .item("gsi1sk", s("2000-01-01T00:00:00.000Z#canary"))
        .send()
        .await;
    if let Err(error) = put {
        panic!("PutItem (canary): {error:?}");
    }
    let seen = nothing_written(stack, ctx, &[merchant]).await;
    let deleted = stack
        .dynamodb()
        .delete_item()
        .table_name(&stack.table)
        .key("pk", s(&pk))
        .key("sk", s("IDEMPOTENCY"))
        .send()
        .await;
    if let Err(error) = deleted {
        panic!("DeleteItem (canary): {error:?}");
    }
    assert_eq!(
        seen.len(),
        2,
        "the write check must see an item planted under the run's markers once by the \
         by-merchant index and once by the scan; it saw {seen:?}"
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        _ => default,
    }
}

// ---------------------------------------------------------------------------------------
// Sending and judging
// ---------------------------------------------------------------------------------------

/// One generated request and the answers its defect calls for.
/// A request's headers, each value as bytes (some are not valid header text on purpose).
type Headers = Vec<(&'static str, Vec<u8>)>;

struct Case {
    index: usize,
    category: Category,
    variant: &'static str,
    method: Method,
    url: Url,
    headers: Headers,
    body: Vec<u8>,
    expected: Expected,
}

impl Case {
    fn summary(&self) -> String {
        let mut headers = String::new();
        for (name, value) in &self.headers {
            let _ = write!(headers, " {name}: {};", preview(value, 60));
        }
        let tail = url_tail(&self.url);
        format!(
            "#{} {}/{}: {} {} [{}] body {} bytes {}",
            self.index,
            self.category.name(),
            self.variant,
            self.method,
            preview(tail.as_bytes(), 120),
            headers.trim(),
            self.body.len(),
            preview(&self.body, 160)
        )
    }
}

/// The path and query of `url`.
fn url_tail(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The start of `bytes`, printable.
fn preview(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut out: String = text.escape_debug().collect();
    if bytes.len() > max {
        out.push('…');
    }
    format!("\"{out}\"")
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// Whether the request was signed as the stack's caller: requests to the orders
    /// API are, unless a header the case sends cannot be signed (bytes that are not
    /// text), which the API then answers `403 caller_unknown`.
    signed: bool,
}

async fn send(
    client: &reqwest::Client,
    signer: &local_stack::signing::Signer,
    case: &Case,
) -> Result<Answer, String> {
    let mut request = client.request(case.method.clone(), case.url.clone());
    for (name, value) in &case.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|error| panic!("case #{}: header name {name:?}: {error}", case.index));
        let value = HeaderValue::from_bytes(value).unwrap_or_else(|error| {
            panic!("case #{}: header value {value:?}: {error}", case.index)
        });
        request = request.header(name, value);
    }
    let mut request = request
        .body(case.body.clone())
        .build()
        .map_err(|e| format!("the request could not be built: {e}"))?;
    let to_orders = !case.url.path().contains("/webhooks/");
    let signed = to_orders && signer.sign(&mut request).is_ok();
    let response = client
        .execute(request)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("answer {status} cut short: {e}"))?;
    Ok(Answer {
        status,
        content_type,
        body: body.to_vec(),
        signed,
    })
}

/// Why `answer` breaks the contract, if it does.
fn violation(case: &Case, answer: &Answer) -> Option<String> {
    let status = answer.status;
    if status >= 500 {
        let json = serde_json::from_slice::<Value>(&answer.body).is_ok();
        let shape = if json { "JSON" } else { "not JSON" };
        return Some(format!("server error {status} (body {shape})"));
    }
    if !(400..500).contains(&status) {
        return Some(format!("{status}: an invalid request was not refused"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else {
        return Some(format!("{status} with a body that is not JSON"));
    };
    if !answer.content_type.starts_with("application/json") {
        return Some(format!(
            "{status} labelled {:?}, not application/json",
            answer.content_type
        ));
    }
    let Some(code) = body["code"].as_str() else {
        return Some(format!("{status} without a string code"));
    };
    if code == "caller_unknown" && !answer.signed {
        return None;
    }
    if !DOCUMENTED_CODES.contains(&code) {
        return Some(format!("{status} with undocumented code {code:?}"));
    }
    if body["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Some(format!("{status} {code} without a message"));
    }
    if code == "invalid_request" {
        let problems = body["problems"].as_array();
        let listed = problems.is_some_and(|p| {
            !p.is_empty()
                && p.iter().all(|p| {
                    p["path"].is_string() && p["message"].as_str().is_some_and(|m| !m.is_empty())
                })
        });
        if !listed {
            return Some(format!("{status} {code} without its problems listed"));
        }
    }
    if !case.expected.contains(&(status, code)) {
        let expected: Vec<String> = case
            .expected
            .iter()
            .map(|(s, c)| format!("{s} {c}"))
            .collect();
        return Some(format!(
            "{status} {code}, expected {}",
            expected.join(" or ")
        ));
    }
    None
}

/// A case whose defect is its body: the only right answer is `400 invalid_request`.
fn planted_case() -> Case {
    Case {
        index: 0,
        category: Category::BrokenJson,
        variant: "planted",
        method: Method::POST,
        url: Url::parse("http://127.0.0.1:9/lambda-url/orders-api/orders")
            .expect("the planted case's URL parses"),
        headers: vec![("idempotency-key", b"planted-key".to_vec())],
        body: b"{".to_vec(),
        expected: INVALID_REQUEST,
    }
}

fn planted_answer(status: u16, content_type: &str, body: &str) -> Answer {
    Answer {
        status,
        content_type: content_type.to_owned(),
        body: body.as_bytes().to_vec(),
        signed: true,
    }
}

#[test]
fn the_judge_accepts_the_refusal_the_case_calls_for() {
    let answer = planted_answer(
        400,
        "application/json",
        r#"{"code": "invalid_request", "message": "the order has problems",
            "problems": [{"path": "$", "message": "malformed JSON"}]}"#,
    );
    assert_eq!(violation(&planted_case(), &answer), None);
}

#[test]
fn the_judge_flags_an_accepted_request_a_server_error_a_body_that_is_not_json_and_an_undocumented_code(
) {
    let problems = r#""problems": [{"path": "$", "message": "malformed JSON"}]"#;
    let planted = [
        (
            planted_answer(
                202,
                "application/json",
                r#"{"order_id": "ord-1", "status": "ACCEPTED"}"#,
            ),
            "202: an invalid request was not refused",
        ),
        (
            planted_answer(
                500,
                "application/json",
                r#"{"code": "internal", "message": "x"}"#,
            ),
            "server error 500 (body JSON)",
        ),
        (
            planted_answer(502, "text/plain", "Bad Gateway"),
            "server error 502 (body not JSON)",
        ),
        (
            planted_answer(400, "text/plain", "invalid request"),
            "400 with a body that is not JSON",
        ),
        (
            planted_answer(
                400,
                "application/json",
                &format!(r#"{{"code": "no_idea", "message": "m", {problems}}}"#),
            ),
            "400 with undocumented code \"no_idea\"",
        ),
        (
            planted_answer(
                400,
                "text/html",
                &format!(r#"{{"code": "invalid_request", "message": "m", {problems}}}"#),
            ),
            "400 labelled \"text/html\", not application/json",
        ),
        (
            planted_answer(
                400,
                "application/json",
                r#"{"code": "invalid_request", "message": "m"}"#,
            ),
            "400 invalid_request without its problems listed",
        ),
        (
            planted_answer(
                404,
                "application/json",
                r#"{"code": "route_not_found", "message": "m"}"#,
            ),
            "404 route_not_found, expected 400 invalid_request",
        ),
    ];
    for (answer, expected) in planted {
        assert_eq!(
            violation(&planted_case(), &answer).as_deref(),
            Some(expected),
            "{} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
}

#[derive(Default)]
struct Tally {
    categories: BTreeMap<Category, CategoryTally>,
    /// Answers (or failures to answer) judged.
    judged: usize,
    violations: usize,
    examples: Vec<String>,
}

#[derive(Default)]
struct CategoryTally {
    requests: usize,
    bytes: usize,
    largest: usize,
    answers: BTreeMap<String, usize>,
    variants: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn sent(&mut self, case: &Case) {
        let entry = self.categories.entry(case.category).or_default();
        entry.requests += 1;
        entry.bytes += case.body.len();
        entry.largest = entry.largest.max(case.body.len());
        *entry.variants.entry(case.variant).or_default() += 1;
    }

    fn judge(&mut self, case: &Case, answer: Result<Answer, String>) {
        self.judged += 1;
        let (label, problem) = match &answer {
            Ok(answer) => {
                let code = serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .and_then(|b| b["code"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(not JSON)".to_owned());
                (format!("{} {code}", answer.status), violation(case, answer))
            }
            Err(error) => ("no answer".to_owned(), Some(error.clone())),
        };
        let entry = self.categories.entry(case.category).or_default();
        *entry.answers.entry(label).or_default() += 1;
        if let Some(problem) = problem {
            self.violations += 1;
            if self.examples.len() < MAX_EXAMPLES {
                let body = match &answer {
                    Ok(answer) => preview(&answer.body, 300),
                    Err(_) => String::new(),
                };
                self.examples.push(format!(
                    "{problem}\n      {}\n      answer: {body}",
                    case.summary()
                ));
            }
        }
    }

    fn print(&self, elapsed: Duration) {
        let requests: usize = self.categories.values().map(|c| c.requests).sum();
        let bytes: usize = self.categories.values().map(|c| c.bytes).sum();
        println!(
            "api_fuzz: {requests} requests, {:.1} MiB of bodies, in {:.1} s ({:.0}/s); {} broke the contract",
            bytes as f64 / 1_048_576.0,
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64().max(0.001),
            self.violations
        );
        println!(
            "  {:<22} {:>8} {:>10} {:>10}  answers",
            "category", "requests", "body KiB", "max bytes"
        );
        for (category, tally) in &self.categories {
            let answers: Vec<String> = tally
                .answers
                .iter()
                .map(|(label, n)| format!("{label} ×{n}"))
                .collect();
            println!(
                "  {:<22} {:>8} {:>10} {:>10}  {}",
                category.name(),
                tally.requests,
                tally.bytes / 1024,
                tally.largest,
                answers.join(", ")
            );
            let variants: Vec<String> = tally
                .variants
                .iter()
                .map(|(variant, n)| format!("{variant} {n}"))
                .collect();
            println!("  {:<22} {:>8}   variants: {}", "", "", variants.join(", "));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    BrokenJson,
    WrongTypes,
    MissingFields,
    UnknownFields,
    HugeBodies,
    DeepNesting,
    OddUnicode,
    NumbersOutOfRange,
    ReplacementSerials,
    IdempotencyKey,
    ContentType,
    WrongMethod,
    OddPaths,
    UnknownOrder,
    CancelUnknownOrder,
    WebhookUnsigned,
    WebhookSigned,
}

impl Category {
    /// The categories whose defect is the order body: each posts to `/orders` a body that
    /// is not a valid order, and expects `400 invalid_request`.
    const DEFECTIVE_BODIES: [Category; 9] = [
        Category::BrokenJson,
        Category::WrongTypes,
        Category::MissingFields,
        Category::UnknownFields,
        Category::HugeBodies,
        Category::DeepNesting,
        Category::OddUnicode,
        Category::NumbersOutOfRange,
        Category::ReplacementSerials,
    ];

    /// Each category and its share of every hundred requests.
    const SHARES: [(Category, usize); 17] = [
        (Category::BrokenJson, 10),
        (Category::WrongTypes, 9),
        (Category::MissingFields, 7),
        (Category::UnknownFields, 5),
        (Category::HugeBodies, 1),
        (Category::DeepNesting, 3),
        (Category::OddUnicode, 8),
        (Category::NumbersOutOfRange, 7),
        (Category::ReplacementSerials, 5),
        (Category::IdempotencyKey, 7),
        (Category::ContentType, 5),
        (Category::WrongMethod, 7),
        (Category::OddPaths, 7),
        (Category::UnknownOrder, 6),
        (Category::CancelUnknownOrder, 5),
        (Category::WebhookUnsigned, 6),
        (Category::WebhookSigned, 2),
    ];

    /// The category of request `index`: the shares, interleaved, exact per hundred.
    fn of(index: usize) -> Category {
        let total: usize = Category::SHARES.iter().map(|(_, share)| share).sum();
        let mut slot = (index * 37) % total;
        for (category, share) in Category::SHARES {
            if slot < share {
                return category;
            }
            slot -= share;
        }
        Category::BrokenJson
    }

    fn name(self) -> &'static str {
        match self {
            Category::BrokenJson => "broken_json",
            Category::WrongTypes => "wrong_types",
            Category::MissingFields => "missing_fields",
            Category::UnknownFields => "unknown_fields",
            Category::HugeBodies => "huge_bodies",
            Category::DeepNesting => "deep_nesting",
            Category::OddUnicode => "odd_unicode",
            Category::NumbersOutOfRange => "numbers_out_of_range",
            Category::ReplacementSerials => "replacement_serials",
            Category::IdempotencyKey => "idempotency_key",
            Category::ContentType => "content_type",
            Category::WrongMethod => "wrong_method",
            Category::OddPaths => "odd_paths",
            Category::UnknownOrder => "get_unknown_order",
            Category::CancelUnknownOrder => "cancel_unknown_order",
            Category::WebhookUnsigned => "webhook_bad_signature",
            Category::WebhookSigned => "webhook_signed_garbage",
        }
    }
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, index: usize) -> Rng {
        let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        (self.next() % n as u64) as usize
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn pick_value(&mut self, items: &[Value]) -> Value {
        items[self.below(items.len())].clone()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(n + 8);
        while bytes.len() < n {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(n);
        bytes
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

/// What every case of one run shares.
struct Ctx {
    /// 12 hex digits unique to this run: in every merchant, key and order id it makes up.
    run: String,
    merchants: Vec<String>,
    key_prefix: String,
    base: Url,
    /// The courier webhook's route (a function of its own).
    webhook: Url,
    webhook_secret: String,
    /// Unix seconds now, for the webhook signatures' timestamps.
    clock: fn() -> i64,
    catalogue: Catalogue,
    skus: Vec<&'static str>,
}

impl Ctx {
    fn new(orders_api: &str, webhook: &str, webhook_secret: String) -> Ctx {
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let base = Url::parse(orders_api)
            .unwrap_or_else(|error| panic!("ORDERS_API_URL {orders_api:?}: {error}"));
        let webhook = Url::parse(webhook)
            .unwrap_or_else(|error| panic!("the courier webhook URL {webhook:?}: {error}"));
        Ctx {
            merchants: (0..MERCHANTS)
                .map(|n| format!("m-fuzz-{run}-{n:02}"))
                .collect(),
            key_prefix: format!("fuzz-{run}-"),
            run,
            base,
            webhook,
            webhook_secret,
            clock: || chrono::Utc::now().timestamp(),
            catalogue: catalogue(),
            skus: vec!["A920-PRO", "A80", "S1F2", "V400M", "P400-PLUS"],
        }
    }

    fn merchant(&self, rng: &mut Rng) -> String {
        self.merchants[rng.below(self.merchants.len())].clone()
    }

    /// A well-formed order id no order has: the run's marker and random hex.
    fn unknown_order_id(&self, rng: &mut Rng) -> String {
        format!("ord-{}{}", self.run, rng.hex(20))
    }

    /// A valid Idempotency-Key unique to the case.
    fn key(&self, index: usize, rng: &mut Rng) -> String {
        let mut key = format!("{}{index}", self.key_prefix);
        if rng.chance(30) {
            let extra = rng.between(1, 40);
            key.push('-');
            for _ in 0..extra {
                key.push(char::from(rng.between(0x21, 0x7e) as u8));
            }
        }
        key
    }

    /// The URL for `tail` (a path, maybe with a query) under the API's base.
    fn url(&self, tail: &str) -> Url {
        let text = format!("{}{tail}", self.base.as_str().trim_end_matches('/'));
        let url =
            Url::parse(&text).unwrap_or_else(|error| panic!("generated URL {text:?}: {error}"));
        assert!(
            url.path().starts_with(self.base.path()),
            "generated path {tail:?} left the API ({})",
            url.path()
        );
        url
    }

    /// The path segments the API routes on, as it will see them.
    fn segments(&self, url: &Url) -> Vec<String> {
        let path = url.path()[self.base.path().trim_end_matches('/').len()..].to_owned();
        path.trim_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect()
    }

    /// Fails the run when the generator built a valid order: every body sent as an order
    /// must be refused for what it is, whatever the transport does to its bytes.
    fn assert_not_an_order(&self, index: usize, body: &[u8]) {
        let lossy = String::from_utf8_lossy(body).into_owned().into_bytes();
        for candidate in [body, &lossy[..]] {
            if let Ok(order) = Order::parse_json(candidate, &self.catalogue) {
                panic!(
                    "generator bug (or a validator that accepts an invalid order): case #{index} \
                     is a valid order {order:?}: {}",
                    preview(body, 400)
                );
            }
        }
    }
}

fn generate(ctx: &Ctx, seed: u64, index: usize) -> Case {
    let mut rng = Rng::for_case(seed, index);
    let category = Category::of(index);
    let rng = &mut rng;
    match category {
        Category::BrokenJson => broken_json(ctx, rng, index),
        Category::WrongTypes => wrong_types(ctx, rng, index),
        Category::MissingFields => missing_fields(ctx, rng, index),
        Category::UnknownFields => unknown_fields(ctx, rng, index),
        Category::HugeBodies => huge_body(ctx, rng, index),
        Category::DeepNesting => deep_nesting(ctx, rng, index),
        Category::OddUnicode => odd_unicode(ctx, rng, index),
        Category::NumbersOutOfRange => numbers_out_of_range(ctx, rng, index),
        Category::ReplacementSerials => replacement_serials(ctx, rng, index),
        Category::IdempotencyKey => idempotency_key(ctx, rng, index),
        Category::ContentType => content_type(ctx, rng, index),
        Category::WrongMethod => wrong_method(ctx, rng, index),
        Category::OddPaths => odd_path(ctx, rng, index),
        Category::UnknownOrder => unknown_order(ctx, rng, index),
        Category::CancelUnknownOrder => cancel_unknown_order(ctx, rng, index),
        Category::WebhookUnsigned => webhook_unsigned(ctx, rng, index),
        Category::WebhookSigned => webhook_signed(ctx, rng, index),
    }
}

/// `POST /orders` of a body that is not a valid order, with a valid key and a JSON media
/// type the transport carries its bytes under: `400 invalid_request`.
fn post_invalid_order(
    ctx: &Ctx,
    rng: &mut Rng,
    index: usize,
    category: Category,
    variant: &'static str,
    body: Vec<u8>,
) -> Case {
    ctx.assert_not_an_order(index, &body);
    let mut headers = vec![("idempotency-key", ctx.key(index, rng).into_bytes())];
    if std::str::from_utf8(&body).is_ok() && rng.chance(60) {
        if let Some(media_type) = rng.pick(JSON_TYPES) {
            headers.push(("content-type", media_type.as_bytes().to_vec()));
        }
    } else {
        headers.push((
            "content-type",
            rng.pick(BINARY_SAFE_JSON_TYPES).as_bytes().to_vec(),
        ));
    }
    Case {
        index,
        category,
        variant,
        method: Method::POST,
        url: ctx.url("/orders"),
        headers,
        body,
        expected: INVALID_REQUEST,
    }
}

/// A valid order of a random kind for one of the run's merchants.
fn base_order(ctx: &Ctx, rng: &mut Rng) -> Value {
    let mut order = valid_order(&ctx.merchant(rng));
    match rng.below(4) {
        0 => order["kind"] = json!("additional_devices"),
        1 => {
            let quantity = rng.between(1, 3);
            order["kind"] = json!("replacement");
            order["lines"] = json!([{"sku": rng.pick(&ctx.skus), "quantity": quantity}]);
            order["replace_serials"] = (0..quantity)
                .map(|n| json!(format!("SN-FUZZ-{n:04}")))
                .collect();
        }
        _ => {}
    }
    if rng.chance(30) {
        order["delivery_address"]["line2"] = json!("Hinterhaus, 2. OG");
    }
    if rng.chance(40) {
        let markets = ctx.catalogue.markets();
        order["delivery_address"]["country"] = json!(markets[rng.below(markets.len())]);
    }
    order
}

fn is_replacement(order: &Value) -> bool {
    order["kind"] == "replacement"
}

/// A JSON document whose `raw` slots are spliced in verbatim when rendered: for text no
/// `Value` can hold (1e400, NaN, lone surrogate escapes, nesting deeper than serde allows).
#[derive(Default)]
struct Doc {
    raws: Vec<String>,
}

impl Doc {
    fn raw(&mut self, text: impl Into<String>) -> Value {
        let slot = Value::String(format!("\u{1}raw{}\u{1}", self.raws.len()));
        self.raws.push(text.into());
        slot
    }

    fn render(&self, value: &Value) -> Vec<u8> {
        let mut text = value.to_string();
        for (n, raw) in self.raws.iter().enumerate() {
            text = text.replacen(&format!("\"\\u0001raw{n}\\u0001\""), raw, 1);
        }
        text.into_bytes()
    }
}

/// Sets the value at `pointer`, if its parent exists (adding an object member).
fn set(value: &mut Value, pointer: &str, new: Value) -> bool {
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = new;
        return true;
    }
    let Some((parent, name)) = pointer.rsplit_once('/') else {
        return false;
    };
    match value.pointer_mut(parent).and_then(Value::as_object_mut) {
        Some(object) => {
            object.insert(name.to_owned(), new);
            true
        }
        None => false,
    }
}

fn remove(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, name)) = pointer.rsplit_once('/') else {
        return false;
    };
    match value.pointer_mut(parent) {
        Some(Value::Object(object)) => object.remove(name).is_some(),
        Some(Value::Array(items)) => match name.parse::<usize>() {
            Ok(n) if n < items.len() => {
                items.remove(n);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Inserts `odd` into the middle of `text` (never at an end, where trimming could drop it).
fn insert_inside(text: &str, odd: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = if chars.len() < 2 {
        1.min(chars.len())
    } else {
        rng.between(1, chars.len() - 1)
    };
    let mut out: String = chars[..at].iter().collect();
    out.push_str(odd);
    out.extend(&chars[at..]);
    out
}

#[rustfmt::skip]
const INVALID_UTF8: &[&[u8]] = &[
    &[0xff], &[0xfe], &[0xc3], &[0x80], &[0xc0, 0x80], &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80], &[0xe2, 0x82], &[0xf8, 0x88, 0x80, 0x80, 0x80],
];

/// Fields that any foreign character makes invalid, as JSON pointers.
const STRICT_FIELDS: &[&str] = &[
    "/kind",
    "/merchant_id",
    "/lines/0/sku",
    "/delivery_address/postal_code",
    "/delivery_address/country",
];

fn broken_json(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let order = base_order(ctx, rng);
    let text = order.to_string().into_bytes();
    let (variant, body) = match rng.below(8) {
        0 => {
            let cut = rng.below(text.len());
            ("truncated", text[..cut].to_vec())
        }
        1 => {
            let n = rng.between(1, 3000);
            ("random_bytes", rng.bytes(n))
        }
        2 => {
            // Not UTF-8 inside a field no replacement character can make valid, and maybe
            // anywhere else too.
            let mut order = order;
            let pointer = rng.pick(STRICT_FIELDS);
            let current = order
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("x")
                .to_owned();
            set(
                &mut order,
                pointer,
                json!(insert_inside(&current, "\u{2}", rng)),
            );
            let rendered = order.to_string();
            let mut body = Vec::new();
            let marker = "\\u0002";
            let at = rendered.find(marker).unwrap_or(rendered.len());
            body.extend_from_slice(&rendered.as_bytes()[..at]);
            body.extend_from_slice(rng.pick(INVALID_UTF8));
            body.extend_from_slice(&rendered.as_bytes()[(at + marker.len()).min(rendered.len())..]);
            if rng.chance(50) {
                let at = rng.below(body.len());
                let bad = rng.pick(INVALID_UTF8);
                body.splice(at..at, bad.iter().copied());
            }
            ("invalid_utf8", body)
        }
        3 => {
            let garbage: Vec<u8> = match rng.below(12) {
                0 => b",".to_vec(),
                1 => b"}".to_vec(),
                2 => b"]".to_vec(),
                3 => b"x".to_vec(),
                4 => b"{}".to_vec(),
                5 => b" null".to_vec(),
                6 => b"\0".to_vec(),
                7 => b"/* comment */".to_vec(),
                8 => b"\n// comment".to_vec(),
                9 => text.clone(),
                10 => b"\n\t;".to_vec(),
                _ => {
                    // Random bytes after one that is surely not whitespace.
                    let n = rng.between(1, 50);
                    let mut bytes = vec![b'#'];
                    bytes.extend(rng.bytes(n));
                    bytes
                }
            };
            let mut body = text;
            body.extend_from_slice(&garbage);
            ("trailing_garbage", body)
        }
        4 => {
            let lead: &[u8] = rng.pick(&[
                &b"\xef\xbb\xbf"[..],
                b"x",
                b")]}',\n",
                b"\0",
                b"//\n",
                b"<",
                b"[",
                b"\"",
                b"=",
            ]);
            let mut body = lead.to_vec();
            body.extend_from_slice(&text);
            ("leading_garbage", body)
        }
        5 => {
            let rendered = String::from_utf8_lossy(&text).into_owned();
            let body = match rng.below(6) {
                0 => rendered.replace('"', "'"),
                1 => rendered.replace("\"kind\":", "kind:"),
                2 => format!("{},}}", &rendered[..rendered.len() - 1]),
                3 => {
                    let colons = structural(&rendered, b":");
                    let at = rng.pick(&colons);
                    format!("{}={}", &rendered[..at], &rendered[at + 1..])
                }
                4 => {
                    let commas = structural(&rendered, b",");
                    let at = rng.pick(&commas);
                    format!("{},{}", &rendered[..at], &rendered[at..])
                }
                _ => {
                    let at = rng.pick(&structural(&rendered, b"{}[]:,\""));
                    format!("{}{}", &rendered[..at], &rendered[at + 1..])
                }
            };
            ("syntax_error", body.into_bytes())
        }
        6 => {
            let body: Vec<u8> = match rng.below(14) {
                0 => b"null".to_vec(),
                1 => b"[]".to_vec(),
                2 => format!("[{}]", String::from_utf8_lossy(&text)).into_bytes(),
                3 => Value::String(String::from_utf8_lossy(&text).into_owned())
                    .to_string()
                    .into_bytes(),
                4 => b"42".to_vec(),
                5 => b"true".to_vec(),
                6 => b"\"\"".to_vec(),
                7 => b"{}".to_vec(),
                8 => b"[null]".to_vec(),
                9 => Vec::new(),
                10 => b" \n\t\r ".to_vec(),
                11 => b"-0".to_vec(),
                12 => b"{\"order\": {}}".to_vec(),
                _ => format!("{{\"order\": {}}}", String::from_utf8_lossy(&text)).into_bytes(),
            };
            ("not_an_object", body)
        }
        _ => {
            let cut = rng.below(text.len());
            let mut body = text[..cut].to_vec();
            let n = rng.between(1, 200);
            body.extend(rng.bytes(n));
            ("truncated_then_random", body)
        }
    };
    post_invalid_order(ctx, rng, index, Category::BrokenJson, variant, body)
}

/// Where the bytes of `wanted` stand in JSON `text` outside strings (quotes count).
fn structural(text: &str, wanted: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for (at, byte) in text.bytes().enumerate() {
        if in_string && escaped {
            escaped = false;
        } else if in_string && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            in_string = !in_string;
            if wanted.contains(&byte) {
                positions.push(at);
            }
        } else if !in_string && wanted.contains(&byte) {
            positions.push(at);
        }
    }
    positions
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Text,
    OptionalText,
    Number,
    Array,
    Object,
}

/// A value of another type than `shape` that makes the field invalid.
fn wrong_value(shape: Shape, rng: &mut Rng) -> Value {
    let candidates: Vec<Value> = match shape {
        Shape::Text | Shape::OptionalText => vec![
            json!(7),
            json!(-1),
            json!(3.25),
            json!(true),
            json!(false),
            json!([]),
            json!(["Berlin"]),
            json!({}),
            json!({"value": "x"}),
            Value::Null,
        ],
        Shape::Number => vec![
            json!("2"),
            json!("two"),
            json!(""),
            json!(true),
            json!([2]),
            json!({"n": 2}),
            Value::Null,
        ],
        Shape::Array => vec![
            json!({}),
            json!({"0": {"sku": "A80", "quantity": 1}}),
            json!("A920-PRO"),
            json!(3),
            json!(true),
            Value::Null,
        ],
        Shape::Object => vec![
            json!([]),
            json!([{"name": "x"}]),
            json!("Berlin"),
            json!(0),
            json!(false),
            Value::Null,
        ],
    };
    loop {
        let value = candidates[rng.below(candidates.len())].clone();
        // An optional field may be null; that is not a defect.
        if !(shape == Shape::OptionalText && value.is_null()) {
            return value;
        }
    }
}

fn typed_fields(order: &Value) -> Vec<(&'static str, Shape)> {
    let mut fields = vec![
        ("/kind", Shape::Text),
        ("/merchant_id", Shape::Text),
        ("/lines", Shape::Array),
        ("/lines/0", Shape::Object),
        ("/lines/0/sku", Shape::Text),
        ("/lines/0/quantity", Shape::Number),
        ("/delivery_address", Shape::Object),
        ("/delivery_address/name", Shape::Text),
        ("/delivery_address/line1", Shape::Text),
        ("/delivery_address/line2", Shape::OptionalText),
        ("/delivery_address/city", Shape::Text),
        ("/delivery_address/postal_code", Shape::Text),
        ("/delivery_address/country", Shape::Text),
    ];
    if order.pointer("/lines/1").is_some() {
        fields.push(("/lines/1", Shape::Object));
        fields.push(("/lines/1/quantity", Shape::Number));
        fields.push(("/lines/1/sku", Shape::Text));
    }
    if is_replacement(order) {
        fields.push(("/replace_serials", Shape::Array));
        fields.push(("/replace_serials/0", Shape::Text));
    }
    fields
}

fn wrong_types(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let mut order = base_order(ctx, rng);
    let fields = typed_fields(&order);
    let mut applied = 0;
    for _ in 0..rng.between(1, 3) {
        let (pointer, shape) = fields[rng.below(fields.len())];
        let value = wrong_value(shape, rng);
        if order.pointer(pointer).is_some() || shape == Shape::OptionalText {
            applied += usize::from(set(&mut order, pointer, value));
        }
    }
    if !is_replacement(&order) && rng.chance(10) {
        // Serials on an order that is not a replacement, of any type.
        order["replace_serials"] = rng.pick_value(&[json!("SN-000001"), json!(5), json!({})]);
        applied += 1;
    }
    if applied == 0 {
        order["kind"] = json!(7);
    }
    let body = order.to_string().into_bytes();
    post_invalid_order(ctx, rng, index, Category::WrongTypes, "wrong_type", body)
}

fn missing_fields(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let mut order = base_order(ctx, rng);
    let variant = match rng.below(10) {
        0 => {
            order = json!({});
            "empty_object"
        }
        1 => {
            order["lines"] = json!([{}]);
            "empty_line"
        }
        2 => {
            order["delivery_address"] = json!({});
            "empty_address"
        }
        _ => {
            let mut required = vec![
                "/kind",
                "/merchant_id",
                "/lines",
                "/delivery_address",
                "/lines/0/sku",
                "/lines/0/quantity",
                "/delivery_address/name",
                "/delivery_address/line1",
                "/delivery_address/city",
                "/delivery_address/postal_code",
                "/delivery_address/country",
            ];
            if is_replacement(&order) {
                required.push("/replace_serials");
            }
            let null_instead = rng.chance(30);
            for _ in 0..rng.between(1, 4) {
                let pointer = rng.pick(&required);
                if null_instead {
                    set(&mut order, pointer, Value::Null);
                } else {
                    remove(&mut order, pointer);
                }
            }
            if null_instead {
                "null_fields"
            } else {
                "missing_fields"
            }
        }
    };
    let body = order.to_string().into_bytes();
    post_invalid_order(ctx, rng, index, Category::MissingFields, variant, body)
}

#[rustfmt::skip]
const UNKNOWN_NAMES: &[&str] = &[
    "colour", "KIND", "Kind", " kind", "kind ", "merchantId", "merchant", "__proto__",
    "constructor", "prototype", "", " ", "\u{0}", "kind\u{0}", "\u{202e}kind",
    "kind\u{200b}", "💥", "$where", "$ne", "status", "order_id", "execution_arn", "version",
    "created_at", "price_cents", "paid", "approved", "steps", "failure", "task_token", "pk",
    "sk", "gsi1pk", "line2 ", "sku", "quantity", "replaceSerials", "lines[0]",
    "delivery_address.city",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() >> 11),
        3 => json!(-(rng.below(1_000_000) as i64)),
        4 => json!("COMPLETED"),
        5 => {
            let length = rng.between(0, 40);
            json!(rng.hex(length))
        }
        6 => (0..rng.below(4))
            .map(|_| random_value(rng, depth + 1))
            .collect(),
        _ => {
            let mut object = serde_json::Map::new();
            for n in 0..rng.below(4) {
                object.insert(format!("k{n}"), random_value(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

fn unknown_fields(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let mut order = base_order(ctx, rng);
    let root: &[&str] = &[
        "kind",
        "merchant_id",
        "lines",
        "delivery_address",
        "replace_serials",
    ];
    let line: &[&str] = &["sku", "quantity"];
    let address: &[&str] = &["name", "line1", "line2", "city", "postal_code", "country"];
    let mut added = 0;
    for _ in 0..rng.between(1, 5) {
        let (pointer, known) = match rng.below(3) {
            0 => ("", root),
            1 => ("/lines/0", line),
            _ => ("/delivery_address", address),
        };
        let name = if rng.chance(10) {
            "x".repeat(rng.between(100, 2000))
        } else {
            rng.pick(UNKNOWN_NAMES).to_owned()
        };
        if known.contains(&name.as_str()) {
            continue;
        }
        let value = random_value(rng, 0);
        if let Some(object) = order.pointer_mut(pointer).and_then(Value::as_object_mut) {
            object.insert(name, value);
            added += 1;
        }
    }
    if added == 0 {
        order["colour"] = json!("red");
    }
    let body = order.to_string().into_bytes();
    post_invalid_order(
        ctx,
        rng,
        index,
        Category::UnknownFields,
        "unknown_field",
        body,
    )
}

fn huge_body(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let order = base_order(ctx, rng);
    let size = match rng.below(10) {
        0..=5 => MAX_BODY_BYTES + 1 + rng.below(2048),
        6..=8 => rng.between(100_000, 400_000),
        _ => rng.between(1 << 20, (1 << 20) + 65_536),
    };
    let text = order.to_string();
    let (variant, body) = match rng.below(6) {
        0 => {
            // A valid order, made too big by whitespace alone.
            let pad = size.saturating_sub(text.len()).max(1);
            let pattern: String = (0..64)
                .map(|_| rng.pick(&[' ', '\n', '\t', '\r']))
                .collect();
            let padding: String = pattern.chars().cycle().take(pad).collect();
            let body = if rng.chance(50) {
                format!("{text}{padding}")
            } else {
                format!("{padding}{text}")
            };
            ("valid_order_padded_with_whitespace", body.into_bytes())
        }
        1 => {
            let mut order = order;
            order["padding"] = json!("x".repeat(size.saturating_sub(text.len())));
            ("padding_field", order.to_string().into_bytes())
        }
        2 => {
            let mut order = order;
            order["delivery_address"]["name"] = json!("Café ".repeat(size / 6 + 1));
            ("huge_name", order.to_string().into_bytes())
        }
        3 => {
            let mut order = order;
            let line = json!({"sku": "A80", "quantity": 1});
            order["lines"] = Value::Array(vec![line; size / 26 + 1]);
            ("huge_lines", order.to_string().into_bytes())
        }
        4 => ("random_bytes", rng.bytes(size)),
        _ => {
            // Exactly at the limit: read, then refused for its unknown field.
            let mut order = order;
            order["padding"] = json!("");
            let short = MAX_BODY_BYTES - order.to_string().len();
            order["padding"] = json!("y".repeat(short));
            (
                "at_the_limit_with_unknown_field",
                order.to_string().into_bytes(),
            )
        }
    };
    post_invalid_order(ctx, rng, index, Category::HugeBodies, variant, body)
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    let mut text = String::with_capacity((open.len() + close.len()) * depth + inner.len());
    for _ in 0..depth {
        text.push_str(open);
    }
    text.push_str(inner);
    for _ in 0..depth {
        text.push_str(close);
    }
    text
}

fn deep_nesting(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let depth = if rng.chance(50) {
        rng.pick(&[200, 256, 500, 1_000, 2_048, 4_096, 5_000, 10_000])
    } else {
        rng.between(200, 10_000)
    };
    let deep = match rng.below(5) {
        0 => nested("[", "", "]", depth),
        1 => nested("{\"a\":", "1", "}", depth),
        2 => nested("[{\"a\":", "0", "}]", depth),
        3 => nested("[", "{\"sku\":\"A80\",\"quantity\":1}", "]", depth),
        _ => "[".repeat(depth),
    };
    let (variant, body) = match rng.below(6) {
        0 => ("root", deep.into_bytes()),
        1..=4 => {
            let mut order = base_order(ctx, rng);
            let mut doc = Doc::default();
            let pointer = rng.pick(&[
                "/lines",
                "/lines/0/quantity",
                "/delivery_address",
                "/kind",
                "/extra",
            ]);
            let slot = doc.raw(deep);
            set(&mut order, pointer, slot);
            ("inside_an_order", doc.render(&order))
        }
        _ => {
            let order = base_order(ctx, rng).to_string();
            let body = format!("{}{deep}", &order[..order.len() - 1]);
            ("unterminated", body.into_bytes())
        }
    };
    post_invalid_order(ctx, rng, index, Category::DeepNesting, variant, body)
}

#[rustfmt::skip]
const ODD_TEXT: &[&str] = &[
    "\u{202e}", "\u{202d}", "\u{200f}", "\u{200e}", "\u{200b}", "\u{200c}", "\u{200d}",
    "\u{2060}", "\u{feff}", "\u{a0}", "\u{2028}", "\u{2029}", "e\u{301}", "\u{301}", "🇩🇪",
    "👩\u{200d}👩\u{200d}👧", "💳", "𝕬", "Ａ９２０", "А", "ß", "İ", "\u{fffd}", "\u{ffff}",
    "\u{10ffff}", "\u{e000}", "ﷺ", "Z\u{334}\u{321}\u{322}\u{31b}\u{317}", "\u{1f4a9}",
];

#[rustfmt::skip]
const CONTROL_TEXT: &[&str] = &[
    "\u{0}", "\u{7}", "\u{1b}[31m", "\u{7f}", "\u{85}", "\u{8}", "\u{0}\u{0}",
];

/// Raw JSON strings with escapes `Value` cannot hold: lone and reversed surrogates.
#[rustfmt::skip]
const SURROGATE_LITERALS: &[&str] = &[
    r#""\ud800""#, r#""\udc00""#, r#""x\ud83d""#, r#""\udfff\ud800""#, r#""\ud800\u0041""#,
    r#""Caf\udce9""#, r#""\ud800\ud800""#,
];

fn odd_unicode(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let mut order = base_order(ctx, rng);
    let mut doc = Doc::default();
    // Noise first, in the free-text fields (allowed there on its own).
    if rng.chance(60) {
        for field in ["name", "line1", "city"] {
            if rng.chance(50) {
                let current = order["delivery_address"][field]
                    .as_str()
                    .unwrap_or("x")
                    .to_owned();
                let odd = rng.pick(ODD_TEXT);
                order["delivery_address"][field] = json!(insert_inside(&current, odd, rng));
            }
        }
    }
    // Then the defect.
    let variant = match rng.below(5) {
        0 | 1 => {
            let mut pointers: Vec<&str> = STRICT_FIELDS.to_vec();
            if is_replacement(&order) {
                pointers.push("/replace_serials/0");
            }
            let pointer = rng.pick(&pointers);
            let current = order
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("xy")
                .to_owned();
            let odd = rng.pick(ODD_TEXT);
            set(
                &mut order,
                pointer,
                json!(insert_inside(&current, odd, rng)),
            );
            "foreign_character_in_strict_field"
        }
        2 => {
            let pointer = rng.pick(&[
                "/kind",
                "/merchant_id",
                "/delivery_address/name",
                "/delivery_address/city",
                "/lines/0/sku",
                "/extra",
            ]);
            let slot = doc.raw(rng.pick(SURROGATE_LITERALS));
            set(&mut order, pointer, slot);
            "lone_surrogate_escape"
        }
        3 => {
            let field = rng.pick(&["name", "line1", "city", "line2"]);
            let current = order["delivery_address"][field]
                .as_str()
                .unwrap_or("Hof")
                .to_owned();
            let control = rng.pick(CONTROL_TEXT);
            order["delivery_address"][field] = json!(insert_inside(&current, control, rng));
            "control_character"
        }
        _ => {
            let odd = rng.pick(ODD_TEXT);
            let chars = odd.chars().count().max(1);
            let (pointer, limit) = rng.pick(&[
                ("/delivery_address/name", 100),
                ("/delivery_address/line1", 100),
                ("/delivery_address/city", 100),
                ("/merchant_id", 64),
                ("/lines/0/sku", 32),
            ]);
            let want = if rng.chance(80) {
                rng.between(limit + 1, limit * 3)
            } else {
                rng.between(1_000, 10_000)
            };
            let text = format!("a{}b", odd.repeat(want / chars + 1));
            set(&mut order, pointer, json!(text));
            "very_long_string"
        }
    };
    let body = doc.render(&order);
    post_invalid_order(ctx, rng, index, Category::OddUnicode, variant, body)
}

/// Numbers (and would-be numbers) no quantity may be; the maximum plus one is added.
#[rustfmt::skip]
const NUMBER_TOKENS: &[&str] = &[
    "0", "-1", "-50", "100", "1000000", "-0", "1.5", "1.0", "2e0", "1e2", "1E400", "-1e400",
    "1e-400", "0.5", "4294967296", "4294967297", "18446744073709551615",
    "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
    "123456789012345678901234567890", "2.0000000000000001", "1.7976931348623157e309", "NaN",
    "Infinity", "-Infinity", "+1", "01", ".5", "5.", "0x10", "1_0", "1e", "--1",
];

fn numbers_out_of_range(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let max = ctx.catalogue.max_quantity_per_line() as usize;
    let too_many = (max + 1).to_string();
    let mut tokens = NUMBER_TOKENS.to_vec();
    tokens.push(&too_many);
    let mut order = base_order(ctx, rng);
    let mut doc = Doc::default();
    let variant = match rng.below(6) {
        0..=2 => {
            let lines = order["lines"].as_array().map_or(1, Vec::len);
            let line = rng.below(lines);
            let slot = doc.raw(rng.pick(&tokens));
            set(&mut order, &format!("/lines/{line}/quantity"), slot);
            "quantity"
        }
        3 => {
            let pointer = rng.pick(&[
                "/kind",
                "/merchant_id",
                "/delivery_address/postal_code",
                "/delivery_address/country",
                "/lines/0/sku",
                "/lines",
                "/delivery_address",
            ]);
            let slot = doc.raw(rng.pick(&tokens));
            set(&mut order, pointer, slot);
            "number_for_another_type"
        }
        4 => {
            let count = rng.between(ctx.catalogue.max_lines() + 1, 300);
            order["lines"] = (0..count)
                .map(|n| json!({"sku": ctx.skus[n % ctx.skus.len()], "quantity": 1}))
                .collect();
            "too_many_lines"
        }
        _ => {
            // Every line at the maximum, plus one line too many of them.
            order["lines"] = (0..ctx.skus.len() + 1)
                .map(|n| json!({"sku": ctx.skus[n % ctx.skus.len()], "quantity": max}))
                .collect();
            "duplicate_line_at_maximum"
        }
    };
    let body = doc.render(&order);
    post_invalid_order(ctx, rng, index, Category::NumbersOutOfRange, variant, body)
}

fn replacement_serials(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let quantity = rng.between(1, 3);
    let mut order = valid_order(&ctx.merchant(rng));
    order["kind"] = json!("replacement");
    order["lines"] = json!([{"sku": rng.pick(&ctx.skus), "quantity": quantity}]);
    let serials: Vec<String> = (0..quantity).map(|n| format!("SN-FUZZ-{n:04}")).collect();
    order["replace_serials"] = json!(serials);
    let bad_serial = |rng: &mut Rng| -> Value {
        match rng.below(12) {
            0 => json!("sn-fuzz-0001"),
            1 => json!("SN-1"),
            2 => json!("ABCDE"),
            3 => json!("S".repeat(rng.between(33, 200))),
            4 => json!("SN FUZZ 0001"),
            5 => json!("SN-FÜZZ-0001"),
            6 => json!("SN-FUZZ-０００１"),
            7 => json!("SN_FUZZ_0001"),
            8 => json!("SN.FUZZ.0001"),
            9 => json!(""),
            10 => json!(1234567),
            _ => Value::Null,
        }
    };
    let variant = match rng.below(9) {
        0 => {
            remove(&mut order, "/replace_serials");
            "missing"
        }
        1 => {
            order["replace_serials"] = Value::Null;
            "null"
        }
        2 => {
            order["replace_serials"] = json!([]);
            "empty"
        }
        3 => {
            order["replace_serials"] = rng.pick_value(&[
                json!("SN-FUZZ-0000"),
                json!(5),
                json!({"0": "SN-FUZZ-0000"}),
            ]);
            "not_an_array"
        }
        4 => {
            let at = rng.below(quantity);
            order["replace_serials"][at] = bad_serial(rng);
            "bad_serial"
        }
        5 => {
            let mut list = serials.clone();
            list.push(serials[0].clone());
            list.remove(list.len() - 2);
            order["replace_serials"] = json!(list);
            if quantity == 1 {
                order["replace_serials"] = json!(["SN-FUZZ-0000", "SN-FUZZ-0000"]);
            }
            "duplicate"
        }
        6 => {
            let count = if rng.chance(50) && quantity > 1 {
                rng.between(1, quantity - 1)
            } else {
                rng.between(quantity + 1, quantity + 60)
            };
            order["replace_serials"] = (0..count)
                .map(|n| json!(format!("SN-FUZZ-{n:04}")))
                .collect();
            "count_mismatch"
        }
        7 => {
            order["kind"] = json!(rng.pick(&["new_merchant", "additional_devices"]));
            "serials_on_another_kind"
        }
        _ => {
            order["replace_serials"] = (0..quantity).map(|_| bad_serial(rng)).collect();
            "all_bad"
        }
    };
    let body = order.to_string().into_bytes();
    post_invalid_order(ctx, rng, index, Category::ReplacementSerials, variant, body)
}

/// A body for requests whose defect is elsewhere: usually a valid order, sometimes not.
fn any_body(ctx: &Ctx, rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => base_order(ctx, rng).to_string().into_bytes(),
        6 => Vec::new(),
        7 => b"{\"kind\": ".to_vec(),
        8 => {
            let n = rng.between(1, 500);
            rng.bytes(n)
        }
        _ => delivered_event(&ctx.unknown_order_id(rng))
            .to_string()
            .into_bytes(),
    }
}

/// A JSON media type the transport carries `body` under.
fn json_media_type(body: &[u8], rng: &mut Rng) -> Option<&'static str> {
    if std::str::from_utf8(body).is_ok() {
        rng.pick(JSON_TYPES)
    } else {
        Some(rng.pick(BINARY_SAFE_JSON_TYPES))
    }
}

fn idempotency_key(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let body = if rng.chance(75) {
        base_order(ctx, rng).to_string().into_bytes()
    } else {
        any_body(ctx, rng)
    };
    let prefix = format!("{}{index}", ctx.key_prefix);
    let (variant, key, expected): (&'static str, Option<Vec<u8>>, Expected) = match rng.below(8) {
        0 | 1 => ("missing", None, MISSING_KEY),
        2 => (
            "blank",
            Some(rng.pick(&["", " ", "\t", "   \t  "]).as_bytes().to_vec()),
            BLANK_KEY,
        ),
        3 => {
            let length = if rng.chance(30) {
                129
            } else {
                rng.between(129, 4096)
            };
            let key = format!("{prefix}-{}", "k".repeat(length));
            (
                "too_long",
                Some(key.as_bytes()[..length].to_vec()),
                INVALID_KEY,
            )
        }
        4 => {
            let gap = rng.pick(&[" ", "\t", "  ", " \t "]);
            (
                "inner_space",
                Some(format!("{prefix}{gap}x").into_bytes()),
                INVALID_KEY,
            )
        }
        5 | 6 => {
            let odd = rng.pick(&[
                "é", "ü", "€", "🙂", "\u{200b}", "\u{202e}", "\u{a0}", "\u{2028}", "ключ", "鍵",
            ]);
            let key = if rng.chance(50) {
                format!("{prefix}{odd}")
            } else {
                format!("{prefix}{odd}x")
            };
            ("non_ascii", Some(key.into_bytes()), INVALID_KEY)
        }
        _ => {
            // Printable ASCII, but one character over the limit once trimmed.
            let key = format!("{prefix}-{}", "~".repeat(200));
            let key = format!("  {}  ", &key[..129]);
            ("too_long_after_trim", Some(key.into_bytes()), INVALID_KEY)
        }
    };
    let mut headers = Vec::new();
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    if let Some(media_type) = json_media_type(&body, rng) {
        headers.push(("content-type", media_type.as_bytes().to_vec()));
    }
    Case {
        index,
        category: Category::IdempotencyKey,
        variant,
        method: Method::POST,
        url: ctx.url("/orders"),
        headers,
        body,
        expected,
    }
}

fn content_type(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let (variant, body, media_type, expected): (&'static str, Vec<u8>, &str, Expected) =
        match rng.below(10) {
            0..=5 => (
                "valid_order_as_text",
                base_order(ctx, rng).to_string().into_bytes(),
                rng.pick(TEXT_WRONG_TYPES),
                UNSUPPORTED,
            ),
            6 | 7 => {
                let body = if rng.chance(50) {
                    base_order(ctx, rng).to_string().into_bytes()
                } else {
                    let n = rng.between(1, 2000);
                    rng.bytes(n)
                };
                (
                    "binary_type",
                    body,
                    rng.pick(BINARY_WRONG_TYPES),
                    UNSUPPORTED,
                )
            }
            _ => (
                "blank_type_broken_body",
                b"{\"kind\": \"new_merchant\",".to_vec(),
                rng.pick(&["", " ", "\t"]),
                BLANK_CONTENT_TYPE,
            ),
        };
    let mut headers = vec![("content-type", media_type.as_bytes().to_vec())];
    if rng.chance(85) {
        headers.push(("idempotency-key", ctx.key(index, rng).into_bytes()));
    }
    Case {
        index,
        category: Category::ContentType,
        variant,
        method: Method::POST,
        url: ctx.url("/orders"),
        headers,
        body,
        expected,
    }
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or_else(|error| panic!("method {name:?}: {error}"))
}

/// An order id of any shape the router still sees as one path segment.
fn odd_order_id(ctx: &Ctx, rng: &mut Rng) -> String {
    let hex = rng.hex(32);
    match rng.below(16) {
        0..=5 => ctx.unknown_order_id(rng),
        6 => format!("ord-{}", hex.to_uppercase()),
        7 => format!("ord-{}", &hex[..31]),
        8 => format!("ord-{hex}0"),
        9 => format!("ORD-{hex}"),
        10 => format!("ord_{hex}"),
        11 => format!("ord-{}", "g".repeat(32)),
        12 => format!("ord-{hex}%00"),
        13 => {
            let n = rng.between(1, 200);
            (0..n)
                .map(|_| char::from(b"abcxyz0189-_~!$&'()*+,;=:@"[rng.below(26)]))
                .collect()
        }
        14 => {
            // Percent-encoded bytes, never a dot (`%2E` segments are dot segments).
            let n = rng.between(1, 30);
            (0..n)
                .map(|_| match rng.below(256) {
                    0x2e => "%2F".to_owned(),
                    byte => format!("%{byte:02X}"),
                })
                .collect::<String>()
        }
        _ => rng
            .pick(&[
                "null",
                "undefined",
                "0",
                "-1",
                "ord-",
                "%20",
                "%",
                "%zz",
                "%u0000",
                "ord-%E2%80%AE",
                "🙂",
                "ключ",
                "${jndi:ldap:x}",
                "'%20OR%20'1'='1",
                "<script>",
            ])
            .to_owned(),
    }
}

fn wrong_method(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let (url, allowed) = match rng.below(4) {
        0 => (ctx.url("/orders"), "POST"),
        1 => (single_segment_id(ctx, rng, index, "").0, "GET"),
        2 => (single_segment_id(ctx, rng, index, "/cancel").0, "POST"),
        _ => (ctx.webhook.clone(), "POST"),
    };
    let name = loop {
        let name = rng.pick(&[
            "GET", "POST", "PUT", "DELETE", "PATCH", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND",
            "FUZZ", "CONNECTX",
        ]);
        if name != allowed {
            break name;
        }
    };
    let body = any_body(ctx, rng);
    let mut headers = vec![("idempotency-key", ctx.key(index, rng).into_bytes())];
    if let Some(media_type) = json_media_type(&body, rng) {
        headers.push(("content-type", media_type.as_bytes().to_vec()));
    }
    Case {
        index,
        category: Category::WrongMethod,
        variant: if allowed == "GET" {
            "not_get"
        } else {
            "not_post"
        },
        method: method(name),
        url,
        headers,
        body,
        expected: NOT_ALLOWED,
    }
}

/// Paths no route takes (some only after the URL's own normalisation).
#[rustfmt::skip]
const UNKNOWN_ROUTES: &[&str] = &[
    "/", "//", "/order", "/Orders", "/ORDERS", "/orders.json", "/orders/", "/merchants",
    "/orders/x/y", "/orders/x/cancel/now", "/orders/x/CANCEL", "/orders/x/Cancel",
    "/orders//cancel", "/orders/x/cancel/", "/webhooks", "/webhooks/",
    "/webhooks/courier/extra", "/webhooks/Courier", "/webhooks/courier/..", "/admin",
    "/.env", "/orders/a/../../admin", "/orders%2Fx", "/%6Frders", "/orders;jsessionid=1",
    "/orders/x%2Fcancel", "/orders/x/cancel%00", "/orders/%2e%2e", "/webhooks%2Fcourier",
    "/orders/x/cancel;x=1", "/2015-03-31/functions/orders-api/invocations",
];

fn odd_path(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let id = odd_order_id(ctx, rng);
    let (variant, tail) = match rng.below(6) {
        0 | 1 => ("unknown_route", rng.pick(UNKNOWN_ROUTES).to_owned()),
        2 => {
            let segments = rng.between(1, 6);
            let tail: String = (0..segments)
                .map(|_| format!("/{}", odd_order_id(ctx, rng)))
                .collect();
            ("random_segments", tail)
        }
        3 => {
            let base = rng.pick(&[
                "/orders",
                "/orders/x",
                "/",
                "/webhooks/courier",
                "/orders/x/cancel",
            ]);
            let query = match rng.below(5) {
                0 => "x=1&x=2".to_owned(),
                1 => "%ff=%00&a[]=1&a[b]=2".to_owned(),
                2 => format!("id={id}&status=COMPLETED"),
                3 => format!("q={}", "z".repeat(rng.between(100, 6_000))),
                _ => "&&==&?".to_owned(),
            };
            ("query_string", format!("{base}?{query}"))
        }
        4 => {
            let length = rng.between(1_000, MAX_URL_TAIL - 100);
            let tail = match rng.below(3) {
                0 => format!("/orders/{}", "a".repeat(length)),
                1 => "/x".repeat(length / 2),
                _ => format!("/orders/{}/cancel/x", "%41".repeat(length / 3)),
            };
            ("very_long", tail)
        }
        _ => (
            "order_id_then_more",
            format!("/orders/{id}/{}", odd_order_id(ctx, rng)),
        ),
    };
    let url = ctx.url(&tail);
    assert!(
        url_tail(&url).len() <= MAX_URL_TAIL + 64,
        "case #{index}: URL too long"
    );
    let segments = ctx.segments(&url);
    // POST only where it reaches no handler that would take a valid request.
    let routed_post = matches!(
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["orders"] | ["webhooks", "courier"] | ["orders", _, "cancel"]
    );
    let mut name = rng.pick(&["GET", "DELETE", "PUT", "PATCH", "POST"]);
    if name == "POST" && routed_post {
        name = "GET";
    }
    // GET on a route that answers 200 (an order) cannot happen: no order has these ids.
    let body = if rng.chance(30) {
        any_body(ctx, rng)
    } else {
        Vec::new()
    };
    let mut headers = Vec::new();
    if let Some(media_type) = json_media_type(&body, rng) {
        headers.push(("content-type", media_type.as_bytes().to_vec()));
    }
    Case {
        index,
        category: Category::OddPaths,
        variant,
        method: method(name),
        url,
        headers,
        body,
        expected: ODD_PATH,
    }
}

fn noise_headers(ctx: &Ctx, rng: &mut Rng, index: usize) -> Headers {
    let mut headers = Vec::new();
    if rng.chance(30) {
        headers.push(("idempotency-key", ctx.key(index, rng).into_bytes()));
    }
    if rng.chance(30) {
        headers.push(("content-type", b"application/xml".to_vec()));
    }
    if rng.chance(20) {
        headers.push((
            "x-courier-signature",
            format!("sha256={}", rng.hex(64)).into_bytes(),
        ));
    }
    headers
}

/// `/orders/{id}{suffix}` for an odd id the router sees as exactly one (non-empty)
/// segment, so the request reaches the route meant (`GET /orders/` would be `GET /orders`).
fn single_segment_id(ctx: &Ctx, rng: &mut Rng, index: usize, suffix: &str) -> (Url, String) {
    for _ in 0..100 {
        let id = odd_order_id(ctx, rng);
        let url = ctx.url(&format!("/orders/{id}{suffix}"));
        let segments = ctx.segments(&url);
        let expected = if suffix.is_empty() { 2 } else { 3 };
        if segments.len() == expected && !segments[1].is_empty() {
            return (url, id);
        }
    }
    panic!("case #{index}: no single-segment order id in 100 tries")
}

fn unknown_order(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let target = single_segment_id(ctx, rng, index, "");
    let headers = noise_headers(ctx, rng, index);
    let request = (Method::GET, headers, Vec::new());
    unknown_id_case(index, Category::UnknownOrder, target, request)
}

fn cancel_unknown_order(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let target = single_segment_id(ctx, rng, index, "/cancel");
    let headers = noise_headers(ctx, rng, index);
    let body = if rng.chance(40) {
        any_body(ctx, rng)
    } else {
        Vec::new()
    };
    let body = if std::str::from_utf8(&body).is_ok() {
        body
    } else {
        Vec::new()
    };
    unknown_id_case(
        index,
        Category::CancelUnknownOrder,
        target,
        (Method::POST, headers, body),
    )
}

/// A request to `url`, whose one id segment `id` names no order: `404 order_not_found`
/// whatever the id looks like.
fn unknown_id_case(
    index: usize,
    category: Category,
    (url, id): (Url, String),
    (method, headers, body): (Method, Headers, Vec<u8>),
) -> Case {
    Case {
        index,
        category,
        variant: if is_well_formed(&id) {
            "well_formed_id"
        } else {
            "malformed_id"
        },
        method,
        url,
        headers,
        body,
        expected: ORDER_NOT_FOUND,
    }
}

fn delivered_event(order_id: &str) -> Value {
    json!({
        "event_id": format!("evt-{order_id}"),
        "type": "shipment.delivered",
        "order_id": order_id,
        "shipment_id": "shp-fuzz",
        "tracking_number": "TRKFUZZ",
        "occurred_at": "2026-11-26T10:00:00.000Z",
    })
}

/// A delivery event for `order_id` (plain hex) whose event id is `size` bytes long: as
/// text, because serializing a MiB string through `Value` is slow in a debug build.
fn oversized_event(order_id: &str, size: usize) -> Vec<u8> {
    format!(
        "{{\"event_id\":\"{}\",\"type\":\"shipment.delivered\",\"order_id\":\"{order_id}\",\
         \"shipment_id\":\"shp-fuzz\",\"occurred_at\":\"2026-11-26T10:00:00.000Z\"}}",
        "e".repeat(size)
    )
    .into_bytes()
}

/// A courier event or something pretending to be one.
fn webhook_body(ctx: &Ctx, rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=4 => delivered_event(&ctx.unknown_order_id(rng))
            .to_string()
            .into_bytes(),
        5 => delivered_event(&odd_order_id(ctx, rng))
            .to_string()
            .into_bytes(),
        6 => Vec::new(),
        7 => {
            let n = rng.between(1, 2000);
            rng.bytes(n)
        }
        8 => nested("[", "", "]", rng.between(200, 10_000)).into_bytes(),
        _ => {
            let size = rng.pick(&[MAX_BODY_BYTES + 1, 200_000, 1 << 20]);
            oversized_event(&ctx.unknown_order_id(rng), size)
        }
    }
}

fn webhook_content_type(body: &[u8], rng: &mut Rng) -> Option<&'static str> {
    if std::str::from_utf8(body).is_ok() {
        rng.pick(&[
            None,
            Some("application/json"),
            Some("text/plain"),
            Some("application/xml"),
        ])
    } else {
        Some(rng.pick(&[
            "application/octet-stream",
            "APPLICATION/JSON",
            "application/vnd.courier+json",
        ]))
    }
}

/// The courier's signature of `body` at `timestamp`: `t=<timestamp>,v1=<hex>`.
fn signed_at(ctx: &Ctx, timestamp: i64, body: &[u8]) -> String {
    delivery::sign(&ctx.webhook_secret, timestamp, body)
}

/// What the webhook answers a body the signature check refuses for `refused`: a body
/// over the limit is refused for its size first.
fn unless_too_large(body: &[u8], refused: Expected) -> Expected {
    if body.len() > courier_webhook::MAX_EVENT_BYTES {
        TOO_LARGE
    } else {
        refused
    }
}

fn webhook_unsigned(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let body = webhook_body(ctx, rng);
    let at = (ctx.clock)();
    // The right signature's hex, only for the variants that spoil it.
    let correct_hex = || signed_at(ctx, at, &body)[format!("t={at},v1=").len()..].to_owned();
    let (variant, signature, refused): (&'static str, Option<String>, Expected) =
        match rng.below(18) {
            0 | 1 => ("missing", None, BAD_SIGNATURE),
            2 => (
                "blank",
                Some(rng.pick(&["", " ", "t=", "v1=", "t=,v1="]).to_owned()),
                BAD_SIGNATURE,
            ),
            3 => (
                "random_hex",
                Some(format!("t={at},v1={}", rng.hex(64))),
                BAD_SIGNATURE,
            ),
            4 => (
                "wrong_secret",
                Some(delivery::sign("not-the-courier-secret", at, &body)),
                BAD_SIGNATURE,
            ),
            5 => {
                let mut other = body.clone();
                other.push(b' ');
                (
                    "signs_another_body",
                    Some(signed_at(ctx, at, &other)),
                    BAD_SIGNATURE,
                )
            }
            6 => {
                let prefix = rng.pick(&["sha256=", "v0=", "V1=", "v2=", "sig=", ""]);
                (
                    "wrong_scheme",
                    Some(format!("t={at},{prefix}{}", correct_hex())),
                    BAD_SIGNATURE,
                )
            }
            7 => (
                "truncated",
                Some(format!("t={at},v1={}", &correct_hex()[..62])),
                BAD_SIGNATURE,
            ),
            8 => (
                "extended",
                Some(format!("t={at},v1={}00", correct_hex())),
                BAD_SIGNATURE,
            ),
            9 => {
                let mut digits: Vec<char> = correct_hex().chars().collect();
                let at_digit = rng.below(digits.len());
                let old = digits[at_digit];
                digits[at_digit] = loop {
                    let new = char::from(b"0123456789abcdef"[rng.below(16)]);
                    if new != old {
                        break new;
                    }
                };
                (
                    "one_digit_changed",
                    Some(format!(
                        "t={at},v1={}",
                        digits.into_iter().collect::<String>()
                    )),
                    BAD_SIGNATURE,
                )
            }
            10 => (
                "not_hex",
                Some(format!("t={at},v1={}", "z".repeat(64))),
                BAD_SIGNATURE,
            ),
            11 => (
                // The old scheme: an HMAC of the body alone, without a timestamp.
                "body_only_signature",
                Some(format!("sha256={}", correct_hex())),
                BAD_SIGNATURE,
            ),
            12 => (
                "non_ascii",
                Some(format!("t={at},v1=é{}", &correct_hex()[2..])),
                BAD_SIGNATURE,
            ),
            13 => (
                // A captured signature sent with another timestamp.
                "timestamp_moved",
                Some(format!(
                    "t={},v1={}",
                    at + rng.between(1, 200) as i64,
                    correct_hex()
                )),
                BAD_SIGNATURE,
            ),
            14 => (
                // Correctly signed, but longer ago than the window: a replay.
                "old_timestamp",
                Some(signed_at(
                    ctx,
                    at - delivery::TOLERANCE - rng.between(60, 86_400) as i64,
                    &body,
                )),
                STALE_SIGNATURE,
            ),
            15 => (
                "future_timestamp",
                Some(signed_at(
                    ctx,
                    at + delivery::TOLERANCE + rng.between(60, 86_400) as i64,
                    &body,
                )),
                STALE_SIGNATURE,
            ),
            16 => (
                "timestamp_not_a_number",
                Some(format!(
                    "t={},v1={}",
                    rng.pick(&["", "now", "1e9", "-", "0x10", "99999999999999999999999"]),
                    correct_hex()
                )),
                BAD_SIGNATURE,
            ),
            _ => (
                "huge",
                Some({
                    let length = rng.between(1_000, 6_000);
                    format!("t={at},v1={}", rng.hex(length))
                }),
                BAD_SIGNATURE,
            ),
        };
    let mut headers = Vec::new();
    if let Some(signature) = signature {
        headers.push(("x-courier-signature", signature.into_bytes()));
    }
    if let Some(media_type) = webhook_content_type(&body, rng) {
        headers.push(("content-type", media_type.as_bytes().to_vec()));
    }
    let expected = unless_too_large(&body, refused);
    Case {
        index,
        category: Category::WebhookUnsigned,
        variant,
        method: Method::POST,
        url: ctx.webhook.clone(),
        headers,
        body,
        expected,
    }
}

/// Correctly signed bodies that are not events (400) or events for orders that do not
/// exist (404). An event of another type for a well-formed id would be ignored (202), so
/// well-formed ids always come with `shipment.delivered`.
fn webhook_signed(ctx: &Ctx, rng: &mut Rng, index: usize) -> Case {
    let mut event = delivered_event(&ctx.unknown_order_id(rng));
    let (variant, body, expected): (&'static str, Vec<u8>, Expected) = match rng.below(9) {
        0 => {
            let field = rng.pick(&["event_id", "type", "order_id", "shipment_id", "occurred_at"]);
            remove(&mut event, &format!("/{field}"));
            ("missing_field", event.to_string().into_bytes(), BAD_EVENT)
        }
        1 => {
            let field = rng.pick(&[
                "event_id",
                "type",
                "order_id",
                "shipment_id",
                "occurred_at",
                "tracking_number",
            ]);
            event[field] = wrong_value(Shape::OptionalText, rng);
            ("wrong_type", event.to_string().into_bytes(), BAD_EVENT)
        }
        2 => {
            let n = rng.between(1, 2000);
            let mut body = rng.bytes(n);
            body.insert(0, b'#');
            ("random_bytes", body, BAD_EVENT)
        }
        3 => (
            "not_an_object",
            rng.pick(&[&b""[..], b"null", b"[]", b"\"event\"", b"{", b"42"])
                .to_vec(),
            BAD_EVENT,
        ),
        4 => (
            "deep_nesting",
            nested("{\"a\":", "1", "}", rng.between(200, 10_000)).into_bytes(),
            BAD_EVENT,
        ),
        5 => {
            let id = (0..100)
                .map(|_| odd_order_id(ctx, rng))
                .find(|id| !is_well_formed(id))
                .unwrap_or_else(|| "ord-not-an-id".to_owned());
            event["order_id"] = json!(id);
            event["type"] =
                json!(rng.pick(&["shipment.delivered", "shipment.in_transit", "", "🙂"]));
            (
                "malformed_order_id",
                event.to_string().into_bytes(),
                ORDER_NOT_FOUND,
            )
        }
        6 | 7 => {
            for field in ["event_id", "shipment_id", "occurred_at", "tracking_number"] {
                if rng.chance(50) {
                    event[field] = json!(match rng.below(5) {
                        0 => String::new(),
                        1 => rng.pick(ODD_TEXT).to_owned(),
                        2 => format!("a{}b", rng.pick(CONTROL_TEXT)),
                        3 => "x".repeat(rng.between(1_000, 20_000)),
                        _ => "\u{0}".to_owned(),
                    });
                }
            }
            (
                "unknown_order",
                event.to_string().into_bytes(),
                ORDER_NOT_FOUND,
            )
        }
        _ => {
            let size = rng.pick(&[MAX_BODY_BYTES + 1, 300_000, 600_000, 1 << 20]);
            let id = event["order_id"].as_str().unwrap_or_default().to_owned();
            ("oversized_event", oversized_event(&id, size), TOO_LARGE)
        }
    };
    let at = (ctx.clock)();
    let signature = match rng.below(5) {
        0 => format!(" {} ", signed_at(ctx, at, &body)),
        1 => signed_at(ctx, at, &body)
            .to_uppercase()
            .replacen("T=", "t=", 1)
            .replacen(",V1=", ",v1=", 1),
        // Within the window, either way.
        2 => signed_at(ctx, at - rng.between(1, 240) as i64, &body),
        // Another scheme beside v1, as providers add them.
        3 => format!("{},v0={}", signed_at(ctx, at, &body), rng.hex(64)),
        _ => signed_at(ctx, at, &body),
    };
    let expected = unless_too_large(&body, refused_ids(&body, expected));
    let mut headers = vec![("x-courier-signature", signature.into_bytes())];
    if let Some(media_type) = webhook_content_type(&body, rng) {
        headers.push(("content-type", media_type.as_bytes().to_vec()));
    }
    Case {
        index,
        category: Category::WebhookSigned,
        variant,
        method: Method::POST,
        url: ctx.webhook.clone(),
        headers,
        body,
        expected,
    }
}

/// What the webhook answers an event it would otherwise look up: ids it could not store
/// (README: `event_id` and `shipment_id` 1 to 128 printable ASCII characters without
/// spaces, `occurred_at` at most 64 characters) make it an invalid event first.
fn refused_ids(body: &[u8], expected: Expected) -> Expected {
    if expected != ORDER_NOT_FOUND {
        return expected;
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return expected;
    };
    let storable = |field: &str| {
        event[field].as_str().is_some_and(|id| {
            (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        })
    };
    let short = event["occurred_at"]
        .as_str()
        .is_some_and(|at| at.chars().count() <= 64);
    if storable("event_id") && storable("shipment_id") && short {
        expected
    } else {
        BAD_EVENT
    }
}

/// Whether an id has the shape of a real order id (the API looks it up).
fn is_well_formed(id: &str) -> bool {
    order_core::OrderId::parse(id).is_some()
}
