//! The report's chart: per route, three panels over the history — the new
//! pool's share, each pool's error rate, each pool's p99 — with the shift's
//! steps marked as dashed lines and rollbacks in red. Plain SVG, no
//! scripts, so it opens anywhere and embeds in the status page.

use super::{Point, ReportDoc, RouteReport};
use std::fmt::Write as _;

const W: f64 = 860.0;
const PANEL_H: f64 = 130.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// Text safe inside SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of every route in `doc`.
pub fn render(doc: &ReportDoc) -> String {
    let per_route = PANEL_H * 3.0 + 60.0;
    let h = 30.0 + per_route * doc.routes.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<title>cutover migration report {}</title>"#,
        esc(&doc.generated_at)
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    if doc.routes.is_empty() {
        let _ = writeln!(out, r#"<text x="{LEFT}" y="20">no routes</text>"#);
    }
    for (i, r) in doc.routes.iter().enumerate() {
        route(&mut out, r, 30.0 + per_route * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

/// A panel's series: (element id, legend, colour, points as (t, value)).
type Series = (String, String, &'static str, Vec<(u64, f64)>);

fn route(out: &mut String, r: &RouteReport, top: f64) {
    let pts = &r.history;
    let title = match (&r.old_pool, &r.new_pool) {
        (Some(o), Some(n)) => format!("route {}: {o} → {n}", r.name),
        _ => format!("route {}", r.name),
    };
    let _ = writeln!(
        out,
        r#"<g id="route-{}"><text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        esc(&r.name),
        top,
        esc(&title)
    );
    let (t0, t1) = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => (a.t, b.t.max(a.t + 1)),
        _ => (0, 1),
    };
    let pools: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for p in pts.iter().flat_map(|p| &p.pools) {
            if !v.contains(&p.pool) {
                v.push(p.pool.clone());
            }
        }
        v
    };
    let share: Vec<Series> = vec![(
        format!("share-{}", r.name),
        r.new_pool.clone().unwrap_or_else(|| "share".into()),
        COLORS[0],
        pts.iter()
            .filter_map(|p| p.share.map(|s| (p.t, s)))
            .collect(),
    )];
    let series = |f: &dyn Fn(&Point, &str) -> Option<f64>, kind: &str| -> Vec<Series> {
        pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let v = pts
                    .iter()
                    .filter_map(|p| f(p, pool).map(|x| (p.t, x)))
                    .collect();
                (
                    format!("{kind}-{}-{pool}", r.name),
                    pool.clone(),
                    COLORS[i % COLORS.len()],
                    v,
                )
            })
            .collect()
    };
    let errors = series(
        &|p, pool| {
            p.pools.iter().find(|x| x.pool == pool).map(|x| {
                if x.requests == 0 {
                    0.0
                } else {
                    x.errors as f64 * 100.0 / x.requests as f64
                }
            })
        },
        "errors",
    );
    let p99 = series(
        &|p, pool| {
            p.pools
                .iter()
                .find(|x| x.pool == pool)
                .and_then(|x| x.p99_ms)
        },
        "p99",
    );
    let y0 = top + 15.0;
    panel(
        out,
        "share on the new pool (%)",
        &share,
        y0,
        (t0, t1),
        Some(100.0),
        pts,
    );
    panel(
        out,
        "error rate (%)",
        &errors,
        y0 + PANEL_H + 15.0,
        (t0, t1),
        None,
        pts,
    );
    panel(
        out,
        "p99 (ms)",
        &p99,
        y0 + 2.0 * (PANEL_H + 15.0),
        (t0, t1),
        None,
        pts,
    );
    // The time axis: the first and last sample (UTC).
    let bottom = y0 + 3.0 * (PANEL_H + 15.0) - 20.0;
    if !pts.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{bottom}">{}</text><text x="{}" y="{bottom}" text-anchor="end">{}</text>"#,
            clock(t0),
            W - RIGHT,
            clock(t1)
        );
    }
    out.push_str("</g>\n");
}

/// `HH:MM:SS` (UTC) of Unix seconds `t`, with the date for the first.
fn clock(t: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.replace('T', " ").trim_end_matches('Z').to_string() + " UTC"
}

