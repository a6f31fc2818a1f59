//! A cheap monotonic clock in milliseconds, for state kept in atomics
//! (ejection deadlines, health timestamps). Zero is the process start.

use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the process started (never 0, so 0 can mean "unset").
pub fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64 + 1
}
