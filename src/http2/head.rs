//! Heads across the HTTP/2 ↔ HTTP/1 boundary: the HTTP/1 request head sent
//! to a backend for an HTTP/2 client's request, and the client's HTTP/2
//! response head built from the backend's HTTP/1 one (which headers go out
//! is decided by [`crate::fast::response::parse`], the same rule as for
//! HTTP/1 clients). Pure.

use crate::fast::request::header;
use crate::fast::response::HeadOut;
use crate::request::headers::{
    forwarded_for, is_one_of as is, FORWARDED, REQUEST_HOP_BY_HOP as HOP_BY_HOP,
};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use std::net::IpAddr;

/// How the request body goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyHead {
    /// No body, and none expected (`GET` with the stream ended).
    None,
    /// A body of this many bytes (read whole, or declared by the client).
    Length(u64),
    /// A body of unknown length, streamed: chunked to the backend.
    Chunked,
}

/// The request as the upstream head needs it.
pub(crate) struct Upstream<'a> {
    /// Method.
    pub method: &'a Method,
    /// The `:path` pseudo-header (origin form, with the query).
    pub target: &'a str,
    /// `:authority`, else the `Host` header.
    pub host: &'a str,
    /// The client's other headers.
    pub headers: &'a HeaderMap,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The client connection is TLS.
    pub tls: bool,
}

/// Drop the headers whose names contain `_`, as the connection guard does
/// for HTTP/1 heads when `underscores_in_headers` is off: before routing,
/// so that no rule sees them on one protocol and not the other.
pub(crate) fn drop_underscored(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| k.as_str().contains('_')) {
        return;
    }
    let names: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// The request target: `:path` with its query, `/` when empty.
pub(crate) fn target(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The host a request names: `:authority`, else the `Host` header. `None`
/// when it has neither, when `Host` is not text, or when the two disagree
/// (RFC 9113 §8.3.1: malformed; one hop must not route by one and the next
/// by the other).
pub(crate) fn host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let host = match headers.get(http::header::HOST) {
        None => None,
        Some(h) => Some(h.to_str().ok()?),
    };
    match (uri.authority(), host) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h) => None,
        (Some(a), _) => Some(a.as_str()),
        (None, h) => h,
    }
}

/// Append the HTTP/1.1 head for `req` to `out`: request line, `Host`, the
/// client's headers less the hop-by-hop ones and those the proxy writes
/// (the same policy as the HTTP/1 paths), cookies joined into one line as
/// HTTP/1 requires (RFC 9113 §8.2.3), the body's framing, then
/// `X-Forwarded-For`, `-Proto` and `-Host`.
pub(crate) fn write_upstream(out: &mut Vec<u8>, req: &Upstream<'_>, body: BodyHead) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    header(out, b"Host", req.host.as_bytes());
    let mut cookies = 0;
    for (name, value) in req.headers {
        let n = name.as_str();
        if is(n, &HOP_BY_HOP)
            || is(n, &FORWARDED)
            || is(
                n,
                &["host", "content-length", "transfer-encoding", "expect"],
            )
        {
            continue;
        }
        if n == "cookie" {
            cookies += 1;
            continue;
        }
        header(out, n.as_bytes(), value.as_bytes());
    }
    if cookies > 0 {
        out.extend_from_slice(b"cookie: ");
        for (i, v) in req.headers.get_all(http::header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    match body {
        BodyHead::None => {}
        BodyHead::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyHead::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    let prior = req
        .headers
        .get_all(FORWARDED[0])
        .iter()
        .map(HeaderValue::as_bytes);
    let mark = out.len();
    out.extend_from_slice(b"X-Forwarded-For: ");
    if forwarded_for(prior, req.client_ip, out) {
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(mark);
    }
    out.extend_from_slice(if req.tls {
        b"X-Forwarded-Proto: https\r\n"
    } else {
        b"X-Forwarded-Proto: http\r\n"
    });
    header(out, b"X-Forwarded-Host", req.host.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The client's HTTP/2 response head, as [`crate::fast::response::parse`]
/// writes it.
#[derive(Debug, Default)]
pub(crate) struct H2Head {
    /// Status code.
    pub status: u16,
    /// The headers that go out.
    pub headers: HeaderMap,
}

impl HeadOut for H2Head {
    fn status(&mut self, status: u16, _reason: &str, headers: usize) {
        self.status = status;
        // Room for them all at once, rather than growing as they come.
        self.headers.reserve(headers);
    }

    fn header(&mut self, name: &str, value: &[u8]) {
        // HTTP/2 names are lowercase (`from_bytes` lowers them); a name or
        // value HTTP/2 cannot carry is dropped rather than failing the
        // whole answer.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.headers.append(n, v);
        }
    }

    fn end(&mut self, _close: bool) {}
}

impl H2Head {
    /// The head as an `http` response for the h2 crate.
    pub(crate) fn into_response(self) -> http::Response<()> {
        let mut resp = http::Response::new(());
        *resp.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *resp.headers_mut() = self.headers;
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)], body: BodyHead) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = Upstream {
            method: &Method::POST,
            target: "/a?b=1",
            host: "api.example",
            headers: &map,
            client_ip: Some("10.0.0.7".parse().unwrap()),
            tls: true,
        };
        let mut out = Vec::new();
        write_upstream(&mut out, &req, body);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_upstream_head_follows_the_header_policy() {
        let h = head(
            &[
                ("accept", "*/*"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("te", "trailers"),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "http"),
                ("content-length", "99"),
                ("host", "other"),
            ],
            BodyHead::Length(5),
        );
        assert!(
            h.starts_with("POST /a?b=1 HTTP/1.1\r\nHost: api.example\r\n"),
            "{h}"
        );
        assert!(h.contains("accept: */*\r\n"), "{h}");
        assert!(h.contains("cookie: a=1; b=2\r\n"), "{h}");
        assert!(h.contains("Content-Length: 5\r\n"), "{h}");
        assert!(h.contains("X-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n"), "{h}");
        assert!(h.contains("X-Forwarded-Proto: https\r\n"), "{h}");
        assert!(h.ends_with("X-Forwarded-Host: api.example\r\n\r\n"), "{h}");
        for gone in [
            "te:",
            "x_secret",
            "host: other",
            "99",
            "forwarded-proto: http",
        ] {
            assert!(!h.contains(gone), "{gone} in {h}");
        }
        let h = head(&[], BodyHead::Chunked);
        assert!(h.contains("Transfer-Encoding: chunked\r\n"), "{h}");
        assert!(!head(&[], BodyHead::None).contains("Content-Length"));
    }

    #[test]
    fn underscored_headers_are_dropped_before_anything_sees_them() {
        let mut map = HeaderMap::new();
        map.append("x_secret", HeaderValue::from_static("1"));
        map.append("x_secret", HeaderValue::from_static("2"));
        map.append("x-kept", HeaderValue::from_static("3"));
        drop_underscored(&mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map["x-kept"], "3");
    }

    #[test]
    fn the_response_head_drops_what_http2_cannot_carry() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\
X-Ok: yes\r\n\r\n";
        let mut out = H2Head::default();
        let side = crate::fast::response::ClientSide {
            http2: true,
            ..Default::default()
        };
        let parsed = crate::fast::response::parse(raw, side, &mut out);
        assert!(matches!(parsed, crate::fast::response::Parsed::Final(_)));
        let resp = out.into_response();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers().len(), 1, "{:?}", resp.headers());
        assert_eq!(resp.headers()["x-ok"], "yes");
    }
}
