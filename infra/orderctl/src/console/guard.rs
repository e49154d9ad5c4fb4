//! What keeps a local server that acts with the operator's credentials from acting for
//! anyone else. Reaching 127.0.0.1 proves nothing: any local process or user (a shared
//! bastion, an `ssh -L`) and any web page the operator's browser shows can send requests
//! there. So:
//!
//! - it listens on 127.0.0.1 only (see [`super::run`]);
//! - a request whose `Host` is not `127.0.0.1:<port>` or `localhost:<port>` is refused
//!   (403), so a web page that rebinds its own DNS name to 127.0.0.1 cannot read or drive
//!   it;
//! - a request the browser marks `Sec-Fetch-Site: cross-site` is refused (403) whatever
//!   its method, GET included; so is `same-site`: on 127.0.0.1 every other port is the
//!   same site, and the servers on those ports are exactly the other local processes
//!   this guard does not trust. The console's own pages send `same-origin`, an address
//!   typed or pasted sends `none`, and a client that is not a browser sends nothing:
//!   those pass on to the next check;
//! - every request must carry the launch secret: a random value made at start and
//!   printed once, in the URL the console prints (`http://127.0.0.1:<port>/?token=…`, as
//!   Jupyter does). Opening that URL sets it as a cookie (`HttpOnly; SameSite=Strict`, its
//!   name holding the port, since cookies do not tell ports apart) and redirects to the
//!   same page without it; any other request without the cookie, or with another value
//!   in the cookie or the URL, is refused (401) with a page saying to open the printed
//!   URL. The style sheet is refused too, so that page needs nothing else;
//! - a POST (every action, and every look at the dead-letter queue, which receives its
//!   messages) must also carry this process's form token, which only the console's own
//!   pages hold, and, when the browser sends one, an `Origin` (or else a `Referer`) of
//!   the console itself;
//! - every page forbids scripts, frames and foreign form targets
//!   (`Content-Security-Policy`), is never cached, and sends no referrer elsewhere.
//!
//! Requests are logged (method, path, status, time taken) as JSON on stderr; query
//! strings (which carry the secret when the printed URL is opened), cookies, form bodies
//! and the tokens are not.

use super::{error::ConsoleError, Console};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The response headers every page gets.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    // Same-origin POSTs keep their Origin; links to the AWS console carry no referrer.
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The query parameter of the printed URL that carries the launch secret.
const SECRET_PARAMETER: &str = "token";

/// The `Sec-Fetch-Site` values a request may carry: the console's own pages
/// (`same-origin`) and an address the operator typed, pasted or bookmarked (`none`).
const ALLOWED_FETCH_SITES: [&str; 2] = ["same-origin", "none"];

/// The names this console answers to, its launch secret and the token its forms carry.
#[derive(Clone)]
pub struct Guard {
    port: u16,
    hosts: [String; 2],
    origins: [String; 2],
    /// In the printed URL, then in the cookie: who may use the console at all.
    secret: String,
    /// In the forms of the console's own pages: which POSTs come from them.
    token: String,
}

/// Never shows the secret or the token (a `?guard` in a log line must not leak them).
impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("hosts", &self.hosts)
            .field("secret", &"<hidden>")
            .field("token", &"<hidden>")
            .finish()
    }
}

/// What the guard decides about one request.
#[derive(Debug)]
pub enum Decision {
    /// On to the page.
    Pass,
    /// The printed URL, opened: set the cookie and send the browser to `location` (the
    /// same page without the secret).
    SignIn { location: String },
    /// Refused, with the page that says why.
    Refuse(ConsoleError),
}

/// 244 random bits from the operating system's generator (UUID v4, twice): 64 hex digits.
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `given` is `expected`, compared in a time that does not depend on where they
/// differ.
fn same_secret(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    let differences = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    given.len() == expected.len() && differences == 0
}

impl Guard {
    /// The guard of a console listening on `port` of 127.0.0.1, with a new launch
    /// secret and a new form token.
    pub fn new(port: u16) -> Guard {
        let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let origins = hosts.clone().map(|host| format!("http://{host}"));
        Guard {
            port,
            hosts,
            origins,
            secret: random_secret(),
            token: random_secret(),
        }
    }

    /// The console's address without the secret: for logs.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The URL to print once at start: the console's address with the launch secret.
    pub fn launch_url(&self) -> String {
        format!("{}?{SECRET_PARAMETER}={}", self.url(), self.secret)
    }

    /// The token the console's forms carry (in a hidden field, never in a URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The cookie's name: one per port, as browsers send a cookie of 127.0.0.1 to every
    /// port of it (two consoles side by side must not overwrite each other's).
    fn cookie_name(&self) -> String {
        format!("orders-console-{}", self.port)
    }

