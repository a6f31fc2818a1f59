//! `backend` (and the server half of `listen`) → a pool, plus one for its
//! `backup` servers: servers with weights, `check` + `option httpchk` /
//! `http-check` as active checks, `ssl verify ca-file sni` as pool TLS.

use super::parse::{Line, Section};
use super::Ctx;
use crate::import::model::{pool_name, Health, Pool, PoolTls};
use crate::import::report::Verdict;
use crate::import::units;

/// The pool names a backend became: (pool, backup pool).
pub(super) type Pools = (String, Option<String>);

/// Convert a backend; `lines` are its defaults' lines followed by its own.
pub(super) fn backend(cx: &mut Ctx, sec: &Section, lines: &[&Line]) -> Option<Pools> {
    let name = pool_name(sec.name());
    let mut primary = Pool {
        name: name.clone(),
        origin: sec.head.at.origin(),
        backends: Vec::new(),
        health: None,
        tls: None,
        outlier: None,
    };
    let mut backup = Pool {
        name: format!("{name}-backup"),
        ..primary.clone()
    };
    let mut defaults: Vec<String> = Vec::new();
    let mut httpchk: Option<(String, String)> = None;
    let mut expect = Vec::new();
    let mut check_timeout = None;
    let mut any_check = false;
    let mut inter: Option<(u64, u32, u32)> = None;
    for l in lines {
        match (l.word(0), l.word(1)) {
            ("default-server", _) => {
                defaults = l.rest(1).to_vec();
                cx.mark_at(&l.at, Verdict::Converted, "");
            }
            ("option", "httpchk") => {
                // `option httpchk [METHOD] [URI]` (or just a URI).
                let (m, uri) = match (l.word(2), l.word(3)) {
                    ("", _) => ("OPTIONS", "/"),
                    (u, "") if u.starts_with('/') => ("OPTIONS", u),
                    (m, "") => (m, "/"),
                    (m, u) => (m, u),
                };
                httpchk = Some((m.to_string(), uri.to_string()));
                cx.mark_at(&l.at, Verdict::Converted, "");
            }
            ("http-check", "send") => {
                let mut it = l.rest(2).iter();
                // Unset fields keep what `option httpchk` said (HAProxy's
                // own default method is OPTIONS).
                let (mut m, mut uri) = httpchk
                    .clone()
                    .unwrap_or_else(|| ("OPTIONS".to_string(), "/".to_string()));
                while let Some(k) = it.next() {
                    match k.as_str() {
                        "meth" => m = it.next().cloned().unwrap_or(m),
                        "uri" => uri = it.next().cloned().unwrap_or(uri),
                        _ => {}
                    }
                }
                httpchk = Some((m, uri));
                cx.mark_at(&l.at, Verdict::Converted, "");
            }
            ("http-check", "expect") => match (l.word(2), l.word(3).parse::<u16>()) {
                ("status", Ok(code)) => {
                    expect = vec![code];
                    cx.mark_at(&l.at, Verdict::Converted, "");
                }
                _ => cx.mark_at(
                    &l.at,
                    Verdict::Unsupported,
                    "cutover's checks expect statuses only",
                ),
            },
            ("timeout", "check") => {
                check_timeout = units::haproxy_ms(l.word(2));
                cx.mark_at(&l.at, Verdict::Converted, "the health check's timeout");
            }
            ("balance", "roundrobin" | "static-rr") => {
                cx.mark_at(&l.at, Verdict::Converted, "weighted round robin")
            }
            ("balance", _) => cx.mark_at(
                &l.at,
                Verdict::Different,
                "cutover picks a pool's backends by weighted round robin",
            ),
            ("server", _) => {
                let mut params = defaults.clone();
                params.extend(l.rest(3).iter().cloned());
                server(
                    cx,
                    l,
                    &params,
                    &mut primary,
                    &mut backup,
                    &mut any_check,
                    &mut inter,
                );
            }
            _ => {}
        }
    }
    if any_check {
        let (inter_ms, rise, fall) = inter.unwrap_or((2000, 2, 3));
        let mut h = Health {
            interval: Some(units::duration(inter_ms)),
            timeout: check_timeout.map(units::duration),
            rise: Some(rise),
            fall: Some(fall),
            expect,
            ..Health::default()
        };
        match &httpchk {
            Some((_, uri)) => h.path = Some(uri.clone()),
            None => h.tcp = true,
        }
        if let Some((m, _)) = &httpchk {
            if m != "GET" && m != "HEAD" {
                cx.mark_at(
                    &sec.head.at,
                    Verdict::Different,
                    format!("health checks are GET requests (HAProxy sends {m})"),
                );
            }
        }
        primary.health = Some(h.clone());
        backup.health = Some(h);
    }
    if primary.backends.is_empty() {
        cx.mark_at(
            &sec.head.at,
            Verdict::Blocking,
            "no server cutover can reach: requests for it would fail",
        );
        return None;
    }
    // HAProxy takes a server out only by its checks: no passive ejection.
    primary.outlier = Some(None);
    backup.outlier = Some(None);
    cx.mark_at(&sec.head.at, Verdict::Converted, format!("pool {name}"));
    let backup_name = (!backup.backends.is_empty()).then(|| backup.name.clone());
    cx.t.pools.push(primary);
    if backup_name.is_some() {
        cx.t.pools.push(backup);
    }
    Some((name, backup_name))
}

