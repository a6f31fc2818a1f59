//! The admin HTTP API: plain functions of (state, request), testable without
//! sockets; `server.rs` is the thin Pingora adapter around them.
//!
//! Endpoints (JSON unless noted):
//!
//! | method, path | answer |
//! |---|---|
//! | GET `/` | the live status page (HTML; its data comes from `/status`) |
//! | GET `/healthz` | `{"status":"healthy"}` while the process serves |
//! | GET `/readyz` | 200 once ready, 503 before and while draining |
//! | GET `/services` | one entry per backend: name, pool, addr, status, weight |
//! | GET `/status` | config, routes (splits, shift), pools and backends |
//! | GET `/metrics` | Prometheus text format |
//! | GET `/report` | the migration report: formulas, projection, costs, history |
//! | GET `/report.svg` | its chart (SVG) |
//! | POST `/reload` | reload the config file: 200 with the summary, or 422 |
//! | POST `/routes/{route}/shift/{pause,resume,advance,rollback}` | control a shift |
//! | PUT `/routes/{route}/split` | set a split by hand (pauses the shift) |
//! | DELETE `/routes/{route}/split` | clear a split set by hand |
//! | POST `/pools/{pool}/backends/{addr}/{drain,undrain}` | take a backend out / back |
//!
//! With a token configured, everything but `/healthz` and `/readyz` needs
//! `Authorization: Bearer <token>` (401 otherwise; compared in constant
//! time, never logged). Mutations take POST or PUT; a GET gets 405.

mod families;
mod fleet;
mod mirror;
mod report;

pub(crate) mod server;
mod status;

use crate::control::{Control, FleetError, ShiftError, SplitError};
use crate::reload::Reloader;
use crate::shift::Action;
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The live status page served at `GET /`: one self-contained file.
const STATUS_PAGE: &str = include_str!("page.html");

