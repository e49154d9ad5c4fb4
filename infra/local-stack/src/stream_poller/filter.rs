//! Lambda's event filtering (an event source mapping's `FilterCriteria`) on stream
//! records, in the pattern forms the local stack implements: lists of exact values and
//! `prefix`. A pattern is parsed when the template is read, so one that uses anything
//! else stops `up` with its name instead of filtering differently from AWS.
//!
//! The rules are Lambda's: every key of a pattern must match (AND); a leaf is a list of
//! values and matches when the record's value equals one of them or starts with one of
//! its prefixes (OR); a record's list value matches when one of its elements does; a key
//! the record lacks matches nothing; a record is delivered when one filter of the list
//! matches it ([`keeps`]), every record when there are none.

use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// One filter's pattern, as `FilterCriteria.Filters[].Pattern` gives it (JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: BTreeMap<String, Rule>,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// The record's value is an object whose fields match these.
    Fields(BTreeMap<String, Rule>),
    /// The record's value (or one element of it, if it is a list) matches one of these.
    AnyOf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    /// A string, number, boolean or null, compared exactly (numbers by value).
    Equals(Json),
    /// `{"prefix": "..."}`: a string that starts with it.
    Prefix(String),
}

impl Pattern {
    /// Reads a pattern; what is not JSON, or uses a form the local stack does not
    /// implement (`anything-but`, `numeric`, `exists`, `suffix`...), is an error that
    /// says so.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| format!("not a JSON pattern: {e}"))?;
        let object = json.as_object().ok_or("a pattern is a JSON object")?;
        Ok(Pattern {
            fields: fields(object)?,
        })
    }

    /// Whether `record` (a stream record as the function receives it) matches.
    pub fn matches(&self, record: &Json) -> bool {
        all_match(&self.fields, record)
    }
}

/// Whether a record is delivered under `filters`: when one of them matches it, or when
/// there are none.
pub fn keeps(filters: &[Pattern], record: &Json) -> bool {
    filters.is_empty() || filters.iter().any(|pattern| pattern.matches(record))
}

fn fields(object: &Map<String, Json>) -> Result<BTreeMap<String, Rule>, String> {
    if object.is_empty() {
        return Err("an empty object in a pattern matches nothing".into());
    }
    let mut rules = BTreeMap::new();
    for (key, value) in object {
        let rule = match value {
            Json::Object(nested) => Rule::Fields(fields(nested)?),
            Json::Array(values) if values.is_empty() => {
                return Err(format!("{key}: an empty list matches nothing"))
            }
            Json::Array(values) => Rule::AnyOf(
                values
                    .iter()
                    .map(|value| matcher(key, value))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("{key}: {other} must be a list of values")),
        };
        rules.insert(key.clone(), rule);
    }
    Ok(rules)
}

fn matcher(key: &str, value: &Json) -> Result<Matcher, String> {
    let Json::Object(operator) = value else {
        return match value {
            Json::Array(_) => Err(format!("{key}: a list inside a list")),
            scalar => Ok(Matcher::Equals(scalar.clone())),
        };
    };
    match operator.iter().next() {
        Some((name, Json::String(prefix))) if name == "prefix" && operator.len() == 1 => {
            Ok(Matcher::Prefix(prefix.clone()))
        }
        Some((name, _)) if name == "prefix" => Err(format!("{key}: prefix takes one string")),
        Some((name, _)) => Err(format!(
            "{key}: the filter rule {name:?} is not implemented by the local stream poller (exact values and prefix are)"
        )),
        None => Err(format!("{key}: an empty rule")),
    }
}

fn all_match(rules: &BTreeMap<String, Rule>, value: &Json) -> bool {
    rules
        .iter()
        .all(|(key, rule)| match (rule, value.get(key)) {
            (_, None) => false,
            (Rule::Fields(nested), Some(field)) => field.is_object() && all_match(nested, field),
            (Rule::AnyOf(matchers), Some(Json::Array(elements))) => elements
                .iter()
                .any(|element| matchers.iter().any(|m| m.matches(element))),
            (Rule::AnyOf(matchers), Some(field)) => matchers.iter().any(|m| m.matches(field)),
        })
}

