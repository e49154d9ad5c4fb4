//! The orders API, as the simulation drives it: a merchant places an order (sometimes
//! the same request twice under its key); the API stores it with its `Order Accepted`,
//! records the execution named after the order as its owner and starts it, in that
//! order, as `orders-api`'s `place` does (`recovery::start_placed`, an interleaved
//! action: the claim and the start can each fail, and the function can die between them). When one of these fails on our infrastructure the API
//! answers 503 and the merchant sends the same request again later under its key: the
//! replay finds what was done and goes on from there.

use super::actions::Done;
use super::{finish, Event, SimError, World};
use crate::world::lock;
use order_core::recovery::RecoveryError;
use order_core::store::{Ledger, OrderRecord, Placement, StoreError};
use order_core::{Order, OrderKind, OrderStatus};
use serde_json::{json, Value};

/// How often a merchant sends a request (an order, a cancel) that met a 503 before
/// giving up: with [`World::merchant_backoff`], for about eight minutes, longer than any
/// of our services' windows.
pub(super) const MERCHANT_TRIES: u32 = 12;

/// Within how long of its placement resumers race on a running order (simulated
/// milliseconds): its forward steps take about a minute, its wait for the courier up to
/// an hour.
const RACING_WHILE_RUNNING_MS: u64 = 600_000;

impl<'d> World<'d> {
    /// A merchant's first `POST /orders` of order `order`, its request drawn from the seed.
    pub(super) fn place(&mut self, order: usize) -> Result<(), SimError> {
        let kind = match self.shared.below(3) {
            0 => OrderKind::NewMerchant,
            1 => OrderKind::AdditionalDevices,
            _ => OrderKind::Replacement,
        };
        let mut request =
            order_core::order::example_request(&format!("m-sim-{}-{order}", self.options.seed));
        request["kind"] = Value::from(kind.as_str());
        if kind == OrderKind::Replacement {
            request["lines"] = json!([{"sku": "A920-PRO", "quantity": 2}]);
            request["replace_serials"] = json!(["SN-FAULTY-0001", "SN-FAULTY-0002"]);
        }
        let parsed = Order::parse(&request, &self.env.catalogue)
            .map_err(|problems| SimError::World(format!("example order: {problems}")))?;
        self.requests[order] = Some(parsed);
        self.submit(order, 0)
    }

    /// The merchant's try `tries` (0: the first) of order `order`'s request under its key.
    pub(super) fn submit(&mut self, order: usize, tries: u32) -> Result<(), SimError> {
        let parsed = self.requests[order]
            .clone()
            .ok_or_else(|| SimError::World(format!("order #{order} has no request")))?;
        let key = format!("sim-{}-{order}", self.options.seed);
        let hash = format!("hash-{order}");
        let placed = finish(
            self.env
                .ledger
                .place_order(&self.env.caller, &key, &parsed, &hash),
        )?;
        let first = self.ids[order].is_none();
        let record = match (placed, first) {
            (Ok(Placement::Created(record)), true) | (Ok(Placement::Replayed(record)), false) => {
                record
            }
            (Err(StoreError::Unavailable { .. }), _) => {
                return self.merchant_retries(order, tries, "503 store_unavailable");
            }
            (other, _) => {
                return Err(SimError::World(format!(
                    "placing order #{order} (try {tries}): {other:?}"
                )))
            }
        };
        let start_lost = match first {
            true => self.stored(order, &record, &key, &parsed, &hash)?,
            false => {
                self.note_order(
                    order,
                    format!("the merchant's try {tries}: the same order, replayed by its key"),
                );
                false
            }
        };
        self.accept(order, &record, start_lost, tries)?;
        if first && self.shared.chance(self.options.faults.resume_racing) {
            let delay = self.shared.below(30_000);
            let by = super::actions::Resumer::Latest;
            self.after(delay, Event::Resume { order, by });
        }
        if first && self.shared.chance(self.options.faults.racing_resumers) {
            // While the order runs: its forward steps, or its wait for the courier.
            let delay = self.shared.below(RACING_WHILE_RUNNING_MS);
            self.after(delay, Event::Race(order));
        }
        Ok(())
    }

