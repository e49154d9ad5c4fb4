//! The command line: `orderctl [settings] [--json] <orders|dlq|reconcile> ...`.
//!
//! Settings come from flags or their environment variables (the names the functions and
//! `.local/stack/stack.env` use), so `--env-file .local/stack/stack.env` is all the local
//! stack needs. Arguments are parsed into their domain types here (an order status, a
//! point in time), so a bad value is a usage error (exit 2) before anything is sent.

use crate::error::EXIT_CODES_HELP;
use chrono::{SecondsFormat, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};
use order_core::OrderStatus;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  orderctl --env-file .local/stack/stack.env orders list     the local stack (make up)
  orderctl orders list --status FAILED --limit 20            AWS: AWS_REGION, credentials,
                                                             TABLE_NAME, ... in the environment
  orderctl orders show ord-0123456789abcdef0123456789abcdef
  orderctl dlq replay --all --json
  orderctl releases                                          versions, routing, running executions
  orderctl orders resume --latest ord-0123456789abcdef0123456789abcdef   hotfix: onto the newest release
  orderctl --env-file .local/stack/stack.env console         the ops console on http://127.0.0.1:8765/

Settings: --table (TABLE_NAME), --state-machine-arn (STATE_MACHINE_ARN), --dlq-url
(WORKFLOW_DEAD_LETTER_QUEUE_URL), --events-bus (ORDER_EVENTS_BUS_NAME); each command asks
only for what it uses. Executions
started by `resume` get OUTAGE_WAIT_SECONDS (default 300) and DELIVERY_TIMEOUT_SECONDS
(default 1209600) in their input. The endpoint, region and credentials are the standard
AWS ones (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, ...).

";

/// The operator's command line for terminal orders.
#[derive(Debug, Parser)]
#[command(
    name = "orderctl",
    version,
    about = "Operator CLI for terminal orders: orders as timelines, resume, redrive, cancel, the dead-letter queue, the reconciler",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    /// Print one JSON document on stdout instead of tables (errors too, as {"error": ...}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn after_help() -> String {
    format!("{AFTER_HELP}{EXIT_CODES_HELP}")
}

/// Where the order system lives. Every field is optional here; a command that needs a
/// missing one fails with exit 2, naming the flag and the variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Load KEY=VALUE lines from PATH into the environment before reading any setting,
    /// e.g. .local/stack/stack.env for the local stack. Its values replace variables
    /// already set; flags still win.
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// The order table.
    #[arg(long, global = true, env = "TABLE_NAME")]
    pub table: Option<String>,
    /// The order workflow's state machine.
    #[arg(long, global = true, env = "STATE_MACHINE_ARN")]
    pub state_machine_arn: Option<String>,
    /// The workflow dead-letter queue's URL.
    #[arg(
        long = "dlq-url",
        global = true,
        env = "WORKFLOW_DEAD_LETTER_QUEUE_URL",
        value_name = "URL"
    )]
    pub dlq_url: Option<String>,
    /// A name recorded beside your AWS identity (from STS) in the audit record of every
    /// action you take (cancel, resume, undo, redrive, replay, callers changes); it
    /// never replaces the identity.
    #[arg(long, global = true, env = "ORDERCTL_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,
    /// The order-events bus (reconcile publishes the orders it parks).
    #[arg(long = "events-bus", global = true, env = "ORDER_EVENTS_BUS_NAME", value_name = "NAME")]
    pub events_bus: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find orders, show one as a timeline, resume, redrive or cancel it.
    Orders {
        #[command(subcommand)]
        command: OrdersCommand,
    },
    /// The workflow dead-letter queue: look at it, replay messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The releases (state machine versions): where the alias routes new orders, and how
    /// many executions still run on each, so you know which versions may be deleted.
    Releases,
    /// The orders API's callers: which merchants each may act for and what it may do.
    ///
    /// A caller is its IAM principal (a role's or a user's ARN). One without a scope may
    /// do nothing; every change is recorded with your STS identity.
    Callers {
        #[command(subcommand)]
        command: CallersCommand,
    },
    /// Run the reconciler once, now (what the scheduled Lambda does).
    ///
    /// Resumes unfinished orders that have no running execution, or parks them in the
    /// dead-letter queue once they were resumed --max-resumes times.
    Reconcile(ReconcileArgs),
    /// The ops console: a web page on 127.0.0.1 to find orders, read their timelines and
    /// resume, cancel or replay them, acting with your own AWS credentials.
    ///
    /// Prints its URL on stdout, with a secret made at each start (`?token=...`), then
    /// serves until stopped (Ctrl-C, SIGTERM): open that URL, which sets the secret as a
    /// cookie; every request without it is refused. Only 127.0.0.1 is bound; requests
    /// naming another host or sent by another site are refused, no GET changes anything,
    /// and every action needs the page's confirmation form (a per-process token). Each
    /// action is recorded on the order before it is taken: who (your AWS identity from
    /// STS GetCallerIdentity, with --operator beside it), when, what, then its outcome.
    Console(ConsoleArgs),
}

