//! Why a TLS connection to a backend failed, said in the log and in
//! `/status`, and the self-signed CA:TRUE certificate (`openssl req -x509`)
//! given as the pool's own `ca`, accepted as a pinned certificate.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::tls::*;
use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn pool_config(backend: SocketAddr, sni: &str, ca: &Path, extra: &str) -> String {
    format!(
        "{}[pools.cloud]\nbackends = [\"{backend}\"]\n\
         tls = {{ sni = \"{sni}\", ca = \"{}\" }}\n{extra}outlier = false\n\
         [[routes]]\nname = \"api\"\nsplit = {{ cloud = 1 }}\n",
        base_config(),
        ca.display()
    )
}

const HEALTH: &str = "health = { path = \"/healthz\", interval = \"100ms\" }\n";

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// The only backend's entry in `/status`.
async fn backend_status(proxy: &ProxyProc) -> Value {
    let url = format!("http://{}/status", proxy.admin.expect("admin listener"));
    let r = get(&client(), &url, &[]).await.unwrap();
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["pools"][0]["backends"][0].clone()
}

/// Poll the backend's `/status` entry until `ok` holds (at most 5 s).
async fn wait_status(proxy: &ProxyProc, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = backend_status(proxy).await;
        if ok(&seen) {
            return seen;
        }
        assert!(std::time::Instant::now() < deadline, "gave up on {seen}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait for `/status` to show a TLS reason for the backend; the reason.
async fn tls_reason(proxy: &ProxyProc) -> (String, String) {
    let seen = wait_status(proxy, |s| s["last_tls_error"]["reason"].is_string()).await;
    let e = &seen["last_tls_error"];
    (
        e["reason"].as_str().unwrap_or("").to_string(),
        e["via"].as_str().unwrap_or("").to_string(),
    )
}

fn log_line(proxy: &ProxyProc, words: &str) -> String {
    proxy
        .stderr
        .wait_for(Duration::from_secs(5), |l| {
            l.contains("TLS handshake with the backend failed") && l.contains(words)
        })
        .unwrap_or_else(|| panic!("no log line with {words:?}: {:#?}", proxy.stderr.all()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_signed_by_an_unknown_ca_is_a_502_that_says_unknown_issuer() {
    let trusted = TestCa::new("trusted ca");
    let other = TestCa::new("other ca");
    let (backend, hits) = spawn_tls_backend("cloud", &other, "backend.test").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &trusted.pem());
    // No health checks: only the proxied request meets the backend.
    let proxy = ProxyProc::start(&pool_config(backend, "backend.test", &ca, ""));
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let line = log_line(&proxy, "unknown issuer");
    assert!(line.contains("backend="), "{line}");
    let (reason, via) = tls_reason(&proxy).await;
    assert!(reason.starts_with("unknown issuer"), "{reason}");
    assert_eq!(via, "request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_mismatch_is_named_by_requests_and_health_checks() {
    let ca = TestCa::new("backend ca");
    let (backend, _) = spawn_tls_backend("cloud", &ca, "backend.test").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = write(dir.path(), "ca.pem", &ca.pem());
    let proxy = ProxyProc::start(&pool_config(backend, "other.test", &ca_path, HEALTH));

    // The health check says so first (the backend never turns healthy) …
    let line = log_line(&proxy, "name mismatch");
    assert!(line.contains("health check"), "{line}");
    let (reason, via) = tls_reason(&proxy).await;
    assert!(reason.starts_with("name mismatch"), "{reason}");
    assert!(
        reason.contains("backend.test"),
        "names what it is valid for: {reason}"
    );
    assert_eq!(via, "health_check");
    // The check's own verdict is recorded just after the TLS reason.
    wait_status(&proxy, |s| {
        s["last_check_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("TLS handshake failed: name mismatch"))
    })
    .await;

    // … and a request, sent anyway (nothing is healthy: fail open), too.
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    let seen = wait_status(&proxy, |s| s["last_tls_error"]["via"] == "request").await;
    let reason = seen["last_tls_error"]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("name mismatch"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_true_certificate_given_as_the_pools_ca_is_pinned() {
    // `openssl req -x509 -newkey … -nodes`: the backend's own certificate is
    // self-signed with CA:TRUE, and the same file is the pool's `ca`.
    let pair = self_signed_ca_true(&["backend.test"]);
    let (backend, hits) = spawn_tls_backend_with("cloud", &pair).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "backend.pem", &pair.cert);

    // `cutover check` warns, and still passes.
    let cfg_path = write(
        dir.path(),
        "cutover.toml",
        &pool_config(backend, "backend.test", &ca, HEALTH),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "-c", cfg_path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warning: pools.cloud.tls.ca:"))
        .unwrap_or_else(|| panic!("no warning in {stdout}"));
    assert!(warning.contains("self-signed CA:TRUE"), "{warning}");
    assert!(
        warning.contains("pinned end-entity certificate"),
        "{warning}"
    );

    // Health checks and requests both reach it; the name need not match.
    for sni in ["backend.test", "another.name"] {
        let proxy = ProxyProc::start(&pool_config(backend, sni, &ca, HEALTH));
        assert!(
            proxy
                .stderr
                .wait_for(Duration::from_secs(5), |l| l.contains("backend is healthy"))
                .is_some(),
            "{:#?}",
            proxy.stderr.all()
        );
        for _ in 0..3 {
            let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
            assert_eq!(r.status, 200, "{}: {:#?}", r.body, proxy.stderr.all());
            assert_eq!(r.header("x-backend"), Some("cloud"));
        }
        assert!(backend_status(&proxy).await["last_tls_error"].is_null());
    }
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_pool_refuses_a_different_self_signed_certificate() {
    let pinned = self_signed_ca_true(&["backend.test"]);
    let impostor = self_signed_ca_true(&["backend.test"]);
    let (backend, hits) = spawn_tls_backend_with("impostor", &impostor).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "backend.pem", &pinned.cert);
    let proxy = ProxyProc::start(&pool_config(backend, "backend.test", &ca, ""));
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (reason, _) = tls_reason(&proxy).await;
    assert!(
        reason.starts_with("CA certificate used as an end-entity certificate"),
        "{reason}"
    );
    log_line(&proxy, "CA certificate used as an end-entity certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_pool_speaks_http2_to_its_backend() {
    let pair = self_signed_ca_true(&["backend.test"]);
    let (backend, _) = spawn_tls_backend_with("cloud", &pair).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "backend.pem", &pair.cert);
    let cfg = pool_config(backend, "backend.test", &ca, "")
        .replace("\" }\noutlier", "\", http2 = true }\noutlier");
    let proxy = ProxyProc::start(&cfg);
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-backend-protocol"), Some("h2"));
}
