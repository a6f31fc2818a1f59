//! End to end through cutover's own HTTP/1 path (plain bodiless requests):
//! response framings passed through as they come, backend connections kept
//! and found dead, pipelining, informational heads, broken answers. The
//! backend here is scripted at the byte level, to send what well-behaved
//! servers (the hyper backends of the other tests) never do.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering by request path with fixed bytes.
struct Scripted {
    addr: SocketAddr,
    /// Connections accepted.
    conns: Arc<AtomicUsize>,
}

/// The answer for a request head, and whether to close the connection after.
fn script(head: &str) -> (&'static [u8], bool) {
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    match path {
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            false,
        ),
        "/until-close" => (b"HTTP/1.1 200 OK\r\nX-Kind: stream\r\n\r\nstreamed until close", true),
        "/early-hints" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints",
            false,
        ),
        // Closes every connection after answering, without saying so: what
        // a backend whose keep-alive timeout just expired looks like.
        "/close-idle" => (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        "/bad-length" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            true,
        ),
        "/truncated" => (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", true),
        "/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false),
        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ndefault", false),
    }
}

impl Scripted {
    async fn spawn() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let count = conns.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, SeqCst);
                tokio::spawn(serve_scripted(s));
            }
        });
        Scripted { addr, conns }
    }
}

