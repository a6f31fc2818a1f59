//! What is valid but likely not what the operator meant, printed by
//! `cutover check` as `warning: …` lines (it still exits 0): no routes, a
//! pool no route uses, a route an earlier one always takes first, a health
//! probe that outlives its interval, a shift that moves traffic as soon as
//! the config loads, and pinned CAs about to expire.

use super::{Config, HostPattern, RouteConfig, RouteMatch};
use std::time::SystemTime;

/// Whether every request `later` matches is matched by `earlier` too.
fn covers(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    let host = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostPattern::Exact(a)), Some(HostPattern::Exact(b))) => a == b,
        (Some(HostPattern::Wildcard(a)), Some(HostPattern::Exact(b))) => b.ends_with(a.as_str()),
        (Some(HostPattern::Wildcard(a)), Some(HostPattern::Wildcard(b))) => b.ends_with(a.as_str()),
        (Some(HostPattern::Prefix(a)), Some(HostPattern::Exact(b))) => b.starts_with(a.as_str()),
        (Some(HostPattern::Prefix(a)), Some(HostPattern::Prefix(b))) => b.starts_with(a.as_str()),
        (Some(_), Some(_)) => false,
    };
    let path = match (&earlier.path_prefix, &later.path_prefix) {
        (None, _) => true,
        (Some(a), Some(b)) => b.starts_with(a.as_str()),
        (Some(a), None) => a == "/",
    };
    let methods = earlier.methods.is_empty()
        || (!later.methods.is_empty() && later.methods.iter().all(|m| earlier.methods.contains(m)));
    let headers = earlier.headers.iter().all(|h| later.headers.contains(h));
    host && path && methods && headers
}

fn every_request(m: &RouteMatch) -> bool {
    m.host.is_none()
        && m.path_prefix.as_deref().is_none_or(|p| p == "/")
        && m.methods.is_empty()
        && m.headers.is_empty()
}

fn shadowed(cfg: &Config, out: &mut Vec<String>) {
    for (i, later) in cfg.routes.iter().enumerate() {
        if let Some(earlier) = cfg.routes[..i]
            .iter()
            .find(|e| covers(&e.matcher, &later.matcher))
        {
            let why = if every_request(&earlier.matcher) {
                "matches every request"
            } else {
                "matches everything it does"
            };
            out.push(format!(
                "route {} is never used: route {} before it {why} (the first match wins)",
                later.name, earlier.name
            ));
        }
    }
}

fn shift_at_load(cfg: &Config, r: &RouteConfig, now: SystemTime) -> Option<String> {
    let s = r.shift.as_ref()?;
    let to = &cfg.pools[s.to].name;
    match s.start_at {
        None => Some(format!(
            "route {}: its shift starts moving traffic as soon as this config loads ({} % to {to}); set start_at to choose when",
            r.name, s.steps[0]
        )),
        Some(t) if t <= now => {
            let elapsed = now.duration_since(t).unwrap_or_default();
            let step = ((elapsed.as_secs_f64() / s.hold.as_secs_f64().max(0.001)) as usize)
                .min(s.steps.len() - 1);
            Some(format!(
                "route {}: start_at is in the past: the shift moves traffic at once, at step {} ({} % to {to})",
                r.name,
                step + 1,
                s.steps[step]
            ))
        }
        Some(_) => None,
    }
}

