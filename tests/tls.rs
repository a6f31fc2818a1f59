//! TLS at the edge and to backends, HTTP/2, WebSocket and gRPC, with
//! certificates made in the test.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::tls::*;
use common::*;
use http_body_util::Full;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn h2_get(path: &str, host: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("https://{host}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A proxy with a TLS listener serving `pairs` (the first is the default).
fn tls_proxy(
    dir: &std::path::Path,
    pairs: &[(&str, &Pair)],
    backend: &Backend,
    extra: &str,
) -> ProxyProc {
    let mut certs = Vec::new();
    for (stem, pair) in pairs {
        let (c, k) = write_pair(dir, stem, pair);
        certs.push(format!(
            "{{ cert = \"{}\", key = \"{}\" }}",
            c.display(),
            k.display()
        ));
    }
    let cfg = format!(
        "{}[[proxy.tls]]\nlisten = \"127.0.0.1:0\"\ncerts = [{}]\nhttp2 = true\n{extra}\n\
         [pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        certs.join(", "),
        addrs(&[backend])
    );
    ProxyProc::start(&cfg)
}

fn tls_addr(proxy: &ProxyProc) -> std::net::SocketAddr {
    proxy.tls_addr().expect("tls listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_and_sni_picks_the_certificate() {
    let ca = TestCa::new("edge ca");
    let app = Backend::spawn("app").await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test", "*.wild.test"]));
    let proxy = tls_proxy(dir.path(), &[("a", &a), ("b", &b)], &app, "");
    let addr = tls_addr(&proxy);
    let config = client_config(&ca.pem(), &[b"h2", b"http/1.1"]);

    let tls = connect(addr, "b.test", config.clone()).await.unwrap();
    assert_eq!(peer_names(&tls), vec!["b.test", "*.wild.test"]);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (parts, body, _) = h2_request(tls, h2_get("/hello", "b.test")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert!(String::from_utf8_lossy(&body).starts_with("app GET"));
    let seen = app.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https");

    let tls = connect(addr, "a.test", config.clone()).await.unwrap();
    assert_eq!(peer_names(&tls), vec!["a.test"]);
    let tls = connect(addr, "x.wild.test", config.clone()).await.unwrap();
    assert_eq!(peer_names(&tls), vec!["b.test", "*.wild.test"], "wildcard");
    // No SNI at all: the first certificate is the default.
    let no_verify = {
        let mut c = (*client_config(&ca.pem(), &[b"http/1.1"])).clone();
        c.enable_sni = false;
        std::sync::Arc::new(c)
    };
    let err = connect(addr, "a.test", no_verify).await;
    assert!(err.is_ok(), "{err:?}");

    // HTTP/1.1 over TLS too.
    let tls = connect(addr, "a.test", client_config(&ca.pem(), &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_served_after_reload_while_open_connections_keep_working() {
    let ca = TestCa::new("edge ca");
    let app = Backend::spawn("app").await;
    let dir = tempfile::tempdir().unwrap();
    let old = ca.leaf(&["a.test"]);
    let proxy = tls_proxy(dir.path(), &[("a", &old)], &app, "");
    let addr = tls_addr(&proxy);
    let config = client_config(&ca.pem(), &[b"http/1.1"]);
    let mut open = connect(addr, "a.test", config.clone()).await.unwrap();
    let old_der = peer_der(&open);
    open.write_all(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = open.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // Renew the certificate on disk, then reload.
    let new = ca.leaf(&["a.test"]);
    write_pair(dir.path(), "a", &new);
    let r = send(
        &client(),
        "POST",
        &format!("http://{}/reload", proxy.admin.unwrap()),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = connect(addr, "a.test", config.clone()).await.unwrap();
    assert_ne!(
        peer_der(&fresh),
        old_der,
        "new connections get the new certificate"
    );

    open.write_all(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let n = open.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "the open connection still works"
    );

    // A bad new pair keeps the old certificate and reports the error.
    std::fs::write(dir.path().join("a.key"), ca.leaf(&["other.test"]).key).unwrap();
    let r = send(
        &client(),
        "POST",
        &format!("http://{}/reload", proxy.admin.unwrap()),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 422);
    assert!(r.body.contains("does not match"), "{}", r.body);
    let still = connect(addr, "a.test", config).await.unwrap();
    assert_eq!(peer_der(&still), peer_der(&fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tls_handshake_is_cut_off() {
    let ca = TestCa::new("edge ca");
    let app = Backend::spawn("app").await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = tls_proxy(dir.path(), &[("a", &ca.leaf(&["a.test"]))], &app, "");
    let cfg = std::fs::read_to_string(&proxy.config_path).unwrap();
    drop(proxy);
    let cfg = cfg.replace("threads = 1", "threads = 1\nheader_timeout = \"300ms\"");
    let proxy = ProxyProc::start(&cfg);
    let addr = tls_addr(&proxy);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn tls_pool_config(backend: std::net::SocketAddr, tls: &str, health: bool) -> String {
    format!(
        "{}[pools.cloud]\nbackends = [\"{backend}\"]\ntls = {{ {tls} }}\n{}outlier = false\n\
         [[routes]]\nname = \"api\"\nsplit = {{ cloud = 1 }}\n",
        base_config(),
        if health {
            "health = { path = \"/healthz\", interval = \"200ms\" }\n"
        } else {
            ""
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_with_a_custom_ca_and_rejects_untrusted_backends() {
    let ca = TestCa::new("backend ca");
    let (backend, hits) = spawn_tls_backend("cloud", &ca, "backend.test").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();

    // Trusted through the pool's CA, health-checked over TLS.
    let cfg = tls_pool_config(
        backend,
        &format!("sni = \"backend.test\", ca = \"{}\"", ca_path.display()),
        true,
    );
    let proxy = ProxyProc::start(&cfg);
    assert!(
        proxy
            .stderr
            .wait_for(Duration::from_secs(5), |l| l.contains("backend is healthy"))
            .is_some(),
        "{:?}",
        proxy.stderr.all()
    );
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-backend"), Some("cloud"));
    drop(proxy);

    // Not trusted (system roots only): 502, counted as a TLS failure.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let proxy = ProxyProc::start(&tls_pool_config(backend, "sni = \"backend.test\"", false));
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no request reached it"
    );
    let metrics = proxy.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("cutover_upstream_failures_total") && l.contains("kind=\"tls\""))
        .unwrap();
    assert!(!line.ends_with(" 0"), "{line}");
    drop(proxy);

    // The wrong name: 502 too.
    let proxy = ProxyProc::start(&tls_pool_config(
        backend,
        &format!("sni = \"other.test\", ca = \"{}\"", ca_path.display()),
        false,
    ));
    assert_eq!(
        get(&client(), &proxy.url("/"), &[]).await.unwrap().status,
        502
    );
    drop(proxy);

    // verify = false accepts it.
    let proxy = ProxyProc::start(&tls_pool_config(
        backend,
        "sni = \"backend.test\", verify = false",
        false,
    ));
    assert_eq!(
        get(&client(), &proxy.url("/"), &[]).await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_h2_passes_through_with_trailers() {
    let ca = TestCa::new("test ca");
    let (backend, _) = spawn_tls_backend("grpc", &ca, "backend.test").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let edge = ca.leaf(&["api.test"]);
    let (c, k) = write_pair(dir.path(), "edge", &edge);
    let cfg = format!(
        "{}[[proxy.tls]]\nlisten = \"127.0.0.1:0\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\n\
         [pools.cloud]\nbackends = [\"{backend}\"]\ntls = {{ sni = \"backend.test\", ca = \"{}\", http2 = true }}\n\
         [[routes]]\nname = \"api\"\nsplit = {{ cloud = 1 }}\n",
        base_config(),
        c.display(),
        k.display(),
        ca_path.display()
    );
    let proxy = ProxyProc::start(&cfg);
    let addr = tls_addr(&proxy);
    let tls = connect(addr, "api.test", client_config(&ca.pem(), &[b"h2"]))
        .await
        .unwrap();
    let req = http::Request::post("https://api.test/demo.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\x00\x00\x00\x00\x05hello")))
        .unwrap();
    let (parts, body, trailers) = h2_request(tls, req).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts.headers["x-backend-protocol"], "h2",
        "h2 to the backend too"
    );
    assert_eq!(&body[..], b"\x00\x00\x00\x00\x02hi");
    let trailers = trailers.expect("trailers passed through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_works_on_a_plain_listener() {
    let app = Backend::spawn("app").await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        addrs(&[&app])
    );
    let proxy = ProxyProc::start(&cfg);
    let mut send = h2c(proxy.addr).await;
    let resp = send
        .send_request(
            http::Request::get(format!("http://{}/x", proxy.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}

/// A backend that accepts a WebSocket upgrade and echoes bytes.
async fn websocket_echo_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(text) = common::raw::read_head(&mut s).await else {
                    return;
                };
                let text = text.to_ascii_lowercase();
                if !text.contains("upgrade: websocket") {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_round_trips_through_the_proxy() {
    let ws = websocket_echo_backend().await;
    let cfg = format!(
        "{}[pools.ws]\nbackends = [\"{ws}\"]\n[[routes]]\nname = \"ws\"\nsplit = {{ ws = 1 }}\n",
        base_config()
    );
    let proxy = ProxyProc::start(&cfg);
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = common::raw::read_head(&mut s)
        .await
        .expect("a head")
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked text frame "hello" (the backend echoes bytes as they come).
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        s.write_all(&frame).await.unwrap();
        let mut back = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_over_tls_must_send_its_preface_in_time() {
    let ca = TestCa::new("edge ca");
    let app = Backend::spawn("app").await;
    let dir = tempfile::tempdir().unwrap();
    let a = ca.leaf(&["a.test"]);
    // The head deadlines, short: the preface is an HTTP/2 client's head.
    let proxy = {
        let mut certs = Vec::new();
        let (c, k) = write_pair(dir.path(), "a", &a);
        certs.push(format!(
            "{{ cert = \"{}\", key = \"{}\" }}",
            c.display(),
            k.display()
        ));
        let cfg = format!(
            "{}[[proxy.tls]]\nlisten = \"127.0.0.1:0\"\ncerts = [{}]\nhttp2 = true\n\
             [pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
            base_config().replace(
                "threads = 1",
                "threads = 1\nheader_timeout = \"500ms\"\nidle_timeout = \"1s\""
            ),
            certs.join(", "),
            addrs(&[&app])
        );
        ProxyProc::start(&cfg)
    };
    let addr = tls_addr(&proxy);
    let config = client_config(&ca.pem(), &[b"h2"]);
    for (sent, limit) in [(&b"PRI * HTTP/2.0\r\n"[..], 2500), (b"", 3000)] {
        let mut tls = connect(addr, "a.test", config.clone()).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(sent).await.unwrap();
        tls.flush().await.unwrap();
        let start = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{sent:?}: still open after 6 s");
        assert!(
            start.elapsed() < Duration::from_millis(limit),
            "{sent:?}: closed after {:?}",
            start.elapsed()
        );
    }
}