async fn serve_scripted(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let (answer, close) = script(&head);
            if s.write_all(answer).await.is_err() || close {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn config(backend: SocketAddr) -> String {
    format!(
        "{}[pools.app]\nbackends = [\"{backend}\"]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config()
    )
}

/// Read from `s` until the proxy closes it.
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `raw` on a new connection and read until the proxy closes it.
async fn exchange_to_close(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_until_closed(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_pass_through_on_reused_connections() {
    let backend = Scripted::spawn().await;
    let proxy = ProxyProc::start(&config(backend.addr));
    let cl = client();
    for _ in 0..20 {
        let r = get(&cl, &proxy.url("/chunked"), &[]).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hello world"));
    }
    // The client connection and the backend connection both lived on.
    assert_eq!(backend.conns.load(SeqCst), 1);

    // The chunks reach the client as the backend framed them, trailers too.
    let text = exchange_to_close(
        proxy.addr,
        b"GET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.ends_with("5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        "{text:?}"
    );
    assert!(text.contains("Connection: close\r\n"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_closing_idle_connections_costs_no_request() {
    let backend = Scripted::spawn().await;
    let proxy = ProxyProc::start(&config(backend.addr));
    let cl = client();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (cl, url) = (cl.clone(), proxy.url("/close-idle"));
        tasks.push(tokio::spawn(async move {
            let mut codes = HashMap::new();
            for _ in 0..50 {
                let code = get(&cl, &url, &[]).await.map_or(0, |r| r.status);
                *codes.entry(code).or_insert(0) += 1;
            }
            codes
        }));
    }
    for t in tasks {
        let codes = t.await.unwrap();
        assert_eq!(codes.get(&200), Some(&50), "{codes:?}");
    }
    assert_eq!(backend.conns.load(SeqCst), 200, "one connection per answer");
    // A connection the backend had closed is not a failure of the backend.
    assert_eq!(proxy.stderr.count("attempt failed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_without_a_length_end_with_the_connection() {
    let backend = Scripted::spawn().await;
    let proxy = ProxyProc::start(&config(backend.addr));
    let text = exchange_to_close(proxy.addr, b"GET /until-close HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("X-Kind: stream\r\n"), "{text:?}");
    assert!(text.contains("Connection: close\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nstreamed until close"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_without_informational_heads() {
    let backend = Scripted::spawn().await;
    let proxy = ProxyProc::start(&config(backend.addr));
    let text = exchange_to_close(
        proxy.addr,
        b"GET /early-hints HTTP/1.1\r\nHost: t\r\n\r\nHEAD /head HTTP/1.1\r\nHost: t\r\n\r\n\
GET /other HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!text.contains("103"), "{text:?}");
    let hints = text.find("\r\n\r\nhints").expect("the early-hints answer");
    let head = text.find("Content-Length: 1000").expect("the HEAD answer");
    let other = text.find("\r\n\r\ndefault").expect("the last answer");
    assert!(hints < head && head < other, "{text:?}");
    assert!(
        text.ends_with("default"),
        "nothing after the last: {text:?}"
    );
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_give_502_or_a_closed_connection() {
    let backend = Scripted::spawn().await;
    let proxy = ProxyProc::start(&config(backend.addr));
    let cl = client();
    let r = get(&cl, &proxy.url("/bad-length"), &[]).await.unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.starts_with("502 Bad Gateway"), "{:?}", r.body);

    // The body broke off before the response was complete: a short answer
    // is held until its body is whole, so the client gets a 502, not a
    // response cut short.
    let text = exchange_to_close(proxy.addr, b"GET /truncated HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 502 "), "{text:?}");
    assert!(!text.contains("only ten b"), "{text:?}");

    // Still serving.
    let r = get(&cl, &proxy.url("/"), &[]).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_arrive_whole_however_they_are_sent() {
    let app = Backend::spawn("app").await;
    // The first backend refuses: every request is retried on `app`, with
    // its body (nothing reached the refused one).
    let refused = common::backend::refused_addr().await;
    let cfg = format!(
        "{}[pools.app]\nbackends = [\"{refused}\", \"{}\"]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        app.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    // Small bodies (read whole by the fast path) and a large one (streamed
    // through Pingora's proxy).
    for size in [1, 10_000, 65_536, 100_000] {
        let body = "x".repeat(size);
        for _ in 0..3 {
            let r = send(&cl, "POST", &proxy.url("/upload"), &[], &body)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{size}: {}", r.body);
            assert_eq!(r.body, format!("app POST {size}\n"));
        }
    }

    // A body sent after a pause, then a pipelined request behind it.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhe")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"lloGET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_until_closed(&mut s).await;
    let put = text.find("app PUT 5\n").expect("the PUT answer");
    let got = text.find("app GET 0\n").expect("the GET answer");
    assert!(put < got, "{text:?}");

    // A client that gives up mid-body: nothing reaches the backend, and the
    // proxy goes on serving.
    let before = app.hits();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    drop(s);
    let r = get(&cl, &proxy.url("/after"), &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(app.hits(), before + 1, "the cut-short POST was not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_ahead_behind_another_request_is_not_held_to_head_limits() {
    // The POST's head arrives behind a GET in one read; its body comes
    // later, slower than `header_timeout` and longer than `max_header_bytes`.
    // Those limits are for heads: the body must go through.
    let app = Backend::spawn("app").await;
    let cfg = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nheader_timeout = \"300ms\"\nmax_header_bytes = 1024\n\
         [pools.app]\nbackends = [\"{}\"]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        app.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut first = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n"
        .to_vec();
    first.extend_from_slice(&[b'x'; 100]);
    s.write_all(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(&[b'y'; 2900]).await.unwrap();
    let text = read_until_closed(&mut s).await;
    assert!(text.contains("app GET 0\n"), "{text:?}");
    assert!(text.contains("app POST 3000\n"), "{text:?}");
    assert!(!text.contains("408") && !text.contains("431"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_chunked_bodies_stream_through_and_the_next_request_waits_its_turn() {
    let app = Backend::spawn("app").await;
    let refused = common::backend::refused_addr().await;
    // A refused backend first: the head is tried again on `app` before any
    // of the body is read, so nothing is lost.
    let cfg = format!(
        "{}[pools.app]\nbackends = [\"{refused}\", \"{}\"]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        app.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let cl = client();
    let body = "y".repeat(1 << 20);
    for _ in 0..3 {
        let r = send(&cl, "POST", &proxy.url("/big"), &[], &body)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, format!("app POST {}\n", 1 << 20));
    }
    // Chunked, in pieces with pauses, a trailer, then a pipelined GET.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"lo\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_until_closed(&mut s).await;
    let post = text
        .find("app POST 11\n")
        .expect("the chunked POST's answer");
    let next = text
        .find("app GET 0\n")
        .expect("the pipelined GET's answer");
    assert!(post < next, "{text:?}");
    // Broken chunk framing: 400 and the connection closed, the proxy serves on.
    let text = exchange_to_close(
        proxy.addr,
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    assert_eq!(
        get(&cl, &proxy.url("/after"), &[]).await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_is_never_sent_twice() {
    // The backend reads the head and some of the body, then resets: the
    // body is gone, so no second backend sees the request.
    let second = Backend::spawn("second").await;
    let dying = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dying_addr = dying.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = dying.accept().await {
            seen2.fetch_add(1, SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let cfg = format!(
        "{}[pools.app]\nbackends = [\"{dying_addr}\", \"{}\"]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config(),
        second.addr
    );
    let proxy = ProxyProc::start(&cfg);
    let body = "z".repeat(4 << 20);
    let mut answered = Vec::new();
    for _ in 0..4 {
        let r = send(&client(), "PUT", &proxy.url("/big"), &[], &body).await;
        answered.push(r.map(|r| r.status).unwrap_or(0));
    }
    // Round robin: two went to the dying backend and failed (502, or the
    // connection closed); none of those reached `second`.
    let ok = answered.iter().filter(|s| **s == 200).count();
    assert_eq!(ok as u64, second.hits(), "{answered:?}");
    assert!(seen.load(SeqCst) >= 1);
    assert!(
        answered.iter().all(|s| [200, 502, 0].contains(s)),
        "{answered:?}"
    );
}
