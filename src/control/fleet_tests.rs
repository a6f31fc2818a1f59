//! The control plane's side of a fleet without etcd or sockets: which
//! records are applied, a stop made alone kept until the fleet has it, the
//! schedule frozen without etcd, the records a replica owes the fleet.

use super::Control;
use crate::cluster::record::{Beat, RouteBeat};
use crate::config::Config;
use crate::shift::{Action, Phase};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn control(shift: &str) -> Arc<Control> {
    let text = format!(
        "[cluster]\netcd = [\"http://127.0.0.1:1\"]\nname = \"edge-a\"\n\
         [pools.onprem]\nbackends = [\"127.0.0.1:1\"]\n[pools.cloud]\nbackends = [\"127.0.0.1:2\"]\n\
         [[routes]]\nname = \"www\"\nsplit = {{ onprem = 100, cloud = 0 }}\n[routes.shift]\nto = \"cloud\"\n{shift}\n"
    );
    let config = Config::from_str_named(&text, std::path::Path::new("t.toml")).unwrap();
    Control::new(config).unwrap()
}

fn phase(c: &Control) -> (Phase, usize) {
    let s = c.route_control("www").unwrap().shift.unwrap();
    (s.phase, s.step)
}

fn online(c: &Control) {
    let cluster = c.cluster.as_ref().unwrap();
    let mut v = cluster.view();
    v.connected = true;
    v.synced = true;
}

const PLAN: &str = "steps = [10, 50, 100]\nhold = \"60s\"";

#[test]
fn a_record_is_applied_once_and_only_for_this_definition() {
    let c = control(PLAN);
    let mut rec = c.record_of(&c.route_control("www").unwrap(), "test");
    rec.shift.as_mut().unwrap().phase = Phase::Paused;
    c.apply_record("www", rec.clone(), 5);
    assert_eq!(phase(&c), (Phase::Paused, 0));
    assert_eq!(c.route_control("www").unwrap().fleet_rev, 5);
    // An older revision, or a record of another definition: left alone.
    let mut older = rec.clone();
    older.shift.as_mut().unwrap().phase = Phase::RolledBack;
    c.apply_record("www", older, 4);
    let mut foreign = rec.clone();
    foreign.hash = "another definition".into();
    foreign.identity = "another plan".into();
    foreign.shift.as_mut().unwrap().phase = Phase::RolledBack;
    c.apply_record("www", foreign, 9);
    assert_eq!(phase(&c), (Phase::Paused, 0));
    // A manual split comes with the record.
    let mut split = rec;
    split.manual = Some(vec![70.0, 30.0]);
    c.apply_record("www", split, 6);
    assert_eq!(
        c.route_control("www").unwrap().manual,
        Some(vec![70.0, 30.0])
    );
}

#[tokio::test]
async fn a_stop_made_alone_stays_until_the_fleet_has_it() {
    let c = control(PLAN);
    // etcd unreachable: rollback applies here, advance is refused.
    c.fleet_shift_action("www", Action::Rollback).await.unwrap();
    assert!(c.fleet_shift_action("www", Action::Advance).await.is_err());
    let rc = c.route_control("www").unwrap();
    assert!(rc.pending_stop);
    assert_eq!(phase(&c), (Phase::RolledBack, 0));
    // The fleet's older decision (still running) does not undo it...
    let mut running = c.record_of(&rc, "test");
    let s = running.shift.as_mut().unwrap();
    s.phase = Phase::Running;
    s.step = 1;
    c.cluster
        .as_ref()
        .unwrap()
        .view()
        .routes
        .insert("www".into(), (running.clone(), 7));
    c.apply_record("www", running, 7);
    assert_eq!(phase(&c).0, Phase::RolledBack);
    // ...and the stop is owed to the fleet on top of revision 7.
    let owed = c.pending_stops();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].2, 7);
    assert_eq!(owed[0].1.shift.as_ref().unwrap().phase, Phase::RolledBack);
    // A stop as strong from the fleet (another replica's rollback, or this
    // one's own write coming back) settles it.
    let rolled_back = owed[0].1.clone();
    c.apply_record("www", rolled_back, 8);
    assert_eq!(phase(&c).0, Phase::RolledBack);
    assert!(!c.route_control("www").unwrap().pending_stop);
}

