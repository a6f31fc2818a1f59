//! Health checks, outlier ejection, failover and retries, with load running
//! during each fault: no request fails that a healthy backend could serve.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::load::Load;
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, SystemTime};

const INTERVAL_MS: u64 = 200;
const FALL: u64 = 2;

fn pools(onprem: &[&Backend], cloud: &[&Backend], split: &str) -> String {
    pools_with(onprem, cloud, split, "")
}

fn pools_with(onprem: &[&Backend], cloud: &[&Backend], split: &str, extra: &str) -> String {
    format!(
        "{}[pools.onprem]\nbackends = [{}]\nhealth = {{ path = \"/healthz\", interval = \"{INTERVAL_MS}ms\", timeout = \"200ms\", rise = 2, fall = {FALL} }}\n{extra}\n\
         [pools.cloud]\nbackends = [{}]\nhealth = {{ path = \"/healthz\", interval = \"{INTERVAL_MS}ms\", timeout = \"200ms\", rise = 2, fall = {FALL} }}\n{extra}\n\
         [[routes]]\nname = \"api\"\nsplit = {split}\n",
        base_config(),
        addrs(onprem),
        addrs(cloud)
    )
}

/// Wait until `n` backends have logged "backend is healthy".
fn wait_healthy(proxy: &ProxyProc, n: usize) {
    let ok = proxy.stderr.wait_until(Duration::from_secs(10), |lines| {
        lines
            .iter()
            .filter(|l| l.contains("backend is healthy"))
            .count()
            >= n
    });
    assert!(
        ok,
        "backends never healthy:\n{}",
        proxy.stderr.all().join("\n")
    );
}

