//! Idempotency keys: the first successful answer per `(partner, Idempotency-Key)` is
//! kept with a fingerprint of the request, and every request with a key is counted (the
//! attempt number is an input of the fault decision).

use crate::operation::{Operation, Partner};
use axum::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// sha256 of the operation and the canonical JSON of the request body: two requests
/// with the same fingerprint are the same request, whatever the order of their keys or
/// their whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `body` sent to `operation`. The operation is part of it, so a
    /// key reused for another operation of the same partner counts as another body.
    pub fn of(operation: Operation, body: &Value) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(operation.as_str());
        hasher.update(b"\n");
        hasher.update(canonical_json(body));
        Fingerprint(hasher.finalize().into())
    }
}

/// JSON with object keys sorted (recursively) and no whitespace. Independent of whether
/// `serde_json` keeps insertion order (its `preserve_order` feature).
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// A kept answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub status: StatusCode,
    pub body: Value,
}

/// What is known about a request's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// No answer kept: carry the request out. `attempt` counts requests with this key,
    /// this one included (1 for the first).
    Fresh { attempt: u64 },
    /// The same request was answered before: answer this again, do nothing.
    Replay(Kept),
    /// The key was answered for another body.
    Reused,
}

#[derive(Debug, Default)]
struct Entry {
    attempts: u64,
    kept: Option<(Fingerprint, Kept)>,
}

/// Every key seen, per partner.
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: HashMap<(Partner, String), Entry>,
}

impl IdempotencyStore {
    /// Counts one more request with `key` at `partner` and says what to do with it.
    pub fn begin(&mut self, partner: Partner, key: &str, fingerprint: Fingerprint) -> Lookup {
        let entry = self.entries.entry((partner, key.to_owned())).or_default();
        entry.attempts += 1;
        match &entry.kept {
            None => Lookup::Fresh {
                attempt: entry.attempts,
            },
            Some((kept_for, kept)) if *kept_for == fingerprint => Lookup::Replay(kept.clone()),
            Some(_) => Lookup::Reused,
        }
    }

    /// Keeps a successful answer for `key`. Only the first one is kept (there is no
    /// second: a key with a kept answer is replayed, never carried out again).
    pub fn keep(&mut self, partner: Partner, key: &str, fingerprint: Fingerprint, kept: Kept) {
        let entry = self.entries.entry((partner, key.to_owned())).or_default();
        if entry.kept.is_none() {
            entry.kept = Some((fingerprint, kept));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#)
            .unwrap_or(Value::Null);
        let b = json!({"a": null, "b": [1, {"x": "é", "y": 2}]});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&b), r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
    }

    #[test]
    fn a_key_is_fresh_until_an_answer_is_kept_then_replayed_or_refused() {
        let mut store = IdempotencyStore::default();
        let body = json!({"order_id": "o"});
        let same = Fingerprint::of(Operation::Charge, &body);
        let other = Fingerprint::of(Operation::Refund, &body);
        assert_eq!(
            store.begin(Partner::Payments, "k", same),
            Lookup::Fresh { attempt: 1 }
        );
        assert_eq!(
            store.begin(Partner::Payments, "k", same),
            Lookup::Fresh { attempt: 2 }
        );
        let kept = Kept {
            status: StatusCode::CREATED,
            body: json!({"charge_id": "chg-1"}),
        };
        store.keep(Partner::Payments, "k", same, kept.clone());
        assert_eq!(
            store.begin(Partner::Payments, "k", same),
            Lookup::Replay(kept)
        );
        assert_eq!(store.begin(Partner::Payments, "k", other), Lookup::Reused);
        assert_eq!(
            store.begin(Partner::Warehouse, "k", same),
            Lookup::Fresh { attempt: 1 }
        );
    }
}
