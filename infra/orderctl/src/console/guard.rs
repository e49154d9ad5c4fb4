//! What keeps a local server that acts with the operator's credentials from acting for
//! anyone else:
//!
//! - it listens on 127.0.0.1 only (see [`super::run`]);
//! - a request whose `Host` is not `127.0.0.1:<port>` or `localhost:<port>` is refused, so
//!   a web page that rebinds its own DNS name to 127.0.0.1 cannot read or drive it;
//! - a POST (every action) must carry this process's random token, which only the
//!   console's own confirmation pages hold, and, when the browser sends one, an `Origin`
//!   (or else a `Referer`) of the console itself;
//! - every page forbids scripts, frames and foreign form targets
//!   (`Content-Security-Policy`), is never cached, and sends no referrer elsewhere.
//!
//! Requests are logged (method, path, status, time taken) as JSON on stderr; query
//! strings, form bodies and the token are not.

use super::{error::ConsoleError, Console};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
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

/// The names this console answers to and the token its forms carry.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: [String; 2],
    origins: [String; 2],
    token: String,
}

impl Guard {
    /// The guard of a console listening on `port` of 127.0.0.1, with a new random token.
    pub fn new(port: u16) -> Guard {
        let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let origins = hosts.clone().map(|host| format!("http://{host}"));
        // 244 random bits from the operating system's generator (UUID v4, twice).
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Guard {
            hosts,
            origins,
            token,
        }
    }

    /// The token the console's forms carry (in a hidden field, never in a URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether `host` (the `Host` header) names this console.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|host| {
            self.hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host.trim()))
        })
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
        let expected = self.token.as_bytes();
        let given = given.as_bytes();
        let differences = expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if given.len() == expected.len() && differences == 0 {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "this form does not carry the console's token: open the page again from the console and confirm there (the token changes each time the console starts)".into(),
            ))
        }
    }
}

/// The middleware around every request: the Host check, the same-origin check of POSTs,
/// the security headers and the request log.
pub async fn check(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let guard = &console.guard;
    let refused = if !guard.host_allowed(host) {
        Some(ConsoleError::Forbidden(format!(
            "this console answers only to {} or {}; the request named the host {:?}",
            guard.hosts[0],
            guard.hosts[1],
            host.unwrap_or_default()
        )))
    } else if method == Method::POST && !guard.same_origin(headers) {
        Some(ConsoleError::Forbidden(
            "this action was not sent from one of the console's own pages (its Origin or Referer is another site)".into(),
        ))
    } else {
        None
    };
    let mut response = match refused {
        Some(error) => error.into_response(),
        None => next.run(request).await,
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

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
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
        let ok = headers(&[(header::ORIGIN, "http://127.0.0.1:8765")]);
        assert!(guard.same_origin(&ok));
        let foreign = headers(&[
            (header::ORIGIN, "http://attacker.example"),
            (header::REFERER, "http://127.0.0.1:8765/orders"),
        ]);
        assert!(!guard.same_origin(&foreign), "the Origin decides");
        assert!(!guard.same_origin(&headers(&[(header::ORIGIN, "null")])));
        let referer = |r| guard.same_origin(&headers(&[(header::REFERER, r)]));
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
}
