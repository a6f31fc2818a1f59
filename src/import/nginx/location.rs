//! `location` blocks and their `proxy_pass`: a prefix becomes a route's
//! `path_prefix`, the upstream (direct, or picked by a `split_clients` or
//! `map` variable) becomes its split, and `proxy_ssl_*` the pool's TLS.

use super::parse::Directive;
use super::server::{setting, Draft, Servers};
use super::vars::Var;
use super::Ctx;
use crate::import::model::{pool_name, Pool, PoolTls, Route};
use crate::import::report::Verdict;
use crate::import::units;

/// What a `proxy_pass` sends to: header-matched cases first, then the rest.
struct Dest {
    /// Header name and value the case needs, if any.
    header: Option<(String, String)>,
    split: Vec<(String, f64)>,
    failover: Vec<String>,
    sticky: Option<(String, String)>,
}

/// Read one `location` (and those nested in it).
pub(super) fn location(
    cx: &mut Ctx,
    servers: &mut Servers,
    scope: &[&Directive],
    d: &Directive,
    hosts: &[Option<String>],
) {
    let prefix = match d.args.as_slice() {
        [p] if !p.starts_with('@') => p.clone(),
        [m, p] if m == "^~" => p.clone(),
        [m, _] if m == "~" || m == "~*" => {
            return cx.mark_tree(
                d,
                Verdict::Blocking,
                "a regular expression location: cutover matches path prefixes only",
            )
        }
        [m, _] if m == "=" => {
            return cx.mark_tree(
                d,
                Verdict::Blocking,
                "an exact-match location: cutover matches path prefixes only",
            )
        }
        [n] => {
            return cx.mark_tree(
                d,
                Verdict::Unsupported,
                &format!("named location {n} (an error_page or try_files target): not converted"),
            )
        }
        _ => return cx.mark(d, Verdict::Blocking, "cannot read this location"),
    };
    let mut inner = scope.to_vec();
    inner.push(d);
    for c in d.children() {
        setting(cx, c, true);
    }
    match d.children().iter().find(|c| c.name == "proxy_pass") {
        Some(pp) => proxy_pass(cx, servers, &inner, pp, &prefix, hosts),
        None => cx.mark(
            d,
            Verdict::Blocking,
            "answers itself (no proxy_pass): cutover only proxies, so these requests would reach another route",
        ),
    }
    for c in d.children() {
        if c.name == "location" {
            location(cx, servers, &inner, c, hosts);
        }
    }
    cx.mark(d, Verdict::Converted, "");
}

