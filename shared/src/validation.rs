//! Problems found in a request, each with the path of the field it is about, so a caller
//! can fix every one of them in a single round trip.

use serde::Serialize;
use std::fmt;

/// One thing wrong with a request: `lines[1].quantity: must be between 1 and 50`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where the problem is, in `a.b[2].c` form; `$` is the whole body.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a request; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s): {}", .0.len(), join(.0))]
pub struct Problems(pub Vec<Problem>);

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects problems while a request is parsed, tracking the current field path.
#[derive(Debug, Default)]
pub struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    pub fn new() -> Self {
        Collector::default()
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems have been recorded so far.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// `Ok(value)` when nothing was recorded, otherwise every problem.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Problems> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ if self.problems.is_empty() => Err(Problems(vec![Problem {
                path: "$".into(),
                message: "could not be read".into(),
            }])),
            _ => Err(Problems(self.problems)),
        }
    }
}

/// `parent.child`, or just `child` at the top level.
pub fn field(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// `parent[index]`.
pub fn element(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_the_json_they_point_into() {
        assert_eq!(field("", "lines"), "lines");
        assert_eq!(field(&element("lines", 1), "quantity"), "lines[1].quantity");
    }

    #[test]
    fn a_collector_with_problems_returns_all_of_them() {
        let mut collector = Collector::new();
        collector.push("a", "is wrong");
        collector.push("b", "is wrong too");
        let result: Result<u8, Problems> = collector.finish(Some(1));
        let problems = result.err().map(|p| p.0.len());
        assert_eq!(problems, Some(2));
    }

    #[test]
    fn a_collector_without_problems_returns_the_value() {
        assert_eq!(Collector::new().finish(Some(7)), Ok(7));
    }
}
