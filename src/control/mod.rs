//! The control plane: owns the current config and runtime decisions, and
//! publishes snapshots.
//!
//! Every change — a reload, a shift step, an operator's split, a drain — goes
//! through [`Control`], which rebuilds a whole `Snapshot` and swaps it in
//! atomically. The request path only ever calls [`Control::snapshot`]: one
//! lock-free `ArcSwap` load. The mutex here guards the control plane's own
//! bookkeeping; requests never take it. (A request takes a lock in two
//! places only, both off the common path: the metrics registry's, the first
//! time a route and pool see a status code, and a backend's, when a TLS
//! handshake to it fails and the reason is kept for `/status`.)

mod changes;
mod events;
mod fleet;
mod fleet_actions;
#[cfg(test)]
mod fleet_tests;
mod routes;
mod shift;

pub use events::{Event, Events};
pub use fleet::FleetError;
use routes::{restore, route_weights};
pub use routes::{route_definition, RouteControl, SplitError};
pub use shift::{ShiftError, TICK};

use crate::access_log::AccessLog;
use crate::config::Config;
pub use crate::lifecycle::{InFlight, Lifecycle, OpenConnection};
use crate::metrics::Metrics;
use crate::shift::persist;
use crate::snapshot::{self, BuildError, BuildInputs, Registry, Snapshot};
use crate::tls::edge::EdgeTls;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The outcome of the last reload attempt, for `/status`.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// When it was attempted.
    pub at: SystemTime,
    /// The error, if it failed.
    pub error: Option<String>,
}

struct ControlState {
    config: Arc<Config>,
    state_path: Option<std::path::PathBuf>,
    resolved: HashMap<String, SocketAddr>,
    routes: HashMap<String, RouteControl>,
    access_log: Option<Arc<AccessLog>>,
    generation: u64,
    loaded_at: SystemTime,
    last_reload: Option<ReloadOutcome>,
}

impl ControlState {
    /// A copy of the decisions about route `r`, or fresh ones at `now`.
    fn route_or_fresh(&self, r: &crate::config::RouteConfig, now: SystemTime) -> RouteControl {
        self.routes
            .get(&r.name)
            .cloned()
            .unwrap_or_else(|| RouteControl::fresh(&self.config, r, now))
    }
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
    /// The TLS listeners' handshake sides (certificates reload in place).
    pub edge_tls: Vec<Arc<EdgeTls>>,
    /// The generation of the last published snapshot, for watchers.
    published: tokio::sync::watch::Sender<u64>,
    /// The fleet this replica belongs to (`[cluster]`), if any.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The last things that happened (transitions, actions, reloads).
    pub events: Events,
}

/// Resolve every backend address of `config` (blocking DNS for names).
pub fn resolve_all(config: &Config) -> Result<HashMap<String, SocketAddr>, BuildError> {
    resolve(config, true)
}

