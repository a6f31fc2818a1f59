//! Runtime decisions about routes: an operator's split, the shift's state,
//! and which weights the split has right now because of them.

use super::Control;
use crate::config::{Config, RouteConfig};
use crate::shift::gate::Verdict;
use crate::shift::persist;
use crate::shift::ShiftState;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::definition::route_definition;
pub(super) use super::definition::{identity, same_route};

/// Runtime decisions about one route, kept across snapshots, and across
/// reloads as long as the route's split and shift stay as they were.
#[derive(Debug, Clone)]
pub struct RouteControl {
    /// The route definition these decisions were made for.
    pub definition: String,
    /// When step 0 of its shift begins (`start_at`, or when first loaded).
    pub origin: SystemTime,
    /// An operator's split (weights per split entry), overriding the rest.
    pub manual: Option<Vec<f64>>,
    /// The shift's state, if the route has a shift.
    pub shift: Option<ShiftState>,
    /// The gate counts requests from this moment on (Unix milliseconds; 0:
    /// from the shift's start), set when a stopped shift runs again. See
    /// [`RouteControl::gate_start`].
    pub gate_since_unix: u64,
    /// The gate's last verdict and when it was made.
    pub last_verdict: Option<(SystemTime, Verdict)>,
    /// A short hash of `definition`, as the fleet compares it.
    pub hash: String,
    /// A short hash of the definition's identity (`routes::identity`): records
    /// with the same one carry progress that applies here.
    pub identity: String,
    /// The etcd revision of the fleet record these decisions follow (0:
    /// none yet).
    pub fleet_rev: i64,
    /// A stop (gate breach, or a pause or rollback while etcd was
    /// unreachable) this replica made that the fleet has not seen yet.
    pub pending_stop: bool,
    /// Why the shift waits for the mirror (`max_mirror_mismatch`), while it
    /// does.
    pub mirror_wait: Option<String>,
}

impl RouteControl {
    /// Fresh decisions for `route` at `now`. A replica of a fleet starts
    /// no further than the shift's first step until it has the fleet's
    /// record (it never moves up without etcd).
    pub fn fresh(config: &Config, route: &RouteConfig, now: SystemTime) -> RouteControl {
        let origin = route.shift.as_ref().and_then(|s| s.start_at).unwrap_or(now);
        let at = if config.cluster.is_some() {
            now.min(origin)
        } else {
            now
        };
        let definition = route_definition(config, route);
        RouteControl {
            hash: crate::config::text_hash(&definition),
            identity: crate::config::text_hash(&identity(&definition)),
            definition,
            origin,
            manual: None,
            shift: route.shift.as_ref().map(|s| {
                if s.gate
                    .as_ref()
                    .is_some_and(|g| g.max_mirror_mismatch.is_some())
                {
                    // The control plane's tick starts it once the mirror
                    // agrees.
                    ShiftState::waiting(origin)
                } else {
                    ShiftState::at(s, origin, at)
                }
            }),
            gate_since_unix: 0,
            last_verdict: None,
            fleet_rev: 0,
            pending_stop: false,
            mirror_wait: None,
        }
    }

    /// Take a new definition of the same identity (a new hold or gate).
    pub(super) fn redefine(&mut self, definition: String) {
        self.hash = crate::config::text_hash(&definition);
        self.identity = crate::config::text_hash(&identity(&definition));
        self.definition = definition;
    }

    /// Where the gate's window starts: (Unix ms, this process's clock). The
    /// later of the shift's start and the last resume or advance, both shared
    /// by the fleet, so that every replica counts the same requests.
    pub fn gate_start(&self) -> (u64, u64) {
        let origin = self
            .origin
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let unix = self.gate_since_unix.max(origin);
        (unix, local_ms(unix))
    }

    /// The gate counts from `at` on.
    pub(super) fn gate_from(&mut self, at: SystemTime) {
        self.gate_since_unix = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
    }
}

/// A Unix time in milliseconds on this process's monotonic clock
/// ([`crate::clock::now_ms`]). 0 stays 0 (unset: the gate counts its whole
/// window), and so does a moment before the clock started: everything this
/// process recorded came after it.
pub(super) fn local_ms(unix_ms: u64) -> u64 {
    if unix_ms == 0 {
        return 0;
    }
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ago = unix_now.saturating_sub(unix_ms);
    crate::clock::now_ms().saturating_sub(ago)
}

/// What is wrong with an operator's split.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// No such route.
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    /// A pool that is not in the route's split.
    #[error("pool {pool:?} is not in the split of route {route:?}")]
    UnknownPool {
        /// Route.
        route: String,
        /// Pool.
        pool: String,
    },
    /// A negative, non-finite or all-zero set of weights.
    #[error("weights must be 0 or more, and not all 0")]
    BadWeights,
    /// The fleet did not take it.
    #[error(transparent)]
    Fleet(#[from] super::fleet::FleetError),
}

