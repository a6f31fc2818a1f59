//! `frontend` (and the front half of `listen`): `bind` → listeners,
//! `acl` + `use_backend … if` → routes in rule order, `default_backend` →
//! a last route for everything else. A rule on a header's
//! `crc32,mod(M)` range, followed by a rule (or the default) with the same
//! other conditions, becomes one route with a weighted, sticky split.

use super::acl::{self, Acls, Frag};
use super::backend::Pools;
use super::parse::{Line, Section};
use super::Ctx;
use crate::import::model::{Route, TlsListener};
use crate::import::report::Verdict;
use crate::import::units;
use std::collections::HashMap;
use std::net::SocketAddr;

/// One rule: the alternatives it matches and its backend.
struct Rule<'a> {
    alts: Vec<Frag>,
    backend: String,
    line: &'a Line,
}

/// Convert a frontend; `lines` are its defaults' lines then its own.
/// `own` is the pool of a `listen` section (its default backend).
pub(super) fn frontend(
    cx: &mut Ctx,
    sec: &Section,
    lines: &[&Line],
    pools: &HashMap<String, Pools>,
    own: Option<&str>,
) {
    let mut acls = Acls::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut default: Option<(String, &Line)> = None;
    for l in lines {
        match l.word(0) {
            "bind" => bind(cx, l),
            "acl" => match acl::acl_line(&mut acls, l) {
                Ok(note) => cx.mark_at(
                    &l.at,
                    if note.is_some() {
                        Verdict::Different
                    } else {
                        Verdict::Converted
                    },
                    note.unwrap_or_default(),
                ),
                // The ACL is fine unless a rule uses it; that rule says so.
                Err(e) => cx.mark_at(&l.at, Verdict::Unsupported, e),
            },
            "use_backend" => match acl::condition(&acls, l.rest(2)) {
                Ok(alts) => rules.push(Rule {
                    alts,
                    backend: l.word(1).to_string(),
                    line: l,
                }),
                Err(e) => cx.mark_at(&l.at, Verdict::Blocking, e),
            },
            "default_backend" => default = Some((l.word(1).to_string(), l)),
            _ => {}
        }
    }
    let name = sec.name().to_string();
    let mut i = 0;
    while i < rules.len() {
        let rule = &rules[i];
        let Some(dest) = pools.get(&rule.backend) else {
            cx.mark_at(
                &rule.line.at,
                Verdict::Blocking,
                format!("backend {} was not converted", rule.backend),
            );
            i += 1;
            continue;
        };
        let mut consumed = 1;
        // Hash alternatives already made into a split (same header, same
        // other conditions): one split takes all of a rule's ranges.
        let mut split_done: Vec<Frag> = Vec::new();
        for alt in &rule.alts {
            let key = |a: &Frag| Frag {
                hash: a.hash.as_ref().map(|x| acl::Hash {
                    lo: 0,
                    hi: 0,
                    ..x.clone()
                }),
                ..a.clone()
            };
            if alt.hash.is_some() {
                if split_done.contains(&key(alt)) {
                    continue;
                }
                split_done.push(key(alt));
            }
            match &alt.hash {
                None => push_route(
                    cx,
                    &name,
                    alt,
                    vec![(dest.0.clone(), 100.0)],
                    dest,
                    None,
                    &rule.line.at,
                ),
                Some(_) => {
                    consumed =
                        consumed.max(split(cx, &name, &rules[i..], alt, default.as_ref(), pools))
                }
            }
        }
        cx.mark_at(&rule.line.at, Verdict::Converted, "");
        i += consumed;
    }
    let default = default
        .map(|(b, l)| (b, Some(l)))
        .or(own.map(|o| (o.to_string(), None)));
    if let Some((backend, line)) = default {
        match pools.get(&backend) {
            Some(dest) => {
                let at = line.map_or(&sec.head.at, |l| &l.at);
                push_route(
                    cx,
                    &name,
                    &Frag::default(),
                    vec![(dest.0.clone(), 100.0)],
                    dest,
                    None,
                    at,
                );
                if let Some(l) = line {
                    cx.mark_at(&l.at, Verdict::Converted, "the last route: everything else");
                }
            }
            None => {
                if let Some(l) = line {
                    cx.mark_at(
                        &l.at,
                        Verdict::Blocking,
                        format!("backend {backend} was not converted"),
                    );
                }
            }
        }
    }
    cx.mark_at(&sec.head.at, Verdict::Converted, "");
}

