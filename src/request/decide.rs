//! The request's decisions and bookkeeping, the same for every request
//! path ([`crate::fast`], `crate::proxy`): route and pool choice, the
//! start of each attempt, failures and their ejections, a backend's answer,
//! and the final count (metrics and access log).

use super::ctx::Ctx;
use super::{select, sticky};
use crate::access_log::Entry;
use crate::clock::now_ms;
use crate::health::FailureKind;
use crate::metrics::Metrics;
use crate::metrics::RoutePoolMetrics;
use crate::route::RequestView;
use crate::shift::window::Window;
use crate::snapshot::{BackendId, Snapshot};
use crate::split;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tracing::warn;

/// The metrics of route `ri` for pool `p`.
pub fn route_pool_metrics(snap: &Snapshot, ri: usize, p: usize) -> Option<&Arc<RoutePoolMetrics>> {
    let route = snap.routes.get(ri)?;
    let slot = route.slots.iter().position(|s| s.pool == p)?;
    route.metrics.get(slot)
}

/// The shift gate's window of route `ri` for pool `p`.
fn route_pool_window(snap: &Snapshot, ri: usize, p: usize) -> Option<&Window> {
    let route = snap.routes.get(ri)?;
    let slot = route.slots.iter().position(|s| s.pool == p)?;
    route.windows.get(slot).map(|w| &**w)
}

/// The route taking `view`, or `None` (a 404).
pub fn match_route(snap: &Snapshot, view: &RequestView<'_>) -> Option<usize> {
    snap.routes.iter().position(|r| r.matcher.matches(view))
}

/// Choose the pool of a request on route `ri`: the override header, else
/// the sticky key's bucket, else the route's next sequence bucket. Records
/// both in `ctx`.
pub fn choose_pool(
    ctx: &mut Ctx,
    snap: &Snapshot,
    ri: usize,
    view: &RequestView<'_>,
    client_ip: Option<IpAddr>,
) {
    let route = &snap.routes[ri];
    let now = now_ms();
    let mut forced = None;
    if let Some(h) = &route.override_header {
        view.headers.first_value(h.as_str(), &mut |v| {
            let name = std::str::from_utf8(v).unwrap_or("").trim();
            forced = route
                .slots
                .iter()
                .map(|s| s.pool)
                .find(|p| &*snap.pools[*p].name == name);
        });
    }
    let bucket = route
        .sticky
        .as_ref()
        .and_then(|s| sticky::key_bucket(s, view.headers, client_ip))
        .unwrap_or_else(|| split::sequence_bucket(route.seq.fetch_add(1, Relaxed)));
    let pool = select::choose_pool(route, &snap.pools, bucket, forced, now);
    ctx.route = Some(ri);
    ctx.pool = Some(pool);
    // An upgrade (a WebSocket) is a conversation, not an answer to
    // compare: never copied.
    if route.mirror.is_some() && !view.headers.any_value("upgrade", &mut |_| true) {
        ctx.mirror = crate::mirror::select(route, view.method, pool, now);
    }
}

/// Whether the answer names the pool that served (`X-Cutover-Pool`): the
/// request's route has an override header.
pub fn tags_pool(ctx: &Ctx) -> bool {
    match (ctx.snap.as_ref(), ctx.route) {
        (Some(snap), Some(ri)) => snap
            .routes
            .get(ri)
            .is_some_and(|r| r.override_header.is_some()),
        _ => false,
    }
}

/// Start the next attempt: pick an untried backend and count it (or, after
/// [`retry_same_backend`], the same backend again, not counted as a retry).
/// `None` when every backend of the route was tried.
pub fn begin_attempt(ctx: &mut Ctx) -> Option<BackendId> {
    ctx.end_attempt();
    let (Some(snap), Some(ri), Some(pool)) = (ctx.snap.as_ref(), ctx.route, ctx.pool) else {
        return None;
    };
    let route = &snap.routes[ri];
    let same = std::mem::take(&mut ctx.fresh_retry)
        .then(|| ctx.tried.last())
        .flatten();
    let id = match same {
        Some(id) => id,
        None => {
            let id = select::next_backend(snap, route, pool, &ctx.tried, now_ms())?;
            if !ctx.tried.is_empty() {
                route.stats.retries.fetch_add(1, Relaxed);
            }
            ctx.tried.push(id);
            id
        }
    };
    let backend = &snap.pools[id.pool].backends[id.backend];
    backend.state.stats.attempts.fetch_add(1, Relaxed);
    backend.state.stats.in_flight.fetch_add(1, Relaxed);
    ctx.current = Some(id);
    ctx.served_pool = Some(id.pool);
    ctx.attempt_started = Some(std::time::Instant::now());
    ctx.response_started = false;
    Some(id)
}

/// The next attempt goes to the same backend on a fresh connection (the
/// retry rule's [`Retry::SameBackend`](super::retry::Retry::SameBackend)):
/// once per request, and not counted against `retries`.
pub fn retry_same_backend(ctx: &mut Ctx) {
    ctx.fresh_retry = true;
    ctx.fresh_retry_used = true;
}

