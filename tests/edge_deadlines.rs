//! Edge hardening, deadlines and the retry rule, through both request
//! paths: a stalled body gets 408 at `body_timeout`, a client that stops
//! reading lets go of its backend at `send_timeout`, an HTTP/2 connection
//! that only sent its preface is closed at `idle_timeout`, and a POST that
//! reached a backend is never sent to a second one.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{default_answer, send_raw, Answer, Recorder};
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn config(backends: &[SocketAddr], fast_path: bool) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nconnect_timeout = \"500ms\"\n\
read_timeout = \"3s\"\nheader_timeout = \"1s\"\nidle_timeout = \"2s\"\nbody_timeout = \"1s\"\n\
send_timeout = \"1s\"\nfast_path = {fast_path}\n\
[pools.app]\nbackends = [{}]\noutlier = false\n[[routes]]\nname = \"all\"\nsplit = {{ app = 1 }}\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_body_gets_408_at_body_timeout() {
    let backend = Recorder::spawn(default_answer).await;
    for fast_path in [true, false] {
        let proxy = ProxyProc::start(&config(&[backend.addr], fast_path));
        let r = send_raw(
            proxy.addr,
            &[b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"],
            Duration::ZERO,
            Duration::from_secs(8),
        )
        .await;
        assert_eq!(r.statuses(), [408], "fast_path={fast_path}: {:?}", r.text());
        let closed = r.closed_after.expect("closed");
        assert!(
            closed < Duration::from_secs(4),
            "fast_path={fast_path}: {closed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_lets_go_of_the_backend_at_send_timeout() {
    for fast_path in [true, false] {
        let backend = Recorder::spawn(default_answer).await;
        let proxy = ProxyProc::start(&config(&[backend.addr], fast_path));
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = sock.connect(proxy.addr).await.expect("connect");
        s.write_all(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .expect("send");
        let start = Instant::now();
        // Never read. The backend's 64 MiB (more than every socket buffer
        // on the way holds) fails to go out once the proxy gives up.
        let released = eventually(Duration::from_secs(10), || async {
            backend.released.lock().expect("lock").is_some()
        })
        .await;
        assert!(released, "fast_path={fast_path}: the backend is still held");
        let at = backend.released.lock().expect("lock").expect("set");
        assert!(
            at.duration_since(start) < Duration::from_secs(6),
            "fast_path={fast_path}: released after {:?}",
            at.duration_since(start)
        );
        drop(s);
        let r = get(&client(), &proxy.url("/"), &[])
            .await
            .expect("still serving");
        assert_eq!(r.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_h2c_connection_that_only_sent_its_preface_is_closed_at_idle_timeout() {
    let backend = Recorder::spawn(default_answer).await;
    let proxy = ProxyProc::start(&config(&[backend.addr], true));
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let r = send_raw(
        proxy.addr,
        &[preface],
        Duration::ZERO,
        Duration::from_secs(8),
    )
    .await;
    let closed = r.closed_after.expect("closed");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
}

fn resets(path: &str) -> Answer {
    match path {
        "/once" => Answer::Reset,
        other => default_answer(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_that_reached_a_backend_is_never_sent_to_another() {
    for fast_path in [true, false] {
        // Both backends reset a request for `/once` as soon as its head is
        // in: whichever gets it first, a retry would show in the other.
        let a = Recorder::spawn(resets).await;
        let b = Recorder::spawn(resets).await;
        let proxy = ProxyProc::start(&config(&[a.addr, b.addr], fast_path));
        let body = vec![b'p'; 60_000];
        let head = format!(
            "POST /once HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let r = send_raw(
            proxy.addr,
            &[head.as_bytes(), &body],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.statuses(), [502], "fast_path={fast_path}: {:?}", r.text());
        let seen = a.received().len() + b.received().len();
        assert_eq!(
            seen, 1,
            "fast_path={fast_path}: the POST reached {seen} backends"
        );

        // A GET is retried on the other backend.
        let r = send_raw(
            proxy.addr,
            &[b"GET /once HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.statuses(), [502], "fast_path={fast_path}");
        let seen = a.received().len() + b.received().len();
        assert_eq!(seen, 3, "fast_path={fast_path}: the GET was not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_waiting_for_a_stalled_body_is_not_blamed() {
    let backend = Recorder::spawn(default_answer).await;
    // The backend's deadline passes before the body's: Pingora's path
    // (which streams bodies over 64 KiB) sees the backend time out.
    let cfg = config(&[backend.addr], true)
        .replace("read_timeout = \"3s\"", "read_timeout = \"1s\"")
        .replace("body_timeout = \"1s\"", "body_timeout = \"3s\"");
    let proxy = ProxyProc::start(&cfg);
    let r = send_raw(
        proxy.addr,
        &[b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n0123456789"],
        Duration::ZERO,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(r.statuses(), [408], "{:?}", r.text());
    let metrics = proxy.metrics().await;
    assert!(
        !metrics
            .lines()
            .filter(|l| l.starts_with("cutover_upstream_failures_total"))
            .any(|l| !l.ends_with(" 0")),
        "the backend was blamed:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_within_retry_buffer_is_sent_again_after_a_reset() {
    // `a` resets `/once` as soon as its head is in; `b` answers it.
    let a = Recorder::spawn(resets).await;
    let b = Recorder::spawn(default_answer).await;
    let cfg = config(&[a.addr, b.addr], true).replace(
        "fast_path = true",
        "fast_path = true\nretry_buffer = 200000",
    );
    let proxy = ProxyProc::start(&cfg);
    let body = vec![b'u'; 100_000];
    let head = format!(
        "PUT /once HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Round robin over two backends: one of two requests meets `a` first.
    for _ in 0..2 {
        let r = send_raw(
            proxy.addr,
            &[head.as_bytes(), &body],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.statuses(), [200], "{:?}", r.text());
    }
    assert!(
        !a.received().is_empty(),
        "no request met the resetting backend"
    );
    assert!(b.received().iter().all(|r| r.body.len() == 100_000));
}
