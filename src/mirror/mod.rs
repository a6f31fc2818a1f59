//! Shadow traffic (`[routes.mirror]`): copies of some of a route's
//! requests sent to another pool, their answers compared with the
//! primary's, and the figures fed to the shift gate.
//!
//! The client's exchange is never held up or changed by it. A request path
//! only decides whether a request is copied ([`select`], one atomic add on
//! a mirrored route, nothing on the others), keeps what the comparison
//! needs as the exchange passes ([`Capture`]), and when it is over hands it
//! to a bounded queue ([`submit`]); a full queue drops the copy and counts
//! it. The worker ([`worker::run`]) sends the copy, compares the answers
//! ([`compare`]) and learns noise by asking the primary a second time now
//! and then. The mirror pool's failures touch neither its health, its
//! ejections nor the real traffic's metrics.

mod capture;
mod client;
pub mod compare;
mod http1;
mod state;
pub mod worker;

pub use capture::{Capture, BODY_CAP};
pub use state::{ByKind, Diff, Figures, MirrorState, Noise, RECENT};

use crate::config::MirrorConfig;
use crate::snapshot::{Route, Snapshot};
use crate::split;
use http::Method;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Copies waiting for the worker; beyond this they are dropped (counted).
pub const QUEUE: usize = 256;

/// The marker header every copy carries, so a backend can tell a copy from
/// a real request (and skip side effects).
pub const MARKER: &str = "x-cutover-mirror";

/// One finished exchange to copy and compare.
pub struct Job {
    /// The snapshot the request was served from.
    pub(crate) snap: Arc<Snapshot>,
    /// Its route.
    pub(crate) route: usize,
    /// The pool that answered it.
    pub(crate) primary: usize,
    /// What the request path kept.
    pub(crate) capture: Box<Capture>,
}

/// The queue between the request paths and the worker.
pub struct Hub {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Default for Hub {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Hub {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Hub {
    /// The sending side, for snapshots.
    pub(crate) fn sender(&self) -> mpsc::Sender<Job> {
        self.tx.clone()
    }

    /// The receiving side, once (for the worker).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A route's mirror in a snapshot.
pub struct RouteMirror {
    /// Its settings.
    pub config: MirrorConfig,
    /// `percent` in buckets of [`split::BUCKETS`].
    pub buckets: u32,
    /// The configured ignores, ready for [`compare::compare`].
    pub ignore: compare::Ignore,
    /// Figures and learned state, shared across snapshots.
    pub state: Arc<MirrorState>,
    /// Where finished exchanges go.
    pub(crate) queue: mpsc::Sender<Job>,
}

impl RouteMirror {
    /// A route's mirror from its settings.
    pub(crate) fn new(
        config: MirrorConfig,
        state: Arc<MirrorState>,
        queue: mpsc::Sender<Job>,
    ) -> RouteMirror {
        let buckets = (config.percent / 100.0 * f64::from(split::BUCKETS)).round() as u32;
        let ignore = compare::Ignore {
            headers: config.ignore_headers.iter().cloned().collect(),
            json: config.ignore_json.iter().cloned().collect(),
        };
        RouteMirror {
            config,
            buckets,
            ignore,
            state,
            queue,
        }
    }
}

/// Whether a request on `route` with `method`, sent to pool `chosen` at
/// `now_ms`, is copied: the route mirrors, the method is listed, the
/// request is not already going to the mirror pool, it falls in `percent`
/// (spread evenly by the route's mirror counter), the mirror pool is not
/// paused for refusing connections, and the queue has room. A capture to
/// fill if so.
#[inline]
pub fn select(route: &Route, method: &Method, chosen: usize, now_ms: u64) -> Option<Box<Capture>> {
    let m = route.mirror.as_ref()?;
    if chosen == m.config.to || !m.config.methods.contains(method) {
        return None;
    }
    let n = m.state.seq.fetch_add(1, Relaxed);
    if split::sequence_bucket(n) >= m.buckets {
        return None;
    }
    if now_ms < m.state.paused_until_ms.load(Relaxed) {
        // The mirror pool refuses connections: not tried again yet.
        m.state.errors.fetch_add(1, Relaxed);
        return None;
    }
    if m.queue.capacity() == 0 {
        // The worker is behind: drop the copy now rather than keep the
        // exchange for a queue that has no room.
        m.state.dropped.fetch_add(1, Relaxed);
        return None;
    }
    Some(Box::new(Capture::new(m.config.max_body)))
}

/// Hand a finished exchange to the worker, if it can be compared: the
/// primary pool answered it whole, and it is not the mirror pool. Never
/// waits: a full queue drops the copy (counted).
pub fn submit(snap: &Arc<Snapshot>, route: usize, primary: Option<usize>, capture: Box<Capture>) {
    let Some(m) = snap.routes.get(route).and_then(|r| r.mirror.as_ref()) else {
        return;
    };
    if capture.too_large {
        m.state.too_large.fetch_add(1, Relaxed);
        return;
    }
    let Some(primary) = primary.filter(|p| *p != m.config.to) else {
        return;
    };
    if !capture.complete || capture.request.is_none() {
        return;
    }
    let job = Job {
        snap: snap.clone(),
        route,
        primary,
        capture,
    };
    if m.queue.try_send(job).is_err() {
        m.state.dropped.fetch_add(1, Relaxed);
    }
}
