//! The per-request context: what one request works from and has done so
//! far, carried through either request path.

use super::select::Tried;
use crate::health::FailureKind;
use crate::lifecycle::InFlight;
use crate::snapshot::{BackendId, Snapshot};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state.
pub struct Ctx {
    /// The one snapshot this request works from.
    pub snap: Option<Arc<Snapshot>>,
    /// Index of the matched route.
    pub route: Option<usize>,
    /// The pool the split chose.
    pub pool: Option<usize>,
    /// The backend of the attempt in progress.
    pub current: Option<BackendId>,
    /// The pool that served (or last tried) the request.
    pub served_pool: Option<usize>,
    /// Backends tried so far.
    pub tried: Tried,
    /// When the request head was read.
    pub started: Instant,
    /// When the current attempt began.
    pub attempt_started: Option<Instant>,
    /// Time from the last attempt's start to its response header.
    pub upstream_ms: Option<u64>,
    /// The backend's response header arrived (no retry past this point).
    pub response_started: bool,
    /// The last attempt's failure, if any.
    pub last_failure: Option<FailureKind>,
    /// Status the proxy itself answered with (404, 502, …), if it did.
    pub proxy_status: Option<u16>,
    /// The backend timed out while the client's body was still coming.
    pub client_stalled: bool,
    /// The next attempt goes to the same backend, on a fresh connection.
    pub fresh_retry: bool,
    /// This request had its one fresh-connection retry.
    pub fresh_retry_used: bool,
    /// What is kept of the exchange for the mirror, when it is copied.
    pub mirror: Option<Box<crate::mirror::Capture>>,
    /// Counts the request as in flight until dropped.
    pub _in_flight: Option<InFlight>,
}

impl Ctx {
    /// A fresh context.
    pub fn new(in_flight: Option<InFlight>) -> Ctx {
        Ctx {
            snap: None,
            route: None,
            pool: None,
            current: None,
            served_pool: None,
            tried: Tried::default(),
            started: Instant::now(),
            attempt_started: None,
            upstream_ms: None,
            response_started: false,
            last_failure: None,
            proxy_status: None,
            client_stalled: false,
            fresh_retry: false,
            fresh_retry_used: false,
            mirror: None,
            _in_flight: in_flight,
        }
    }

    /// Number of attempts made.
    pub fn attempts(&self) -> usize {
        self.tried.len()
    }

    /// The current attempt is over: release its in-flight slot.
    pub fn end_attempt(&mut self) {
        if let (Some(id), Some(snap)) = (self.current.take(), self.snap.as_ref()) {
            if let Some(backend) = snap.backend(id) {
                backend.state.stats.in_flight.fetch_sub(1, Relaxed);
            }
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.end_attempt();
    }
}