#[derive(Debug, Subcommand)]
pub enum CallersCommand {
    /// Every caller with a scope.
    List,
    /// Sets (replaces) a caller's scope: its merchants and permissions.
    ///
    /// e.g. `callers set arn:aws:iam::123456789012:role/sales-portal --merchant m-1
    /// --merchant m-2 --permissions read,place`.
    Set(SetScopeArgs),
    /// Removes a caller's scope: it may then do nothing.
    Remove {
        /// The caller's IAM principal ARN.
        principal: String,
    },
    /// The changes to the callers' scopes, newest first.
    History {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `callers set`.
#[derive(Debug, Clone, Args)]
pub struct SetScopeArgs {
    /// The caller's IAM principal ARN (a role session's ARN is taken as its role).
    pub principal: String,
    /// Every merchant, present and future: an explicit grant for a trusted caller.
    #[arg(long)]
    pub all_merchants: bool,
    /// A merchant id the caller may act for (repeat for several).
    #[arg(long = "merchant", value_name = "ID")]
    pub merchants: Vec<String>,
    /// What it may do: read, place, cancel (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub permissions: Vec<order_core::callers::Permission>,
}

/// `console`.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "ORDERCTL_CONSOLE_PORT", default_value_t = 8765)]
    pub port: u16,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// List orders: by status, by merchant, or every unfinished one.
    ///
    /// Through the table's indexes only (never a scan). With --status: orders in
    /// that status, oldest change first. With --merchant: that merchant's orders, oldest
    /// first (--since narrows them; with --status too, only those in that status).
    /// With neither: every order that has not ended (ACCEPTED ... CANCELLING), status
    /// by status, oldest change first within each.
    List(ListArgs),
    /// One order as a timeline of its item, its steps and its executions.
    ///
    /// Merges the order item, its steps (the activity ledger) and the history of every
    /// execution of the order (`<id>`, `<id>-r1`, ...), sorted by time.
    Show {
        /// The order id (ord-...).
        id: String,
    },
    /// Start a new execution for an unfinished order whose execution is not running.
    ///
    /// Completed steps return their recorded results, so no partner is called twice.
    /// The execution starts through STATE_MACHINE_ARN (on AWS the alias `live`: the
    /// release new orders get). With --latest (the hotfix path) a running execution is
    /// stopped first and the new one starts on the newest published state machine
    /// version, whatever the alias's canary split.
    Resume {
        /// The order id (ord-...).
        id: String,
        /// Stop the running execution, if any, and resume on the newest release.
        #[arg(long)]
        latest: bool,
    },
    /// Redrive the order's failed execution from the state that failed (AWS only).
    ///
    /// Step Functions RedriveExecution on the order's current execution; the local
    /// emulator does not support it (exit 4): use `orders resume` there.
    Redrive {
        /// The order id (ord-...).
        id: String,
    },
    /// Cancel an order that has not shipped (exit 4 once it has).
    ///
    /// The workflow undoes what was done and ends the order CANCELLED; an order on which
    /// nothing has begun (no execution recorded, no step begun) is CANCELLED at once.
    Cancel {
        /// The order id (ord-...).
        id: String,
    },
    /// Find CANCELLED orders that still hold partner effects (exit 1 when any is found).
    ///
    /// Before a cancel decided "nothing has begun" in its own conditional write, it could
    /// end an order at once while an execution whose ARN was never recorded had reserved
    /// stock or taken the payment. Walks the CANCELLED orders (by-status index, oldest
    /// first) and reads each one's steps: lists those with an effect begun and not
    /// undone. Finish each with `orders undo`.
    HoldingEffects {
        /// Look at most at this many CANCELLED orders.
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
    },
    /// Remove the personal data of orders that ended more than --older-than-days ago.
    ///
    /// The recipient's name and street lines become `[removed]`; the status, steps,
    /// partner references, city, postal code and country stay. What the scheduled
    /// reconciler does after each run (ORDER_RETENTION_DAYS), now. Goes on from where the
    /// last pass stopped, at most --limit orders per final status.
    Anonymise {
        #[arg(long, env = "ORDER_RETENTION_DAYS", default_value_t = order_core::store::retention::DEFAULT_RETENTION_DAYS)]
        older_than_days: u64,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Finish the rollback of a CANCELLED order that still holds partner effects.
    ///
    /// Starts `<id>-r<n>` (recorded on the order first): its finished steps replay, the
    /// next meets the CANCELLED order, and the compensations undo what it holds; the
    /// order stays CANCELLED. Refused for any other order (exit 4).
    Undo {
        /// The order id (ord-...).
        id: String,
    },
}

/// `orders list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only orders in this status (ACCEPTED, FAILED, COMPENSATING, ...).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<OrderStatus>,
    /// Only this merchant's orders.
    #[arg(long)]
    pub merchant: Option<String>,
    /// With --merchant: orders created at or after this time: RFC 3339
    /// (2026-11-26T09:00:00Z) or an age such as 90m, 36h, 7d.
    #[arg(long, requires = "merchant", value_parser = parse_since)]
    pub since: Option<String>,
    /// At most this many orders.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The messages in the queue, left there.
    ///
    /// Each look counts as one more receive of every message.
    List {
        /// At most this many messages.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One message in full, and where its order is now.
    Show {
        /// The SQS message id (from `dlq list`).
        message_id: String,
    },
    /// Resume the order of a message (or of every message), then delete the message.
    ///
    /// A message is deleted only once its order was resumed, or when the order has
    /// ended meanwhile; it is kept when the order still runs or the resume failed.
    Replay(ReplayArgs),
}

/// `dlq replay`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["message_id", "all"])))]
pub struct ReplayArgs {
    /// The SQS message id (from `dlq list`).
    pub message_id: Option<String>,
    /// Every message in the queue (at most --limit), one after the other.
    #[arg(long)]
    pub all: bool,
    /// With --all: at most this many messages.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

/// `reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Leave alone orders that changed less than this many seconds ago.
    #[arg(long, default_value_t = 900)]
    pub grace_seconds: u32,
    /// Look at most at this many orders.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Park (DLQ) instead of resuming an order resumed this many times already.
    #[arg(long, default_value_t = 3)]
    pub max_resumes: u32,
}

/// An order status as typed by an operator (any case).
fn parse_status(text: &str) -> Result<OrderStatus, String> {
    OrderStatus::parse(&text.trim().to_ascii_uppercase()).ok_or_else(|| {
        let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not an order status; one of {}", all.join(", "))
    })
}

/// A point in time as the by-merchant index stores it (RFC 3339, UTC, milliseconds),
/// from RFC 3339 or an age (`90m`, `36h`, `7d`, `30s`).
pub fn parse_since(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split), text.get(split..));
    let seconds = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => 0,
    };
    let age = number
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0 && seconds > 0)
        .and_then(|n| n.checked_mul(seconds))
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| {
            "expected an RFC 3339 time (2026-11-26T09:00:00Z) or an age such as 90m, 36h, 7d"
                .to_owned()
        })?;
    Ok((Utc::now() - age).to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_status_is_read_in_any_case_and_a_wrong_one_lists_the_right_ones() {
        assert_eq!(parse_status("failed"), Ok(OrderStatus::Failed));
        let error = parse_status("LOST").expect_err("LOST is not a status");
        assert!(error.contains("STOCK_RESERVED"), "{error}");
    }

    #[test]
    fn since_takes_a_time_in_the_index_format_or_an_age() {
        assert_eq!(
            parse_since("2026-11-26T10:00:00+01:00"),
            Ok("2026-11-26T09:00:00.000Z".to_owned())
        );
        let before = Utc::now();
        let day_ago = parse_since("1d").expect("an age in days is a valid --since");
        let day_ago = chrono::DateTime::parse_from_rfc3339(&day_ago)
            .expect("--since is turned into an RFC 3339 time");
        let after = Utc::now();
        let day = chrono::Duration::days(1);
        // Millisecond precision: the bounds are truncated the same way.
        let at_least = (before - day).to_rfc3339_opts(SecondsFormat::Millis, true);
        let at_most = (after - day).to_rfc3339_opts(SecondsFormat::Millis, true);
        let day_ago = day_ago
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        assert!(
            at_least <= day_ago && day_ago <= at_most,
            "1d is {day_ago}, not between {at_least} and {at_most}"
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("5w").is_err());
    }

    #[test]
    fn global_flags_may_follow_the_command() {
        let cli = Cli::try_parse_from(["orderctl", "orders", "show", "ord-1", "--json"]);
        assert!(cli.is_ok_and(|cli| cli.json));
    }

    #[test]
    fn replay_needs_a_message_id_or_all() {
        assert!(Cli::try_parse_from(["orderctl", "dlq", "replay"]).is_err());
        assert!(Cli::try_parse_from(["orderctl", "dlq", "replay", "m-1", "--all"]).is_err());
        assert!(Cli::try_parse_from(["orderctl", "dlq", "replay", "--all"]).is_ok());
    }
}
