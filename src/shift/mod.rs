//! The gradual shift of a route: a pure state machine. Time is always passed
//! in; nothing here reads a clock or does IO.
//!
//! States: `idle` (before the start), `running` (holding a step), `paused`
//! (frozen on a step), `rolled_back` (the target pool back to 0 %) and
//! `complete` (the last step reached, or held if it is below 100 %).
//!
//! Step *i* begins at `origin + i × hold`, where `origin` is `start_at`, or
//! the moment the route was first loaded. Replicas given the same `start_at`
//! therefore follow the same schedule without talking to each other. An
//! operator's pause, advance or resume re-anchors the current step at the
//! moment of the action; from then on the steps follow `hold` from there.

pub(crate) mod gate;
pub(crate) mod persist;
pub(crate) mod window;

use crate::config::ShiftConfig;
use std::time::{Duration, SystemTime};

/// Where a shift is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started yet.
    Idle,
    /// Holding a step, moving on after `hold`.
    Running,
    /// Frozen on a step.
    Paused,
    /// Stopped with the target pool at 0 %.
    RolledBack,
    /// Done.
    Complete,
}

impl Phase {
    /// The name used in `/status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::RolledBack => "rolled_back",
            Phase::Complete => "complete",
        }
    }
}

/// An operator's action on a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Freeze the current step.
    Pause,
    /// Continue a paused shift; restart a rolled-back one from the first step.
    Resume,
    /// Go to the next step now.
    Advance,
    /// Target pool back to 0 %, shift stopped.
    Rollback,
}

impl Action {
    /// Parse an admin path segment.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "advance" => Some(Action::Advance),
            "rollback" => Some(Action::Rollback),
            _ => None,
        }
    }
}

/// A change of phase or step, to log and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Phase after the change.
    pub to: Phase,
    /// Step index after the change.
    pub step: usize,
    /// Why.
    pub reason: String,
}

/// Why an action does not apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot {action} a shift that is {phase}")]
pub struct NotApplicable {
    /// The action.
    pub action: &'static str,
    /// The phase it was in.
    pub phase: &'static str,
}

/// The state of one route's shift.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShiftState {
    /// Phase.
    pub phase: Phase,
    /// Current step index.
    pub step: usize,
    /// When the current step began (for `idle`: when step 0 will begin).
    #[serde(with = "unix_ms")]
    pub step_started: SystemTime,
    /// Time already spent on the step when it was paused.
    #[serde(with = "opt_ms")]
    pub paused_elapsed: Option<Duration>,
}