/// A hash rule (and those after it with the same other conditions, then
/// the rule or default that takes the rest) → one split route. Returns how
/// many rules it used.
fn split(
    cx: &mut Ctx,
    fe: &str,
    rules: &[Rule],
    first: &Frag,
    default: Option<&(String, &Line)>,
    pools: &HashMap<String, Pools>,
) -> usize {
    let base = Frag {
        hash: None,
        ..first.clone()
    };
    let Some(h) = first.hash.clone() else {
        return 1;
    };
    let mut parts: Vec<(String, f64)> = Vec::new();
    let mut failover = Vec::new();
    // The buckets the rules so far take, as disjoint [lo, hi) ranges: the
    // first rule that takes a bucket wins it, as in HAProxy.
    let mut taken: Vec<(u64, u64)> = Vec::new();
    let mut used = 0;
    let mut rest: Option<String> = None;
    let mut to_the_end = true;
    for (i, r) in rules.iter().enumerate() {
        let same = |a: &Frag| {
            Frag {
                hash: None,
                ..a.clone()
            } == base
        };
        let hashed: Vec<&acl::Hash> = r
            .alts
            .iter()
            .filter_map(|a| {
                a.hash
                    .as_ref()
                    .filter(|x| x.header == h.header && x.modulo == h.modulo && same(a))
            })
            .collect();
        // A later rule joins the split only when ranges of this hash are
        // all it matches; otherwise its other alternatives would be lost.
        if !hashed.is_empty() && (i == 0 || hashed.len() == r.alts.len()) {
            let share: u64 = hashed
                .iter()
                .map(|x| add_range(&mut taken, x.lo, x.hi))
                .sum();
            parts.push((r.backend.clone(), share as f64 * 100.0 / h.modulo as f64));
            cx.mark_at(&r.line.at, Verdict::Converted, "");
            used += 1;
        } else if r.alts.contains(&base) {
            // The rule that takes the rest. Consumed when the hash rule's
            // routes cover all it matches; otherwise it stays a route of
            // its own (behind them for these requests).
            rest = Some(r.backend.clone());
            let covered = |a: &Frag| {
                rules[0].alts.iter().any(|h| {
                    Frag {
                        hash: None,
                        ..h.clone()
                    } == *a
                })
            };
            if r.alts.iter().all(covered) {
                cx.mark_at(&r.line.at, Verdict::Converted, "");
                used += 1;
            }
            to_the_end = false;
            break;
        } else {
            to_the_end = false;
            break;
        }
    }
    // The default backend takes the rest only when no rule comes between.
    if rest.is_none() && base == Frag::default() && to_the_end {
        rest = default.map(|(b, _)| b.clone());
    }
    let at = &rules[0].line.at;
    let Some(rest) = rest else {
        cx.mark_at(
            at,
            Verdict::Blocking,
            "the rest of the hash range goes on to later rules: cutover cannot express it",
        );
        return used.max(1);
    };
    let covered: u64 = taken.iter().map(|(lo, hi)| hi - lo).sum();
    parts.push((
        rest,
        h.modulo.saturating_sub(covered) as f64 * 100.0 / h.modulo as f64,
    ));
    let mut split = Vec::new();
    for (backend, pct) in parts {
        let Some(p) = pools.get(&backend) else {
            cx.mark_at(
                at,
                Verdict::Blocking,
                format!("backend {backend} was not converted"),
            );
            return used.max(1);
        };
        if pct > 0.0 {
            split.push((p.0.clone(), pct));
            failover.extend(p.1.clone());
        }
    }
    cx.mark_at(
        at,
        Verdict::Different,
        format!(
            "a split sticky on header {}: HAProxy hashes it with crc32, cutover into its own buckets (the same shares, not the same users); requests without it fail the ACL and go to the rest in HAProxy, cutover splits them by weight",
            h.header
        ),
    );
    let mut route = route_of(cx, fe, &base, split, at);
    route.failover = failover;
    route.sticky = Some(("header".into(), h.header.clone()));
    cx.t.routes.push(route);
    used.max(1)
}

