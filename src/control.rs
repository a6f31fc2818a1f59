//! The control plane: owns the current config and runtime decisions, and
//! publishes snapshots.
//!
//! Every change — a reload, a shift step, an operator's split, a drain — goes
//! through [`Control`], which rebuilds a whole [`Snapshot`] and swaps it in
//! atomically. The request path only ever calls [`Control::snapshot`]: one
//! lock-free `ArcSwap` load. The mutex here guards the control plane's own
//! bookkeeping and is never taken by a request.

use crate::access_log::AccessLog;
use crate::config::{Config, RouteConfig};
use crate::metrics::Metrics;
use crate::snapshot::{self, BuildError, BuildInputs, Registry, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Process lifecycle flags read by `/readyz` and the drain logic.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Listeners are bound and the config is loaded.
    pub ready: AtomicBool,
    /// Shutting down: no longer ready, finishing in-flight requests.
    pub draining: AtomicBool,
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
pub struct InFlight(Arc<Control>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lifecycle.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// The outcome of the last reload attempt, for `/status`.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// When it was attempted.
    pub at: SystemTime,
    /// The error, if it failed.
    pub error: Option<String>,
}

/// Runtime decisions about one route, kept across snapshots, and across
/// reloads as long as the route's split and shift stay as they were.
#[derive(Debug, Clone, Default)]
pub struct RouteControl {
    /// The route definition these decisions were made for.
    pub definition: String,
    /// An operator's split (weights per split entry), overriding the rest.
    pub manual: Option<Vec<f64>>,
}

/// What identifies a route's split and shift: runtime decisions about the
/// route are kept across a reload only while this stays the same.
pub fn route_definition(config: &Config, route: &RouteConfig) -> String {
    let pool = |i: usize| config.pools[i].name.as_str();
    let split: Vec<(&str, f64)> = route
        .split
        .iter()
        .map(|e| (pool(e.pool), e.weight))
        .collect();
    let shift = route.shift.as_ref().map(|s| {
        (
            pool(s.to),
            pool(s.from),
            s.steps.clone(),
            s.hold,
            s.start_at,
            s.gate.clone(),
        )
    });
    format!("{split:?} {shift:?}")
}

/// What is wrong with an operator's split.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    /// No such route.
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    /// A pool that is not in the route's split.
    #[error("pool {pool:?} is not in the split of route {route:?}")]
    UnknownPool {
        /// Route.
        route: String,
        /// Pool.
        pool: String,
    },
    /// A negative, non-finite or all-zero set of weights.
    #[error("weights must be 0 or more, and not all 0")]
    BadWeights,
}

struct ControlState {
    config: Arc<Config>,
    resolved: HashMap<String, SocketAddr>,
    routes: HashMap<String, RouteControl>,
    access_log: Option<Arc<AccessLog>>,
    generation: u64,
    loaded_at: SystemTime,
    last_reload: Option<ReloadOutcome>,
}

/// The control plane.
pub struct Control {
    current: ArcSwap<Snapshot>,
    registry: Registry,
    state: Mutex<ControlState>,
    /// Readiness and drain state.
    pub lifecycle: Arc<Lifecycle>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The generation of the last published snapshot, for watchers.
    published: tokio::sync::watch::Sender<u64>,
}

/// Resolve every backend address of `config` (blocking DNS for names).
pub fn resolve_all(config: &Config) -> Result<HashMap<String, SocketAddr>, BuildError> {
    let mut out = HashMap::new();
    for pool in &config.pools {
        for b in &pool.backends {
            if out.contains_key(&b.addr) {
                continue;
            }
            let addr = match b.addr.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => b
                    .addr
                    .to_socket_addrs()
                    .map_err(|e| e.to_string())
                    .and_then(|mut it| it.next().ok_or_else(|| "no address".to_string()))
                    .map_err(|reason| BuildError::Resolve {
                        pool: pool.name.clone(),
                        addr: b.addr.clone(),
                        reason,
                    })?,
            };
            out.insert(b.addr.clone(), addr);
        }
    }
    Ok(out)
}

