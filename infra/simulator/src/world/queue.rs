//! The event queue on the simulated clock: events at a time, in the order they were
//! queued within one millisecond, so that a seed replays exactly.

use super::{Event, World};
use crate::world::Trace;

impl<'d> World<'d> {
    pub(super) fn now(&self) -> u64 {
        self.shared.now()
    }

    pub(super) fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time, self.seq), event);
    }

    pub(super) fn after(&mut self, delay_ms: u64, event: Event) {
        let time = self.now() + delay_ms;
        self.at(time, event);
    }

    /// A line in the trace of execution `exec`'s order.
    pub(super) fn note(&self, exec: usize, text: String) {
        self.shared
            .note_at(self.executions[exec].order, Trace::Note(text));
    }

    /// A line in the trace of order `order`.
    pub(super) fn note_order(&self, order: usize, text: String) {
        self.shared.note_at(order, Trace::Note(text));
    }
}
