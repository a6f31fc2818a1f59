//! The guard over a real socket pair, without a proxy: what it hands out
//! for each request, and what it keeps for the next.

use super::*;
use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn limits() -> Limits {
    Limits {
        idle: Duration::from_secs(2),
        header: Duration::from_millis(300),
        max_bytes: 1024,
        send: Duration::from_secs(1),
        rules: Rules::default(),
    }
}

/// A guarded server side and the raw client side of one connection.
async fn pair() -> (GuardedStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(L4Stream::from(server));
    let guarded = GuardedStream::new(stream, limits(), &Arc::new(Lifecycle::default()));
    (guarded, client)
}

/// Everything the guard hands out now, until it holds (a short wait).
async fn drain(g: &mut GuardedStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_millis(100), g.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
}

#[tokio::test]
async fn each_request_is_handed_out_exactly_and_the_next_waits_its_turn() {
    let (mut g, mut c) = pair().await;
    let post = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    let chunked =
        b"PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let get = b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
    c.write_all(&[&post[..], chunked, get].concat())
        .await
        .unwrap();
    for expected in [&post[..], chunked, get] {
        assert_eq!(g.next_request().await, Next::Request);
        g.hand_over();
        assert_eq!(drain(&mut g).await, expected);
    }
    // Nothing more: the next wait ends at the idle deadline or the close.
    drop(c);
    assert_eq!(g.next_request().await, Next::Closed);
}

#[tokio::test]
async fn leading_empty_lines_count_against_the_head_deadline() {
    let (mut g, mut c) = pair().await;
    c.write_all(b"\r\n\r\n").await.unwrap();
    let started = Instant::now();
    assert_eq!(g.next_request().await, Next::Refused(408));
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(g); // the edge closes a refused connection
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 408 "));
}

#[tokio::test]
async fn a_pipelined_head_over_the_limit_is_refused_in_its_turn() {
    let (mut g, mut c) = pair().await;
    let first = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let second = [
        &b"GET /b HTTP/1.1\r\nHost: h\r\nX-Big: "[..],
        &[b'x'; 2000],
        b"\r\n\r\n",
    ]
    .concat();
    c.write_all(&[first.clone(), second].concat())
        .await
        .unwrap();
    assert_eq!(g.next_request().await, Next::Request);
    g.hand_over();
    assert_eq!(drain(&mut g).await, first);
    assert_eq!(g.next_request().await, Next::Refused(431));
}

#[tokio::test]
async fn a_malformed_chunked_body_fails_the_read() {
    let (mut g, mut c) = pair().await;
    c.write_all(b"PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n")
        .await
        .unwrap();
    assert_eq!(g.next_request().await, Next::Request);
    g.hand_over();
    let mut buf = [0u8; 512];
    let head = g.read(&mut buf).await.unwrap();
    assert!(buf[..head].ends_with(b"\r\n\r\n"));
    let err = g.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}