fn panel(
    out: &mut String,
    label: &str,
    series: &[Series],
    top: f64,
    (t0, t1): (u64, u64),
    max: Option<f64>,
    pts: &[Point],
) {
    let h = PANEL_H - 20.0;
    let width = W - LEFT - RIGHT;
    let top_value = max.unwrap_or_else(|| {
        let m = series
            .iter()
            .flat_map(|s| s.3.iter().map(|(_, v)| *v))
            .fold(0.0, f64::max);
        if m <= 0.0 {
            1.0
        } else {
            m * 1.1
        }
    });
    let x = |t: u64| LEFT + (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64 * width;
    let y = |v: f64| top + h - (v / top_value).clamp(0.0, 1.0) * h;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{width}" height="{h}" fill="none" stroke="#999"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}">{}</text>"#,
        LEFT + 4.0,
        top + 12.0,
        esc(label)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        LEFT - 4.0,
        top + 8.0,
        if top_value >= 10.0 {
            format!("{top_value:.0}")
        } else {
            super::formula::round(top_value)
        }
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        top + h
    );
    // Steps (dashed) and rollbacks (red), where the shift's position moves.
    for w in pts.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.state == b.state && a.step == b.step {
            continue;
        }
        let rolled = b.state.as_deref() == Some("rolled_back");
        let (class, colour, dash) = if rolled {
            ("rollback", "#d62728", "")
        } else {
            ("step", "#555", r#" stroke-dasharray="4 3""#)
        };
        let _ = writeln!(
            out,
            r#"<line class="{class}" x1="{x}" x2="{x}" y1="{top}" y2="{}" stroke="{colour}"{dash}/>"#,
            top + h,
            x = x(b.t)
        );
    }
    for (i, (id, legend, colour, values)) in series.iter().enumerate() {
        let pts: Vec<String> = values
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline id="{}" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            esc(id),
            pts.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
            W - RIGHT - 120.0,
            top + 12.0 + 12.0 * i as f64,
            esc(legend)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{PoolPoint, RouteReport};

    fn point(t: u64, share: f64, step: usize, state: &str, cloud_err: u64) -> Point {
        Point {
            t,
            share: Some(share),
            state: Some(state.into()),
            step: Some(step),
            verdict: None,
            pools: vec![
                PoolPoint {
                    pool: "onprem".into(),
                    requests: 100,
                    errors: 0,
                    p99_ms: Some(30.0),
                },
                PoolPoint {
                    pool: "cloud".into(),
                    requests: 100,
                    errors: cloud_err,
                    p99_ms: Some(75.0),
                },
            ],
        }
    }

    #[test]
    fn the_chart_parses_and_has_its_series_and_marks() {
        let history = vec![
            point(0, 0.0, 0, "idle", 0),
            point(10, 1.0, 1, "running", 0),
            point(20, 5.0, 2, "running", 1),
            point(30, 5.0, 2, "running", 20),
            point(40, 0.0, 0, "rolled_back", 0),
        ];
        let doc = ReportDoc {
            generated_at: "2026-12-02T00:00:00Z".into(),
            currency: "CNY".into(),
            window_s: 60,
            cost: None,
            routes: vec![RouteReport {
                name: "api".into(),
                new_pool: Some("cloud".into()),
                old_pool: Some("onprem".into()),
                alpha: Some(0.0),
                state: Some("rolled_back".into()),
                step: Some(0),
                pools: Vec::new(),
                performance: None,
                loss: None,
                running_cost: None,
                projection: None,
                steps: Vec::new(),
                history,
            }],
        };
        let svg = render(&doc);
        let xml = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        let lines: Vec<(&str, usize)> = xml
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .map(|n| {
                (
                    n.attribute("id").unwrap_or(""),
                    n.attribute("points").unwrap_or("").split(' ').count(),
                )
            })
            .collect();
        for id in [
            "share-api",
            "errors-api-onprem",
            "errors-api-cloud",
            "p99-api-onprem",
            "p99-api-cloud",
        ] {
            assert!(lines.contains(&(id, 5)), "{id} with 5 points in {lines:?}");
        }
        let class = |c: &str| {
            xml.descendants()
                .filter(|n| n.attribute("class") == Some(c))
                .count()
        };
        // Two step changes (idle→1, 1→2) and a rollback, in each of 3 panels.
        assert_eq!(class("step"), 6);
        assert_eq!(class("rollback"), 3);
        // The cloud's error rate peaks at 20 %: the highest point of its line.
        assert!(svg.contains("<title>cutover migration report"));
    }

    #[test]
    fn names_are_escaped() {
        let doc = ReportDoc {
            generated_at: "<now>".into(),
            currency: "X".into(),
            window_s: 60,
            cost: None,
            routes: Vec::new(),
        };
        let svg = render(&doc);
        assert!(roxmltree::Document::parse(&svg).is_ok());
        assert!(svg.contains("&lt;now&gt;"));
    }
}
