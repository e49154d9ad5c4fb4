//! The workflow's floor, for `make bench`: while it is on (`PUT /__floor` with `on`, back
//! with `off`), the router answers every Lambda invoke of the state machine itself, at
//! once, with a result every Task's `ResultSelector` accepts, and no function runs. A
//! callback task (`waitForTaskToken`, whose payload carries `task_token`) is completed
//! right after with `SendTaskSuccess`. What is left of an order's time is the engine's
//! own: its transitions, waits and the invoke round trips.

use serde_json::{json, Value};

/// The path that turns the floor on and off.
pub const PATH: &str = "/__floor";

/// What every Task gets back: the fields the definition's `ResultSelector`s read
/// (`$.Payload.status`, `attempts`, `kind`). A new-merchant order's path.
pub fn answer() -> Value {
    json!({"status": "FLOOR", "attempts": 1, "kind": "new_merchant"})
}

/// The task token of a callback task's payload, if it has one.
pub fn task_token(payload: &[u8]) -> Option<String> {
    let payload: Value = serde_json::from_slice(payload).ok()?;
    payload.get("task_token")?.as_str().map(str::to_owned)
}

/// Whether `body` of `PUT /__floor` turns the floor on (`on`) or off (`off`).
pub fn parse_switch(body: &[u8]) -> Option<bool> {
    match std::str::from_utf8(body).ok()?.trim() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// Completes the callback task `token` at Step Functions (`aws`: the emulator).
pub async fn send_task_success(client: &reqwest::Client, aws: &str, token: &str) {
    let body = json!({"taskToken": token, "output": answer().to_string()});
    let sent = client
        .post(aws)
        .header("x-amz-target", "AWSStepFunctions.SendTaskSuccess")
        .header("content-type", "application/x-amz-json-1.0")
        // The emulator routes by the credential scope's service; it checks no signature.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=floor/20260101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await;
    match sent.map(|answer| answer.status()) {
        Ok(status) if status.is_success() => {}
        Ok(status) => tracing::warn!(%status, "floor: SendTaskSuccess refused"),
        Err(error) => tracing::warn!(%error, "floor: SendTaskSuccess failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_answers_every_field_the_definition_selects() {
        let definition = include_str!("../../statemachine/order-workflow.asl.yaml");
        let answer = answer();
        let selected = definition.split("$.Payload.").skip(1).filter_map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
        });
        let mut count = 0;
        for field in selected {
            assert!(
                answer.get(field).is_some(),
                "the floor's answer lacks {field}"
            );
            count += 1;
        }
        assert!(count > 10, "the definition selects {count} fields");
    }

    #[test]
    fn only_a_callback_payload_has_a_task_token_and_only_on_or_off_switch_the_floor() {
        let callback = br#"{"order_id": "o-1", "task_token": "AAA"}"#;
        assert_eq!(task_token(callback).as_deref(), Some("AAA"));
        assert_eq!(task_token(br#"{"order_id": "o-1"}"#), None);
        assert_eq!(task_token(b"not json"), None);
        assert_eq!(
            (parse_switch(b"on\n"), parse_switch(b"off")),
            (Some(true), Some(false))
        );
        assert_eq!(parse_switch(b"yes"), None);
    }
}
