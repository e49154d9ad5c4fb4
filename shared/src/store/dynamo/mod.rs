//! The ledger in DynamoDB: the order table, reached with the AWS SDK.
//!
//! New orders and idempotency keys are created only if absent, together, in one
//! transaction; every status change is conditional on the expected previous status and
//! bumps `version`. A lost race is a [`StoreError::Conflict`], never a panic.

mod audit;
mod by_status;
mod callers;
mod idempotency;
mod lookups;
mod orders;
mod progress;
mod queries;
mod retention;
mod steps;

pub use progress::order_with_steps;

use super::keys::{order_pk, step_sk};
use super::{
    Cancellation, Delivery, DeliveryRecorded, IndexPosition, Ledger, OrderRecord, Placement,
    Reference, References, StepRecord, StepStart, StoreError, TaskToken, TokenStored, Transition,
};
use crate::order::{Order, OrderId};
use crate::status::OrderStatus;
use crate::ActivityError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;

type Item = HashMap<String, AttributeValue>;

/// The order table.
#[derive(Debug, Clone)]
pub struct OrderStore {
    client: Client,
    table: String,
}

impl OrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        OrderStore {
            client,
            table: table.into(),
        }
    }

    /// The store for `table`, with a client from the standard AWS configuration that also
    /// retries transactions DynamoDB cancelled for throughput ([`ThrottledTransactions`]).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let client = aws_sdk_dynamodb::config::Builder::from(config)
            .retry_classifier(ThrottledTransactions)
            .build();
        OrderStore::new(Client::from_conf(client), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One item, read consistently; `None` when it is not there.
    pub(super) async fn get_item(
        &self,
        key: Item,
        operation: &'static str,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(operation, e))?;
        Ok(output.item)
    }
}

/// The SDK retries throttling errors by itself, but not a `TransactWriteItems` that
/// DynamoDB cancelled for throughput: that comes back as `TransactionCanceledException`,
/// a cancellation the SDK takes for final. When no item of it was refused for its
/// condition or its contents, and at least one was throttled (`ThrottlingError`,
/// `ProvisionedThroughputExceeded`) or met a concurrent transaction
/// (`TransactionConflict`), it is throttling: retried with the SDK's backoff, and if it
/// outlasts the retries it is `Store.Unavailable`, never a conflict
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThrottledTransactions;

impl ThrottledTransactions {
    /// Whether a cancellation with these reasons (one per item, `None` or `"None"` for an
    /// item that was not the cause) is throughput trouble and worth trying again.
    pub fn retryable(codes: &[Option<String>]) -> bool {
        let mut throttled = false;
        for code in codes.iter().flatten() {
            match code.as_str() {
                "ThrottlingError" | "ProvisionedThroughputExceeded" | "TransactionConflict" => {
                    throttled = true;
                }
                "None" => {}
                _ => return false,
            }
        }
        throttled
    }
}

impl aws_sdk_dynamodb::config::retry::ClassifyRetry for ThrottledTransactions {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_dynamodb::config::interceptors::InterceptorContext,
    ) -> aws_sdk_dynamodb::config::retry::RetryAction {
        use aws_sdk_dynamodb::config::retry::RetryAction;
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let cancelled = error
            .as_operation_error()
            .and_then(|e| e.downcast_ref::<TransactWriteItemsError>());
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = cancelled
        else {
            return RetryAction::NoActionIndicated;
        };
        let codes: Vec<Option<String>> = (cancelled.cancellation_reasons().iter())
            .map(|reason| reason.code().map(str::to_owned))
            .collect();
        if ThrottledTransactions::retryable(&codes) {
            RetryAction::throttling_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "ThrottledTransactions"
    }
}

/// The Put of `event`'s outbox item into its order's partition, for the transaction of
/// the change it announces, `stamped` with the time the transaction records the change
/// when given (a status change's event). Unconditional: a change is written once.
pub(super) fn outbox_put(
    table: &str,
    event: &crate::events::OrderEvent,
    stamped: Option<&str>,
    operation: &'static str,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let record = match stamped {
        Some(at) => event.clone().stamped(at).to_outbox(),
        None => event.to_outbox(),
    };
    let id = OrderId::parse(&record.order_id).ok_or_else(|| StoreError::Corrupt {
        key: record.event_id.clone(),
        message: format!("the event names no order id: {:?}", record.order_id),
    })?;
    let mut item = write(&record, "outbox item")?;
    item.extend(key(
        order_pk(&id),
        &super::keys::outbox_sk(&record.event_id),
    ));
    let expires_at = chrono::Utc::now().timestamp() + super::keys::OUTBOX_TTL_SECONDS;
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires_at.to_string()),
    );
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| build_error(operation, e))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .put(put)
        .build())
}