#[test]
fn without_etcd_or_a_record_the_schedule_stays_on_its_step() {
    let c = control("steps = [10, 50, 100]\nhold = \"1s\"");
    let later = SystemTime::now() + Duration::from_secs(5);
    c.tick(later);
    assert_eq!(phase(&c), (Phase::Running, 0), "moved up without etcd");
    online(&c);
    c.tick(later);
    assert_eq!(
        phase(&c),
        (Phase::Running, 0),
        "moved up without the fleet's record"
    );
    let rec = c.record_of(&c.route_control("www").unwrap(), "test");
    let cluster = c.cluster.as_ref().unwrap();
    cluster.view().routes.insert("www".into(), (rec.clone(), 3));
    c.tick(later);
    assert_eq!(
        phase(&c),
        (Phase::Running, 0),
        "moved up before applying the record"
    );
    c.apply_record("www", rec, 3);
    c.tick(later);
    assert_eq!(phase(&c), (Phase::Complete, 2));
}

#[test]
fn a_replica_writes_the_records_the_fleet_lacks() {
    let c = control(PLAN);
    let owed = c.records_to_create();
    assert_eq!(owed.len(), 1);
    assert_eq!((owed[0].0.as_str(), owed[0].2), ("www", 0));
    let cluster = c.cluster.as_ref().unwrap();
    let hash = c.route_control("www").unwrap().hash;
    let mut foreign = owed[0].1.clone();
    foreign.hash = "old".into();
    foreign.identity = "old plan".into();
    cluster.view().routes.insert("www".into(), (foreign, 3));
    let beat = |h: &str| Beat {
        name: "edge-b".into(),
        at_ms: 0,
        config_hash: "c".into(),
        routes: [(
            "www".to_string(),
            RouteBeat {
                hash: h.into(),
                phase: Phase::Running,
                step: 1,
                share: 10.0,
                since_ms: 0,
                to: Default::default(),
                from: Default::default(),
                mirror: Default::default(),
            },
        )]
        .into(),
    };
    // A record of the old definition is replaced only once every live
    // replica has the new one.
    cluster
        .view()
        .peers
        .insert("edge-b".into(), (beat("old"), Instant::now()));
    assert!(c.records_to_create().is_empty());
    cluster
        .view()
        .peers
        .insert("edge-b".into(), (beat(&hash), Instant::now()));
    let owed = c.records_to_create();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].2, 3);
    cluster
        .view()
        .routes
        .insert("www".into(), (owed[0].1.clone(), 4));
    assert!(c.records_to_create().is_empty());
}

#[tokio::test]
async fn a_weaker_record_does_not_undo_a_rollback_owed_to_the_fleet() {
    let c = control(PLAN);
    c.fleet_shift_action("www", Action::Rollback).await.unwrap();
    let rc = c.route_control("www").unwrap();
    // The fleet paused meanwhile: a pause is weaker than the rollback.
    let mut paused = c.record_of(&rc, "test");
    paused.shift.as_mut().unwrap().phase = Phase::Paused;
    c.apply_record("www", paused, 5);
    assert_eq!(phase(&c).0, Phase::RolledBack);
    assert!(c.route_control("www").unwrap().pending_stop);
    // A record of another identity (new steps) is not followed, and no stop
    // is written over it.
    let mut other = c.record_of(&rc, "test");
    other.identity = "other".into();
    other.hash = "other".into();
    c.cluster
        .as_ref()
        .unwrap()
        .view()
        .routes
        .insert("www".into(), (other.clone(), 6));
    c.apply_record("www", other, 6);
    assert_eq!(phase(&c).0, Phase::RolledBack);
    assert!(c.pending_stops().is_empty());
}

#[test]
fn a_replica_of_a_fleet_starts_no_further_than_the_first_step() {
    // start_at an hour ago with a 1 m hold: alone it would be at the end.
    let c = control("steps = [10, 50, 100]\nhold = \"1m\"\nstart_at = \"2020-01-01T00:00:00Z\"");
    assert_eq!(phase(&c), (Phase::Running, 0));
}

#[test]
fn the_gate_window_starts_with_the_shift_or_the_last_resume() {
    let c = control(PLAN);
    let rc = c.route_control("www").unwrap();
    let origin = rc
        .origin
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(rc.gate_start().0, origin);
    let mut rec = c.record_of(&rc, "test");
    rec.gate_since_ms = origin + 5_000;
    c.apply_record("www", rec, 2);
    assert_eq!(
        c.route_control("www").unwrap().gate_start().0,
        origin + 5_000
    );
}