/// Times of logged failed attempts on `addr`.
fn failed_attempts(proxy: &ProxyProc, addr: std::net::SocketAddr) -> Vec<SystemTime> {
    let pat = format!("backend={addr}");
    proxy
        .stderr
        .all()
        .iter()
        .filter(|l| l.contains("attempt failed") && l.contains(&pat))
        .filter_map(|l| log_time(l))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cloud_backend_fails_no_request_and_is_taken_out() {
    kill_one_cloud_backend("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_alone_take_a_killed_backend_out_within_fall_intervals() {
    kill_one_cloud_backend("outlier = false").await;
}

async fn kill_one_cloud_backend(extra: &str) {
    let o1 = Backend::spawn("o1").await;
    let c1 = Backend::spawn("c1").await;
    let c2 = Backend::spawn("c2").await;
    let proxy = ProxyProc::start(&pools_with(
        &[&o1],
        &[&c1, &c2],
        "{ onprem = 50, cloud = 50 }",
        extra,
    ));
    wait_healthy(&proxy, 3);

    let load = Load::start(&proxy.url("/"), 4, &[]);
    load.wait_answered(100).await;
    let killed_at = SystemTime::now();
    let c1_addr = c1.addr;
    c1.kill();
    // Until the dead backend is taken out (health check or ejection), then
    // a good many more requests through what is left.
    let out = format!("backend={c1_addr}");
    let taken_out = proxy.stderr.wait_for(Duration::from_secs(10), |l| {
        l.contains(&out) && (l.contains("backend is unhealthy") || l.contains("backend ejected"))
    });
    assert!(taken_out.is_some(), "{}", proxy.stderr.all().join("\n"));
    load.wait_answered(300).await;
    let result = load.finish().await;

    assert!(
        result.failed.is_empty(),
        "failed: {:?}",
        &result.failed[..result.failed.len().min(5)]
    );
    let attempts = failed_attempts(&proxy, c1.addr);
    let last = attempts.iter().max().copied().unwrap_or(killed_at);
    let out_after = last.duration_since(killed_at).unwrap_or_default();
    eprintln!(
        "figures ({}): {} requests, 0 failed, {} failed attempts on the dead backend (all retried), last one {} ms after the kill (fall x interval = {} ms)",
        if extra.is_empty() { "outlier ejection on" } else { extra },
        result.total(),
        attempts.len(),
        out_after.as_millis(),
        FALL * INTERVAL_MS
    );
    assert!(
        out_after <= Duration::from_millis(FALL * INTERVAL_MS + INTERVAL_MS),
        "dead backend still tried {out_after:?} after the kill"
    );
    assert!(result.by_backend.get("c2").copied().unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pool_fails_over_and_a_restarted_backend_comes_back() {
    let o1 = Backend::spawn("o1").await;
    let c1 = Backend::spawn("c1").await;
    let c2 = Backend::spawn("c2").await;
    let proxy = ProxyProc::start(&pools(&[&o1], &[&c1, &c2], "{ onprem = 50, cloud = 50 }"));
    wait_healthy(&proxy, 3);

    let load = Load::start(&proxy.url("/"), 4, &[]);
    load.wait_answered(100).await;
    let (c1_addr, c2_addr) = (c1.addr, c2.addr);
    c1.kill();
    c2.kill();
    drop((c1, c2));
    // Both cloud backends out, by their health checks.
    let unhealthy = proxy.stderr.wait_until(Duration::from_secs(10), |lines| {
        [c1_addr, c2_addr].iter().all(|a| {
            let pat = format!("backend={a}");
            lines
                .iter()
                .any(|l| l.contains(&pat) && l.contains("backend is unhealthy"))
        })
    });
    assert!(unhealthy, "{}", proxy.stderr.all().join("\n"));
    let before = o1.hits();
    load.wait_answered(200).await;
    let during = o1.hits() - before;
    let result = load.finish().await;
    assert!(
        result.failed.is_empty(),
        "failed: {:?}",
        &result.failed[..result.failed.len().min(5)]
    );
    assert!(
        during > 20,
        "on-prem took the traffic ({during} of 200 answers)"
    );
    eprintln!("figures: pool down: {} requests, 0 failed", result.total());

    // Bring one cloud backend back: it gets traffic after `rise` passes.
    let c1 = Backend::spawn_at("c1", c1_addr).await;
    let load = Load::start(&proxy.url("/"), 2, &[]);
    let back = eventually(Duration::from_secs(5), || async { c1.hits() > 0 }).await;
    let result = load.finish().await;
    assert!(back, "restarted backend got no traffic");
    assert!(
        result.failed.is_empty(),
        "failed: {:?}",
        &result.failed[..result.failed.len().min(5)]
    );
    assert!(proxy.stderr.count(&format!("backend={c2_addr}")) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_health_check_never_flips_a_backend() {
    let a = Backend::spawn("a").await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [{}]\nhealth = {{ path = \"/healthz\", interval = \"50ms\", rise = 2, fall = 3 }}\n\
         [[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        addrs(&[&a])
    );
    let proxy = ProxyProc::start(&cfg);
    wait_healthy(&proxy, 1);
    a.behaviour.health_flap.store(true, SeqCst);
    let probes_before = a.health_hits.load(SeqCst);
    let cl = client();
    while a.health_hits.load(SeqCst) < probes_before + 20 {
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        proxy.stderr.count("backend is unhealthy"),
        0,
        "{:?}",
        proxy.stderr.all()
    );
    assert_eq!(proxy.stderr.count("backend is healthy"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gets_504_then_is_ejected() {
    let (hang, _task) = common::backend::black_hole_server().await;
    let good = Backend::spawn("good").await;
    let cfg = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nread_timeout = \"300ms\"\n\
         [pools.app]\nbackends = [\"{hang}\", \"{}\"]\noutlier = {{ consecutive_failures = 2, ejection = \"30s\" }}\n\
         [[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        good.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        if r.status == 504 {
            assert!(r.body.starts_with("504 Gateway Timeout"), "{:?}", r.body);
        }
        statuses.push(r.status);
    }
    let timeouts = statuses.iter().filter(|s| **s == 504).count();
    assert_eq!(timeouts, 2, "two read timeouts, then ejected: {statuses:?}");
    assert!(
        statuses[statuses.len() - 6..].iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert!(proxy.stderr.count("backend ejected") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_black_hole_moves_on_after_connect_timeout() {
    // A listener whose accept queue is full drops new SYNs: connects hang.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = sock.listen(1).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(hole_addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let good = Backend::spawn("good").await;
    let cfg = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nconnect_timeout = \"300ms\"\n\
         [pools.app]\nbackends = [\"{hole_addr}\", \"{}\"]\noutlier = false\n\
         [[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        good.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    for _ in 0..4 {
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert!(
        proxy.stderr.count("kind=\"connect_timeout\"") >= 1,
        "{}",
        proxy.stderr.all().join("\n")
    );
    drop(hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_retried_after_its_body_was_sent_but_a_get_is() {
    let dying = Backend::spawn("dying").await;
    dying.behaviour.die_after_body.store(true, SeqCst);
    let good = Backend::spawn("good").await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [{}]\noutlier = false\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        addrs(&[&dying, &good])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let mut bad = 0;
    for i in 0..6 {
        let r = send(
            &cl,
            "POST",
            &proxy.url("/orders"),
            &[],
            &format!("order {i}"),
        )
        .await
        .unwrap();
        match r.status {
            200 => assert_eq!(r.header("x-backend"), Some("good")),
            502 => bad += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert!(bad >= 1, "some POSTs hit the dying backend");
    assert_eq!(
        dying.hits(),
        bad,
        "each failed POST reached the backend once"
    );
    assert_eq!(
        good.hits(),
        6 - bad,
        "failed POSTs were not retried elsewhere"
    );

    let good_before = good.hits();
    for _ in 0..6 {
        let r = get(&cl, &proxy.url("/items"), &[]).await.unwrap();
        assert_eq!(r.status, 200, "GETs are retried: {}", r.body);
    }
    assert_eq!(good.hits() - good_before, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lone_backend_is_ejected_when_its_route_can_fail_over() {
    // No health checks: only passive ejection can take the dead backend out.
    let dead = common::backend::refused_addr().await;
    let standby = Backend::spawn("standby").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [\"{dead}\"]\n[pools.standby]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100 }}\nfailover = [\"standby\"]\n",
        base_config(),
        addrs(&[&standby])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    for _ in 0..40 {
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Ejected after its 5 failures in a row (the half-a-pool rule kept a
    // lone backend in forever: one failed attempt per request, 40 here).
    let failed = proxy.stderr.count("attempt failed");
    assert!(
        failed <= 5,
        "{failed} failed attempts:\n{}",
        proxy.stderr.all().join("\n")
    );
    assert_eq!(proxy.stderr.count("backend ejected"), 1);
    // `check` says what will happen: ejection for this pool, and none for
    // a lone backend whose route has nowhere else to go.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "-c", proxy.config_path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("eject after 5 failures for 30s"), "{text}");
    let alone = cfg.replace("failover = [\"standby\"]\n", "");
    let path = proxy.dir.path().join("alone.toml");
    std::fs::write(&path, alone).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("never ejects its only backend"), "{text}");
}
