//! Edge hardening, request side: the exact bytes a hostile or broken
//! client sends, through both request paths (cutover's own HTTP/1 path and
//! Pingora's, `fast_path = false`) from one table of cases. Each case says
//! what the client must get back, how many requests reach the backend and
//! what they look like, and that no deadline can be switched off from
//! outside.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{default_answer, send_raw, RawReply, Received, Recorder};
use common::*;
use std::time::Duration;

/// The edge limits under test (short, so deadlines show within a test).
fn config(backend: std::net::SocketAddr, fast_path: bool, extra: &str) -> String {
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nconnect_timeout = \"500ms\"\n\
read_timeout = \"3s\"\nheader_timeout = \"1s\"\nidle_timeout = \"2s\"\nbody_timeout = \"1s\"\n\
send_timeout = \"1s\"\nmax_header_bytes = 8192\nfast_path = {fast_path}\n{extra}\n\
[pools.app]\nbackends = [\"{backend}\"]\n[[routes]]\nname = \"all\"\nsplit = {{ app = 1 }}\n"
    )
}

/// The two request paths.
const PATHS: [bool; 2] = [true, false];

/// One case: bytes in, what must come out.
struct Case {
    name: &'static str,
    pieces: Vec<Vec<u8>>,
    /// Pause between pieces, in ms.
    pause: u64,
    /// Statuses the client gets, in order.
    statuses: &'static [u16],
    /// Requests the backend receives.
    reach: usize,
    /// More checks on what the backend received.
    check: fn(&[Received]) -> Result<(), String>,
}

fn none(_: &[Received]) -> Result<(), String> {
    Ok(())
}

fn one(bytes: &[u8]) -> Vec<Vec<u8>> {
    vec![bytes.to_vec()]
}

