//! `cutover status`: a running proxy's `/status` as tables.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// Fetch `/status` from `admin` (a base URL) with an optional bearer token.
pub(super) async fn fetch(admin: &str, token: Option<&str>) -> Result<Value, String> {
    let url = format!("{}/status", admin.trim_end_matches('/'));
    let mut req = http::Request::get(&url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad admin URL {url:?}: {e}"))?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 5s"))?
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    if status == http::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "{url}: unauthorized (pass --token or set CUTOVER_ADMIN_TOKEN)"
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

fn shares(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return "-".into();
    };
    map.iter()
        .map(|(pool, pct)| format!("{pool} {:.1}%", pct.as_f64().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn shift(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    let state = v["state"].as_str().unwrap_or("?");
    let mut s = state.to_string();
    if let (Some(step), Some(steps)) = (v["step"].as_u64(), v["steps"].as_array()) {
        let _ = write!(s, " step {step}/{}", steps.len());
    }
    if let Some(share) = v["share"].as_f64() {
        let _ = write!(s, " ({share}% on {})", v["to"].as_str().unwrap_or("?"));
    }
    if let Some(next) = v["next_step_at"].as_str() {
        let _ = write!(s, ", next {next}");
    }
    s
}

/// Render `/status` as text tables.
pub(super) fn render(v: &Value) -> String {
    let mut out = String::new();
    let c = &v["config"];
    let last = match c["last_reload"]["result"].as_str() {
        Some("error") => format!(
            "error: {}",
            c["last_reload"]["error"].as_str().unwrap_or("?")
        ),
        Some(r) => r.to_string(),
        None => "none".into(),
    };
    let _ = writeln!(
        out,
        "config {}  hash {}  loaded {}  last reload: {}",
        c["path"].as_str().unwrap_or("?"),
        c["hash"].as_str().unwrap_or("?"),
        c["loaded_at"].as_str().unwrap_or("?"),
        last
    );
    if let Some(p) = c["pending_restart"].as_array().filter(|p| !p.is_empty()) {
        let names: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "needs a restart to apply: {}", names.join(", "));
    }
    let _ = writeln!(out, "ready: {}  in flight: {}", v["ready"], v["in_flight"]);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<30} {:<30} SHIFT",
        "ROUTE", "SPLIT", "EFFECTIVE"
    );
    for r in v["routes"].as_array().into_iter().flatten() {
        let mut split = shares(&r["split"]);
        if r["manual_split"].as_bool() == Some(true) {
            split.push_str(" (manual)");
        }
        let _ = writeln!(
            out,
            "{:<16} {:<30} {:<30} {}",
            r["name"].as_str().unwrap_or("?"),
            split,
            shares(&r["effective_split"]),
            shift(&r["shift"])
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<12} {:<24} {:<10} {:>6} {:>9} {:>10} {:>8}",
        "POOL", "BACKEND", "STATUS", "WEIGHT", "IN-FLIGHT", "ATTEMPTS", "ERRORS"
    );
    for p in v["pools"].as_array().into_iter().flatten() {
        for b in p["backends"].as_array().into_iter().flatten() {
            let errors: u64 = b["failures"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "{:<12} {:<24} {:<10} {:>6} {:>9} {:>10} {:>8}",
                p["name"].as_str().unwrap_or("?"),
                b["addr"].as_str().unwrap_or("?"),
                b["status"].as_str().unwrap_or("?"),
                b["weight"],
                b["in_flight"],
                b["attempts"],
                errors
            );
        }
    }
    fleet(&mut out, &v["cluster"]);
    out
}

/// The fleet section (only with `[cluster]`): the connection to etcd, then
/// one line per replica and shifting route.
fn fleet(out: &mut String, c: &Value) {
    if c.is_null() {
        return;
    }
    let age = c["view_age_seconds"]
        .as_f64()
        .map_or("never".to_string(), |a| format!("{a:.1}s ago"));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "fleet {} as {}: etcd {} (last contact {age})",
        c["prefix"].as_str().unwrap_or("?"),
        c["name"].as_str().unwrap_or("?"),
        if c["connected"] == true {
            "connected"
        } else {
            "UNREACHABLE: split frozen"
        },
    );
    for d in c["drift"].as_array().into_iter().flatten() {
        let names: Vec<&str> = d["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "route {} is defined differently on {}: it does not advance until they agree",
            d["route"].as_str().unwrap_or("?"),
            names.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:<16} {:<12} {:>5} {:>7} {:>10}",
        "REPLICA", "HEARTBEAT", "ROUTE", "STATE", "STEP", "SHARE", "GATE-SHARE"
    );
    for r in c["replicas"].as_array().into_iter().flatten() {
        let mut name = r["name"].as_str().unwrap_or("?").to_string();
        if r["self"] == true {
            name.push_str(" *");
        }
        let beat = r["last_heartbeat_age_seconds"]
            .as_f64()
            .filter(|a| *a >= 0.0)
            .map_or("-".to_string(), |a| format!("{a:.1}s"));
        for (route, x) in r["routes"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{:<16} {:<10} {:<16} {:<12} {:>5} {:>6}% {:>9.0}%",
                name,
                beat,
                route,
                x["state"].as_str().unwrap_or("?"),
                x["step"],
                x["share"].as_f64().unwrap_or(0.0),
                x["gate_share"].as_f64().unwrap_or(0.0) * 100.0,
            );
        }
    }
}