/// The warnings for `cfg` at `now`.
pub(super) fn warnings(cfg: &Config, now: SystemTime) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.routes.is_empty() {
        out.push("no routes: every request gets 404".into());
    }
    for (i, p) in cfg.pools.iter().enumerate() {
        let used = cfg
            .routes
            .iter()
            .any(|r| r.split.iter().any(|e| e.pool == i) || r.failover.contains(&i));
        if !used {
            out.push(format!("pool {} is not used by any route", p.name));
        }
        if let Some(h) = &p.health {
            if h.timeout > h.interval {
                out.push(format!(
                    "pool {}: health timeout {} is longer than its interval {}: a slow probe overlaps the next",
                    p.name,
                    humantime::format_duration(h.timeout),
                    humantime::format_duration(h.interval)
                ));
            }
        }
    }
    shadowed(cfg, &mut out);
    out.extend(cfg.routes.iter().filter_map(|r| shift_at_load(cfg, r, now)));
    out.extend(
        cfg.pools
            .iter()
            .filter_map(|p| {
                let tls = p.tls.as_ref().filter(|t| t.verify)?;
                Some(crate::tls::pin::ca_warnings(&p.name, tls.ca.as_ref()?))
            })
            .flatten(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn load(text: &str) -> Config {
        Config::from_str_named(text, Path::new("t.toml")).unwrap()
    }

    const POOLS: &str =
        "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[pools.b]\nbackends = [\"127.0.0.1:2\"]\n";

    #[test]
    fn a_clean_config_has_none() {
        let cfg = load(&format!(
            "{POOLS}[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nsplit = {{ a = 1 }}\n\
             [[routes]]\nname = \"rest\"\nsplit = {{ b = 1 }}\n"
        ));
        assert_eq!(warnings(&cfg, SystemTime::now()), Vec::<String>::new());
    }

    #[test]
    fn each_warning() {
        let cfg = load(&format!(
            "{POOLS}[pools.c]\nbackends = [\"127.0.0.1:3\"]\nhealth = {{ path = \"/\", interval = \"1s\", timeout = \"2s\" }}\n\
             [[routes]]\nname = \"all\"\nsplit = {{ a = 1 }}\n\
             [[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nsplit = {{ a = 1, b = 0 }}\n\
             [routes.shift]\nto = \"b\"\nsteps = [10, 100]\nhold = \"1m\"\n"
        ));
        let w = warnings(&cfg, SystemTime::now());
        assert_eq!(
            w,
            vec![
                "pool c is not used by any route".to_string(),
                "pool c: health timeout 2s is longer than its interval 1s: a slow probe overlaps the next".to_string(),
                "route api is never used: route all before it matches every request (the first match wins)".to_string(),
                "route api: its shift starts moving traffic as soon as this config loads (10 % to b); set start_at to choose when".to_string(),
            ]
        );
        let none = load("[pools.a]\nbackends = [\"127.0.0.1:1\"]\n");
        assert_eq!(
            warnings(&none, SystemTime::now())[0],
            "no routes: every request gets 404"
        );
    }

    #[test]
    fn a_start_in_the_past_names_the_step() {
        let cfg = load(&format!(
            "{POOLS}[[routes]]\nname = \"www\"\nsplit = {{ a = 1, b = 0 }}\n\
             [routes.shift]\nto = \"b\"\nsteps = [10, 50, 100]\nhold = \"1m\"\nstart_at = \"2026-01-01T00:00:00Z\"\n"
        ));
        let start = cfg.routes[0].shift.as_ref().unwrap().start_at.unwrap();
        let w = warnings(&cfg, start + Duration::from_secs(90));
        assert!(w[0].contains("at step 2 (50 % to b)"), "{w:?}");
        assert!(warnings(&cfg, start - Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn shadowing_by_host_path_and_method() {
        let cfg = load(&format!(
            "{POOLS}[[routes]]\nname = \"wild\"\nmatch = {{ host = \"*.example.com\" }}\nsplit = {{ a = 1 }}\n\
             [[routes]]\nname = \"www\"\nmatch = {{ host = \"www.example.com\", path_prefix = \"/x\" }}\nsplit = {{ b = 1 }}\n\
             [[routes]]\nname = \"other\"\nmatch = {{ host = \"example.org\" }}\nsplit = {{ b = 1 }}\n"
        ));
        let w = warnings(&cfg, SystemTime::now());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with(
            "route www is never used: route wild before it matches everything it does"
        ));
    }
}
