//! The demo's story: when the bug the mirror finds is fixed, when it
//! injects failures, when it recovers, when the "operator" resumes the shift — as fractions of the demo's length, so a
//! shorter `--duration` tells the same story faster.

use super::backends::Faults;
use crate::control::Control;
use crate::shift::Action;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// One scripted action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// The cloud team fixes the bug the mirror found.
    FixAnswer,
    /// The cloud pool starts failing a share of requests (per mille).
    BreakCloud(u32),
    /// The cloud pool is fixed.
    FixCloud,
    /// The operator resumes the rolled-back shift.
    Resume,
}

/// The story, as (fraction of the demo, action).
/// The shift waits for the mirror until the answers agree for a whole
/// window (one hold) after the fix, so it starts near 0.21 and reaches
/// 50 % near 0.35, before the incident.
pub(crate) const STORY: [(f64, Step); 4] = [
    (0.06, Step::FixAnswer),
    (0.42, Step::BreakCloud(500)),
    (0.54, Step::FixCloud),
    (0.60, Step::Resume),
];

/// The hold of each shift step for a demo of `total` length.
pub(crate) fn hold_for(total: Duration) -> Duration {
    Duration::from_millis(((total.as_millis() as f64) * 0.14).max(1000.0) as u64)
}

/// Carry out `step`; the event line to show.
pub(crate) fn perform(step: Step, cloud: &Faults, control: &Control) -> String {
    match step {
        Step::FixAnswer => {
            cloud.wrong_currency.store(false, Relaxed);
            "the cloud team fixes the currency bug the mirror found".to_string()
        }
        Step::BreakCloud(permille) => {
            cloud.error_permille.store(permille, Relaxed);
            format!(
                "incident: the cloud pool starts failing {}% of requests",
                permille / 10
            )
        }
        Step::FixCloud => {
            cloud.error_permille.store(0, Relaxed);
            "the cloud pool is fixed".to_string()
        }
        Step::Resume => match control.shift_action("demo", Action::Resume) {
            Ok(_) => "operator: POST /routes/demo/shift/resume (the shift starts over)".to_string(),
            Err(e) => format!("operator: resume refused: {e}"),
        },
    }
}
