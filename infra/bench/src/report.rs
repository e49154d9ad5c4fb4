//! The bench's report: a table on stdout, and the same figures as JSON and Markdown under
//! the output directory.

use crate::cold_start::ColdStart;
use crate::stats::Summary;
use crate::work_report::{WorkReport, WorkflowReport};
use crate::BenchError;
use comfy_table::Table;
use serde::Serialize;
use std::path::Path;

/// The cold-start targets of the performance issue, each a ratio or a size.
pub const INIT_RATIO_TARGET: f64 = 1.5;
pub const BOOTSTRAP_MB_TARGET: f64 = 6.0;
pub const PEAK_RSS_MB_TARGET: f64 = 24.0;

/// Where the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub arch: &'static str,
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            arch: std::env::consts::ARCH,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
        }
    }
}

/// One function's cold start beside the floor's.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartRow {
    #[serde(flatten)]
    pub measured: ColdStart,
    pub bytes_ratio: f64,
    pub init_ratio: Option<f64>,
    pub peak_rss_ratio: Option<f64>,
}

/// Everything `make bench` measured, part by part.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub machine: Machine,
    /// Each part, if it ran (`--only`).
    #[serde(flatten)]
    pub parts: Parts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Parts {
    pub cold_start: Option<Report>,
    pub first_invocation: Option<crate::first_invocation::FirstInvocationReport>,
    pub work: Option<WorkReport>,
    pub workflow: Option<WorkflowReport>,
}

impl Bench {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut text = format!(
            "Measured on {} ({} cores, {}, Linux {}).\n\n",
            m.cpu, m.cores, m.arch, m.kernel
        );
        if let Some(cold_start) = &self.parts.cold_start {
            text.push_str(&cold_start.markdown());
            text.push('\n');
        }
        if let Some(first) = &self.parts.first_invocation {
            text.push_str(&first.markdown());
            text.push('\n');
        }
        if let Some(work) = &self.parts.work {
            text.push_str(&work.markdown());
            text.push('\n');
        }
        if let Some(workflow) = &self.parts.workflow {
            text.push_str(&workflow.markdown());
        }
        text
    }

    /// Writes `bench.json` and `bench.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        let io = |what: String| move |source| BenchError::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let json = serde_json::to_string_pretty(self)?;
        let json_path = dir.join("bench.json");
        std::fs::write(&json_path, json).map_err(io(format!("writing {}", json_path.display())))?;
        let md_path = dir.join("bench.md");
        std::fs::write(&md_path, self.markdown())
            .map_err(io(format!("writing {}", md_path.display())))?;
        Ok(())
    }
}

/// The cold start of every bootstrap beside the floor's.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub runs: usize,
    pub floor: ColdStart,
    pub functions: Vec<ColdStartRow>,
}

impl Report {
    pub fn new(runs: usize, floor: ColdStart, functions: Vec<ColdStart>) -> Report {
        let functions = functions
            .into_iter()
            .map(|measured| ColdStartRow {
                bytes_ratio: measured.bytes as f64 / floor.bytes.max(1) as f64,
                init_ratio: measured.init_ms.ratio_to(&floor.init_ms),
                peak_rss_ratio: measured.peak_rss_mb.ratio_to(&floor.peak_rss_mb),
                measured,
            })
            .collect();
        Report {
            runs,
            floor,
            functions,
        }
    }

    /// The slowest function's median init (ms).
    pub fn slowest_init_ms(&self) -> Option<f64> {
        let inits = self.functions.iter().map(|row| row.measured.init_ms.median);
        inits.reduce(f64::max)
    }

    /// The rows as text cells: function, bootstrap, init, peak RSS, each with its ratio.
    fn rows(&self) -> Vec<[String; 7]> {
        let floor = [
            format!("{} (floor)", self.floor.name),
            megabytes(self.floor.bytes),
            "1.00×".into(),
            spread(&self.floor.init_ms, 1),
            "1.00×".into(),
            spread(&self.floor.peak_rss_mb, 1),
            "1.00×".into(),
        ];
        let functions = self.functions.iter().map(|row| {
            [
                row.measured.name.clone(),
                megabytes(row.measured.bytes),
                times(Some(row.bytes_ratio)),
                spread(&row.measured.init_ms, 1),
                times(row.init_ratio),
                spread(&row.measured.peak_rss_mb, 1),
                times(row.peak_rss_ratio),
            ]
        });
        std::iter::once(floor).chain(functions).collect()
    }

    const HEADER: [&'static str; 7] = [
        "function",
        "bootstrap MB",
        "× floor",
        "init ms: median (min–max)",
        "× floor",
        "peak RSS MB: median (min–max)",
        "× floor",
    ];

