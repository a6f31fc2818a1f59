//! `cutover import` on a corpus of real-looking nginx and HAProxy configs
//! (several files, includes, comments, TLS, a weighted split, ACL routing,
//! health checks): each is first validated by the real `nginx -t` /
//! `haproxy -c`, then imported; the result must pass `cutover check`, and
//! — the parity test — the real nginx (or HAProxy) on the original and
//! cutover on the import, in front of the same backends, must send the
//! same requests to the same pools, with weighted splits within 1 point
//! over 10,000 requests.

mod common;

use common::backend::Backend;
use common::client::{client, send, HttpClient};
use common::corpus::{haproxy_c, nginx_t, Corpus, Reaped};
use common::proxy::ProxyProc;
use std::process::{Command, Stdio};
use std::time::Duration;

/// (method, host, path, headers, the pool expected).
type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// The six backends the corpus names as 127.0.0.1:18001 … 18006.
const NAMES: [&str; 6] = [
    "onprem-1",
    "onprem-2",
    "cloud-1",
    "cloud-2",
    "onprem-spare",
    "static",
];

fn pool_of(backend: &str) -> &'static str {
    match backend {
        "onprem-1" | "onprem-2" | "onprem-spare" => "onprem",
        "cloud-1" | "cloud-2" => "cloud",
        "static" => "static",
        _ => "?",
    }
}

