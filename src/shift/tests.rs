//! Schedule arithmetic and operator actions, with time passed in.

use super::*;
use crate::config::ShiftConfig;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn cfg(steps: &[f64]) -> ShiftConfig {
    ShiftConfig {
        to: 1,
        from: 0,
        steps: steps.to_vec(),
        hold: Duration::from_secs(600),
        start_at: None,
        gate: None,
    }
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

#[test]
fn a_start_in_the_future_is_idle_until_then() {
    let c = cfg(&[1.0, 5.0, 25.0, 50.0, 100.0]);
    let mut s = ShiftState::at(&c, t(1000), t(0));
    assert_eq!((s.phase, s.share(&c)), (Phase::Idle, None));
    assert_eq!(s.next_step_at(&c), Some(t(1000)));
    assert!(s.tick(&c, t(999)).is_empty());
    let tr = s.tick(&c, t(1000));
    assert_eq!(tr.len(), 1);
    assert_eq!(
        (s.phase, s.step, s.share(&c)),
        (Phase::Running, 0, Some(1.0))
    );
    assert_eq!(s.next_step_at(&c), Some(t(1600)));
}

#[test]
fn a_start_in_the_past_lands_on_the_right_step() {
    let c = cfg(&[1.0, 5.0, 25.0, 50.0, 100.0]);
    // 25 minutes in: step 2 (25 %) began at +20 min.
    let s = ShiftState::at(&c, t(0), t(1500));
    assert_eq!(
        (s.phase, s.step, s.share(&c)),
        (Phase::Running, 2, Some(25.0))
    );
    assert_eq!(s.step_started, t(1200));
    assert_eq!(s.next_step_at(&c), Some(t(1800)));
    // Two replicas with the same start agree.
    assert_eq!(ShiftState::at(&c, t(0), t(1500)), s);
    // Long past the end: complete at 100 %.
    let s = ShiftState::at(&c, t(0), t(100_000));
    assert_eq!(
        (s.phase, s.step, s.share(&c)),
        (Phase::Complete, 4, Some(100.0))
    );
}

#[test]
fn reaching_100_completes_at_once_and_a_lower_last_step_after_its_hold() {
    let c = cfg(&[10.0, 100.0]);
    let mut s = ShiftState::at(&c, t(0), t(0));
    let tr = s.tick(&c, t(600));
    assert_eq!(
        tr.iter().map(|t| t.to).collect::<Vec<_>>(),
        vec![Phase::Running, Phase::Complete]
    );
    let c = cfg(&[10.0, 50.0]);
    let mut s = ShiftState::at(&c, t(0), t(600));
    assert_eq!((s.phase, s.step), (Phase::Running, 1));
    s.tick(&c, t(1199));
    assert_eq!(s.phase, Phase::Running);
    s.tick(&c, t(1200));
    assert_eq!((s.phase, s.share(&c)), (Phase::Complete, Some(50.0)));
}

#[test]
fn pause_and_resume_keep_the_time_left_on_the_step() {
    let c = cfg(&[10.0, 50.0, 100.0]);
    let mut s = ShiftState::at(&c, t(0), t(100));
    s.act(&c, Action::Pause, t(100)).unwrap();
    assert_eq!(s.phase, Phase::Paused);
    assert!(
        s.tick(&c, t(5000)).is_empty(),
        "a paused shift does not move"
    );
    assert_eq!(s.next_step_at(&c), None);
    s.act(&c, Action::Resume, t(5000)).unwrap();
    assert_eq!((s.phase, s.step), (Phase::Running, 0));
    assert_eq!(
        s.next_step_at(&c),
        Some(t(5500)),
        "500 s were left on the step"
    );
    assert!(
        s.act(&c, Action::Resume, t(5001)).is_err(),
        "resume needs a paused shift"
    );
}

#[test]
fn advance_and_rollback() {
    let c = cfg(&[10.0, 50.0, 100.0]);
    let mut s = ShiftState::at(&c, t(1000), t(0));
    s.act(&c, Action::Advance, t(10)).unwrap();
    assert_eq!(
        (s.phase, s.step),
        (Phase::Running, 0),
        "advance starts an idle shift"
    );
    s.act(&c, Action::Advance, t(20)).unwrap();
    assert_eq!((s.step, s.share(&c)), (1, Some(50.0)));
    assert_eq!(s.next_step_at(&c), Some(t(620)));
    s.act(&c, Action::Rollback, t(30)).unwrap();
    assert_eq!((s.phase, s.share(&c)), (Phase::RolledBack, Some(0.0)));
    assert!(s.act(&c, Action::Rollback, t(31)).is_err());
    assert!(s.act(&c, Action::Advance, t(31)).is_err());
    assert!(
        s.tick(&c, t(99_999)).is_empty(),
        "a rolled-back shift stays put"
    );
    s.act(&c, Action::Resume, t(40)).unwrap();
    assert_eq!(
        (s.phase, s.step, s.share(&c)),
        (Phase::Running, 0, Some(10.0))
    );
    s.act(&c, Action::Advance, t(41)).unwrap();
    s.act(&c, Action::Advance, t(42)).unwrap();
    assert_eq!(s.phase, Phase::Complete);
    assert!(s.act(&c, Action::Advance, t(43)).is_err());
    assert!(
        s.act(&c, Action::Rollback, t(44)).is_ok(),
        "even a complete shift can be rolled back"
    );
}

#[test]
fn a_breach_rolls_back_or_pauses_a_running_shift_only() {
    let c = cfg(&[10.0, 50.0]);
    let mut s = ShiftState::at(&c, t(0), t(0));
    let tr = s.breach(true, t(5), "error rate".into()).unwrap();
    assert_eq!((tr.to, s.share(&c)), (Phase::RolledBack, Some(0.0)));
    assert!(s.breach(true, t(6), "again".into()).is_none());
    let mut s = ShiftState::at(&c, t(0), t(0));
    s.breach(false, t(5), "p99".into()).unwrap();
    assert_eq!((s.phase, s.share(&c)), (Phase::Paused, Some(10.0)));
}

#[test]
fn shares_split_the_rest_by_configured_weights() {
    assert_eq!(
        weights_for_share(&[(0, 100.0), (1, 0.0)], 1, 0, 25.0),
        vec![75.0, 25.0]
    );
    assert_eq!(
        weights_for_share(&[(0, 60.0), (1, 0.0), (2, 20.0)], 1, 0, 20.0),
        vec![60.0, 20.0, 20.0]
    );
    assert_eq!(
        weights_for_share(&[(0, 0.0), (1, 100.0)], 1, 0, 30.0),
        vec![70.0, 30.0]
    );
}

#[test]
fn state_round_trips_through_json() {
    let c = cfg(&[10.0, 50.0]);
    let mut s = ShiftState::at(&c, t(0), t(100));
    s.act(&c, Action::Pause, t(130)).unwrap();
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ShiftState>(&text).unwrap(), s);
}

