//! Crashing function instances: the running Lambda functions are the processes that
//! `cargo lambda watch` (found through the stack's PID files) started, i.e. its
//! descendants whose executable lies in a `target/debug` directory; on MiniStack, the
//! `bootstrap` processes MiniStack (its PID file) started from the functions' code. Each is found by
//! walking /proc (parent PIDs), and killed with SIGKILL by PID, after checking that the
//! PID still belongs to the process that was found (same kernel start time). Nothing is
//! ever signalled by name.
//!
//! Every function process runs inside the local Lambda sandbox (infra/lambda-sandbox,
//! cargo's runner for watch's `cargo run`). Killing a function process mid-invocation
//! fails that invocation with `Runtime.ExitError`, as Lambda does for a crashed
//! environment, which the definition retries; the sandbox then starts a new process
//! for the next invocation. (Without the sandbox, cargo lambda watch 1.9.2 never answers
//! the killed invocation, keeps counting the dead instance and stalls once every instance
//! of a function is dead.) The run still leaves `min_alive` processes of a function
//! alone in each round, so some instances stay warm, and reports how many are left.

use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Processes never killed: the reconciler is not invoked during the run (killing it
/// would prove nothing), and lambda-sandbox is the execution environment around each
/// function process, not a function (it reports the killed function's invocation as
/// `Runtime.ExitError` and starts a new process, as Lambda does).
const SPARED: [&str; 2] = ["reconciler", "lambda-sandbox"];

/// One running instance of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub pid: i32,
    pub function: String,
    start_time: u64,
}

/// `(state, ppid, start time)` from the text of /proc/PID/stat.
fn parse_stat(stat: &str) -> Option<(char, i32, u64)> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start_time = fields.nth(17)?.parse().ok()?;
    Some((state, ppid, start_time))
}

fn stat_of(pid: i32) -> Option<(char, i32, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The function a process runs: on the moto stack a binary in `target/debug` (its name);
/// on MiniStack a `bootstrap` it unpacked from the function's code, which names the
/// function in its environment (`AWS_LAMBDA_FUNCTION_NAME`, see [`binary_of_function`]).
fn function_of_process(pid: i32, executable: &Path) -> Option<String> {
    if let Some(function) = function_of(executable) {
        return Some(function);
    }
    let in_ministack = executable.file_name()? == "bootstrap"
        && executable.ancestors().any(|dir| {
            dir.to_str()
                .is_some_and(|d| d.contains("ministack-provided-code"))
        });
    if !in_ministack {
        return None;
    }
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|byte| *byte == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix("AWS_LAMBDA_FUNCTION_NAME="))
        .and_then(binary_of_function)
}

/// The binary behind a deployed function name, `<stack>-<LogicalId>-<suffix>` as
/// CloudFormation names it: `terminal-orders-ReserveStockFunction-1A2B` → `reserve-stock`.
fn binary_of_function(name: &str) -> Option<String> {
    let logical = name
        .split('-')
        .find(|part| part.ends_with("Function") && part.len() > "Function".len())?;
    let words = logical.strip_suffix("Function")?;
    let mut binary = String::new();
    for (i, c) in words.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            binary.push('-');
        }
        binary.push(c.to_ascii_lowercase());
    }
    Some(binary)
}

/// The function an executable path belongs to, if it is a binary in `target/debug`.
fn function_of(executable: &Path) -> Option<String> {
    let dir = executable.parent()?;
    let in_debug = dir.file_name()? == "debug" && dir.parent()?.file_name()? == "target";
    let name = executable.file_name()?.to_str()?;
    // A binary rebuilt while it runs shows as `NAME (deleted)`.
    let name = name.strip_suffix(" (deleted)").unwrap_or(name);
    in_debug.then(|| name.to_owned())
}

