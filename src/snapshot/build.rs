//! Building a [`Snapshot`] from a validated config, the control plane's
//! decisions (weights, shift positions) and the [`Registry`]'s live state.

use super::{Backend, BuildError, Pool, Registry, Route, RouteSlot, ShiftView, Snapshot};
use crate::access_log::AccessLog;
use crate::config::{Config, PoolConfig};
use crate::metrics::Metrics;
use crate::split;
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

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
        let addrs: Vec<&str> = pool.backends.iter().map(|b| b.addr.as_str()).collect();
        let tls = pool
            .tls
            .as_ref()
            .map(|t| crate::tls::client::backend_tls(t, &addrs));
        let own_path = !matches!(tls, Some(None));
        let mut tls = tls.flatten().map(Vec::into_iter);
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
                tls: tls.as_mut().and_then(Iterator::next),
            });
        }
        pools.push(Pool {
            name: pool.name.as_str().into(),
            weights: pool.backends.iter().map(|b| b.weight).collect(),
            backends,
            seq: registry.pool_seq(&pool.name),
            outlier: pool.outlier,
            health: pool.health.clone(),
            tls: pool.tls.clone(),
            own_path,
            may_empty: config.pool_may_empty(pools.len()),
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
        let mirror = r.mirror.as_ref().map(|m| {
            crate::mirror::RouteMirror::new(
                m.clone(),
                registry.mirror(&r.name, &config.pools[m.to].name),
                registry.mirror_hub.sender(),
            )
        });
        routes.push(Route {
            mirror,
            metrics,
            windows,
            shift: inputs.shifts.get(i).copied().flatten(),
            name: r.name.as_str().into(),
            matcher: r.matcher.clone(),
            slots,
            buckets,
            sticky: r.sticky.clone(),
            override_header: r.override_header.clone(),
            seq: registry.route_seq(&r.name),
            stats: registry.route_stats(&r.name),
        });
    }
    Ok(Snapshot {
        config,
        routes,
        pools,
        access_log: inputs.access_log.clone(),
    })
}
