//! Who is calling, and what they may do: the caller's IAM principal as API Gateway's IAM
//! authorization reports it (`requestContext.identity.userArn`; a function URL with IAM
//! auth reports it under `requestContext.authorizer.iam.userArn`), and its scope in the
//! table ([`order_core::callers`]).
//!
//! The local moto stack has no IAM at its function URL: there the invoke router resolves
//! the caller from the request's SigV4 credential and passes it in a header, which the
//! function reads only when its configuration names that header
//! (`LOCAL_CALLER_HEADER`, set by the local stack, never by template.yaml) and the event
//! carries no identity of its own. On AWS the identity always comes from the event.

use crate::{Api, ApiError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use lambda_http::request::RequestContext;
use order_core::callers::{Decision, Permission, Principal, Scope};
use order_core::store::Callers;
use std::convert::Infallible;
use std::sync::Arc;

/// The environment variable that names the header the local stack's router puts the
/// caller's principal in.
pub const LOCAL_CALLER_HEADER: &str = "LOCAL_CALLER_HEADER";

/// The caller of one request, as far as the request says (`None`: no identity at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<Result<Principal, String>>);

impl Caller {
    /// The caller of a request with `context` and `headers`; the header `local_header`
    /// is read only when the context holds no identity.
    pub fn of(
        context: Option<&RequestContext>,
        headers: &HeaderMap,
        local_header: Option<&HeaderName>,
    ) -> Caller {
        let from_context = context.and_then(|context| match context {
            RequestContext::ApiGatewayV1(context) => context.identity.user_arn.clone(),
            RequestContext::ApiGatewayV2(context) => context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.iam.as_ref())
                .and_then(|iam| iam.user_arn.clone()),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let arn = from_context.filter(|arn| !arn.is_empty()).or_else(|| {
            let header = local_header?;
            headers.get(header)?.to_str().ok().map(str::to_owned)
        });
        Caller(arn.map(|arn| Principal::parse(&arn).map_err(|_| arn)))
    }

    /// The principal, or the 403 that says there is none.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        match &self.0 {
            Some(Ok(principal)) => Ok(principal),
            Some(Err(arn)) => {
                tracing::warn!(caller = %arn, "the caller's identity is no IAM principal");
                Err(not_permitted_at_all())
            }
            None => {
                tracing::warn!("a request without a caller identity");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "caller_unknown",
                    "the request carries no IAM identity; sign it with SigV4 (execute-api)",
                ))
            }
        }
    }
}

/// A route handler's caller: from the Lambda event's request context (which lambda_http
/// keeps in the request's extensions) and, on the local stack, the configured header.
impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller::of(
            parts.extensions.get::<RequestContext>(),
            &parts.headers,
            api.local_caller_header.as_ref(),
        ))
    }
}

fn not_permitted_at_all() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "caller_not_permitted",
        "this caller may not use this route; an operator grants callers their merchants and permissions (orderctl callers)",
    )
}

/// The caller's principal and scope, or the 403 for a caller that may not use a route
/// needing `permission` at all.
pub async fn authorise(
    store: &impl Callers,
    caller: &Caller,
    permission: Permission,
) -> Result<(Principal, Scope), ApiError> {
    let principal = caller.principal()?.clone();
    let scope = store.caller_scope(&principal).await?;
    match scope {
        Some(scope) if scope.permissions.contains(&permission) => Ok((principal, scope)),
        _ => {
            tracing::info!(caller = %principal, %permission, "caller not permitted");
            Err(not_permitted_at_all())
        }
    }
}

/// What a placement for `merchant_id` outside the caller's scope is told: 403, naming the
/// merchant the caller itself sent.
pub fn check_placement(scope: &Scope, merchant_id: &str) -> Result<(), ApiError> {
    match scope.decide(Permission::Place, merchant_id) {
        Decision::Allowed => Ok(()),
        Decision::NotPermitted => Err(not_permitted_at_all()),
        Decision::OutsideScope => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "merchant_not_in_scope",
            format!("this caller may not place orders for merchant {merchant_id:?}"),
        )),
    }
}

/// Whether the caller may see (or cancel) an order of `merchant_id`: an order outside its
/// scope is answered as no order at all (404), so its existence is not given away.
pub fn check_order(
    scope: &Scope,
    permission: Permission,
    merchant_id: &str,
    id: &str,
) -> Result<(), ApiError> {
    match scope.decide(permission, merchant_id) {
        Decision::Allowed => Ok(()),
        Decision::NotPermitted => Err(not_permitted_at_all()),
        Decision::OutsideScope => Err(ApiError::order_not_found(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;

    fn v1_context(user_arn: Option<&str>) -> RequestContext {
        let mut context = ApiGatewayProxyRequestContext::default();
        context.identity.user_arn = user_arn.map(str::to_owned);
        RequestContext::ApiGatewayV1(context)
    }

    fn header() -> HeaderName {
        HeaderName::from_static("x-local-caller")
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header(), value.parse().expect("a header value"));
        headers
    }

    #[test]
    fn api_gateways_identity_wins_over_any_header() {
        let caller = Caller::of(
            Some(&v1_context(Some(
                "arn:aws:sts::123456789012:assumed-role/portal/s1",
            ))),
            &headers("arn:aws:iam::123456789012:role/other"),
            Some(&header()),
        );
        assert_eq!(
            caller.principal().map(Principal::as_str),
            Ok("arn:aws:iam::123456789012:role/portal")
        );
    }

    #[test]
    fn the_header_is_read_only_when_configured() {
        let sent = headers("arn:aws:iam::123456789012:user/test");
        let unconfigured = Caller::of(Some(&v1_context(None)), &sent, None);
        assert_eq!(
            unconfigured.principal().map_err(|e| e.code),
            Err("caller_unknown")
        );
        let configured = Caller::of(Some(&v1_context(None)), &sent, Some(&header()));
        assert_eq!(
            configured.principal().map(Principal::as_str),
            Ok("arn:aws:iam::123456789012:user/test")
        );
    }

    #[test]
    fn an_identity_that_is_no_principal_may_do_nothing() {
        let caller = Caller::of(
            Some(&v1_context(Some("anonymous"))),
            &HeaderMap::new(),
            None,
        );
        assert_eq!(
            caller.principal().map_err(|e| e.code),
            Err("caller_not_permitted")
        );
    }
}