/// Every live function instance under the process `watch`.
pub fn instances(watch: i32) -> Vec<Instance> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut stats = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(stat) = stat_of(pid) {
                children.entry(stat.1).or_default().push(pid);
                stats.insert(pid, stat);
            }
        }
    }
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![watch];
    while let Some(parent) = queue.pop() {
        for &pid in children.get(&parent).into_iter().flatten() {
            if !seen.insert(pid) {
                continue;
            }
            queue.push(pid);
            let Some(&(state, _, start_time)) = stats.get(&pid) else {
                continue;
            };
            if state == 'Z' {
                continue;
            }
            // A zombie or a process of another user has no readable exe: not ours.
            let executable = fs::read_link(format!("/proc/{pid}/exe")).ok();
            if let Some(function) = executable
                .as_deref()
                .and_then(|exe| function_of_process(pid, exe))
            {
                found.push(Instance {
                    pid,
                    function,
                    start_time,
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.function, a.pid).cmp(&(&b.function, b.pid)));
    found
}

/// Live instances per function.
pub fn count_by_function(instances: &[Instance]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for instance in instances {
        *counts.entry(instance.function.clone()).or_default() += 1;
    }
    counts
}

/// Whether the instance still runs as the process that was found.
pub fn is_alive(instance: &Instance) -> bool {
    stat_of(instance.pid)
        .is_some_and(|(state, _, start)| state != 'Z' && start == instance.start_time)
}

/// SIGKILLs the instance by PID, unless its PID now belongs to another process; waits up
/// to 5 s for it to be gone. Returns whether it was killed.
pub fn kill(instance: &Instance) -> bool {
    if !is_alive(instance) {
        return false;
    }
    // SAFETY: kill(2) with a positive PID signals that one process; the PID was just
    // checked to be the function instance found under cargo lambda watch (same start time).
    let sent = unsafe { libc::kill(instance.pid, libc::SIGKILL) } == 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent && is_alive(instance) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    sent && !is_alive(instance)
}

/// One instance killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    pub function: String,
    pub pid: i32,
    /// Since the start of the run.
    pub at: Duration,
}

/// Kills one instance each of up to `victims` functions chosen at random among those
/// with more than `min_alive` live instances.
pub fn kill_round(
    watch: i32,
    rng: &mut Rng,
    victims: usize,
    min_alive: usize,
    at: Duration,
) -> Vec<Killed> {
    let live = instances(watch);
    let mut by_function: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in &live {
        by_function
            .entry(instance.function.as_str())
            .or_default()
            .push(instance);
    }
    let mut candidates: Vec<(&str, Vec<&Instance>)> = by_function
        .into_iter()
        .filter(|(function, list)| !SPARED.contains(function) && list.len() > min_alive)
        .collect();
    let mut killed = Vec::new();
    while killed.len() < victims && !candidates.is_empty() {
        let (function, list) = candidates.swap_remove(rng.below(candidates.len()));
        let victim = list[rng.below(list.len())];
        if kill(victim) {
            killed.push(Killed {
                function: function.to_owned(),
                pid: victim.pid,
                at,
            });
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_state_parent_and_start_time_even_with_spaces_in_the_name() {
        let stat = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 5 1 0 0 20 0 3 0 987654 1000 200";
        assert_eq!(parse_stat(stat), Some(('S', 17, 987_654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_deployed_function_name_gives_its_binary() {
        assert_eq!(
            binary_of_function("terminal-orders-ReserveStockFunction-28548FA35384E").as_deref(),
            Some("reserve-stock")
        );
        assert_eq!(
            binary_of_function("terminal-orders-OrdersApiFunction-1").as_deref(),
            Some("orders-api")
        );
        assert_eq!(binary_of_function("terminal-orders-OrdersTable-1"), None);
    }

    #[test]
    fn only_binaries_in_target_debug_are_function_instances() {
        assert_eq!(
            function_of(Path::new("/work/main/target/debug/take-payment")),
            Some("take-payment".into())
        );
        assert_eq!(
            function_of(Path::new("/work/main/target/debug/take-payment (deleted)")),
            Some("take-payment".into())
        );
        assert_eq!(function_of(Path::new("/root/.cargo/bin/cargo")), None);
        assert_eq!(function_of(Path::new("/work/main/debug/x")), None);
    }

    #[test]
    fn a_child_running_from_target_debug_is_found_under_its_parent_and_killed_by_pid() {
        // A copy of `sleep` in a scratch target/debug, started by this process: it is an
        // "instance" of the function `sleeper` under our own PID.
        /// Removes the scratch tree when the test ends, also when it fails.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let scratch =
            Scratch(std::env::temp_dir().join(format!("chaos-proc-{}", std::process::id())));
        let dir = scratch.0.join("target/debug");
        let _ = fs::create_dir_all(&dir);
        let binary = dir.join("sleeper");
        let copied = ["/bin/sleep", "/usr/bin/sleep"]
            .iter()
            .any(|p| fs::copy(p, &binary).is_ok());
        assert!(copied, "no sleep binary to copy");
        let child = std::process::Command::new(&binary).arg("30").spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => panic!("cannot start {}: {error}", binary.display()),
        };
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let found: Vec<Instance> = instances(me)
            .into_iter()
            .filter(|i| i.function == "sleeper")
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(u32::try_from(found[0].pid).ok(), Some(child.id()));
        let mut rng = Rng::new(1);
        // Never below the minimum: with one instance and min_alive 1, nothing is killed.
        assert_eq!(kill_round(me, &mut rng, 3, 1, Duration::ZERO), []);
        let killed = kill_round(me, &mut rng, 3, 0, Duration::ZERO);
        assert_eq!(killed.len(), 1);
        let status = child.wait().ok().and_then(|s| {
            use std::os::unix::process::ExitStatusExt;
            s.signal()
        });
        assert_eq!(status, Some(libc::SIGKILL));
    }
}