pub(super) fn unavailable<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable {
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

pub(super) fn build_error(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        operation,
        message: format!("request could not be built: {error}"),
    }
}

/// A transaction's Put of `item` that only creates: the transaction is cancelled
/// (`ConditionalCheckFailed` for this item) when its key exists already.
pub(super) fn put_new(
    table: &str,
    item: Item,
    operation: &'static str,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| build_error(operation, e))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .put(put)
        .build())
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn order_key(id: &OrderId) -> Item {
    key(order_pk(id), "ORDER")
}

pub(super) fn step_key(id: &OrderId, step: &str) -> Item {
    key(order_pk(id), &step_sk(step))
}

pub(super) fn read<T: serde::de::DeserializeOwned>(
    item: Item,
    what: &str,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn write<T: Serialize>(value: &T, what: &str) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        message: e.to_string(),
    })
}

/// Why each item of a cancelled transaction was refused, in the order of the items.
pub(super) fn cancellation_codes<R>(
    error: &SdkError<TransactWriteItemsError, R>,
) -> Vec<Option<String>> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The item as an UpdateItem whose condition failed found it, when the request asked for
/// it (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) and the item exists.
pub(super) fn item_found<R>(error: &SdkError<UpdateItemError, R>) -> Option<Item> {
    match error.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
        _ => None,
    }
}

