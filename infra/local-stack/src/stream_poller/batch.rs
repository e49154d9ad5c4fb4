//! What the function receives and what its answer means: Lambda's DynamoDB stream event
//! (`{"Records": [...]}`) and its rule for `ReportBatchItemFailures`.

use serde_json::{json, Value as Json};

/// A stream record in the shape Lambda hands it to the function.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `dynamodb.SequenceNumber`: what a batch item failure names.
    pub sequence: String,
    /// The record as the function receives it.
    pub json: Json,
}

impl Record {
    /// The record GetRecords returned, as Lambda passes it on: with `eventSourceARN` (the
    /// stream), `eventSource`, `awsRegion` (the stream's) and `eventVersion` `1.1`, and
    /// `ApproximateCreationDateTime` in whole seconds. moto's records say `eventVersion`
    /// `1.0`, `awsRegion` `us-east-1` whatever the region, and give milliseconds; AWS's say
    /// `1.1` and the table's region, and round the time down to the second.
    /// Everything else (`eventID`, `eventName`, `Keys`, the images, `SequenceNumber`,
    /// `SizeBytes`, `StreamViewType`, a TTL deletion's `userIdentity`) passes unchanged.
    pub fn from_stream(record: Json, stream_arn: &str) -> Result<Record, String> {
        let Json::Object(mut fields) = record else {
            return Err(format!("a stream record is an object, not {record}"));
        };
        let change = fields
            .get_mut("dynamodb")
            .and_then(Json::as_object_mut)
            .ok_or("a stream record without its dynamodb change")?;
        let sequence = change
            .get("SequenceNumber")
            .and_then(Json::as_str)
            .ok_or("a stream record without a SequenceNumber")?
            .to_owned();
        if let Some(created) = change.get("ApproximateCreationDateTime") {
            let seconds = created.as_f64().ok_or_else(|| {
                format!("ApproximateCreationDateTime {created} is not epoch seconds")
            })?;
            change.insert(
                "ApproximateCreationDateTime".into(),
                json!(seconds.floor() as i64),
            );
        }
        let region = stream_arn.split(':').nth(3).unwrap_or_default();
        fields.insert("eventVersion".into(), json!("1.1"));
        fields.insert("eventSource".into(), json!("aws:dynamodb"));
        fields.insert("awsRegion".into(), json!(region));
        fields.insert("eventSourceARN".into(), json!(stream_arn));
        Ok(Record {
            sequence,
            json: Json::Object(fields),
        })
    }
}

/// The event one invocation receives: the batch's records, in stream order.
pub fn event<'a>(batch: impl IntoIterator<Item = &'a Record>) -> Json {
    let records: Vec<&Json> = batch.into_iter().map(|record| &record.json).collect();
    json!({ "Records": records })
}

/// What an invocation that answered did to its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record is done.
    Delivered,
    /// The records before `index` are done; the batch is retried from the record at
    /// `index` (0: the whole batch).
    RetryFrom { index: usize, reason: String },
}

