//! The control plane: owns the current config and runtime decisions, and
//! publishes snapshots.
//!
//! Every change — a reload, a shift step, an operator's split, a drain — goes
//! through [`Control`], which rebuilds a whole [`Snapshot`] and swaps it in
//! atomically. The request path only ever calls [`Control::snapshot`]: one
//! lock-free `ArcSwap` load. The mutex here guards the control plane's own
//! bookkeeping and is never taken by a request.

use crate::config::Config;
use crate::snapshot::{self, BuildError, BuildInputs, Registry, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Process lifecycle flags read by `/readyz` and the drain logic.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Listeners are bound and the config is loaded.
    pub ready: AtomicBool,
    /// Shutting down: no longer ready, finishing in-flight requests.
    pub draining: AtomicBool,
    /// Requests being proxied right now.
    pub in_flight: AtomicUsize,
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

struct ControlState {
    config: Arc<Config>,
    resolved: HashMap<String, SocketAddr>,
    /// Current weights per route (by index), per split entry.
    weights: Vec<Vec<f64>>,
    generation: u64,
}

/// The control plane.
pub struct Control {
    current: ArcSwap<Snapshot>,
    registry: Registry,
    state: Mutex<ControlState>,
    /// Readiness and drain state.
    pub lifecycle: Lifecycle,
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

fn configured_weights(config: &Config) -> Vec<Vec<f64>> {
    config
        .routes
        .iter()
        .map(|r| r.split.iter().map(|e| e.weight).collect())
        .collect()
}

impl Control {
    /// Build the first snapshot from `config`.
    pub fn new(config: Config) -> Result<Arc<Control>, BuildError> {
        let config = Arc::new(config);
        let resolved = resolve_all(&config)?;
        let weights = configured_weights(&config);
        let registry = Registry::default();
        let snap = Self::build(&config, &resolved, &weights, 1, &registry)?;
        Ok(Arc::new(Control {
            current: ArcSwap::from_pointee(snap),
            registry,
            state: Mutex::new(ControlState {
                config,
                resolved,
                weights,
                generation: 1,
            }),
            lifecycle: Lifecycle::default(),
            published: tokio::sync::watch::Sender::new(1),
        }))
    }

    fn build(
        config: &Arc<Config>,
        resolved: &HashMap<String, SocketAddr>,
        weights: &[Vec<f64>],
        generation: u64,
        registry: &Registry,
    ) -> Result<Snapshot, BuildError> {
        let settings = &config.proxy;
        let peers = |pool: &crate::config::PoolConfig, addr: &str, socket: SocketAddr| {
            crate::proxy::peer::build_peer(settings, pool, addr, socket)
        };
        snapshot::build(
            config.clone(),
            &BuildInputs {
                resolved,
                weights,
                peers: &peers,
                generation,
            },
            registry,
        )
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        let weights = configured_weights(&config);
        let mut st = self.lock();
        let generation = st.generation + 1;
        let snap = Self::build(&config, &resolved, &weights, generation, &self.registry)?;
        self.current.store(Arc::new(snap));
        self.registry.prune(&config);
        *st = ControlState {
            config,
            resolved,
            weights,
            generation,
        };
        self.published.send_replace(generation);
        Ok(())
    }

    /// Rebuild and publish from the current state (after a runtime decision).
    pub fn republish(&self) -> Result<(), BuildError> {
        let mut st = self.lock();
        st.generation += 1;
        let snap = Self::build(
            &st.config,
            &st.resolved,
            &st.weights,
            st.generation,
            &self.registry,
        )?;
        self.current.store(Arc::new(snap));
        self.published.send_replace(st.generation);
        Ok(())
    }

    /// Watch snapshot publications (the value is the generation).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }
}