/// Ask the retry rule about a failed attempt, and count the failure against
/// the backend if the rule blames it. Returns whether to try again (the
/// next attempt's backend then comes from [`begin_attempt`]).
pub fn judge_failure(ctx: &mut Ctx, failed: super::retry::Failed) -> bool {
    use super::retry::{judge, Retry};
    let failed = super::retry::Failed {
        fresh_retry_used: ctx.fresh_retry_used,
        ..failed
    };
    let decision = judge(&failed);
    record_failure(ctx, failed.kind, decision.blame);
    match decision.retry {
        Retry::SameBackend => {
            retry_same_backend(ctx);
            true
        }
        Retry::NextBackend => retries_allowed(ctx),
        Retry::No => false,
    }
}

/// Whether another attempt is allowed after the ones made.
pub fn retries_allowed(ctx: &Ctx) -> bool {
    let retries = ctx.snap.as_ref().map_or(0, |s| s.config.proxy.retries);
    ctx.attempts() <= retries
}

/// Record a failed attempt. If `blame` (see [`super::retry`]), it counts
/// against its backend (ejecting an outlier) and in the shift gate's
/// window; otherwise (a pooled connection found closed, a backend waiting
/// on a stalled client) it is only logged.
pub fn record_failure(ctx: &mut Ctx, kind: FailureKind, blame: bool) {
    ctx.last_failure = Some(kind);
    let (Some(snap), Some(id)) = (ctx.snap.as_ref(), ctx.current) else {
        return;
    };
    let p = id.pool;
    let pool = &snap.pools[p];
    let backend = &pool.backends[id.backend];
    if !blame {
        tracing::debug!(
            pool = %pool.name,
            backend = %backend.addr,
            kind = kind.as_str(),
            "attempt failed (not the backend's fault)"
        );
        return;
    }
    let now = now_ms();
    if kind != FailureKind::Status5xx {
        // A 5xx answer is counted with the other answers, in `record_answer`.
        if let Some(w) = ctx.route.and_then(|r| route_pool_window(snap, r, p)) {
            w.record_failure(now);
        }
    }
    warn!(
        pool = %pool.name,
        backend = %backend.addr,
        kind = kind.as_str(),
        attempt = ctx.tried.len(),
        "attempt failed"
    );
    if let Some(length) = backend.state.record_failure(
        kind,
        pool.outlier.as_ref(),
        pool.ejected(now),
        pool.max_ejected(),
        now,
    ) {
        warn!(
            pool = %pool.name,
            backend = %backend.addr,
            kind = kind.as_str(),
            "backend ejected for {}",
            humantime::format_duration(length)
        );
    }
}

/// The backend's (final, non-1xx) response head arrived with `status`: feed
/// the shift gate's window and the backend's passive health.
pub fn record_answer(ctx: &mut Ctx, status: u16) {
    ctx.response_started = true;
    ctx.upstream_ms = ctx.attempt_started.map(|t| t.elapsed().as_millis() as u64);
    if let (Some(snap), Some(ri), Some(id)) = (ctx.snap.as_ref(), ctx.route, ctx.current) {
        if let Some(w) = route_pool_window(snap, ri, id.pool) {
            let latency = std::time::Duration::from_millis(ctx.upstream_ms.unwrap_or(0));
            w.record(now_ms(), status >= 500, latency);
        }
    }
    match status {
        502..=504 => record_failure(ctx, FailureKind::Status5xx, true),
        _ => {
            if let (Some(snap), Some(id)) = (ctx.snap.as_ref(), ctx.current) {
                if let Some(backend) = snap.backend(id) {
                    backend.state.record_success(now_ms());
                }
            }
        }
    }
}

/// Count a finished request in the metrics and the access log. The adapter
/// fills in what it knows of the exchange (`client`, `method`, `host`,
/// `path`, `status`, `bytes`); the rest of the entry comes from `ctx`.
pub fn finish(metrics: &Metrics, ctx: &mut Ctx, done: Entry<'_>) {
    ctx.end_attempt();
    let Some(snap) = ctx.snap.as_ref() else {
        return;
    };
    let elapsed = ctx.started.elapsed();
    let pool = ctx.served_pool.or(ctx.pool);
    if let (Some(capture), Some(ri)) = (ctx.mirror.take(), ctx.route) {
        // The primary's own answer only: not the proxy's 502/504.
        let served = pool.filter(|_| ctx.proxy_status.is_none());
        crate::mirror::submit(snap, ri, served, capture);
    }
    match (ctx.route, pool) {
        (Some(ri), Some(p)) => {
            if let Some(m) = route_pool_metrics(snap, ri, p) {
                m.observe(done.status, elapsed.as_secs_f64());
            }
        }
        (None, _) => metrics.unmatched.inc(),
        _ => {}
    }
    if let Some(log) = &snap.access_log {
        let backend = ctx
            .tried
            .last()
            .and_then(|id| snap.backend(id))
            .map(|b| &*b.addr)
            .unwrap_or("");
        let line = crate::access_log::format(
            &Entry {
                route: ctx.route.map_or("", |r| &*snap.routes[r].name),
                pool: pool.map_or("", |p| &*snap.pools[p].name),
                backend,
                attempts: ctx.attempts() + usize::from(ctx.fresh_retry_used),
                upstream_ms: ctx.upstream_ms,
                total_ms: elapsed.as_secs_f64() * 1000.0,
                ..done
            },
            std::time::SystemTime::now(),
        );
        log.log(line);
    }
}
