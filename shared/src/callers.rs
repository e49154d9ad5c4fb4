//! Who may call the orders API for which merchants: each caller's IAM principal (as API
//! Gateway's IAM authorization reports it) maps to a [`Scope`], the merchants it may act
//! for and what it may do for them ([`Permission`]). Scopes are items in the table
//! (`orderctl callers`), so an operator changes one without a deploy; every change is
//! audited. A caller with no scope may do nothing: "all merchants" is an explicit grant.
//!
//! What the API answers follows from [`Scope::decide`]: a caller that may not use a route
//! at all is told so (403); an order of a merchant outside its scope is, for reads and
//! cancels, no order at all (404: no existence oracle), and for a placement a 403 naming
//! the merchant the caller sent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// An IAM principal, as the scopes name it: an IAM role's or user's ARN. A role's
/// session (`arn:aws:sts::<account>:assumed-role/<role>/<session>`, what API Gateway
/// reports for a caller that assumed a role) is its role
/// (`arn:aws:iam::<account>:role/<role>`), so a scope outlives the sessions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

/// Why a text is no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an IAM principal ARN (arn:aws:iam::<account>:role/<name>, arn:aws:iam::<account>:user/<name>, or an assumed-role session ARN): {why}")]
pub struct NotAPrincipal {
    pub text: String,
    pub why: &'static str,
}

impl Principal {
    /// The principal an ARN names (a role session is its role).
    pub fn parse(text: &str) -> Result<Principal, NotAPrincipal> {
        let refuse = |why| NotAPrincipal {
            text: text.chars().take(256).collect(),
            why,
        };
        let text = text.trim();
        if text.len() > 2048 {
            return Err(refuse("longer than 2,048 characters"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("it holds white space or control characters"));
        }
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(refuse("an ARN has six parts separated by ':'"));
        };
        if arn != "arn" || partition.is_empty() || !region.is_empty() {
            return Err(refuse(
                "it must start arn:<partition>:iam:: or arn:<partition>:sts::",
            ));
        }
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse("the account must be digits"));
        }
        match service {
            "iam" => {
                let named = ["role/", "user/"]
                    .iter()
                    .any(|kind| resource.strip_prefix(kind).is_some_and(|n| !n.is_empty()));
                if !named {
                    return Err(refuse("an IAM principal is a role/<name> or a user/<name>"));
                }
                Ok(Principal(text.to_owned()))
            }
            "sts" => {
                let Some(rest) = resource.strip_prefix("assumed-role/") else {
                    return Err(refuse("an STS principal is an assumed-role session"));
                };
                let role = rest.split('/').next().unwrap_or_default();
                if role.is_empty() {
                    return Err(refuse("the assumed role has no name"));
                }
                Ok(Principal(format!(
                    "arn:{partition}:iam::{account}:role/{role}"
                )))
            }
            _ => Err(refuse("the service must be iam or sts")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Principal {
    type Error = NotAPrincipal;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Principal::parse(&text)
    }
}

impl From<Principal> for String {
    fn from(principal: Principal) -> String {
        principal.0
    }
}

/// What a caller may do for the merchants of its scope; each is also a route's IAM
/// permission (`execute-api:Invoke` on that route), granted separately.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::VariantArray
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Permission {
    /// `GET /orders/{id}`.
    Read,
    /// `POST /orders`.
    Place,
    /// `POST /orders/{id}/cancel`.
    Cancel,
}

/// Which merchants a caller may act for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "ids")]
pub enum Merchants {
    /// Every merchant: only by an explicit grant (`orderctl callers set --all-merchants`).
    All,
    /// These merchant ids, and no other.
    Only(BTreeSet<String>),
}

impl Merchants {
    pub fn includes(&self, merchant_id: &str) -> bool {
        match self {
            Merchants::All => true,
            Merchants::Only(ids) => ids.contains(merchant_id),
        }
    }
}

impl fmt::Display for Merchants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Merchants::All => f.write_str("all merchants"),
            Merchants::Only(ids) if ids.is_empty() => f.write_str("no merchant"),
            Merchants::Only(ids) => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                f.write_str(&ids.join(", "))
            }
        }
    }
}

/// What one caller may do: for which merchants, which of the routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub merchants: Merchants,
    pub permissions: BTreeSet<Permission>,
}

