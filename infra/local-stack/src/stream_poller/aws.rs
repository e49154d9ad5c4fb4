//! The stream poller's AWS calls, as plain signed requests: DynamoDB's DescribeTable and
//! DynamoDB Streams' DescribeStream, GetShardIterator and GetRecords (JSON 1.0, signed
//! for `dynamodb`, as the SDKs sign both), and Lambda's Invoke (signed for `lambda`).
//! Plain JSON keeps each record exactly as the stream gave it, which is the JSON the
//! function receives; an SDK would parse it into types that have to be turned back.

use crate::signing::Signer;
use serde_json::{json, Value as Json};
use std::time::Duration;

/// How long a DynamoDB or DynamoDB Streams request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than the function's timeout an invocation may take before it is given
/// up as timed out (the local Lambda sandbox answers at the timeout itself).
const INVOKE_GRACE: Duration = Duration::from_secs(5);

/// Where each service is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub dynamodb: String,
    pub streams: String,
    pub lambda: String,
}

impl Endpoints {
    /// Each service's endpoint as the AWS SDKs find it: `AWS_ENDPOINT_URL_DYNAMODB`,
    /// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` or `AWS_ENDPOINT_URL_LAMBDA`, else
    /// `AWS_ENDPOINT_URL`. The poller stands in for Lambda on an emulator only: with
    /// neither it refuses to start.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Endpoints, String> {
        let get = |name: &str| get(name).filter(|value| !value.is_empty());
        let shared = get("AWS_ENDPOINT_URL");
        let endpoint = |service: &str| {
            let variable = format!("AWS_ENDPOINT_URL_{service}");
            let url = get(&variable).or_else(|| shared.clone()).ok_or_else(|| {
                format!("neither {variable} nor AWS_ENDPOINT_URL is set: the stream poller serves an emulator only")
            })?;
            Ok::<_, String>(url.trim_end_matches('/').to_owned())
        };
        Ok(Endpoints {
            dynamodb: endpoint("DYNAMODB")?,
            streams: endpoint("DYNAMODB_STREAMS")?,
            lambda: endpoint("LAMBDA")?,
        })
    }
}

/// A DynamoDB or DynamoDB Streams request failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation}: {reason}")]
    Unreachable {
        operation: &'static str,
        reason: String,
    },
    #[error("{operation}: {status} {kind}: {message}")]
    Refused {
        operation: &'static str,
        status: u16,
        /// The error's name (`ExpiredIteratorException`).
        kind: String,
        message: String,
    },
}

impl AwsError {
    /// Whether AWS answered with the error `kind` (`ExpiredIteratorException`).
    pub fn is(&self, kind: &str) -> bool {
        matches!(self, AwsError::Refused { kind: k, .. } if k == kind)
    }
}

/// A shard of a stream, with the shard it was split from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parent: Option<String>,
}

/// What one GetRecords returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records, in stream order, as the stream gave them.
    pub records: Vec<Json>,
    /// Where to read on; `None` when the shard is closed and read to its end.
    pub next: Option<String>,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function returned; its answer.
    Answered(Vec<u8>),
    /// The function failed (`X-Amz-Function-Error`): its error type, or the runtime's
    /// (`Sandbox.Timedout`, `Runtime.ExitError`).
    FunctionError(String),
    /// The function did not answer within its timeout (and the grace).
    TimedOut,
    /// Lambda refused the invocation for the function's concurrency (429).
    Throttled,
    /// Lambda itself failed or could not be reached.
    ServiceError(String),
}

/// The clients, signed with the stack's credentials.
#[derive(Debug, Clone)]
pub struct Aws {
    http: reqwest::Client,
    endpoints: Endpoints,
    signer: Signer,
}

