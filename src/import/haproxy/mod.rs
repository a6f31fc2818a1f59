//! HAProxy → cutover: backends become pools, frontends' ACL rules become
//! routes, `defaults` apply to the sections after them, timeouts and
//! retries become `[proxy]` settings.
//!
//! Backends are read first, so a rule may name one defined further down.
//! Every line gets one verdict; lines no converter spoke of are classified
//! by keyword in [`classify`].

mod acl;
mod backend;
mod frontend;
mod parse;

use super::model::Target;
use super::record::Recorder;
use super::report::{Report, Verdict};
use super::ImportError;
use parse::{Line, Section};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The conversion's state.
pub(super) struct Ctx {
    rec: Recorder,
    base: PathBuf,
    crt_base: Option<String>,
    ca_base: Option<String>,
}

super::record::derefs_to_recorder!(Ctx);

impl Ctx {
    fn join(&self, base: Option<&str>, p: &str) -> String {
        if Path::new(p).is_absolute() {
            return p.to_string();
        }
        let dir = match base {
            Some(b) if Path::new(b).is_absolute() => PathBuf::from(b),
            Some(b) => self.base.join(b),
            None => self.base.clone(),
        };
        dir.join(p).display().to_string()
    }

    /// A CA file path: relative ones from `ca-base`, else the config's
    /// directory.
    pub(super) fn path(&self, p: &str) -> String {
        self.join(self.ca_base.as_deref(), p)
    }

    /// A certificate path: relative ones from `crt-base`, else the
    /// config's directory.
    pub(super) fn cert_path(&self, p: &str) -> String {
        self.join(self.crt_base.as_deref(), p)
    }
}

/// Read and convert an HAProxy config.
pub(super) fn convert(path: &Path) -> Result<(Target, Report), ImportError> {
    let sections = parse::read(path)?;
    let mut cx = Ctx {
        rec: Recorder::default(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        crt_base: None,
        ca_base: None,
    };
    // The defaults each proxy section inherits: the last `defaults` before
    // it, or the named one of `from NAME`.
    let mut named: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut inherits: Vec<Option<usize>> = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let from = s
            .head
            .words
            .iter()
            .position(|w| w == "from")
            .and_then(|p| s.head.words.get(p + 1));
        inherits.push(from.and_then(|n| named.get(n).copied()).or(current));
        if s.kind() == "defaults" {
            current = Some(i);
            if !s.name().is_empty() && s.name() != "from" {
                named.insert(s.name().to_string(), i);
            }
        }
        if s.kind() == "global" {
            global(&mut cx, s);
        }
    }
    let keep_alive = sections
        .iter()
        .flat_map(|s| &s.lines)
        .any(|l| l.word(0) == "timeout" && l.word(1) == "http-keep-alive");
    let lines_of = |i: usize| -> Vec<&Line> {
        let mut v: Vec<&Line> = inherits[i]
            .map(|d| sections[d].lines.iter().collect())
            .unwrap_or_default();
        v.extend(sections[i].lines.iter());
        v
    };
    let mut pools = HashMap::new();
    for (i, s) in sections.iter().enumerate() {
        if matches!(s.kind(), "backend" | "listen") {
            if let Some(p) = backend::backend(&mut cx, s, &lines_of(i)) {
                pools.insert(s.name().to_string(), p);
            }
        }
    }
    let mut fronts = 0;
    for (i, s) in sections.iter().enumerate() {
        if matches!(s.kind(), "frontend" | "listen") {
            fronts += 1;
            if fronts > 1 {
                cx.mark_at(
                    &s.head.at,
                    Verdict::Different,
                    "cutover's routes match on every listener alike: this section's routes come after the earlier ones (and their default backend takes what those leave)",
                );
            }
        }
        match s.kind() {
            "frontend" => frontend::frontend(&mut cx, s, &lines_of(i), &pools, None),
            "listen" => {
                let own = pools.get(s.name()).map(|p| p.0.clone());
                frontend::frontend(&mut cx, s, &lines_of(i), &pools, own.as_deref());
            }
            _ => {}
        }
        if matches!(s.kind(), "frontend" | "listen" | "backend" | "defaults") {
            cx.mark_at(&s.head.at, Verdict::Converted, "");
            for l in &s.lines {
                setting(&mut cx, l, keep_alive);
            }
        }
    }
    let redispatch = sections
        .iter()
        .flat_map(|s| &s.lines)
        .any(|l| l.word(0) == "option" && l.word(1) == "redispatch");
    for s in &sections {
        for l in &s.lines {
            if l.word(0) == "retries" && !redispatch {
                cx.mark_at(&l.at, Verdict::Different, "without option redispatch HAProxy retries the same server; cutover retries another");
            }
        }
        if !cx.is_marked(&s.head.at) {
            cx.mark_at(
                &s.head.at,
                Verdict::Ignored,
                format!(
                    "a {} section: not used by a proxy in cutover's place",
                    s.kind()
                ),
            );
        }
        for l in &s.lines {
            if !cx.is_marked(&l.at) {
                let (v, note) = classify(l);
                cx.mark_at(&l.at, v, note);
            }
        }
    }
    Ok((cx.rec.t, cx.rec.r))
}

