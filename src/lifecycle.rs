//! The process's lifecycle: ready, draining, and what is still open (client
//! connections, requests in flight), counted by guards that the connection
//! and request code hold. Shutdown and `/readyz` read it; nothing here
//! knows about config or snapshots.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Process lifecycle flags read by `/readyz` and the drain logic.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Listeners are bound and the config is loaded.
    pub ready: AtomicBool,
    /// Shutting down: no longer ready, finishing in-flight requests.
    pub draining: AtomicBool,
    /// Handing the listeners to a new process (`SIGQUIT`).
    pub upgrading: AtomicBool,
    /// Requests being proxied right now.
    pub in_flight: AtomicUsize,
    /// Open client connections.
    pub connections: AtomicUsize,
}

/// Counts a client connection as open for as long as it lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<Lifecycle>);

impl OpenConnection {
    /// Count one more open connection.
    pub fn new(lifecycle: &Arc<Lifecycle>) -> OpenConnection {
        lifecycle.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(lifecycle.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Release);
    }
}

impl Lifecycle {
    /// Whether `/readyz` should say 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }
}

/// Counts a request as in flight for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl InFlight {
    /// Count one more request in flight.
    pub fn new(lifecycle: &Arc<Lifecycle>) -> InFlight {
        lifecycle.in_flight.fetch_add(1, Ordering::Acquire);
        InFlight(lifecycle.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}
