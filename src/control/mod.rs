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

mod apply;
mod changes;
mod definition;
mod events;
mod fleet;
mod fleet_actions;
#[cfg(test)]
mod fleet_tests;
mod resolve;
mod routes;
mod shift;

pub use events::{Event, Events};
pub use fleet::FleetError;
use resolve::resolve;
pub use resolve::resolve_all;
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
use std::net::SocketAddr;
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
    /// The migration report's history (samples every 10 s).
    pub history: crate::migration::History,
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
        // The report's history lives next to the state file, if any.
        let history = match &st.config.state_path {
            Some(p) => crate::migration::History::load(&crate::migration::history::file_for(p)),
            None => crate::migration::History::default(),
        };
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
            history,
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

    /// The queue of mirrored exchanges, for the mirror worker (once).
    pub(crate) fn mirror_queue(&self) -> Option<tokio::sync::mpsc::Receiver<crate::mirror::Job>> {
        self.registry.mirror_hub.take_receiver()
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
