//! Filling the report from the running proxy: each route's pools over the
//! gate's window (the last minute), the shift's position, the costs from
//! the config, and the history's samples.

use super::formula::{self, Blend};
use super::history::{self, History, Point, PoolPoint};
use super::*;
use crate::clock::now_ms;
use crate::control::Control;
use crate::shift::window::Sums;
use std::time::{Duration, SystemTime};

/// The span of the "now" figures: the gate's window.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

/// What the report needs to know of one route's shift.
struct Position {
    new: String,
    old: String,
    alpha: f64,
    state: String,
    step: usize,
    verdict: Option<String>,
}

/// A route's name, its pools' sums, and its shift's position.
type RouteSums = (String, Vec<(String, Sums)>, Option<Position>);

/// Each route's pools' sums over `span`, and its shift's position.
fn routes(control: &Control, span: Duration) -> Vec<RouteSums> {
    let snap = control.snapshot();
    let cfg = &snap.config;
    let now = now_ms();
    snap.routes
        .iter()
        .zip(&cfg.routes)
        .map(|(r, rc)| {
            let pools: Vec<(String, Sums)> = r
                .slots
                .iter()
                .zip(&r.windows)
                .map(|(s, w)| (snap.pools[s.pool].name.to_string(), w.sums(now, span, 0)))
                .collect();
            let position = rc.shift.as_ref().and_then(|sc| {
                let ctl = control.route_control(&r.name)?;
                let st = ctl.shift.as_ref()?;
                let shares = r.effective_shares(&snap.pools, now);
                let alpha = r
                    .slots
                    .iter()
                    .zip(shares)
                    .filter(|(s, _)| s.pool == sc.to)
                    .map(|(_, v)| v)
                    .sum::<f64>();
                let verdict = ctl.last_verdict.as_ref().map(|(_, v)| v.word().to_string());
                Some(Position {
                    new: cfg.pools[sc.to].name.clone(),
                    old: cfg.pools[sc.from].name.clone(),
                    alpha,
                    state: st.phase.as_str().to_string(),
                    step: st.shown_step(),
                    verdict,
                })
            });
            (r.name.to_string(), pools, position)
        })
        .collect()
}

/// Take one sample of every route into `history`.
pub(crate) fn sample(control: &Control, history: &History) {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let all = routes(control, history::SAMPLE);
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    history.retain(&names);
    for (name, pools, pos) in &all {
        let pools = pools
            .iter()
            .map(|(pool, s)| PoolPoint {
                pool: pool.clone(),
                requests: s.requests,
                errors: s.errors,
                p99_ms: ms(s.figures().p99),
            })
            .collect();
        history.push(
            name,
            Point {
                t,
                share: pos.as_ref().map(|p| p.alpha * 100.0),
                state: pos.as_ref().map(|p| p.state.clone()),
                step: pos.as_ref().map(|p| p.step),
                verdict: pos.as_ref().and_then(|p| p.verdict.clone()),
                pools,
            },
        );
    }
}

fn pool_now(pool: &str, s: &Sums) -> PoolNow {
    let f = s.figures();
    PoolNow {
        pool: pool.to_string(),
        requests: s.requests,
        errors: s.errors,
        rps: s.requests as f64 / WINDOW.as_secs_f64(),
        failure_rate: f.error_rate(),
        p50_ms: ms(s.quantile(0.5)),
        p99_ms: ms(f.p99),
    }
}