impl Matcher {
    fn matches(&self, value: &Json) -> bool {
        match (self, value) {
            (Matcher::Equals(Json::Number(expected)), Json::Number(actual)) => {
                expected.as_f64() == actual.as_f64()
            }
            (Matcher::Equals(expected), actual) => expected == actual,
            (Matcher::Prefix(prefix), Json::String(text)) => text.starts_with(prefix.as_str()),
            (Matcher::Prefix(_), _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The outbox's filter, as template.yaml declares it.
    const OUTBOX: &str = r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}"#;

    fn record(event_name: &str, sk: &str) -> Json {
        json!({
            "eventName": event_name,
            "dynamodb": {"Keys": {"pk": {"S": "ORDER#o-1"}, "sk": {"S": sk}}}
        })
    }

    fn outbox() -> Pattern {
        Pattern::parse(OUTBOX).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn an_outbox_item_inserted_or_modified_matches_the_outbox_filter() {
        assert!(outbox().matches(&record("INSERT", "EVENT#0001#order.placed")));
        assert!(outbox().matches(&record("MODIFY", "EVENT#")));
    }

    #[test]
    fn another_item_or_a_removed_outbox_item_does_not_match() {
        assert!(!outbox().matches(&record("INSERT", "ORDER")));
        assert!(!outbox().matches(&record("MODIFY", "STEP#ReserveStock")));
        // The prefix is case-sensitive and anchored at the start.
        assert!(!outbox().matches(&record("INSERT", "event#1")));
        assert!(!outbox().matches(&record("INSERT", "ORDER#EVENT#1")));
        assert!(!outbox().matches(&record("REMOVE", "EVENT#1")));
    }

    #[test]
    fn a_record_without_the_patterns_key_or_with_another_type_does_not_match() {
        let keys_only = json!({"eventName": "INSERT", "dynamodb": {}});
        assert!(!outbox().matches(&keys_only));
        let number = json!({"eventName": "INSERT", "dynamodb": {"Keys": {"sk": {"N": "1"}}}});
        assert!(!outbox().matches(&number));
        let not_a_string = json!({"eventName": "INSERT", "dynamodb": {"Keys": {"sk": {"S": 7}}}});
        assert!(!outbox().matches(&not_a_string));
    }

    #[test]
    fn a_record_passes_when_one_filter_matches_and_every_record_passes_no_filters() {
        let removed = Pattern::parse(r#"{"eventName": ["REMOVE"]}"#);
        let filters = [outbox(), removed.unwrap_or_else(|e| panic!("{e}"))];
        assert!(keeps(&filters, &record("REMOVE", "ORDER")));
        assert!(keeps(&filters, &record("INSERT", "EVENT#1")));
        assert!(!keeps(&filters, &record("MODIFY", "ORDER")));
        assert!(keeps(&[], &record("MODIFY", "ORDER")));
    }

    #[test]
    fn exact_numbers_match_by_value_and_list_values_by_any_element() {
        let pattern = Pattern::parse(r#"{"size": [10], "tags": ["a"]}"#);
        let pattern = pattern.unwrap_or_else(|e| panic!("{e}"));
        assert!(pattern.matches(&json!({"size": 10.0, "tags": ["b", "a"]})));
        assert!(!pattern.matches(&json!({"size": 10.5, "tags": ["a"]})));
        assert!(!pattern.matches(&json!({"size": 10, "tags": ["b"]})));
    }

    #[test]
    fn a_pattern_the_local_stack_cannot_honour_is_refused_with_its_reason() {
        let refused = |text: &str| Pattern::parse(text).err().unwrap_or_default();
        assert!(refused(r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#)
            .contains(r#""anything-but" is not implemented"#));
        assert!(refused(r#"{"eventName": "INSERT"}"#).contains("must be a list"));
        assert!(refused(r#"{"eventName": []}"#).contains("empty list"));
        assert!(refused(r#"{"sk": [{"prefix": 1}]}"#).contains("one string"));
        assert!(refused("[]").contains("JSON object"));
        assert!(refused("{").contains("not a JSON pattern"));
    }
}
