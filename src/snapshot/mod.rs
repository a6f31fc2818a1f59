//! The immutable snapshot each request works from.
//!
//! A [`Snapshot`] is everything the request path needs — routes with their
//! split in buckets, pools with their backends and ready-made upstream peers,
//! limits — built in one go from a validated config plus the runtime decisions
//! of the control plane (current shares). It is published through an
//! `ArcSwap`; a request loads it once and keeps that `Arc`, so it never sees
//! half of a reload. Live state that changes per request or per probe
//! (backend health, counters, the per-route sequence counters) sits behind
//! `Arc`s shared across snapshots, keyed by what it describes, in the
//! [`Registry`].

mod build;
pub(crate) mod peer;
mod registry;

pub(crate) use build::{build, BuildInputs};
pub(crate) use registry::Registry;

use crate::access_log::AccessLog;
use crate::config::{Config, HealthCheck, Outlier, RouteMatch, Sticky};
use crate::health::BackendState;
use crate::metrics::RoutePoolMetrics;
use crate::shift::window::Window;
use crate::split;
use http::HeaderName;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Everything a request needs, frozen.
pub struct Snapshot {
    /// The config this snapshot was built from.
    pub config: Arc<Config>,
    /// Routes in match order.
    pub routes: Vec<Route>,
    /// Pools, indexed like `config.pools`.
    pub pools: Vec<Pool>,
    /// Where access log lines go, if anywhere.
    pub access_log: Option<Arc<AccessLog>>,
}

/// A backend of a snapshot: its pool's index (in `Snapshot::pools`) and
/// its index in that pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendId {
    /// Index of the pool.
    pub pool: usize,
    /// Index of the backend in the pool.
    pub backend: usize,
}

impl Snapshot {
    /// The backend `id` names, if this snapshot has it.
    pub fn backend(&self, id: BackendId) -> Option<&Backend> {
        self.pools.get(id.pool)?.backends.get(id.backend)
    }
}

/// A route, ready to split requests.
pub struct Route {
    /// Route name.
    pub name: Arc<str>,
    /// Which requests it takes.
    pub matcher: RouteMatch,
    /// Pools in bucket order (shift target first); failover pools last.
    pub slots: Vec<RouteSlot>,
    /// Bucket counts per slot (0 for failover slots); they add up to
    /// [`split::BUCKETS`].
    pub buckets: Vec<u32>,
    /// How users are pinned.
    pub sticky: Option<Sticky>,
    /// A header naming the pool to use.
    pub override_header: Option<HeaderName>,
    /// Sequence counter for non-sticky requests; shared across snapshots so
    /// the split stays exact over reloads.
    pub seq: Arc<AtomicU64>,
    /// Counters, shared across snapshots.
    pub stats: Arc<RouteStats>,
    /// Request metrics per slot (same order as `slots`).
    pub metrics: Vec<Arc<RoutePoolMetrics>>,
    /// Per slot (same order as `slots`), the attempts on that pool for this
    /// route over the last minute: what the shift gate judges. Shared across
    /// snapshots.
    pub windows: Vec<Arc<Window>>,
    /// Where its shift is, if it has one.
    pub shift: Option<ShiftView>,
    /// Its shadow traffic, if it has any.
    pub mirror: Option<crate::mirror::RouteMirror>,
}

/// A shift's position, as frozen in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftView {
    /// Phase.
    pub phase: crate::shift::Phase,
    /// Step index.
    pub step: usize,
    /// The target pool's share in percent (0 before the start).
    pub share: f64,
}

/// Per-route counters.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Attempts beyond the first.
    pub retries: AtomicU64,
}

/// One pool of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSlot {
    /// Index into [`Snapshot::pools`].
    pub pool: usize,
    /// Only used when every split pool is down.
    pub failover: bool,
}

