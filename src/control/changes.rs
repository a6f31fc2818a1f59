//! What a reload changed, in words for the log: pools and backends added or
//! removed, routes added or removed, and for each route what changed and
//! what became of its shift (kept on its step with the operator's decisions,
//! or begun afresh, and what that dropped). Pure: configs and decisions in,
//! lines out.

use super::RouteControl;
use crate::config::{Config, GateConfig, RouteConfig};
use crate::shift::Phase;

fn split_text(cfg: &Config, r: &RouteConfig) -> String {
    r.split
        .iter()
        .map(|e| format!("{} {}", cfg.pools[e.pool].name, e.weight))
        .collect::<Vec<_>>()
        .join(", ")
}

fn gate_text(g: &Option<GateConfig>) -> String {
    let Some(g) = g else { return "none".into() };
    let mut parts = Vec::new();
    if let Some(v) = g.max_error_rate {
        parts.push(format!("max_error_rate {v}"));
    }
    if let Some(v) = g.max_p99 {
        parts.push(format!("max_p99 {}", humantime::format_duration(v)));
    }
    if let Some(v) = g.max_p99_ratio {
        parts.push(format!("max_p99_ratio {v}"));
    }
    parts.push(format!("min_requests {}", g.min_requests));
    parts.push(format!("on_breach {:?}", g.on_breach).to_lowercase());
    parts.join(", ")
}

/// What changed between two versions of a route, in words.
pub(super) fn route_changes(
    old_cfg: &Config,
    old: &RouteConfig,
    cfg: &Config,
    new: &RouteConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (split_text(old_cfg, old), split_text(cfg, new));
    if a != b {
        out.push(format!("split {a} -> {b}"));
    }
    match (&old.shift, &new.shift) {
        (None, Some(_)) => out.push("a shift was added".into()),
        (Some(_), None) => out.push("its shift was removed".into()),
        (Some(o), Some(n)) => {
            let pool = |c: &Config, i: usize| c.pools[i].name.clone();
            if pool(old_cfg, o.to) != pool(cfg, n.to) {
                out.push(format!(
                    "shift target {} -> {}",
                    pool(old_cfg, o.to),
                    pool(cfg, n.to)
                ));
            }
            if pool(old_cfg, o.from) != pool(cfg, n.from) {
                out.push(format!(
                    "shift source {} -> {}",
                    pool(old_cfg, o.from),
                    pool(cfg, n.from)
                ));
            }
            if o.steps != n.steps {
                let t = |s: &[f64]| {
                    s.iter()
                        .map(|v| format!("{v}"))
                        .collect::<Vec<_>>()
                        .join("/")
                };
                out.push(format!("steps {} -> {} %", t(&o.steps), t(&n.steps)));
            }
            if o.start_at != n.start_at {
                out.push("start_at changed".into());
            }
            if o.hold != n.hold {
                out.push(format!(
                    "hold {} -> {}",
                    humantime::format_duration(o.hold),
                    humantime::format_duration(n.hold)
                ));
            }
            let (ga, gb) = (gate_text(&o.gate), gate_text(&n.gate));
            if ga != gb {
                out.push(format!("gate ({ga}) -> ({gb})"));
            }
        }
        (None, None) => {}
    }
    out
}

/// Where a route's shift and the operator's decisions stand, in words.
pub(super) fn decisions(r: &RouteConfig, rc: &RouteControl) -> String {
    let mut parts = Vec::new();
    if let (Some(cfg), Some(s)) = (&r.shift, &rc.shift) {
        let share = s.share(cfg).unwrap_or(0.0);
        parts.push(match s.phase {
            Phase::Idle => "not started".to_string(),
            Phase::Running => format!("step {} ({share} %)", s.step + 1),
            Phase::Paused => format!("paused on step {} ({share} %)", s.step + 1),
            Phase::RolledBack => "rolled back".to_string(),
            Phase::Complete => format!("complete ({share} %)"),
        });
    }
    if rc.manual.is_some() {
        parts.push("a manual split".into());
    }
    parts.join(", ")
}

/// Whether `rc` holds something an operator (or the gate) decided: a pause,
/// a rollback, a manual split.
pub(super) fn has_operator_state(rc: &RouteControl) -> bool {
    rc.manual.is_some()
        || rc
            .shift
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Paused | Phase::RolledBack))
}

