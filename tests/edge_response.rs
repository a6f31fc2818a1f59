//! Edge hardening, response side: what a broken backend sends, through both
//! request paths from one table. A response whose framing could be read
//! two ways is refused (502) or re-framed, never relayed as it came; a 204
//! never makes a client wait for a body.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{default_answer, send_raw, Answer, Recorder};
use common::*;
use std::time::Duration;

fn script(path: &str) -> Answer {
    let bytes: &'static [u8] = match path {
        "/cl-plus" => b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        "/cl-list" => b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        "/cl-twice" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "/status-000" => b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
        "/http10-chunked" => {
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        }
        "/204-chunked" => b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "/bare-lf" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        "/nul-ext" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\nhello\r\n0\r\n\r\n"
        }
        "/bad-trailer" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon here\r\n\r\n"
        }
        "/size-space" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"
        }
        other => return default_answer(other),
    };
    // Closed after each: a connection out of step is never reused.
    Answer::Bytes(bytes, true)
}

/// Send one GET for `path` (closing) and return the reply's text.
async fn fetch(proxy: &ProxyProc, path: &str) -> String {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let r = send_raw(
        proxy.addr,
        &[raw.as_bytes()],
        Duration::ZERO,
        Duration::from_secs(5),
    )
    .await;
    assert!(r.closed_after.is_some(), "{path}: not closed");
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn framing_that_reads_two_ways_never_reaches_the_client() {
    let backend = Recorder::spawn(script).await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for fast_path in [true, false] {
        let proxy = ProxyProc::start(&proxy_config(backend.addr, fast_path));
        for path in [
            "/cl-plus",
            "/cl-list",
            "/cl-twice",
            "/status-000",
            "/http10-chunked",
        ] {
            ran += 1;
            let text = fetch(&proxy, path).await;
            if !text.starts_with("HTTP/1.1 502 ") {
                failures.push(format!("fast_path={fast_path} {path}: {text:?}"));
            }
        }
        // Malformed chunks: refused, or re-framed; the bad bytes never pass.
        for (path, bad) in [
            ("/bare-lf", &b"5\nhello"[..]),
            ("/nul-ext", b"\x00"),
            ("/bad-trailer", b"no colon here"),
            ("/size-space", b"5 \r\n"),
        ] {
            ran += 1;
            let text = fetch(&proxy, path).await;
            let relayed = text.as_bytes().windows(bad.len()).any(|w| w == bad);
            let reframed = text.contains("\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
            if relayed
                || !(text.starts_with("HTTP/1.1 502 ") || reframed || !text.contains("hello"))
            {
                failures.push(format!("fast_path={fast_path} {path}: {text:?}"));
            }
        }
        // A 204 loses its transfer coding; the next answer follows its head.
        ran += 1;
        let r = send_raw(
            proxy.addr,
            &[b"GET /204-chunked HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await;
        let text = r.text();
        let head_end = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
        if r.statuses() != [204, 200]
            || text[..head_end]
                .to_ascii_lowercase()
                .contains("transfer-encoding")
            || !text[head_end..].starts_with("HTTP/1.1 200")
        {
            failures.push(format!("fast_path={fast_path} 204: {text:?}"));
        }
        // Still serving.
        let r = get(&client(), &proxy.url("/"), &[])
            .await
            .expect("still serving");
        assert_eq!(r.status, 200);
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn proxy_config(backend: std::net::SocketAddr, fast_path: bool) -> String {
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nread_timeout = \"3s\"\nfast_path = {fast_path}\n\
[pools.app]\nbackends = [\"{backend}\"]\n[[routes]]\nname = \"all\"\nsplit = {{ app = 1 }}\n"
    )
}

fn closes_quietly(path: &str) -> Answer {
    match path {
        // Closes every connection after answering, without saying so: what
        // a backend whose keep-alive timeout just expired looks like.
        "/quiet-close" => Answer::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        other => default_answer(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pooled_connection_found_closed_costs_no_request_and_no_blame() {
    let backend = Recorder::spawn(closes_quietly).await;
    for fast_path in [true, false] {
        let proxy = ProxyProc::start(&proxy_config(backend.addr, fast_path));
        let cl = client();
        for i in 0..40 {
            let r = get(&cl, &proxy.url("/quiet-close"), &[])
                .await
                .expect("answer");
            assert_eq!(r.status, 200, "fast_path={fast_path} request {i}");
        }
        let metrics = proxy.metrics().await;
        let blamed: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("cutover_upstream_failures_total") && !l.ends_with(" 0"))
            .collect();
        assert!(blamed.is_empty(), "fast_path={fast_path}: {blamed:?}");
    }
}