/// A pool, ready to pick backends.
pub struct Pool {
    /// Pool name.
    pub name: Arc<str>,
    /// Backends in config order.
    pub backends: Vec<Backend>,
    /// Their weights, for [`split::pick_weighted`].
    pub weights: Vec<u32>,
    /// Weighted round-robin counter, shared across snapshots.
    pub seq: Arc<AtomicU64>,
    /// Passive ejection settings.
    pub outlier: Option<Outlier>,
    /// Active checks.
    pub health: Option<HealthCheck>,
    /// TLS to the backends.
    pub tls: Option<crate::config::UpstreamTls>,
    /// cutover's own request paths can send this pool's requests: plain
    /// HTTP/1, or HTTP/1 over TLS with each backend's [`Backend::tls`]
    /// made (else they take Pingora's path).
    pub own_path: bool,
    /// Every route using it has another pool to go to, so all of its
    /// backends may be ejected (else at most half).
    pub may_empty: bool,
}

/// A backend with its live state and a ready upstream peer.
pub struct Backend {
    /// `host:port` as configured.
    pub addr: Arc<str>,
    /// Its resolved address.
    pub socket: SocketAddr,
    /// Weight inside the pool.
    pub weight: u32,
    /// Live state, shared across snapshots.
    pub state: Arc<BackendState>,
    /// The peer a request is sent to (cloned per attempt).
    pub peer: HttpPeer,
    /// TLS to it on cutover's own paths (pools with `tls`).
    pub tls: Option<crate::tls::client::BackendTls>,
}

impl Pool {
    /// Whether any backend with weight can take a request now.
    #[inline]
    pub fn available(&self, now_ms: u64) -> bool {
        self.backends
            .iter()
            .any(|b| b.weight > 0 && b.state.available(now_ms))
    }

    /// The most backends passive ejection may take out at once.
    pub fn max_ejected(&self) -> usize {
        if self.may_empty {
            self.backends.len()
        } else {
            self.backends.len() / 2
        }
    }

    /// How many of its backends are ejected right now.
    pub fn ejected(&self, now_ms: u64) -> usize {
        self.backends
            .iter()
            .filter(|b| b.state.is_ejected(now_ms))
            .count()
    }
}

impl Route {
    /// The effective share of each slot at `now_ms` after failover, in
    /// `0..=1`, the way requests are split right now.
    pub fn effective_shares(&self, pools: &[Pool], now_ms: u64) -> Vec<f64> {
        let avail: Vec<bool> = self
            .slots
            .iter()
            .map(|s| pools[s.pool].available(now_ms))
            .collect();
        let total: u64 = self
            .buckets
            .iter()
            .zip(&avail)
            .filter(|(_, a)| **a)
            .map(|(b, _)| u64::from(*b))
            .sum();
        if total > 0 {
            return self
                .buckets
                .iter()
                .zip(&avail)
                .map(|(b, a)| if *a { *b as f64 / total as f64 } else { 0.0 })
                .collect();
        }
        // Every split pool is down: the first available failover pool takes
        // all; with none, the proxy fails open along the configured split.
        if let Some(i) = self
            .slots
            .iter()
            .zip(&avail)
            .position(|(s, a)| s.failover && *a)
        {
            return (0..self.slots.len())
                .map(|j| if j == i { 1.0 } else { 0.0 })
                .collect();
        }
        self.buckets
            .iter()
            .map(|b| f64::from(*b) / f64::from(split::BUCKETS))
            .collect()
    }
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A backend name did not resolve.
    #[error("pool {pool}: backend {addr} does not resolve: {reason}")]
    Resolve {
        /// Pool name.
        pool: String,
        /// Backend address.
        addr: String,
        /// What the resolver said.
        reason: String,
    },
    /// A TLS file for an upstream pool could not be loaded.
    #[error("pool {pool}: {reason}")]
    Tls {
        /// Pool name.
        pool: String,
        /// What went wrong.
        reason: String,
    },
    /// Anything else (an access log file that cannot be opened, …).
    #[error("{0}")]
    Other(String),
}