/// What the API does with a request, by the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The caller may not use this route at all (no scope, or not this permission).
    NotPermitted,
    /// The order's merchant is not the caller's.
    OutsideScope,
}

impl Scope {
    /// Whether `permission` for `merchant_id` is allowed, or why not.
    pub fn decide(&self, permission: Permission, merchant_id: &str) -> Decision {
        if !self.permissions.contains(&permission) {
            Decision::NotPermitted
        } else if !self.merchants.includes(merchant_id) {
            Decision::OutsideScope
        } else {
            Decision::Allowed
        }
    }

    /// Every permission for every merchant: the explicit grant a trusted caller (the
    /// local stack's own caller, a back-office system) is given.
    pub fn everything() -> Scope {
        use strum::VariantArray;
        Scope {
            merchants: Merchants::All,
            permissions: Permission::VARIANTS.iter().copied().collect(),
        }
    }
}

/// [`Scope::decide`] for a caller that may have no scope at all.
pub fn decide(scope: Option<&Scope>, permission: Permission, merchant_id: &str) -> Decision {
    scope.map_or(Decision::NotPermitted, |scope| {
        scope.decide(permission, merchant_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_session_is_its_role() {
        let principal =
            Principal::parse("arn:aws:sts::123456789012:assumed-role/sales-portal/i-0abc")
                .expect("a session ARN is a principal");
        assert_eq!(
            principal.as_str(),
            "arn:aws:iam::123456789012:role/sales-portal"
        );
    }

    #[test]
    fn roles_and_users_are_kept_as_they_are() {
        for arn in [
            "arn:aws:iam::123456789012:role/merchant-app",
            "arn:aws:iam::123456789012:role/path/merchant-app",
            "arn:aws:iam::000000000000:user/orders-api-caller",
            "arn:aws-cn:iam::123456789012:user/x",
        ] {
            assert_eq!(Principal::parse(arn).map(|p| p.0), Ok(arn.to_owned()));
        }
    }

    #[test]
    fn what_is_no_principal_is_refused_with_the_reason() {
        for (text, why) in [
            ("sales-portal", "six parts"),
            ("arn:aws:s3:::bucket/x", "iam::"),
            ("arn:aws:iam::12x:role/a", "digits"),
            ("arn:aws:iam::123456789012:group/a", "role/<name>"),
            ("arn:aws:iam::123456789012:role/", "role/<name>"),
            ("arn:aws:sts::123456789012:federated-user/a", "assumed-role"),
            ("arn:aws:iam::123456789012:role/a b", "white space"),
        ] {
            let error = Principal::parse(text).expect_err(text);
            assert!(error.to_string().contains(why), "{text}: {error}");
        }
    }

    fn scope(merchants: &[&str], permissions: &[Permission]) -> Scope {
        Scope {
            merchants: Merchants::Only(merchants.iter().map(|m| (*m).to_owned()).collect()),
            permissions: permissions.iter().copied().collect(),
        }
    }

    #[test]
    fn a_caller_acts_only_for_its_merchants_and_only_as_permitted() {
        let reader = scope(&["m-1", "m-2"], &[Permission::Read]);
        assert_eq!(reader.decide(Permission::Read, "m-2"), Decision::Allowed);
        assert_eq!(
            reader.decide(Permission::Read, "m-3"),
            Decision::OutsideScope
        );
        assert_eq!(
            reader.decide(Permission::Cancel, "m-1"),
            Decision::NotPermitted
        );
        assert_eq!(
            reader.decide(Permission::Place, "m-3"),
            Decision::NotPermitted
        );
    }

    #[test]
    fn a_caller_without_a_scope_may_do_nothing_and_all_merchants_is_explicit() {
        assert_eq!(
            decide(None, Permission::Read, "m-1"),
            Decision::NotPermitted
        );
        let everything = Scope::everything();
        for permission in [Permission::Read, Permission::Place, Permission::Cancel] {
            assert_eq!(
                decide(Some(&everything), permission, "any"),
                Decision::Allowed
            );
        }
        assert_eq!(
            scope(&[], &[Permission::Read]).decide(Permission::Read, "m-1"),
            Decision::OutsideScope
        );
    }

    #[test]
    fn permissions_read_and_print_as_the_cli_writes_them() {
        assert_eq!("cancel".parse::<Permission>(), Ok(Permission::Cancel));
        assert_eq!(Permission::Place.to_string(), "place");
        assert!("delete".parse::<Permission>().is_err());
    }
}