fn server(
    cx: &mut Ctx,
    l: &Line,
    params: &[String],
    primary: &mut Pool,
    backup: &mut Pool,
    any_check: &mut bool,
    inter: &mut Option<(u64, u32, u32)>,
) {
    let Some(addr) = units::host_port(l.word(2), 0).filter(|a| !a.ends_with(":0")) else {
        cx.mark_at(
            &l.at,
            Verdict::Blocking,
            "cutover needs host:port for a server",
        );
        return;
    };
    let (mut weight, mut is_backup, mut check, mut disabled) = (1u32, false, false, false);
    let (mut ms, mut rise, mut fall) = (2000u64, 2u32, 3u32);
    // TLS is on with `ssl` (off again with `no-ssl`); HAProxy verifies the
    // server's certificate unless told `verify none`.
    let mut ssl = false;
    let mut t = PoolTls {
        verify: true,
        ..PoolTls::default()
    };
    let mut notes = Vec::new();
    let mut verdict = Verdict::Converted;
    let mut it = params.iter();
    while let Some(p) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match p.as_str() {
            "weight" => weight = val().parse().unwrap_or(1),
            "check" => check = true,
            "no-check" => check = false,
            "inter" => ms = units::haproxy_ms(&val()).unwrap_or(2000),
            "rise" => rise = val().parse().unwrap_or(2),
            "fall" => fall = val().parse().unwrap_or(3),
            "backup" => is_backup = true,
            "no-backup" => is_backup = false,
            "disabled" => disabled = true,
            "enabled" => disabled = false,
            "ssl" => ssl = true,
            "no-ssl" => ssl = false,
            "verify" => t.verify = val() != "none",
            "ca-file" => t.ca = Some(cx.path(&val())),
            "sni" => {
                let v = val();
                match v.strip_prefix("str(").and_then(|s| s.strip_suffix(')')) {
                    Some(name) => t.sni = Some(name.to_string()),
                    None => {
                        verdict = verdict.max(Verdict::Different);
                        notes.push(format!(
                            "sni {v}: cutover sends a fixed name (the address's host)"
                        ));
                    }
                }
            }
            "send-proxy" | "send-proxy-v2" | "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
                verdict = Verdict::Blocking;
                notes.push(format!("{p}: cutover sends no PROXY protocol header; the server would refuse every request"));
            }
            "cookie" | "port" | "track" | "redir" | "crt" | "addr" => {
                let v = val();
                verdict = verdict.max(Verdict::Unsupported);
                notes.push(format!("{p} {v} is not converted"));
            }
            "maxconn" | "maxqueue" | "minconn" | "resolvers" | "init-addr" | "resolve-prefer"
            | "fastinter" | "downinter" | "slowstart" | "alpn" | "check-alpn" | "agent-port"
            | "agent-inter" | "on-marked-down" | "on-marked-up" | "on-error" | "error-limit"
            | "id" | "pool-max-conn" | "pool-purge-delay" | "max-reuse" | "ciphers"
            | "ciphersuites" | "ssl-min-ver" | "ssl-max-ver" | "proto" | "check-sni"
            | "observe" | "resolve-opts" | "namespace" | "tfo" => {
                // Tuning with a value: skip the value too.
                let _ = val();
            }
            _ => {}
        }
    }
    let tls = ssl.then_some(t);
    if disabled {
        cx.mark_at(&l.at, Verdict::Converted, "disabled: left out of the pool");
        return;
    }
    if check {
        *any_check = true;
        match inter {
            None => *inter = Some((ms, rise, fall)),
            Some(first) if *first != (ms, rise, fall) => {
                verdict = verdict.max(Verdict::Different);
                notes.push(
                    "cutover's checks are per pool: the first server's inter/rise/fall apply"
                        .into(),
                );
            }
            Some(_) => {}
        }
    }
    let into = if is_backup { backup } else { primary };
    if !into.backends.is_empty() && into.tls.is_some() != tls.is_some() {
        verdict = Verdict::Blocking;
        notes.push(format!(
            "pool {} mixes TLS and plain servers: cutover speaks one way to a pool",
            into.name
        ));
    }
    if tls.is_some() {
        into.tls = tls;
    }
    into.backends.push((addr, weight));
    if is_backup {
        notes.push(format!(
            "backup: in pool {}, the route's failover",
            into.name
        ));
    }
    cx.mark_at(&l.at, verdict, notes.join("; "));
}
