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

pub(crate) mod peer;

use crate::access_log::AccessLog;
use crate::config::{Config, HealthCheck, Outlier, PoolConfig, RouteMatch, Sticky};
use crate::health::BackendState;
use crate::metrics::{Metrics, RoutePoolMetrics};
use crate::shift::window::Window;
use crate::split;
use http::HeaderName;
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

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
}

impl Pool {
    /// Whether any backend with weight can take a request now.
    #[inline]
    pub fn available(&self, now_ms: u64) -> bool {
        self.backends
            .iter()
            .any(|b| b.weight > 0 && b.state.available(now_ms))
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

/// Live state that outlives snapshots, keyed by what it describes.
#[derive(Default)]
pub(crate) struct Registry {
    backends: Mutex<HashMap<(String, String), Arc<BackendState>>>,
    route_seq: Mutex<HashMap<String, Arc<AtomicU64>>>,
    route_stats: Mutex<HashMap<String, Arc<RouteStats>>>,
    pool_seq: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// The gate's windows, by `route/pool`.
    windows: Mutex<HashMap<String, Arc<Window>>>,
}

impl Registry {
    /// The state of backend `addr` in `pool`, created on first sight.
    pub(crate) fn backend(&self, pool: &PoolConfig, addr: &str) -> Arc<BackendState> {
        let mut map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let state = map
            .entry((pool.name.clone(), addr.to_string()))
            .or_insert_with(|| Arc::new(BackendState::new(&pool.name, addr, pool.health.is_some())))
            .clone();
        if pool.health.is_none() {
            state.assume_healthy();
        }
        state
    }

    fn shared<T: Default>(map: &Mutex<HashMap<String, Arc<T>>>, name: &str) -> Arc<T> {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// The gate's window of `pool`'s attempts on `route`, created on first
    /// sight.
    pub(crate) fn window(&self, route: &str, pool: &str) -> Arc<Window> {
        Registry::shared(&self.windows, &format!("{route}/{pool}"))
    }

    /// Forget state of backends, routes and pools `config` no longer has.
    pub(crate) fn prune(&self, config: &Config) {
        let mut keep = std::collections::HashSet::new();
        for p in &config.pools {
            for b in &p.backends {
                keep.insert((p.name.clone(), b.addr.clone()));
            }
        }
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keep.contains(k));
        let has_route = |k: &String| config.routes.iter().any(|r| &r.name == k);
        self.route_seq
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| has_route(k));
        self.route_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| has_route(k));
        self.pool_seq
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| config.pools.iter().any(|p| &p.name == k));
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| {
                k.split_once('/').is_some_and(|(r, p)| {
                    has_route(&r.to_string()) && config.pools.iter().any(|c| c.name == p)
                })
            });
    }
}

/// Inputs to [`build`] besides the config.
pub(crate) struct BuildInputs<'a> {
    /// Resolved backend addresses, by `host:port`.
    pub resolved: &'a HashMap<String, SocketAddr>,
    /// Per route (by index), the weight of each split entry (same order as
    /// `config.routes[i].split`), as decided by the control plane.
    pub weights: &'a [Vec<f64>],
    /// Per route (by index), its shift's position.
    pub shifts: &'a [Option<ShiftView>],
    /// The upstream peers of each pool, built by `proxy::peer`.
    pub peers: &'a dyn Fn(&PoolConfig, &str, SocketAddr) -> Result<HttpPeer, BuildError>,
    /// Metric handles are resolved here.
    pub metrics: &'a Metrics,
    /// The access log to use.
    pub access_log: Option<Arc<AccessLog>>,
}

/// Build a snapshot.
pub(crate) fn build(
    config: Arc<Config>,
    inputs: &BuildInputs<'_>,
    registry: &Registry,
) -> Result<Snapshot, BuildError> {
    let mut pools = Vec::with_capacity(config.pools.len());
    for pool in &config.pools {
        let mut backends = Vec::with_capacity(pool.backends.len());
        for b in &pool.backends {
            let socket = *inputs
                .resolved
                .get(&b.addr)
                .ok_or_else(|| BuildError::Resolve {
                    pool: pool.name.clone(),
                    addr: b.addr.clone(),
                    reason: "not resolved".into(),
                })?;
            backends.push(Backend {
                addr: b.addr.as_str().into(),
                socket,
                weight: b.weight,
                state: registry.backend(pool, &b.addr),
                peer: (inputs.peers)(pool, &b.addr, socket)?,
            });
        }
        pools.push(Pool {
            name: pool.name.as_str().into(),
            weights: pool.backends.iter().map(|b| b.weight).collect(),
            backends,
            seq: Registry::shared(&registry.pool_seq, &pool.name),
            outlier: pool.outlier,
            health: pool.health.clone(),
            tls: pool.tls.clone(),
        });
    }
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let weights = inputs.weights.get(i);
        // Bucket order: the shift target first, so that raising its share
        // only ever moves sticky users towards it.
        let mut order: Vec<usize> = (0..r.split.len()).collect();
        if let Some(shift) = &r.shift {
            order.sort_by_key(|j| r.split[*j].pool != shift.to);
        }
        let w: Vec<f64> = order
            .iter()
            .map(|j| {
                weights
                    .and_then(|w| w.get(*j))
                    .copied()
                    .unwrap_or(r.split[*j].weight)
            })
            .collect();
        let mut buckets = split::to_buckets(&w);
        let mut slots: Vec<RouteSlot> = order
            .iter()
            .map(|j| RouteSlot {
                pool: r.split[*j].pool,
                failover: false,
            })
            .collect();
        for p in &r.failover {
            slots.push(RouteSlot {
                pool: *p,
                failover: true,
            });
            buckets.push(0);
        }
        let metrics = slots
            .iter()
            .map(|s| {
                inputs
                    .metrics
                    .route_pool(&r.name, &config.pools[s.pool].name)
            })
            .collect();
        let windows = slots
            .iter()
            .map(|s| registry.window(&r.name, &config.pools[s.pool].name))
            .collect();
        routes.push(Route {
            metrics,
            windows,
            shift: inputs.shifts.get(i).copied().flatten(),
            name: r.name.as_str().into(),
            matcher: r.matcher.clone(),
            slots,
            buckets,
            sticky: r.sticky.clone(),
            override_header: r.override_header.clone(),
            seq: Registry::shared(&registry.route_seq, &r.name),
            stats: Registry::shared(&registry.route_stats, &r.name),
        });
    }
    Ok(Snapshot {
        config,
        routes,
        pools,
        access_log: inputs.access_log.clone(),
    })
}
