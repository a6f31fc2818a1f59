//! Live state that outlives snapshots — backend health, counters, sequence
//! counters, the gate's windows — shared by every snapshot through `Arc`s
//! and keyed by what it describes, so a reload keeps what is unchanged.

use super::RouteStats;
use crate::config::{Config, PoolConfig};
use crate::health::BackendState;
use crate::shift::window::Window;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Live state that outlives snapshots, keyed by what it describes.
#[derive(Default)]
pub(crate) struct Registry {
    backends: Mutex<HashMap<(String, String), Arc<BackendState>>>,
    route_seq: Mutex<HashMap<String, Arc<AtomicU64>>>,
    route_stats: Mutex<HashMap<String, Arc<RouteStats>>>,
    pool_seq: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// The gate's windows, by `route/pool`.
    windows: Mutex<HashMap<String, Arc<Window>>>,
    /// Mirror figures and learned noise, by `route/pool` (the pool copies
    /// go to).
    mirrors: Mutex<HashMap<String, Arc<crate::mirror::MirrorState>>>,
    /// The queue from the request paths to the mirror worker.
    pub(crate) mirror_hub: crate::mirror::Hub,
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

    /// The sequence counter of route `name` (its split stays exact over
    /// reloads).
    pub(crate) fn route_seq(&self, name: &str) -> Arc<AtomicU64> {
        Registry::shared(&self.route_seq, name)
    }

    /// The counters of route `name`.
    pub(crate) fn route_stats(&self, name: &str) -> Arc<RouteStats> {
        Registry::shared(&self.route_stats, name)
    }

    /// The backend sequence counter of pool `name`.
    pub(crate) fn pool_seq(&self, name: &str) -> Arc<AtomicU64> {
        Registry::shared(&self.pool_seq, name)
    }

    /// The gate's window of `pool`'s attempts on `route`, created on first
    /// sight.
    pub(crate) fn window(&self, route: &str, pool: &str) -> Arc<Window> {
        Registry::shared(&self.windows, &format!("{route}/{pool}"))
    }

    /// The mirror state of `route` copying to `pool`, created on first
    /// sight.
    pub(crate) fn mirror(&self, route: &str, pool: &str) -> Arc<crate::mirror::MirrorState> {
        Registry::shared(&self.mirrors, &format!("{route}/{pool}"))
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
        self.mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| {
                config.routes.iter().any(|r| {
                    r.mirror
                        .as_ref()
                        .is_some_and(|m| *k == format!("{}/{}", r.name, config.pools[m.to].name))
                })
            });
    }
}
