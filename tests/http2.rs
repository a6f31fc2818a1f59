//! HTTP/2 clients that misbehave: rapid reset, a CONTINUATION flood, a
//! SETTINGS flood, a stream that never sends its body, an oversized header
//! block. Each one must leave the proxy serving everyone else, with its
//! memory bounded and the backend spared the attack's work.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::h2raw::{self, frame, Seen};
use common::{addrs, base_config, Backend, ProxyProc};
use http_body_util::{BodyExt, Full, StreamBody};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Growth in resident memory an attack may cause, in KiB.
const RSS_GROWTH_LIMIT: u64 = 24 * 1024;

fn config(app: &Backend) -> String {
    let base = base_config().replacen(
        "[proxy]\n",
        "[proxy]\nbody_timeout = \"1s\"\nsend_timeout = \"1s\"\n",
        1,
    );
    format!(
        "{base}[pools.app]\nbackends = [{}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        addrs(&[app])
    )
}

/// One GET over a fresh HTTP/2 connection: its status.
async fn h2_get(proxy: &ProxyProc) -> u16 {
    let mut send = common::h2c(proxy.addr).await;
    let req = http::Request::get(format!("http://{}/ok", proxy.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    resp.status().as_u16()
}

/// After an attack: others are still served, and the proxy's memory grew
/// by less than [`RSS_GROWTH_LIMIT`] since `before`.
async fn still_serving_within_memory(proxy: &ProxyProc, before: u64) {
    assert_eq!(h2_get(proxy).await, 200, "others are still served");
    let after = h2raw::rss_kib(proxy.child.id());
    eprintln!("RSS {before} -> {after} KiB");
    assert!(
        after < before + RSS_GROWTH_LIMIT,
        "RSS {before} -> {after} KiB"
    );
}

/// Write `bytes` to `s`, giving up quietly once the server stops taking
/// them (it closed the connection, or stopped reading for `stall`).
async fn write_until_refused(s: &mut tokio::net::TcpStream, bytes: &[u8], stall: Duration) -> bool {
    for piece in bytes.chunks(64 * 1024) {
        match tokio::time::timeout(stall, s.write_all(piece)).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_and_spares_the_backend() {
    let app = Backend::spawn("app").await;
    app.behaviour.delay_ms.store(200, Relaxed);
    let proxy = ProxyProc::start(&config(&app));
    assert_eq!(h2_get(&proxy).await, 200);
    let before = h2raw::rss_kib(proxy.child.id());

    let streams = 5000u32;
    let mut burst = Vec::new();
    let block = h2raw::request_block("h2.test", false);
    for i in 0..streams {
        let id = 1 + 2 * i;
        frame(
            &mut burst,
            h2raw::HEADERS,
            h2raw::END_STREAM | h2raw::END_HEADERS,
            id,
            &block,
        );
        // RST_STREAM(CANCEL) right behind it.
        frame(&mut burst, h2raw::RST_STREAM, 0, id, &8u32.to_be_bytes());
    }
    let mut attacker = h2raw::connect(proxy.addr).await;
    write_until_refused(&mut attacker, &burst, Duration::from_secs(5)).await;
    let seen: Seen = h2raw::watch(&mut attacker, Duration::from_secs(10)).await;
    assert!(
        seen.goaway.is_some() || seen.closed,
        "the connection is cut off: {seen:?}"
    );

    // The backend saw a sliver of the attack, not one request per stream.
    let reached = app.behaviour.arrived.load(Relaxed);
    eprintln!("rapid reset: {seen:?}; {reached} of {streams} streams reached the backend");
    assert!(
        reached < u64::from(streams) / 10,
        "{reached} requests reached the backend"
    );
    still_serving_within_memory(&proxy, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off() {
    let app = Backend::spawn("app").await;
    let proxy = ProxyProc::start(&config(&app));
    assert_eq!(h2_get(&proxy).await, 200);
    let before = h2raw::rss_kib(proxy.child.id());

    let mut flood = Vec::new();
    frame(
        &mut flood,
        h2raw::HEADERS,
        0,
        1,
        &h2raw::request_block("h2.test", false),
    );
    // Literal headers with new names, never indexed, 100 bytes a frame.
    let mut field = vec![0x00, 10];
    field.extend_from_slice(b"x-flooding");
    field.push(86);
    field.extend_from_slice(&[b'a'; 86]);
    for _ in 0..20_000 {
        frame(&mut flood, h2raw::CONTINUATION, 0, 1, &field);
    }
    let mut attacker = h2raw::connect(proxy.addr).await;
    write_until_refused(&mut attacker, &flood, Duration::from_secs(5)).await;
    let seen = h2raw::watch(&mut attacker, Duration::from_secs(10)).await;
    assert!(seen.goaway.is_some() || seen.closed, "{seen:?}");
    assert_eq!(seen.responses, 0, "no request came of it");
    assert_eq!(
        app.behaviour.arrived.load(Relaxed),
        1,
        "only the probe reached the backend"
    );
    still_serving_within_memory(&proxy, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_from_a_client_that_never_reads_is_closed() {
    let app = Backend::spawn("app").await;
    let proxy = ProxyProc::start(&config(&app));
    assert_eq!(h2_get(&proxy).await, 200);
    let before = h2raw::rss_kib(proxy.child.id());

    // A million SETTINGS frames, each owed an ACK; the client reads none.
    let mut flood = Vec::new();
    for _ in 0..1_000_000 {
        frame(&mut flood, h2raw::SETTINGS, 0, 0, &[]);
    }
    let mut attacker = h2raw::connect(proxy.addr).await;
    let all_taken = write_until_refused(&mut attacker, &flood, Duration::from_secs(3)).await;
    assert!(!all_taken, "the proxy stops reading while its ACKs pile up");
    assert_eq!(h2_get(&proxy).await, 200, "others are served meanwhile");
    let during = h2raw::rss_kib(proxy.child.id());
    assert!(
        during < before + RSS_GROWTH_LIMIT,
        "RSS {before} -> {during} KiB"
    );

    // Its writes stalled past send_timeout: the proxy closed it. What is
    // read now is what was queued before that, then the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = h2raw::watch(&mut attacker, Duration::from_secs(10)).await;
    assert!(seen.closed, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_sends_its_body_gets_408_and_the_connection_lives_on() {
    let app = Backend::spawn("app").await;
    let proxy = ProxyProc::start(&config(&app));
    let mut send = common::h2c(proxy.addr).await;

    // A body that sends a little, then nothing, and never ends.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"part"))))
        .await
        .unwrap();
    let body = StreamBody::new(tokio_stream_of(rx));
    let req = http::Request::post(format!("http://{}/upload", proxy.addr))
        .body(body.boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("answered within the body deadline")
        .unwrap();
    assert_eq!(resp.status(), 408);
    drop(tx);
    if common::fast_path_line().is_empty() {
        // cutover's path keeps a body up to retry_buffer before the first
        // attempt; Pingora's streams it, so there the backend sees a
        // cut-short request.
        assert_eq!(
            app.behaviour.arrived.load(Relaxed),
            0,
            "nothing reached the backend"
        );
    }

    // The same connection serves the next request.
    let req = http::Request::get(format!("http://{}/ok", proxy.addr))
        .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_block_never_reaches_the_backend() {
    let app = Backend::spawn("app").await;
    let proxy = ProxyProc::start(&config(&app));
    let mut send = common::h2c(proxy.addr).await;
    let req = http::Request::get(format!("http://{}/big", proxy.addr))
        .header("x-big", "b".repeat(200 * 1024))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send.send_request(req).await;
    if let Ok(resp) = answer {
        assert_eq!(resp.status(), 431, "refused if answered at all");
    }
    assert_eq!(app.behaviour.arrived.load(Relaxed), 0);
    assert_eq!(h2_get(&proxy).await, 200);
}

/// A stream of frames from a channel (what `StreamBody` takes).
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gets_goaway_at_idle_timeout_and_is_closed() {
    let app = Backend::spawn("app").await;
    let cfg = config(&app).replacen("[proxy]\n", "[proxy]\nidle_timeout = \"1s\"\n", 1);
    let proxy = ProxyProc::start(&cfg);
    let mut client = h2raw::connect(proxy.addr).await;
    let mut request = Vec::new();
    frame(
        &mut request,
        h2raw::HEADERS,
        h2raw::END_STREAM | h2raw::END_HEADERS,
        1,
        &h2raw::request_block("h2.test", false),
    );
    client.write_all(&request).await.unwrap();
    // The answer, then GOAWAY (no error) once idle, then the close.
    let seen = h2raw::watch(&mut client, Duration::from_secs(10)).await;
    assert_eq!(seen.responses, 1, "{seen:?}");
    if common::fast_path_line().is_empty() {
        // Pingora's path closes without a GOAWAY.
        assert_eq!(seen.goaway, Some(0), "{seen:?}");
    }
    assert!(seen.closed, "{seen:?}");
    assert_eq!(app.behaviour.arrived.load(Relaxed), 1);
}
