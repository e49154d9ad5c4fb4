//! The JSONPath the definition uses: `$`, `$.a.b` on the state's input, `$$.a.b` on the
//! context object, templates whose `.$` keys take a path or `States.MathAdd`, and
//! `ResultPath` writes. A path that finds nothing is the execution's `States.Runtime`
//! error, as in Step Functions.

use serde_json::{Map, Value};

/// A path that found nothing, or an intrinsic that could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

fn segments(path: &str) -> Option<Vec<&str>> {
    if path == "$" {
        return Some(Vec::new());
    }
    path.strip_prefix("$.")
        .map(|rest| rest.split('.').collect::<Vec<_>>())
}

/// The value at `path` in `input` (or in `context` for `$$.` paths).
pub fn get<'a>(input: &'a Value, context: &'a Value, path: &str) -> Option<&'a Value> {
    let (root, path) = match path.strip_prefix('$') {
        Some(rest) if rest.starts_with('$') => (context, &path[1..]),
        Some(_) => (input, path),
        None => return None,
    };
    let mut at = root;
    for segment in segments(path)? {
        at = at.as_object()?.get(segment)?;
    }
    Some(at)
}

/// `input` with `value` written at `path` (`None`: the result replaces nothing, as
/// `ResultPath` left out means `$`).
pub fn set(input: Value, path: Option<&str>, value: Value) -> Result<Value, PathError> {
    let path = path.unwrap_or("$");
    let Some(segments) = segments(path) else {
        return Err(PathError(format!("ResultPath {path} is not modelled")));
    };
    if segments.is_empty() {
        return Ok(value);
    }
    let mut root = match input {
        Value::Object(map) => Value::Object(map),
        _ => Value::Object(Map::new()),
    };
    let mut at = &mut root;
    let (last, parents) = segments
        .split_last()
        .ok_or_else(|| PathError(format!("ResultPath {path} is empty")))?;
    for segment in parents {
        let Value::Object(map) = at else {
            return Err(PathError(format!(
                "ResultPath {path}: {segment} is not an object"
            )));
        };
        let entry = map
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        at = entry;
    }
    if let Value::Object(map) = at {
        map.insert((*last).to_owned(), value);
    }
    Ok(root)
}

/// A Parameters or ResultSelector template filled from `input` and `context`.
pub fn fill(template: &Value, input: &Value, context: &Value) -> Result<Value, PathError> {
    match template {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if let Some(name) = key.strip_suffix(".$") {
                    let text = value.as_str().unwrap_or_default();
                    out.insert(name.to_owned(), evaluate(text, input, context)?);
                } else {
                    out.insert(key.clone(), fill(value, input, context)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|i| fill(i, input, context))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn evaluate(text: &str, input: &Value, context: &Value) -> Result<Value, PathError> {
    if let Some(args) = text
        .strip_prefix("States.MathAdd(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let mut sum: i64 = 0;
        for arg in args.split(',').map(str::trim) {
            let value = if arg.starts_with('$') {
                get(input, context, arg)
                    .cloned()
                    .ok_or_else(|| PathError(format!("States.MathAdd: {arg} not found")))?
            } else {
                serde_json::from_str(arg)
                    .map_err(|e| PathError(format!("States.MathAdd: {arg}: {e}")))?
            };
            let n = value
                .as_i64()
                .ok_or_else(|| PathError(format!("States.MathAdd: {arg} is not an integer")))?;
            sum = sum.saturating_add(n);
        }
        return Ok(Value::from(sum));
    }
    get(input, context, text)
        .cloned()
        .ok_or_else(|| PathError(format!("the path {text} found nothing in the input")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_path_creates_the_objects_on_its_way() {
        let out = set(json!({"a": 1}), Some("$.b.c"), json!(2)).expect("written");
        assert_eq!(out, json!({"a": 1, "b": {"c": 2}}));
    }

    #[test]
    fn a_template_takes_paths_context_paths_and_math_add() {
        let input = json!({"outage": {"waits": 2, "step": "TakePayment"}});
        let context = json!({"Task": {"Token": "t-1"}});
        let template = json!({"waits.$": "States.MathAdd($.outage.waits, 1)",
                              "step.$": "$.outage.step", "token.$": "$$.Task.Token", "n": 1});
        let out = fill(&template, &input, &context).expect("filled");
        assert_eq!(
            out,
            json!({"waits": 3, "step": "TakePayment", "token": "t-1", "n": 1})
        );
    }

    #[test]
    fn a_path_that_finds_nothing_is_an_error() {
        let template = json!({"x.$": "$.missing"});
        assert!(fill(&template, &json!({}), &json!({})).is_err());
    }
}
