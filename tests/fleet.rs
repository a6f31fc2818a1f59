//! A fleet of three replicas on a real etcd (loopback, free ports, a
//! temporary data dir): the gate judging the fleet's sum, one replica's own
//! breach rolling back all, operator actions applied fleet-wide with 409 on a
//! conflict, etcd killed under load, a replica restarted mid-shift, and
//! replicas that define a route differently. Times are printed for the
//! README, never asserted.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::etcd::Etcd;
use common::load::Load;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One replica's config: `cloud` is the address its cloud pool uses.
fn replica(name: &str, etcd: &Etcd, onprem: &Backend, cloud: &Backend, shift: &str) -> String {
    format!(
        "{}[cluster]\netcd = [\"{}\"]\nname = \"{name}\"\nprefix = \"/cutover/test\"\n\n\
         [pools.onprem]\nbackends = [{}]\noutlier = false\n[pools.cloud]\nbackends = [{}]\noutlier = false\n\
         [[routes]]\nname = \"www\"\nsplit = {{ onprem = 100, cloud = 0 }}\n\
         [routes.shift]\nto = \"cloud\"\n{shift}\n",
        base_config(),
        etcd.endpoint(),
        addrs(&[onprem]),
        addrs(&[cloud]),
    )
}

async fn status(p: &ProxyProc) -> Value {
    let r = get(
        &client(),
        &format!("http://{}/status", p.admin.unwrap()),
        &[],
    )
    .await
    .unwrap();
    serde_json::from_str(&r.body).unwrap()
}

/// (state, step) of the route's shift on `p`.
async fn shift(p: &ProxyProc) -> (String, u64) {
    let s = status(p).await;
    let sh = &s["routes"][0]["shift"];
    (
        sh["state"].as_str().unwrap_or_default().to_string(),
        sh["step"].as_u64().unwrap_or(0),
    )
}

async fn act(p: &ProxyProc, action: &str) -> Reply {
    let url = format!("http://{}/routes/www/shift/{action}", p.admin.unwrap());
    send(&client(), "POST", &url, &[], "").await.unwrap()
}

/// Start three replicas (names edge-a, edge-b, edge-c) and wait until each
/// sees all three.
async fn start_fleet(configs: [String; 3]) -> Vec<ProxyProc> {
    let fleet: Vec<ProxyProc> = configs.iter().map(|c| ProxyProc::start(c)).collect();
    for p in &fleet {
        let ok = eventually(Duration::from_secs(10), || async {
            let s = status(p).await;
            s["cluster"]["connected"] == true
                && s["cluster"]["replicas"].as_array().map_or(0, Vec::len) == 3
        })
        .await;
        assert!(
            ok,
            "a replica did not see the fleet: {}",
            status(p).await["cluster"]
        );
    }
    fleet
}

/// Wait (bounded) until every replica is in `state`; the time it took.
async fn all_reach(fleet: &[ProxyProc], state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    for p in fleet {
        let ok = eventually(limit, || async { shift(p).await.0 == state }).await;
        assert!(ok, "a replica did not reach {state}: {:?}", shift(p).await);
    }
    start.elapsed()
}

/// The spread between the first and the last replica logging a line with
/// `pat` (from their log timestamps).
fn log_spread(fleet: &[ProxyProc], pat: &str) -> Duration {
    let times: Vec<_> = fleet
        .iter()
        .map(|p| {
            let line = p
                .stderr
                .wait_for(Duration::from_secs(5), |l| l.contains(pat))
                .unwrap_or_else(|| panic!("no {pat:?} in the log"));
            log_time(&line).unwrap()
        })
        .collect();
    let first = times.iter().min().unwrap();
    let last = times.iter().max().unwrap();
    last.duration_since(*first).unwrap_or_default()
}

