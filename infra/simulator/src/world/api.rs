//! The orders API, as the simulation drives it: a merchant places an order (sometimes
//! the same request twice under its key), the API stores it and starts its execution.

use super::control_plane::execution_arn;
use super::{finish, Event, SimError, World};
use crate::world::lock;
use order_core::store::{Ledger, Placement};
use order_core::{Order, OrderKind};
use serde_json::{json, Value};

impl<'d> World<'d> {
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
        let key = format!("sim-{}-{order}", self.options.seed);
        let hash = format!("hash-{order}");
        let placed = finish(self.env.ledger.place_order(&key, &parsed, &hash))?;
        let Ok(Placement::Created(record)) = placed else {
            return Err(SimError::World(format!(
                "placing order #{order}: {placed:?}"
            )));
        };
        let id = record.order_id.clone();
        lock(&self.shared.index).insert(id.clone(), order);
        self.ids.push(id.clone());
        self.note_order(order, format!("placed: {} order {id}", kind.as_str()));
        if self.shared.chance(self.options.faults.duplicate_post) {
            let again = finish(self.env.ledger.place_order(&key, &parsed, &hash))?;
            let same = matches!(&again, Ok(Placement::Replayed(r)) if r.order_id == id);
            self.note_order(
                order,
                format!(
                    "  the same request again under its key: {}",
                    if same {
                        "the same order"
                    } else {
                        "ANOTHER ORDER"
                    }
                ),
            );
            if !same {
                self.shared
                    .violation_at(order, format!("a repeated key gave {again:?}"));
            }
        }
        // The API starts the execution named after the order, then records its ARN.
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
            lock(&self.shared.refusals).insert(id.clone(), refused);
            self.shared
                .count("order with a forward call refused for good");
        }
        if self.shared.chance(self.options.faults.cancel) {
            let delay = self.shared.below(3_000);
            self.after(delay, Event::Cancel(order));
        }
        self.latest.push(None);
        if start_lost {
            self.shared
                .count("the API stored the order but could not start its execution");
            self.note_order(
                order,
                "  StartExecution failed: the order is stored without an execution".into(),
            );
        } else {
            let arn = execution_arn(id.as_str());
            finish(self.env.ledger.set_execution_arn(&id, &arn))?
                .map_err(|e| SimError::World(e.to_string()))?;
            let input = self.step_functions.input(&id);
            self.begin(order, arn, input);
        }
        if self.shared.chance(self.options.faults.resume_racing) {
            let delay = self.shared.below(30_000);
            self.after(delay, Event::Resume(order));
        }
        Ok(())
    }
}