/// The weights a route's split entries have now.
fn route_weights(route: &RouteConfig, rc: Option<&RouteControl>) -> Vec<f64> {
    if let Some(manual) = rc.and_then(|rc| rc.manual.as_ref()) {
        return manual.clone();
    }
    route.split.iter().map(|e| e.weight).collect()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Control {
    /// Build the first snapshot from `config`.
    pub fn new(config: Config) -> Result<Arc<Control>, BuildError> {
        let metrics = Arc::new(Metrics::new());
        let config = Arc::new(config);
        let resolved = resolve_all(&config)?;
        let access_log = AccessLog::open(&config.access_log, metrics.access_log_dropped.clone())
            .map_err(|e| BuildError::Other(e.to_string()))?;
        let registry = Registry::default();
        let routes = HashMap::new();
        let st = ControlState {
            config,
            resolved,
            routes,
            access_log,
            generation: 1,
            loaded_at: SystemTime::now(),
            last_reload: None,
        };
        let snap = Self::build(&st, &registry, &metrics)?;
        metrics.reloads.with_label_values(&["ok"]).inc();
        metrics.last_reload_success.set(unix_seconds(st.loaded_at));
        Ok(Arc::new(Control {
            current: ArcSwap::from_pointee(snap),
            registry,
            state: Mutex::new(st),
            lifecycle: Arc::default(),
            metrics,
            published: tokio::sync::watch::Sender::new(1),
        }))
    }

    fn build(
        st: &ControlState,
        registry: &Registry,
        metrics: &Metrics,
    ) -> Result<Snapshot, BuildError> {
        let settings = &st.config.proxy;
        let peers = |pool: &crate::config::PoolConfig, addr: &str, socket: SocketAddr| {
            crate::proxy::peer::build_peer(settings, pool, addr, socket)
        };
        let weights: Vec<Vec<f64>> = st
            .config
            .routes
            .iter()
            .map(|r| route_weights(r, st.routes.get(&r.name)))
            .collect();
        snapshot::build(
            st.config.clone(),
            &BuildInputs {
                resolved: &st.resolved,
                weights: &weights,
                peers: &peers,
                metrics,
                access_log: st.access_log.clone(),
                generation: st.generation,
            },
            registry,
        )
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Build from `st`, publish, and tell watchers.
    fn publish(&self, st: &mut ControlState) -> Result<(), BuildError> {
        st.generation += 1;
        let snap = Self::build(st, &self.registry, &self.metrics)?;
        self.current.store(Arc::new(snap));
        self.published.send_replace(st.generation);
        Ok(())
    }

    /// The current snapshot: the one load a request makes.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.lock().config.clone()
    }

    /// When the current config was loaded, and the last reload's outcome.
    pub fn load_info(&self) -> (SystemTime, Option<ReloadOutcome>) {
        let st = self.lock();
        (st.loaded_at, st.last_reload.clone())
    }

    /// Start counting a request as in flight.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.lifecycle.in_flight.fetch_add(1, Ordering::Acquire);
        InFlight(self.clone())
    }

    /// Replace the config (a reload): resolves names, builds, swaps. On error
    /// nothing changes.
    pub fn apply_config(&self, config: Config) -> Result<(), BuildError> {
        let config = Arc::new(config);
        let resolved = resolve_all(&config)?;
        let mut st = self.lock();
        let access_log = match &st.access_log {
            Some(log) if log.target == config.access_log => Some(log.clone()),
            None if config.access_log == crate::config::AccessLogTarget::Off => None,
            _ => AccessLog::open(&config.access_log, self.metrics.access_log_dropped.clone())
                .map_err(|e| BuildError::Other(e.to_string()))?,
        };
        let mut next = ControlState {
            config: config.clone(),
            resolved,
            routes: st.routes.clone(),
            access_log,
            generation: st.generation,
            loaded_at: SystemTime::now(),
            last_reload: st.last_reload.clone(),
        };
        next.routes
            .retain(|name, _| config.routes.iter().any(|r| &r.name == name));
        self.publish(&mut next)?;
        self.registry.prune(&config);
        *st = next;
        Ok(())
    }

    /// Record the outcome of a reload attempt (metrics and `/status`).
    pub fn record_reload(&self, error: Option<String>) {
        let now = SystemTime::now();
        let result = if error.is_some() { "error" } else { "ok" };
        self.metrics.reloads.with_label_values(&[result]).inc();
        if error.is_none() {
            self.metrics.last_reload_success.set(unix_seconds(now));
        }
        self.lock().last_reload = Some(ReloadOutcome { at: now, error });
    }

    /// Set an operator's split for a route: `weights` by pool name; pools of
    /// the split left out get 0.
    pub fn set_split(
        &self,
        route: &str,
        weights: &HashMap<String, f64>,
    ) -> Result<Vec<(String, f64)>, SplitError> {
        let mut st = self.lock();
        let cfg = st.config.clone();
        let r = cfg
            .routes
            .iter()
            .find(|r| r.name == route)
            .ok_or_else(|| SplitError::UnknownRoute(route.to_string()))?;
        for pool in weights.keys() {
            if !r.split.iter().any(|e| &cfg.pools[e.pool].name == pool) {
                return Err(SplitError::UnknownPool {
                    route: route.to_string(),
                    pool: pool.clone(),
                });
            }
        }
        let w: Vec<f64> = r
            .split
            .iter()
            .map(|e| weights.get(&cfg.pools[e.pool].name).copied().unwrap_or(0.0))
            .collect();
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().all(|x| *x == 0.0) {
            return Err(SplitError::BadWeights);
        }
        let definition = route_definition(&cfg, r);
        let rc = st.routes.entry(route.to_string()).or_default();
        rc.definition = definition;
        rc.manual = Some(w.clone());
        if let Err(e) = self.publish(&mut st) {
            tracing::error!("cannot publish the new split: {e}");
        }
        tracing::info!(route, ?weights, "split set by operator");
        Ok(r.split
            .iter()
            .zip(w)
            .map(|(e, w)| (cfg.pools[e.pool].name.clone(), w))
            .collect())
    }

    /// The runtime decisions about a route.
    pub fn route_control(&self, route: &str) -> Option<RouteControl> {
        self.lock().routes.get(route).cloned()
    }

    /// Flush the access log (before exiting).
    pub fn flush_logs(&self) {
        if let Some(log) = self.lock().access_log.clone() {
            log.flush();
        }
    }

    /// Watch snapshot publications (the value is the generation).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }
}
