//! A route's definition: the explicit, versioned text that says which
//! split and shift runtime decisions (shift progress, an operator's split)
//! belong to, its identity, and how state files of earlier versions are
//! still recognised.

use crate::config::{Config, RouteConfig};
use std::time::UNIX_EPOCH;

/// What identifies a route's split and shift: runtime decisions about the
/// route (shift progress, an operator's split) are kept across a reload or
/// a restart only while this stays the same. An explicit, versioned text —
/// each part named, only the gate settings that are set — so that a new
/// version of cutover (a new field in the config types) reads the same
/// route the same way; see `same_route` for files written before it.
pub fn route_definition(config: &Config, route: &RouteConfig) -> String {
    use std::fmt::Write;
    let pool = |i: usize| config.pools[i].name.as_str();
    let mut out = String::from("v2 split=");
    for (i, e) in route.split.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{}:{}", pool(e.pool), e.weight);
    }
    let Some(s) = &route.shift else {
        return out;
    };
    let steps: Vec<String> = s.steps.iter().map(f64::to_string).collect();
    let start = s
        .start_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or("-".to_string(), |d| d.as_millis().to_string());
    let _ = write!(
        out,
        " shift=to:{},from:{},steps:{},hold_ms:{},start_ms:{start}",
        pool(s.to),
        pool(s.from),
        steps.join("/"),
        s.hold.as_millis()
    );
    if let Some(g) = &s.gate {
        out.push_str(",gate:");
        let mut parts = Vec::new();
        if let Some(v) = g.max_error_rate {
            parts.push(format!("max_error_rate={v}"));
        }
        if let Some(v) = g.max_p99 {
            parts.push(format!("max_p99_ms={}", v.as_millis()));
        }
        if let Some(v) = g.max_p99_ratio {
            parts.push(format!("max_p99_ratio={v}"));
        }
        if let Some(v) = g.max_mirror_mismatch {
            parts.push(format!("max_mirror_mismatch={v}"));
        }
        parts.push(format!("min_requests={}", g.min_requests));
        parts.push(format!("on_breach={:?}", g.on_breach).to_lowercase());
        out.push_str(&parts.join(";"));
    }
    out
}

/// The part of a route's definition that its progress belongs to: the split
/// and the shift's pools, steps and start. A new `hold` or new gate
/// thresholds keep the shift's step and the operator's decisions (a pause, a
/// rollback, a manual split); a new split, target, source, steps or start
/// time begins the shift afresh.
pub(super) fn identity(definition: &str) -> String {
    let Some((split, shift)) = definition.split_once(" shift=") else {
        return definition.to_string();
    };
    if !definition.starts_with("v2 ") {
        return definition.to_string();
    }
    let shift = shift.split(",gate:").next().unwrap_or_default();
    let kept: Vec<&str> = shift
        .split(',')
        .filter(|part| !part.starts_with("hold_ms:"))
        .collect();
    format!("{split} shift={}", kept.join(","))
}

/// Whether a persisted `definition` belongs to `route` as configured now:
/// the current form, or the form cutover wrote before it had one
/// ([`legacy_definition`]), so a state file from an older version is still
/// honoured after an upgrade.
pub(super) fn same_route(definition: &str, config: &Config, route: &RouteConfig) -> bool {
    if definition.starts_with("v2 ") {
        identity(definition) == identity(&route_definition(config, route))
    } else {
        definition == legacy_definition(config, route)
    }
}

/// The route definition as versions before the explicit form wrote it (the
/// `Debug` text of the split and shift). Only read, never written.
fn legacy_definition(config: &Config, route: &RouteConfig) -> String {
    let pool = |i: usize| config.pools[i].name.as_str();
    let split: Vec<(&str, f64)> = route
        .split
        .iter()
        .map(|e| (pool(e.pool), e.weight))
        .collect();
    let shift = route.shift.as_ref().map(|s| {
        (
            pool(s.to),
            pool(s.from),
            s.steps.clone(),
            s.hold,
            s.start_at,
            s.gate.as_ref().map(legacy::GateConfig::of),
        )
    });
    format!("{split:?} {shift:?}")
}

mod legacy {
    //! The gate settings as older versions' `Debug` text showed them (the
    //! fields they had), so their state files still match.

    /// The gate of a legacy definition; its name and fields are what that
    /// text holds.
    #[derive(Debug)]
    #[allow(dead_code)] // Read through `Debug` only.
    pub(super) struct GateConfig {
        max_error_rate: Option<f64>,
        max_p99: Option<std::time::Duration>,
        max_p99_ratio: Option<f64>,
        min_requests: u64,
        on_breach: crate::config::OnBreach,
    }

    impl GateConfig {
        pub(super) fn of(g: &crate::config::GateConfig) -> GateConfig {
            GateConfig {
                max_error_rate: g.max_error_rate,
                max_p99: g.max_p99,
                max_p99_ratio: g.max_p99_ratio,
                min_requests: g.min_requests,
                on_breach: g.on_breach,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::identity;

    #[test]
    fn hold_and_gate_are_not_part_of_a_routes_identity() {
        let a = "v2 split=onprem:100,cloud:0 shift=to:cloud,from:onprem,steps:10/50/100,hold_ms:60000,start_ms:-,gate:max_error_rate=0.01;min_requests=100;on_breach=rollback";
        let b = "v2 split=onprem:100,cloud:0 shift=to:cloud,from:onprem,steps:10/50/100,hold_ms:30000,start_ms:-,gate:max_error_rate=0.05;min_requests=100;on_breach=rollback";
        let c = "v2 split=onprem:100,cloud:0 shift=to:cloud,from:onprem,steps:20/100,hold_ms:60000,start_ms:-";
        assert_eq!(identity(a), identity(b));
        assert_eq!(
            identity(a),
            "v2 split=onprem:100,cloud:0 shift=to:cloud,from:onprem,steps:10/50/100,start_ms:-"
        );
        assert_ne!(identity(a), identity(c));
        assert_eq!(identity("v2 split=a:1"), "v2 split=a:1");
    }
}
