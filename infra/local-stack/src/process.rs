//! Starting and stopping the stack's server processes, tracked by PID files so `down`
//! stops exactly what `up` started and nothing else.
//!
//! Each server starts in its own process group; stopping it signals the whole group, so
//! the processes it started itself (cargo lambda's function instances) stop with it. A
//! PID file also records the process's start time, so a PID the kernel has since given to
//! another process is never signalled.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process the stack started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    pub pid: i32,
    start_time: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ProcessError + '_ {
    move |source| ProcessError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The kernel's start time of a process (field 22 of /proc/PID/stat), if it exists.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Tracked {
    /// Whether the process is still the one that was started (not exited, not a zombie,
    /// and its PID not reused).
    pub fn is_alive(&self) -> bool {
        reap(self.pid);
        let state = fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s.get(i + 2..i + 3))
                    .map(str::to_owned)
            });
        state.is_some_and(|s| s != "Z") && start_time(self.pid) == Some(self.start_time)
    }
}

/// Collects the exit status of a child of this process, if it has ended.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG only inspects our own children; for any other PID it
    // returns -1 (ECHILD) and changes nothing.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// Starts `program` in its own process group, output appended to `log`.
pub fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    cwd: &Path,
    log: &Path,
) -> Result<Tracked, ProcessError> {
    let output = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_error(log))?;
    let errors = output.try_clone().map_err(io_error(log))?;
    let mut command = Command::new(program);
    // When cargo runs us (inside `cargo test`), it sets CARGO_PKG_*, CARGO_MANIFEST_DIR and
    // friends for the test crate. cargo treats those as build inputs, so passing them on
    // would make cargo lambda's `cargo run` rebuild half the workspace.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_package_variable) {
            command.env_remove(name);
        }
    }
    let child = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            name: name.to_owned(),
            program: program.display().to_string(),
            source,
        })?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    Ok(Tracked {
        name: name.to_owned(),
        pid,
        start_time: start_time(pid).unwrap_or_default(),
    })
}

/// The variables cargo sets for a package's build scripts, tests and binaries.
fn is_package_variable(name: &str) -> bool {
    name == "CARGO_MANIFEST_DIR"
        || name == "CARGO_MANIFEST_PATH"
        || name == "CARGO_CRATE_NAME"
        || name == "CARGO_PRIMARY_PACKAGE"
        || name == "CARGO_TARGET_TMPDIR"
        || name == "CARGO_RUSTC_CURRENT_DIR"
        || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
}

fn pid_dir(dir: &Path) -> PathBuf {
    dir.join("pids")
}

/// Records a started process under `dir/pids/NAME.pid`.
pub fn write_pid(dir: &Path, process: &Tracked) -> Result<(), ProcessError> {
    let pids = pid_dir(dir);
    fs::create_dir_all(&pids).map_err(io_error(&pids))?;
    let path = pids.join(format!("{}.pid", process.name));
    fs::write(&path, format!("{} {}\n", process.pid, process.start_time)).map_err(io_error(&path))
}

/// Every process recorded under `dir`, in the order they were started.
pub fn read_pids(dir: &Path) -> Vec<Tracked> {
    let mut tracked = Vec::new();
    let Ok(entries) = fs::read_dir(pid_dir(dir)) else {
        return tracked;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        let text = fs::read_to_string(&path).unwrap_or_default();
        let mut fields = text.split_whitespace();
        if let (Some(Ok(pid)), Some(Ok(start_time))) = (
            fields.next().map(str::parse::<i32>),
            fields.next().map(str::parse::<u64>),
        ) {
            tracked.push(Tracked {
                name: name.to_owned(),
                pid,
                start_time,
            });
        }
    }
    // Start times grow with every process the kernel starts: this is start order.
    tracked.sort_by_key(|t| t.start_time);
    tracked
}

/// Stops a process group: SIGTERM, then SIGKILL if it has not ended after `grace`.
/// Returns false when the process was already gone.
pub fn stop(process: &Tracked, grace: Duration) -> bool {
    if !process.is_alive() {
        return false;
    }
    signal_group(process.pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !process.is_alive() {
            // Its children may still be ending; make sure nothing of the group remains.
            signal_group(process.pid, libc::SIGKILL);
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal_group(process.pid, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(100));
    reap(process.pid);
    true
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative PID signals that process group only; the group id
    // is one this tool created (process_group(0) makes the child its leader).
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Removes the PID file of a stopped process.
pub fn forget(dir: &Path, process: &Tracked) {
    let _ = fs::remove_file(pid_dir(dir).join(format!("{}.pid", process.name)));
}

/// Whether nothing listens on 127.0.0.1:`port` (we can bind it).
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port that is free on 127.0.0.1 now.
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_process_is_tracked_until_stopped() -> Result<(), ProcessError> {
        let dir = std::env::temp_dir().join(format!("local-stack-test-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let sleeper = spawn(
            "sleeper",
            Path::new("sleep"),
            &["30".to_owned()],
            &[],
            &dir,
            &dir.join("sleeper.log"),
        )?;
        write_pid(&dir, &sleeper)?;
        let tracked = read_pids(&dir);
        assert_eq!(tracked, std::slice::from_ref(&sleeper));
        assert!(sleeper.is_alive());
        assert!(stop(&sleeper, Duration::from_secs(5)));
        assert!(!sleeper.is_alive());
        forget(&dir, &sleeper);
        assert_eq!(read_pids(&dir), []);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_the_process_that_was_started() {
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let impostor = Tracked {
            name: "old".into(),
            pid: me,
            start_time: start_time(me).unwrap_or_default() + 1,
        };
        assert!(!impostor.is_alive());
    }

    #[test]
    fn the_test_crates_cargo_variables_are_not_passed_on_but_cargo_settings_are() {
        assert!(is_package_variable("CARGO_PKG_NAME"));
        assert!(is_package_variable("CARGO_MANIFEST_DIR"));
        assert!(!is_package_variable("CARGO_HOME"));
        assert!(!is_package_variable("CARGO_TARGET_DIR"));
    }

    #[test]
    fn a_bound_port_is_not_free() -> io::Result<()> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        assert!(!port_is_free(port));
        drop(listener);
        assert!(port_is_free(port));
        Ok(())
    }
}
