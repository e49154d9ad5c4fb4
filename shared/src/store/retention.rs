//! Personal data is kept only as long as it is needed: an order that ended more than the
//! retention period ago (`ORDER_RETENTION_DAYS`, 365 by default) has the personal parts of
//! its delivery address removed (the recipient's name and street lines; the city, postal
//! code and country stay, for statistics), in one conditional write that leaves
//! everything else as it was: its status, its steps and partner references, its place in
//! the indexes. `order_core::recovery::anonymise_ended` finds such orders; the scheduled
//! reconciler runs it, and `orderctl orders anonymise` does it on demand.

use super::{OrderRecord, StoreError};
use std::future::Future;

/// What replaces a removed part of an address.
pub const REMOVED: &str = "[removed]";

/// The retention period when none is configured.
pub const DEFAULT_RETENTION_DAYS: u64 = 365;

/// The cutoff of a pass run now: orders that ended before it are past `days` of
/// retention (RFC 3339, milliseconds, UTC).
pub fn cutoff(days: u64) -> String {
    // chrono's durations end at i64::MAX milliseconds: a longer period is that long.
    let days = i64::try_from(days)
        .unwrap_or(i64::MAX)
        .min(i64::MAX / 86_400_000);
    let days = chrono::Duration::days(days);
    chrono::Utc::now()
        .checked_sub_signed(days)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The order as anonymising leaves it: the name and street lines removed.
pub fn anonymised(order: &OrderRecord, at: &str) -> OrderRecord {
    let mut order = order.clone();
    let address = &mut order.order.delivery_address;
    address.name = REMOVED.to_owned();
    address.line1 = REMOVED.to_owned();
    address.line2 = None;
    order.anonymised_at = Some(at.to_owned());
    order.version += 1;
    order
}

/// Removing an ended order's personal data.
pub trait Retention: Send + Sync {
    /// Removes the personal parts of the order's address, only if it has ended, is still
    /// at the version `read` was read at, and was not anonymised before; otherwise
    /// [`StoreError::Changed`] and nothing is written.
    fn anonymise(&self, read: &OrderRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cutoff_is_now_less_the_period_and_a_period_too_long_for_a_clock_is_the_beginning() {
        let year = super::cutoff(365);
        let expected = chrono::Utc::now() - chrono::Duration::days(365);
        let parsed = chrono::DateTime::parse_from_rfc3339(&year).map(|t| t.timestamp());
        assert!(
            parsed.is_ok_and(|t| (t - expected.timestamp()).abs() <= 2),
            "{year}"
        );
        assert!(
            super::cutoff(u64::MAX).starts_with('-'),
            "{}",
            super::cutoff(u64::MAX)
        );
    }
}
