//! The human summary `cutover check` prints: listeners, pools, routes and each
//! shift as a timeline.

use super::*;
use std::fmt::Write;

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn pct(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}%")
    } else {
        format!("{v}%")
    }
}

/// A multi-line summary of `cfg`.
pub fn summary(cfg: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: OK (hash {})", cfg.path.display(), cfg.hash);
    let mut listeners: Vec<String> = cfg
        .proxy
        .listen
        .iter()
        .map(|a| format!("http {a}"))
        .collect();
    for t in &cfg.proxy.tls {
        listeners.push(format!(
            "https {} ({} cert{}{})",
            t.listen,
            t.certs.len(),
            if t.certs.len() == 1 { "" } else { "s" },
            if t.http2 { ", h2" } else { "" }
        ));
    }
    let _ = writeln!(s, "listeners: {}", listeners.join(", "));
    let _ = writeln!(
        s,
        "admin:     {} ({})",
        cfg.admin.listen,
        if cfg.admin.token.is_some() {
            "token required"
        } else {
            "no token"
        }
    );
    if let Some(c) = &cfg.cluster {
        let _ = writeln!(
            s,
            "cluster:   replica {} of the fleet at {} on etcd {}{}",
            c.name,
            c.prefix,
            c.etcd.join(", "),
            if c.auth.is_some() {
                " (with a user)"
            } else {
                ""
            }
        );
    }
    let p = &cfg.proxy;
    let _ = writeln!(
        s,
        "limits:    connect {}, read {}, idle {}, header {}, body {}, send {}, max header {} bytes, retry buffer {} bytes, retries {}, threads {}, grace {}{}",
        dur(p.connect_timeout),
        dur(p.read_timeout),
        dur(p.idle_timeout),
        dur(p.header_timeout),
        dur(p.body_timeout),
        dur(p.send_timeout),
        p.max_header_bytes,
        p.retry_buffer,
        p.retries,
        p.threads,
        dur(p.grace),
        if p.fast_path { "" } else { ", fast path off" }
    );
    let _ = writeln!(s, "pools:");
    for pool in &cfg.pools {
        let backends: Vec<String> = pool
            .backends
            .iter()
            .map(|b| format!("{} w{}", b.addr, b.weight))
            .collect();
        let _ = writeln!(s, "  {:<12} {}", pool.name, backends.join(", "));
        let health = match &pool.health {
            None => "none (backends assumed healthy)".to_string(),
            Some(h) => {
                let probe = match &h.probe {
                    Probe::Tcp => "TCP connect".to_string(),
                    Probe::Http { path, .. } => format!("GET {path}"),
                };
                format!(
                    "{probe} every {}, timeout {}, rise {}, fall {}",
                    dur(h.interval),
                    dur(h.timeout),
                    h.rise,
                    h.fall
                )
            }
        };
        let _ = writeln!(s, "  {:<12} health: {health}", "");
        let index = cfg
            .pools
            .iter()
            .position(|p| p.name == pool.name)
            .unwrap_or(0);
        let most = if cfg.pool_may_empty(index) {
            pool.backends.len()
        } else {
            pool.backends.len() / 2
        };
        let outlier = match pool.outlier {
            None => "off".to_string(),
            Some(_) if most == 0 => "never ejects its only backend (a route using the pool has no other pool to fail over to)".to_string(),
            Some(o) => format!(
                "eject after {} failures for {} (at most {most} of {} at once)",
                o.consecutive_failures,
                dur(o.ejection),
                pool.backends.len()
            ),
        };
        let tls = match &pool.tls {
            None => "plain HTTP".to_string(),
            Some(t) => format!(
                "TLS{}{}",
                if t.verify { " verified" } else { " UNVERIFIED" },
                if t.http2 { ", h2" } else { "" }
            ),
        };
        let _ = writeln!(s, "  {:<12} outlier: {outlier}; {tls}", "");
    }
    let _ = writeln!(s, "routes (first match wins):");
    for route in &cfg.routes {
        route_summary(&mut s, cfg, route);
    }
    for w in super::warnings::warnings(cfg, std::time::SystemTime::now()) {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

fn route_summary(s: &mut String, cfg: &Config, route: &RouteConfig) {
    let m = &route.matcher;
    let mut conds = Vec::new();
    match &m.host {
        Some(HostPattern::Exact(h)) => conds.push(format!("host {h}")),
        Some(HostPattern::Wildcard(h)) => conds.push(format!("host *{h}")),
        Some(HostPattern::Prefix(h)) => conds.push(format!("host {h}*")),
        None => {}
    }
    if let Some(p) = &m.path_prefix {
        conds.push(format!("path {p}*"));
    }
    if !m.methods.is_empty() {
        let ms: Vec<&str> = m.methods.iter().map(|m| m.as_str()).collect();
        conds.push(ms.join("|"));
    }
    for (k, v) in &m.headers {
        conds.push(format!("{k}: {}", v.to_str().unwrap_or("…")));
    }
    if conds.is_empty() {
        conds.push("every request".into());
    }
    let total: f64 = route.split.iter().map(|e| e.weight).sum();
    let split: Vec<String> = route
        .split
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                cfg.pools[e.pool].name,
                pct(round2(e.weight * 100.0 / total))
            )
        })
        .collect();
    let _ = writeln!(s, "  {:<12} {}", route.name, conds.join(", "));
    let _ = writeln!(s, "  {:<12} split: {}", "", split.join(" / "));
    if !route.failover.is_empty() {
        let f: Vec<&str> = route
            .failover
            .iter()
            .map(|p| cfg.pools[*p].name.as_str())
            .collect();
        let _ = writeln!(s, "  {:<12} failover: {}", "", f.join(", "));
    }
    if let Some(st) = &route.sticky {
        let how = match st {
            Sticky::Header(h) => format!("header {h}"),
            Sticky::Cookie(c) => format!("cookie {c}"),
            Sticky::SourceIp => "client IP".to_string(),
        };
        let _ = writeln!(s, "  {:<12} sticky by {how}", "");
    }
    if let Some(h) = &route.override_header {
        let _ = writeln!(s, "  {:<12} pool override header: {h}", "");
    }
    if let Some(shift) = &route.shift {
        let to = &cfg.pools[shift.to].name;
        let from = &cfg.pools[shift.from].name;
        let _ = writeln!(
            s,
            "  {:<12} shift {from} -> {to}, hold {} per step:",
            "",
            dur(shift.hold)
        );
        for (i, step) in shift.steps.iter().enumerate() {
            let offset = shift.hold * i as u32;
            let when = match shift.start_at {
                Some(t) => format!(
                    "{} (+{})",
                    humantime::format_rfc3339_seconds(t + offset),
                    dur(offset)
                ),
                None => format!("+{} after load", dur(offset)),
            };
            let _ = writeln!(
                s,
                "  {:<12}   step {}: {:>6} on {to}  at {when}",
                "",
                i + 1,
                pct(*step)
            );
        }
        if let Some(g) = &shift.gate {
            let mut limits = Vec::new();
            if let Some(e) = g.max_error_rate {
                limits.push(format!("error rate <= {}", pct(round2(e * 100.0))));
            }
            if let Some(p) = g.max_p99 {
                limits.push(format!("p99 <= {}", dur(p)));
            }
            if let Some(r) = g.max_p99_ratio {
                limits.push(format!("p99 <= {r}x {from}"));
            }
            let _ = writeln!(
                s,
                "  {:<12} gate: {} (min {} requests), on breach: {}",
                "",
                limits.join(", "),
                g.min_requests,
                match g.on_breach {
                    OnBreach::Rollback => "rollback",
                    OnBreach::Pause => "pause",
                }
            );
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
