//! Pool and backend choice for one request and its retries, over a
//! snapshot. No IO; `now_ms` is passed in.
//!
//! Order of preference for an attempt:
//! 1. the request's pool, a backend that is available and not yet tried;
//! 2. the route's other pools (split order, then failover pools);
//! 3. failing open: any untried backend of the route's pools, whatever its
//!    health — better a try than a certain 502.

use crate::snapshot::{BackendId, Pool, Route, Snapshot};
use crate::split;
use std::sync::atomic::Ordering::Relaxed;

/// The most attempts one request can make (1 + the largest `retries`).
pub const MAX_ATTEMPTS: usize = 11;

/// Backends already tried by a request (kept compact: it lives in every
/// request's context).
#[derive(Debug, Default, Clone)]
pub struct Tried {
    items: [(u16, u16); MAX_ATTEMPTS],
    len: u8,
}

impl Tried {
    /// Whether backend `id` was tried.
    #[inline]
    pub fn contains(&self, id: BackendId) -> bool {
        self.items[..self.len as usize]
            .iter()
            .any(|(p, b)| *p as usize == id.pool && *b as usize == id.backend)
    }

    /// Remember backend `id`.
    pub fn push(&mut self, id: BackendId) {
        if (self.len as usize) < MAX_ATTEMPTS {
            self.items[self.len as usize] = (id.pool as u16, id.backend as u16);
            self.len += 1;
        }
    }

    /// The last one tried.
    pub fn last(&self) -> Option<BackendId> {
        let (p, b) = *self.items[..self.len as usize].last()?;
        Some(BackendId {
            pool: p as usize,
            backend: b as usize,
        })
    }

    /// How many were tried.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether none was tried.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Choose the pool for a request landing in `bucket`; `forced` is a pool
/// named by the override header.
pub fn choose_pool(
    route: &Route,
    pools: &[Pool],
    bucket: u32,
    forced: Option<usize>,
    now_ms: u64,
) -> usize {
    if let Some(p) = forced {
        return p;
    }
    let slot = split::pick_bucket(bucket, &route.buckets, |i| {
        !route.slots[i].failover && pools[route.slots[i].pool].available(now_ms)
    })
    .or_else(|| {
        route
            .slots
            .iter()
            .position(|s| s.failover && pools[s.pool].available(now_ms))
    })
    // Fail open: every pool is down, follow the configured split anyway.
    .or_else(|| split::pick_bucket(bucket, &route.buckets, |_| true))
    .unwrap_or(0);
    route.slots[slot].pool
}

fn pick_in_pool(
    pool: &Pool,
    pool_idx: usize,
    tried: &Tried,
    healthy_only: bool,
    now_ms: u64,
) -> Option<usize> {
    let n = pool.seq.fetch_add(1, Relaxed);
    split::pick_weighted(n, &pool.weights, |i| {
        let id = BackendId {
            pool: pool_idx,
            backend: i,
        };
        !tried.contains(id) && (!healthy_only || pool.backends[i].state.available(now_ms))
    })
}

/// The backend for the next attempt of a request whose pool is `pool`,
/// or `None` when every backend of the route was tried.
pub fn next_backend(
    snap: &Snapshot,
    route: &Route,
    pool: usize,
    tried: &Tried,
    now_ms: u64,
) -> Option<BackendId> {
    let pools = &snap.pools;
    if tried.len() >= MAX_ATTEMPTS {
        return None;
    }
    let others = || {
        route
            .slots
            .iter()
            .map(|s| s.pool)
            .filter(move |p| *p != pool)
    };
    for healthy_only in [true, false] {
        if let Some(b) = pick_in_pool(&pools[pool], pool, tried, healthy_only, now_ms) {
            return Some(BackendId { pool, backend: b });
        }
        for p in others() {
            if let Some(b) = pick_in_pool(&pools[p], p, tried, healthy_only, now_ms) {
                return Some(BackendId {
                    pool: p,
                    backend: b,
                });
            }
        }
    }
    None
}
