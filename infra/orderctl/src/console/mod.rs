//! `orderctl console`: the ops console, a web page an operator runs on their own machine
//! instead of the CLI. It serves on 127.0.0.1 only and acts with the operator's own AWS
//! credentials and the settings of every other command (`--env-file
//! .local/stack/stack.env` for the local stack), so IAM decides per operator what it
//! may do and CloudTrail records each call under their name. Nothing is exposed beyond
//! the machine, and nothing is fetched from elsewhere (the one style sheet is in the
//! binary; there is no script).
//!
//! It serves only the browser that opened the URL it prints once at start, which
//! carries a per-launch secret (`http://127.0.0.1:<port>/?token=…`); see [`guard`]. No
//! GET changes anything: what does (an action, and a look at the dead-letter queue,
//! which receives its messages) is a POST carrying the console's form token.
//!
//! | path | what |
//! |---|---|
//! | `/` | orders counted by status |
//! | `/find?q=` | an order id, merchant id, tracking number or terminal serial ([`find`]) |
//! | `/orders?status=` | the orders in one status |
//! | `/stuck?minutes=` | unfinished orders whose status has not changed for that long |
//! | `/dead-letters` | GET: the workflow dead-letter queue's counts; POST: its messages, looked at (nothing taken out; `order=` only one order's) |
//! | `/orders/{id}` | one order: item, steps, executions, the dead-letter queue's counts, audit, timeline ([`order`]) |
//! | `/orders/{id}/cancel`, `/orders/{id}/resume` | GET: the confirmation; POST: the action, recorded on the order ([`actions`]) |
//! | `/dead-letters/{message}` | GET: a page offering to look at it; POST: the message and its replay's confirmation |
//! | `/dead-letters/{message}/replay` | GET: as `/dead-letters/{message}`; POST: the replay, recorded on the order |
//!
//! What keeps it safe is in [`guard`]; its pages are in [`pages`], its errors in
//! [`error`].

mod actions;
mod error;
mod find;
mod guard;
mod order;
mod pages;

pub use error::ConsoleError;
pub use guard::Guard;

use crate::cli::ConsoleArgs;
use crate::context::{endpoint, Context};
use crate::error::{CliError, Exit};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};
use order_core::store::OrderStore;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The style sheet, served from the binary.
const STYLE: &str = include_str!("console.css");

/// What every page handler is given.
pub struct Console {
    pub context: Context,
    pub store: OrderStore,
    pub guard: Guard,
}

impl Console {
    /// Who acts is the context's (`Context::acting`: the STS identity, `--operator`
    /// beside it), recorded by every action.
    pub fn new(context: Context, guard: Guard) -> Result<Console, CliError> {
        let store = context.store()?;
        Ok(Console {
            context,
            store,
            guard,
        })
    }
}

/// The console's routes, behind [`guard::check`].
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(find::home))
        .route("/find", get(find::search))
        .route("/orders", get(find::in_status))
        .route("/stuck", get(find::stuck))
        .route(
            "/dead-letters",
            get(find::dead_letters).post(find::look_at_dead_letters),
        )
        .route("/orders/{id}", get(order::page))
        .route(
            "/orders/{id}/cancel",
            get(actions::confirm_cancel).post(actions::cancel),
        )
        .route(
            "/orders/{id}/resume",
            get(actions::confirm_resume).post(actions::resume),
        )
        .route(
            "/dead-letters/{message_id}",
            get(actions::about_replay).post(actions::confirm_replay),
        )
        .route(
            "/dead-letters/{message_id}/replay",
            get(actions::about_replay).post(actions::replay),
        )
        .route("/console.css", get(style))
        .fallback(no_such_page)
        .layer(middleware::from_fn_with_state(
            console.clone(),
            guard::check,
        ))
        .with_state(console)
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

async fn no_such_page(uri: axum::http::Uri) -> ConsoleError {
    ConsoleError::Cli(CliError::NotFound(format!(
        "the console has no page {}",
        uri.path()
    )))
}

/// JSON log lines on stderr (stdout carries the URL with the secret, once).
fn logs_to_stderr() {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves when the process is told to stop (Ctrl-C or SIGTERM).
async fn stopped() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

/// Runs the console until the process is stopped: binds 127.0.0.1:`args.port` (0: a free
/// port), prints its URL with the launch secret on stdout (its first and only line, so
/// that readers such as `local-stack up` find the first line starting
/// `http://127.0.0.1:`), serves. The logs name the URL without the secret.
pub async fn run(context: Context, args: ConsoleArgs) -> Result<Exit, CliError> {
    logs_to_stderr();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot listen on 127.0.0.1:{}: {e} (choose another with --port, or 0 for any free port)",
                args.port
            ))
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("the console's address: {e}")))?
        .port();
    let console = Arc::new(Console::new(context, Guard::new(port))?);
    let mut stdout = std::io::stdout().lock();
    // A reader waiting for the URL (a test, a script) gets it at once. Without it no one
    // could use the console, so a failed write stops it.
    writeln!(stdout, "{}", console.guard.launch_url())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::Failed(format!("cannot print the console's URL on stdout: {e}")))?;
    drop(stdout);
    let url = console.guard.url();
    tracing::info!(url = %url, aws_endpoint = %endpoint(), table = %console.store.table(), "ops console listening");
    axum::serve(listener, router(console))
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| CliError::Failed(format!("the console stopped: {e}")))?;
    Ok(Exit::Ok)
}
