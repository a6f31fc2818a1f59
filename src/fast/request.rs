//! Which requests the fast path takes, and the upstream request head it
//! sends for them. Pure: bytes in, bytes out.
//!
//! The fast path takes the plain, common request: HTTP/1.1, an origin-form
//! target, one `Host`, no body or a `Content-Length` one (read whole up to
//! `retry_buffer` bytes, 64 KiB by default, so that a retry can resend it;
//! streamed beyond), or a chunked one (streamed), no upgrade, no `Expect`, a
//! `Connection` header (if any) that only says `close` or `keep-alive`.
//! Anything else is left to Pingora's proxy, which handles every case; the
//! fast path exists to make the usual one cheap, not to be complete.

use crate::request::headers::{
    forwarded_for, is_one_of as is, tokens, FORWARDED, REQUEST_HOP_BY_HOP as HOP_BY_HOP,
};
use httparse::Header;
use std::net::IpAddr;

/// Most request headers the fast path parses (more: Pingora takes it).
pub const MAX_HEADERS: usize = 64;

/// The default `retry_buffer`: the largest request body the fast path takes.
/// It reads such a body whole before the first attempt, so a retry can send
/// it again (Pingora's own retry buffer has the same size); larger ones
/// stream through Pingora.
pub const MAX_BODY: usize = 64 * 1024;

/// How a streamed request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, passed through as is.
    Chunked,
}

/// A parsed request head the fast path can take.
#[derive(Debug)]
pub struct Head<'h, 'b> {
    /// Method, as sent.
    pub method: &'b str,
    /// Origin-form target: path and query.
    pub target: &'b str,
    /// `Host` header value.
    pub host: &'b str,
    /// All headers, as sent.
    pub headers: &'h [Header<'b>],
    /// Length of the head in bytes, up to and including the blank line.
    pub len: usize,
    /// Length of a body read whole (`Content-Length` up to `max_body`, 0
    /// without one, or when it is streamed).
    pub body_len: usize,
    /// A body streamed to the backend as it arrives (never retried once
    /// its first byte left): larger than `max_body`, or chunked.
    pub stream: Option<Streamed>,
    /// The client asked to close the connection after this request.
    pub close: bool,
}

impl Head<'_, '_> {
    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }
}

/// Parse the head at the start of `buf`; `None` when it is incomplete,
/// malformed or not one the fast path takes (a body over `max_body` bytes,
/// among others: Pingora then reads it again).
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    storage: &'h mut [Header<'b>; MAX_HEADERS],
    max_body: usize,
) -> Option<Head<'h, 'b>> {
    let mut req = httparse::Request::new(storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    if req.version != Some(1) {
        return None;
    }
    let (method, target) = (req.method?, req.path?);
    if !target.starts_with('/') {
        return None;
    }
    let headers: &'h [Header<'b>] = req.headers;
    let mut host = None;
    let mut close = false;
    let mut body_len: Option<u64> = None;
    let mut chunked = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return None;
            }
            host = Some(std::str::from_utf8(h.value).ok()?);
        } else if name.eq_ignore_ascii_case("content-length") {
            // One header of plain digits; anything else (lists, repeats,
            // signs) is for Pingora to judge.
            let v = h.value.trim_ascii();
            if body_len.is_some()
                || chunked
                || v.is_empty()
                || v.len() > 15
                || !v.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            body_len = Some(std::str::from_utf8(v).ok()?.parse::<u64>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // One `chunked` (the connection guard has refused the rest).
            if chunked
                || body_len.is_some()
                || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked")
            {
                return None;
            }
            chunked = true;
        } else if is(name, &["upgrade", "expect"]) {
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // It names headers to drop: Pingora's policy does that.
                    return None;
                }
            }
        }
    }
    let (body_len, stream) = match (body_len, chunked) {
        (_, true) => (0, Some(Streamed::Chunked)),
        (Some(n), false) if n > max_body as u64 => (0, Some(Streamed::Length(n))),
        (Some(n), false) => (usize::try_from(n).ok()?, None),
        (None, false) => (0, None),
    };
    Some(Head {
        method,
        target,
        host: host?,
        headers,
        len,
        body_len,
        stream,
        close,
    })
}

