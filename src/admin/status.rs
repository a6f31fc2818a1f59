//! The JSON of `/services` and `/status`.

use crate::clock::now_ms;
use crate::control::Control;
use crate::health::FailureKind;
use crate::reload::Reloader;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering::Relaxed;

/// The span of the pools' recent figures in `/status`.
const RECENT: std::time::Duration = std::time::Duration::from_secs(10);

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `/services`: one entry per backend.
pub(super) fn services(control: &Control) -> Value {
    let snap = control.snapshot();
    let now = now_ms();
    let list: Vec<Value> = snap
        .pools
        .iter()
        .flat_map(|p| {
            p.backends.iter().map(move |b| {
                json!({
                    "name": format!("{}/{}", p.name, b.addr),
                    "pool": &*p.name,
                    "addr": &*b.addr,
                    "status": b.state.status(now).as_str(),
                    "weight": b.weight,
                })
            })
        })
        .collect();
    Value::Array(list)
}

fn figures(f: &crate::shift::window::Figures) -> Value {
    json!({
        "requests": f.requests,
        "errors": f.errors,
        "error_rate": f.error_rate(),
        "p99_ms": f.p99.map(|d| d.as_secs_f64() * 1000.0),
    })
}

/// The shift of `route` as JSON, if it has one.
pub(super) fn shift_of(control: &Control, route: &str) -> Option<Value> {
    let config = control.config();
    let r = config.routes.iter().find(|r| r.name == route)?;
    let cfg = r.shift.as_ref()?;
    let rc = control.route_control(route)?;
    let state = rc.shift.as_ref()?;
    let verdict = rc.last_verdict.as_ref().map(|(at, v)| {
        json!({
            "at": rfc3339(*at),
            "result": v.word(),
            "reasons": v.reasons,
            "to": figures(&v.to),
            "from": figures(&v.from),
            "p99_ratio": v.p99_ratio,
        })
    });
    Some(json!({
        "state": state.phase.as_str(),
        "to": config.pools[cfg.to].name,
        "from": config.pools[cfg.from].name,
        "steps": cfg.steps,
        "step": state.shown_step(),
        "share": state.share(cfg).unwrap_or(0.0),
        "hold": humantime::format_duration(cfg.hold).to_string(),
        "step_started_at": rfc3339(state.step_started),
        "next_step_at": state.next_step_at(cfg).map(rfc3339),
        "manual_split": rc.manual.is_some(),
        "gate": cfg.gate.as_ref().map(|_| json!({ "last_verdict": verdict })),
        "mirror_wait": rc.mirror_wait,
    }))
}

/// `/status`: config, routes, pools.
pub(super) fn status(control: &Control, reloader: Option<&Reloader>) -> Value {
    let snap = control.snapshot();
    let cfg = &snap.config;
    let now = now_ms();
    let (loaded_at, last) = control.load_info();
    let last_reload = match last {
        None => Value::Null,
        Some(o) => json!({
            "at": rfc3339(o.at),
            "result": if o.error.is_some() { "error" } else { "ok" },
            "error": o.error,
        }),
    };
    let routes: Vec<Value> = snap
        .routes
        .iter()
        .zip(&cfg.routes)
        .map(|(r, rc)| {
            let total: f64 = rc.split.iter().map(|e| e.weight).sum();
            let configured: Map<String, Value> = rc
                .split
                .iter()
                .map(|e| {
                    let pct = if total > 0.0 {
                        e.weight * 100.0 / total
                    } else {
                        0.0
                    };
                    (cfg.pools[e.pool].name.clone(), json!(pct))
                })
                .collect();
            let current: Map<String, Value> = r
                .slots
                .iter()
                .zip(&r.buckets)
                .filter(|(s, _)| !s.failover)
                .map(|(s, b)| {
                    (
                        snap.pools[s.pool].name.to_string(),
                        json!(f64::from(*b) / f64::from(crate::split::BUCKETS) * 100.0),
                    )
                })
                .collect();
            let effective: Map<String, Value> = r
                .slots
                .iter()
                .zip(r.effective_shares(&snap.pools, now))
                .map(|(s, share)| (snap.pools[s.pool].name.to_string(), json!(share * 100.0)))
                .collect();
            let manual = control
                .route_control(&r.name)
                .is_some_and(|c| c.manual.is_some());
            json!({
                "name": &*r.name,
                "shift": shift_of(control, &r.name).unwrap_or(Value::Null),
                "configured_split": configured,
                "split": current,
                "manual_split": manual,
                "effective_split": effective,
                "retries": r.stats.retries.load(Relaxed),
                "mirror": super::mirror::status_of(&snap, r),
            })
        })
        .collect();
    let pools: Vec<Value> = snap
        .pools
        .iter()
        .enumerate()
        .map(|(pi, p)| {
            let backends: Vec<Value> = p
                .backends
                .iter()
                .map(|b| {
                    let s = &b.state;
                    let tally = s.tally();
                    let failures: Map<String, Value> = FailureKind::ALL
                        .iter()
                        .map(|k| (k.as_str().to_string(), json!(s.failures(*k))))
                        .collect();
                    json!({
                        "addr": &*b.addr,
                        "resolved": b.socket.to_string(),
                        "weight": b.weight,
                        "status": s.status(now).as_str(),
                        "healthy": s.is_healthy(),
                        "ejected": s.is_ejected(now),
                        "draining": s.is_draining(),
                        "in_flight": s.stats.in_flight.load(Relaxed).max(0),
                        "attempts": s.stats.attempts.load(Relaxed),
                        "failures": failures,
                        "ejections": s.stats.ejections_total.load(Relaxed),
                        "last_check_error": tally.last_error,
                        "last_tls_error": s.last_tls_failure().map(|f| json!({
                            "at": rfc3339(f.at),
                            "reason": f.reason,
                            "via": f.via,
                        })),
                    })
                })
                .collect();
            // The pool's answers over the last 10 s, from the routes' windows.
            let mut recent = crate::shift::window::Sums::default();
            for r in &snap.routes {
                for (slot, w) in r.slots.iter().zip(&r.windows) {
                    if slot.pool == pi {
                        recent.add(&w.sums(now, RECENT, 0));
                    }
                }
            }
            let f = recent.figures();
            json!({
                "name": &*p.name,
                "last_10s": {
                    "requests": f.requests,
                    "errors": f.errors,
                    "rps": f.requests as f64 / RECENT.as_secs_f64(),
                    "error_rate": f.error_rate(),
                    "p99_ms": f.p99.map(|d| d.as_secs_f64() * 1000.0),
                },
                "available": p.available(now),
                "health_checks": p.health.is_some(),
                "backends": backends,
            })
        })
        .collect();
    json!({
        "config": {
            "path": cfg.path.display().to_string(),
            "hash": cfg.hash,
            "loaded_at": rfc3339(loaded_at),
            "last_reload": last_reload,
            "pending_restart": reloader.map(|r| r.pending_restart()).unwrap_or_default(),
        },
        "ready": control.lifecycle.is_ready(),
        "in_flight": control.lifecycle.in_flight.load(Relaxed),
        "routes": routes,
        "pools": pools,
        "cluster": super::fleet::status(control),
        "events": control
            .events
            .recent()
            .into_iter()
            .map(|e| json!({ "at": rfc3339(e.at), "kind": e.kind, "text": e.text }))
            .collect::<Vec<_>>(),
    })
}
