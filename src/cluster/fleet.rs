//! The fleet's arithmetic, pure: which replicas define a route differently,
//! and the gate window summed over the replicas that count.

use super::record::Beat;
use crate::shift::window::Sums;

/// Peers' gate windows that start this far apart from ours still count:
/// replicas start a window on the same shared moment, seen through their
/// own clocks.
pub(crate) const SINCE_TOLERANCE_MS: u64 = 1_000;

/// The peers (by name) that do not define `route` as `hash` does.
pub(crate) fn differing<'a>(
    route: &str,
    hash: &str,
    peers: impl Iterator<Item = &'a Beat>,
) -> Vec<String> {
    peers
        .filter(|b| b.routes.get(route).is_none_or(|r| r.hash != hash))
        .map(|b| b.name.clone())
        .collect()
}

/// The fleet's gate window for a route: this replica's own counts plus
/// every peer's whose definition and window start match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetWindow {
    /// The target pool, summed.
    pub to: Sums,
    /// The source pool, summed.
    pub from: Sums,
    /// Each replica's share of the target pool's requests: (name, requests).
    pub shares: Vec<(String, u64)>,
}

/// Sum `own` (this replica, named `name`) and the peers' windows for `route`.
pub(crate) fn sum<'a>(
    route: &str,
    hash: &str,
    since_ms: u64,
    own: (&str, Sums, Sums),
    peers: impl Iterator<Item = &'a Beat>,
) -> FleetWindow {
    let (name, to, from) = own;
    let mut w = FleetWindow {
        to,
        from,
        shares: vec![(name.to_string(), to.requests)],
    };
    for beat in peers {
        let Some(r) = beat.routes.get(route) else {
            continue;
        };
        if r.hash != hash || r.since_ms.abs_diff(since_ms) > SINCE_TOLERANCE_MS {
            continue;
        }
        w.to.add(&r.to);
        w.from.add(&r.from);
        w.shares.push((beat.name.clone(), r.to.requests));
    }
    w
}

/// The fleet's mirror comparisons of `route`: this replica's `own` plus
/// those of the live peers that define the route the same way (`hash`).
pub(crate) fn sum_mirror<'a>(
    route: &str,
    hash: &str,
    own: Sums,
    peers: impl Iterator<Item = &'a Beat>,
) -> Sums {
    let mut total = own;
    for beat in peers {
        if let Some(r) = beat.routes.get(route).filter(|r| r.hash == hash) {
            total.add(&r.mirror);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::record::RouteBeat;
    use crate::shift::Phase;

    fn sums(requests: u64, errors: u64) -> Sums {
        let mut s = Sums {
            requests,
            errors,
            ..Sums::default()
        };
        s.latency[3] = requests;
        s
    }

    fn beat(name: &str, hash: &str, since_ms: u64, to: Sums) -> Beat {
        Beat {
            name: name.into(),
            at_ms: 0,
            config_hash: "c".into(),
            routes: [(
                "www".to_string(),
                RouteBeat {
                    hash: hash.into(),
                    phase: Phase::Running,
                    step: 1,
                    share: 5.0,
                    since_ms,
                    to,
                    from: sums(100, 0),
                    mirror: sums(10, 1),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn mirror_comparisons_add_up_over_replicas_that_agree_on_the_route() {
        let peers = [
            beat("b", "h", 0, sums(1, 0)),
            beat("c", "other", 0, sums(1, 0)),
        ];
        let total = sum_mirror("www", "h", sums(5, 2), peers.iter());
        assert_eq!((total.requests, total.errors), (15, 3));
        let none = sum_mirror("api", "h", sums(5, 2), peers.iter());
        assert_eq!((none.requests, none.errors), (5, 2));
    }

    #[test]
    fn replicas_below_min_requests_add_up_above_it() {
        let peers = [
            beat("b", "h", 10_000, sums(40, 20)),
            beat("c", "h", 10_300, sums(40, 20)),
        ];
        let w = sum(
            "www",
            "h",
            10_100,
            ("a", sums(40, 20), sums(100, 0)),
            peers.iter(),
        );
        assert_eq!((w.to.requests, w.to.errors), (120, 60));
        assert_eq!(w.from.requests, 300);
        assert_eq!(
            w.shares,
            vec![("a".into(), 40), ("b".into(), 40), ("c".into(), 40)]
        );
    }

    #[test]
    fn other_definitions_and_stale_windows_do_not_count() {
        let peers = [
            beat("b", "other", 10_000, sums(40, 20)),
            beat("c", "h", 2_000, sums(40, 20)),
        ];
        let w = sum(
            "www",
            "h",
            10_000,
            ("a", sums(5, 0), sums(1, 0)),
            peers.iter(),
        );
        assert_eq!(w.to, sums(5, 0));
        assert_eq!(differing("www", "h", peers.iter()), vec!["b".to_string()]);
        assert_eq!(differing("api", "h", peers.iter()).len(), 2);
    }
}
