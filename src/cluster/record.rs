//! What the fleet keeps in etcd, under the `[cluster] prefix`:
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `PREFIX/routes/ROUTE` | [`RouteRecord`]: the fleet's decisions about a route | written by compare-and-swap |
//! | `PREFIX/drains` | [`Drains`]: backends taken out by an operator | written by compare-and-swap |
//! | `PREFIX/replicas/NAME` | [`Beat`]: one replica's heartbeat and gate window | under the replica's lease |
//!
//! Values are JSON, so an operator can read them with `etcdctl get`.

use crate::shift::window::Sums;
use crate::shift::{Phase, ShiftState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The fleet's decisions about one route: the shift's state as of the last
/// decision (every replica moves it along the same schedule from there), an
/// operator's split, and since when the gate counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// Hash of the route's definition these decisions were made for.
    pub hash: String,
    /// Hash of that definition's identity (split, shift pools, steps and
    /// start): a replica whose definition differs only in hold or gate
    /// still follows the record's progress.
    #[serde(default)]
    pub identity: String,
    /// When step 0 begins (Unix milliseconds).
    pub origin_ms: u64,
    /// The shift's state, if the route has a shift.
    pub shift: Option<ShiftState>,
    /// An operator's split (weights per split entry), overriding the rest.
    pub manual: Option<Vec<f64>>,
    /// The gate counts requests from this moment on (Unix milliseconds, 0:
    /// from the start of its window).
    pub gate_since_ms: u64,
    /// The replica that wrote it.
    pub by: String,
    /// When it was written (Unix milliseconds).
    pub at_ms: u64,
    /// Why, in words ("paused by operator", the gate's figures, ...).
    pub reason: String,
}

/// Backends an operator drained, fleet-wide: `"POOL ADDR"` entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drains {
    /// The drained backends.
    pub backends: BTreeSet<String>,
}

impl Drains {
    /// The entry for a backend.
    pub fn entry(pool: &str, addr: &str) -> String {
        format!("{pool} {addr}")
    }
}

/// One replica's heartbeat, written about twice a second under its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    /// The replica.
    pub name: String,
    /// When it was written (Unix milliseconds).
    pub at_ms: u64,
    /// The hash of its config file.
    pub config_hash: String,
    /// Its view of each route with a shift.
    pub routes: BTreeMap<String, RouteBeat>,
}

/// One replica's view of one shifting route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteBeat {
    /// Hash of its definition of the route.
    pub hash: String,
    /// The phase it serves.
    pub phase: Phase,
    /// The step it serves (1-based; 0 before the start).
    pub step: usize,
    /// The target pool's share it serves (percent).
    pub share: f64,
    /// The start of its gate window (Unix milliseconds, 0: none).
    pub since_ms: u64,
    /// Its gate window for the target pool.
    pub to: Sums,
    /// Its gate window for the source pool.
    pub from: Sums,
    /// Its mirror's comparisons over the gate's window (requests:
    /// compared, errors: different), for `max_mirror_mismatch`. Absent in
    /// heartbeats of versions without mirrors.
    #[serde(default)]
    pub mirror: Sums,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `PREFIX/routes/ROUTE`
    Route(String),
    /// `PREFIX/replicas/NAME`
    Replica(String),
    /// `PREFIX/drains`
    Drains,
}

impl Key {
    /// The full etcd key under `prefix`.
    pub fn path(&self, prefix: &str) -> String {
        match self {
            Key::Route(r) => format!("{prefix}/routes/{r}"),
            Key::Replica(n) => format!("{prefix}/replicas/{n}"),
            Key::Drains => format!("{prefix}/drains"),
        }
    }

    /// Read a full etcd key; `None` for keys cutover does not own.
    pub fn parse(prefix: &str, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
        match rest.split_once('/') {
            Some(("routes", r)) if !r.is_empty() && !r.contains('/') => {
                Some(Key::Route(r.to_string()))
            }
            Some(("replicas", n)) if !n.is_empty() && !n.contains('/') => {
                Some(Key::Replica(n.to_string()))
            }
            None if rest == "drains" => Some(Key::Drains),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_ignored() {
        for k in [
            Key::Route("www".into()),
            Key::Replica("edge-a".into()),
            Key::Drains,
        ] {
            assert_eq!(Key::parse("/c/www", &k.path("/c/www")), Some(k));
        }
        for foreign in [
            "/c/wwwx/drains",
            "/c/www/routes/",
            "/c/www/routes/a/b",
            "/c/www/other",
            "/d/x",
        ] {
            assert_eq!(Key::parse("/c/www", foreign), None, "{foreign}");
        }
    }
}
