//! The gradual shift end to end: observed shares per step, the gate rolling
//! back a failing pool, operator controls, state across a restart, and
//! sticky cohorts that only ever move forward.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::load::Load;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

fn shift_config(onprem: &Backend, cloud: &Backend, shift: &str, extra: &str) -> String {
    format!(
        "{}{extra}\n[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\nsticky = {{ header = \"X-User-Id\" }}\n\
         [routes.shift]\nto = \"cloud\"\n{shift}\n",
        base_config(),
        addrs(&[onprem]),
        addrs(&[cloud])
    )
}

async fn status(proxy: &ProxyProc) -> serde_json::Value {
    let r = get(
        &client(),
        &format!("http://{}/status", proxy.admin.unwrap()),
        &[],
    )
    .await
    .unwrap();
    serde_json::from_str(&r.body).unwrap()
}

async fn act(proxy: &ProxyProc, action: &str) -> Reply {
    let url = format!("http://{}/routes/api/shift/{action}", proxy.admin.unwrap());
    send(&client(), "POST", &url, &[], "").await.unwrap()
}

/// Share of cloud (percent) over `n` requests without a sticky key.
async fn cloud_share(proxy: &ProxyProc, n: usize) -> f64 {
    let cl = client();
    let mut cloud = 0;
    for _ in 0..n {
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        if r.header("x-backend") == Some("cloud") {
            cloud += 1;
        }
    }
    cloud as f64 * 100.0 / n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_gives_the_target_pool_its_share() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&shift_config(
        &onprem,
        &cloud,
        "steps = [10, 50, 100]\nhold = \"3s\"",
        "",
    ));
    let mut seen = Vec::new();
    for (step, want) in [(1, 10.0), (2, 50.0), (3, 100.0)] {
        let ok = eventually(Duration::from_secs(10), || async {
            status(&proxy).await["routes"][0]["shift"]["step"] == step
        })
        .await;
        assert!(ok, "step {step} never came");
        // Measure inside the step (retry if the step changed meanwhile).
        let mut measured = None;
        for _ in 0..3 {
            let share = cloud_share(&proxy, 500).await;
            if status(&proxy).await["routes"][0]["shift"]["step"] == step {
                measured = Some(share);
                break;
            }
        }
        let share = measured.expect("measured within the step");
        assert!(
            (share - want).abs() <= 2.0,
            "step {step}: cloud {share}% (want {want}%)"
        );
        seen.push(share);
    }
    let st = status(&proxy).await;
    assert_eq!(st["routes"][0]["shift"]["state"], "complete");
    eprintln!("figures: observed cloud share per step (500 requests each): {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pool_is_rolled_back_by_the_gate() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&shift_config(
        &onprem,
        &cloud,
        "steps = [50, 100]\nhold = \"1h\"\n[routes.shift.gate]\nmax_error_rate = 0.05\nmin_requests = 20\non_breach = \"rollback\"",
        "",
    ));
    let load = Load::start(&proxy.url("/"), 4, &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status(&proxy).await["routes"][0]["shift"]["state"],
        "running"
    );
    let t0 = Instant::now();
    cloud.behaviour.status.store(500, SeqCst);
    let rolled = eventually(Duration::from_secs(5), || async {
        status(&proxy).await["routes"][0]["shift"]["state"] == "rolled_back"
    })
    .await;
    let took = t0.elapsed();
    let result = load.finish().await;
    assert!(
        rolled,
        "never rolled back:\n{}",
        proxy.stderr.all().join("\n")
    );
    let st = status(&proxy).await;
    let shift = &st["routes"][0]["shift"];
    assert_eq!(shift["share"], 0.0);
    assert_eq!(shift["gate"]["last_verdict"]["result"], "breach");
    let reasons = shift["gate"]["last_verdict"]["reasons"][0]
        .as_str()
        .unwrap();
    assert!(reasons.starts_with("error rate"), "{reasons}");
    assert!(proxy.stderr.count("shift gate breached") == 1);
    eprintln!(
        "figures: cloud turned to 500s; rolled back {} ms later ({} requests during the test, {} 5xx passed through before the rollback)",
        took.as_millis(),
        result.total(),
        result.failed.len()
    );
    assert!(took < Duration::from_secs(2), "rollback took {took:?}");
    // Everything on on-prem now.
    let before = cloud.hits();
    assert_eq!(cloud_share(&proxy, 100).await, 0.0);
    assert_eq!(cloud.hits(), before);
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .contains("cutover_shift_transitions_total{route=\"api\",to_state=\"rolled_back\"} 1"),
        "{metrics}"
    );

    // The operator fixes the pool and resumes: the shift starts over.
    cloud.behaviour.status.store(200, SeqCst);
    assert_eq!(act(&proxy, "resume").await.status, 200);
    let share = cloud_share(&proxy, 200).await;
    assert!((share - 50.0).abs() <= 3.0, "{share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_pause_resume_advance_and_roll_back() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&shift_config(
        &onprem,
        &cloud,
        "steps = [10, 50, 100]\nhold = \"1h\"",
        "",
    ));
    let state = |v: serde_json::Value| v["state"].as_str().unwrap().to_string();
    let r = act(&proxy, "pause").await;
    assert_eq!(
        (r.status, state(serde_json::from_str(&r.body).unwrap())),
        (200, "paused".to_string())
    );
    assert_eq!(act(&proxy, "pause").await.status, 409);
    assert_eq!(act(&proxy, "advance").await.status, 200);
    let share = cloud_share(&proxy, 200).await;
    assert!((share - 50.0).abs() <= 3.0, "{share}");
    assert_eq!(act(&proxy, "rollback").await.status, 200);
    assert_eq!(cloud_share(&proxy, 100).await, 0.0);
    assert_eq!(act(&proxy, "rollback").await.status, 409);
    assert_eq!(act(&proxy, "resume").await.status, 200);
    assert_eq!(status(&proxy).await["routes"][0]["shift"]["step"], 1);
    assert_eq!(act(&proxy, "explode").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_state_file_resumes_the_same_step() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let state_dir = tempfile::tempdir().unwrap();
    let state_path = state_dir.path().join("state.json");
    let cfg = shift_config(
        &onprem,
        &cloud,
        "steps = [10, 50, 100]\nhold = \"1h\"",
        &format!("[state]\npath = \"{}\"", state_path.display()),
    );
    let proxy = ProxyProc::start(&cfg);
    assert_eq!(act(&proxy, "advance").await.status, 200);
    assert_eq!(act(&proxy, "pause").await.status, 200);
    drop(proxy);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert_eq!(saved["routes"]["api"]["shift"]["phase"], "paused");

    let proxy = ProxyProc::start(&cfg);
    let st = status(&proxy).await;
    assert_eq!(st["routes"][0]["shift"]["state"], "paused");
    assert_eq!(st["routes"][0]["shift"]["step"], 2);
    let share = cloud_share(&proxy, 200).await;
    assert!((share - 50.0).abs() <= 3.0, "{share}");
    assert!(proxy.stderr.count("restored") >= 1);
    drop(proxy);

    // A corrupt state file is reported and ignored, never fatal.
    std::fs::write(&state_path, "{ this is not json").unwrap();
    let proxy = ProxyProc::start(&cfg);
    assert_eq!(status(&proxy).await["routes"][0]["shift"]["step"], 1);
    assert!(
        proxy.stderr.count("unreadable") >= 1,
        "{:?}",
        proxy.stderr.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_sticky_users_only_move_forward() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&shift_config(
        &onprem,
        &cloud,
        "steps = [10, 30, 60, 100]\nhold = \"1h\"",
        "",
    ));
    let cl = client();
    let mut on_cloud: HashMap<u32, bool> = HashMap::new();
    let mut moved_back = 0;
    let mut shares = Vec::new();
    for (i, want) in [10.0, 30.0, 60.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            assert_eq!(act(&proxy, "advance").await.status, 200);
        }
        let mut cloud_users = 0;
        for user in 0..600u32 {
            let id = format!("user-{user}");
            // Two requests per user per step: the second must agree.
            let mut pools = Vec::new();
            for _ in 0..2 {
                let r = get(&cl, &proxy.url("/"), &[("x-user-id", &id)])
                    .await
                    .unwrap();
                pools.push(r.header("x-backend").unwrap().to_string());
            }
            assert_eq!(pools[0], pools[1], "user {user} flipped within a step");
            let now_cloud = pools[0] == "cloud";
            if on_cloud.get(&user) == Some(&true) && !now_cloud {
                moved_back += 1;
            }
            on_cloud.insert(user, now_cloud);
            cloud_users += usize::from(now_cloud);
        }
        let share = cloud_users as f64 * 100.0 / 600.0;
        assert!(
            (share - want).abs() <= 5.0,
            "step {}: {share}% of users on cloud, want {want}%",
            i + 1
        );
        shares.push(share);
    }
    assert_eq!(moved_back, 0, "users moved back from cloud to onprem");
    eprintln!("figures: 600 sticky users over 10/30/60/100: cloud share {shares:?}, 0 moved back");
}