    /// The `Set-Cookie` of a browser that opened the printed URL. No `Secure`: the
    /// console is plain http on the loopback address; no `Max-Age`: it ends with the
    /// browser's session, and a new console makes a new secret anyway.
    fn cookie(&self) -> String {
        format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie_name(),
            self.secret
        )
    }

    /// Whether `host` (the `Host` header) names this console.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|host| {
            self.hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host.trim()))
        })
    }

    /// Whether the request carries the launch secret in its cookie.
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(key, value)| key == name && same_secret(&self.secret, value))
    }

    /// Whether a POST comes from one of the console's own pages, as far as the browser
    /// says: its `Origin` when sent, else its `Referer` when sent; with neither (not a
    /// browser), the token decides alone.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            return self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin));
        }
        match text(header::REFERER) {
            Some(referer) => self.origins.iter().any(|o| {
                referer
                    .get(..o.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(o))
                    && referer[o.len()..].starts_with('/')
            }),
            None => true,
        }
    }

    /// Accepts a form's token only if it is this process's (compared in constant time).
    pub fn check_token(&self, given: &str) -> Result<(), ConsoleError> {
        if same_secret(&self.token, given) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "this form does not carry the console's token: open the page again from the console and confirm there (the token changes each time the console starts)".into(),
            ))
        }
    }

    /// The refusal of a request without the launch secret.
    fn not_signed_in(&self) -> ConsoleError {
        ConsoleError::Unauthenticated(format!(
            "This console serves only the browser that opened the URL it printed when it started \
             (http://127.0.0.1:{}/?token=…): open that URL. For the console that make up \
             started, make status shows it (CONSOLE_URL); a console you started yourself \
             printed it on its first line. The secret changes each time the console starts.",
            self.port
        ))
    }

    /// What to do with a request, in order: the Host, the browser's `Sec-Fetch-Site`,
    /// the launch secret (in the URL: sign in; else the cookie), and for a POST its
    /// origin. The form token is checked by each POST handler.
    pub fn decide(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Decision {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !self.host_allowed(host) {
            return Decision::Refuse(ConsoleError::Forbidden(format!(
                "this console answers only to {} or {}; the request named the host {:?}",
                self.hosts[0],
                self.hosts[1],
                host.unwrap_or_default()
            )));
        }
        if let Some(site) = foreign_fetch_site(headers) {
            return Decision::Refuse(ConsoleError::Forbidden(format!(
                "this request came from another site (Sec-Fetch-Site: {site}): the console answers only its own pages and addresses typed in the browser"
            )));
        }
        let given: Vec<String> = uri
            .query()
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .filter(|(name, _)| name == SECRET_PARAMETER)
                    .map(|(_, value)| value.into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !given.is_empty() {
            return if given.iter().all(|value| same_secret(&self.secret, value)) {
                Decision::SignIn {
                    location: without_secret(uri),
                }
            } else {
                Decision::Refuse(self.not_signed_in())
            };
        }
        if !self.signed_in(headers) {
            return Decision::Refuse(self.not_signed_in());
        }
        if *method == Method::POST && !self.same_origin(headers) {
            return Decision::Refuse(ConsoleError::Forbidden(
                "this action was not sent from one of the console's own pages (its Origin or Referer is another site)".into(),
            ));
        }
        Decision::Pass
    }

    /// The answer to the printed URL: the cookie, and a 303 to the same page without the
    /// secret (so it stays out of the browser's history and of any link's referrer).
    fn sign_in(&self, location: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        let location =
            HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
        response.headers_mut().insert(header::LOCATION, location);
        match HeaderValue::try_from(self.cookie()) {
            Ok(cookie) => {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
                response
            }
            // Hex digits and a port: always a valid header; were it not, no sign-in.
            Err(_) => self.not_signed_in().into_response(),
        }
    }
}

/// The request's `Sec-Fetch-Site` when it is not one the console accepts
/// ([`ALLOWED_FETCH_SITES`]); `None` when it is, or when there is none (not a browser,
/// or one too old to send it: the Host, Origin and token checks still hold).
fn foreign_fetch_site(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("sec-fetch-site")
        .iter()
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .find(|site| !ALLOWED_FETCH_SITES.contains(&site.as_str()))
}

/// The request's path and query without the launch secret, every other parameter kept.
/// A path that a browser would read as another host (`//host/…`) becomes `/`.
fn without_secret(uri: &Uri) -> String {
    let path = uri.path();
    let path = if path.starts_with("//") || path.starts_with("/\\") || !path.starts_with('/') {
        "/"
    } else {
        path
    };
    let kept: String = match uri.query() {
        Some(query) => form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(query.as_bytes())
                    .filter(|(name, _)| name != SECRET_PARAMETER),
            )
            .finish(),
        None => String::new(),
    };
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{kept}")
    }
}

