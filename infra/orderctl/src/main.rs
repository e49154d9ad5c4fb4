//! `orderctl`: see the crate documentation (`src/lib.rs`) and `orderctl --help`.

use clap::Parser;
use orderctl::cli::Cli;
use orderctl::context::{endpoint, load_env_file};
use orderctl::error::{CliError, Exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let json = cli.json;
    if let Some(path) = cli.settings.env_file.clone() {
        // Settings read from the environment are read again once the file is loaded;
        // this happens before any thread exists.
        if let Err(error) = load_env_file(&path) {
            return fail(&error, json);
        }
        cli = Cli::parse();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::Failed(format!("cannot start: {error}")), json),
    };
    match runtime.block_on(orderctl::run(cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => fail(&error, json),
    }
}

/// Reports a failed command on stderr (and as `{"error": ...}` on stdout with `--json`).
fn fail(error: &CliError, json: bool) -> ExitCode {
    let message = error.describe(&endpoint());
    eprintln!("orderctl: {message}");
    let exit: Exit = error.exit();
    if json {
        orderctl::output::print_json(&serde_json::json!({
            "error": {"exit_code": exit.code(), "kind": exit, "message": message}
        }));
    }
    ExitCode::from(exit.code())
}