/// As [`resolve_all`]; without `dns`, a host name stands for the
/// unspecified address with its port (for `cutover check --skip-dns`).
fn resolve(config: &Config, dns: bool) -> Result<HashMap<String, SocketAddr>, BuildError> {
    let mut out = HashMap::new();
    for pool in &config.pools {
        for b in &pool.backends {
            if out.contains_key(&b.addr) {
                continue;
            }
            let addr = match b.addr.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) if !dns => b
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .map(|port| SocketAddr::from(([0, 0, 0, 0], port)))
                    .ok_or_else(|| BuildError::Resolve {
                        pool: pool.name.clone(),
                        addr: b.addr.clone(),
                        reason: "no port".into(),
                    })?,
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

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Control {
    /// Build the first snapshot from `config`.
    pub fn new(config: Config) -> Result<Arc<Control>, BuildError> {
        Self::new_with(config, true)
    }

    /// As [`Control::new`]; without `dns`, backend host names are not
    /// resolved (`cutover check --skip-dns`).
    pub fn new_with(config: Config, dns: bool) -> Result<Arc<Control>, BuildError> {
        let metrics = Arc::new(Metrics::new());
        let config = Arc::new(config);
        let resolved = resolve(&config, dns)?;
        let access_log = AccessLog::open(&config.access_log, metrics.access_log_dropped.clone())
            .map_err(|e| BuildError::Other(e.to_string()))?;
        let registry = Registry::default();
        let now = SystemTime::now();
        let saved = match &config.state_path {
            Some(path) => match persist::load(path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("{e}");
                    persist::StateFile::default()
                }
            },
            None => persist::StateFile::default(),
        };
        // A record in the form older versions wrote is honoured, and the
        // file written again in the current form.
        let mut rewrite = false;
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let rc = match saved.routes.get(&r.name) {
                    Some(rec) if routes::same_route(&rec.definition, &config, r) => {
                        tracing::info!(route = %r.name, "restored the route's shift and operator decisions from the state file");
                        rewrite |= rec.definition != route_definition(&config, r);
                        restore(&config, r, rec, now)
                    }
                    _ => RouteControl::fresh(&config, r, now),
                };
                (r.name.clone(), rc)
            })
            .collect();
        let st = ControlState {
            state_path: config.state_path.clone(),
            config,
            resolved,
            routes,
            access_log,
            generation: 1,
            loaded_at: SystemTime::now(),
            last_reload: None,
        };
        let snap = Self::build(&st, &registry, &metrics)?;
        let edge_tls = st
            .config
            .proxy
            .tls
            .iter()
            .map(|l| {
                EdgeTls::new(l).map(Arc::new).map_err(|e| BuildError::Tls {
                    pool: format!("listener {}", l.listen),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        metrics.reloads.with_label_values(&["ok"]).inc();
        metrics.last_reload_success.set(unix_seconds(st.loaded_at));
        let cluster = st
            .config
            .cluster
            .clone()
            .map(|c| Arc::new(crate::cluster::Cluster::new(c)));
        let control = Arc::new(Control {
            current: ArcSwap::from_pointee(snap),
            registry,
            state: Mutex::new(st),
            lifecycle: Arc::default(),
            metrics,
            edge_tls,
            published: tokio::sync::watch::Sender::new(1),
            cluster,
            events: Events::default(),
        });
        if rewrite {
            control.persist(&control.lock());
        }
        Ok(control)
    }

    fn build(
        st: &ControlState,
        registry: &Registry,
        metrics: &Metrics,
    ) -> Result<Snapshot, BuildError> {
        let settings = &st.config.proxy;
        let peers = |pool: &crate::config::PoolConfig, addr: &str, socket: SocketAddr| {
            crate::snapshot::peer::build_peer(settings, pool, addr, socket)
        };
        let weights: Vec<Vec<f64>> = st
            .config
            .routes
            .iter()
            .map(|r| route_weights(r, st.routes.get(&r.name)))
            .collect();
        for r in st.config.routes.iter().filter(|r| r.shift.is_some()) {
            metrics.init_shift(&r.name);
        }
        let shifts: Vec<Option<snapshot::ShiftView>> = st
            .config
            .routes
            .iter()
            .map(|r| {
                let (cfg, state) = (r.shift.as_ref()?, st.routes.get(&r.name)?.shift.as_ref()?);
                Some(snapshot::ShiftView {
                    phase: state.phase,
                    step: state.step,
                    share: state.share(cfg).unwrap_or(0.0),
                })
            })
            .collect();
        snapshot::build(
            st.config.clone(),
            &BuildInputs {
                resolved: &st.resolved,
                weights: &weights,
                shifts: &shifts,
                peers: &peers,
                metrics,
                access_log: st.access_log.clone(),
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
    pub fn begin_request(&self) -> InFlight {
        InFlight::new(&self.lifecycle)
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
        let now = SystemTime::now();
        let mut next = ControlState {
            state_path: config.state_path.clone(),
            config: config.clone(),
            resolved,
            routes: st.routes.clone(),
            access_log,
            generation: st.generation,
            loaded_at: SystemTime::now(),
            last_reload: st.last_reload.clone(),
        };
        // A route keeps its shift's place and the operator's decisions while
        // its identity (split, shift pools, steps, start) stays; a new hold
        // or new gate thresholds keep them too (see `routes::identity`).
        let mut notes = changes::pool_changes(&st.config, &config);
        next.routes = config
            .routes
            .iter()
            .map(|r| {
                let definition = route_definition(&config, r);
                let old_route = st.config.routes.iter().find(|o| o.name == r.name);
                let rc = match (st.routes.get(&r.name), old_route) {
                    (Some(rc), _) if rc.definition == definition => rc.clone(),
                    (Some(rc), Some(old))
                        if routes::identity(&rc.definition) == routes::identity(&definition) =>
                    {
                        let mut rc = rc.clone();
                        rc.redefine(definition);
                        let what = changes::route_changes(&st.config, old, &config, r);
                        notes.push(format!(
                            "route {}: {}; kept: {}",
                            r.name,
                            what.join(", "),
                            changes::decisions(r, &rc)
                        ));
                        rc
                    }
                    (Some(rc), Some(old)) => {
                        let fresh = RouteControl::fresh(&config, r, now);
                        let what = changes::route_changes(&st.config, old, &config, r);
                        let mut line = format!("route {}: {}", r.name, what.join(", "));
                        if r.shift.is_some() {
                            line.push_str(&format!(
                                "; the shift begins afresh ({})",
                                changes::decisions(r, &fresh)
                            ));
                        }
                        if changes::has_operator_state(rc) {
                            line.push_str(&format!("; dropped: {}", changes::decisions(old, rc)));
                        }
                        notes.push(line);
                        fresh
                    }
                    _ => {
                        notes.push(format!("route {} added", r.name));
                        RouteControl::fresh(&config, r, now)
                    }
                };
                (r.name.clone(), rc)
            })
            .collect();
        self.publish(&mut next)?;
        // New certificates for the listeners that keep running (a changed
        // listener address waits for a restart).
        for listener in &config.proxy.tls {
            if let Some(edge) = self.edge_tls.iter().find(|e| e.listen == listener.listen) {
                if let Err(e) = edge.reload(listener) {
                    tracing::error!(listener = %listener.listen, "certificates not reloaded, the old ones stay: {e}");
                }
            }
        }
        self.registry.prune(&config);
        *st = next;
        self.persist(&st);
        drop(st);
        // A route whose identity now matches a record of the fleet follows
        // it.
        self.adopt_known_records();
        for line in &notes {
            tracing::info!("reload: {line}");
            self.events.push("reload", line.clone());
        }
        if notes.is_empty() {
            tracing::info!("reload: no route, pool or shift changed");
        }
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
        match &error {
            Some(e) => self.events.push(
                "reload",
                format!("reload refused, the old config keeps serving: {e}"),
            ),
            None => self.events.push(
                "reload",
                format!("config reloaded (hash {})", self.config().hash),
            ),
        }
        self.lock().last_reload = Some(ReloadOutcome { at: now, error });
    }

    /// What this process serves, in words, for the log at startup.
    pub fn describe_start(&self) -> Vec<String> {
        let st = self.lock();
        changes::startup(&st.config, &st.routes)
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

impl crate::health::checker::SnapshotSource for Control {
    fn snapshot(&self) -> Arc<Snapshot> {
        Control::snapshot(self)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        Control::subscribe(self)
    }
}