fn global(cx: &mut Ctx, s: &Section) {
    for l in &s.lines {
        match l.word(0) {
            "nbthread" => match l.word(1).parse::<u32>() {
                Ok(n) if n > 0 => cx.global_at("threads", n.to_string(), &l.at, ""),
                _ => cx.mark_at(&l.at, Verdict::Ignored, ""),
            },
            "crt-base" => {
                cx.crt_base = Some(l.word(1).to_string());
                cx.mark_at(
                    &l.at,
                    Verdict::Converted,
                    "certificate paths are made whole",
                );
            }
            "ca-base" => {
                cx.ca_base = Some(l.word(1).to_string());
                cx.mark_at(&l.at, Verdict::Converted, "CA paths are made whole");
            }
            _ => {}
        }
    }
}

/// Timeouts, retries, mode and the options cutover has.
fn setting(cx: &mut Ctx, l: &Line, keep_alive: bool) {
    let ms = || super::units::haproxy_ms(l.word(2));
    let key = match (l.word(0), l.word(1)) {
        ("timeout", "connect") => "connect_timeout",
        ("timeout", "server") => "read_timeout",
        ("timeout", "http-request") => "header_timeout",
        ("timeout", "http-keep-alive") => "idle_timeout",
        ("timeout", "client") if !keep_alive => "idle_timeout",
        ("timeout", "client") => {
            return cx.mark_at(
                &l.at,
                Verdict::Ignored,
                "cutover's idle_timeout comes from timeout http-keep-alive",
            )
        }
        ("retries", n) => {
            return match n.parse::<u32>() {
                Ok(n) => cx.global_at("retries", n.to_string(), &l.at, ""),
                Err(_) => cx.mark_at(&l.at, Verdict::Unsupported, "not a number"),
            }
        }
        ("mode", "http") => return cx.mark_at(&l.at, Verdict::Converted, ""),
        ("mode", _) => {
            return cx.mark_at(
                &l.at,
                Verdict::Blocking,
                "TCP proxying: cutover proxies HTTP only",
            )
        }
        ("option", "redispatch") => {
            return cx.mark_at(
                &l.at,
                Verdict::Converted,
                "cutover retries on another backend",
            )
        }
        ("option", "forwardfor") => {
            return cx.mark_at(&l.at, Verdict::Converted, "cutover sets X-Forwarded-For")
        }
        _ => return,
    };
    match ms() {
        Some(ms) if ms > 0 => {
            let v = crate::import::model::q(&super::units::duration(ms));
            cx.global_at(key, v, &l.at, "")
        }
        _ => cx.mark_at(&l.at, Verdict::Unsupported, "not a time cutover can use"),
    }
}

/// The verdict for a line no converter spoke of.
fn classify(l: &Line) -> (Verdict, String) {
    let (a, b) = (l.word(0), l.word(1));
    let blocking = |why: &str| (Verdict::Blocking, why.to_string());
    let unsupported = |why: &str| (Verdict::Unsupported, why.to_string());
    let ignored = |why: &str| (Verdict::Ignored, why.to_string());
    match (a, b) {
        ("http-request", "deny" | "reject" | "tarpit" | "auth") => {
            blocking("access control: requests HAProxy refuses would be proxied")
        }
        ("http-request", "redirect" | "return") | ("redirect", _) | ("monitor-uri", _) => {
            blocking("HAProxy answers these itself: cutover would proxy them")
        }
        ("http-request", "set-path" | "set-uri" | "replace-path" | "replace-uri" | "set-pathq" | "set-query") => {
            blocking("rewrites the request: cutover does not rewrite paths")
        }
        ("stats", "uri" | "enable") => blocking("the stats page answers on a path: cutover would proxy it (see cutover's admin endpoint)"),
        ("use-server", _) | ("force-persist", _) => blocking("picks a server by rule: not converted"),
        ("lua-load", _) | ("http-request", "lua") | ("http-request", "use-service") => {
            blocking("scripted request handling: cutover cannot run it")
        }
        ("tcp-request", _) => unsupported("TCP-level rules are not converted"),
        ("http-request", _) => unsupported("cutover does not change requests"),
        ("http-response", _) | ("http-after-response", _) => unsupported("cutover does not change responses"),
        ("compression", _) => unsupported("cutover does not compress answers"),
        ("stick-table", _) | ("stick", _) | ("rate-limit", _) => unsupported("no stick tables or rate limits in cutover"),
        ("errorfile", _) | ("errorloc", _) | ("errorloc302", _) | ("errorloc303", _) => {
            unsupported("cutover's own error pages are plain")
        }
        ("cookie", _) => unsupported("server cookies: cutover pins users to a pool (sticky), not to a server"),
        ("acl", _) => unsupported("not used by any converted rule"),
        (
            "log" | "maxconn" | "daemon" | "user" | "group" | "uid" | "gid" | "chroot" | "pidfile" | "nbproc"
            | "cpu-map" | "master-worker" | "hard-stop-after" | "spread-checks" | "log-format" | "capture"
            | "http-reuse" | "hash-type" | "fullconn" | "description" | "nbthread" | "log-tag" | "node"
            | "unique-id-format" | "unique-id-header" | "email-alert",
            _,
        ) => ignored("tuning or logging with no effect on what a client gets"),
        ("stats", _) => ignored("HAProxy's stats socket: see cutover's admin endpoint"),
        ("option", _) => ignored("an HAProxy option with no effect on which backend answers"),
        ("timeout", _) => unsupported("cutover has no such deadline"),
        (k, _) if k.starts_with("tune.") || k.starts_with("ssl-") => ignored("TLS and buffer tuning (cutover uses rustls)"),
        _ => unsupported("no cutover equivalent; check whether it matters"),
    }
}
