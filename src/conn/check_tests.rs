use super::*;

fn ok(raw: &[u8]) -> Checked {
    match check(raw, Rules::default()) {
        Ok(c) => c,
        Err(e) => panic!("{}: refused {e:?}", String::from_utf8_lossy(raw)),
    }
}

fn status(raw: &[u8]) -> u16 {
    match check(raw, Rules::default()) {
        Ok(c) => panic!("{}: accepted {c:?}", String::from_utf8_lossy(raw)),
        Err(e) => e.status,
    }
}

fn text(c: &Checked) -> String {
    String::from_utf8(c.rewritten.clone().expect("rewritten")).expect("utf-8")
}

#[test]
fn plain_heads_pass_unchanged_with_their_framing() {
    let raw = b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n";
    assert_eq!(
        ok(raw),
        Checked {
            len: raw.len(),
            body: BodyFraming::None,
            rewritten: None
        }
    );
    let c = ok(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(c.body, BodyFraming::Length(12));
    let c = ok(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(c.body, BodyFraming::Chunked);
    let c = ok(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!((c.body, c.rewritten), (BodyFraming::Tunnel, None));
    // HTTP/1.0 needs no Host.
    assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").body, BodyFraming::None);
    assert_eq!(
        ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").body,
        BodyFraming::None
    );
    assert!(ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
        .rewritten
        .is_none());
}

#[test]
fn bad_framing_and_hosts_are_refused() {
    for (raw, code) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nHost: x@h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h evil\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h/evil\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h, evil\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h:99999x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405),
        (b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 405),
        (b"GET h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    ] {
        assert_eq!(status(raw), code, "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
    let c = ok(b"GET https://api.example/x?q=1 HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n");
    assert_eq!(
        text(&c),
        "GET /x?q=1 HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\n\r\n"
    );
    assert_eq!(c.len, text(&c).len());
    let c = ok(b"GET HTTP://h:81 HTTP/1.0\r\n\r\n");
    assert_eq!(text(&c), "GET / HTTP/1.0\r\nHost: h:81\r\n\r\n");
}

#[test]
fn underscored_names_and_a_lone_upgrade_are_dropped() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nUpgrade: websocket\r\nX-Ok: 1\r\n\r\n";
    let c = ok(raw);
    assert_eq!(text(&c), "GET / HTTP/1.1\r\nHost: h\r\nX-Ok: 1\r\n\r\n");
    assert_eq!(c.body, BodyFraming::None);
    let rules = Rules {
        underscores_in_headers: true,
    };
    let c = check(raw, rules).expect("accepted");
    assert_eq!(
        String::from_utf8(c.rewritten.expect("upgrade dropped")).expect("utf-8"),
        "GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\n\r\n"
    );
}

#[test]
fn hosts() {
    for good in [
        &b"a"[..],
        b"a.example",
        b"a-b_c.example:8080",
        b"127.0.0.1",
        b"[::1]",
        b"[2001:db8::1]:443",
        b"h:",
    ] {
        assert!(valid_host(good), "{}", String::from_utf8_lossy(good));
    }
    for bad in [
        &b""[..],
        b":80",
        b"[]",
        b"[::1",
        b"[::1]x",
        b"[zz]",
        b"h:123456",
        b"h:8a",
        b"a b",
        b"a,b",
        b"a@b",
        b"a/b",
        b"a\\b",
        b"a;b",
    ] {
        assert!(!valid_host(bad), "{}", String::from_utf8_lossy(bad));
    }
}
