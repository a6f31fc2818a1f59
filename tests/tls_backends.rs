//! HTTPS backends (the cloud pool's usual case) through cutover's own
//! paths: HTTP/1 and HTTP/2 clients alike, pooled TLS connections reused
//! across requests (session tickets and all), the backend's certificate
//! checked, and a failed handshake a retry to the other backend.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::tls::*;
use common::*;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::Ordering::Relaxed;

fn cloud_config(backends: &str, ca: &std::path::Path) -> String {
    format!(
        "{}[pools.cloud]\nbackends = [{backends}]\ntls = {{ sni = \"backend.test\", ca = \"{}\" }}\n\
         [[routes]]\nname = \"api\"\nsplit = {{ cloud = 1 }}\n",
        base_config(),
        ca.display()
    )
}

/// `n` GETs over one HTTP/2 connection (h2c), all at once.
async fn h2_burst(proxy: &ProxyProc, n: usize) -> Vec<(u16, String, String)> {
    let send = h2c(proxy.addr).await;
    let requests = (0..n).map(|i| {
        let mut send = send.clone();
        let url = format!("http://api.test/burst/{i}");
        async move {
            let req = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let proto = resp.headers()["x-saw-forwarded-proto"]
                .to_str()
                .unwrap()
                .to_string();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, proto, String::from_utf8_lossy(&body).into_owned())
        }
    });
    join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_serve_both_client_protocols_over_reused_connections() {
    let ca = TestCa::new("test ca");
    let (backend, hits, accepted) =
        spawn_tls_backend_counting("cloud", &ca.leaf(&["backend.test"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let proxy = ProxyProc::start(&cloud_config(&format!("\"{backend}\""), &ca_path));

    // One client after another, on this run's client protocol.
    let cl = client();
    for _ in 0..40 {
        let r = get(&cl, &proxy.url("/one"), &[("host", "api.test")])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "cloud over http/1.1\n");
    }
    // Forty streams at once over HTTP/2.
    for (status, proto, body) in h2_burst(&proxy, 40).await {
        assert_eq!((status, proto.as_str()), (200, "http"));
        assert_eq!(body, "cloud over http/1.1\n");
    }
    assert_eq!(hits.load(Relaxed), 80);
    // Sequential requests share one pooled connection; the burst needs
    // at most one per stream in flight.
    let opened = accepted.load(Relaxed);
    assert!(opened <= 41, "{opened} TLS connections for 80 requests");
    assert!(opened >= 1);

    // Sequentially again: every one of them on a pooled connection.
    let before = accepted.load(Relaxed);
    for _ in 0..20 {
        let r = get(&cl, &proxy.url("/again"), &[("host", "api.test")])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(accepted.load(Relaxed), before, "no new TLS connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_with_an_untrusted_certificate_is_skipped_for_the_other() {
    let ca = TestCa::new("test ca");
    let other_ca = TestCa::new("someone else");
    let (good, good_hits, _) =
        spawn_tls_backend_counting("good", &ca.leaf(&["backend.test"])).await;
    let (bad, bad_hits, _) =
        spawn_tls_backend_counting("bad", &other_ca.leaf(&["backend.test"])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let proxy = ProxyProc::start(&cloud_config(&format!("\"{bad}\", \"{good}\""), &ca_path));
    let cl = client();
    for i in 0..10 {
        let r = get(&cl, &proxy.url(&format!("/r{i}")), &[("host", "api.test")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "retried on the good backend");
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert_eq!(bad_hits.load(Relaxed), 0);
    assert_eq!(good_hits.load(Relaxed), 10);
    let line = proxy
        .stderr
        .wait_for(std::time::Duration::from_secs(5), |l| {
            l.contains("TLS handshake with the backend failed")
        })
        .expect("the failure is logged");
    assert!(line.contains(&bad.to_string()), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_reach_an_https_mirror_pool() {
    let ca = TestCa::new("test ca");
    let (cloud, cloud_hits, accepted) =
        spawn_tls_backend_counting("cloud", &ca.leaf(&["backend.test"])).await;
    let onprem = backend::Backend::spawn("onprem").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let config = format!(
        "{}[pools.onprem]\nbackends = [\"{}\"]\n\
         [pools.cloud]\nbackends = [\"{cloud}\"]\ntls = {{ sni = \"backend.test\", ca = \"{}\" }}\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 1 }}\n\
         [routes.mirror]\nto = \"cloud\"\n",
        base_config(),
        onprem.addr,
        ca_path.display()
    );
    let proxy = ProxyProc::start(&config);
    let cl = client();
    let admin = proxy.admin.unwrap();
    let compared = |n: u64| {
        let cl = cl.clone();
        async move {
            eventually(std::time::Duration::from_secs(10), || async {
                let r = get(&cl, &format!("http://{admin}/routes/api/mirror"), &[])
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                v["figures"]["compared"] == n && v["figures"]["errors"] == 0
            })
            .await
        }
    };
    for round in 1..=2 {
        for _ in 0..10 {
            let r = get(&cl, &proxy.url("/copied"), &[("host", "api.test")])
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-backend"), Some("onprem"));
        }
        assert!(compared(10 * round).await, "copies answered over TLS");
    }
    assert_eq!(cloud_hits.load(Relaxed), 20);
    // The second round's copies ride the first round's pooled connections.
    let opened = accepted.load(Relaxed);
    assert!(opened <= 10, "{opened} TLS connections for 20 copies");
}