fn cases() -> Vec<Case> {
    let big_head = [
        &b"\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nX-Big: "[..],
        &vec![b'a'; 100_000],
        b"\r\n\r\n",
    ]
    .concat();
    let post_65537 = [
        &b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n"[..],
        &vec![b'b'; 65537],
        b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    let big_second = [
        &b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nX-Big: "[..],
        &vec![b'c'; 11_600],
        b"\r\n\r\n",
    ]
    .concat();
    let mut trickle = vec![b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n".to_vec()];
    trickle.extend((0..8).map(|i| format!("X-{i}: 1\r\n").into_bytes()));
    let close = b"Connection: close\r\n\r\n";
    let with_close = |start: &[u8]| one(&[start, close].concat());
    vec![
        Case {
            name: "two empty lines, then silence",
            pieces: one(b"\r\n\r\n"),
            pause: 0,
            statuses: &[408],
            reach: 0,
            check: none,
        },
        Case {
            name: "empty lines, then a head one line every 300 ms",
            pieces: trickle,
            pause: 300,
            statuses: &[408],
            reach: 0,
            check: none,
        },
        Case {
            name: "empty lines, then a 100 kB head",
            pieces: one(&big_head),
            pause: 0,
            statuses: &[431],
            reach: 0,
            check: none,
        },
        Case {
            name: "the start of an h2c preface, then silence",
            pieces: one(b"PRI * HTTP/2.0"),
            pause: 0,
            statuses: &[408],
            reach: 0,
            check: none,
        },
        Case {
            name: "HTTP/1.1 without Host",
            pieces: one(b"GET / HTTP/1.1\r\n\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Host with userinfo",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: x@h\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Host with a space",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: h evil\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Host with a slash",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: h/evil\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Host as a list",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: h, evil\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "empty Host",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost:\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "a header name with underscores is dropped",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\n"),
            pause: 0,
            statuses: &[200],
            reach: 1,
            check: |r| {
                let head = &r[0].head;
                if head.contains("6.6.6.6") || head.contains("X_Forwarded") {
                    return Err(format!("forwarded: {head:?}"));
                }
                match r[0].header("x-forwarded-for") {
                    Some("127.0.0.1") => Ok(()),
                    other => Err(format!("X-Forwarded-For: {other:?}")),
                }
            },
        },
        Case {
            name: "CONNECT",
            pieces: with_close(b"CONNECT / HTTP/1.1\r\nHost: h\r\n"),
            pause: 0,
            statuses: &[405],
            reach: 0,
            check: none,
        },
        Case {
            name: "Upgrade that Connection does not name opens no tunnel",
            pieces: with_close(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"),
            pause: 0,
            statuses: &[200],
            reach: 1,
            check: |r| match (r[0].header("upgrade"), r[0].header("connection")) {
                (None, None) => Ok(()),
                other => Err(format!("upgrade headers reached the backend: {other:?}")),
            },
        },
        Case {
            name: "Content-Length as a list",
            pieces: one(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\nhello"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "two equal Content-Length lines",
            pieces: one(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Content-Length with a sign",
            pieces: one(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "Content-Length beside Transfer-Encoding",
            pieces: one(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            pause: 0,
            statuses: &[400],
            reach: 0,
            check: none,
        },
        Case {
            name: "a transfer coding other than chunked",
            pieces: one(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            pause: 0,
            statuses: &[501],
            reach: 0,
            check: none,
        },
        Case {
            name: "an absolute-form target goes on in origin form",
            pieces: with_close(b"GET http://h.example/x?y=1 HTTP/1.1\r\nHost: other\r\n"),
            pause: 0,
            statuses: &[200],
            reach: 1,
            check: |r| match (r[0].target(), r[0].header("host")) {
                ("/x?y=1", Some("h.example")) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        },
        Case {
            name: "a 65537-byte POST and a pipelined GET in one send",
            pieces: one(&post_65537),
            pause: 0,
            statuses: &[200, 200],
            reach: 2,
            check: |r| match (r[0].body.len(), r[1].target()) {
                (65537, "/after") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        },
        Case {
            name: "a chunked POST and a pipelined GET in one send",
            pieces: one(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            pause: 0,
            statuses: &[200, 200],
            reach: 2,
            check: |r| match (r[0].body.as_slice(), r[1].target()) {
                (b"abc", "/after") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        },
        Case {
            name: "a second head read ahead counts against max_header_bytes",
            pieces: one(&big_second),
            pause: 0,
            statuses: &[200, 431],
            reach: 1,
            check: none,
        },
    ]
}

/// Run `case` against `proxy`; what went wrong, if anything.
async fn run(case: &Case, proxy: &ProxyProc, backend: &Recorder) -> Result<(), String> {
    let before = backend.received().len();
    let pieces: Vec<&[u8]> = case.pieces.iter().map(Vec::as_slice).collect();
    let reply: RawReply = send_raw(
        proxy.addr,
        &pieces,
        Duration::from_millis(case.pause),
        Duration::from_secs(6),
    )
    .await;
    let statuses = reply.statuses();
    if statuses != case.statuses {
        return Err(format!("statuses {statuses:?}: {:?}", reply.text()));
    }
    // Every case ends with the connection closed by the proxy, well
    // within the longest deadline (2 s) and a margin.
    match reply.closed_after {
        Some(t) if t < Duration::from_millis(3500) => {}
        other => return Err(format!("not closed in time: {other:?}")),
    }
    let got = backend.received();
    let got = &got[before..];
    if got.len() != case.reach {
        let heads: Vec<(&str, usize)> = got
            .iter()
            .map(|r| (r.head.as_str(), r.body.len()))
            .collect();
        return Err(format!(
            "backend received {} requests: {heads:?}",
            got.len()
        ));
    }
    (case.check)(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_case_holds_on_both_request_paths() {
    let backend = Recorder::spawn(default_answer).await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for fast_path in PATHS {
        let proxy = ProxyProc::start(&config(backend.addr, fast_path, ""));
        // One after another: each case's requests are told apart in the
        // backend's log by order.
        for case in cases() {
            ran += 1;
            if let Err(e) = run(&case, &proxy, &backend).await {
                failures.push(format!("[fast_path={fast_path}] {}: {e}", case.name));
            }
        }
        // Still serving.
        let r = get(&client(), &proxy.url("/"), &[])
            .await
            .expect("a request after the cases");
        assert_eq!(r.status, 200);
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn underscores_pass_when_allowed() {
    let backend = Recorder::spawn(default_answer).await;
    for fast_path in PATHS {
        let proxy = ProxyProc::start(&config(
            backend.addr,
            fast_path,
            "underscores_in_headers = true",
        ));
        let reply = send_raw(
            proxy.addr,
            &[b"GET / HTTP/1.1\r\nHost: h\r\nX_Tenant: 7\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(reply.statuses(), [200], "fast_path={fast_path}");
        let last = backend.received().pop().expect("a request");
        assert_eq!(last.header("x_tenant"), Some("7"), "fast_path={fast_path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_head_split_anywhere_keeps_the_request_pipelined_behind_it() {
    let backend = Recorder::spawn(default_answer).await;
    let first = b"GET /one HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
    let second = b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let mut failures = Vec::new();
    for fast_path in PATHS {
        let proxy = ProxyProc::start(&config(backend.addr, fast_path, ""));
        let splits: Vec<usize> = (1..first.len()).collect();
        let runs = splits.iter().map(|&cut| {
            let a = first[..cut].to_vec();
            let b = [&first[cut..], &second[..]].concat();
            let addr = proxy.addr;
            async move {
                let r = send_raw(
                    addr,
                    &[&a, &b],
                    Duration::from_millis(20),
                    Duration::from_secs(5),
                )
                .await;
                (cut, r.statuses())
            }
        });
        for (cut, statuses) in join_all(runs).await {
            if statuses != [200, 200] {
                failures.push(format!("fast_path={fast_path} cut at {cut}: {statuses:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
