//! The report as `cutover report` prints it: per route, the pools'
//! figures, the formulas with their numbers, the projection at α = 1, the
//! running cost and the shift's steps.

use super::formula::round;
use super::{ReportDoc, RouteReport};
use std::fmt::Write as _;

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{} ms", round(x)))
}

/// The whole report.
pub fn render(doc: &ReportDoc) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Migration report, {} (figures over the last {} s; amounts in {})",
        doc.generated_at, doc.window_s, doc.currency
    );
    match &doc.cost {
        Some(c) => {
            let _ = writeln!(
                out,
                "cost: C = C1 + C2 = {} + {} = {}",
                round(c.before),
                round(c.migration),
                round(c.total)
            );
        }
        None => out.push_str("cost: C = C1 + C2 needs [report] cost_before and migration_cost\n"),
    }
    for r in &doc.routes {
        route(&mut out, r, &doc.currency);
    }
    out
}

fn route(out: &mut String, r: &RouteReport, currency: &str) {
    out.push('\n');
    match (&r.old_pool, &r.new_pool, r.alpha) {
        (Some(old), Some(new), Some(a)) => {
            let _ = writeln!(
                out,
                "route {}: {old} → {new}, step {} ({}), α = β = {}",
                r.name,
                r.step.unwrap_or(0),
                r.state.as_deref().unwrap_or("-"),
                round(a)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "route {}: no shift (no new pool to measure α against)",
                r.name
            );
        }
    }
    let _ = writeln!(
        out,
        "  {:<16} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "pool", "requests", "rps", "failures", "p50", "p99"
    );
    for p in &r.pools {
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>9} {:>10} {:>10} {:>10}",
            p.pool,
            p.requests,
            round(p.rps),
            format!("{:.2} %", p.failure_rate * 100.0),
            opt_ms(p.p50_ms),
            opt_ms(p.p99_ms)
        );
    }
    if let Some(perf) = &r.performance {
        for (name, b) in [("T (p50)", &perf.p50_ms), ("T (p99)", &perf.p99_ms)] {
            match b {
                Some(b) => {
                    let _ = writeln!(out, "  {}", b.text(name, " ms"));
                }
                None => {
                    let _ = writeln!(out, "  {name}: not enough answers from both pools yet");
                }
            }
        }
    }
    if let Some(l) = &r.loss {
        let cost = l
            .cost_per_hour
            .map_or(String::new(), |c| format!(", {} {currency}/h", round(c)));
        let _ = writeln!(
            out,
            "  {}  ({:.0} failed attempts/h{cost})",
            l.failure_rate.text("E", ""),
            l.failed_per_hour
        );
    }
    if let Some(p) = &r.projection {
        let cost = p
            .loss_cost_per_hour
            .map_or(String::new(), |c| format!(", {} {currency}/h", round(c)));
        let _ = writeln!(
            out,
            "  at α = 1: p50 {}, p99 {}, E = {} ({:.0} failed/h{cost})",
            opt_ms(p.p50_ms),
            opt_ms(p.p99_ms),
            round(p.failure_rate),
            p.failed_per_hour
        );
    }
    if let Some(c) = &r.running_cost {
        let _ = writeln!(
            out,
            "  running cost: {} {currency}/h now, {} {currency}/h at α = 1",
            round(c.now),
            round(c.at_full)
        );
    }
    for s in &r.steps {
        let _ = writeln!(
            out,
            "  step {} ({} %): T2 {} rps, p99 {}; E2 {:.2} %; gate {}{}",
            s.step,
            round(s.share),
            round(s.rps),
            opt_ms(s.p99_ms),
            s.failure_rate * 100.0,
            s.verdict.as_deref().unwrap_or("-"),
            if s.rolled_back { "; ROLLED BACK" } else { "" }
        );
    }
}