/// `n` GETs through `p`, one after another.
async fn requests(p: &ProxyProc, n: usize) {
    let cl = client();
    for _ in 0..n {
        let _ = get(&cl, &p.url("/"), &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_only_the_fleet_sees_rolls_back_every_replica() {
    let etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    cloud
        .behaviour
        .status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    // Each replica sends 36 requests, half of them (18) to the cloud pool:
    // fewer than min_requests on every replica, 54 across the fleet.
    let plan = "steps = [50, 100]\nhold = \"60s\"\n[routes.shift.gate]\nmax_error_rate = 0.2\nmin_requests = 40\n";
    let fleet = start_fleet(
        ["edge-a", "edge-b", "edge-c"].map(|n| replica(n, &etcd, &onprem, &cloud, plan)),
    )
    .await;
    join_all(fleet.iter().map(|p| requests(p, 36))).await;
    let to_all = all_reach(&fleet, "rolled_back", Duration::from_secs(10)).await;
    let spread = log_spread(&fleet, "state=\"rolled_back\"");
    eprintln!(
        "fleet breach: last request -> every replica rolled back {} ms (includes up to one 500 ms heartbeat); first -> last replica {} ms",
        to_all.as_millis(),
        spread.as_millis()
    );
    // The gate judged the sum: its reason says so, and no replica had
    // enough requests of its own.
    let breached: Vec<String> = fleet
        .iter()
        .flat_map(|p| p.stderr.all())
        .filter(|l| l.contains("shift gate breached"))
        .collect();
    assert!(!breached.is_empty(), "no replica logged the breach");
    assert!(
        breached.iter().all(|l| l.contains("across 3 replicas")),
        "{breached:?}"
    );
    for p in &fleet {
        let s = status(p).await;
        let own = s["cluster"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["self"] == true)
            .unwrap()["routes"]["www"]["gate_requests"]
            .as_u64()
            .unwrap();
        assert!(own < 40, "a replica alone had {own} requests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replicas_own_breach_rolls_back_the_fleet() {
    let etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    // edge-a's path to the cloud pool fails; the others reach it.
    let broken = Backend::spawn("cloud").await;
    broken
        .behaviour
        .status
        .store(502, std::sync::atomic::Ordering::SeqCst);
    let plan = "steps = [50, 100]\nhold = \"60s\"\n[routes.shift.gate]\nmax_error_rate = 0.2\nmin_requests = 20\n";
    let fleet = start_fleet([
        replica("edge-a", &etcd, &onprem, &broken, plan),
        replica("edge-b", &etcd, &onprem, &cloud, plan),
        replica("edge-c", &etcd, &onprem, &cloud, plan),
    ])
    .await;
    // The fleet's sum stays well within the limit: B and C answer fine.
    join_all(fleet[1..].iter().map(|p| requests(p, 300))).await;
    let seen = eventually(Duration::from_secs(5), || async {
        let s = status(&fleet[0]).await;
        s["cluster"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| {
                r["self"] == true
                    || r["routes"]["www"]["gate_requests"].as_u64().unwrap_or(0) >= 100
            })
    })
    .await;
    assert!(seen, "edge-a never saw the others' windows");
    requests(&fleet[0], 60).await;
    all_reach(&fleet, "rolled_back", Duration::from_secs(10)).await;
    let spread = log_spread(&fleet, "state=\"rolled_back\"");
    eprintln!(
        "local breach on edge-a: first -> last replica rolled back {} ms",
        spread.as_millis()
    );
    let a = fleet[0].stderr.all().join("\n");
    assert!(a.contains("on edge-a alone"), "{a}");
    let b = fleet[1]
        .stderr
        .wait_for(Duration::from_secs(1), |l| {
            l.contains("state=\"rolled_back\"")
        })
        .unwrap();
    assert!(b.contains("decided by edge-a"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_reach_every_replica_and_conflicts_get_409() {
    let etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let plan = "steps = [10, 50, 100]\nhold = \"60s\"\n";
    let fleet = start_fleet(
        ["edge-a", "edge-b", "edge-c"].map(|n| replica(n, &etcd, &onprem, &cloud, plan)),
    )
    .await;

    let sent = Instant::now();
    let r = act(&fleet[0], "pause").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut times = Vec::new();
    for p in &fleet[1..] {
        let ok = eventually(Duration::from_secs(5), || async {
            shift(p).await.0 == "paused"
        })
        .await;
        assert!(ok);
        times.push(sent.elapsed());
    }
    eprintln!(
        "pause on edge-a -> edge-b and edge-c paused: {:?} (polled)",
        times
    );

    // Advance on one replica, seen by all; then two resumes at once on two
    // replicas: exactly one wins, the other gets 409 with the current state.
    let r = act(&fleet[2], "advance").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for p in &fleet {
        let ok = eventually(Duration::from_secs(5), || async {
            shift(p).await == ("running".into(), 2)
        })
        .await;
        assert!(ok, "{:?}", shift(p).await);
    }
    let both = join_all([&fleet[0], &fleet[1]].into_iter().map(|p| act(p, "pause"))).await;
    let mut codes: Vec<u16> = both.iter().map(|r| r.status).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![200, 409],
        "{:?}",
        both.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let lost = both.iter().find(|r| r.status == 409).unwrap();
    let body: Value = serde_json::from_str(&lost.body).unwrap();
    assert_eq!(body["current"]["state"], "paused", "{}", lost.body);

    // A split by hand and a drain are fleet-wide too.
    let url = format!("http://{}/routes/www/split", fleet[1].admin.unwrap());
    let r = send(&client(), "PUT", &url, &[], r#"{"onprem":70,"cloud":30}"#)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let drain = format!(
        "http://{}/pools/cloud/backends/{}/drain",
        fleet[0].admin.unwrap(),
        cloud.addr
    );
    let r = send(&client(), "POST", &drain, &[], "").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for p in &fleet {
        let ok = eventually(Duration::from_secs(5), || async {
            let s = status(p).await;
            s["routes"][0]["manual_split"] == true
                && s["routes"][0]["split"]["cloud"]
                    .as_f64()
                    .is_some_and(|v| (v - 30.0).abs() < 1.0)
                && s["pools"][1]["backends"][0]["draining"] == true
        })
        .await;
        assert!(ok, "{}", status(p).await["routes"][0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_under_load_freezes_the_split_and_loses_nothing() {
    let mut etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let plan = "steps = [10, 30, 60, 100]\nhold = \"2s\"\n";
    let fleet = start_fleet(
        ["edge-a", "edge-b", "edge-c"].map(|n| replica(n, &etcd, &onprem, &cloud, plan)),
    )
    .await;
    let loads: Vec<Load> = fleet
        .iter()
        .map(|p| Load::start(&p.url("/"), 2, &[]))
        .collect();
    for l in &loads {
        l.wait_answered(50).await;
    }
    let before: Vec<(String, u64)> = join_all(fleet.iter().map(shift_of)).await;
    etcd.kill();
    for p in &fleet {
        let ok = eventually(Duration::from_secs(5), || async {
            status(p).await["cluster"]["connected"] == false
        })
        .await;
        assert!(ok, "a replica did not notice etcd was gone");
    }
    // Longer than a step's hold: nobody moves up without etcd.
    let frozen: Vec<(String, u64)> = join_all(fleet.iter().map(shift_of)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<(String, u64)> = join_all(fleet.iter().map(shift_of)).await;
    assert_eq!(
        frozen, after,
        "a replica advanced without etcd (before the outage: {before:?})"
    );
    for l in &loads {
        l.wait_answered(50).await;
    }
    etcd.restart();
    let back = Instant::now();
    let converged = eventually(Duration::from_secs(10), || async {
        let all: Vec<(String, u64)> = join_all(fleet.iter().map(shift_of)).await;
        let connected = join_all(fleet.iter().map(status))
            .await
            .iter()
            .all(|s| s["cluster"]["connected"] == true);
        connected && all.windows(2).all(|w| w[0] == w[1])
    })
    .await;
    assert!(
        converged,
        "{:?}",
        join_all(fleet.iter().map(shift_of)).await
    );
    eprintln!(
        "etcd back -> every replica connected and on one state: {} ms",
        back.elapsed().as_millis()
    );
    for l in loads {
        let r = l.finish().await;
        assert!(
            r.failed.is_empty(),
            "failed requests: {:?}",
            &r.failed[..r.failed.len().min(5)]
        );
        assert!(r.ok > 100);
    }
}

async fn shift_of(p: &ProxyProc) -> (String, u64) {
    shift(p).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_serves_the_fleets_step() {
    let etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let plan = "steps = [10, 50, 100]\nhold = \"60s\"\n";
    let configs = ["edge-a", "edge-b", "edge-c"].map(|n| replica(n, &etcd, &onprem, &cloud, plan));
    let mut fleet = start_fleet(configs.clone()).await;
    let r = act(&fleet[0], "advance").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut c = fleet.pop().unwrap();
    c.signal(libc::SIGKILL);
    c.wait_exit(Duration::from_secs(5));
    drop(c);
    // Alone, a fresh edge-c would start at step 1; it joins at step 2.
    let c = ProxyProc::start(&configs[2]);
    let ready = eventually(Duration::from_secs(10), || async {
        get(
            &client(),
            &format!("http://{}/readyz", c.admin.unwrap()),
            &[],
        )
        .await
        .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(ready);
    assert_eq!(shift(&c).await, ("running".to_string(), 2));
    let s = status(&c).await;
    assert_eq!(
        s["routes"][0]["split"]["cloud"].as_f64(),
        Some(50.0),
        "{}",
        s["routes"][0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_define_a_route_differently_do_not_advance() {
    let etcd = Etcd::start();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let same = "steps = [10, 50, 100]\nhold = \"60s\"\n";
    let other = "steps = [20, 100]\nhold = \"60s\"\n";
    let fleet = start_fleet([
        replica("edge-a", &etcd, &onprem, &cloud, same),
        replica("edge-b", &etcd, &onprem, &cloud, same),
        replica("edge-c", &etcd, &onprem, &cloud, other),
    ])
    .await;
    let s = status(&fleet[0]).await;
    assert_eq!(s["cluster"]["drift"][0]["route"], "www", "{}", s["cluster"]);
    assert_eq!(s["cluster"]["drift"][0]["replicas"][0], "edge-c");
    let r = act(&fleet[0], "advance").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("edge-c"), "{}", r.body);
    let metrics = fleet[0].metrics().await;
    assert!(
        metrics.contains("cutover_cluster_route_drift{route=\"www\"} 1"),
        "{metrics}"
    );
    // Once edge-c has the same definition (a reload), the fleet agrees.
    std::fs::write(
        &fleet[2].config_path,
        replica("edge-c", &etcd, &onprem, &cloud, same),
    )
    .unwrap();
    let url = format!("http://{}/reload", fleet[2].admin.unwrap());
    let r = send(&client(), "POST", &url, &[], "").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let agreed = eventually(Duration::from_secs(5), || async {
        status(&fleet[0]).await["cluster"]["drift"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    assert!(agreed);
    let r = act(&fleet[0], "advance").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for p in &fleet {
        let ok = eventually(Duration::from_secs(5), || async {
            shift(p).await == ("running".into(), 2)
        })
        .await;
        assert!(ok, "{:?}", shift(p).await);
    }
}

#[test]
fn the_fleet_demo_shows_one_breach_rolling_back_all_three() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--fleet", "--duration", "12s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("edge-a's path to the cloud pool breaks"),
        "{text}"
    );
    assert!(text.contains("rolled back all 3 replicas"), "{text}");
    for name in ["edge-a", "edge-b", "edge-c"] {
        assert!(text.contains(&format!("{name}: rolled back")), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reaches_etcd_over_tls_and_only_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::TestCa::new("etcd test CA");
    let (cert, key) = common::tls::write_pair(dir.path(), "etcd", &ca.leaf(&["127.0.0.1"]));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, common::tls::TestCa::new("another CA").pem()).unwrap();
    let etcd = Etcd::start_tls(&cert, &key, &ca.pem());
    assert!(etcd.endpoint().starts_with("https://"));
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let plan = "steps = [10, 50, 100]\nhold = \"60s\"\n";
    let with_ca = |name: &str, ca: &std::path::Path| {
        replica(name, &etcd, &onprem, &cloud, plan).replace(
            "prefix = \"/cutover/test\"\n",
            &format!("prefix = \"/cutover/test\"\nca = \"{}\"\n", ca.display()),
        )
    };
    let good = ProxyProc::start(&with_ca("edge-a", &ca_file));
    let ok = eventually(Duration::from_secs(10), || async {
        status(&good).await["cluster"]["connected"] == true
    })
    .await;
    assert!(ok, "{}", good.stderr.all().join("\n"));
    // A fleet-wide write over TLS.
    let r = act(&good, "pause").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A replica that does not trust etcd's certificate never connects, and
    // says why.
    let bad = ProxyProc::start(&with_ca("edge-b", &other_ca));
    let said = bad
        .stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("cannot reach etcd"));
    assert!(said.is_some(), "{}", bad.stderr.all().join("\n"));
    assert_eq!(status(&bad).await["cluster"]["connected"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_signs_in_to_etcd_with_its_user_and_password() {
    let etcd = Etcd::start();
    etcd.enable_auth("s3cret-etcd-password");
    let dir = tempfile::tempdir().unwrap();
    let (good, wrong) = (dir.path().join("good"), dir.path().join("wrong"));
    std::fs::write(&good, "s3cret-etcd-password\n").unwrap();
    std::fs::write(&wrong, "not-the-password").unwrap();
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let plan = "steps = [10, 50, 100]\nhold = \"60s\"\n";
    let with_password = |name: &str, file: &std::path::Path| {
        replica(name, &etcd, &onprem, &cloud, plan).replace(
            "prefix = \"/cutover/test\"\n",
            &format!(
                "prefix = \"/cutover/test\"\nuser = \"root\"\npassword_file = \"{}\"\n",
                file.display()
            ),
        )
    };
    let a = ProxyProc::start(&with_password("edge-a", &good));
    let ok = eventually(Duration::from_secs(10), || async {
        status(&a).await["cluster"]["connected"] == true
    })
    .await;
    assert!(ok, "{}", a.stderr.all().join("\n"));
    assert_eq!(act(&a, "pause").await.status, 200);
    let b = ProxyProc::start(&with_password("edge-b", &wrong));
    let said = b
        .stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("cannot reach etcd"));
    assert!(said.is_some(), "{}", b.stderr.all().join("\n"));
    // The password never shows: not in the log, not in /status.
    let everything = format!("{}{}", b.stderr.all().join("\n"), status(&b).await);
    assert!(!everything.contains("not-the-password"));
}
