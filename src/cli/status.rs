//! `cutover status`: a running proxy's `/status` as tables.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// The admin base URL and token to use: `--admin` (a URL, or `IP:port`),
/// else the config file's `[admin] listen` (a wildcard address asked on
/// loopback), else the default; `--token`, else the config's token.
pub(super) fn target(
    admin: Option<&str>,
    config: Option<&std::path::Path>,
    token: Option<String>,
) -> Result<(String, Option<String>), String> {
    let cfg = match config {
        Some(path) => Some(crate::config::Config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let url = match (admin, &cfg) {
        (Some(a), _) if a.contains("://") => a.to_string(),
        (Some(a), _) => format!("http://{a}"),
        (None, Some(c)) => {
            let mut addr = c.admin.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{addr}")
        }
        (None, None) => "http://127.0.0.1:9901".to_string(),
    };
    let token = token.or_else(|| cfg.and_then(|c| c.admin.token).map(|t| t.0));
    Ok((url, token))
}

/// A JSON value as plain text (strings without quotes), so that it can be
/// padded to a column's width (a `Value` ignores width when displayed).
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Write `rows` under `headers` as columns two spaces apart, each as wide as
/// its widest cell (`right`: numbers, aligned right).
fn table(out: &mut String, headers: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, c) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                text.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(text, "{c:>w$}");
            } else {
                let _ = write!(text, "{c:<w$}");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, &mut headers.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

/// Print an admin answer: as JSON, else in words by `render`.
pub(super) fn print(value: &Value, json: bool, render: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{}", render());
    }
}

/// [`fetch_path`] for a command: on a runtime of its own, waited for.
pub(super) fn fetch_blocking(
    admin: &str,
    path: &str,
    token: Option<&str>,
) -> Result<Value, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(fetch_path(admin, path, token))
}

/// GET `path` (JSON) from the admin endpoint `admin`.
pub(super) async fn fetch_path(
    admin: &str,
    path: &str,
    token: Option<&str>,
) -> Result<Value, String> {
    let url = format!("{}{path}", admin.trim_end_matches('/'));
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
    if let Some(wait) = v["mirror_wait"].as_str() {
        let _ = write!(s, "; waits: {wait}");
    }
    s
}

/// A route's mirror in a few words.
fn mirror(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    let f = &v["figures"];
    format!(
        "{} {}%: {}/{} differ, {} dropped",
        v["to"].as_str().unwrap_or("?"),
        v["percent"].as_f64().unwrap_or(0.0),
        f["mismatched"].as_u64().unwrap_or(0),
        f["compared"].as_u64().unwrap_or(0),
        f["dropped"].as_u64().unwrap_or(0),
    )
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
    let _ = writeln!(
        out,
        "ready: {}  in flight: {}",
        cell(&v["ready"]),
        cell(&v["in_flight"])
    );
    let _ = writeln!(out);
    let mut rows = Vec::new();
    for r in v["routes"].as_array().into_iter().flatten() {
        let mut split = shares(&r["split"]);
        if r["manual_split"].as_bool() == Some(true) {
            split.push_str(" (manual)");
        }
        rows.push(vec![
            cell(&r["name"]),
            split,
            shares(&r["effective_split"]),
            shift(&r["shift"]),
            mirror(&r["mirror"]),
        ]);
    }
    table(
        &mut out,
        &["ROUTE", "SPLIT", "EFFECTIVE", "SHIFT", "MIRROR"],
        &[false; 5],
        &rows,
    );
    let _ = writeln!(out);
    let mut rows = Vec::new();
    for p in v["pools"].as_array().into_iter().flatten() {
        for b in p["backends"].as_array().into_iter().flatten() {
            let errors: u64 = b["failures"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            rows.push(vec![
                cell(&p["name"]),
                cell(&b["addr"]),
                cell(&b["status"]),
                cell(&b["weight"]),
                cell(&b["in_flight"]),
                cell(&b["attempts"]),
                errors.to_string(),
            ]);
        }
    }
    table(
        &mut out,
        &[
            "POOL",
            "BACKEND",
            "STATUS",
            "WEIGHT",
            "IN-FLIGHT",
            "ATTEMPTS",
            "ERRORS",
        ],
        &[false, false, false, true, true, true, true],
        &rows,
    );
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
    let mut rows = Vec::new();
    for r in c["replicas"].as_array().into_iter().flatten() {
        let mut name = cell(&r["name"]);
        if r["self"] == true {
            name.push_str(" *");
        }
        let beat = r["last_heartbeat_age_seconds"]
            .as_f64()
            .filter(|a| *a >= 0.0)
            .map_or("-".to_string(), |a| format!("{a:.1}s"));
        for (route, x) in r["routes"].as_object().into_iter().flatten() {
            rows.push(vec![
                name.clone(),
                beat.clone(),
                route.clone(),
                cell(&x["state"]),
                cell(&x["step"]),
                format!("{}%", x["share"].as_f64().unwrap_or(0.0)),
                format!("{:.0}%", x["gate_share"].as_f64().unwrap_or(0.0) * 100.0),
            ]);
        }
    }
    table(
        out,
        &[
            "REPLICA",
            "HEARTBEAT",
            "ROUTE",
            "STATE",
            "STEP",
            "SHARE",
            "GATE-SHARE",
        ],
        &[false, false, false, false, true, true, true],
        &rows,
    );
}
