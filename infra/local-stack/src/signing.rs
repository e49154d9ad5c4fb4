//! SigV4 for requests to the orders API. On AWS (and on MiniStack's API Gateway) the
//! `/orders` routes require IAM authorization: a request must be signed for the service
//! `execute-api`. Tests, the demo and the chaos run sign every request to the API, as an
//! internal caller on AWS does with its role's credentials: on MiniStack as the IAM user
//! the stack creates for it (`ORDERS_API_ACCESS_KEY_ID` / `ORDERS_API_SECRET_ACCESS_KEY`
//! in stack.env, allowed only execute-api:Invoke; MiniStack verifies its signatures),
//! elsewhere with the stack's credentials (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
//! Function URLs of the moto stack ignore the signature, so one client works on both.
//! The local stream poller signs its DynamoDB Streams and Lambda requests the same way
//! ([`Signer::sign_for`]).

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The service name API Gateway's IAM authorization checks signatures for.
pub const EXECUTE_API: &str = "execute-api";

/// A request could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request to {url}: {reason}")]
pub struct SigningError {
    pub url: String,
    pub reason: String,
}

/// Who signs, and for which region.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: Credentials,
    region: String,
}

impl Signer {
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str) -> Signer {
        Signer {
            credentials: Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "local-stack",
            ),
            region: region.to_owned(),
        }
    }

    /// From the process environment (see [`Signer::from_settings`]).
    pub fn from_env() -> Signer {
        Signer::from_settings(|name| std::env::var(name).ok())
    }

    /// From stack settings: the API caller's key (`ORDERS_API_ACCESS_KEY_ID`,
    /// `ORDERS_API_SECRET_ACCESS_KEY`) when the stack has one, else `AWS_ACCESS_KEY_ID`
    /// and `AWS_SECRET_ACCESS_KEY` (`test`/`test` when unset); `AWS_REGION`.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Signer {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let (key, secret) = match (
            get("ORDERS_API_ACCESS_KEY_ID"),
            get("ORDERS_API_SECRET_ACCESS_KEY"),
        ) {
            (Some(key), Some(secret)) => (key, secret),
            _ => (
                get("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
                get("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".to_owned()),
            ),
        };
        let region = get("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned());
        Signer::new(&key, &secret, &region)
    }

    /// Adds the SigV4 headers (`authorization`, `x-amz-date`, and the content hash) for
    /// `execute-api` to `request`, signing its method, URL, headers and body as they are.
    pub fn sign(&self, request: &mut reqwest::Request) -> Result<(), SigningError> {
        self.sign_for(EXECUTE_API, request)
    }

    /// The same for another service's signing name (`dynamodb`, `lambda`).
    pub fn sign_for(
        &self,
        service: &str,
        request: &mut reqwest::Request,
    ) -> Result<(), SigningError> {
        let url = request.url().to_string();
        let error = |reason: String| SigningError {
            url: url.clone(),
            reason,
        };
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| error(e.to_string()))?
            .into();
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default()
            .to_vec();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_owned(), v.to_owned()))
            })
            .collect();
        let method = request.method().as_str().to_owned();
        let signable = SignableRequest::new(
            &method,
            url.as_str(),
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| error(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| error(e.to_string()))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| error(e.to_string()))?;
            let value =
                reqwest::header::HeaderValue::from_str(value).map_err(|e| error(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_carries_a_sigv4_authorization_for_execute_api() -> Result<(), SigningError>
    {
        let client = reqwest::Client::new();
        let mut request = client
            .post("http://127.0.0.1:4566/_aws/execute-api/abc/v1/orders")
            .header("content-type", "application/json")
            .body("{}")
            .build()
            .map_err(|e| SigningError {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Signer::new("AKID", "secret", "eu-west-1").sign(&mut request)?;
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
                && authorization.contains("/eu-west-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
        Ok(())
    }
}
