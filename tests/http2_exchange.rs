//! What an HTTP/2 client's request and answer go through on the way to an
//! HTTP/1 backend and back: request bodies of every size (kept whole for a
//! retry up to `retry_buffer`, streamed beyond, with or without a declared
//! length), answers framed every HTTP/1 way (length, chunked, until close,
//! none for `HEAD`; a chunked body's trailers as HTTP/2 trailers)
//! delivered within a small flow-control window.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{addrs, Backend, ProxyProc};
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::io::AsyncWriteExt;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An HTTP/2 connection to the proxy with a 16 KiB stream window.
async fn connect(proxy: &ProxyProc) -> hyper::client::conn::http2::SendRequest<Body> {
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(16 * 1024)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

fn full(data: Vec<u8>) -> Body {
    Full::new(Bytes::from(data)).map_err(|e| match e {}).boxed()
}

/// A body sent in `pieces` of `size` bytes with no declared length.
fn streamed(pieces: usize, size: usize) -> Body {
    let frames =
        (0..pieces).map(move |_| Ok(hyper::body::Frame::data(Bytes::from(vec![b'x'; size]))));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

async fn send(
    h2: &mut hyper::client::conn::http2::SendRequest<Body>,
    method: &str,
    path: &str,
    body: Body,
    length: Option<usize>,
) -> (u16, http::HeaderMap, Vec<u8>, Option<http::HeaderMap>) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://h2.test{path}"));
    if let Some(n) = length {
        req = req.header("content-length", n);
    }
    let resp = h2.send_request(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes().to_vec();
    (status, headers, data, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_of_every_size_reach_the_backend_whole() {
    let app = Backend::spawn("app").await;
    let cfg = common::one_route(&addrs(&[&app]));
    let proxy = ProxyProc::start(&cfg);
    let mut h2 = connect(&proxy).await;
    for size in [0usize, 10, 64 * 1024, 200 * 1024, 1024 * 1024] {
        let (status, _, body, _) =
            send(&mut h2, "POST", "/up", full(vec![b'a'; size]), Some(size)).await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("app POST {size}\n")
        );
    }
    // No declared length: whole when it fits in retry_buffer, else
    // chunked to the backend as it comes.
    for (pieces, size) in [(3usize, 1000usize), (40, 16 * 1024)] {
        let (status, _, body, _) = send(&mut h2, "PUT", "/up", streamed(pieces, size), None).await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("app PUT {}\n", pieces * size)
        );
    }
    let (status, _, body, _) = send(&mut h2, "GET", "/none", full(vec![]), None).await;
    assert_eq!((status, body), (200, b"app GET 0\n".to_vec()));
}

/// A backend answering `/length`, `/chunked`, `/close` with 1 MiB of a
/// known pattern framed that way, and `HEAD /length` with headers only.
async fn framing_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let Some(text) = common::raw::read_head(&mut s).await else {
                        return;
                    };
                    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
                    if text.starts_with("HEAD /length") {
                        let out =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        s.write_all(out.as_bytes()).await.unwrap();
                    } else if text.starts_with("GET /length") {
                        let out =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        s.write_all(out.as_bytes()).await.unwrap();
                        s.write_all(&body).await.unwrap();
                    } else if text.starts_with("GET /chunked") {
                        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                            .await
                            .unwrap();
                        for piece in body.chunks(10_000) {
                            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                                .await
                                .unwrap();
                            s.write_all(piece).await.unwrap();
                            s.write_all(b"\r\n").await.unwrap();
                        }
                        s.write_all(b"0\r\nx-checksum: 251\r\n\r\n").await.unwrap();
                    } else {
                        s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                            .await
                            .unwrap();
                        s.write_all(&body).await.unwrap();
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_framed_every_http1_way_arrive_whole_within_a_small_window() {
    let backend = framing_backend().await;
    let cfg = common::one_route(&format!("\"{backend}\""));
    let proxy = ProxyProc::start(&cfg);
    let expected: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut h2 = connect(&proxy).await;
    for path in ["/length", "/chunked", "/close", "/length"] {
        let (status, headers, body, trailers) =
            send(&mut h2, "GET", path, full(vec![]), None).await;
        assert_eq!(status, 200, "{path}");
        assert!(headers.get("transfer-encoding").is_none(), "{path}");
        assert!(headers.get("connection").is_none(), "{path}");
        assert_eq!(body.len(), expected.len(), "{path}");
        assert!(body == expected, "{path}: the bytes differ");
        if path == "/chunked" && common::fast_path_line().is_empty() {
            // The chunked body's trailer section arrives as HTTP/2
            // trailers (Pingora's path drops it).
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["x-checksum"], "251");
        }
    }
    let (status, headers, body, _) = send(&mut h2, "HEAD", "/length", full(vec![]), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "1048576");
    assert!(body.is_empty());
}

/// A backend that answers a chunked request with what followed its last
/// chunk: the trailer section it received.
async fn trailer_echo_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let Some(head) = common::raw::read_head(&mut s).await else {
                    return;
                };
                assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
                let mut seen = Vec::new();
                let mut chunk = [0u8; 16384];
                // Until the last chunk's section is complete.
                let section = loop {
                    let at = seen.windows(5).position(|w| w == b"\r\n0\r\n");
                    let at = at.or_else(|| seen.starts_with(b"0\r\n").then_some(usize::MAX));
                    if let Some(at) = at {
                        let from = if at == usize::MAX { 3 } else { at + 5 };
                        let rest = &seen[from..];
                        if rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n") {
                            break String::from_utf8_lossy(rest).into_owned();
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&chunk[..n]),
                    }
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{section}",
                    section.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// A body of `size` bytes followed by trailer `x-sum: ok`.
fn with_trailers(size: usize) -> Body {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", "ok".parse().unwrap());
    // A field about framing, which must not reach the backend.
    trailers.insert("content-length", "99".parse().unwrap());
    let frames = vec![
        Ok(hyper::body::Frame::data(Bytes::from(vec![b'z'; size]))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_trailers_reach_an_http1_backend_in_the_last_chunk() {
    if !common::fast_path_line().is_empty() {
        // Pingora's path does not forward them.
        return;
    }
    let backend = trailer_echo_backend().await;
    let cfg = common::one_route(&format!("\"{backend}\""));
    let proxy = ProxyProc::start(&cfg);
    let mut h2 = connect(&proxy).await;
    // Kept whole (then sent chunked), and streamed past retry_buffer.
    for size in [5usize, 200 * 1024] {
        let (status, _, body, _) = send(&mut h2, "POST", "/t", with_trailers(size), None).await;
        assert_eq!(status, 200, "{size}");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "x-sum: ok\r\n\r\n",
            "{size}"
        );
    }
}

/// `Expect: 100-continue` over HTTP/2: on cutover's path the go-ahead (a
/// 100 informational answer) comes before the client sends its body; on
/// Pingora's (which cannot send 1xx over HTTP/2) the client sends it after
/// its own wait. Either way the body reaches the backend, without the
/// `Expect`.
#[tokio::test]
async fn expect_100_continue_gets_its_go_ahead() {
    let b = Backend::spawn("a").await;
    let proxy = ProxyProc::start(&common::one_route(&addrs(&[&b])));
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("http://{}/upload", proxy.addr))
        .header("expect", "100-continue")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let (mut answer, mut send) = client.send_request(req, false).unwrap();
    // Wait as curl does (1 s) for the go-ahead, then send the body anyway.
    let go = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        std::future::poll_fn(|cx| answer.poll_informational(cx)),
    )
    .await;
    if common::fast_path_line().is_empty() {
        let go = go
            .expect("a 100 before the body")
            .expect("an informational answer")
            .unwrap();
        assert_eq!(go.status(), 100);
    }
    send.send_data(Bytes::from_static(b"hello"), true).unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(b.hits(), 1);
    let seen = b.last_headers.lock().unwrap().clone().unwrap();
    assert!(
        seen.get("expect").is_none(),
        "the go-ahead was ours to give: {seen:?}"
    );
}