/// The report, now.
pub fn build(control: &Control, history: &History) -> ReportDoc {
    let config = control.config();
    let rs = &config.report;
    let cost_of = |pool: &str| {
        rs.pool_costs
            .iter()
            .find(|(n, _)| n == pool)
            .map(|(_, c)| *c)
    };
    let priced = !rs.pool_costs.is_empty();
    let routes = routes(control, WINDOW)
        .into_iter()
        .map(|(name, sums, pos)| {
            let pools: Vec<PoolNow> = sums.iter().map(|(p, s)| pool_now(p, s)).collect();
            let total_rps: f64 = pools.iter().map(|p| p.rps).sum();
            let find = |n: &str| pools.iter().find(|p| p.pool == n);
            let history = history.of(&name);
            let mut report = RouteReport {
                name,
                new_pool: None,
                old_pool: None,
                alpha: None,
                state: None,
                step: None,
                pools: pools.clone(),
                performance: None,
                loss: None,
                running_cost: None,
                projection: None,
                steps: Vec::new(),
                history: Vec::new(),
            };
            let running_now: f64 = pools
                .iter()
                .filter_map(|p| {
                    cost_of(&p.pool)
                        .map(|c| c.per_hour + c.per_million_requests * p.rps * 3600.0 / 1e6)
                })
                .sum();
            if let Some(pos) = pos {
                let (old, new) = (find(&pos.old), find(&pos.new));
                let a = pos.alpha;
                let blend =
                    |f: fn(&PoolNow) -> Option<f64>| match (old.and_then(f), new.and_then(f)) {
                        (Some(x), Some(y)) => Some(Blend::of(x, y, a)),
                        // A pool with no answers in the window weighs nothing
                        // only when its share is nothing.
                        (Some(x), None) if a == 0.0 => Some(Blend::of(x, x, a)),
                        (None, Some(y)) if a == 1.0 => Some(Blend::of(y, y, a)),
                        _ => None,
                    };
                report.performance = Some(Performance {
                    p50_ms: blend(|p| p.p50_ms),
                    p99_ms: blend(|p| p.p99_ms),
                });
                let (e1, e2) = (
                    old.map_or(0.0, |p| p.failure_rate),
                    new.map_or(0.0, |p| p.failure_rate),
                );
                let e = Blend::of(e1, e2, a);
                let failed = e.value * total_rps * 3600.0;
                report.loss = Some(Loss {
                    failure_rate: e,
                    failed_per_hour: failed,
                    cost_per_hour: rs.failure_cost.map(|c| c * failed),
                });
                let full_failed = e2 * total_rps * 3600.0;
                report.projection = Some(Projection {
                    p50_ms: new.and_then(|p| p.p50_ms),
                    p99_ms: new.and_then(|p| p.p99_ms),
                    failure_rate: e2,
                    failed_per_hour: full_failed,
                    loss_cost_per_hour: rs.failure_cost.map(|c| c * full_failed),
                });
                if priced {
                    let at_full = cost_of(&pos.new).map_or(0.0, |c| {
                        c.per_hour + c.per_million_requests * total_rps * 3600.0 / 1e6
                    });
                    report.running_cost = Some(RunningCost {
                        now: running_now,
                        at_full,
                    });
                }
                report.steps = history::steps(&history, &pos.new);
                report.new_pool = Some(pos.new);
                report.old_pool = Some(pos.old);
                report.alpha = Some(a);
                report.state = Some(pos.state);
                report.step = Some(pos.step);
            } else if priced {
                report.running_cost = Some(RunningCost {
                    now: running_now,
                    at_full: running_now,
                });
            }
            report.history = history;
            report
        })
        .collect();
    ReportDoc {
        generated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        currency: rs.currency.clone(),
        window_s: WINDOW.as_secs(),
        cost: match (rs.cost_before, rs.migration_cost) {
            (Some(b), Some(m)) => Some(CostFormula {
                before: b,
                migration: m,
                total: formula::cost(b, m),
            }),
            _ => None,
        },
        routes,
    }
}

/// The sampler: a sample every [`history::SAMPLE`]; the history written
/// next to the state file (if there is one) every minute and at shutdown.
pub async fn run(
    control: std::sync::Arc<Control>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(history::SAMPLE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let path = control
        .config()
        .state_path
        .as_deref()
        .map(history::file_for);
    let save = |control: &Control| {
        if let Some(p) = &path {
            if let Err(e) = control.history.save(p) {
                tracing::warn!(path = %p.display(), "cannot write the report history: {e}");
            }
        }
    };
    // The first tick is at once: skip it, so the first sample covers a
    // whole period.
    every.tick().await;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = every.tick() => {
                sample(&control, &control.history);
                n += 1;
                if n % 6 == 0 {
                    save(&control);
                }
            }
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
    save(&control);
}
