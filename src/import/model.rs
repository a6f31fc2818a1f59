//! What an import builds, in cutover's own terms, and how it is written out
//! as a config file.
//!
//! The importers fill a [`Target`]; only this file knows TOML. Every pool
//! and route keeps the place in the source it came from, written as a
//! comment above it, so the operator can read the two side by side.

use super::Source;
use std::fmt::Write as _;
use std::path::Path;

/// Where in the source something came from: `FILE:LINE`.
pub(super) type Origin = String;

/// A cutover config under construction.
#[derive(Debug, Default)]
pub struct Target {
    /// `[proxy] listen`: plain HTTP listeners.
    pub listen: Vec<String>,
    /// `[[proxy.tls]]`.
    pub tls: Vec<TlsListener>,
    /// Other `[proxy]` settings, as `key = value` with the value already
    /// TOML (a quoted duration, a number, a boolean), in the order set.
    pub proxy: Vec<(String, String, Origin)>,
    /// `[pools.*]`, in the order made.
    pub pools: Vec<Pool>,
    /// `[[routes]]`, in match order.
    pub routes: Vec<Route>,
}

/// A TLS listener.
#[derive(Debug)]
pub struct TlsListener {
    /// `IP:port`.
    pub listen: String,
    /// (certificate, key) files.
    pub certs: Vec<(String, String)>,
    /// Offer HTTP/2 by ALPN.
    pub http2: bool,
    /// Where it came from.
    pub origin: Origin,
}

/// A pool of backends.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The pool's name (the upstream or backend name).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// (address, weight).
    pub backends: Vec<(String, u32)>,
    /// Active checks.
    pub health: Option<Health>,
    /// HTTPS to the backends.
    pub tls: Option<PoolTls>,
    /// Passive checks: `None` keeps cutover's defaults, `Some(None)` turns
    /// them off, `Some(Some((failures, ejection)))` sets them.
    pub outlier: Option<Option<(u32, String)>>,
}

/// `health = { … }`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// HTTP path; `None` with `tcp` for a connect-only check.
    pub path: Option<String>,
    /// Only check that a connection opens.
    pub tcp: bool,
    /// Between checks.
    pub interval: Option<String>,
    /// One check's deadline.
    pub timeout: Option<String>,
    /// Passes to turn healthy.
    pub rise: Option<u32>,
    /// Failures to turn unhealthy.
    pub fall: Option<u32>,
    /// Statuses that pass.
    pub expect: Vec<u16>,
}

/// `tls = { … }` on a pool.
#[derive(Debug, Clone, Default)]
pub struct PoolTls {
    /// Server name sent and checked.
    pub sni: Option<String>,
    /// Check the backend's certificate.
    pub verify: bool,
    /// CA bundle.
    pub ca: Option<String>,
}

/// A route.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// The route's name.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// Host pattern (`api.example.com`, `*.example.com`, `api.*`).
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Methods.
    pub methods: Vec<String>,
    /// Header name → exact value.
    pub headers: Vec<(String, String)>,
    /// (pool, weight).
    pub split: Vec<(String, f64)>,
    /// Pools to fail over to.
    pub failover: Vec<String>,
    /// `("header"|"cookie"|"source_ip", name)`.
    pub sticky: Option<(String, String)>,
}

