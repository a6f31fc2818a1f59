//! Shadow traffic on the admin endpoint: each mirrored route's figures in
//! `/status` and `/metrics`, and its last mismatches at
//! `GET /routes/{route}/mirror`.

use super::families::family;
use super::AdminResponse;
use crate::control::Control;
use crate::snapshot::{Route, Snapshot};
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{json, Value};

/// The mirror of `route` as `/status` shows it (null without one).
pub(super) fn status_of(snap: &Snapshot, route: &Route) -> Value {
    let Some(m) = &route.mirror else {
        return Value::Null;
    };
    let methods: Vec<&str> = m.config.methods.iter().map(|x| x.as_str()).collect();
    json!({
        "to": &*snap.pools[m.config.to].name,
        "percent": m.config.percent,
        "methods": methods,
        "max_body": m.config.max_body,
        "timeout": humantime::format_duration(m.config.timeout).to_string(),
        "figures": m.state.figures(),
    })
}

/// `GET /routes/{route}/mirror`: settings, figures and the last
/// mismatches (newest first).
pub(super) fn diffs(control: &Control, route: &str) -> AdminResponse {
    let snap = control.snapshot();
    let Some(r) = snap.routes.iter().find(|r| &*r.name == route) else {
        return AdminResponse::error(404, format!("no route named {route:?}"));
    };
    let Some(m) = &r.mirror else {
        return AdminResponse::error(404, format!("route {route:?} has no [routes.mirror]"));
    };
    let mut body = status_of(&snap, r);
    if let Value::Object(o) = &mut body {
        o.insert("route".into(), json!(route));
        o.insert(
            "ignore".into(),
            json!({
                "headers": m.config.ignore_headers,
                "json": m.config.ignore_json,
            }),
        );
        o.insert("mismatches".into(), json!(m.state.recent()));
    }
    AdminResponse::json(200, body)
}

/// The mirror's counters, read at scrape time.
pub(super) fn families(snap: &Snapshot) -> Vec<MetricFamily> {
    let mut results = Vec::new();
    let mut kinds = Vec::new();
    for r in &snap.routes {
        let Some(m) = &r.mirror else { continue };
        let f = m.state.figures();
        for (result, n) in [
            ("mirrored", f.mirrored),
            ("compared", f.compared),
            ("matched", f.matched),
            ("mismatched", f.mismatched),
            ("dropped", f.dropped),
            ("too_large", f.too_large),
            ("error", f.errors),
            ("noise_sample", f.noise_samples),
        ] {
            results.push((vec![("route", &*r.name), ("result", result)], n as f64));
        }
        let k = &f.mismatched_by_kind;
        for (kind, n) in [("status", k.status), ("header", k.header), ("body", k.body)] {
            kinds.push((vec![("route", &*r.name), ("kind", kind)], n as f64));
        }
    }
    vec![
        family(
            "cutover_mirror_requests_total",
            "Mirrored requests by route and result: mirrored (copies sent), compared, matched, mismatched, dropped (queue full), too_large (body over max_body), error (no answer from the mirror), noise_sample (also sent again to the primary).",
            MetricType::COUNTER,
            results,
        ),
        family(
            "cutover_mirror_mismatches_total",
            "Compared answers that differ, by route and kind (status, header, body).",
            MetricType::COUNTER,
            kinds,
        ),
    ]
}
