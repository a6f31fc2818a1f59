//! Prometheus metrics recorded on the request path, with the `prometheus`
//! crate: requests by route, pool and status code, the latency histogram,
//! and the control plane's counters. Handles are resolved when a snapshot is
//! built ([`RoutePoolMetrics`]), so recording a request is a few atomic adds
//! — no lock, no label strings. (What is read from live state when scraped
//! — backend health, failures, shares, shift state — is built by the admin
//! module, `admin::families`.)

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Latency buckets, 1 ms to 10 s.
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The process's metrics registry and the metrics recorded into it.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Requests no route matched.
    pub unmatched: IntCounter,
    /// `cutover_config_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `cutover_config_last_reload_success_timestamp_seconds`.
    pub last_reload_success: prometheus::Gauge,
    /// `cutover_shift_transitions_total{route,to_state}`.
    pub shift_transitions: IntCounterVec,
    /// Access log lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    route_pools: Mutex<HashMap<(String, String), Arc<RoutePoolMetrics>>>,
}

/// Pre-resolved handles for one route and pool.
pub struct RoutePoolMetrics {
    route: String,
    pool: String,
    requests: IntCounterVec,
    /// Latency of requests served by this pool.
    pub duration: Histogram,
    /// Counters by status code (100–599), created on first use.
    codes: Box<[OnceLock<IntCounter>]>,
}

impl RoutePoolMetrics {
    /// Record one finished request.
    #[inline]
    pub fn observe(&self, status: u16, seconds: f64) {
        self.duration.observe(seconds);
        let i = usize::from(status.clamp(100, 599) - 100);
        self.codes[i]
            .get_or_init(|| {
                self.requests.with_label_values(&[
                    &self.route,
                    &self.pool,
                    &status.clamp(100, 599).to_string(),
                ])
            })
            .inc();
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
    // ok: constant
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = counter_vec(
            "cutover_requests_total",
            "Requests proxied, by route, pool and status code.",
            &["route", "pool", "code"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "cutover_request_duration_seconds",
                "Time from request head to the end of the response, by route and pool.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "pool"],
        )
        .expect("static metric definition"); // ok: constant
        let unmatched = IntCounter::new(
            "cutover_unmatched_requests_total",
            "Requests no route matched (answered 404).",
        )
        .expect("static metric definition"); // ok: constant
        let reloads = counter_vec(
            "cutover_config_reloads_total",
            "Config reloads, by result (ok or error).",
            &["result"],
        );
        let last_reload_success = prometheus::Gauge::new(
            "cutover_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load.",
        )
        .expect("static metric definition"); // ok: constant
        let shift_transitions = counter_vec(
            "cutover_shift_transitions_total",
            "Shift state transitions, by route and the state entered.",
            &["route", "to_state"],
        );
        let access_log_dropped = IntCounter::new(
            "cutover_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind.",
        )
        .expect("static metric definition"); // ok: constant
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(unmatched.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload_success.clone()),
            Box::new(shift_transitions.clone()),
            Box::new(access_log_dropped.clone()),
        ] {
            // Names are distinct constants: registration cannot fail.
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            duration,
            unmatched,
            reloads,
            last_reload_success,
            shift_transitions,
            access_log_dropped,
            route_pools: Mutex::default(),
        }
    }

    /// Create the shift transition series of `route` at zero, so they are
    /// exported (and graphable) before the first transition.
    pub fn init_shift(&self, route: &str) {
        for phase in [
            crate::shift::Phase::Idle,
            crate::shift::Phase::Running,
            crate::shift::Phase::Paused,
            crate::shift::Phase::RolledBack,
            crate::shift::Phase::Complete,
        ] {
            self.shift_transitions
                .with_label_values(&[route, phase.as_str()]);
        }
    }

    /// The handles for `route` and `pool` (shared across snapshots).
    pub fn route_pool(&self, route: &str, pool: &str) -> Arc<RoutePoolMetrics> {
        let mut map = self.route_pools.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((route.to_string(), pool.to_string()))
            .or_insert_with(|| {
                Arc::new(RoutePoolMetrics {
                    route: route.to_string(),
                    pool: pool.to_string(),
                    requests: self.requests.clone(),
                    duration: self.duration.with_label_values(&[route, pool]),
                    codes: (0..500).map(|_| OnceLock::new()).collect(),
                })
            })
            .clone()
    }

    /// Render the recorded metrics and `extra` families (read from live
    /// state at scrape time) in the Prometheus text format.
    pub fn render(&self, extra: Vec<MetricFamily>) -> String {
        let mut families = self.registry.gather();
        families.extend(extra);
        // The encoder refuses a family without samples (and would stop there).
        families.retain(|f| !f.get_metric().is_empty());
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
