//! Shutdown and upgrade, with requests in flight: SIGTERM lets them finish
//! and exits early; a graceful upgrade hands the listeners over with no
//! refused or reset connection.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::load::Load;
use common::proxy::Lines;
use common::*;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_early() {
    let slow = Backend::spawn("slow").await;
    slow.behaviour
        .delay_ms
        .store(1000, std::sync::atomic::Ordering::SeqCst);
    let cfg = format!(
        "{}[pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config().replace("threads = 1", "threads = 1\ngrace = \"10s\""),
        addrs(&[&slow])
    );
    let mut proxy = ProxyProc::start(&cfg);
    let url = proxy.url("/slow");
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&client(), &url, &[]).await })
        })
        .collect();
    // All five are at the backend (which holds each for a second).
    let arrived = eventually(Duration::from_secs(5), || async {
        slow.behaviour
            .arrived
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 5
    })
    .await;
    assert!(arrived, "the slow requests never reached the backend");
    let t0 = Instant::now();
    proxy.signal(libc::SIGTERM);
    let refused = eventually(Duration::from_secs(2), || async {
        tokio::net::TcpStream::connect(proxy.addr).await.is_err()
    })
    .await;
    assert!(refused, "new connections are refused while draining");
    // The admin endpoint still answers while the requests finish: /readyz
    // says 503 draining (it used to refuse connections at once).
    let readyz = format!("http://{}/readyz", proxy.admin.unwrap());
    let reply = get(&client(), &readyz, &[])
        .await
        .expect("/readyz answers while draining");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("draining"), "{}", reply.body);
    let health = format!("http://{}/healthz", proxy.admin.unwrap());
    assert_eq!(get(&client(), &health, &[]).await.unwrap().status, 200);
    for r in requests {
        let reply = r.await.unwrap().expect("in-flight request completed");
        assert_eq!(reply.status, 200);
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = proxy.wait_exit(Duration::from_secs(15));
        (code, proxy)
    })
    .await
    .unwrap();
    let (code, proxy) = code;
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "{}", proxy.stderr.all().join("\n"));
    eprintln!("figures: 5 slow requests in flight at SIGTERM, 5 completed with 200; exited {took:?} after SIGTERM (grace 10s)");
    assert!(
        took < Duration::from_secs(10),
        "exited within the grace period: {took:?}"
    );
}

fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_upgrade_under_load_refuses_nothing() {
    let app = Backend::spawn("app").await;
    let (proxy_addr, admin_addr) = (free_port(), free_port());
    let cfg = format!(
        "[proxy]\nlisten = [\"{proxy_addr}\"]\nthreads = 1\ngrace = \"10s\"\n[admin]\nlisten = \"{admin_addr}\"\n\
         [pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        addrs(&[&app])
    );
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("upgrade.sock");
    let sock = sock.to_str().unwrap();
    let mut old = ProxyProc::start_with(&cfg, &["--upgrade-sock", sock], &[]);
    assert_eq!(old.addr, proxy_addr);
    let load = Load::start(&old.url("/"), 4, &[]);
    load.wait_answered(100).await;

    // The new process waits for the old one's sockets...
    let mut new = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "run",
            "-c",
            old.config_path.to_str().unwrap(),
            "--upgrade",
            "--upgrade-sock",
            sock,
        ])
        .env("RUST_LOG", "info,pingora=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new_log = Arc::new(Lines::default());
    {
        let (lines, stderr) = (new_log.clone(), new.stderr.take().unwrap());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                lines.push_line(l);
            }
        });
    }
    // It listens on the upgrade socket...
    let sock_path = std::path::PathBuf::from(sock);
    let waiting = eventually(Duration::from_secs(10), || async { sock_path.exists() }).await;
    assert!(waiting, "the new process never opened the upgrade socket");
    // Waiting is normal: said once, calmly (Pingora logged an ERROR every
    // second). Long enough for a retry to have happened.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines = new_log.all();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("waiting for the running cutover"))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("ERROR")), "{lines:?}");
    // ...and gets the listeners on SIGQUIT.
    old.signal(libc::SIGQUIT);
    let took_over = new_log.wait_for(Duration::from_secs(15), |l| {
        l.contains("listening") && l.contains("proxy")
    });
    assert!(
        took_over.is_some(),
        "new process did not start: {:?}",
        new_log.all()
    );
    let (code, old) =
        tokio::task::spawn_blocking(move || (old.wait_exit(Duration::from_secs(20)), old))
            .await
            .unwrap();
    assert_eq!(
        code,
        Some(0),
        "old process exit: {}",
        old.stderr.all().join("\n")
    );
    // The new process carries the load on its own.
    load.wait_answered(200).await;
    let result = load.finish().await;
    let served_after = {
        let r = get(&client(), &format!("http://{proxy_addr}/"), &[]).await;
        r.map(|r| r.status).unwrap_or(0)
    };
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        result.failed.is_empty(),
        "{} failed of {}: {:?}",
        result.failed.len(),
        result.total(),
        &result.failed[..result.failed.len().min(5)]
    );
    assert_eq!(served_after, 200, "the new process serves");
    eprintln!(
        "figures: graceful upgrade under load: {} requests, 0 refused or reset",
        result.total()
    );
}