/// Take [lo, hi) into the disjoint ranges `taken`; returns how many
/// buckets were not taken before.
fn add_range(taken: &mut Vec<(u64, u64)>, lo: u64, hi: u64) -> u64 {
    if lo >= hi {
        return 0;
    }
    let before: u64 = taken
        .iter()
        .map(|&(a, b)| b.min(hi).saturating_sub(a.max(lo)))
        .sum();
    taken.push((lo, hi));
    taken.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(taken.len());
    for &(a, b) in taken.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *taken = merged;
    (hi - lo) - before
}

fn route_of(
    cx: &Ctx,
    fe: &str,
    m: &Frag,
    split: Vec<(String, f64)>,
    at: &crate::import::record::Place,
) -> Route {
    let base = format!(
        "{fe}-{}{}",
        m.host.as_deref().unwrap_or(""),
        m.path_prefix.as_deref().unwrap_or("")
    );
    Route {
        name: cx.t.unique_route_name(&base),
        origin: at.origin(),
        host: m.host.clone(),
        path_prefix: m.path_prefix.clone(),
        methods: m.methods.clone(),
        headers: m.headers.clone(),
        split,
        failover: Vec::new(),
        sticky: None,
    }
}

fn push_route(
    cx: &mut Ctx,
    fe: &str,
    m: &Frag,
    split: Vec<(String, f64)>,
    dest: &Pools,
    sticky: Option<(String, String)>,
    at: &crate::import::record::Place,
) {
    let mut r = route_of(cx, fe, m, split, at);
    r.failover = dest.1.iter().cloned().collect();
    r.sticky = sticky;
    cx.t.routes.push(r);
}

/// `bind ADDR [ssl crt FILE] [alpn h2,http/1.1]`.
fn bind(cx: &mut Ctx, l: &Line) {
    let raw = l
        .word(1)
        .trim_start_matches("ipv4@")
        .trim_start_matches("ipv6@");
    let Some(addr) = units::host_port(raw, 80).filter(|a| a.parse::<SocketAddr>().is_ok()) else {
        return cx.mark_at(
            &l.at,
            Verdict::Unsupported,
            "cutover listens on IP:port addresses only",
        );
    };
    let mut ssl = false;
    let mut certs = Vec::new();
    let mut h2 = false;
    let mut it = l.rest(2).iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "ssl" => ssl = true,
            "crt" => {
                if let Some(f) = it.next() {
                    let path = cx.cert_path(f);
                    certs.push((path.clone(), path));
                }
            }
            "alpn" => h2 = it.next().is_some_and(|a| a.split(',').any(|p| p == "h2")),
            "accept-proxy" => {
                return cx.mark_at(
                    &l.at,
                    Verdict::Blocking,
                    "cutover does not read the PROXY protocol",
                )
            }
            _ => {}
        }
    }
    if ssl {
        if certs.is_empty() {
            return cx.mark_at(&l.at, Verdict::Blocking, "ssl without crt");
        }
        cx.mark_at(
            &l.at,
            Verdict::Converted,
            "a TLS listener (the PEM holds certificate and key)",
        );
        cx.t.tls.push(TlsListener {
            listen: addr,
            certs,
            http2: h2,
            origin: l.at.origin(),
        });
    } else {
        cx.mark_at(&l.at, Verdict::Converted, "");
        if !cx.t.listen.contains(&addr) {
            cx.t.listen.push(addr);
        }
    }
}