/// What a process starting on `cfg` serves, in words: the config file, each
/// route's split and where its shift stands (moving traffic now, or when it
/// will start).
pub(super) fn startup(
    cfg: &Config,
    routes: &std::collections::HashMap<String, RouteControl>,
) -> Vec<String> {
    let mut out = vec![format!(
        "config {} (hash {}): {} pool{}, {} route{}",
        cfg.path.display(),
        cfg.hash,
        cfg.pools.len(),
        if cfg.pools.len() == 1 { "" } else { "s" },
        cfg.routes.len(),
        if cfg.routes.len() == 1 { "" } else { "s" },
    )];
    for r in &cfg.routes {
        let mut line = format!("route {}: split {}", r.name, split_text(cfg, r));
        if let (Some(s), Some(rc)) = (&r.shift, routes.get(&r.name)) {
            let steps: Vec<String> = s.steps.iter().map(|v| format!("{v}")).collect();
            line.push_str(&format!(
                "; shift to {} {} % every {}: ",
                cfg.pools[s.to].name,
                steps.join("/"),
                humantime::format_duration(s.hold)
            ));
            match rc.shift.as_ref() {
                Some(st) if st.phase == Phase::Idle => line.push_str(&format!(
                    "starts at {}",
                    humantime::format_rfc3339_seconds(st.step_started)
                )),
                Some(st) if st.phase == Phase::Running => {
                    line.push_str(&format!("moving traffic now, {}", decisions(r, rc)))
                }
                _ => line.push_str(&decisions(r, rc)),
            }
        }
        out.push(line);
    }
    out
}

/// Pools and backends added or removed.
pub(super) fn pool_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for p in &new.pools {
        match old.pools.iter().find(|o| o.name == p.name) {
            None => out.push(format!("pool {} added", p.name)),
            Some(o) => {
                for b in &p.backends {
                    if !o.backends.iter().any(|x| x.addr == b.addr) {
                        out.push(format!("pool {}: backend {} added", p.name, b.addr));
                    }
                }
                for b in &o.backends {
                    if !p.backends.iter().any(|x| x.addr == b.addr) {
                        out.push(format!("pool {}: backend {} removed", p.name, b.addr));
                    }
                }
            }
        }
    }
    for o in &old.pools {
        if !new.pools.iter().any(|p| p.name == o.name) {
            out.push(format!("pool {} removed", o.name));
        }
    }
    for r in &old.routes {
        if !new.routes.iter().any(|n| n.name == r.name) {
            out.push(format!("route {} removed", r.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra_pool: bool, hold: &str, steps: &str, rate: &str) -> Config {
        let pool = if extra_pool {
            "[pools.spare]\nbackends = [\"127.0.0.1:9\"]\n"
        } else {
            ""
        };
        let text = format!(
            "[pools.onprem]\nbackends = [\"127.0.0.1:1\"]\n[pools.cloud]\nbackends = [\"127.0.0.1:2\"]\n{pool}\
             [[routes]]\nname = \"www\"\nsplit = {{ onprem = 100, cloud = 0 }}\n[routes.shift]\nto = \"cloud\"\nsteps = [{steps}]\nhold = \"{hold}\"\n\
             [routes.shift.gate]\nmax_error_rate = {rate}\n"
        );
        Config::from_str_named(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_changed_hold_and_gate_are_named() {
        let (a, b) = (
            cfg(false, "1m", "10, 50, 100", "0.01"),
            cfg(true, "30s", "10, 50, 100", "0.05"),
        );
        let lines = route_changes(&a, &a.routes[0], &b, &b.routes[0]);
        assert_eq!(
            lines,
            vec![
                "hold 1m -> 30s".to_string(),
                "gate (max_error_rate 0.01, min_requests 100, on_breach rollback) -> (max_error_rate 0.05, min_requests 100, on_breach rollback)".to_string()
            ]
        );
        assert_eq!(pool_changes(&a, &b), vec!["pool spare added".to_string()]);
        assert_eq!(pool_changes(&b, &a), vec!["pool spare removed".to_string()]);
        let c = cfg(false, "1m", "20, 100", "0.01");
        assert_eq!(
            route_changes(&a, &a.routes[0], &c, &c.routes[0]),
            vec!["steps 10/50/100 -> 20/100 %".to_string()]
        );
    }
}
