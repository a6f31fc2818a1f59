//! Shadow traffic end to end: an on-prem pool and a cloud pool of real
//! HTTP servers, cutover copying a route's requests to the cloud and
//! comparing the answers. The cloud differs on one JSON field and on one
//! path's status; both pools stamp each answer (a counter in the JSON, a
//! request id header), which must be learned as noise. A dead or hanging
//! mirror must not touch the client's answers; a shift gated on the
//! mirror waits while the answers differ and starts once they agree.
//! Run on each request path and with HTTP/2 clients by scripts/test.sh.

mod common;

use bytes::Bytes;
use common::backend::{black_hole_server, refused_addr};
use common::client::{client, get, send};
use common::proxy::ProxyProc;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What an API server saw and how it answers.
#[derive(Default)]
struct Api {
    /// Answers so far (the noise in each answer).
    served: AtomicU64,
    /// Requests that carried `X-Cutover-Mirror: 1`.
    marked: AtomicU64,
    /// Answer like the cloud before its fix: another `name`, and 404 on
    /// `/v2/…`.
    differs: AtomicBool,
}

/// A JSON API server on a fresh port.
async fn api_server(api: Arc<Api>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = api.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let api = api.clone();
                    async move {
                        if req
                            .headers()
                            .get("x-cutover-mirror")
                            .is_some_and(|v| v == "1")
                        {
                            api.marked.fetch_add(1, Relaxed);
                        }
                        let path = req.uri().path().to_string();
                        let _ = req.into_body().collect().await;
                        let n = api.served.fetch_add(1, Relaxed);
                        let differs = api.differs.load(Relaxed);
                        let status = if differs && path.starts_with("/v2/") {
                            404
                        } else {
                            200
                        };
                        let name = if differs { "Ada L." } else { "Ada" };
                        let body = format!(
                            r#"{{"id":7,"name":"{name}","path":"{path}","timestamp":{n}}}"#
                        );
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .header("x-request-id", format!("req-{n}"))
                                .body(Full::new(Bytes::from(body)))
                                .expect("response"),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn mirror_json(proxy: &ProxyProc, route: &str) -> Value {
    let admin = proxy.admin.expect("admin address");
    let r = get(
        &client(),
        &format!("http://{admin}/routes/{route}/mirror"),
        &[],
    )
    .await
    .expect("GET /routes/{route}/mirror");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).expect("JSON")
}

async fn status_json(proxy: &ProxyProc) -> Value {
    let admin = proxy.admin.expect("admin address");
    let r = get(&client(), &format!("http://{admin}/status"), &[])
        .await
        .expect("GET /status");
    serde_json::from_str(&r.body).expect("JSON")
}

/// Poll `fetch` until `ok` holds of its answer (or `timeout`); the last
/// answer and whether it held.
async fn until<F, Fut>(timeout: Duration, fetch: F, ok: impl Fn(&Value) -> bool) -> (Value, bool)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let v = fetch().await;
        if ok(&v) {
            return (v, true);
        }
        if Instant::now() >= deadline {
            return (v, false);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn n(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// An on-prem and a cloud API server; the cloud answers differently.
async fn two_apis() -> (Arc<Api>, Arc<Api>, SocketAddr, SocketAddr) {
    let (onprem, cloud) = (Arc::new(Api::default()), Arc::new(Api::default()));
    cloud.differs.store(true, Relaxed);
    let a = api_server(onprem.clone()).await;
    let b = api_server(cloud.clone()).await;
    (onprem, cloud, a, b)
}

/// `cutover ARGS --admin URL` against `proxy`: its output.
fn cli(proxy: &ProxyProc, args: &[&str]) -> String {
    let admin = proxy.admin.expect("admin address");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .output()
        .expect("run cutover");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

fn config(onprem: SocketAddr, cloud: SocketAddr, mirror: &str, extra: &str) -> String {
    format!(
        "{}[pools.onprem]\nbackends = [\"{onprem}\"]\n[pools.cloud]\nbackends = [\"{cloud}\"]\n\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n{extra}\
         [routes.mirror]\nto = \"cloud\"\n{mirror}",
        common::base_config()
    )
}

#[tokio::test]
async fn differences_are_found_by_kind_and_path_and_noise_is_learned() {
    let (onprem, cloud, a, b) = two_apis().await;
    let mirror = "percent = 100\ncompare = { ignore_headers = [\"date\"] }\n";
    let proxy = ProxyProc::start(&config(a, b, mirror, ""));
    let c = client();
    for i in 0..60 {
        let path = if i % 3 == 0 { "/v2/orders" } else { "/users/7" };
        let r = get(&c, &proxy.url(path), &[]).await.expect("request");
        // The client gets the primary's answer, untouched.
        assert_eq!(r.status, 200);
        assert!(r.body.contains(r#""name":"Ada""#), "{}", r.body);
    }
    let (m, done) = until(
        Duration::from_secs(20),
        || mirror_json(&proxy, "api"),
        |m| n(m, &["figures", "compared"]) >= 60,
    )
    .await;
    assert!(done, "60 copies compared: {m:#}");
    let f = &m["figures"];
    assert_eq!(n(f, &["mirrored"]), 60, "{m:#}");
    assert_eq!(n(f, &["mismatched_by_kind", "status"]), 20, "{m:#}");
    assert_eq!(n(f, &["mismatched_by_kind", "body"]), 40, "{m:#}");
    assert_eq!(n(f, &["mismatched_by_kind", "header"]), 0, "{m:#}");
    assert_eq!(n(f, &["errors"]) + n(f, &["dropped"]), 0, "{m:#}");
    // What differs between two on-prem answers to one request is noise.
    let noise = &f["learned_noise"];
    assert!(
        noise["json"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("$.timestamp"))),
        "{m:#}"
    );
    assert!(
        noise["headers"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("x-request-id"))),
        "{m:#}"
    );
    assert!(n(f, &["noise_samples"]) >= 1, "{m:#}");
    let diffs = m["mismatches"].as_array().expect("mismatches");
    assert!(!diffs.is_empty() && diffs.len() <= 50, "{m:#}");
    for d in diffs {
        match d["kind"].as_str() {
            Some("status") => {
                assert_eq!(d["target"], "/v2/orders", "{d}");
                assert_eq!(
                    (n(d, &["primary_status"]), n(d, &["mirror_status"])),
                    (200, 404)
                );
            }
            Some("body") => {
                assert_eq!(d["target"], "/users/7", "{d}");
                assert_eq!(d["path"], "$.name", "{d}");
                assert!(n(d, &["mirror_bytes"]) > n(d, &["primary_bytes"]), "{d}");
            }
            other => panic!("unexpected kind {other:?}: {d}"),
        }
    }
    // Every copy is marked; the real requests are not (the noise samples,
    // copies too, are).
    assert_eq!(cloud.marked.load(Relaxed), 60);
    assert_eq!(
        onprem.served.load(Relaxed) - onprem.marked.load(Relaxed),
        60,
        "on-prem got each real request once"
    );
    // /status and /metrics carry the figures.
    let st = status_json(&proxy).await;
    let route = &st["routes"][0];
    assert_eq!(
        n(&route["mirror"], &["figures", "mismatched"]),
        60,
        "{route:#}"
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("cutover_mirror_mismatches_total{route=\"api\",kind=\"body\"} 40"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cutover_mirror_requests_total{route=\"api\",result=\"compared\"} 60"),
        "{metrics}"
    );
    // The mirror pool's answers are not the real traffic's.
    assert!(
        !metrics.contains("pool=\"cloud\",code="),
        "no real requests counted on cloud: {metrics}"
    );
    common::promtool_check(&metrics);
    // `cutover mirror diffs`, and a column in `cutover status`.
    let text = cli(&proxy, &["mirror", "diffs", "api"]);
    eprintln!("cutover mirror diffs api:\n{text}");
    assert!(text.contains("body at $.name"), "{text}");
    assert!(
        text.contains("GET /v2/orders  status  status 200 vs 404"),
        "{text}"
    );
    assert!(text.contains("$.timestamp"), "{text}");
    let text = cli(&proxy, &["status"]);
    assert!(
        text.contains("MIRROR") && text.contains("cloud 100%: 60/60 differ"),
        "{text}"
    );

    // An upgrade request (a WebSocket) is never copied (HTTP/1 only: the
    // header does not exist in HTTP/2).
    if !common::client::http2_clients() {
        let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
        let r = get(&c, &proxy.url("/users/7"), &upgrade).await;
        assert!(r.is_ok(), "{r:?}");
    }
    // Once fixed, the cloud answers the same: nothing more is counted.
    cloud.differs.store(false, Relaxed);
    for _ in 0..20 {
        get(&c, &proxy.url("/users/7"), &[]).await.expect("request");
    }
    let (m, done) = until(
        Duration::from_secs(20),
        || mirror_json(&proxy, "api"),
        |m| n(m, &["figures", "compared"]) >= 80,
    )
    .await;
    assert!(done, "{m:#}");
    assert_eq!(n(&m, &["figures", "mismatched"]), 60, "{m:#}");
    assert_eq!(n(&m, &["figures", "matched"]), 20, "{m:#}");
    assert_eq!(n(&m, &["figures", "mirrored"]), 80, "{m:#}");

    // A reload to percent = 0 stops the copies (the figures stay).
    std::fs::write(&proxy.config_path, config(a, b, "percent = 0\n", "")).expect("write");
    let admin = proxy.admin.expect("admin address");
    let r = send(&c, "POST", &format!("http://{admin}/reload"), &[], "")
        .await
        .expect("reload");
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..10 {
        get(&c, &proxy.url("/users/7"), &[]).await.expect("request");
    }
    let m = mirror_json(&proxy, "api").await;
    assert_eq!(n(&m, &["figures", "mirrored"]), 80, "{m:#}");
    assert_eq!(m["percent"].as_f64(), Some(0.0));
}

/// p99 of `samples`.
fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// Load on two routes of one proxy, one mirrored and one not, alternating:
/// every answer must be the primary's 200; returns both p99s.
async fn load(proxy: &ProxyProc, requests: usize) -> (Duration, Duration) {
    let c = client();
    let mut with = Vec::new();
    let mut without = Vec::new();
    let url = proxy.url("/users/7");
    let tasks = (0..8).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let mut times = (Vec::new(), Vec::new());
            for i in 0..requests / 8 {
                let host = if i % 2 == 0 { "m.test" } else { "plain.test" };
                let t = Instant::now();
                let r = get(&c, &url, &[("host", host)]).await.expect("request");
                assert_eq!(r.status, 200, "{}", r.body);
                if i % 2 == 0 {
                    times.0.push(t.elapsed());
                } else {
                    times.1.push(t.elapsed());
                }
            }
            times
        }
    });
    for (w, wo) in common::join_all(tasks).await {
        with.extend(w);
        without.extend(wo);
    }
    (p99(&mut with), p99(&mut without))
}

fn two_routes(onprem: SocketAddr, cloud: SocketAddr) -> String {
    format!(
        "{}[pools.onprem]\nbackends = [\"{onprem}\"]\n[pools.cloud]\nbackends = [\"{cloud}\"]\n\n\
         [[routes]]\nname = \"mirrored\"\nmatch = {{ host = \"m.test\" }}\nsplit = {{ onprem = 100, cloud = 0 }}\n\
         [routes.mirror]\nto = \"cloud\"\ntimeout = \"2s\"\n\n\
         [[routes]]\nname = \"plain\"\nsplit = {{ onprem = 100 }}\n",
        common::base_config()
    )
}

#[tokio::test]
async fn a_dead_or_hanging_mirror_does_not_touch_the_clients_answers() {
    let onprem = Arc::new(Api::default());
    let a = api_server(onprem.clone()).await;
    let dead = refused_addr().await;
    let (hanging, _hole) = black_hole_server().await;
    for (what, cloud) in [("dead", dead), ("hanging", hanging)] {
        let proxy = ProxyProc::start(&two_routes(a, cloud));
        let (with, without) = load(&proxy, 1600).await;
        eprintln!(
            "mirror {what}: p99 with the mirror {:.2} ms, without {:.2} ms (same run, same backend)",
            with.as_secs_f64() * 1000.0,
            without.as_secs_f64() * 1000.0
        );
        // Every copy is accounted for: sent and failed, not sent because
        // the mirror pool refused connections just before (errors too), or
        // dropped.
        let (m, settled) = until(
            Duration::from_secs(20),
            || mirror_json(&proxy, "mirrored"),
            |m| {
                let f = &m["figures"];
                n(f, &["errors"]) >= n(f, &["mirrored"])
                    && n(f, &["errors"]) + n(f, &["dropped"]) == 800
            },
        )
        .await;
        assert!(settled, "{what}: {m:#}");
        let f = &m["figures"];
        assert_eq!(n(f, &["compared"]), 0, "{m:#}");
        if what == "hanging" {
            // 64 copies wait out their 2 s while 256 queue: the rest drop.
            assert!(n(f, &["dropped"]) > 0, "{m:#}");
        } else {
            // After a few refusals the copies pause: no connection attempt
            // per request while the mirror pool is down.
            assert!(n(f, &["errors"]) > n(f, &["mirrored"]), "{m:#}");
        }
        let metrics = proxy.metrics().await;
        // The mirror pool's failures are the mirror's own: no failure, no
        // ejection, no attempt counted against its backend.
        for line in metrics.lines().filter(|l| l.contains("pool=\"cloud\"")) {
            let failures = line.starts_with("cutover_upstream_failures_total")
                || line.starts_with("cutover_upstream_attempts_total")
                || line.starts_with("cutover_backend_ejections_total");
            assert!(!failures || line.ends_with(" 0"), "{line}");
            if line.starts_with("cutover_backend_healthy") {
                assert!(line.ends_with(" 1"), "{line}");
            }
        }
    }
}

#[tokio::test]
async fn a_gated_shift_waits_for_the_mirror_and_starts_once_it_agrees() {
    let (_onprem, cloud, a, b) = two_apis().await;
    let shift = "[routes.shift]\nto = \"cloud\"\nsteps = [50, 100]\nhold = \"2s\"\n\
                 [routes.shift.gate]\nmax_mirror_mismatch = 0.05\nmin_requests = 10\n";
    let proxy = ProxyProc::start(&config(a, b, "percent = 100\n", shift));
    let c = client();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (c, url, stop) = (c.clone(), proxy.url("/users/7"), stop.clone());
        tokio::spawn(async move {
            let mut failed = 0;
            while !stop.load(Relaxed) {
                match get(&c, &url, &[]).await {
                    Ok(r) if r.status == 200 => {}
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            failed
        })
    };
    // The answers differ: the shift does not start.
    let (st, waiting) = until(
        Duration::from_secs(20),
        || status_json(&proxy),
        |st| {
            let shift = &st["routes"][0]["shift"];
            shift["mirror_wait"]
                .as_str()
                .is_some_and(|w| w.contains("mirror mismatch"))
                && shift["state"] == "idle"
        },
    )
    .await;
    assert!(waiting, "{st:#}");
    let text = cli(&proxy, &["status"]);
    assert!(text.contains("waits: mirror mismatch"), "{text}");
    let real_on_cloud = cloud.served.load(Relaxed) - cloud.marked.load(Relaxed);
    assert_eq!(real_on_cloud, 0, "no user reached the cloud");
    // Fixed: within a window of agreeing answers, it starts.
    cloud.differs.store(false, Relaxed);
    let (st, started) = until(
        Duration::from_secs(30),
        || status_json(&proxy),
        |st| st["routes"][0]["shift"]["state"] == "running",
    )
    .await;
    assert!(started, "{st:#}");
    assert!(st["routes"][0]["shift"]["mirror_wait"].is_null(), "{st:#}");
    stop.store(true, Relaxed);
    assert_eq!(traffic.await.expect("traffic"), 0, "no request failed");
}
