//! Tests of the response head's parsing and rewriting.

use super::*;

fn run(raw: &[u8], side: ClientSide<'_>) -> (Parsed, String) {
    let mut out = Vec::new();
    let p = parse(raw, side, &mut out);
    (p, String::from_utf8(out).unwrap())
}

fn fin(raw: &[u8]) -> Final {
    match run(raw, ClientSide::default()).0 {
        Parsed::Final(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn framing_follows_the_rfc() {
    let f = fin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        (f.framing, f.reusable, f.len),
        (Framing::Length(5), true, 38)
    );
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n";
    let (p, out) = run(raw, ClientSide::default());
    assert!(matches!(
        p,
        Parsed::Final(Final {
            framing: Framing::Chunked,
            ..
        })
    ));
    assert!(!out.contains("Content-Length"), "{out}");
    let f = fin(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(
        (f.framing, f.reusable, f.client_close),
        (Framing::UntilClose, false, true)
    );
    let f = fin(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(f.framing, Framing::UntilClose);
    let f = fin(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(f.framing, Framing::Empty);
    let f = fin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
    assert_eq!((f.reusable, f.client_close), (false, false));
    let f = fin(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n");
    assert!(!f.reusable);
    let side = ClientSide {
        head_request: true,
        ..Default::default()
    };
    let (p, _) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", side);
    assert!(matches!(
        p,
        Parsed::Final(Final {
            framing: Framing::Empty,
            ..
        })
    ));
}

#[test]
fn bad_and_partial_heads() {
    let side = ClientSide::default();
    assert_eq!(
        run(b"HTTP/1.1 200 OK\r\nContent-Le", side).0,
        Parsed::Partial
    );
    assert_eq!(run(b"SMTP ready\r\n\r\n", side).0, Parsed::Bad);
    assert_eq!(
        run(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            side
        )
        .0,
        Parsed::Bad
    );
    assert_eq!(
        run(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", side).0,
        Parsed::Bad
    );
    assert_eq!(run(b"HTTP/1.1 101 Switching\r\n\r\n", side).0, Parsed::Bad);
    assert_eq!(
        run(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200",
            side
        )
        .0,
        Parsed::Informational(40)
    );
}

#[test]
fn framing_headers_survive_being_named_in_connection() {
    let raw = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello";
    let (p, out) = run(raw, ClientSide::default());
    assert!(matches!(
        p,
        Parsed::Final(Final {
            framing: Framing::Length(5),
            ..
        })
    ));
    assert!(out.contains("Content-Length: 5\r\n"), "{out}");
}

#[test]
fn lenient_heads_are_taken_and_folds_unfolded() {
    let raw = b"HTTP/1.1 200 OK\r\nX-A : 1\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n\r\n";
    let (p, out) = run(raw, ClientSide::default());
    assert!(matches!(p, Parsed::Final(_)), "{p:?}");
    assert!(!out.contains("a\r\n  b"), "{out}");
}

#[test]
fn the_pool_tag_replaces_one_from_the_backend() {
    let raw = b"HTTP/1.1 200 OK\r\nX-Cutover-Pool: inner\r\nContent-Length: 0\r\n\r\n";
    let side = ClientSide {
        tag: Some("cloud"),
        ..Default::default()
    };
    let (_, out) = run(raw, side);
    assert_eq!(out.matches("X-Cutover-Pool").count(), 1, "{out}");
    assert!(out.contains("X-Cutover-Pool: cloud\r\n"), "{out}");
}

#[test]
fn the_client_head_loses_hop_by_hop_headers() {
    let raw =
        b"HTTP/1.1 404 Not Found\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
X-Secret: 1\r\nUpgrade: h2c\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n";
    let side = ClientSide {
        close: true,
        tag: Some("cloud"),
        ..Default::default()
    };
    let (_, out) = run(raw, side);
    assert_eq!(
        out,
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-Kept: 1\r\nX-Cutover-Pool: cloud\r\n\
Connection: close\r\n\r\n"
    );
}
