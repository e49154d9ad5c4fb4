//! `partner-simulator`: the five partners of an order as one local HTTP server
//! (development and tests only; see README.md). Logs are JSON lines on stdout, level
//! `info` unless `RUST_LOG` says otherwise.

use clap::Parser;
use partner_simulator::operation::Partner;
use partner_simulator::{Config, Webhook};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    about = "Simulates the warehouse, payments, terminals, courier and notifications partners"
)]
struct Args {
    /// Address to listen on; loopback only, anything else is refused.
    #[arg(long, default_value = "127.0.0.1:4597")]
    listen: SocketAddr,
    /// When set, every partner request needs `Authorization: Bearer <token>`.
    #[arg(long, env = "PARTNER_SIMULATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// `<partner>=<token>`: that partner's requests need this token instead (repeatable,
    /// or comma-separated in the environment variable).
    #[arg(
        long = "partner-token",
        env = "PARTNER_SIMULATOR_PARTNER_TOKENS",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = partner_token
    )]
    partner_tokens: Vec<(Partner, String)>,
    /// Where the courier posts delivery events; without it nothing is delivered.
    #[arg(long, requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key of `X-Courier-Signature` (needed with --webhook-url).
    #[arg(long, env = "PARTNER_SIMULATOR_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Milliseconds from shipment created to its delivery event.
    #[arg(long, default_value_t = 1000)]
    delivery_delay_ms: u64,
    /// Seed of every fault decision.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Units of every SKU the warehouse starts with.
    #[arg(long, default_value_t = 1_000_000)]
    stock_per_sku: u64,
}

/// `warehouse=<token>` → the partner and its token.
fn partner_token(text: &str) -> Result<(Partner, String), String> {
    let (name, token) = text
        .split_once('=')
        .ok_or_else(|| "expected <partner>=<token>".to_owned())?;
    let partner = Partner::from_name(name).ok_or_else(|| {
        format!(
            "{name:?} is not a partner (warehouse, payments, terminals, courier, notifications)"
        )
    })?;
    if token.is_empty() {
        return Err(format!("the token of {name} is empty"));
    }
    Ok((partner, token.to_owned()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let args = Args::parse();
    let config = Config {
        token: args.token,
        partner_tokens: args.partner_tokens.into_iter().collect(),
        webhook: args
            .webhook_url
            .zip(args.webhook_secret)
            .map(|(url, secret)| Webhook { url, secret }),
        delivery_delay: Duration::from_millis(args.delivery_delay_ms),
        seed: args.seed,
        stock_per_sku: args.stock_per_sku,
    };
    match partner_simulator::run(args.listen, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "partner simulator failed");
            eprintln!("partner-simulator: {error}");
            ExitCode::FAILURE
        }
    }
}