    /// Which targets every function meets, in words.
    pub fn verdicts(&self) -> Vec<String> {
        let all = |check: &dyn Fn(&ColdStartRow) -> bool| self.functions.iter().all(check);
        let say =
            |met: bool, what: String| format!("{} {what}", if met { "met:" } else { "missed:" });
        vec![
            say(
                all(&|r| r.init_ratio.is_some_and(|x| x <= INIT_RATIO_TARGET)),
                format!("init ≤ {INIT_RATIO_TARGET}× the floor for every function"),
            ),
            say(
                all(&|r| r.measured.bytes as f64 / 1e6 <= BOOTSTRAP_MB_TARGET),
                format!("bootstrap ≤ {BOOTSTRAP_MB_TARGET} MB for every function"),
            ),
            say(
                all(&|r| r.measured.peak_rss_mb.median <= PEAK_RSS_MB_TARGET),
                format!("peak RSS ≤ {PEAK_RSS_MB_TARGET} MB for every function"),
            ),
        ]
    }

    pub fn table(&self) -> String {
        text_table(Self::HEADER, self.rows())
    }

    pub fn markdown(&self) -> String {
        markdown_section(
            "Cold start of what deploys",
            &format!("{} runs per bootstrap.", self.runs),
            &Self::HEADER,
            &self.rows(),
            &self.verdicts(),
        )
    }
}

/// A part of `bench.md`: its title, a sentence, the table and the verdicts.
pub fn markdown_section<R: AsRef<[String]>>(
    title: &str,
    intro: &str,
    header: &[&str],
    rows: &[R],
    verdicts: &[String],
) -> String {
    let mut text = format!("### {title}\n\n{intro}\n\n");
    text.push_str(&format!("| {} |\n", header.join(" | ")));
    text.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for row in rows {
        text.push_str(&format!("| {} |\n", row.as_ref().join(" | ")));
    }
    text.push('\n');
    for verdict in verdicts {
        text.push_str(&format!("- {verdict}\n"));
    }
    text
}

/// A table for the terminal: `header`, then `rows`.
pub fn text_table<R: IntoIterator>(
    header: impl IntoIterator<Item = impl Into<comfy_table::Cell>>,
    rows: impl IntoIterator<Item = R>,
) -> String
where
    R::Item: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

fn spread(summary: &Summary, decimals: usize) -> String {
    format!(
        "{:.*} ({:.*}–{:.*})",
        decimals, summary.median, decimals, summary.min, decimals, summary.max
    )
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(name: &str, bytes: u64, init: f64, rss: f64) -> ColdStart {
        let one = |value: f64| Summary {
            median: value,
            min: value,
            max: value,
            runs: 1,
        };
        ColdStart {
            name: name.into(),
            bytes,
            init_ms: one(init),
            peak_rss_mb: one(rss),
        }
    }

    #[test]
    fn the_report_names_the_machine_and_only_the_parts_that_ran() {
        let machine = Machine {
            arch: "x86_64",
            cores: 2,
            cpu: "Test CPU".into(),
            kernel: "6.1".into(),
        };
        let parts = Parts {
            cold_start: Some(one_function()),
            first_invocation: None,
            work: None,
            workflow: None,
        };
        let bench = Bench { machine, parts };
        let markdown = bench.markdown();
        assert!(markdown.starts_with("Measured on Test CPU (2 cores, x86_64, Linux 6.1)."));
        assert!(markdown.contains("### Cold start of what deploys"));
        assert!(!markdown.contains("### Work per order"), "{markdown}");
    }

    /// A floor and one function `f`: 5× its size, 1.5× its init, 2.5× its peak RSS.
    fn one_function() -> Report {
        let floor = measured("noop", 1_000_000, 2.0, 4.0);
        let functions = vec![measured("f", 5_000_000, 3.0, 10.0)];
        Report::new(1, floor, functions)
    }

    #[test]
    fn each_function_is_compared_with_the_floor_measured_in_the_same_run() {
        let report = one_function();
        let row = &report.functions[0];
        assert_eq!(
            (row.bytes_ratio, row.init_ratio, row.peak_rss_ratio),
            (5.0, Some(1.5), Some(2.5))
        );
    }

    #[test]
    fn a_function_over_a_target_makes_that_target_missed_and_only_that_one() {
        let floor = measured("noop", 1_000_000, 2.0, 4.0);
        let functions = vec![
            measured("small", 5_000_000, 2.5, 10.0),
            measured("big", 7_000_000, 2.5, 10.0),
        ];
        let verdicts = Report::new(1, floor, functions).verdicts();
        let missed: Vec<&String> = verdicts
            .iter()
            .filter(|v| v.starts_with("missed"))
            .collect();
        assert_eq!(missed, ["missed: bootstrap ≤ 6 MB for every function"]);
    }

    #[test]
    fn the_markdown_has_a_row_for_the_floor_and_each_function() {
        let markdown = one_function().markdown();
        let rows: Vec<&str> = markdown
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
            .collect();
        assert_eq!(rows.len(), 3, "{markdown}");
        assert!(rows[1].starts_with("| noop (floor) | 1.00 |"), "{markdown}");
        assert!(
            rows[2].starts_with("| f | 5.00 | 5.00× | 3.0 (3.0–3.0) | 1.50× |"),
            "{markdown}"
        );
    }
}
