//! `orderctl`: what an operator uses when an order is stuck, failed or in the dead-letter
//! queue. It talks to the local stack or to AWS through the standard AWS configuration
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, the credential chain), like every function.
//!
//! ```text
//! orderctl orders list [--status S] [--merchant M] [--since T] [--limit N]
//! orderctl orders show ID          one timeline: order item, steps, every execution's history
//! orderctl orders resume ID        a new execution that skips the completed steps
//! orderctl orders resume --latest ID   stop it, resume on the newest release (hotfix)
//! orderctl orders redrive ID       Step Functions' own redrive (AWS only)
//! orderctl orders cancel ID        until the order has shipped
//! orderctl dlq list [--limit N]
//! orderctl dlq show MESSAGE_ID
//! orderctl dlq replay MESSAGE_ID | --all
//! orderctl reconcile [--grace-seconds N] [--limit N] [--max-resumes N]
//! orderctl releases                state machine versions, alias routing, running executions
//! orderctl console [--port N]      the ops console: a web page on 127.0.0.1
//! ```
//!
//! Against the local stack: `orderctl --env-file .local/stack/stack.env orders list`.
//! Human tables by default; `--json` prints one JSON document on stdout instead.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | an operation failed (for `dlq replay --all`: at least one message) |
//! | 2 | usage or configuration (a missing setting names its flag and variable; no credentials) |
//! | 3 | the order or the message does not exist |
//! | 4 | refused: not cancellable, still running, already ended, redrive not supported |
//! | 5 | the AWS endpoint cannot be reached |
//!
//! One module per command group ([`orders`], [`dlq`], [`reconcile`], [`releases`],
//! [`console`], the web page over the same code); [`cli`] is the
//! command line, [`context`] the settings and clients a command needs, [`timeline`] how
//! an order's records and executions become one timeline, [`output`] tables and JSON,
//! [`error`] what can go wrong and its exit code.

pub mod audit;
pub mod callers;
pub mod cli;
pub mod console;
pub mod context;
pub mod dlq;
pub mod error;
pub mod orders;
pub mod output;
pub mod reconcile;
pub mod releases;
pub mod timeline;

use cli::{Cli, Command};
use context::Context;
use error::CliError;

/// Runs one command; what it prints goes to stdout, progress to stderr. Returns the
/// exit code of an outcome that is not an error of the command itself (e.g. some
/// messages of `dlq replay --all` failed).
pub async fn run(cli: Cli) -> Result<error::Exit, CliError> {
    let context = Context::new(&cli.settings, cli.json).await?;
    match cli.command {
        Command::Orders { command } => orders::run(&context, command).await,
        Command::Dlq { command } => dlq::run(&context, command).await,
        Command::Reconcile(args) => reconcile::run(&context, args).await,
        Command::Releases => releases::run(&context).await,
        Command::Callers { command } => callers::run(&context, command).await,
        Command::Console(args) => console::run(context, args).await,
    }
}
