//! The shift engine: moves shifts along their schedule, runs their gates,
//! applies operators' actions, and persists decisions. Called by the control
//! plane's ticker (every [`TICK`]) and by the admin API.

use super::{Control, ControlState, RouteControl};
use crate::clock::now_ms;
use crate::config::{OnBreach, ShiftConfig};
use crate::shift::gate::{self, Verdict};
use crate::shift::{persist, Action, NotApplicable, Phase, Transition};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// How often shifts are moved and gates checked: a breach is acted on
/// within one tick.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a shift action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    /// No such route.
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    /// The route has no shift.
    #[error("route {0:?} has no shift")]
    NoShift(String),
    /// The action does not apply now.
    #[error(transparent)]
    NotApplicable(#[from] NotApplicable),
    /// The fleet did not take it.
    #[error(transparent)]
    Fleet(#[from] super::fleet::FleetError),
}

fn pct(v: f64) -> String {
    format!("{v}%")
}

impl Control {
    /// Log and count a shift transition.
    pub(super) fn note_transition(
        &self,
        route: &str,
        t: &Transition,
        cfg: &ShiftConfig,
        verdict: Option<&Verdict>,
    ) {
        self.metrics
            .shift_transitions
            .with_label_values(&[route, t.to.as_str()])
            .inc();
        let share = match t.to {
            Phase::RolledBack => 0.0,
            _ => cfg.steps.get(t.step).copied().unwrap_or(0.0),
        };
        let words = match t.to {
            Phase::RolledBack => "rolled back (0 %)".to_string(),
            p => format!("{} at step {} ({share} %)", p.as_str(), t.step + 1),
        };
        self.events.push(
            if verdict.is_some() { "breach" } else { "shift" },
            format!("{route}: {words}: {}", t.reason),
        );
        match verdict {
            Some(v) => warn!(
                route,
                state = t.to.as_str(),
                step = t.step + 1,
                share = %pct(share),
                requests = v.to.requests,
                errors = v.to.errors,
                error_rate = %format!("{:.4}", v.to.error_rate()),
                p99_ms = v.to.p99.map(|d| d.as_millis() as u64),
                p99_ratio = v.p99_ratio.map(|r| format!("{r:.2}")),
                reason = %t.reason,
                "shift gate breached"
            ),
            None => info!(
                route,
                state = t.to.as_str(),
                step = t.step + 1,
                share = %pct(share),
                reason = %t.reason,
                "shift transition"
            ),
        }
    }

    /// Write the state file, if one is configured (errors are logged).
    pub(super) fn persist(&self, st: &ControlState) {
        let Some(path) = &st.state_path else {
            return;
        };
        let file = persist::StateFile {
            version: persist::VERSION,
            routes: st
                .routes
                .iter()
                .map(|(name, rc)| {
                    (
                        name.clone(),
                        persist::RouteRecord {
                            definition: rc.definition.clone(),
                            origin_ms: rc
                                .origin
                                .duration_since(UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as u64),
                            shift: rc.shift.clone(),
                            manual: rc.manual.clone(),
                        },
                    )
                })
                .collect(),
        };
        if let Err(e) = persist::save(path, &file) {
            warn!("cannot save runtime state: {e}");
        }
    }

    /// Move every shift along to `now` and check the gates of running ones.
    /// In a fleet, a route the fleet does not agree on (or without etcd)
    /// stays on its step, and the gate judges the fleet's sum as well as
    /// this replica's own figures.
    pub fn tick(&self, now: SystemTime) {
        let mut st = self.lock();
        let config = st.config.clone();
        let now_ms = now_ms();
        let mut changed = false;
        for route in &config.routes {
            let Some(cfg) = &route.shift else { continue };
            let Some(rc) = st.routes.get(&route.name) else {
                continue;
            };
            let frozen = self
                .cluster
                .as_ref()
                .and_then(|c| c.frozen(&route.name, &rc.hash, rc.fleet_rev));
            let wait = cfg
                .gate
                .as_ref()
                .and_then(|g| self.mirror_wait(&route.name, &rc.hash, g, cfg, now_ms));
            let Some(rc) = st.routes.get_mut(&route.name) else {
                continue;
            };
            let Some(state) = rc.shift.as_mut() else {
                continue;
            };
            if frozen.is_none() {
                let held = match &wait {
                    Some(reason) => {
                        let held = state.hold(cfg, now);
                        if held && rc.mirror_wait.as_deref() != Some(reason) {
                            if rc.mirror_wait.is_none() {
                                self.events
                                    .push("shift", format!("{}: {reason}", route.name));
                                info!(route = %route.name, reason = %reason, "shift waits for the mirror");
                            }
                            rc.mirror_wait = Some(reason.clone());
                        }
                        held
                    }
                    None => false,
                };
                if !held {
                    if rc.mirror_wait.take().is_some() {
                        info!(route = %route.name, "the mirror agrees: the shift may go on");
                    }
                    for t in state.tick(cfg, now) {
                        self.note_transition(&route.name, &t, cfg, None);
                        changed = true;
                    }
                }
            }
            // The gate's window starts with the shift (see `gate_start`).
            let phase = state.phase;
            let (Some(gate_cfg), Phase::Running) = (&cfg.gate, phase) else {
                continue;
            };
            let rc = &st.routes[&route.name];
            let verdict = self.judge(&st, &route.name, cfg, gate_cfg, rc, now_ms);
            let Some(rc) = st.routes.get_mut(&route.name) else {
                continue;
            };
            if verdict.breach == Some(true) {
                let rollback = gate_cfg.on_breach == OnBreach::Rollback;
                let reason = verdict.reasons.join("; ");
                if let Some(t) = rc
                    .shift
                    .as_mut()
                    .and_then(|s| s.breach(rollback, now, reason))
                {
                    self.note_transition(&route.name, &t, cfg, Some(&verdict));
                    changed = true;
                    // Rolling back is the safe direction: done here at
                    // once, and written for the whole fleet.
                    if let Some(c) = &self.cluster {
                        rc.pending_stop = true;
                        c.publish_later(&route.name);
                    }
                }
            }
            rc.last_verdict = Some((now, verdict));
        }
        if changed {
            if let Err(e) = self.publish(&mut st) {
                warn!("cannot publish the shifted split: {e}");
            }
            self.persist(&st);
        }
    }

    /// This replica's mirror comparisons of `route` over its gate's window
    /// (requests: compared, errors: different); empty without a mirror.
    pub(super) fn own_mirror_sums(
        &self,
        route: &str,
        cfg: &ShiftConfig,
        now_ms: u64,
    ) -> crate::shift::window::Sums {
        let snap = self.snapshot();
        snap.routes
            .iter()
            .find(|r| &*r.name == route)
            .and_then(|r| r.mirror.as_ref())
            .map(|m| m.state.window.sums(now_ms, gate::window_for(cfg.hold), 0))
            .unwrap_or_default()
    }

    /// Why the shift of `route` must wait for its mirror, if it must: its
    /// gate has `max_mirror_mismatch` and the mirror's comparisons over the
    /// gate's window do not pass it. In a fleet, the comparisons of every
    /// live replica with the same definition count (each mirrors its own
    /// share of the traffic), so the replicas judge the same figures.
    fn mirror_wait(
        &self,
        route: &str,
        hash: &str,
        gate_cfg: &crate::config::GateConfig,
        cfg: &ShiftConfig,
        now_ms: u64,
    ) -> Option<String> {
        gate_cfg.max_mirror_mismatch?;
        let own = self.own_mirror_sums(route, cfg, now_ms);
        let compared = match &self.cluster {
            Some(c) => c.fleet_mirror(route, hash, own),
            None => own,
        };
        let mut reason = gate::mirror_hold(gate_cfg, compared.figures())?;
        if let Some(c) = &self.cluster {
            reason.push_str(&format!(" (across the fleet, seen from {})", c.name()));
        }
        Some(reason)
    }

    /// The gate's verdict on a route: on this replica's figures alone, and
    /// in a fleet also on the fleet's sum (`min_requests` applies to the
    /// sum); either one breaching is a breach.
    fn judge(
        &self,
        st: &ControlState,
        route: &str,
        cfg: &ShiftConfig,
        gate_cfg: &crate::config::GateConfig,
        rc: &RouteControl,
        now_ms: u64,
    ) -> Verdict {
        let (to, from) = self.own_sums(st, route, cfg, rc, now_ms);
        let local = gate::evaluate(gate_cfg, to.figures(), from.figures());
        let Some(cluster) = &self.cluster else {
            return local;
        };
        let fleet = cluster.fleet_window(route, &rc.hash, rc.gate_start().0, to, from);
        let replicas = fleet.shares.len();
        let mut verdict = gate::evaluate(gate_cfg, fleet.to.figures(), fleet.from.figures());
        if local.breach == Some(true) && verdict.breach != Some(true) {
            let mut local = local;
            for r in &mut local.reasons {
                *r = format!("{r} on {} alone", cluster.name());
            }
            return local;
        }
        if replicas > 1 {
            for r in &mut verdict.reasons {
                *r = format!("{r} across {replicas} replicas");
            }
        }
        verdict
    }

    /// An operator's action on a route's shift.
    pub fn shift_action(&self, route: &str, action: Action) -> Result<Transition, ShiftError> {
        self.shift_action_with(route, action, false)
    }

    /// As [`Control::shift_action`], marked as owed to the fleet in the same
    /// step (so a record applied meanwhile cannot undo it).
    pub(super) fn shift_action_owed(
        &self,
        route: &str,
        action: Action,
    ) -> Result<Transition, ShiftError> {
        self.shift_action_with(route, action, true)
    }

    fn shift_action_with(
        &self,
        route: &str,
        action: Action,
        owed: bool,
    ) -> Result<Transition, ShiftError> {
        let mut st = self.lock();
        let config = st.config.clone();
        let (r, cfg) = shifting_route(&config, route)?;
        let now = SystemTime::now();
        let rc = st
            .routes
            .entry(route.to_string())
            .or_insert_with(|| RouteControl::fresh(&config, r, now));
        let t = act_on(rc, cfg, action, now)?;
        rc.pending_stop |= owed;
        self.note_transition(route, &t, cfg, None);
        if let Err(e) = self.publish(&mut st) {
            warn!("cannot publish the shifted split: {e}");
        }
        self.persist(&st);
        Ok(t)
    }
}

/// The route named `route` and its shift, or why an action cannot apply.
pub(super) fn shifting_route<'a>(
    config: &'a crate::config::Config,
    route: &str,
) -> Result<(&'a crate::config::RouteConfig, &'a ShiftConfig), ShiftError> {
    let r = config
        .routes
        .iter()
        .find(|r| r.name == route)
        .ok_or_else(|| ShiftError::UnknownRoute(route.to_string()))?;
    let cfg = r
        .shift
        .as_ref()
        .ok_or_else(|| ShiftError::NoShift(route.to_string()))?;
    Ok((r, cfg))
}

/// Apply an operator's `action` to the decisions `rc` at `now`.
pub(super) fn act_on(
    rc: &mut RouteControl,
    cfg: &ShiftConfig,
    action: Action,
    now: SystemTime,
) -> Result<Transition, NotApplicable> {
    let origin = rc.origin;
    let state = rc
        .shift
        .get_or_insert_with(|| crate::shift::ShiftState::at(cfg, origin, now));
    let t = state.act(cfg, action, now)?;
    if action == Action::Resume || action == Action::Advance {
        // The shift takes over again from an operator's split, and the
        // gate judges only what happens from now on.
        rc.manual = None;
        rc.gate_from(now);
    }
    Ok(t)
}
