//! How results are shown: aligned tables for people, one JSON document for scripts.
//! Both go to stdout; progress and errors go to stderr.

use serde::Serialize;

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Columns aligned to the right (numbers).
    right: Vec<usize>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            ..Table::default()
        }
    }

    /// Aligns column `index` to the right.
    pub fn right(mut self, index: usize) -> Table {
        self.right.push(index);
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(width(cell));
            }
        }
        let line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                let pad = widths[index].saturating_sub(width(cell));
                if index > 0 {
                    text.push_str("  ");
                }
                if self.right.contains(&index) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
            }
            text.trim_end().to_owned()
        };
        let mut lines = vec![line(self.headers.clone())];
        for row in &self.rows {
            let mut cells: Vec<&str> = row.iter().map(String::as_str).collect();
            cells.resize(columns, "");
            lines.push(line(cells));
        }
        lines.join("\n")
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Prints `value` as one pretty JSON document on stdout.
/// Prints a listing of `count` rows and the count, with a note when `--limit` may have
/// cut it short (`noun`: what a row is, `message(s)`).
pub fn print_listing(table: &Table, count: usize, limit: usize, noun: &str) {
    println!("{}", table.render());
    let more = if count == limit {
        " (the limit; there may be more: --limit)"
    } else {
        ""
    };
    println!("{count} {noun}{more}");
}

pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Our values are plain data; this would be a bug, and stdout must stay JSON.
        Err(error) => println!(
            "{}",
            serde_json::json!({"error": {"code": "internal", "message": error.to_string()}})
        ),
    }
}

/// `text` cut to `limit` characters, with `…` when cut; line breaks become spaces.
pub fn clip(text: &str, limit: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= limit {
        return flat;
    }
    let mut cut: String = flat.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A duration for people: `870ms`, `9.2s`, `4m05s`, `2h03m`, `3d04h`.
pub fn duration(milliseconds: i64) -> String {
    let ms = milliseconds.max(0);
    let s = ms / 1000;
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// An RFC 3339 time for a table: `2026-11-26 09:35:59.174` (UTC), or as given when it is
/// not a time.
pub fn time(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => time
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}

/// `-` for an empty cell.
pub fn or_dash(text: Option<impl Into<String>>) -> String {
    text.map(Into::into)
        .filter(|t: &String| !t.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_numbers_to_the_right() {
        let mut table = Table::new(&["name", "n", "note"]).right(1);
        table.row(vec!["ValidateOrder".into(), "1".into(), String::new()]);
        table.row(vec!["Re".into(), "12".into(), "x".into()]);
        assert_eq!(
            table.render(),
            "name            n  note\nValidateOrder   1\nRe             12  x"
        );
    }

    #[test]
    fn durations_read_like_the_demo() {
        assert_eq!(duration(203), "203ms");
        assert_eq!(duration(9_230), "9.2s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_380_000), "2h03m");
        assert_eq!(duration(1_209_600_000), "14d00h");
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        assert_eq!(clip("Straße 1\nBerlin", 8), "Straße …");
        assert_eq!(clip("short", 8), "short");
    }
}
