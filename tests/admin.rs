//! The admin endpoint through real sockets: every endpoint, the auth matrix,
//! a manual split and a drain seen by a real client, metrics after real
//! traffic (checked with `promtool`), access log lines, `cutover status`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn two_pools(onprem: &Backend, cloud: &Backend, extra: &str) -> String {
    format!(
        "{}{extra}\n[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n",
        base_config(),
        addrs(&[onprem]),
        addrs(&[cloud])
    )
}

fn admin_url(proxy: &ProxyProc, path: &str) -> String {
    format!("http://{}{}", proxy.admin.expect("admin listener"), path)
}

async fn admin(
    proxy: &ProxyProc,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(a) = auth.as_deref() {
        headers.push(("authorization", a));
    }
    send(&client(), method, &admin_url(proxy, path), &headers, body)
        .await
        .unwrap()
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_as_documented() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&two_pools(&onprem, &cloud, ""));

    let r = admin(&proxy, "GET", "/healthz", None, "").await;
    assert_eq!(
        (r.status, json(&r)),
        (200, serde_json::json!({"status": "healthy"}))
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            admin(&proxy, "GET", "/readyz", None, "").await.status == 200
        })
        .await
    );

    let services = json(&admin(&proxy, "GET", "/services", None, "").await);
    assert_eq!(services[0]["name"], format!("onprem/{}", onprem.addr));
    assert_eq!(services[0]["pool"], "onprem");
    assert_eq!(services[0]["addr"], onprem.addr.to_string());
    assert_eq!(services[0]["status"], "healthy");
    assert_eq!(services[0]["weight"], 1);
    assert_eq!(services[1]["pool"], "cloud");

    let status = json(&admin(&proxy, "GET", "/status", None, "").await);
    assert_eq!(
        status["config"]["path"],
        proxy.config_path.display().to_string()
    );
    assert_eq!(status["config"]["hash"].as_str().map(str::len), Some(16));
    assert!(status["config"]["loaded_at"].as_str().is_some());
    assert_eq!(status["routes"][0]["name"], "api");
    assert_eq!(status["routes"][0]["configured_split"]["onprem"], 100.0);
    assert_eq!(status["routes"][0]["effective_split"]["onprem"], 100.0);
    assert_eq!(status["pools"][1]["backends"][0]["status"], "healthy");

    let m = admin(&proxy, "GET", "/metrics", None, "").await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));

    assert_eq!(admin(&proxy, "GET", "/reload", None, "").await.status, 405);
    assert_eq!(
        admin(&proxy, "GET", "/no/such/thing", None, "")
            .await
            .status,
        404
    );
    assert_eq!(
        admin(&proxy, "POST", "/routes/nope/shift/pause", None, "")
            .await
            .status,
        404
    );
    assert_eq!(
        admin(&proxy, "POST", "/routes/api/shift/pause", None, "")
            .await
            .status,
        409
    );
    let r = admin(
        &proxy,
        "PUT",
        "/routes/api/split",
        None,
        "{\"cloud\": \"lots\"}",
    )
    .await;
    assert_eq!(r.status, 422);
    // In words, not serde's ("invalid type: string, expected f64").
    assert!(
        r.body.contains("must be a number, not the text"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("f64"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let token = "test-token-9f8e7d6c5b4a3210";
    let cfg = two_pools(&onprem, &cloud, "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"CUTOVER_ADMIN_TOKEN\"",
    );
    let proxy = ProxyProc::start_with(&cfg, &[], &[("CUTOVER_ADMIN_TOKEN", token)]);
    assert_eq!(admin(&proxy, "GET", "/healthz", None, "").await.status, 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            admin(&proxy, "GET", "/readyz", None, "").await.status == 200
        })
        .await
    );
    for path in ["/status", "/services", "/metrics"] {
        let missing = admin(&proxy, "GET", path, None, "").await;
        assert_eq!(missing.status, 401, "{path}");
        assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            admin(&proxy, "GET", path, Some("wrong"), "").await.status,
            401,
            "{path}"
        );
        assert_eq!(
            admin(&proxy, "GET", path, Some(token), "").await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        admin(&proxy, "PUT", "/routes/api/split", None, "{\"cloud\":1}")
            .await
            .status,
        401
    );
    let status = admin(&proxy, "GET", "/status", Some(token), "").await;
    assert!(!status.body.contains(token));
    assert!(
        proxy.stderr.all().iter().all(|l| !l.contains(token)),
        "token in the logs"
    );

    // Without a token configured, no header is needed.
    let open = ProxyProc::start(&two_pools(&onprem, &cloud, ""));
    assert_eq!(admin(&open, "GET", "/status", None, "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_split_and_a_drain_change_what_clients_see() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cloud2 = Backend::spawn("cloud2").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n",
        base_config(),
        addrs(&[&onprem]),
        addrs(&[&cloud, &cloud2])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    for _ in 0..10 {
        assert_eq!(
            get(&cl, &proxy.url("/"), &[])
                .await
                .unwrap()
                .header("x-backend"),
            Some("onprem")
        );
    }
    let r = admin(
        &proxy,
        "PUT",
        "/routes/api/split",
        None,
        "{\"onprem\": 0, \"cloud\": 100}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..10 {
        let b = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        assert!(
            b.header("x-backend").unwrap().starts_with("cloud"),
            "{:?}",
            b.headers
        );
    }
    let status = json(&admin(&proxy, "GET", "/status", None, "").await);
    assert_eq!(status["routes"][0]["manual_split"], true);
    assert_eq!(status["routes"][0]["split"]["cloud"], 100.0);

    let path = format!("/pools/cloud/backends/{}/drain", cloud.addr);
    let r = admin(&proxy, "POST", &path, None, "").await;
    assert_eq!(
        (r.status, json(&r)["status"].clone()),
        (200, serde_json::json!("draining"))
    );
    let before = cloud.hits();
    for _ in 0..10 {
        assert_eq!(
            get(&cl, &proxy.url("/"), &[])
                .await
                .unwrap()
                .header("x-backend"),
            Some("cloud2")
        );
    }
    assert_eq!(
        cloud.hits(),
        before,
        "a drained backend gets no new requests"
    );
    let r = admin(
        &proxy,
        "POST",
        &format!("/pools/cloud/backends/{}/undrain", cloud.addr),
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    for _ in 0..10 {
        get(&cl, &proxy.url("/"), &[]).await.unwrap();
    }
    assert!(cloud.hits() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic_and_pass_promtool() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&two_pools(&onprem, &cloud, ""));
    let cl = client();
    for _ in 0..25 {
        assert_eq!(get(&cl, &proxy.url("/"), &[]).await.unwrap().status, 200);
    }
    // A request is counted in its logging phase, just after the client has
    // its response: scrape until the last one is in (bounded).
    let counter = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("cutover_requests_total{")
                    && l.contains("pool=\"onprem\"")
                    && l.contains("code=\"200\"")
            })
            .map(str::to_owned)
    };
    let mut text = String::new();
    for _ in 0..200 {
        text = admin(&proxy, "GET", "/metrics", None, "").await.body;
        if counter(&text).is_some_and(|l| l.ends_with(" 25")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let line = counter(&text).unwrap_or_else(|| panic!("no request counter:\n{text}"));
    assert!(line.ends_with(" 25"), "{line}");
    for name in [
        "cutover_request_duration_seconds_bucket",
        "cutover_upstream_failures_total",
        "cutover_retries_total",
        "cutover_backend_healthy",
        "cutover_route_share",
        "cutover_config_reloads_total",
        "cutover_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(
        text.contains("cutover_route_share{route=\"api\",pool=\"onprem\"} 1"),
        "{text}"
    );

    promtool_check(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_json() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&two_pools(&onprem, &cloud, "[log]\naccess = \"stdout\"\n"));
    let cl = client();
    get(&cl, &proxy.url("/hello?x=1"), &[("host", "api.test")])
        .await
        .unwrap();
    let line = proxy
        .stdout
        .wait_for(Duration::from_secs(5), |l| l.contains("/hello"))
        .expect("an access log line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["host"], "api.test");
    assert_eq!(v["path"], "/hello?x=1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["route"], "api");
    assert_eq!(v["pool"], "onprem");
    assert_eq!(v["backend"], onprem.addr.to_string());
    assert_eq!(v["attempts"], 1);
    assert!(v["upstream_ms"].is_u64());
    assert!(v["total_ms"].is_f64());
    assert!(v["bytes"].as_u64().unwrap() > 0);
    assert!(v["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(humantime::parse_rfc3339(v["ts"].as_str().unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_status_prints_tables() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&two_pools(&onprem, &cloud, ""));
    get(&client(), &proxy.url("/"), &[]).await.unwrap();
    let admin = format!("http://{}", proxy.admin.unwrap());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["status", "--admin", &admin])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ROUTE"), "{text}");
    assert!(text.contains("onprem 100.0% / cloud 0.0%"), "{text}");
    assert!(text.contains(&onprem.addr.to_string()), "{text}");
    assert!(text.contains("healthy"), "{text}");
    // Every cell stands apart (the numbers used to run together:
    // "healthy  1 0 91        0").
    let line = text
        .lines()
        .find(|l| l.contains(&onprem.addr.to_string()))
        .unwrap();
    let cells: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells.len(), 7, "{line:?}");
    assert_eq!(
        &cells[..4],
        &["onprem", &onprem.addr.to_string()[..], "healthy", "1"]
    );

    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--admin", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_status_finds_the_admin_endpoint_from_the_config_or_ip_port() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-of-thirty-two-characters").unwrap();
    let cfg = two_pools(&onprem, &cloud, "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!(
            "[admin]\nlisten = \"0.0.0.0:{port}\"\ntoken_file = \"{}\"",
            token.display()
        ),
    );
    let proxy = ProxyProc::start(&cfg);
    let config = proxy.config_path.clone();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_cutover"))
                .args(args)
                .env_remove("CUTOVER_ADMIN_TOKEN")
                .output()
                .unwrap()
        })
    };
    // `-c FILE`: the address (a wildcard asked on loopback) and the token.
    let out = run(vec![
        "status".into(),
        "-c".into(),
        config.display().to_string(),
    ])
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&onprem.addr.to_string()), "{text}");
    // IP:port, no scheme; the token from the environment variable's flag.
    let out = run(vec![
        "status".into(),
        "--admin".into(),
        format!("127.0.0.1:{port}"),
        "--token".into(),
        "a-token-of-thirty-two-characters".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the token: told how to give it.
    let out = run(vec![
        "status".into(),
        "--admin".into(),
        format!("127.0.0.1:{port}"),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_only_queries_exported_metrics() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cfg = format!(
        "{}\n[routes.shift]\nto = \"cloud\"\nsteps = [10, 100]\nhold = \"1h\"\n[routes.shift.gate]\nmax_error_rate = 0.1\n",
        two_pools(&onprem, &cloud, "")
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    for _ in 0..20 {
        get(&cl, &proxy.url("/"), &[]).await.unwrap();
    }
    let metrics = admin(&proxy, "GET", "/metrics", None, "").await.body;
    assert!(
        metrics.contains("cutover_shift_step{route=\"api\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cutover_shift_percent{route=\"api\"} 10"),
        "{metrics}"
    );
    promtool_check(&metrics);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/cutover.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("cutover_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            metrics.contains(&format!("\n{name}")),
            "dashboard queries {name}, which is not exported"
        );
    }
}
