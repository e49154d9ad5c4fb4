//! `Idempotency-Key`s: how long one is remembered, what is kept under it, and the hash
//! that tells a replayed request from a different one sent with the same key.

use crate::order::OrderId;
use serde::{Deserialize, Serialize};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// What is kept under an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    pub order_id: OrderId,
    pub request_hash: String,
    pub created_at: String,
    pub expires_at: i64,
}

/// SHA-256 of a request's canonical JSON (keys sorted, no insignificant white space), so
/// the same order sent twice with different formatting is recognised as the same request.
pub fn request_hash(request: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    // serde_json's default map is ordered by key, so this text is canonical.
    let canonical = request.to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_request_formatted_differently_hashes_the_same() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).expect("the first text is JSON");
        let b: serde_json::Value =
            serde_json::from_str("{\n  \"a\":[1,2],\"b\":1}").expect("the second text is JSON");
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(
            request_hash(&a),
            request_hash(&json!({"b": 2, "a": [1, 2]}))
        );
    }
}