/// Append the upstream request head for `head` to `out`: the request line
/// and headers as the client sent them, less the hop-by-hop ones, with
/// `X-Forwarded-For` (appended to), `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (replaced).
pub fn write_upstream(
    out: &mut Vec<u8>,
    head: &Head<'_, '_>,
    client_ip: Option<IpAddr>,
    tls: bool,
) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in head.headers {
        if !is(h.name, &HOP_BY_HOP) && !is(h.name, &FORWARDED) {
            header(out, h.name.as_bytes(), h.value);
        }
    }
    // The policy's value: earlier hops, then this client, as one line.
    let prior = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(FORWARDED[0]))
        .map(|h| h.value);
    let mark = out.len();
    out.extend_from_slice(b"X-Forwarded-For: ");
    if forwarded_for(prior, client_ip, out) {
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(mark);
    }
    out.extend_from_slice(if tls {
        b"X-Forwarded-Proto: https\r\n"
    } else {
        b"X-Forwarded-Proto: http\r\n"
    });
    header(out, b"X-Forwarded-Host", head.host.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Append one `name: value` line.
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8]) -> Option<(usize, bool, String, String)> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let h = parse(raw, &mut storage, MAX_BODY)?;
        Some((h.len, h.close, h.host.to_string(), h.path().to_string()))
    }

    #[test]
    fn plain_requests_are_taken() {
        let raw = b"GET /a/b?q=1 HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\n\r\nNEXT";
        let (len, close, host, path) = parsed(raw).unwrap();
        assert_eq!(len, raw.len() - 4);
        assert!(!close);
        assert_eq!(host, "api.example");
        assert_eq!(path, "/a/b");
        let raw =
            b"DELETE /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n";
        assert!(parsed(raw).unwrap().1);
    }

    #[test]
    fn everything_unusual_goes_to_pingora() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: h\r\n"[..],
            b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
            b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x-secret\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n",
            b"NOT A REQUEST\r\n\r\n",
        ] {
            assert!(parsed(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn large_and_chunked_bodies_are_streamed() {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n";
        let h = parse(raw, &mut storage, MAX_BODY).unwrap();
        assert_eq!((h.body_len, h.stream), (0, Some(Streamed::Length(65537))));
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
        let h = parse(raw, &mut storage, MAX_BODY).unwrap();
        assert_eq!(h.stream, Some(Streamed::Chunked));
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n";
        let h = parse(raw, &mut storage, MAX_BODY).unwrap();
        assert_eq!((h.body_len, h.stream), (65536, None));
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_and_adds_forwarded() {
        let raw = b"GET /p HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\
X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Trace: 1\r\nx-forwarded-for: 10.0.0.2\r\n\
Proxy-Authorization: Basic eDp5\r\n\r\n";
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse(raw, &mut storage, MAX_BODY).unwrap();
        let mut out = Vec::new();
        write_upstream(&mut out, &head, Some("127.0.0.9".parse().unwrap()), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p HTTP/1.1\r\nHost: h.example\r\nX-Trace: 1\r\n\
X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.9\r\nX-Forwarded-Proto: http\r\n\
X-Forwarded-Host: h.example\r\n\r\n"
        );
    }

    #[test]
    fn without_a_client_address_earlier_hops_still_go_on() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse(raw, &mut storage, MAX_BODY).unwrap();
        let mut out = Vec::new();
        write_upstream(&mut out, &head, None, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-Forwarded-For: 10.0.0.1\r\n"), "{text}");
    }

    #[test]
    fn without_a_client_address_no_forwarded_for() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = parse(raw, &mut storage, MAX_BODY).unwrap();
        let mut out = Vec::new();
        write_upstream(&mut out, &head, None, true);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("X-Forwarded-For"));
        assert!(text.contains("X-Forwarded-Proto: https\r\n"));
    }
}
