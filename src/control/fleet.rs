//! The control plane as a member of a fleet: operators' actions become
//! compare-and-swap writes of a route's record in etcd, records written by
//! any replica are applied here, and this replica's heartbeat (with its gate
//! window) is assembled for the sync task. Without `[cluster]` the actions
//! fall through to the local ones in `shift.rs` and `routes.rs`.

use super::routes::local_ms;
use super::{Control, ControlState, RouteControl, ShiftError, SplitError};
use crate::cluster::fleet::FleetWindow;
use crate::cluster::record::{Beat, Drains, Key, RouteBeat, RouteRecord};
use crate::cluster::{Cluster, WriteError};
use crate::shift::{gate, Action, Phase, Transition};
use std::collections::HashMap;
use std::sync::Arc;
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
    fn record_of(&self, rc: &RouteControl, reason: &str) -> RouteRecord {
        RouteRecord {
            hash: rc.hash.clone(),
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
    /// event, the first read, or this replica's own write). A record for
    /// another definition of the route, or older than the one applied, is
    /// left alone; so is a running shift while this replica's own stop has
    /// not reached the fleet yet.
    pub(crate) fn apply_record(&self, route: &str, rec: RouteRecord, rev: i64) {
        let mut st = self.lock();
        let config = st.config.clone();
        let Some(r) = config.routes.iter().find(|r| r.name == route) else {
            return;
        };
        let Some(rc) = st.routes.get_mut(route) else {
            return;
        };
        if rec.hash != rc.hash || rev <= rc.fleet_rev {
            return;
        }
        rc.fleet_rev = rev;
        let moving = rec
            .shift
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Idle));
        if rc.pending_stop && moving {
            return;
        }
        rc.pending_stop = false;
        let before = (rc.shift.clone(), rc.manual.clone());
        let moved_from = rc.shift.as_ref().map(|s| (s.phase, s.step));
        rc.origin = UNIX_EPOCH + Duration::from_millis(rec.origin_ms);
        rc.manual = rec.manual.filter(|m| m.len() == r.split.len());
        rc.shift = rec.shift;
        if let (Some(cfg), Some(state)) = (&r.shift, rc.shift.as_mut()) {
            state.step = state.step.min(cfg.steps.len().saturating_sub(1));
            // Catch up with the schedule since the record was written.
            state.tick(cfg, SystemTime::now());
        }
        if rec.gate_since_ms != rc.gate_since_unix {
            rc.gate_since_unix = rec.gate_since_ms;
            rc.gate_since_ms = local_ms(rec.gate_since_ms);
        }
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
        }
        if let Err(e) = self.publish(&mut st) {
            tracing::warn!("cannot publish the fleet's decision: {e}");
        }
        self.persist(&st);
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
                    since_ms: rc.gate_since_unix,
                    to,
                    from,
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
                .sums(now_ms, window, rc.gate_since_ms)
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
        Some(cluster.fleet_window(route, &rc.hash, rc.gate_since_unix, to, from))
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
                    Some((_, rev)) => {
                        let peers = view.live_peers(Instant::now());
                        if !crate::cluster::fleet::differing(&r.name, &rc.hash, peers).is_empty() {
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
    /// (route, record, expected revision).
    pub(crate) fn pending_stops(&self) -> Vec<(String, RouteRecord, i64)> {
        let st = self.lock();
        st.routes
            .iter()
            .filter(|(_, rc)| rc.pending_stop)
            .map(|(name, rc)| {
                let reason = rc
                    .last_verdict
                    .as_ref()
                    .filter(|(_, v)| v.breach == Some(true))
                    .map_or(
                        "stopped while etcd was unreachable".to_string(),
                        |(_, v)| format!("gate breached: {}", v.reasons.join("; ")),
                    );
                (name.clone(), self.record_of(rc, &reason), rc.fleet_rev)
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
                    cluster
                        .view()
                        .routes
                        .insert(route.clone(), (rec.clone(), rev));
                    self.apply_record(route, rec, rev);
                }
            }
            Key::Drains => {
                if let Ok(d) = serde_json::from_slice::<Drains>(&value) {
                    cluster.view().drains = (d.clone(), rev);
                    self.apply_drains(&d);
                }
            }
            Key::Replica(_) => {}
        }
    }

    /// Write `rec` for `route` expecting revision `rev`; on success it is
    /// applied here at once (the watch brings it to the others).
    async fn write_record(
        &self,
        cluster: &Arc<Cluster>,
        route: &str,
        rec: RouteRecord,
        rev: i64,
    ) -> Result<(), FleetError> {
        let key = Key::Route(route.to_string());
        let value = serde_json::to_vec(&rec).unwrap_or_default();
        match cluster.compare_and_swap(&key, &value, rev).await {
            Ok(new_rev) => {
                cluster
                    .view()
                    .routes
                    .insert(route.to_string(), (rec.clone(), new_rev));
                self.apply_record(route, rec, new_rev);
                Ok(())
            }
            Err(WriteError::Conflict(current)) => {
                self.adopt(&key, current);
                Err(FleetError::Conflict)
            }
            Err(WriteError::Unavailable(e)) => Err(FleetError::Unavailable(e)),
        }
    }

    /// Write a stop this replica made alone; whether the fleet now has it
    /// (written, or the record already stopped).
    pub(crate) async fn write_pending(&self, route: &str, rec: RouteRecord, rev: i64) -> bool {
        let Some(cluster) = self.cluster.clone() else {
            return true;
        };
        let reason = rec.reason.clone();
        match self.write_record(&cluster, route, rec, rev).await {
            Ok(()) => {
                info!(route, %reason, "wrote this replica's stop for the whole fleet");
                true
            }
            Err(_) => !self.route_control(route).is_some_and(|rc| rc.pending_stop),
        }
    }

    /// An operator's action on a route's shift, for the whole fleet: one
    /// compare-and-swap of the route's record (409 when another replica
    /// changed it first). Without `[cluster]`, the local action.
    pub async fn fleet_shift_action(
        &self,
        route: &str,
        action: Action,
    ) -> Result<Transition, ShiftError> {
        let Some(cluster) = self.cluster.clone() else {
            return self.shift_action(route, action);
        };
        if !cluster.online() {
            if !matches!(action, Action::Pause | Action::Rollback) {
                return Err(FleetError::Unavailable("etcd is unreachable".into()).into());
            }
            // Stopping is the safe direction: do it here now, tell the
            // fleet when etcd is back.
            let t = self.shift_action(route, action)?;
            if let Some(rc) = self.lock().routes.get_mut(route) {
                rc.pending_stop = true;
            }
            cluster.publish_later(route);
            return Ok(t);
        }
        let (rec, rev, t) = {
            let st = self.lock();
            let r = st
                .config
                .routes
                .iter()
                .find(|r| r.name == route)
                .ok_or_else(|| ShiftError::UnknownRoute(route.to_string()))?;
            let cfg = r
                .shift
                .as_ref()
                .ok_or_else(|| ShiftError::NoShift(route.to_string()))?;
            let now = SystemTime::now();
            let mut rc = st
                .routes
                .get(route)
                .cloned()
                .unwrap_or_else(|| RouteControl::fresh(&st.config, r, now));
            if matches!(action, Action::Advance | Action::Resume) {
                if let Some(why) = cluster.frozen(route, &rc.hash) {
                    return Err(FleetError::Frozen(why).into());
                }
            }
            let state = rc
                .shift
                .get_or_insert_with(|| crate::shift::ShiftState::at(cfg, rc.origin, now));
            let t = state.act(cfg, action, now)?;
            if matches!(action, Action::Resume | Action::Advance) {
                rc.manual = None;
                rc.gate_from(now);
            }
            (self.record_of(&rc, &t.reason), rc.fleet_rev, t)
        };
        self.write_record(&cluster, route, rec, rev).await?;
        Ok(t)
    }

    /// An operator's split, for the whole fleet (see [`Control::set_split`]).
    pub async fn fleet_set_split(
        &self,
        route: &str,
        weights: &HashMap<String, f64>,
    ) -> Result<Vec<(String, f64)>, SplitError> {
        let Some(cluster) = self.cluster.clone() else {
            return self.set_split(route, weights);
        };
        if !cluster.online() {
            return Err(FleetError::Unavailable("etcd is unreachable".into()).into());
        }
        let (rec, rev, out) = {
            let st = self.lock();
            let (r, w) = super::routes::split_weights(&st.config, route, weights)?;
            let now = SystemTime::now();
            let mut rc = st
                .routes
                .get(route)
                .cloned()
                .unwrap_or_else(|| RouteControl::fresh(&st.config, r, now));
            rc.manual = Some(w.clone());
            if let (Some(cfg), Some(state)) = (&r.shift, rc.shift.as_mut()) {
                let _ = state.act(cfg, Action::Pause, now);
            }
            let out: Vec<(String, f64)> = r
                .split
                .iter()
                .zip(w)
                .map(|(e, w)| (st.config.pools[e.pool].name.clone(), w))
                .collect();
            (
                self.record_of(&rc, "split set by operator"),
                rc.fleet_rev,
                out,
            )
        };
        self.write_record(&cluster, route, rec, rev).await?;
        Ok(out)
    }

    /// Drain or undrain a backend for the whole fleet. Without `[cluster]`,
    /// only here.
    pub async fn fleet_drain(&self, pool: &str, addr: &str, on: bool) -> Result<(), FleetError> {
        let Some(cluster) = self.cluster.clone() else {
            self.drain_here(pool, addr, on);
            return Ok(());
        };
        if !cluster.online() {
            return Err(FleetError::Unavailable("etcd is unreachable".into()));
        }
        let (mut drains, rev) = cluster.view().drains.clone();
        let entry = Drains::entry(pool, addr);
        let changed = if on {
            drains.backends.insert(entry)
        } else {
            drains.backends.remove(&entry)
        };
        if !changed {
            self.apply_drains(&drains);
            return Ok(());
        }
        let value = serde_json::to_vec(&drains).unwrap_or_default();
        match cluster.compare_and_swap(&Key::Drains, &value, rev).await {
            Ok(new_rev) => {
                cluster.view().drains = (drains.clone(), new_rev);
                self.apply_drains(&drains);
                Ok(())
            }
            Err(WriteError::Conflict(current)) => {
                self.adopt(&Key::Drains, current);
                Err(FleetError::Conflict)
            }
            Err(WriteError::Unavailable(e)) => Err(FleetError::Unavailable(e)),
        }
    }

    /// Drain or undrain a backend of this replica only.
    fn drain_here(&self, pool: &str, addr: &str, on: bool) {
        let snap = self.snapshot();
        let backend = snap
            .pools
            .iter()
            .filter(|p| &*p.name == pool)
            .flat_map(|p| p.backends.iter())
            .find(|b| &*b.addr == addr);
        if let Some(b) = backend {
            b.state.set_draining(on);
            info!(
                pool,
                backend = addr,
                draining = on,
                "backend drain changed by operator"
            );
        }
    }
}
