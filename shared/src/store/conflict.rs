//! The one rule for a write that lost a race: read again and try again, a bounded number
//! of times.

use super::StoreError;

/// How many times a write that lost a race with another writer (a status that moved
/// since it was read) is tried in all, everywhere.
pub const CONFLICT_ATTEMPTS: usize = 5;

/// Runs `attempt` (which reads what it needs, then writes conditionally) again while it
/// fails with [`StoreError::Conflict`], [`CONFLICT_ATTEMPTS`] times in all; the last
/// conflict is returned when every attempt lost.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(StoreError::Conflict { .. }) if tries < CONFLICT_ATTEMPTS => tries += 1,
            outcome => return outcome,
        }
    }
}
