//! The API callers a local stack comes with, and the scope of its own.
//!
//! Every stack has three callers, each an IAM principal with its own signing key:
//!
//! | caller | stack.env | IAM (MiniStack, AWS) | scope |
//! |---|---|---|---|
//! | the stack's own (tests, tools, the demo) | `ORDERS_API_ACCESS_KEY_ID`, `ORDERS_API_CALLER_ARN` | every route | every merchant, every permission: granted here at start |
//! | a portal | `ORDERS_API_PORTAL_*` | every route | none until a test grants one |
//! | a merchant app | `ORDERS_API_APP_*` | `GET /orders/*` and `POST /orders` only (no cancel) | none until a test grants one |
//!
//! On MiniStack they are IAM users (`infra/ministack/api_caller.py`) whose signatures and
//! route permissions MiniStack checks, and API Gateway reports each as the caller. On
//! the moto stack, whose function URL has no IAM, a caller is its access key: the invoke
//! router names the caller `arn:aws:iam::123456789012:user/<access key id>` in a header
//! the orders API reads there only ([`LOCAL_CALLER_HEADER`]).

use crate::stack::StackError;
use order_core::callers::{Principal, Scope};
use order_core::store::{Actor, OrderStore};
use std::collections::BTreeMap;

/// The header the invoke router passes the caller in (the router's `CALLER_HEADER`),
/// and the variable that tells the orders API to read it.
pub const LOCAL_CALLER_HEADER: (&str, &str) = ("LOCAL_CALLER_HEADER", "x-local-caller");

/// The account of the moto stack's principals (moto's default).
const MOTO_ACCOUNT: &str = "123456789012";

/// One caller: its name in stack.env (`ORDERS_API_<NAME>_…`, the stack's own has none)
/// and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub arn: String,
}

/// The moto stack's callers: a caller is its access key.
pub fn moto_callers() -> BTreeMap<&'static str, ApiCaller> {
    [("", "test"), ("PORTAL", "portal"), ("APP", "app")]
        .into_iter()
        .map(|(name, key)| {
            let caller = ApiCaller {
                access_key_id: key.to_owned(),
                secret_access_key: key.to_owned(),
                arn: format!("arn:aws:iam::{MOTO_ACCOUNT}:user/{key}"),
            };
            (name, caller)
        })
        .collect()
}

/// The stack.env lines of `callers`.
pub fn env(callers: &BTreeMap<&'static str, ApiCaller>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for (name, caller) in callers {
        let prefix = match *name {
            "" => "ORDERS_API_".to_owned(),
            name => format!("ORDERS_API_{name}_"),
        };
        env.push((
            format!("{prefix}ACCESS_KEY_ID"),
            caller.access_key_id.clone(),
        ));
        env.push((
            format!("{prefix}SECRET_ACCESS_KEY"),
            caller.secret_access_key.clone(),
        ));
        let arn_name = match *name {
            "" => "ORDERS_API_CALLER_ARN".to_owned(),
            _ => format!("{prefix}ARN"),
        };
        env.push((arn_name, caller.arn.clone()));
    }
    env
}

/// Grants the stack's own caller every permission for every merchant (an explicit grant,
/// recorded as the stack's setup), so the tests and tools that act for any merchant can.
pub async fn grant_own(
    dynamodb: aws_sdk_dynamodb::Client,
    table: &str,
    callers: &BTreeMap<&'static str, ApiCaller>,
) -> Result<(), StackError> {
    let own = callers
        .get("")
        .ok_or_else(|| StackError::Other("the stack has no caller of its own".into()))?;
    let principal = Principal::parse(&own.arn).map_err(|e| StackError::Other(e.to_string()))?;
    let store = OrderStore::new(dynamodb, table);
    let setup = Actor {
        identity: "local-stack",
        label: Some("the local stack's setup"),
    };
    store
        .set_caller_scope(&principal, &Scope::everything(), &setup)
        .await
        .map_err(|e| StackError::Other(format!("granting the stack's caller its scope: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moto_stacks_callers_are_their_keys_and_each_has_its_stack_env_lines() {
        let lines: BTreeMap<String, String> = env(&moto_callers()).into_iter().collect();
        assert_eq!(lines["ORDERS_API_ACCESS_KEY_ID"], "test");
        assert_eq!(
            lines["ORDERS_API_CALLER_ARN"],
            "arn:aws:iam::123456789012:user/test"
        );
        assert_eq!(
            lines["ORDERS_API_APP_ARN"],
            "arn:aws:iam::123456789012:user/app"
        );
        assert_eq!(lines["ORDERS_API_PORTAL_SECRET_ACCESS_KEY"], "portal");
        assert_eq!(lines.len(), 9);
    }
}