impl Aws {
    pub fn new(endpoints: Endpoints, signer: Signer) -> Result<Aws, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Aws {
            http,
            endpoints,
            signer,
        })
    }

    /// The ARN of `table`'s current stream (DescribeTable's `LatestStreamArn`).
    pub async fn latest_stream_arn(&self, table: &str) -> Result<String, AwsError> {
        let operation = "DescribeTable";
        let target = "DynamoDB_20120810.DescribeTable";
        let endpoint = &self.endpoints.dynamodb;
        let answer = self
            .call(endpoint, operation, target, json!({"TableName": table}))
            .await?;
        let described = &answer["Table"];
        match described["LatestStreamArn"].as_str() {
            Some(arn) if described["StreamSpecification"]["StreamEnabled"] == json!(true) => {
                Ok(arn.to_owned())
            }
            _ => Err(AwsError::Refused {
                operation,
                status: 200,
                kind: "NoStream".into(),
                message: format!("the table {table} has no stream enabled"),
            }),
        }
    }

    /// Every shard of the stream (DescribeStream, page by page).
    pub async fn shards(&self, stream_arn: &str) -> Result<Vec<Shard>, AwsError> {
        let mut shards = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = json!({"StreamArn": stream_arn});
            if let Some(last) = &after {
                request["ExclusiveStartShardId"] = json!(last);
            }
            let target = "DynamoDBStreams_20120810.DescribeStream";
            let answer = self
                .call(&self.endpoints.streams, "DescribeStream", target, request)
                .await?;
            let description = &answer["StreamDescription"];
            for shard in description["Shards"].as_array().into_iter().flatten() {
                if let Some(id) = shard["ShardId"].as_str() {
                    shards.push(Shard {
                        id: id.to_owned(),
                        parent: shard["ParentShardId"].as_str().map(str::to_owned),
                    });
                }
            }
            match description["LastEvaluatedShardId"].as_str() {
                Some(last) if after.as_deref() != Some(last) => after = Some(last.to_owned()),
                _ => return Ok(shards),
            }
        }
    }

    /// An iterator of the shard: `kind` is `TRIM_HORIZON`, `LATEST`, or
    /// `AFTER_SEQUENCE_NUMBER` with `sequence`.
    pub async fn shard_iterator(
        &self,
        stream_arn: &str,
        shard: &str,
        kind: &str,
        sequence: Option<&str>,
    ) -> Result<String, AwsError> {
        let mut request =
            json!({"StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": kind});
        if let Some(sequence) = sequence {
            request["SequenceNumber"] = json!(sequence);
        }
        let target = "DynamoDBStreams_20120810.GetShardIterator";
        let operation = "GetShardIterator";
        let answer = self
            .call(&self.endpoints.streams, operation, target, request)
            .await?;
        answer["ShardIterator"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Refused {
                operation,
                status: 200,
                kind: "NoIterator".into(),
                message: format!("no ShardIterator in {answer}"),
            })
    }

    /// Up to 1,000 records from `iterator` on (GetRecords' most).
    pub async fn records(&self, iterator: &str) -> Result<Page, AwsError> {
        let target = "DynamoDBStreams_20120810.GetRecords";
        let request = json!({"ShardIterator": iterator, "Limit": 1000});
        let answer = self
            .call(&self.endpoints.streams, "GetRecords", target, request)
            .await?;
        Ok(Page {
            records: answer["Records"].as_array().cloned().unwrap_or_default(),
            next: answer["NextShardIterator"].as_str().map(str::to_owned),
        })
    }

    /// Invokes `function` synchronously with `payload`, as Lambda's event source mapping
    /// does, giving it `timeout` (its own) and a little more to answer.
    pub async fn invoke(&self, function: &str, payload: &Json, timeout: Duration) -> Invoked {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoints.lambda
        );
        let request = self
            .http
            .post(url)
            .timeout(timeout + INVOKE_GRACE)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(payload.to_string())
            .build();
        let mut request = match request {
            Ok(request) => request,
            Err(error) => return Invoked::ServiceError(error.to_string()),
        };
        if let Err(error) = self.signer.sign_for("lambda", &mut request) {
            return Invoked::ServiceError(error.to_string());
        }
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return Invoked::TimedOut,
            Err(error) => return Invoked::ServiceError(error.to_string()),
        };
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(error) if error.is_timeout() => return Invoked::TimedOut,
            Err(error) => return Invoked::ServiceError(error.to_string()),
        };
        match (status.as_u16(), function_error) {
            (200, Some(_)) => {
                let answer: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
                let error_type = answer["errorType"].as_str().unwrap_or("Unhandled");
                Invoked::FunctionError(error_type.to_owned())
            }
            (200..=299, None) => Invoked::Answered(body),
            (429, _) => Invoked::Throttled,
            (status, _) => {
                Invoked::ServiceError(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        }
    }

    /// One request of DynamoDB's JSON protocol (DynamoDB Streams' too).
    async fn call(
        &self,
        endpoint: &str,
        operation: &'static str,
        target: &str,
        body: Json,
    ) -> Result<Json, AwsError> {
        let unreachable = |reason: String| AwsError::Unreachable { operation, reason };
        let mut request = self
            .http
            .post(format!("{endpoint}/"))
            .timeout(REQUEST_TIMEOUT)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .body(body.to_string())
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        self.signer
            .sign_for("dynamodb", &mut request)
            .map_err(|e| unreachable(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let answer: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        if (200..300).contains(&status) && answer.is_object() {
            return Ok(answer);
        }
        // `com.amazonaws.dynamodb.v20120810#ExpiredIteratorException`: the name after `#`.
        let kind = answer["__type"].as_str().unwrap_or("Unknown");
        let kind = kind.rsplit('#').next().unwrap_or(kind).to_owned();
        let message = answer["message"]
            .as_str()
            .or(answer["Message"].as_str())
            .map_or_else(|| text.chars().take(300).collect(), str::to_owned);
        Err(AwsError::Refused {
            operation,
            status,
            kind,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_services_own_endpoint_variable_wins_over_the_shared_one() {
        let settings = HashMap::from([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4599/"),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9000"),
        ]);
        let endpoints =
            Endpoints::from_settings(|name| settings.get(name).map(|v| (*v).to_owned()));
        assert_eq!(
            endpoints,
            Ok(Endpoints {
                dynamodb: "http://127.0.0.1:4599".into(),
                streams: "http://127.0.0.1:4599".into(),
                lambda: "http://127.0.0.1:9000".into(),
            })
        );
    }

    #[test]
    fn without_an_endpoint_the_poller_refuses_to_start() {
        let endpoints = Endpoints::from_settings(|_| None);
        assert!(endpoints.is_err_and(|e| e.contains("AWS_ENDPOINT_URL_DYNAMODB")));
    }
}