/// A request to the admin API.
#[derive(Debug, Clone)]
pub(crate) struct AdminRequest {
    /// Method.
    pub method: Method,
    /// Path (no query).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// The admin API's answer.
#[derive(Debug, Clone)]
pub(crate) struct AdminResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl AdminResponse {
    fn json(status: u16, value: Value) -> AdminResponse {
        let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
        body.push(b'\n');
        AdminResponse {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    fn error(status: u16, message: impl std::fmt::Display) -> AdminResponse {
        AdminResponse::json(status, json!({ "error": message.to_string() }))
    }

    /// The body as JSON (for tests).
    #[cfg(test)]
    pub(crate) fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Compare secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The admin API over a running proxy.
pub(crate) struct AdminApi {
    control: Arc<Control>,
    reloader: Option<Arc<Reloader>>,
}

enum Need {
    Read,
    Mutate,
}

impl AdminApi {
    /// An API for `control`; `reloader` serves `POST /reload`.
    pub(crate) fn new(control: Arc<Control>, reloader: Option<Arc<Reloader>>) -> AdminApi {
        AdminApi { control, reloader }
    }

    fn authorized(&self, req: &AdminRequest) -> bool {
        let config = self.control.config();
        let Some(token) = &config.admin.token else {
            return true;
        };
        let presented = req
            .authorization
            .as_deref()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or("");
        constant_time_eq(presented.as_bytes(), token.0.as_bytes())
    }

    /// Answer one request.
    pub(crate) async fn handle(&self, req: AdminRequest) -> AdminResponse {
        let segments: Vec<String> = req
            .path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        // The page itself holds no data (it reads `/status` with the token
        // the operator types in), so it is served without one.
        let open = matches!(seg.as_slice(), ["healthz"] | ["readyz"] | [""]);
        if !open && !self.authorized(&req) {
            let mut r = AdminResponse::error(401, "missing or wrong bearer token");
            r.headers.push(("www-authenticate", "Bearer".to_string()));
            return r;
        }
        let need = match seg.as_slice() {
            [""]
            | ["healthz"]
            | ["readyz"]
            | ["services"]
            | ["status"]
            | ["metrics"]
            | ["report"]
            | ["report.svg"]
            | ["routes", _, "mirror"] => Need::Read,
            ["reload"]
            | ["routes", _, "shift", "pause" | "resume" | "advance" | "rollback"]
            | ["routes", _, "split"]
            | ["pools", _, "backends", _, "drain" | "undrain"] => Need::Mutate,
            _ => return AdminResponse::error(404, format!("no admin endpoint {}", req.path)),
        };
        let delete_split = matches!(seg.as_slice(), ["routes", _, "split"]);
        match (need, &req.method) {
            (Need::Read, &Method::GET | &Method::HEAD) => {}
            (Need::Mutate, &Method::POST | &Method::PUT) => {}
            (Need::Mutate, &Method::DELETE) if delete_split => {}
            (need, _) => {
                let allow = match need {
                    Need::Read => "GET, HEAD",
                    Need::Mutate if delete_split => "POST, PUT, DELETE",
                    Need::Mutate => "POST, PUT",
                };
                let mut r = AdminResponse::error(405, format!("use {allow} on {}", req.path));
                r.headers.push(("allow", allow.to_string()));
                return r;
            }
        }
        match seg.as_slice() {
            [""] => AdminResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                headers: vec![(
                    "content-security-policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"
                        .to_string(),
                )],
                body: STATUS_PAGE.as_bytes().to_vec(),
            },
            ["healthz"] => AdminResponse::json(200, json!({ "status": "healthy" })),
            ["report"] => report::json(&self.control),
            ["report.svg"] => report::svg(&self.control),
            ["routes", route, "mirror"] => mirror::diffs(&self.control, route),
            ["readyz"] => self.readyz(),
            ["services"] => AdminResponse::json(200, status::services(&self.control)),
            ["status"] => {
                AdminResponse::json(200, status::status(&self.control, self.reloader.as_deref()))
            }
            ["metrics"] => AdminResponse {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: Vec::new(),
                body: self
                    .control
                    .metrics
                    .render({
                        let snap = self.control.snapshot();
                        let mut f = families::live_families(&snap);
                        f.extend(mirror::families(&snap));
                        f.extend(fleet::families(&self.control));
                        f
                    })
                    .into_bytes(),
            },
            ["reload"] => self.reload().await,
            ["routes", route, "shift", action] => self.shift(route, action).await,
            ["routes", route, "split"] if req.method == Method::DELETE => {
                self.clear_split(route).await
            }
            ["routes", route, "split"] => self.split(route, &req.body).await,
            ["pools", pool, "backends", addr, action] => {
                self.drain(pool, addr, *action == "drain").await
            }
            _ => AdminResponse::error(404, format!("no admin endpoint {}", req.path)),
        }
    }

    fn readyz(&self) -> AdminResponse {
        let l = &self.control.lifecycle;
        if l.is_ready() {
            AdminResponse::json(200, json!({ "status": "ready" }))
        } else if l.draining.load(std::sync::atomic::Ordering::Relaxed) {
            AdminResponse::json(503, json!({ "status": "draining" }))
        } else {
            AdminResponse::json(503, json!({ "status": "starting" }))
        }
    }

    async fn reload(&self) -> AdminResponse {
        let Some(reloader) = &self.reloader else {
            return AdminResponse::error(409, "this proxy was not started from a config file");
        };
        match reloader.reload().await {
            Ok(summary) => AdminResponse::json(
                200,
                json!({
                    "result": "ok",
                    "hash": self.control.config().hash,
                    "pending_restart": reloader.pending_restart(),
                    "summary": summary,
                }),
            ),
            Err(e) => {
                AdminResponse::json(422, json!({ "result": "error", "error": e.to_string() }))
            }
        }
    }

    async fn shift(&self, route: &str, action: &str) -> AdminResponse {
        let Some(action) = Action::parse(action) else {
            return AdminResponse::error(404, format!("no shift action {action:?}"));
        };
        match self.control.fleet_shift_action(route, action).await {
            Ok(_) => AdminResponse::json(
                200,
                status::shift_of(&self.control, route).unwrap_or(Value::Null),
            ),
            Err(e @ ShiftError::UnknownRoute(_)) => AdminResponse::error(404, e),
            Err(ShiftError::Fleet(e)) => self.fleet_refusal(e, route),
            Err(e) => AdminResponse::json(
                409,
                json!({
                    "error": e.to_string(),
                    "current": status::shift_of(&self.control, route).unwrap_or(Value::Null),
                }),
            ),
        }
    }

    /// A fleet-wide action that did not happen: 409 with the current state
    /// (a conflict, or a fleet that does not agree), 503 without etcd.
    fn fleet_refusal(&self, e: FleetError, route: &str) -> AdminResponse {
        let status = match e {
            FleetError::Unavailable(_) => 503,
            FleetError::Conflict | FleetError::Frozen(_) => 409,
        };
        AdminResponse::json(
            status,
            json!({
                "error": e.to_string(),
                "current": status::shift_of(&self.control, route).unwrap_or(Value::Null),
            }),
        )
    }

    async fn clear_split(&self, route: &str) -> AdminResponse {
        match self.control.fleet_clear_split(route).await {
            Ok(cleared) => AdminResponse::json(
                200,
                json!({
                    "route": route,
                    "cleared": cleared,
                    "manual": false,
                    "shift": status::shift_of(&self.control, route).unwrap_or(Value::Null),
                }),
            ),
            Err(e @ SplitError::UnknownRoute(_)) => AdminResponse::error(404, e),
            Err(SplitError::Fleet(e)) => self.fleet_refusal(e, route),
            Err(e) => AdminResponse::error(422, e),
        }
    }

    async fn split(&self, route: &str, body: &[u8]) -> AdminResponse {
        let weights: HashMap<String, f64> = match serde_json::from_slice(body) {
            Ok(w) => w,
            Err(e) => {
                return AdminResponse::error(
                    422,
                    format!(
                        "body must be a JSON object of pool weights like {{\"onprem\":70,\"cloud\":30}}: {}",
                        crate::config::plain_words(&e.to_string(), "weight")
                    ),
                )
            }
        };
        match self.control.fleet_set_split(route, &weights).await {
            Ok(split) => {
                let split: serde_json::Map<String, Value> =
                    split.into_iter().map(|(p, w)| (p, json!(w))).collect();
                AdminResponse::json(
                    200,
                    json!({ "route": route, "split": split, "manual": true }),
                )
            }
            Err(e @ SplitError::UnknownRoute(_)) => AdminResponse::error(404, e),
            Err(SplitError::Fleet(e)) => self.fleet_refusal(e, route),
            Err(e) => AdminResponse::error(422, e),
        }
    }

    async fn drain(&self, pool: &str, addr: &str, on: bool) -> AdminResponse {
        let snap = self.control.snapshot();
        let Some(p) = snap.pools.iter().find(|p| &*p.name == pool) else {
            return AdminResponse::error(404, format!("no pool named {pool:?}"));
        };
        let Some(b) = p.backends.iter().find(|b| &*b.addr == addr) else {
            return AdminResponse::error(404, format!("pool {pool:?} has no backend {addr:?}"));
        };
        if let Err(e) = self.control.fleet_drain(pool, addr, on).await {
            let status = match e {
                FleetError::Unavailable(_) => 503,
                _ => 409,
            };
            return AdminResponse::json(
                status,
                json!({
                    "error": e.to_string(),
                    "current": { "pool": pool, "addr": addr, "status": b.state.status(crate::clock::now_ms()).as_str() },
                }),
            );
        }
        AdminResponse::json(
            200,
            json!({
                "pool": pool,
                "addr": addr,
                "status": b.state.status(crate::clock::now_ms()).as_str(),
            }),
        )
    }
}

#[cfg(test)]
mod tests;