pub(super) fn is_conditional_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// The ledger operations are [`OrderStore`]'s own methods (callers with the concrete store
/// need no trait in scope); generic code reaches them through [`Ledger`].
impl Ledger for OrderStore {
    fn place_order(
        &self,
        caller: &crate::callers::Principal,
        idempotency_key: &str,
        order: &Order,
        request_hash: &str,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send {
        OrderStore::place_order(self, caller, idempotency_key, order, request_hash)
    }

    fn get_order(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send {
        OrderStore::get_order(self, id)
    }

    fn get_order_with_steps(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<(OrderRecord, Vec<StepRecord>)>, StoreError>> + Send
    {
        OrderStore::get_order_with_steps(self, id)
    }

    fn orders_in_status(
        &self,
        status: OrderStatus,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        OrderStore::orders_in_status(self, status, before, limit)
    }

    fn orders_in_status_after(
        &self,
        status: OrderStatus,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        OrderStore::orders_in_status_after(self, status, after, before, limit)
    }

    fn reconcile_cursor(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<IndexPosition>, StoreError>> + Send {
        OrderStore::reconcile_cursor(self, name)
    }

    fn set_reconcile_cursor(
        &self,
        name: &str,
        position: Option<&IndexPosition>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::set_reconcile_cursor(self, name, position)
    }

    fn orders_of_merchant(
        &self,
        merchant_id: &str,
        since: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        OrderStore::orders_of_merchant(self, merchant_id, since, limit)
    }

    fn transition(
        &self,
        id: &OrderId,
        change: Transition<'_>,
    ) -> impl Future<Output = Result<OrderRecord, StoreError>> + Send {
        OrderStore::transition(self, id, change)
    }

    fn cancel(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Cancellation, StoreError>> + Send {
        OrderStore::cancel(self, id)
    }

    fn open_step(
        &self,
        id: &OrderId,
        step: &str,
    ) -> impl Future<Output = Result<(OrderRecord, StepStart), StoreError>> + Send {
        OrderStore::open_step(self, id, step)
    }

    fn succeed_step(
        &self,
        attempt: &StepRecord,
        references: References,
        transition: Option<Transition<'_>>,
    ) -> impl Future<Output = Result<StepRecord, StoreError>> + Send {
        OrderStore::succeed_step(self, attempt, references, transition)
    }

    fn fail_step(
        &self,
        attempt: &StepRecord,
        error: &ActivityError,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::fail_step(self, attempt, error)
    }

    fn store_task_token(
        &self,
        id: &OrderId,
        token: &TaskToken<'_>,
    ) -> impl Future<Output = Result<TokenStored, StoreError>> + Send {
        OrderStore::store_task_token(self, id, token)
    }

    fn record_delivery(
        &self,
        id: &OrderId,
        delivery: &Delivery,
        event: &crate::events::OrderEvent,
    ) -> impl Future<Output = Result<DeliveryRecorded, StoreError>> + Send {
        OrderStore::record_delivery(self, id, delivery, event)
    }

    fn park(
        &self,
        read: &OrderRecord,
        reason: &str,
        event: &crate::events::OrderEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::park(self, read, reason, event)
    }

    fn dead_letter_sent(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::dead_letter_sent(self, id)
    }

    fn outbox(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Vec<crate::events::OrderEvent>, StoreError>> + Send {
        OrderStore::outbox(self, id)
    }

    fn claim_execution(
        &self,
        id: &OrderId,
        claim: &super::Claim<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        OrderStore::claim_execution(self, id, claim)
    }

    fn find_by_reference(
        &self,
        reference: Reference,
        value: &str,
    ) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send {
        OrderStore::find_by_reference(self, reference, value)
    }

    fn count_in_status(
        &self,
        status: OrderStatus,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        OrderStore::count_in_status(self, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn codes(codes: &[&str]) -> Vec<Option<String>> {
        codes.iter().map(|c| Some((*c).to_owned())).collect()
    }

    #[test]
    fn a_transaction_cancelled_only_for_throughput_is_worth_retrying() {
        assert!(ThrottledTransactions::retryable(&codes(&[
            "ThrottlingError",
            "None"
        ])));
        assert!(ThrottledTransactions::retryable(&codes(&[
            "ProvisionedThroughputExceeded",
            "ProvisionedThroughputExceeded"
        ])));
        assert!(ThrottledTransactions::retryable(&codes(&[
            "None",
            "TransactionConflict"
        ])));
    }

    #[test]
    fn a_transaction_refused_for_its_condition_is_never_retried_as_throttling() {
        assert!(!ThrottledTransactions::retryable(&codes(&[
            "ConditionalCheckFailed",
            "ThrottlingError"
        ])));
        assert!(!ThrottledTransactions::retryable(&codes(&[
            "ValidationError"
        ])));
        assert!(!ThrottledTransactions::retryable(&codes(&["None", "None"])));
        assert!(!ThrottledTransactions::retryable(&[]));
    }

    /// A DynamoDB endpoint on 127.0.0.1 that cancels the first `throttled` requests the
    /// way AWS cancels a throttled transaction, then accepts; it counts the requests.
    async fn dynamodb_that_throttles(throttled: usize) -> (String, Arc<AtomicUsize>) {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot listen on 127.0.0.1: {error}"),
        };
        let url = match listener.local_addr() {
            Ok(address) => format!("http://{address}"),
            Err(error) => panic!("{error}"),
        };
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let mut request = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut request).await;
                let (status, body) = if n < throttled {
                    (
                        "400 Bad Request",
                        r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError, None]","CancellationReasons":[{"Code":"ThrottlingError","Message":"Throughput exceeds the current capacity of your table or index."},{"Code":"None"}]}"#,
                    )
                } else {
                    ("200 OK", "{}")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: r{n}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    async fn store_at(url: &str) -> OrderStore {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::config::https_client())
            .retry_config(crate::config::retry_config())
            .endpoint_url(url)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        OrderStore::from_config(&config, "orders")
    }

    #[tokio::test]
    async fn a_throttled_transaction_is_retried_by_the_client_until_it_goes_through() {
        let (url, seen) = dynamodb_that_throttles(2).await;
        let store = store_at(&url).await;
        let placed = store
            .place_order(
                &crate::store::contract::caller(),
                "key-1",
                &crate::store::contract::new_order(),
                "hash",
            )
            .await;
        assert!(placed.is_ok(), "{placed:?}");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            3,
            "two cancelled, the third accepted"
        );
    }

    #[tokio::test]
    async fn a_transaction_throttled_past_the_retries_is_unavailable_not_a_conflict() {
        let (url, seen) = dynamodb_that_throttles(usize::MAX).await;
        let store = store_at(&url).await;
        let placed = store
            .place_order(
                &crate::store::contract::caller(),
                "key-1",
                &crate::store::contract::new_order(),
                "hash",
            )
            .await;
        assert!(
            matches!(placed, Err(StoreError::Unavailable { .. })),
            "{placed:?}"
        );
        assert_eq!(
            seen.load(Ordering::SeqCst),
            5,
            "every attempt the retry config allows"
        );
    }
}
