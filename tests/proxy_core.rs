//! The proxy end to end, through real sockets: routing, split accuracy,
//! weighted backends, error answers, header handling, request-head limits.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send `n` GETs over `conc` keep-alive connections; count replies by the
/// `x-backend` header ("-" for none), and collect other statuses.
async fn tally(
    url: &str,
    n: usize,
    conc: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let client = client();
    let url = Arc::new(url.to_string());
    let headers: Arc<Vec<(String, String)>> = Arc::new(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (client, url, headers) = (client.clone(), url.clone(), headers.clone());
        let count = n / conc + usize::from(w < n % conc);
        tasks.push(tokio::spawn(async move {
            let mut local: HashMap<String, usize> = HashMap::new();
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for _ in 0..count {
                let key = match get(&client, &url, &h).await {
                    Ok(r) if r.status == 200 => r.header("x-backend").unwrap_or("-").to_string(),
                    Ok(r) => format!("status {}", r.status),
                    Err(e) => format!("error {e}"),
                };
                *local.entry(key).or_default() += 1;
            }
            local
        }));
    }
    let mut all = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("task") {
            *all.entry(k).or_default() += v;
        }
    }
    all
}

fn share(t: &HashMap<String, usize>, key: &str) -> f64 {
    let total: usize = t.values().sum();
    *t.get(key).unwrap_or(&0) as f64 * 100.0 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_in_order_and_unmatched_requests_get_404() {
    let a = Backend::spawn("a").await;
    let b = Backend::spawn("b").await;
    let c = Backend::spawn("c").await;
    let cfg = format!(
        "{}[pools.a]\nbackends = [{}]\n[pools.b]\nbackends = [{}]\n[pools.c]\nbackends = [{}]\n\
         [[routes]]\nname = \"by-host\"\nmatch = {{ host = \"a.test\" }}\nsplit = {{ a = 100 }}\n\
         [[routes]]\nname = \"by-path\"\nmatch = {{ path_prefix = \"/b/\", methods = [\"GET\"] }}\nsplit = {{ b = 100 }}\n\
         [[routes]]\nname = \"by-header\"\nmatch = {{ headers = {{ \"x-beta\" = \"1\" }} }}\nsplit = {{ c = 100 }}\n",
        base_config(),
        addrs(&[&a]),
        addrs(&[&b]),
        addrs(&[&c])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let r = get(&cl, &proxy.url("/b/x"), &[("host", "A.test:8080")])
        .await
        .unwrap();
    assert_eq!(
        r.header("x-backend"),
        Some("a"),
        "host wins: first route matches first"
    );
    let r = get(&cl, &proxy.url("/b/x"), &[("host", "other")])
        .await
        .unwrap();
    assert_eq!(r.header("x-backend"), Some("b"));
    let r = send(&cl, "POST", &proxy.url("/b/x"), &[("host", "other")], "")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "method not allowed by the route");
    let r = get(&cl, &proxy.url("/z"), &[("host", "other"), ("x-beta", "1")])
        .await
        .unwrap();
    assert_eq!(r.header("x-backend"), Some("c"));
    let r = get(&cl, &proxy.url("/z"), &[("host", "other")])
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no route"), "plain body: {:?}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscored_headers_neither_route_nor_reach_the_backend_unless_allowed() {
    let a = Backend::spawn("a").await;
    let b = Backend::spawn("b").await;
    let routes = format!(
        "[pools.a]\nbackends = [{}]\n[pools.b]\nbackends = [{}]\n\
         [[routes]]\nname = \"beta\"\nmatch = {{ headers = {{ \"x_beta\" = \"1\" }} }}\nsplit = {{ b = 100 }}\n\
         [[routes]]\nname = \"rest\"\nsplit = {{ a = 100 }}\n",
        addrs(&[&a]),
        addrs(&[&b])
    );
    // Dropped by default (nginx's rule), whatever the client's protocol.
    let proxy = ProxyProc::start(&format!("{}{routes}", base_config()));
    let cl = client();
    let r = get(&cl, &proxy.url("/u"), &[("x_beta", "1")])
        .await
        .unwrap();
    assert_eq!(r.header("x-backend"), Some("a"), "the header did not route");
    let seen = a.last_headers.lock().unwrap().clone().expect("a request");
    assert!(!seen.contains_key("x_beta"), "{seen:?}");
    drop(proxy);
    // Allowed: it routes and is passed on.
    let allowed =
        base_config().replacen("[proxy]\n", "[proxy]\nunderscores_in_headers = true\n", 1);
    let proxy = ProxyProc::start(&format!("{allowed}{routes}"));
    let r = get(&cl, &proxy.url("/u"), &[("x_beta", "1")])
        .await
        .unwrap();
    assert_eq!(r.header("x-backend"), Some("b"));
    let seen = b.last_headers.lock().unwrap().clone().expect("a request");
    assert_eq!(seen["x_beta"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_80_20_is_within_one_point_over_10000_requests() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 80, cloud = 20 }}\n",
        base_config(),
        addrs(&[&onprem]),
        addrs(&[&cloud])
    );
    let proxy = ProxyProc::start(&cfg);
    let t = tally(&proxy.url("/"), 10_000, 8, &[]).await;
    assert_eq!(t.values().sum::<usize>(), 10_000, "{t:?}");
    let cloud_share = share(&t, "cloud");
    assert!(
        (19.0..=21.0).contains(&cloud_share),
        "cloud {cloud_share}% {t:?}"
    );
    assert_eq!(
        t.get("onprem").copied().unwrap_or(0) + t.get("cloud").copied().unwrap_or(0),
        10_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_percent_split_is_honoured() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 99.5, cloud = 0.5 }}\n",
        base_config(),
        addrs(&[&onprem]),
        addrs(&[&cloud])
    );
    let proxy = ProxyProc::start(&cfg);
    let t = tally(&proxy.url("/"), 10_000, 8, &[]).await;
    let cloud_share = share(&t, "cloud");
    assert!(
        (0.2..=0.8).contains(&cloud_share),
        "cloud {cloud_share}% {t:?}"
    );
    assert_eq!(t.values().sum::<usize>(), 10_000, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_inside_a_pool_follow_their_weights() {
    let b1 = Backend::spawn("b1").await;
    let b3 = Backend::spawn("b3").await;
    let b0 = Backend::spawn("b0").await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [\"{}\", {{ addr = \"{}\", weight = 3 }}, {{ addr = \"{}\", weight = 0 }}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        b1.addr,
        b3.addr,
        b0.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let t = tally(&proxy.url("/"), 4_000, 4, &[]).await;
    let s1 = share(&t, "b1");
    assert!((24.0..=26.0).contains(&s1), "b1 {s1}% {t:?}");
    assert_eq!(t.get("b0"), None, "weight 0 gets nothing: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_backend_gives_a_short_502() {
    let dead = common::backend::refused_addr().await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [\"{dead}\"]\noutlier = false\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config()
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.starts_with("502 Bad Gateway"), "{:?}", r.body);
    // The process keeps serving.
    let r = get(&cl, &proxy.url("/again"), &[]).await.unwrap();
    assert_eq!(r.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_stripped() {
    let app = Backend::spawn("app").await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        addrs(&[&app])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let r = get(
        &cl,
        &proxy.url("/h"),
        &[
            ("host", "api.example.com"),
            ("x-forwarded-for", "203.0.113.7"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("x-normal", "kept"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let seen = app
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .expect("backend saw the request");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "api.example.com");
    assert_eq!(seen["host"], "api.example.com");
    assert_eq!(seen["x-normal"], "kept");
    for gone in ["x-private", "keep-alive", "proxy-connection"] {
        assert!(
            !seen.contains_key(gone),
            "{gone} reached the backend: {seen:?}"
        );
    }

    // And on the way back.
    app.behaviour
        .hop_headers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = get(&cl, &proxy.url("/h"), &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-end-to-end"), Some("1"));
    assert_eq!(r.header("x-hop-secret"), None, "{:?}", r.headers);
    assert_eq!(r.header("keep-alive"), None, "{:?}", r.headers);
    assert_ne!(r.header("connection"), Some("x-hop-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_header_picks_the_pool_and_tags_the_response() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\noverride_header = \"X-Cutover-Pool\"\n",
        base_config(),
        addrs(&[&onprem]),
        addrs(&[&cloud])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    for _ in 0..5 {
        let r = get(&cl, &proxy.url("/"), &[("x-cutover-pool", "cloud")])
            .await
            .unwrap();
        assert_eq!(r.header("x-backend"), Some("cloud"));
        assert_eq!(r.header("x-cutover-pool"), Some("cloud"));
        let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
        assert_eq!(r.header("x-backend"), Some("onprem"));
        assert_eq!(r.header("x-cutover-pool"), Some("onprem"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_stay_on_their_pool() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let cfg = format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 50, cloud = 50 }}\nsticky = {{ cookie = \"session\" }}\n",
        base_config(),
        addrs(&[&onprem]),
        addrs(&[&cloud])
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let mut per_pool = HashMap::new();
    for user in 0..200 {
        let cookie = format!("theme=dark; session=user-{user}");
        let first = get(&cl, &proxy.url("/"), &[("cookie", &cookie)])
            .await
            .unwrap();
        let pool = first.header("x-backend").unwrap().to_string();
        for _ in 0..3 {
            let again = get(&cl, &proxy.url("/"), &[("cookie", &cookie)])
                .await
                .unwrap();
            assert_eq!(
                again.header("x-backend"),
                Some(pool.as_str()),
                "user {user} flipped"
            );
        }
        *per_pool.entry(pool).or_insert(0) += 1;
    }
    assert!(per_pool.len() == 2, "both pools get users: {per_pool:?}");
}

async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
    pause_after: usize,
    pause: Duration,
) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (first, rest) = request.split_at(pause_after.min(request.len()));
    s.write_all(first).await.unwrap();
    if !rest.is_empty() {
        tokio::time::sleep(pause).await;
        let _ = s.write_all(rest).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_head_limits_answer_431_408_and_400() {
    let app = Backend::spawn("app").await;
    let cfg = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nheader_timeout = \"300ms\"\nmax_header_bytes = 2048\n\
         [pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        addrs(&[&app])
    );
    let proxy = ProxyProc::start(&cfg);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    let out = raw_exchange(proxy.addr, big.as_bytes(), usize::MAX, Duration::ZERO).await;
    assert!(
        out.starts_with("HTTP/1.1 431"),
        "{out:?} {:#?}",
        proxy.stderr.all()
    );

    let slow = b"GET / HTTP/1.1\r\nHost: x\r\n";
    let out = raw_exchange(proxy.addr, slow, 10, Duration::from_secs(1)).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");

    let out = raw_exchange(
        proxy.addr,
        b"BLAH\x01 / HTTP/1.1\r\n\r\n",
        usize::MAX,
        Duration::ZERO,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");

    // A normal request just under the limit still works, on a keep-alive
    // connection, twice.
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(1800)
    );
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(ok.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    }
    assert_eq!(app.hits(), 2);
}

/// Read one response (up to 4 KiB) from `s`, or `None` on EOF.
async fn read_some(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => panic!("no answer and no close within 5 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_keep_the_head_and_idle_deadlines() {
    // Pingora's own timers around the next request head are off; the
    // connection guard must still time out a slow second head and close a
    // keep-alive connection that stays idle.
    let app = Backend::spawn("app").await;
    let cfg = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nheader_timeout = \"300ms\"\nidle_timeout = \"500ms\"\n\
         [pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        addrs(&[&app])
    );
    let proxy = ProxyProc::start(&cfg);
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    // A slow second head on a reused connection: 408.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let first = read_some(&mut s).await.expect("a response");
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let second = read_some(&mut s).await.expect("a 408");
    assert!(second.starts_with("HTTP/1.1 408"), "{second:?}");

    // An idle keep-alive connection is closed by the proxy.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let first = read_some(&mut s).await.expect("a response");
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");
    assert_eq!(read_some(&mut s).await, None, "closed after idle_timeout");
    assert_eq!(app.hits(), 2);
}
