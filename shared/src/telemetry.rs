//! Structured logs: one JSON object per line, carrying the fields of the enclosing spans
//! (the Lambda request id, and the order id every handler sets) on each line.
//!
//! The level comes from `RUST_LOG` when set, else from Lambda's own
//! `AWS_LAMBDA_LOG_LEVEL` (the function's `LoggingConfig.ApplicationLogLevel`), else
//! `info`. Lambda's `AWS_LAMBDA_LOG_FORMAT=Text` gives plain text lines instead of JSON.

use tracing_subscriber::EnvFilter;

/// The filter directive for `RUST_LOG` and `AWS_LAMBDA_LOG_LEVEL` as set (or not).
pub fn filter_directive(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directive) = rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        return directive.to_owned();
    }
    match lambda_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
    .to_owned()
}

/// Installs the log subscriber. Call once, first thing in `main`.
pub fn init() {
    let directive = filter_directive(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    // A second call (tests) keeps the first subscriber; that is fine.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if text {
        builder.without_time().try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambdas_level_then_info() {
        assert_eq!(
            filter_directive(Some("order_core=debug"), Some("ERROR")),
            "order_core=debug"
        );
        assert_eq!(filter_directive(None, Some("DEBUG")), "debug");
        assert_eq!(filter_directive(Some("  "), Some("warn")), "warn");
        assert_eq!(filter_directive(None, Some("FATAL")), "error");
        assert_eq!(filter_directive(None, Some("nonsense")), "info");
        assert_eq!(filter_directive(None, None), "info");
    }
}
