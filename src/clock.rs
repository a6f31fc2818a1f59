//! A cheap monotonic clock in milliseconds, for state kept in atomics
//! (ejection deadlines, health timestamps). Zero is the process start.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the process started (never 0, so 0 can mean "unset").
pub fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64 + 1
}

/// The `Instant` that a [`now_ms`] value stands for.
pub fn instant_of(ms: u64) -> Instant {
    origin() + Duration::from_millis(ms.saturating_sub(1))
}