fn check(toml: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "--skip-dns", "-c"])
        .arg(&path)
        .output()
        .expect("cutover check");
    assert!(
        out.status.success(),
        "cutover check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every item names a file and line; none is blocking.
fn report_sound(json: &serde_json::Value, min_items: usize) {
    let items = json["items"].as_array().expect("items");
    assert!(items.len() >= min_items, "only {} items", items.len());
    for i in items {
        assert!(i["line"].as_u64().is_some_and(|l| l > 0), "{i}");
        assert!(i["file"].as_str().is_some_and(|f| !f.is_empty()), "{i}");
        assert_ne!(i["verdict"], "blocking", "{i}");
    }
    assert_eq!(json["exit_code"], 3);
}

async fn pool(
    c: &HttpClient,
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    let url = format!("http://127.0.0.1:{port}{path}");
    match send(c, method, &url, &headers, "").await {
        Ok(r) if r.status == 200 => pool_of(r.header("x-backend").unwrap_or("")).to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

/// The imported config with its listeners moved to port 0 (the original
/// proxy holds the corpus's ports).
fn on_port_zero(toml: &str, c: &Corpus) -> String {
    let mut t = toml.to_string();
    for line in toml.lines().filter(|l| l.starts_with("listen = ")) {
        let mut moved = line.to_string();
        for (i, _) in line.match_indices("127.0.0.1:") {
            let port: String = line[i + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            moved = moved.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:0");
        }
        t = t.replace(line, &moved);
    }
    assert!(!t.contains(&format!(":{}\"", c.plain)), "listeners moved");
    t
}

/// Wait until `port` routes a request (checks have passed).
async fn ready(c: &HttpClient, port: u16, host: &str) {
    let ok = common::eventually(Duration::from_secs(20), || async {
        let p = pool(c, port, "GET", host, "/", &[("x-user", "probe")]).await;
        matches!(p.as_str(), "onprem" | "cloud" | "static")
    })
    .await;
    assert!(ok, "proxy on {port} never served");
}

/// The share of `n` shoppers (distinct X-User) that reach the cloud pool.
async fn cloud_share(c: &HttpClient, port: u16, host: &str, n: usize) -> f64 {
    let mut cloud = 0usize;
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 32).min(n))
            .map(|u| {
                let user = format!("user-{u}");
                async move { pool(c, port, "GET", host, "/", &[("x-user", user.as_str())]).await }
            })
            .collect();
        for p in common::join_all(batch.into_iter()).await {
            assert!(p == "cloud" || p == "onprem", "split answer: {p}");
            cloud += usize::from(p == "cloud");
        }
        i += 32;
    }
    cloud as f64 * 100.0 / n as f64
}

/// Each case goes to the same pool through both proxies, and that pool is
/// the expected one.
async fn same_pools(c: &HttpClient, ports: (u16, u16), cases: &[Case<'_>]) {
    for (method, host, path, headers, want) in cases {
        let a = pool(c, ports.0, method, host, path, headers).await;
        let b = pool(c, ports.1, method, host, path, headers).await;
        assert_eq!(
            (a.as_str(), b.as_str()),
            (*want, *want),
            "{method} {host}{path} {headers:?}: original, cutover"
        );
    }
}

/// GET `path` for shop.example.com over TLS (SNI, the corpus's
/// certificate trusted) on `port`: the pool that answered.
async fn over_tls(c: &Corpus, port: u16, path: &str) -> String {
    let config = common::tls::client_config(&c.cert_pem, &[b"http/1.1"]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let tls = common::tls::connect(addr, "shop.example.com", config)
        .await
        .expect("TLS handshake with the imported certificate");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 over TLS");
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "shop.example.com")
        .header("x-user", "u1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    match send.send_request(req).await {
        Ok(r) if r.status() == 200 => pool_of(
            r.headers()
                .get("x-backend")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .to_string(),
        Ok(r) => format!("status {}", r.status()),
        Err(e) => format!("error {e}"),
    }
}

/// The original proxy (`original`, already started on the corpus) and
/// cutover on the import, side by side: every case reaches the same pool
/// through both, and the shares of 10,000 shoppers sent to the cloud agree
/// within 1 point (and are within 1 point of the configured 20 %).
async fn parity(c: &Corpus, toml: &str, original: Reaped, name: &str, cases: &[Case<'_>]) {
    let cutover = ProxyProc::start(&on_port_zero(toml, c));
    let http = client();
    ready(&http, c.plain, "shop.example.com").await;
    ready(&http, cutover.addr.port(), "shop.example.com").await;
    let ports = (c.plain, cutover.addr.port());
    same_pools(&http, ports, cases).await;
    // The TLS listener: the imported certificate, chosen by SNI, and the
    // same routing behind it.
    let cutover_tls = cutover.tls_addr().expect("cutover's TLS listener").port();
    for port in [c.tls, cutover_tls] {
        assert_eq!(
            over_tls(c, port, "/static/app.css").await,
            "static",
            "TLS on {port}"
        );
    }
    let n = 10_000;
    let before = cloud_share(&http, ports.0, "shop.example.com", n).await;
    let after = cloud_share(&http, ports.1, "shop.example.com", n).await;
    eprintln!("{name} split: cloud {before:.2} % under {name}, {after:.2} % under cutover");
    assert!(
        (before - 20.0).abs() <= 1.0 && (after - 20.0).abs() <= 1.0,
        "{before} {after}"
    );
    assert!((before - after).abs() <= 1.0);
    drop(original);
}

async fn backends() -> Vec<Backend> {
    let mut v = Vec::new();
    for n in NAMES {
        v.push(Backend::spawn(n).await);
    }
    v
}

#[tokio::test]
async fn nginx_corpus_imports_and_routes_like_nginx() {
    let b = backends().await;
    let c = Corpus::new("nginx", &b);
    nginx_t(&c);
    let (code, toml, json) = c.import("nginx");
    assert_eq!(code, 3, "complete with differences");
    report_sound(&json, 60);
    check(&toml);
    assert!(
        toml.contains("split = { shop_cloud = 20, shop_onprem = 80 }"),
        "{toml}"
    );
    assert!(toml.contains("sticky = { header = \"x-user\" }"), "{toml}");
    assert!(
        toml.contains("failover = [\"shop_onprem-backup\"]"),
        "{toml}"
    );

    let nginx = Reaped(
        Command::new("nginx")
            .arg("-p")
            .arg(c.dir.path())
            .arg("-c")
            .arg(c.main_file("nginx"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    parity(
        &c,
        &toml,
        nginx,
        "nginx",
        &[
            (
                "GET",
                "shop.example.com",
                "/api/orders",
                &[("x-backend", "cloud")],
                "cloud",
            ),
            (
                "GET",
                "shop.example.com",
                "/api/orders",
                &[("x-backend", "onprem")],
                "onprem",
            ),
            ("GET", "shop.example.com", "/api/orders", &[], "onprem"),
            (
                "POST",
                "www.shop.example.com",
                "/api/cart",
                &[("x-backend", "cloud")],
                "cloud",
            ),
            (
                "GET",
                "www.shop.example.com",
                "/static/app.css",
                &[],
                "static",
            ),
            (
                "GET",
                "shop.example.com",
                "/static/logo.png",
                &[("x-backend", "cloud")],
                "static",
            ),
            ("GET", "other.example.org", "/", &[], "static"),
            (
                "GET",
                "other.example.org",
                "/api/orders",
                &[("x-backend", "cloud")],
                "static",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn haproxy_corpus_imports_and_routes_like_haproxy() {
    let b = backends().await;
    let c = Corpus::new("haproxy", &b);
    haproxy_c(&c);
    let (code, toml, json) = c.import("haproxy");
    assert_eq!(code, 3, "complete with differences");
    report_sound(&json, 45);
    check(&toml);
    assert!(
        toml.contains("split = { be_cloud = 20, be_onprem = 80 }"),
        "{toml}"
    );
    assert!(
        toml.contains("host = \"api.*\", methods = [\"POST\", \"PUT\", \"DELETE\"]"),
        "{toml}"
    );
    assert!(toml.contains("health = { path = \"/healthz\""), "{toml}");

    let haproxy = Reaped(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(c.main_file("haproxy"))
            .current_dir(c.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    parity(
        &c,
        &toml,
        haproxy,
        "HAProxy",
        &[
            (
                "GET",
                "shop.example.com",
                "/static/app.css",
                &[("x-user", "u1")],
                "static",
            ),
            (
                "GET",
                "www.shop.example.com",
                "/assets/logo.png",
                &[("x-user", "u1")],
                "static",
            ),
            ("POST", "api.example.com", "/orders", &[], "onprem"),
            ("DELETE", "api.example.com", "/orders/7", &[], "onprem"),
            ("GET", "api.example.com", "/orders", &[], "cloud"),
            ("GET", "api.internal.net", "/", &[], "cloud"),
            ("GET", "other.example.org", "/", &[], "static"),
            ("GET", "other.example.org", "/static/x", &[], "static"),
        ],
    )
    .await;
}
