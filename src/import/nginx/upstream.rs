//! `upstream NAME { server …; }` → a pool, and one more for its `backup`
//! servers (cutover's failover pool, used when the first has no healthy
//! backend, as nginx uses backups).

use super::parse::Directive;
use super::Ctx;
use crate::import::model::{pool_name, Pool};
use crate::import::report::Verdict;
use crate::import::units;

/// nginx's passive-check defaults: one failure within 10 s takes a server
/// out for 10 s.
const NGINX_MAX_FAILS: u32 = 1;
const NGINX_FAIL_TIMEOUT_MS: u64 = 10_000;

/// Convert one `upstream` block.
pub(super) fn upstream(cx: &mut Ctx, d: &Directive) {
    let Some(name) = d.args.first() else {
        cx.mark(d, Verdict::Blocking, "upstream without a name");
        return;
    };
    let pool = pool_name(name);
    let mut primary = Pool {
        name: pool.clone(),
        origin: Ctx::origin(d),
        backends: Vec::new(),
        health: None,
        tls: None,
        outlier: None,
    };
    let mut backup = Pool {
        name: format!("{pool}-backup"),
        backends: Vec::new(),
        ..primary.clone()
    };
    // (max_fails, fail_timeout) as the first server gives them; servers
    // that disagree are reported.
    let mut passive: Option<(u32, u64, String)> = None;
    for s in d.children() {
        match s.name.as_str() {
            "server" => server(cx, s, &mut primary, &mut backup, &mut passive),
            "keepalive" | "keepalive_requests" | "keepalive_timeout" | "keepalive_time" => cx.mark(
                s,
                Verdict::Converted,
                "cutover keeps idle backend connections open and reuses them",
            ),
            "zone" => cx.mark(s, Verdict::Ignored, "shared memory for nginx's workers"),
            "least_conn" | "ip_hash" | "hash" | "random" | "sticky" => cx.mark(
                s,
                Verdict::Different,
                "cutover picks a pool's backends by weighted round robin (stickiness is per pool, with the route's sticky key)",
            ),
            _ => {}
        }
    }
    let (fails, timeout_ms) = passive
        .as_ref()
        .map_or((NGINX_MAX_FAILS, NGINX_FAIL_TIMEOUT_MS), |(f, t, _)| {
            (*f, *t)
        });
    let outlier = if fails == 0 {
        Some(None)
    } else {
        Some(Some((fails, units::duration(timeout_ms.max(1)))))
    };
    primary.outlier = outlier.clone();
    backup.outlier = outlier;
    if primary.backends.is_empty() {
        cx.mark(
            d,
            Verdict::Blocking,
            "no server cutover can reach (unix sockets are not supported): requests for it fail",
        );
        return;
    }
    if fails == 0 {
        cx.mark(
            d,
            Verdict::Converted,
            format!("pool {pool}; max_fails=0: passive checks off"),
        );
    } else {
        cx.mark(
            d,
            Verdict::Different,
            format!(
                "pool {pool}; passive checks: {fails} consecutive failure(s) eject a server for {} (nginx counts failures within fail_timeout; cutover doubles a repeated ejection and never ejects more than half a pool)",
                units::duration(timeout_ms)
            ),
        );
    }
    let backup_name = if backup.backends.is_empty() {
        None
    } else {
        let n = backup.name.clone();
        cx.t.pools.push(backup);
        Some(n)
    };
    // The primary first, so the file reads in the source's order.
    let at = cx.t.pools.len() - usize::from(backup_name.is_some());
    cx.t.pools.insert(at, primary);
    cx.upstreams.insert(name.clone(), (pool, backup_name));
}

fn server(
    cx: &mut Ctx,
    s: &Directive,
    primary: &mut Pool,
    backup: &mut Pool,
    passive: &mut Option<(u32, u64, String)>,
) {
    let Some(addr) = s.args.first() else {
        cx.mark(s, Verdict::Blocking, "server without an address");
        return;
    };
    let Some(addr) = units::host_port(addr, 80) else {
        cx.mark(
            s,
            Verdict::Blocking,
            "cutover cannot dial this address (unix sockets are not supported)",
        );
        return;
    };
    let mut weight = 1u32;
    let mut is_backup = false;
    let mut down = false;
    let mut fails = NGINX_MAX_FAILS;
    let mut timeout_ms = NGINX_FAIL_TIMEOUT_MS;
    let mut notes: Vec<String> = Vec::new();
    let mut verdict = Verdict::Converted;
    for p in &s.args[1..] {
        let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
        match k {
            "weight" => match v.parse::<u32>() {
                Ok(w) if w > 0 => weight = w,
                _ => {
                    verdict = verdict.max(Verdict::Different);
                    notes.push(format!("weight {v:?} is not a positive number; 1 is used"));
                }
            },
            "max_fails" => fails = v.parse().unwrap_or(NGINX_MAX_FAILS),
            "fail_timeout" => timeout_ms = units::nginx_ms(v).unwrap_or(NGINX_FAIL_TIMEOUT_MS),
            "backup" => is_backup = true,
            "down" => down = true,
            "resolve" => notes.push("the name is resolved when cutover loads the config".into()),
            other => {
                verdict = verdict.max(Verdict::Unsupported);
                notes.push(format!(
                    "{other} is not converted (cutover has no per-server {other})"
                ));
            }
        }
    }
    match passive {
        None => *passive = Some((fails, timeout_ms, Ctx::origin(s))),
        Some((f, t, origin)) if (*f, *t) != (fails, timeout_ms) => {
            verdict = verdict.max(Verdict::Different);
            notes.push(format!(
                "cutover's passive checks are per pool: max_fails={f} fail_timeout={} from {origin} apply",
                units::duration(*t)
            ));
        }
        Some(_) => {}
    }
    if down {
        cx.mark(s, Verdict::Converted, "marked down: left out of the pool");
        return;
    }
    let into = if is_backup { backup } else { primary };
    into.backends.push((addr, weight));
    if is_backup {
        notes.push(format!(
            "backup: in pool {}, the route's failover",
            into.name
        ));
    }
    cx.mark(s, verdict, notes.join("; "));
}
