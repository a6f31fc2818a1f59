//! Edge hardening as properties: request streams built from a corpus of
//! valid heads, bodies and pipelines, then mutated (bytes flipped, cut,
//! inserted, the stream truncated) and sent in arbitrary pieces, through
//! both request paths to a backend that records every request. Whatever
//! the bytes:
//!
//! * every request the backend gets was sent by the client, as one request
//!   (its target and body appear in that client's bytes),
//! * no request is forwarded twice (no target reaches the backend more
//!   often than clients sent it),
//! * no connection outlives its deadline (each is closed by the proxy
//!   within the longest deadline and a margin after the client's last byte),
//! * the process keeps serving.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{default_answer, Recorder};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every deadline in the config (ms): head, body, idle.
const DEADLINE_MS: u64 = 400;

fn config(backend: SocketAddr, fast_path: bool) -> String {
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nconnect_timeout = \"500ms\"\n\
read_timeout = \"3s\"\nheader_timeout = \"{DEADLINE_MS}ms\"\nidle_timeout = \"{DEADLINE_MS}ms\"\n\
body_timeout = \"{DEADLINE_MS}ms\"\nsend_timeout = \"1s\"\nmax_header_bytes = 2048\n\
fast_path = {fast_path}\n[pools.app]\nbackends = [\"{backend}\"]\n\
[[routes]]\nname = \"all\"\nsplit = {{ app = 1 }}\n"
    )
}

/// One request of the corpus, its target made unique by `tag`.
fn request(kind: u8, tag: &str) -> Vec<u8> {
    let body = format!("body-of-{tag}");
    match kind % 6 {
        0 => format!("GET /{tag} HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n").into_bytes(),
        1 => format!(
            "POST /{tag} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        2 => format!(
            "PUT /{tag} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        3 => format!("HEAD /{tag} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
        4 => format!("\r\n\r\nGET /{tag}?q=1 HTTP/1.1\r\nHost: h:80\r\nX-A: 1\r\n\r\n").into_bytes(),
        _ => format!("DELETE /{tag} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").into_bytes(),
    }
}

/// A mutation of a stream.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, u8),
    Truncate(usize),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b','),
        Just(0u8),
        Just(b'0'),
        Just(b'9'),
        Just(b'_'),
        any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// A client's stream: the requests' kinds, the mutations, the cut points.
#[derive(Debug, Clone)]
struct Stream {
    kinds: Vec<u8>,
    mutations: Vec<Mutation>,
    cuts: Vec<usize>,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        proptest::collection::vec(any::<u8>(), 1..4),
        proptest::collection::vec(mutation(), 0..3),
        proptest::collection::vec(any::<usize>(), 0..4),
    )
        .prop_map(|(kinds, mutations, cuts)| Stream {
            kinds,
            mutations,
            cuts,
        })
}

/// The bytes of stream `id` and the pieces it is sent in.
fn build(s: &Stream, id: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut bytes = Vec::new();
    for (i, kind) in s.kinds.iter().enumerate() {
        bytes.extend(request(*kind, &format!("s{id}r{i}")));
    }
    for m in &s.mutations {
        if bytes.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, b) => {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            Mutation::Delete(i, n) => {
                let i = i % bytes.len();
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Insert(i, b) => {
                let i = i % (bytes.len() + 1);
                bytes.insert(i, b);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
        }
    }
    let mut cuts: Vec<usize> = s.cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        if c > at {
            pieces.push(bytes[at..c].to_vec());
            at = c;
        }
    }
    (bytes, pieces)
}

/// Send `pieces` and read until the proxy closes; how long the close took
/// after the last byte (`None`: still open after the bound).
async fn drive(addr: SocketAddr, pieces: Vec<Vec<u8>>) -> Option<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    for p in &pieces {
        if s.write_all(p).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let sent = Instant::now();
    let bound = Duration::from_millis(DEADLINE_MS * 3 + 2000);
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(bound.saturating_sub(sent.elapsed()), s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(sent.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Run one batch of streams side by side and check the invariants.
async fn check_batch(
    proxy: &ProxyProc,
    backend: &Recorder,
    batch: &[Stream],
    base: usize,
) -> Result<(), TestCaseError> {
    let before = backend.received().len();
    let built: Vec<(Vec<u8>, Vec<Vec<u8>>)> = batch
        .iter()
        .enumerate()
        .map(|(i, s)| build(s, base + i))
        .collect();
    let runs = built
        .iter()
        .map(|(_, pieces)| drive(proxy.addr, pieces.clone()));
    let closes = join_all(runs).await;
    for (i, closed) in closes.iter().enumerate() {
        let limit = Duration::from_millis(DEADLINE_MS * 2 + 1500);
        prop_assert!(
            closed.is_some_and(|t| t < limit),
            "stream {i} not closed in time ({closed:?}): {:?}",
            String::from_utf8_lossy(&built[i].0)
        );
    }
    let got = backend.received();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &got[before..] {
        let target = r.target().to_string();
        *seen.entry(target.clone()).or_default() += 1;
        let from_a_client = built.iter().any(|(bytes, _)| {
            contains(bytes, target.as_bytes()) && (r.body.is_empty() || contains(bytes, &r.body))
        });
        prop_assert!(
            from_a_client,
            "the backend got bytes no client sent: {:?} {:?}",
            r.head,
            r.body
        );
    }
    // Forwarded at most as often as clients sent it (a mutation can make
    // two requests of one stream alike, so a target may legitimately come
    // twice; more copies than requests is a request sent twice).
    for (target, n) in seen {
        let line = format!(" {target} HTTP/");
        let sent: usize = built
            .iter()
            .map(|(bytes, _)| {
                bytes
                    .windows(line.len())
                    .filter(|w| *w == line.as_bytes())
                    .count()
            })
            .sum();
        let copies: Vec<String> = got[before..]
            .iter()
            .filter(|r| r.target() == target)
            .map(|r| format!("conn {}: {:?} +{} body bytes", r.conn, r.head, r.body.len()))
            .collect();
        prop_assert!(
            n <= sent.max(1),
            "{target} forwarded {n} times, sent {sent}: {copies:#?}"
        );
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn mutated_and_split_streams_keep_every_invariant_on_both_paths() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for fast_path in [true, false] {
        let backend = rt.block_on(Recorder::spawn(default_answer));
        let proxy = ProxyProc::start(&config(backend.addr, fast_path));
        let mut runner = TestRunner::new(Config {
            cases: 12,
            max_shrink_iters: 64,
            failure_persistence: None,
            ..Config::default()
        });
        // Each batch tags its targets afresh, so a request is told apart
        // from every earlier one (shrinking runs batches again).
        let batches = std::sync::atomic::AtomicUsize::new(0);
        let result = runner.run(&proptest::collection::vec(stream(), 8), |batch| {
            let base = batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * 100;
            rt.block_on(check_batch(&proxy, &backend, &batch, base))
        });
        if let Err(e) = result {
            panic!("fast_path={fast_path}: {e}");
        }
        // Still serving.
        let r = rt
            .block_on(get(&client(), &proxy.url("/"), &[]))
            .expect("a request after the streams");
        assert_eq!(r.status, 200, "fast_path={fast_path}");
    }
}