mod unix_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        )
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(t: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

fn last_step_done(cfg: &ShiftConfig, step: usize, started: SystemTime, now: SystemTime) -> bool {
    step + 1 >= cfg.steps.len()
        && (cfg.steps[step] >= 100.0 || now.duration_since(started).unwrap_or_default() >= cfg.hold)
}

impl ShiftState {
    /// The state at `now` of a shift whose step 0 begins at `origin`.
    pub fn at(cfg: &ShiftConfig, origin: SystemTime, now: SystemTime) -> ShiftState {
        let mut s = ShiftState {
            phase: Phase::Idle,
            step: 0,
            step_started: origin,
            paused_elapsed: None,
        };
        s.tick(cfg, now);
        s
    }

    /// The step as operators count it: 1-based, 0 before the start.
    pub fn shown_step(&self) -> usize {
        if self.phase == Phase::Idle {
            0
        } else {
            self.step + 1
        }
    }

    /// A shift that waits for the mirror's word (`max_mirror_mismatch`)
    /// before its start: idle until the control plane lets it go, however
    /// late that is.
    pub fn waiting(origin: SystemTime) -> ShiftState {
        ShiftState {
            phase: Phase::Idle,
            step: 0,
            step_started: origin,
            paused_elapsed: None,
        }
    }

    /// Hold the shift where it is (the mirror gate does not pass): a start
    /// or a next step due at `now` waits, due again as soon as the gate
    /// passes, one step at a time (never several at once for the time
    /// spent waiting). Returns whether something due was held.
    pub fn hold(&mut self, cfg: &ShiftConfig, now: SystemTime) -> bool {
        match self.phase {
            Phase::Idle if now >= self.step_started => {
                self.step_started = now;
                true
            }
            Phase::Running
                if self.step + 1 < cfg.steps.len() && now >= self.step_started + cfg.hold =>
            {
                self.step_started = now.checked_sub(cfg.hold).unwrap_or(now);
                true
            }
            _ => false,
        }
    }

    /// The target pool's share now (percent), or `None` when the route's
    /// configured split applies (before the start).
    pub fn share(&self, cfg: &ShiftConfig) -> Option<f64> {
        match self.phase {
            Phase::Idle => None,
            Phase::RolledBack => Some(0.0),
            _ => cfg.steps.get(self.step).copied(),
        }
    }

    /// When the next step begins, if it is scheduled.
    pub fn next_step_at(&self, cfg: &ShiftConfig) -> Option<SystemTime> {
        match self.phase {
            Phase::Idle => Some(self.step_started),
            Phase::Running if self.step + 1 < cfg.steps.len() => Some(self.step_started + cfg.hold),
            _ => None,
        }
    }

    /// Move along the schedule up to `now`; the transitions made.
    pub fn tick(&mut self, cfg: &ShiftConfig, now: SystemTime) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.phase == Phase::Idle && now >= self.step_started {
            self.phase = Phase::Running;
            out.push(Transition {
                to: Phase::Running,
                step: 0,
                reason: "start time reached".into(),
            });
        }
        while self.phase == Phase::Running
            && self.step + 1 < cfg.steps.len()
            && now >= self.step_started + cfg.hold
        {
            self.step += 1;
            self.step_started += cfg.hold;
            out.push(Transition {
                to: Phase::Running,
                step: self.step,
                reason: format!(
                    "held step {} for {}",
                    self.step,
                    humantime::format_duration(cfg.hold)
                ),
            });
        }
        if self.phase == Phase::Running && last_step_done(cfg, self.step, self.step_started, now) {
            self.phase = Phase::Complete;
            out.push(Transition {
                to: Phase::Complete,
                step: self.step,
                reason: "last step reached".into(),
            });
        }
        out
    }

    /// Apply an operator's action at `now`.
    pub fn act(
        &mut self,
        cfg: &ShiftConfig,
        action: Action,
        now: SystemTime,
    ) -> Result<Transition, NotApplicable> {
        let refuse = |action: &'static str, phase: Phase| NotApplicable {
            action,
            phase: phase.as_str(),
        };
        match action {
            Action::Pause => match self.phase {
                Phase::Running | Phase::Idle => {
                    self.paused_elapsed =
                        Some(now.duration_since(self.step_started).unwrap_or_default());
                    self.phase = Phase::Paused;
                    Ok(self.transition("paused by operator"))
                }
                p => Err(refuse("pause", p)),
            },
            Action::Resume => match self.phase {
                Phase::Paused => {
                    let elapsed = self.paused_elapsed.take().unwrap_or_default();
                    self.step_started = now.checked_sub(elapsed).unwrap_or(now);
                    self.phase = Phase::Running;
                    let t = self.transition("resumed by operator");
                    self.tick(cfg, now);
                    Ok(t)
                }
                Phase::RolledBack => {
                    self.step = 0;
                    self.step_started = now;
                    self.phase = Phase::Running;
                    Ok(self.transition("restarted from the first step by operator"))
                }
                p => Err(refuse("resume", p)),
            },
            Action::Advance => match self.phase {
                Phase::Idle => {
                    self.step_started = now;
                    self.phase = Phase::Running;
                    let t = self.transition("started early by operator");
                    self.tick(cfg, now);
                    Ok(t)
                }
                Phase::Running | Phase::Paused if self.step + 1 < cfg.steps.len() => {
                    self.step += 1;
                    self.step_started = now;
                    self.paused_elapsed = None;
                    self.phase = Phase::Running;
                    let t = self.transition("advanced by operator");
                    self.tick(cfg, now);
                    Ok(t)
                }
                p => Err(refuse("advance", p)),
            },
            Action::Rollback => match self.phase {
                Phase::RolledBack => Err(refuse("roll back", Phase::RolledBack)),
                _ => {
                    self.phase = Phase::RolledBack;
                    self.paused_elapsed = None;
                    Ok(self.transition("rolled back by operator"))
                }
            },
        }
    }

    /// The gate breached: roll back or pause.
    pub fn breach(
        &mut self,
        rollback: bool,
        now: SystemTime,
        reason: String,
    ) -> Option<Transition> {
        if self.phase != Phase::Running {
            return None;
        }
        if rollback {
            self.phase = Phase::RolledBack;
            self.paused_elapsed = None;
        } else {
            self.paused_elapsed = Some(now.duration_since(self.step_started).unwrap_or_default());
            self.phase = Phase::Paused;
        }
        Some(self.transition(&reason))
    }

    fn transition(&self, reason: &str) -> Transition {
        Transition {
            to: self.phase,
            step: self.step,
            reason: reason.to_string(),
        }
    }
}

/// The weights of a route's split entries when the target pool has `share`
/// percent: the rest is divided among the other pools by their configured
/// weights (all of it to `from` if they are all zero).
pub(crate) fn weights_for_share(
    split: &[(usize, f64)],
    to: usize,
    from: usize,
    share: f64,
) -> Vec<f64> {
    let others: f64 = split.iter().filter(|(p, _)| *p != to).map(|(_, w)| w).sum();
    split
        .iter()
        .map(|(p, w)| {
            if *p == to {
                share
            } else if others > 0.0 {
                (100.0 - share) * w / others
            } else if *p == from {
                100.0 - share
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
