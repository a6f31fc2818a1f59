//! Operators' actions for the whole fleet: a shift action, a manual split
//! or a drain becomes one compare-and-swap write in etcd (409 when another
//! replica changed it first). Without `[cluster]` they are the local actions
//! of `shift.rs` and `routes.rs`; without etcd only the stopping ones apply,
//! here, and reach the fleet when it is back.

use super::fleet::FleetError;
use super::{Control, ShiftError, SplitError};
use crate::cluster::record::{Drains, Key, RouteRecord};
use crate::cluster::{Cluster, WriteError};
use crate::shift::{Action, Phase, Transition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::info;

/// What operators decided about a route: the shift's phase and step, and a
/// manual split.
type Decided = (Option<(Phase, usize)>, Option<Vec<f64>>);

impl Control {
    /// Write `rec` for `route` expecting revision `rev`; on success it is
    /// applied here at once (the watch brings it to the others).
    pub(super) async fn write_record(
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
                cluster.view().put_route(route, rec.clone(), new_rev);
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
        let stopping = matches!(action, Action::Pause | Action::Rollback);
        if !cluster.online() {
            if !stopping {
                return Err(FleetError::Unavailable("etcd is unreachable".into()).into());
            }
            return self.stop_here(&cluster, route, action);
        }
        let written = self
            .write_proposal(&cluster, route, || {
                let st = self.lock();
                let (r, cfg) = super::shift::shifting_route(&st.config, route)?;
                let now = SystemTime::now();
                let mut rc = st.route_or_fresh(r, now);
                if matches!(action, Action::Advance | Action::Resume) {
                    if let Some(why) = cluster.frozen(route, &rc.hash, rc.fleet_rev) {
                        return Err(FleetError::Frozen(why).into());
                    }
                }
                let t = super::shift::act_on(&mut rc, cfg, action, now)?;
                Ok((self.record_of(&rc, &t.reason), rc.fleet_rev, t))
            })
            .await;
        match written {
            // etcd went away under the write: stopping still works here.
            Err(ShiftError::Fleet(FleetError::Unavailable(_))) if stopping => {
                self.stop_here(&cluster, route, action)
            }
            other => other,
        }
    }

    /// What operators decided about `route` (the shift's phase and step, a
    /// manual split): a write that lost to a record which changed none of
    /// this (the record created meanwhile, say) is tried once more.
    fn decided(&self, route: &str) -> Option<Decided> {
        let rc = self.route_control(route)?;
        Some((rc.shift.map(|s| (s.phase, s.step)), rc.manual))
    }

    /// Propose a record and write it by compare-and-swap; on a conflict with
    /// a record that decided nothing new, propose again once.
    async fn write_proposal<T, E: From<FleetError>>(
        &self,
        cluster: &Arc<Cluster>,
        route: &str,
        propose: impl Fn() -> Result<(RouteRecord, i64, T), E>,
    ) -> Result<T, E> {
        for attempt in 0..2 {
            let before = self.decided(route);
            let (rec, rev, out) = propose()?;
            match self.write_record(cluster, route, rec, rev).await {
                Ok(()) => return Ok(out),
                Err(FleetError::Conflict) if attempt == 0 && self.decided(route) == before => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(FleetError::Conflict.into())
    }

    /// Pause or roll back here, now, and owe it to the fleet (written as
    /// soon as etcd answers): stopping is the safe direction.
    fn stop_here(
        &self,
        cluster: &Arc<Cluster>,
        route: &str,
        action: Action,
    ) -> Result<Transition, ShiftError> {
        let t = self.shift_action_owed(route, action)?;
        cluster.publish_later(route);
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
        self.write_proposal(&cluster, route, || {
            let st = self.lock();
            let (r, w) = super::routes::split_weights(&st.config, route, weights)?;
            let now = SystemTime::now();
            let mut rc = st.route_or_fresh(r, now);
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
            Ok((
                self.record_of(&rc, "split set by operator"),
                rc.fleet_rev,
                out,
            ))
        })
        .await
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
                if cluster.view().put_drains(drains.clone(), new_rev) {
                    self.apply_drains(&drains);
                }
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

    /// Clear an operator's split for the whole fleet (see
    /// [`Control::clear_split`]).
    pub async fn fleet_clear_split(&self, route: &str) -> Result<bool, SplitError> {
        let Some(cluster) = self.cluster.clone() else {
            return self.clear_split(route);
        };
        if !cluster.online() {
            return Err(FleetError::Unavailable("etcd is unreachable".into()).into());
        }
        if self
            .route_control(route)
            .is_none_or(|rc| rc.manual.is_none())
        {
            return if self.config().routes.iter().any(|r| r.name == route) {
                Ok(false)
            } else {
                Err(SplitError::UnknownRoute(route.to_string()))
            };
        }
        self.write_proposal(&cluster, route, || {
            let st = self.lock();
            let mut rc = st
                .routes
                .get(route)
                .cloned()
                .ok_or_else(|| SplitError::UnknownRoute(route.to_string()))?;
            // Cleared by another replica meanwhile: a conflict.
            if rc.manual.take().is_none() {
                return Err(FleetError::Conflict.into());
            }
            Ok((
                self.record_of(&rc, "manual split cleared by operator"),
                rc.fleet_rev,
                true,
            ))
        })
        .await
    }
}
