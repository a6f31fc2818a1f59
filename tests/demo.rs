//! `cutover demo` runs to completion on a plain checkout, without a
//! terminal, and tells its story: the mirror finds a difference and holds
//! the shift until it is fixed, the gate rolls back, the shift completes.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_runs_and_shows_the_rollback() {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--duration", "1s", "--plain"])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "mirror: the cloud answers differently: GET / body at $.currency",
        "shift waits: mirror mismatch",
        "the cloud team fixes the currency bug the mirror found",
        "the mirror's answers agree: the shift may go on",
        "shift running 10% on cloud",
        "incident: the cloud pool starts failing",
        "gate breached on cloud: error rate",
        "shift rolled back (0%)",
        "operator: POST /routes/demo/shift/resume",
        "shift complete (100%) on cloud",
        "summary:",
        // A too-short --duration is stretched rather than told out of order.
        "the demo needs at least 20s",
        // It ends with a pointer and the config it ran.
        "try it yourself: config/local.toml",
        "    [routes.shift]",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_story_is_told_in_order() {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--duration", "20s", "--plain"])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("missing {s:?} in:\n{text}"))
    };
    // The mirror phase comes first: a difference found, the shift held,
    // the fix, the answers agreeing, then the start.
    assert!(at("mirror: the cloud answers differently") < at("the cloud team fixes"));
    assert!(at("shift waits: mirror mismatch") < at("the cloud team fixes"));
    assert!(at("the cloud team fixes") < at("the mirror's answers agree"));
    assert!(at("the mirror's answers agree") < at("shift running 10% on cloud"));
    assert!(at("shift running 50% on cloud") < at("incident: the cloud pool starts failing"));
    assert!(at("incident: the cloud pool starts failing") < at("shift rolled back (0%)"));
    assert!(at("shift rolled back (0%)") < at("operator: POST /routes/demo/shift/resume"));
    assert!(at("operator: POST /routes/demo/shift/resume") < at("shift complete (100%) on cloud"));
}
