//! Health state transitions with time passed in.
use super::*;

fn outlier() -> Outlier {
    Outlier {
        consecutive_failures: 3,
        ejection: Duration::from_secs(10),
    }
}

#[test]
fn checked_backend_starts_down_and_first_pass_brings_it_up() {
    let b = BackendState::new("p", "a:1", true);
    assert!(!b.available(1));
    assert_eq!(b.record_check(false, Some("refused".into()), 2, 3, 1), None);
    assert!(!b.available(2));
    assert_eq!(b.record_check(true, None, 2, 3, 3), Some(Transition::Up));
    assert!(b.available(4));
}

#[test]
fn unchecked_backend_is_assumed_healthy() {
    assert!(BackendState::new("p", "a:1", false).available(1));
}

#[test]
fn alternating_probes_never_flip_with_rise_2_fall_3() {
    let b = BackendState::new("p", "a:1", true);
    b.record_check(true, None, 2, 3, 1);
    for i in 0..50 {
        let t = b.record_check(i % 2 == 0, None, 2, 3, 2 + i);
        assert_eq!(t, None, "flipped at probe {i}");
        assert!(b.is_healthy());
    }
    b.record_check(true, None, 2, 3, 99);
    // Down after 3 failures, up again only after 2 passes.
    for _ in 0..2 {
        assert_eq!(b.record_check(false, None, 2, 3, 100), None);
    }
    assert_eq!(
        b.record_check(false, None, 2, 3, 101),
        Some(Transition::Down)
    );
    assert_eq!(b.record_check(true, None, 2, 3, 102), None);
    assert_eq!(b.record_check(false, None, 2, 3, 103), None);
    assert_eq!(b.record_check(true, None, 2, 3, 104), None);
    assert_eq!(b.record_check(true, None, 2, 3, 105), Some(Transition::Up));
}

#[test]
fn ejection_after_consecutive_failures_doubles_and_caps() {
    let b = BackendState::new("p", "a:1", false);
    let o = outlier();
    let k = FailureKind::ConnectRefused;
    assert_eq!(b.record_failure(k, Some(&o), 0, 2, 1), None);
    assert_eq!(b.record_failure(k, Some(&o), 0, 2, 2), None);
    assert_eq!(
        b.record_failure(k, Some(&o), 0, 2, 3),
        Some(Duration::from_secs(10))
    );
    assert!(!b.available(4));
    assert_eq!(b.status(4), Status::Ejected);
    assert!(b.available(10_004));
    for _ in 0..2 {
        b.record_failure(k, Some(&o), 0, 2, 20_000);
    }
    assert_eq!(
        b.record_failure(k, Some(&o), 0, 2, 20_000),
        Some(Duration::from_secs(20))
    );
    let mut now = 100_000;
    let mut last = Duration::ZERO;
    for _ in 0..10 {
        for _ in 0..3 {
            if let Some(d) = b.record_failure(k, Some(&o), 0, 2, now) {
                last = d;
            }
        }
        now += 400_000;
    }
    assert_eq!(last, MAX_EJECTION);
    assert_eq!(b.failures(k), 36);
}

#[test]
fn success_resets_the_streak() {
    let b = BackendState::new("p", "a:1", false);
    let o = outlier();
    b.record_failure(FailureKind::Reset, Some(&o), 0, 2, 1);
    b.record_failure(FailureKind::Reset, Some(&o), 0, 2, 1);
    b.record_success(2);
    assert_eq!(
        b.record_failure(FailureKind::Reset, Some(&o), 0, 2, 3),
        None
    );
}

#[test]
fn never_more_than_the_allowed_number_is_ejected() {
    // (ejected now, most that may be): half a pool, or all of a pool
    // whose routes can fail over elsewhere.
    let o = outlier();
    let b = BackendState::new("p", "a:1", false);
    for _ in 0..10 {
        assert_eq!(
            b.record_failure(FailureKind::Reset, Some(&o), 1, 1, 1),
            None
        );
    }
    assert_eq!(
        b.record_failure(FailureKind::Reset, Some(&o), 0, 0, 1),
        None
    );
    assert!(b.available(2));
    assert!(b
        .record_failure(FailureKind::Reset, Some(&o), 0, 1, 1)
        .is_some());
}

#[test]
fn passes_lift_an_ejection_after_rise() {
    let b = BackendState::new("p", "a:1", true);
    b.record_check(true, None, 2, 3, 1);
    let o = outlier();
    for _ in 0..3 {
        b.record_failure(FailureKind::Status5xx, Some(&o), 0, 2, 10);
    }
    assert!(b.is_ejected(11));
    assert_eq!(b.record_check(true, None, 2, 3, 12), None);
    assert_eq!(
        b.record_check(true, None, 2, 3, 13),
        Some(Transition::EjectionLifted)
    );
    assert!(b.available(14));
}

#[test]
fn drained_backend_takes_no_traffic() {
    let b = BackendState::new("p", "a:1", false);
    b.set_draining(true);
    assert!(!b.available(1));
    assert_eq!(b.status(1), Status::Draining);
    b.set_draining(false);
    assert!(b.available(1));
}