/// The directives named `name` in force in `scope` (innermost level that
/// has any, as nginx inherits array directives).
fn in_force<'a>(scope: &[&'a Directive], name: &str) -> Vec<&'a Directive> {
    for level in scope.iter().rev() {
        let found: Vec<&Directive> = level.children().iter().filter(|c| c.name == name).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

fn proxy_pass(
    cx: &mut Ctx,
    servers: &mut Servers,
    scope: &[&Directive],
    pp: &Directive,
    prefix: &str,
    hosts: &[Option<String>],
) {
    let Some(url) = pp.args.first() else {
        return cx.mark(pp, Verdict::Blocking, "proxy_pass without a URL");
    };
    let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return cx.mark(pp, Verdict::Blocking, "not an http:// or https:// upstream"),
    };
    let (authority, uri) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut notes = Vec::new();
    let mut verdict = Verdict::Converted;
    if authority.contains('$') && !uri.is_empty() {
        verdict = Verdict::Blocking;
        notes.push(format!(
            "with a variable in proxy_pass, nginx sends the URI {uri:?} in place of the request's: cutover does not rewrite paths"
        ));
    } else if !uri.is_empty() && uri != prefix {
        verdict = Verdict::Blocking;
        notes.push(format!(
            "the URI part {uri:?} replaces the location prefix {prefix:?}: cutover does not rewrite paths"
        ));
    }
    if !in_force(scope, "proxy_set_header").iter().any(|h| {
        h.args
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case("host"))
    }) {
        verdict = verdict.max(Verdict::Different);
        notes.push("backends get the client's Host (nginx sends the upstream's name without proxy_set_header Host)".into());
    }
    let dests = match authority.strip_prefix('$') {
        Some(var) => match cx.vars.get(&format!("${var}")).cloned() {
            Some(v) => from_var(cx, scope, v, https, &mut notes, &mut verdict),
            None => {
                return cx.mark(
                    pp,
                    Verdict::Blocking,
                    format!("${var} is not set by split_clients or map on a header"),
                );
            }
        },
        None => match pool_for(cx, scope, authority, https) {
            Some((pool, backup)) => vec![Dest {
                header: None,
                split: vec![(pool, 100.0)],
                failover: backup.into_iter().collect(),
                sticky: None,
            }],
            None => return cx.mark(pp, Verdict::Blocking, format!("cannot reach {authority:?}")),
        },
    };
    if prefix.len() > 1 && prefix.ends_with('/') {
        verdict = verdict.max(Verdict::Different);
        notes.push(format!(
            "nginx answers {:?} (without the slash) with a 301 to {prefix:?}; cutover sends it on to the route that takes it",
            prefix.trim_end_matches('/')
        ));
    }
    for c in std::mem::take(&mut cx.conflicts) {
        verdict = Verdict::Blocking;
        notes.push(c);
    }
    cx.mark(pp, verdict, notes.join("; "));
    for host in hosts {
        for dest in &dests {
            let (rank, host_len) = match host.as_deref() {
                None => (3, 0),
                Some(h) if h.starts_with("*.") => (1, h.len()),
                Some(h) if h.ends_with(".*") => (2, h.len()),
                Some(h) => (0, h.len()),
            };
            let mut base = format!("{}{}", host.as_deref().unwrap_or(""), prefix);
            if let Some((_, v)) = &dest.header {
                base.push('-');
                base.push_str(v);
            }
            let route = Route {
                name: cx.t.unique_route_name(&base),
                origin: Ctx::origin(pp),
                host: host.clone(),
                path_prefix: Some(prefix.to_string()),
                methods: Vec::new(),
                headers: dest.header.iter().cloned().collect(),
                split: dest.split.clone(),
                failover: dest.failover.clone(),
                sticky: dest.sticky.clone(),
            };
            // Names are taken as they are made, so later routes see them.
            cx.t.routes.push(route.clone());
            servers.drafts.push(Draft {
                rank,
                host_len,
                prefix_len: prefix.len(),
                route,
            });
        }
    }
}

/// The destinations a `split_clients` or header `map` variable gives.
fn from_var(
    cx: &mut Ctx,
    scope: &[&Directive],
    var: Var,
    https: bool,
    notes: &mut Vec<String>,
    verdict: &mut Verdict,
) -> Vec<Dest> {
    match var {
        Var::Split {
            parts,
            sticky,
            origin,
        } => {
            let mut split = Vec::new();
            let mut failover = Vec::new();
            for (pct, value) in parts {
                if pct <= 0.0 {
                    continue;
                }
                match pool_for(cx, scope, &value, https) {
                    Some((pool, backup)) => {
                        split.push((pool, pct));
                        failover.extend(backup);
                    }
                    None => {
                        *verdict = Verdict::Blocking;
                        notes.push(format!(
                            "split_clients at {origin}: {value:?} is not an upstream"
                        ));
                    }
                }
            }
            let total: f64 = split.iter().map(|(_, w)| w).sum();
            if total < 99.999 {
                *verdict = Verdict::Blocking;
                notes.push(format!(
                    "split_clients at {origin} covers {total} %: nginx answers the rest with an error, cutover would spread it over the parts"
                ));
            }
            notes.push(format!("split from split_clients at {origin}"));
            vec![Dest {
                header: None,
                split,
                failover,
                sticky,
            }]
        }
        Var::Header {
            header,
            cases,
            default,
            origin,
        } => {
            let had_default = default.is_some();
            let mut out = Vec::new();
            for (value, result) in cases
                .into_iter()
                .map(|(v, r)| (Some(v), r))
                .chain(default.map(|d| (None, d)))
            {
                match pool_for(cx, scope, &result, https) {
                    Some((pool, backup)) => out.push(Dest {
                        header: value.map(|v| (header.clone(), v)),
                        split: vec![(pool, 100.0)],
                        failover: backup.into_iter().collect(),
                        sticky: None,
                    }),
                    None => {
                        *verdict = Verdict::Blocking;
                        notes.push(format!("map at {origin}: {result:?} is not an upstream"));
                    }
                }
            }
            if !had_default {
                *verdict = Verdict::Blocking;
                notes.push(format!(
                    "map at {origin} has no default: nginx answers other values with an error, cutover would send them to later routes"
                ));
            }
            notes.push(format!("routes by header {header} from map at {origin}"));
            out
        }
    }
}

