//! The metrics read from live state when `/metrics` is scraped: backend
//! health, failures by kind, attempts, in-flight requests, ejections,
//! retries, effective shares and shift state. They already live in atomics
//! for the proxy's own use, so the request path pays nothing for them.

use crate::clock::now_ms;
use crate::health::FailureKind;
use crate::snapshot::Snapshot;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use std::sync::atomic::Ordering::Relaxed;

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

/// Build a family of counters or gauges from `(labels, value)` samples.
pub(super) fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Vec<(Vec<(&str, &str)>, f64)>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    let metrics = samples
        .into_iter()
        .map(|(labels, value)| {
            let mut m = Metric::default();
            m.set_label(labels.iter().map(|(k, v)| label(k, v)).collect());
            if kind == MetricType::COUNTER {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            } else {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
            m
        })
        .collect();
    f.set_metric(metrics);
    f
}

/// Metrics read from live state at scrape time.
pub(super) fn live_families(snap: &Snapshot) -> Vec<MetricFamily> {
    let now = now_ms();
    let mut failures = Vec::new();
    let mut healthy = Vec::new();
    let mut in_flight = Vec::new();
    let mut attempts = Vec::new();
    let mut ejections = Vec::new();
    for pool in &snap.pools {
        for b in &pool.backends {
            let s = &b.state;
            for kind in FailureKind::ALL {
                failures.push((
                    vec![
                        ("pool", &*pool.name),
                        ("backend", &*b.addr),
                        ("kind", kind.as_str()),
                    ],
                    s.failures(kind) as f64,
                ));
            }
            let up = if s.available(now) { 1.0 } else { 0.0 };
            healthy.push((vec![("pool", &*pool.name), ("backend", &*b.addr)], up));
            in_flight.push((
                vec![("pool", &*pool.name), ("backend", &*b.addr)],
                s.stats.in_flight.load(Relaxed).max(0) as f64,
            ));
            attempts.push((
                vec![("pool", &*pool.name), ("backend", &*b.addr)],
                s.stats.attempts.load(Relaxed) as f64,
            ));
            ejections.push((
                vec![("pool", &*pool.name), ("backend", &*b.addr)],
                s.stats.ejections_total.load(Relaxed) as f64,
            ));
        }
    }
    let mut retries = Vec::new();
    let mut shares = Vec::new();
    let mut steps = Vec::new();
    let mut percents = Vec::new();
    for route in &snap.routes {
        if let Some(s) = &route.shift {
            let step = if s.phase == crate::shift::Phase::Idle {
                0
            } else {
                s.step + 1
            };
            steps.push((vec![("route", &*route.name)], step as f64));
            percents.push((vec![("route", &*route.name)], s.share));
        }
        retries.push((
            vec![("route", &*route.name)],
            route.stats.retries.load(Relaxed) as f64,
        ));
        for (slot, share) in route
            .slots
            .iter()
            .zip(route.effective_shares(&snap.pools, now))
        {
            shares.push((
                vec![
                    ("route", &*route.name),
                    ("pool", &*snap.pools[slot.pool].name),
                ],
                share,
            ));
        }
    }
    vec![
        family(
            "cutover_upstream_failures_total",
            "Failed attempts on backends, by pool, backend and kind.",
            MetricType::COUNTER,
            failures,
        ),
        family(
            "cutover_backend_healthy",
            "1 when the backend takes new requests (healthy, not ejected, not drained).",
            MetricType::GAUGE,
            healthy,
        ),
        family(
            "cutover_backend_in_flight",
            "Attempts in progress on the backend.",
            MetricType::GAUGE,
            in_flight,
        ),
        family(
            "cutover_upstream_attempts_total",
            "Attempts sent to the backend.",
            MetricType::COUNTER,
            attempts,
        ),
        family(
            "cutover_backend_ejections_total",
            "Times the backend was ejected by passive checks.",
            MetricType::COUNTER,
            ejections,
        ),
        family(
            "cutover_retries_total",
            "Attempts beyond the first, by route.",
            MetricType::COUNTER,
            retries,
        ),
        family(
            "cutover_shift_step",
            "Current step of the route's shift, 1-based (0 before the start).",
            MetricType::GAUGE,
            steps,
        ),
        family(
            "cutover_shift_percent",
            "Percent of the route's traffic the shift currently gives its target pool.",
            MetricType::GAUGE,
            percents,
        ),
        family(
            "cutover_route_share",
            "Effective share of each pool of a route after failover (0 to 1).",
            MetricType::GAUGE,
            shares,
        ),
    ]
}