#[test]
fn a_held_shift_waits_then_takes_one_step_at_a_time() {
    let c = cfg(&[10.0, 50.0, 100.0]);
    let mut s = ShiftState::waiting(t(0));
    // Due at once, held for an hour: still idle, due again at each tick.
    assert!(s.hold(&c, t(0)));
    assert!(s.hold(&c, t(3600)));
    assert_eq!(s.phase, Phase::Idle);
    // The mirror agrees: it starts, at the first step only.
    assert_eq!(s.tick(&c, t(3600)).len(), 1);
    assert_eq!((s.phase, s.step), (Phase::Running, 0));
    // Not due yet: nothing to hold.
    assert!(!s.hold(&c, t(3600 + 599)));
    // Due, and held for long past several holds: one step when let go.
    assert!(s.hold(&c, t(3600 + 600)));
    assert!(s.hold(&c, t(8000)));
    assert_eq!(s.step, 0);
    let tr = s.tick(&c, t(8000));
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!((s.step, s.share(&c)), (1, Some(50.0)));
    // The move to the last step waits too; reaching it (100 %) completes
    // the shift, which has nothing left to hold.
    assert!(!s.hold(&c, t(8599)));
    assert!(s.hold(&c, t(9000)));
    s.tick(&c, t(9000));
    assert_eq!((s.phase, s.step), (Phase::Complete, 2));
    assert!(!s.hold(&c, t(100_000)));
}