/// The middleware around every request: the guard's [`Decision`], the security headers
/// and the request log.
pub async fn check(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let guard = &console.guard;
    let decision = guard.decide(&method, request.uri(), request.headers());
    let mut response = match decision {
        Decision::Pass => next.run(request).await,
        Decision::SignIn { location } => guard.sign_in(&location),
        Decision::Refuse(error) => error.into_response(),
    };
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        map
    }

    fn uri(text: &str) -> Uri {
        text.parse().expect("a URI")
    }

    /// A browser's request to the console on 8765 that opened the printed URL.
    fn signed_in(guard: &Guard, more: &[(&str, &str)]) -> HeaderMap {
        let cookie = format!("{}={}", guard.cookie_name(), guard.secret);
        let mut pairs = vec![("host", "127.0.0.1:8765"), ("cookie", cookie.as_str())];
        pairs.extend_from_slice(more);
        headers(&pairs)
    }

    fn refused_with(decision: Decision) -> u16 {
        match decision {
            Decision::Refuse(error) => error.status().0.as_u16(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn only_the_loopback_address_and_localhost_with_the_port_are_this_consoles_hosts() {
        let guard = Guard::new(8765);
        assert!(guard.host_allowed(Some("127.0.0.1:8765")));
        assert!(guard.host_allowed(Some("LOCALHOST:8765")));
        for other in [
            "attacker.example:8765",
            "127.0.0.1",
            "127.0.0.1:8766",
            "localhost.attacker.example:8765",
            "",
        ] {
            assert!(!guard.host_allowed(Some(other)), "{other}");
        }
        assert!(!guard.host_allowed(None));
    }

    #[test]
    fn a_post_from_another_origin_or_a_foreign_referer_is_not_same_origin() {
        let guard = Guard::new(8765);
        let ok = headers(&[("origin", "http://127.0.0.1:8765")]);
        assert!(guard.same_origin(&ok));
        let foreign = headers(&[
            ("origin", "http://attacker.example"),
            ("referer", "http://127.0.0.1:8765/orders"),
        ]);
        assert!(!guard.same_origin(&foreign), "the Origin decides");
        assert!(!guard.same_origin(&headers(&[("origin", "null")])));
        let referer = |r| guard.same_origin(&headers(&[("referer", r)]));
        assert!(referer("http://localhost:8765/orders/ord-1/cancel"));
        assert!(!referer("http://127.0.0.1:87650/x"));
        assert!(!referer("http://127.0.0.1:8765.attacker.example/x"));
        assert!(
            guard.same_origin(&HeaderMap::new()),
            "no browser headers: the token decides"
        );
    }

    #[test]
    fn only_this_processs_token_is_accepted() {
        let guard = Guard::new(1);
        let token = guard.token().to_owned();
        assert_eq!(token.len(), 64);
        assert!(guard.check_token(&token).is_ok());
        assert!(guard.check_token("").is_err());
        assert!(guard.check_token(&token[..63]).is_err());
        assert!(
            Guard::new(1).check_token(&token).is_err(),
            "a new console, a new token"
        );
    }

    #[test]
    fn the_launch_secret_is_64_hex_digits_new_at_each_start_and_not_the_form_token() {
        let guard = Guard::new(8765);
        assert_eq!(guard.secret.len(), 64);
        assert!(guard.secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(guard.secret, guard.token);
        assert_ne!(guard.secret, Guard::new(8765).secret);
        assert_eq!(
            guard.launch_url(),
            format!("http://127.0.0.1:8765/?token={}", guard.secret)
        );
        assert!(!guard.url().contains(&guard.secret));
        assert!(!format!("{guard:?}").contains(&guard.secret));
        assert!(!format!("{guard:?}").contains(&guard.token));
    }

    #[test]
    fn a_request_without_the_cookie_or_with_another_value_is_refused_as_not_signed_in() {
        let guard = Guard::new(8765);
        let get =
            |headers: HeaderMap| refused_with(guard.decide(&Method::GET, &uri("/"), &headers));
        assert_eq!(get(headers(&[("host", "127.0.0.1:8765")])), 401);
        let other = Guard::new(8765);
        let cookie = format!("{}={}", other.cookie_name(), other.secret);
        assert_eq!(
            get(headers(&[("host", "127.0.0.1:8765"), ("cookie", &cookie)])),
            401,
            "another console's secret"
        );
        let elsewhere = format!("orders-console-8766={}", guard.secret);
        assert_eq!(
            get(headers(&[
                ("host", "127.0.0.1:8765"),
                ("cookie", &elsewhere)
            ])),
            401,
            "the secret under another console's cookie name"
        );
        let cut = format!("{}={}", guard.cookie_name(), &guard.secret[..63]);
        assert_eq!(
            get(headers(&[("host", "127.0.0.1:8765"), ("cookie", &cut)])),
            401
        );
    }

    #[test]
    fn the_right_cookie_among_others_lets_a_request_through() {
        let guard = Guard::new(8765);
        let cookie = format!("a=b; {}={}; c=d", guard.cookie_name(), guard.secret);
        let decision = guard.decide(
            &Method::GET,
            &uri("/orders?status=FAILED"),
            &headers(&[("host", "127.0.0.1:8765"), ("cookie", &cookie)]),
        );
        assert!(matches!(decision, Decision::Pass), "{decision:?}");
    }

    #[test]
    fn the_printed_url_signs_in_and_leads_to_the_same_page_without_the_secret() {
        let guard = Guard::new(8765);
        let host = headers(&[("host", "127.0.0.1:8765")]);
        let location = |target: String| match guard.decide(&Method::GET, &uri(&target), &host) {
            Decision::SignIn { location } => location,
            other => panic!("{target}: not a sign-in: {other:?}"),
        };
        let secret = guard.secret.clone();
        assert_eq!(location(format!("/?token={secret}")), "/");
        assert_eq!(
            location(format!("/orders?status=FAILED&token={secret}&x=a%20b")),
            "/orders?status=FAILED&x=a+b"
        );
        assert_eq!(location(format!("//attacker.example/?token={secret}")), "/");
        let response = guard.sign_in("/stuck");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/stuck");
        assert_eq!(
            response.headers()[header::SET_COOKIE],
            format!("orders-console-8765={secret}; HttpOnly; SameSite=Strict; Path=/").as_str()
        );
    }

    #[test]
    fn a_wrong_secret_in_the_url_is_refused_even_with_the_right_cookie() {
        let guard = Guard::new(8765);
        for target in ["/?token=", "/?token=0", "/orders?token=abc&status=FAILED"] {
            let decision = guard.decide(&Method::GET, &uri(target), &signed_in(&guard, &[]));
            assert_eq!(refused_with(decision), 401, "{target}");
        }
        let both = format!("/?token={}&token=0", guard.secret);
        let decision = guard.decide(&Method::GET, &uri(&both), &signed_in(&guard, &[]));
        assert_eq!(refused_with(decision), 401, "one right, one wrong");
    }

    #[test]
    fn a_cross_site_or_same_site_request_is_refused_on_every_method_even_signed_in() {
        let guard = Guard::new(8765);
        for method in [Method::GET, Method::POST, Method::HEAD] {
            for site in ["cross-site", "same-site", "Cross-Site", "something-new"] {
                let headers = signed_in(
                    &guard,
                    &[
                        ("sec-fetch-site", site),
                        ("origin", "http://127.0.0.1:8765"),
                    ],
                );
                let decision = guard.decide(&method, &uri("/orders/ord-1/cancel"), &headers);
                assert_eq!(refused_with(decision), 403, "{method} {site}");
            }
        }
        let with_secret = format!("/?token={}", guard.secret);
        let headers = headers(&[("host", "127.0.0.1:8765"), ("sec-fetch-site", "cross-site")]);
        let decision = guard.decide(&Method::GET, &uri(&with_secret), &headers);
        assert_eq!(refused_with(decision), 403, "no sign-in from another site");
    }

    #[test]
    fn the_consoles_own_pages_an_address_typed_in_and_a_client_that_is_not_a_browser_pass() {
        let guard = Guard::new(8765);
        for extra in [
            vec![("sec-fetch-site", "same-origin")],
            vec![("sec-fetch-site", "none")],
            vec![],
        ] {
            let decision = guard.decide(&Method::GET, &uri("/"), &signed_in(&guard, &extra));
            assert!(
                matches!(decision, Decision::Pass),
                "{extra:?}: {decision:?}"
            );
        }
    }

    #[test]
    fn a_signed_in_post_from_another_origin_is_still_refused() {
        let guard = Guard::new(8765);
        let headers = signed_in(&guard, &[("origin", "http://attacker.example")]);
        let decision = guard.decide(&Method::POST, &uri("/orders/ord-1/cancel"), &headers);
        assert_eq!(refused_with(decision), 403);
    }

    #[test]
    fn another_host_name_is_refused_before_anything_else() {
        let guard = Guard::new(8765);
        let mut headers = signed_in(&guard, &[]);
        headers.insert(
            header::HOST,
            HeaderValue::from_static("attacker.example:8765"),
        );
        let decision = guard.decide(&Method::GET, &uri("/"), &headers);
        assert_eq!(refused_with(decision), 403);
    }
}
