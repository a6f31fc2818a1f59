//! The control plane as a member of a fleet: records written by any replica
//! are applied here, this replica's heartbeat (with its gate window) is
//! assembled for the sync task, and the records it owes the fleet (a route
//! it has no record of, a stop made alone) are found. Operators' actions
//! are in `fleet_actions.rs`.

use super::{Control, ControlState, RouteControl};
use crate::cluster::fleet::FleetWindow;
use crate::cluster::record::{Beat, Drains, Key, RouteBeat, RouteRecord};
use crate::shift::{gate, Phase, ShiftState, Transition};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::info;

/// Why a fleet-wide action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Another replica changed the same thing first.
    #[error(
        "another replica changed this first; nothing was done (the current state is attached)"
    )]
    Conflict,
    /// etcd could not be reached.
    #[error("{0}; only pause and rollback work without etcd (they apply here and reach the fleet when it is back)")]
    Unavailable(String),
    /// The fleet does not agree on the route, or has no record of it yet.
    #[error("{0}")]
    Frozen(String),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Control {
    /// The record of `rc` as this replica would write it.
    pub(super) fn record_of(&self, rc: &RouteControl, reason: &str) -> RouteRecord {
        RouteRecord {
            hash: rc.hash.clone(),
            identity: rc.identity.clone(),
            origin_ms: unix_ms(rc.origin),
            shift: rc.shift.clone(),
            manual: rc.manual.clone(),
            gate_since_ms: rc.gate_since_unix,
            by: self.cluster.as_ref().map_or("", |c| c.name()).to_string(),
            at_ms: unix_ms(SystemTime::now()),
            reason: reason.to_string(),
        }
    }

    /// Apply a record of `route` read from etcd at revision `rev` (a watch
    /// event, the first read, or this replica's own write). A record of
    /// another identity of the route (see `routes::identity`), or older than
    /// the one applied, is left alone; so is a record weaker than a stop
    /// this replica made that the fleet has not seen yet (a rollback beats a
    /// pause, which beats anything else).
    pub(crate) fn apply_record(&self, route: &str, rec: RouteRecord, rev: i64) {
        let mut st = self.lock();
        let config = st.config.clone();
        let Some(r) = config.routes.iter().find(|r| r.name == route) else {
            return;
        };
        let Some(rc) = st.routes.get_mut(route) else {
            return;
        };
        let same = if rec.identity.is_empty() {
            rec.hash == rc.hash
        } else {
            rec.identity == rc.identity
        };
        if !same || rev <= rc.fleet_rev {
            return;
        }
        rc.fleet_rev = rev;
        let strength = |s: Option<&ShiftState>| match s.map(|s| s.phase) {
            Some(Phase::RolledBack) => 2,
            Some(Phase::Paused) => 1,
            _ => 0,
        };
        if rc.pending_stop && strength(rec.shift.as_ref()) < strength(rc.shift.as_ref()) {
            return;
        }
        rc.pending_stop = false;
        let before = (rc.shift.clone(), rc.manual.clone());
        let moved_from = rc.shift.as_ref().map(|s| (s.phase, s.step));
        rc.origin = UNIX_EPOCH + Duration::from_millis(rec.origin_ms);
        // An operator's split from etcd is checked like one from the API.
        rc.manual = rec.manual.filter(|m| {
            m.len() == r.split.len()
                && m.iter().all(|w| w.is_finite() && *w >= 0.0)
                && m.iter().any(|w| *w > 0.0)
        });
        rc.shift = rec.shift;
        if let (Some(cfg), Some(state)) = (&r.shift, rc.shift.as_mut()) {
            state.step = state.step.min(cfg.steps.len().saturating_sub(1));
            // Catch up with the schedule since the record was written.
            state.tick(cfg, SystemTime::now());
        }
        rc.gate_since_unix = rec.gate_since_ms;
        if (rc.shift.clone(), rc.manual.clone()) == before {
            return;
        }
        let moved = rc.shift.as_ref().map(|s| (s.phase, s.step)) != moved_from;
        if let (Some(cfg), Some(state), true) = (&r.shift, rc.shift.as_ref(), moved) {
            let t = Transition {
                to: state.phase,
                step: state.step,
                reason: format!("{} (decided by {})", rec.reason, rec.by),
            };
            self.note_transition(route, &t, cfg, None);
        } else if rc.manual != before.1 {
            info!(route, by = %rec.by, reason = %rec.reason, "applied the fleet's split");
            self.events.push(
                "fleet",
                format!("{route}: {} (decided by {})", rec.reason, rec.by),
            );
        }
        if let Err(e) = self.publish(&mut st) {
            tracing::warn!("cannot publish the fleet's decision: {e}");
        }
        self.persist(&st);
    }

    /// Apply every record in the view that is newer than what a route
    /// follows (after a reload made a route's identity match a record that
    /// was left alone before).
    pub(crate) fn adopt_known_records(&self) {
        let Some(cluster) = &self.cluster else { return };
        let known: Vec<(String, RouteRecord, i64)> = cluster
            .view()
            .routes
            .iter()
            .map(|(r, (rec, rev))| (r.clone(), rec.clone(), *rev))
            .collect();
        for (route, rec, rev) in known {
            self.apply_record(&route, rec, rev);
        }
    }

    /// Take out exactly the backends the fleet has drained.
    pub(crate) fn apply_drains(&self, drains: &Drains) {
        let snap = self.snapshot();
        for p in &snap.pools {
            for b in &p.backends {
                let want = drains.backends.contains(&Drains::entry(&p.name, &b.addr));
                if b.state.is_draining() != want {
                    b.state.set_draining(want);
                    info!(pool = %p.name, backend = %b.addr, draining = want, "backend drain changed by the fleet");
                    self.events.push(
                        "fleet",
                        format!(
                            "{}/{}: {}",
                            p.name,
                            b.addr,
                            if want { "drained" } else { "undrained" }
                        ),
                    );
                }
            }
        }
    }

    /// This replica's heartbeat: its view and gate window of every
    /// shifting route.
    pub(crate) fn beat(&self, name: &str) -> Beat {
        let st = self.lock();
        let now_ms = crate::clock::now_ms();
        let mut routes = std::collections::BTreeMap::new();
        for r in &st.config.routes {
            let (Some(cfg), Some(rc)) = (&r.shift, st.routes.get(&r.name)) else {
                continue;
            };
            let Some(state) = &rc.shift else { continue };
            let (to, from) = self.own_sums(&st, &r.name, cfg, rc, now_ms);
            let mirror = self.own_mirror_sums(&r.name, cfg, now_ms);
            routes.insert(
                r.name.clone(),
                RouteBeat {
                    hash: rc.hash.clone(),
                    phase: state.phase,
                    step: if state.phase == Phase::Idle {
                        0
                    } else {
                        state.step + 1
                    },
                    share: state.share(cfg).unwrap_or(0.0),
                    since_ms: rc.gate_start().0,
                    to,
                    from,
                    mirror,
                },
            );
        }
        Beat {
            name: name.to_string(),
            at_ms: unix_ms(SystemTime::now()),
            config_hash: st.config.hash.clone(),
            routes,
        }
    }

    /// This replica's own gate window of a route (target pool, source pool).
    pub(super) fn own_sums(
        &self,
        st: &ControlState,
        route: &str,
        cfg: &crate::config::ShiftConfig,
        rc: &RouteControl,
        now_ms: u64,
    ) -> (crate::shift::window::Sums, crate::shift::window::Sums) {
        let window = gate::window_for(cfg.hold);
        let sums = |pool: usize| {
            self.registry
                .window(route, &st.config.pools[pool].name)
                .sums(now_ms, window, rc.gate_start().1)
        };
        (sums(cfg.to), sums(cfg.from))
    }

    /// The fleet's gate window of `route` now, if this replica is in a fleet
    /// and the route has a shift.
    pub fn fleet_window(&self, route: &str) -> Option<FleetWindow> {
        let cluster = self.cluster.as_ref()?;
        let st = self.lock();
        let r = st.config.routes.iter().find(|r| r.name == route)?;
        let (cfg, rc) = (r.shift.as_ref()?, st.routes.get(route)?);
        let (to, from) = self.own_sums(&st, route, cfg, rc, crate::clock::now_ms());
        Some(cluster.fleet_window(route, &rc.hash, rc.gate_start().0, to, from))
    }

    /// Records this replica should write: one for each shifting route the
    /// fleet has no record of, and a new one where the record is for another
    /// definition but every live replica now agrees on this one. With the
    /// revision each write expects.
    pub(crate) fn records_to_create(&self) -> Vec<(String, RouteRecord, i64)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let st = self.lock();
        let mut out = Vec::new();
        for r in st.config.routes.iter().filter(|r| r.shift.is_some()) {
            let Some(rc) = st.routes.get(&r.name) else {
                continue;
            };
            let (expected, reason) = {
                let view = cluster.view();
                match view.routes.get(&r.name) {
                    Some((rec, _)) if rec.hash == rc.hash => continue,
                    None => (0, "the first replica of the fleet"),
                    Some((rec, rev)) => {
                        let peers = view.live_peers(Instant::now());
                        if !crate::cluster::fleet::differing(&r.name, &rc.hash, peers).is_empty() {
                            continue;
                        }
                        // Same identity: this replica carries the record's
                        // progress once it has applied it.
                        if rec.identity == rc.identity && rc.fleet_rev < *rev {
                            continue;
                        }
                        (*rev, "every replica has the new definition")
                    }
                }
            };
            out.push((r.name.clone(), self.record_of(rc, reason), expected));
        }
        out
    }

    /// The stops this replica made alone that the fleet has not seen yet:
    /// (route, record, expected revision: the record of the same identity
    /// in the view, or none yet). A stop waits while the fleet's record is
    /// of another identity (the replicas do not agree on the route).
    pub(crate) fn pending_stops(&self) -> Vec<(String, RouteRecord, i64)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let st = self.lock();
        let view = cluster.view();
        st.routes
            .iter()
            .filter(|(_, rc)| rc.pending_stop)
            .filter_map(|(name, rc)| {
                let expected = match view.routes.get(name) {
                    None => 0,
                    Some((rec, rev)) if rec.identity == rc.identity || rec.hash == rc.hash => *rev,
                    Some(_) => return None,
                };
                let reason = rc
                    .last_verdict
                    .as_ref()
                    .filter(|(_, v)| v.breach == Some(true))
                    .map_or(
                        "stopped while etcd was unreachable".to_string(),
                        |(_, v)| format!("gate breached: {}", v.reasons.join("; ")),
                    );
                Some((name.clone(), self.record_of(rc, &reason), expected))
            })
            .collect()
    }

    /// Adopt what a lost compare-and-swap found at the key.
    pub(crate) fn adopt(&self, key: &Key, current: Option<(Vec<u8>, i64)>) {
        let (Some(cluster), Some((value, rev))) = (&self.cluster, current) else {
            return;
        };
        match key {
            Key::Route(route) => {
                if let Ok(rec) = serde_json::from_slice::<RouteRecord>(&value) {
                    cluster.view().put_route(route, rec.clone(), rev);
                    self.apply_record(route, rec, rev);
                }
            }
            Key::Drains => {
                if let Ok(d) = serde_json::from_slice::<Drains>(&value) {
                    if cluster.view().put_drains(d.clone(), rev) {
                        self.apply_drains(&d);
                    }
                }
            }
            Key::Replica(_) => {}
        }
    }

    /// Write a stop this replica made alone: `Ok(true)` once the fleet has
    /// it (written, or the record already as stopped), `Ok(false)` when
    /// another replica wrote first and it is still owed, `Err` without etcd.
    pub(crate) async fn write_pending(
        &self,
        route: &str,
        rec: RouteRecord,
        rev: i64,
    ) -> Result<bool, String> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(true);
        };
        let reason = rec.reason.clone();
        match self.write_record(&cluster, route, rec, rev).await {
            Ok(()) => {
                info!(route, %reason, "wrote this replica's stop for the whole fleet");
                Ok(true)
            }
            Err(super::FleetError::Unavailable(e)) => Err(e),
            Err(_) => Ok(!self.route_control(route).is_some_and(|rc| rc.pending_stop)),
        }
    }
}