/// Lambda's rule for a function's answer to a batch of `batch`.
///
/// Without `ReportBatchItemFailures` any answer is a success. With it, an answer
/// without failures (no `batchItemFailures`, `null`, `[]`, not a JSON object) is a
/// success; failures that all name records of the batch retry from the earliest of them
/// in the stream, records before it done; a failure that names no record of the batch
/// (its `itemIdentifier` missing, null, empty, or another record's) fails the whole batch.
pub fn outcome(batch: &[Record], answer: &[u8], report_batch_item_failures: bool) -> Outcome {
    if !report_batch_item_failures {
        return Outcome::Delivered;
    }
    let answer: Json = serde_json::from_slice(answer).unwrap_or(Json::Null);
    let failures = match answer.get("batchItemFailures") {
        None | Some(Json::Null) => return Outcome::Delivered,
        Some(Json::Array(failures)) if failures.is_empty() => return Outcome::Delivered,
        Some(Json::Array(failures)) => failures,
        Some(other) => {
            return Outcome::RetryFrom {
                index: 0,
                reason: format!("batchItemFailures is not a list: {other}"),
            }
        }
    };
    let mut earliest = usize::MAX;
    for failure in failures {
        let named = failure.get("itemIdentifier").and_then(Json::as_str);
        let position = named.and_then(|id| batch.iter().position(|r| r.sequence == id));
        let Some(position) = position else {
            return Outcome::RetryFrom {
                index: 0,
                reason: format!("the batch item failure {failure} names no record of the batch"),
            };
        };
        earliest = earliest.min(position);
    }
    Outcome::RetryFrom {
        index: earliest,
        reason: format!(
            "the function reported {} failed record(s), the earliest {}",
            failures.len(),
            batch[earliest].sequence
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str =
        "arn:aws:dynamodb:eu-west-1:123456789012:table/OrdersTable/stream/2026-12-07T16:25:29.153233";

    /// A record as moto's GetRecords returns it.
    fn from_moto(sequence: &str, sk: &str) -> Json {
        json!({
            "eventID": "ce341d52a43a4ca9bb0f1eff0e1862b7",
            "eventName": "INSERT",
            "eventVersion": "1.0",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1796660729.176,
                "Keys": {"pk": {"S": "ORDER#o-1"}, "sk": {"S": sk}},
                "NewImage": {"pk": {"S": "ORDER#o-1"}, "sk": {"S": sk}, "n": {"N": "1.50"}},
                "SequenceNumber": sequence,
                "SizeBytes": 271,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn batch(sequences: &[&str]) -> Vec<Record> {
        sequences
            .iter()
            .map(|sequence| Record::from_stream(from_moto(sequence, "EVENT#1"), STREAM))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn the_event_deserialises_as_lambdas_dynamodb_event_with_the_streams_region_and_arn() {
        let records = batch(&["1100000000017454423009", "1100000000017454423010"]);
        let event = event(&records);
        let parsed: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(event.clone()).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed.records.len(), 2);
        let first = &parsed.records[0];
        assert_eq!(first.event_name, "INSERT");
        assert_eq!(first.event_version.as_deref(), Some("1.1"));
        assert_eq!(first.event_source.as_deref(), Some("aws:dynamodb"));
        assert_eq!(first.aws_region, "eu-west-1");
        assert_eq!(first.event_source_arn.as_deref(), Some(STREAM));
        let change = &first.change;
        assert_eq!(
            change.sequence_number.as_deref(),
            Some("1100000000017454423009")
        );
        assert_eq!(
            change.approximate_creation_date_time.timestamp(),
            1796660729
        );
        assert_eq!(change.size_bytes, 271);
        assert_eq!(
            change.stream_view_type,
            Some(aws_lambda_events::event::dynamodb::StreamViewType::NewImage)
        );
        assert!(change.keys.get("sk").is_some() && change.new_image.get("n").is_some());
        // Whole seconds, as Lambda's events carry them.
        let created = &event["Records"][0]["dynamodb"]["ApproximateCreationDateTime"];
        assert_eq!(created, &json!(1796660729));
    }

    #[test]
    fn a_record_without_a_sequence_number_is_refused() {
        let mut record = from_moto("1", "EVENT#1");
        record["dynamodb"]
            .as_object_mut()
            .map(|change| change.remove("SequenceNumber"));
        assert!(Record::from_stream(record, STREAM).is_err());
    }

    #[test]
    fn a_batch_item_failure_retries_from_the_earliest_failed_record_and_the_ones_before_are_done() {
        let records = batch(&["11", "12", "13", "14"]);
        let answer =
            br#"{"batchItemFailures": [{"itemIdentifier": "14"}, {"itemIdentifier": "12"}]}"#;
        let outcome = outcome(&records, answer, true);
        assert!(
            matches!(outcome, Outcome::RetryFrom { index: 1, .. }),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_answer_without_failures_delivers_the_whole_batch() {
        let records = batch(&["11", "12"]);
        for answer in [
            &br#"{"batchItemFailures": []}"#[..],
            br#"{"batchItemFailures": null}"#,
            b"{}",
            b"null",
            b"",
        ] {
            assert_eq!(
                outcome(&records, answer, true),
                Outcome::Delivered,
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_failure_that_names_no_record_of_the_batch_fails_the_whole_batch() {
        let records = batch(&["11", "12"]);
        for answer in [
            &br#"{"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "99"}]}"#[..],
            br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            br#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            br#"{"batchItemFailures": [{"id": "12"}]}"#,
            br#"{"batchItemFailures": "12"}"#,
        ] {
            let outcome = outcome(&records, answer, true);
            assert!(
                matches!(outcome, Outcome::RetryFrom { index: 0, .. }),
                "{answer:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn without_report_batch_item_failures_a_failure_answer_is_a_success() {
        let records = batch(&["11", "12"]);
        let answer = br#"{"batchItemFailures": [{"itemIdentifier": "11"}]}"#;
        assert_eq!(outcome(&records, answer, false), Outcome::Delivered);
    }
}