impl Target {
    /// Whether a pool of this name exists.
    pub fn has_pool(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name == name)
    }

    /// Set a `[proxy]` setting, replacing an earlier value.
    pub fn set_proxy(&mut self, key: &str, value: String, origin: Origin) {
        self.proxy.retain(|(k, _, _)| k != key);
        self.proxy.push((key.to_string(), value, origin));
    }

    /// The value set for a `[proxy]` key, if any.
    pub fn proxy_value(&self, key: &str) -> Option<&str> {
        self.proxy
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    /// A route name not used yet, made from `base`.
    pub fn unique_route_name(&self, base: &str) -> String {
        let base = slug(base);
        let base = if base.is_empty() {
            "default".to_string()
        } else {
            base
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.routes.iter().any(|r| r.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// The config file.
    pub fn to_toml(&self, source: Source, path: &Path) -> String {
        let mut out = String::new();
        let what = match source {
            Source::Nginx => "nginx",
            Source::Haproxy => "HAProxy",
        };
        let _ = writeln!(
            out,
            "# Imported from the {what} config {} by `cutover import`.",
            path.display()
        );
        out.push_str("# Each section names the place it came from; the import report lists\n");
        out.push_str("# every directive and what became of it.\n\n[proxy]\n");
        let listen: Vec<String> = self.listen.iter().map(|l| q(l)).collect();
        let _ = writeln!(out, "listen = [{}]", listen.join(", "));
        for (k, v, origin) in &self.proxy {
            let _ = writeln!(out, "{k} = {v}  # {origin}");
        }
        for t in &self.tls {
            let _ = writeln!(
                out,
                "\n# {}\n[[proxy.tls]]\nlisten = {}",
                t.origin,
                q(&t.listen)
            );
            let certs: Vec<String> = t
                .certs
                .iter()
                .map(|(c, k)| format!("{{ cert = {}, key = {} }}", q(c), q(k)))
                .collect();
            let _ = writeln!(out, "certs = [{}]", certs.join(", "));
            let _ = writeln!(out, "http2 = {}", t.http2);
        }
        for p in &self.pools {
            write_pool(&mut out, p);
        }
        for r in &self.routes {
            write_route(&mut out, r);
        }
        out
    }
}

fn write_pool(out: &mut String, p: &Pool) {
    let _ = writeln!(out, "\n# {}\n[pools.{}]", p.origin, key(&p.name));
    let backends: Vec<String> = p
        .backends
        .iter()
        .map(|(a, w)| {
            if *w == 1 {
                q(a)
            } else {
                format!("{{ addr = {}, weight = {w} }}", q(a))
            }
        })
        .collect();
    let _ = writeln!(out, "backends = [{}]", backends.join(", "));
    if let Some(h) = &p.health {
        let mut f = Vec::new();
        if h.tcp {
            f.push("tcp = true".to_string());
        }
        if let Some(path) = &h.path {
            f.push(format!("path = {}", q(path)));
        }
        for (k, v) in [("interval", &h.interval), ("timeout", &h.timeout)] {
            if let Some(v) = v {
                f.push(format!("{k} = {}", q(v)));
            }
        }
        for (k, v) in [("rise", h.rise), ("fall", h.fall)] {
            if let Some(v) = v {
                f.push(format!("{k} = {v}"));
            }
        }
        if !h.expect.is_empty() {
            let e: Vec<String> = h.expect.iter().map(u16::to_string).collect();
            f.push(format!("expect = [{}]", e.join(", ")));
        }
        let _ = writeln!(out, "health = {{ {} }}", f.join(", "));
    }
    if let Some(t) = &p.tls {
        let mut f = vec![format!("verify = {}", t.verify)];
        if let Some(s) = &t.sni {
            f.push(format!("sni = {}", q(s)));
        }
        if let Some(ca) = &t.ca {
            f.push(format!("ca = {}", q(ca)));
        }
        let _ = writeln!(out, "tls = {{ {} }}", f.join(", "));
    }
    match &p.outlier {
        None => {}
        Some(None) => out.push_str("outlier = false\n"),
        Some(Some((n, ej))) => {
            let _ = writeln!(
                out,
                "outlier = {{ consecutive_failures = {n}, ejection = {} }}",
                q(ej)
            );
        }
    }
}

fn write_route(out: &mut String, r: &Route) {
    let _ = writeln!(out, "\n# {}\n[[routes]]\nname = {}", r.origin, q(&r.name));
    let mut m = Vec::new();
    if let Some(h) = &r.host {
        m.push(format!("host = {}", q(h)));
    }
    if let Some(p) = &r.path_prefix {
        m.push(format!("path_prefix = {}", q(p)));
    }
    if !r.methods.is_empty() {
        let ms: Vec<String> = r.methods.iter().map(|x| q(x)).collect();
        m.push(format!("methods = [{}]", ms.join(", ")));
    }
    if !r.headers.is_empty() {
        let hs: Vec<String> = r
            .headers
            .iter()
            .map(|(k, v)| format!("{} = {}", q(k), q(v)))
            .collect();
        m.push(format!("headers = {{ {} }}", hs.join(", ")));
    }
    if !m.is_empty() {
        let _ = writeln!(out, "match = {{ {} }}", m.join(", "));
    }
    let split: Vec<String> = r
        .split
        .iter()
        .map(|(p, w)| format!("{} = {}", key(p), number(*w)))
        .collect();
    let _ = writeln!(out, "split = {{ {} }}", split.join(", "));
    if !r.failover.is_empty() {
        let f: Vec<String> = r.failover.iter().map(|x| q(x)).collect();
        let _ = writeln!(out, "failover = [{}]", f.join(", "));
    }
    match &r.sticky {
        Some((kind, _)) if kind == "source_ip" => out.push_str("sticky = { source_ip = true }\n"),
        Some((kind, name)) => {
            let _ = writeln!(out, "sticky = {{ {kind} = {} }}", q(name));
        }
        None => {}
    }
}

/// A weight as TOML: integers without a fraction.
fn number(w: f64) -> String {
    if w.fract() == 0.0 && w.abs() < 1e15 {
        format!("{}", w as i64)
    } else {
        // Shortest text that reads back as the same value.
        format!("{w}")
    }
}

/// A TOML basic string.
pub(super) fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

/// A name from free text: lowercase letters, digits and dashes.
pub(super) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// A valid pool name from an nginx upstream or HAProxy backend name.
pub(super) fn pool_name(name: &str) -> String {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !name.is_empty() && name.bytes().all(ok) {
        name.to_string()
    } else {
        let s = slug(name);
        if s.is_empty() {
            "pool".into()
        } else {
            s
        }
    }
}