/// The pool (and backup pool) for an upstream name or a `host:port`; a
/// direct address gets a pool of its own.
fn pool_for(
    cx: &mut Ctx,
    scope: &[&Directive],
    name: &str,
    https: bool,
) -> Option<(String, Option<String>)> {
    let (pool, backup) = match cx.upstreams.get(name) {
        Some(p) => p.clone(),
        None => {
            let addr = units::host_port(name, if https { 443 } else { 80 })?;
            let pool = pool_name(&addr.replace([':', '.'], "-"));
            if !cx.t.has_pool(&pool) {
                cx.t.pools.push(Pool {
                    name: pool.clone(),
                    origin: scope.last().map(|d| Ctx::origin(d)).unwrap_or_default(),
                    backends: vec![(addr, 1)],
                    health: None,
                    tls: None,
                    outlier: Some(Some((1, "10s".into()))),
                });
            }
            (pool, None)
        }
    };
    // cutover speaks one way to a pool: an upstream reached over both
    // http:// and https:// cannot be one pool.
    match cx.schemes.insert(pool.clone(), https) {
        Some(before) if before != https => cx.conflicts.push(format!(
            "upstream {name} is reached over http:// and https://; a cutover pool speaks one of them"
        )),
        _ => {}
    }
    if https {
        let tls = pool_tls(cx, scope, name);
        for p in std::iter::once(&pool).chain(backup.iter()) {
            if let Some(p) = cx.t.pools.iter_mut().find(|x| x.name == *p) {
                p.tls = Some(tls.clone());
            }
        }
    }
    Some((pool, backup))
}

/// `proxy_ssl_*` in force, as the pool's TLS settings.
fn pool_tls(cx: &mut Ctx, scope: &[&Directive], upstream: &str) -> PoolTls {
    let one = |name: &str| in_force(scope, name).into_iter().next_back();
    let mut tls = PoolTls::default();
    if let Some(d) = one("proxy_ssl_verify") {
        tls.verify = d.args.first().is_some_and(|a| a == "on");
        cx.mark(d, Verdict::Converted, "");
    }
    let sends_name = one("proxy_ssl_server_name");
    if let Some(d) = sends_name {
        cx.mark(d, Verdict::Converted, "");
    }
    match one("proxy_ssl_name") {
        Some(d) => {
            tls.sni = d.args.first().cloned();
            cx.mark(d, Verdict::Converted, "");
        }
        None if sends_name.is_some_and(|d| d.args.first().is_some_and(|a| a == "on")) => {
            let host = upstream.split(':').next().unwrap_or(upstream);
            tls.sni = Some(host.to_string());
        }
        None => {}
    }
    if let Some(d) = one("proxy_ssl_trusted_certificate") {
        tls.ca = d.args.first().map(|p| cx.path(p));
        cx.mark(d, Verdict::Converted, "");
    }
    for name in ["proxy_ssl_protocols", "proxy_ssl_ciphers"] {
        if let Some(d) = one(name) {
            cx.mark(
                d,
                Verdict::Different,
                "cutover speaks TLS 1.2 and 1.3 with rustls's cipher suites",
            );
        }
    }
    tls
}
