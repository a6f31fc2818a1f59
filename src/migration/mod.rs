//! The migration report: the migration plan's formulas (cost, performance,
//! loss) filled per route from what cutover measures, a projection at
//! α = 1, running costs, and the shift's history (one point per 10 s for
//! 24 h) with each step's figures and the gate's verdicts.
//!
//! [`ReportDoc`] is what `GET /report` answers; `cutover report` reads it
//! back to print text or JSON or draw the chart ([`svg`]).

pub mod formula;
pub mod history;
mod live;
pub mod svg;
pub mod text;

pub use history::{History, Point, PoolPoint};
pub use live::{build, run};

use formula::Blend;
use serde::{Deserialize, Serialize};

/// `GET /report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportDoc {
    /// When it was made (RFC 3339).
    pub generated_at: String,
    /// The currency of every amount.
    pub currency: String,
    /// The span the "now" figures cover, in seconds.
    pub window_s: u64,
    /// C = C1 + C2, when both are configured.
    pub cost: Option<CostFormula>,
    /// Per route.
    pub routes: Vec<RouteReport>,
}

/// `C = C1 + C2`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CostFormula {
    /// C1: the system before the migration.
    pub before: f64,
    /// C2: the extra cost of migrating.
    pub migration: f64,
    /// C.
    pub total: f64,
}

/// One route's migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteReport {
    /// The route.
    pub name: String,
    /// The pool traffic moves to (the shift's `to`), if the route shifts.
    pub new_pool: Option<String>,
    /// The pool it moves from.
    pub old_pool: Option<String>,
    /// α = β: the share of the route's traffic now on the new pool
    /// (effective, after failover), 0–1.
    pub alpha: Option<f64>,
    /// The shift's state and step (1-based; 0 before it starts).
    pub state: Option<String>,
    /// The shift's step.
    pub step: Option<usize>,
    /// Each pool's figures over the window.
    pub pools: Vec<PoolNow>,
    /// T for p50 and p99 latency (ms), with the numbers put in.
    pub performance: Option<Performance>,
    /// E: the failure rate, with the numbers put in, and what it costs.
    pub loss: Option<Loss>,
    /// Running cost per hour, now and with all traffic on the new pool.
    pub running_cost: Option<RunningCost>,
    /// The figures at α = 1, from the new pool's own.
    pub projection: Option<Projection>,
    /// Each step of the shift so far, from the history.
    pub steps: Vec<StepSummary>,
    /// The history: one point per sample, oldest first.
    pub history: Vec<Point>,
}

/// A pool's figures over the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolNow {
    /// The pool.
    pub pool: String,
    /// Attempts.
    pub requests: u64,
    /// 5xx answers and failed attempts.
    pub errors: u64,
    /// Attempts per second.
    pub rps: f64,
    /// errors / requests.
    pub failure_rate: f64,
    /// Median latency (upper bound of its bucket), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency (upper bound of its bucket), ms.
    pub p99_ms: Option<f64>,
}

/// T: the performance formula on latency.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Performance {
    /// On p50, ms.
    pub p50_ms: Option<Blend>,
    /// On p99, ms.
    pub p99_ms: Option<Blend>,
}

/// E: the loss formula on the failure rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Loss {
    /// E1, E2, β and E.
    pub failure_rate: Blend,
    /// Failed requests per hour at the route's present rate.
    pub failed_per_hour: f64,
    /// Their cost per hour, with `[report] failure_cost`.
    pub cost_per_hour: Option<f64>,
}

/// Running cost per hour.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RunningCost {
    /// The route's pools as they run now.
    pub now: f64,
    /// With all the route's traffic on the new pool and the old one gone.
    pub at_full: f64,
}

/// The route at α = 1.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Projection {
    /// T on p50, ms.
    pub p50_ms: Option<f64>,
    /// T on p99, ms.
    pub p99_ms: Option<f64>,
    /// E.
    pub failure_rate: f64,
    /// Failed requests per hour at the route's present rate.
    pub failed_per_hour: f64,
    /// Their cost per hour.
    pub loss_cost_per_hour: Option<f64>,
}

/// One step of the shift, from the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step (1-based).
    pub step: usize,
    /// The new pool's share on it, percent.
    pub share: f64,
    /// First and last sample on it (Unix seconds).
    pub from: u64,
    /// Last sample.
    pub to: u64,
    /// T2: the new pool's attempts per second over the step.
    pub rps: f64,
    /// T2: its worst p99 over the step, ms.
    pub p99_ms: Option<f64>,
    /// E2: its failure rate over the step.
    pub failure_rate: f64,
    /// The gate's last verdict on it (`pass`, `breach`, `no_verdict`).
    pub verdict: Option<String>,
    /// Whether the shift rolled back from it.
    pub rolled_back: bool,
}
