//! A typed client of the admin API (see [`crate::admin`]), for the tests, the demo and the
//! chaos run. Requests and answers are the server's own wire types, so a field renamed on
//! one side is a compile error on the other, not a silent `null`.

use crate::admin::{
    AddRules, DeliverNow, DeliveryRequested, RuleList, RulesAdded, RulesRemoved, Seed,
};
use crate::faults::{Draws, RuleSpec};
use crate::ledger::{LedgerFilter, LedgerView};
use serde::de::DeserializeOwned;

/// Why an admin call did not give the answer it should.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what}: the simulator could not be reached: {source}")]
    Unreachable {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("{what}: answered {status}: {body}")]
    Refused {
        what: &'static str,
        status: u16,
        /// The start of the answer's body (its error code and message).
        body: String,
    },
    #[error("{what}: the answer is not what the admin API sends: {source}")]
    Unexpected {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// The partner simulator's admin API at `base` (`http://127.0.0.1:<port>`).
#[derive(Debug, Clone)]
pub struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    pub fn new(http: reqwest::Client, base: &str) -> Admin {
        Admin {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request and reads the answer as `T`, if its status is `expected`.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
        expected: u16,
    ) -> Result<T, ClientError> {
        let unreachable = |source| ClientError::Unreachable { what, source };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        if status != expected {
            return Err(ClientError::Refused {
                what,
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Unexpected { what, source })
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<(), ClientError> {
        let request = self.http.get(self.url("/health"));
        self.call::<serde_json::Value>("GET /health", request, 200)
            .await
            .map(|_| ())
    }

    /// `PUT /admin/seed`: the seed of every later fault decision, and what it hashes.
    pub async fn set_seed(&self, seed: u64, draws: Draws) -> Result<Seed, ClientError> {
        let request = self
            .http
            .put(self.url("/admin/seed"))
            .json(&Seed { seed, draws });
        self.call("PUT /admin/seed", request, 200).await
    }

    /// `POST /admin/faults`: adds the rules (all or, if one is invalid, none); their ids.
    pub async fn add_faults(&self, rules: &[RuleSpec]) -> Result<Vec<u64>, ClientError> {
        let request = self.http.post(self.url("/admin/faults")).json(&AddRules {
            rules: rules.to_vec(),
        });
        let added: RulesAdded = self.call("POST /admin/faults", request, 201).await?;
        Ok(added.ids)
    }

    /// `GET /admin/faults`: the seed and the rules in force, with `fired` and `expired`.
    pub async fn faults(&self) -> Result<RuleList, ClientError> {
        let request = self.http.get(self.url("/admin/faults"));
        self.call("GET /admin/faults", request, 200).await
    }

    /// `DELETE /admin/faults`: removes every rule; how many there were.
    pub async fn clear_faults(&self) -> Result<u64, ClientError> {
        let request = self.http.delete(self.url("/admin/faults"));
        let removed: RulesRemoved = self.call("DELETE /admin/faults", request, 200).await?;
        Ok(removed.removed)
    }

    /// `POST /admin/deliveries`: delivers the order's parcel now (also one held back).
    pub async fn deliver(&self, order_id: &str) -> Result<DeliveryRequested, ClientError> {
        let request = self
            .http
            .post(self.url("/admin/deliveries"))
            .json(&DeliverNow {
                order_id: order_id.to_owned(),
            });
        self.call("POST /admin/deliveries", request, 202).await
    }

    /// `GET /admin/ledger`, narrowed by `filter`.
    pub async fn ledger(&self, filter: &LedgerFilter) -> Result<LedgerView, ClientError> {
        let request = self.http.get(self.url("/admin/ledger")).query(filter);
        self.call("GET /admin/ledger", request, 200).await
    }

    /// The ledger of one order.
    pub async fn order_ledger(&self, order_id: &str) -> Result<LedgerView, ClientError> {
        self.ledger(&LedgerFilter {
            order_id: Some(order_id.to_owned()),
            merchant_id: None,
        })
        .await
    }
}