    /// The order is stored for the first time: it gets its index, and the seed decides
    /// what will happen to it (a duplicate request, a lost start, a partner's refusal, a
    /// cancel). Returns whether its start is lost.
    fn stored(
        &mut self,
        order: usize,
        record: &OrderRecord,
        key: &str,
        parsed: &Order,
        hash: &str,
    ) -> Result<bool, SimError> {
        let id = record.order_id.clone();
        lock(&self.shared.index).insert(id.clone(), order);
        self.ids[order] = Some(id.clone());
        self.note_order(
            order,
            format!("placed: {} order {id}", parsed.kind.as_str()),
        );
        if self.shared.chance(self.options.faults.duplicate_post) {
            let again = finish(
                self.env
                    .ledger
                    .place_order(&self.env.caller, key, parsed, hash),
            )?;
            let answer = match &again {
                Ok(Placement::Replayed(r)) if r.order_id == id => "the same order",
                Err(StoreError::Unavailable { .. }) => "503 store_unavailable",
                _ => "ANOTHER ORDER",
            };
            self.note_order(
                order,
                format!("  the same request again under its key: {answer}"),
            );
            if answer == "ANOTHER ORDER" {
                self.shared
                    .violation_at(order, format!("a repeated key gave {again:?}"));
            }
        }
        let start_lost = self.shared.chance(self.options.faults.start_lost);
        if self.shared.chance(self.options.faults.refusal) {
            let forward = [
                "reserve",
                "charge",
                "deactivate",
                "return_label",
                "provision",
                "ship",
            ];
            let refused = forward[self.shared.below(forward.len() as u64) as usize];
            self.note_order(
                order,
                format!("  the seed has the partner refuse {refused}"),
            );
            lock(&self.shared.refusals).insert(id, refused);
            self.shared
                .count("order with a forward call refused for good");
        }
        if self.shared.chance(self.options.faults.cancel) {
            let delay = self.shared.below(3_000);
            self.after(delay, Event::Cancel { order, tries: 0 });
        }
        Ok(start_lost)
    }

    /// What the API does with a stored order: publishes `Order Accepted` (again for a
    /// replay), then, while the order is ACCEPTED without an execution, starts the one
    /// named after it and records its ARN. A `start_lost` start fails and the merchant
    /// does not try again (only the reconciler starts the order); any other failure is a
    /// 503 the merchant tries again after.
    fn accept(
        &mut self,
        order: usize,
        record: &OrderRecord,
        start_lost: bool,
        tries: u32,
    ) -> Result<(), SimError> {
        if record.status != OrderStatus::Accepted {
            return Ok(());
        }
        if start_lost {
            self.shared
                .count("the API stored the order but could not start its execution");
            self.note_order(
                order,
                "  StartExecution failed: the order is stored without an execution".into(),
            );
            return Ok(());
        }
        // The API's own start (`recovery::start_placed`), interleaved: the execution is
        // recorded as the order's owner (a claim, which DynamoDB may throttle), then
        // started (which Step Functions may throttle); the function may die between the
        // two, and the merchant then sends the request again.
        let (ledger, workflow) = (self.env.ledger.clone(), self.step_functions.clone());
        let record = record.clone();
        let retry = (tries + 1 < MERCHANT_TRIES).then(|| {
            let delay = self.merchant_backoff(tries);
            let tries = tries + 1;
            (delay, Event::Submit { order, tries })
        });
        self.spawn(
            "the API's start",
            Some(order),
            retry,
            Box::pin(async move {
                let result =
                    order_core::recovery::start_placed(&*ledger, &*workflow, &record).await;
                Done::Started {
                    order,
                    tries,
                    result,
                }
            }),
        );
        Ok(())
    }

    /// What the API's start returned: a 503 for our infrastructure's failure, which the
    /// merchant sends again.
    pub(super) fn started(
        &mut self,
        order: usize,
        tries: u32,
        started: Result<Option<String>, RecoveryError>,
    ) -> Result<(), SimError> {
        match started {
            Ok(_) => Ok(()),
            Err(RecoveryError::Store(StoreError::Unavailable { .. })) => {
                self.merchant_retries(order, tries, "503 store_unavailable")
            }
            Err(RecoveryError::Store(error)) => {
                Err(SimError::World(format!("order #{order}'s start: {error}")))
            }
            Err(_) => self.merchant_retries(order, tries, "503 workflow_unavailable"),
        }
    }

    /// How long a merchant waits after its try `tries` met a 503: doubling from a second,
    /// at most a minute, and up to a second more at random.
    pub(super) fn merchant_backoff(&self, tries: u32) -> u64 {
        (1_000 << tries.min(6)).min(60_000) + self.shared.below(1_000)
    }

    /// The API answered `answer` to the merchant's try `tries`: the merchant sends the
    /// same request again after a backoff, or gives up after [`MERCHANT_TRIES`] (an order
    /// stored by then is started by the reconciler; one never stored is not an order).
    fn merchant_retries(&mut self, order: usize, tries: u32, answer: &str) -> Result<(), SimError> {
        if tries + 1 >= MERCHANT_TRIES {
            self.shared
                .count("the merchant gave up after the API's 503s");
            self.note_order(order, format!("  API: {answer}; the merchant gives up"));
            if self.ids[order].is_none() {
                self.seen[order].never_placed = true;
            }
            return Ok(());
        }
        self.shared
            .count("the API answered 503, the merchant sends the request again");
        self.note_order(
            order,
            format!("  API: {answer}; the merchant sends the same request again"),
        );
        let delay = self.merchant_backoff(tries);
        self.after(
            delay,
            Event::Submit {
                order,
                tries: tries + 1,
            },
        );
        Ok(())
    }
}