/// The weights a route's split entries have now: an operator's split, else
/// the shift's share, else the configured split.
pub(super) fn route_weights(route: &RouteConfig, rc: Option<&RouteControl>) -> Vec<f64> {
    if let Some(manual) = rc.and_then(|rc| rc.manual.as_ref()) {
        return manual.clone();
    }
    if let (Some(cfg), Some(state)) = (&route.shift, rc.and_then(|rc| rc.shift.as_ref())) {
        if let Some(share) = state.share(cfg) {
            let split: Vec<(usize, f64)> = route.split.iter().map(|e| (e.pool, e.weight)).collect();
            return crate::shift::weights_for_share(&split, cfg.to, cfg.from, share);
        }
    }
    route.split.iter().map(|e| e.weight).collect()
}

/// Decisions restored from a state file record.
pub(super) fn restore(
    config: &Config,
    route: &RouteConfig,
    rec: &persist::RouteRecord,
    now: SystemTime,
) -> RouteControl {
    let mut rc = RouteControl::fresh(config, route, now);
    rc.origin = UNIX_EPOCH + Duration::from_millis(rec.origin_ms);
    rc.manual = rec.manual.clone().filter(|m| m.len() == route.split.len());
    if let (Some(cfg), Some(state)) = (&route.shift, rec.shift.clone()) {
        let mut state = state;
        state.step = state.step.min(cfg.steps.len().saturating_sub(1));
        // Catch up with the time the process was down; a replica of a fleet
        // waits for the fleet's record instead (no step up without etcd),
        // and a shift gated on the mirror for the mirror's word (its
        // comparisons start afresh: it holds, then takes one step at a
        // time).
        let mirror_gated = cfg
            .gate
            .as_ref()
            .is_some_and(|g| g.max_mirror_mismatch.is_some());
        if config.cluster.is_none() && !mirror_gated {
            state.tick(cfg, now);
        }
        rc.shift = Some(state);
    }
    rc
}

/// The route an operator's split is for, and the weights of its split
/// entries (pools left out get 0), or what is wrong with it.
pub(super) fn split_weights<'a>(
    cfg: &'a Config,
    route: &str,
    weights: &HashMap<String, f64>,
) -> Result<(&'a RouteConfig, Vec<f64>), SplitError> {
    let r = cfg
        .routes
        .iter()
        .find(|r| r.name == route)
        .ok_or_else(|| SplitError::UnknownRoute(route.to_string()))?;
    for pool in weights.keys() {
        if !r.split.iter().any(|e| &cfg.pools[e.pool].name == pool) {
            return Err(SplitError::UnknownPool {
                route: route.to_string(),
                pool: pool.clone(),
            });
        }
    }
    let w: Vec<f64> = r
        .split
        .iter()
        .map(|e| weights.get(&cfg.pools[e.pool].name).copied().unwrap_or(0.0))
        .collect();
    if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().all(|x| *x == 0.0) {
        return Err(SplitError::BadWeights);
    }
    Ok((r, w))
}

impl Control {
    /// Set an operator's split for a route: `weights` by pool name; pools of
    /// the split left out get 0.
    pub fn set_split(
        &self,
        route: &str,
        weights: &HashMap<String, f64>,
    ) -> Result<Vec<(String, f64)>, SplitError> {
        let mut st = self.lock();
        let cfg = st.config.clone();
        let (r, w) = split_weights(&cfg, route, weights)?;
        let now = SystemTime::now();
        let rc = st
            .routes
            .entry(route.to_string())
            .or_insert_with(|| RouteControl::fresh(&cfg, r, now));
        rc.manual = Some(w.clone());
        // A split set by hand pauses the shift.
        if let (Some(shift_cfg), Some(state)) = (&r.shift, rc.shift.as_mut()) {
            if let Ok(t) = state.act(shift_cfg, crate::shift::Action::Pause, now) {
                self.note_transition(route, &t, shift_cfg, None);
            }
        }
        if let Err(e) = self.publish(&mut st) {
            tracing::error!("cannot publish the new split: {e}");
        }
        self.persist(&st);
        tracing::info!(route, ?weights, "split set by operator");
        let mut set: Vec<String> = weights.iter().map(|(p, w)| format!("{p} {w}")).collect();
        set.sort();
        self.events.push(
            "operator",
            format!("{route}: split set by hand to {}", set.join(", ")),
        );
        Ok(r.split
            .iter()
            .zip(w)
            .map(|(e, w)| (cfg.pools[e.pool].name.clone(), w))
            .collect())
    }

    /// Clear an operator's split: the route goes back to its configured
    /// split, or its shift's share (a shift the split paused stays paused
    /// until resumed). Whether there was one.
    pub fn clear_split(&self, route: &str) -> Result<bool, SplitError> {
        let mut st = self.lock();
        if !st.config.routes.iter().any(|r| r.name == route) {
            return Err(SplitError::UnknownRoute(route.to_string()));
        }
        let had = st
            .routes
            .get_mut(route)
            .and_then(|rc| rc.manual.take())
            .is_some();
        if had {
            if let Err(e) = self.publish(&mut st) {
                tracing::error!("cannot publish the split: {e}");
            }
            self.persist(&st);
            tracing::info!(route, "manual split cleared by operator");
            self.events
                .push("operator", format!("{route}: manual split cleared"));
        }
        Ok(had)
    }
}
