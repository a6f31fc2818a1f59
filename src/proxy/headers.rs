//! Header rewriting: `X-Forwarded-*` on the way in, hop-by-hop headers out
//! of the response. (Pingora's upstream request policy already strips
//! hop-by-hop request headers, including those named in `Connection`, and
//! keeps a WebSocket upgrade intact.)

use http::header::{CONNECTION, HOST, PROXY_AUTHENTICATE, TE, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// `X-Forwarded-For`
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Response headers that only concern one connection. `Transfer-Encoding`
/// is left to Pingora, which re-frames the body itself.
static HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    PROXY_AUTHENTICATE,
    UPGRADE,
];

/// The request's host: `Host` header, else the URI authority (HTTP/2).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Add the `X-Forwarded-*` headers to an upstream request.
///
/// This runs on every request, so it avoids Pingora's slow paths: header
/// names go in as title-cased static strings (a `HeaderName` would be
/// title-cased and copied again), the proto value is static, the host value
/// shares the client's bytes, and the address is formatted without `fmt`.
pub fn add_forwarded(
    req: &mut RequestHeader,
    client_ip: Option<std::net::IpAddr>,
    tls: bool,
) -> pingora::Result<()> {
    if let Some(ip) = client_ip {
        let mut buf = IpText::default();
        let ip = buf.format(ip);
        // Earlier hops from every `X-Forwarded-For` line, in order, then
        // this client (as the fast path writes it).
        let mut prior = req
            .headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
            .peekable();
        let value = if prior.peek().is_none() {
            HeaderValue::from_str(ip)
        } else {
            let mut joined = Vec::with_capacity(64);
            for v in prior {
                joined.extend_from_slice(v);
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(ip.as_bytes());
            HeaderValue::from_bytes(&joined)
        };
        if let Ok(value) = value {
            req.insert_header("X-Forwarded-For", value)?;
        }
    }
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    req.insert_header("X-Forwarded-Proto", proto)?;
    let host = match req.headers.get(HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    if let Some(host) = host {
        req.insert_header("X-Forwarded-Host", host)?;
    }
    Ok(())
}

/// Check a backend response's framing headers as the fast path does, so
/// both paths answer 502 to what could be read two ways: a `Content-Length`
/// that is not one plain number (a list, a repeat, a sign) or a transfer
/// coding in an HTTP/1.0 response. A 204 or 304 loses its transfer coding
/// (and a 204 its length): it has no body, and a client must not wait for
/// one.
pub fn check_response_framing(resp: &mut ResponseHeader) -> Result<(), &'static str> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    let mut lengths = resp.headers.get_all(CONTENT_LENGTH).iter();
    if let Some(v) = lengths.next() {
        let v = v.as_bytes().trim_ascii();
        if lengths.next().is_some() {
            return Err("more than one Content-Length");
        }
        if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
            return Err("Content-Length is not a plain number");
        }
    }
    let coded = resp.headers.contains_key(TRANSFER_ENCODING);
    if coded && resp.version == http::Version::HTTP_10 {
        return Err("Transfer-Encoding in an HTTP/1.0 response");
    }
    let status = resp.status.as_u16();
    if status == 204 || status == 304 {
        if coded {
            resp.remove_header(&TRANSFER_ENCODING);
        }
        if status == 204 {
            resp.remove_header(&CONTENT_LENGTH);
        }
    }
    Ok(())
}

/// A stack buffer for an IP address in text form (at most 45 bytes, an
/// IPv4-mapped IPv6 address).
pub struct IpText {
    buf: [u8; 48],
}

impl Default for IpText {
    fn default() -> Self {
        IpText { buf: [0; 48] }
    }
}

impl IpText {
    /// The address as text; IPv4 by hand (the common case), IPv6 by `fmt`.
    pub fn format(&mut self, ip: std::net::IpAddr) -> &str {
        use std::io::Write;
        let len = match ip {
            std::net::IpAddr::V4(v4) => {
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf[n] = b'.';
                        n += 1;
                    }
                    n += write_u8(&mut self.buf[n..], octet);
                }
                n
            }
            std::net::IpAddr::V6(v6) => {
                let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
                // 48 bytes hold any IPv6 address, so this cannot fail.
                let _ = write!(cursor, "{v6}");
                cursor.position() as usize
            }
        };
        std::str::from_utf8(&self.buf[..len]).unwrap_or("")
    }
}

/// Write `v` in decimal at the start of `out`; returns the length.
fn write_u8(out: &mut [u8], v: u8) -> usize {
    if v >= 100 {
        out[0] = b'0' + v / 100;
        out[1] = b'0' + (v / 10) % 10;
        out[2] = b'0' + v % 10;
        3
    } else if v >= 10 {
        out[0] = b'0' + v / 10;
        out[1] = b'0' + v % 10;
        2
    } else {
        out[0] = b'0' + v;
        1
    }
}

/// Header names listed in `Connection` headers, except the `keep-alive` and
/// `close` options (the first is in [`HOP_BY_HOP`] anyway, the second names
/// no header). Allocates only when something else is listed.
fn connection_nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

/// Strip hop-by-hop headers (and those named in `Connection`) from a
/// response. A `101 Switching Protocols` keeps `Connection`/`Upgrade`, which
/// the upgrade needs.
///
/// One scan over the (few) response headers notes which hop-by-hop names
/// are present, so only those are looked up and removed; most responses
/// carry at most `Connection: keep-alive`.
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.status.as_u16() == 101 {
        return;
    }
    let mut present = 0u8;
    for key in resp.headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == key) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `HOP_BY_HOP[0]` is `Connection`.
    let nominated = if present & 1 != 0 {
        connection_nominated(&resp.headers)
    } else {
        Vec::new()
    };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            resp.remove_header(name);
        }
    }
    for name in &nominated {
        resp.remove_header(name);
    }
}

/// Tag a response with the pool that served it.
pub fn tag_pool(resp: &mut ResponseHeader, pool: &str) -> pingora::Result<()> {
    let v = HeaderValue::from_str(pool).unwrap_or(HeaderValue::from_static("unknown"));
    resp.insert_header("X-Cutover-Pool", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_and_overwrite() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("host", "api.example.com").unwrap();
        req.insert_header("x-forwarded-for", "10.1.1.1").unwrap();
        req.append_header("x-forwarded-for", "10.1.1.2").unwrap();
        req.insert_header("x-forwarded-proto", "https").unwrap();
        add_forwarded(&mut req, Some("127.0.0.9".parse().unwrap()), false).unwrap();
        assert_eq!(
            req.headers["x-forwarded-for"],
            "10.1.1.1, 10.1.1.2, 127.0.0.9"
        );
        assert_eq!(req.headers["x-forwarded-proto"], "http");
        assert_eq!(req.headers["x-forwarded-host"], "api.example.com");
    }

    #[test]
    fn hop_by_hop_response_headers_go() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("connection", "keep-alive, x-secret")
            .unwrap();
        resp.insert_header("keep-alive", "timeout=5").unwrap();
        resp.insert_header("x-secret", "1").unwrap();
        resp.insert_header("upgrade", "h2c").unwrap();
        resp.insert_header("x-kept", "1").unwrap();
        strip_hop_by_hop(&mut resp);
        for gone in ["connection", "keep-alive", "x-secret", "upgrade"] {
            assert!(!resp.headers.contains_key(gone), "{gone}");
        }
        // A second round: `close` names no header, other names do.
        resp.insert_header("te", "trailers").unwrap();
        resp.append_header("connection", "Close, X-Other").unwrap();
        resp.insert_header("x-other", "1").unwrap();
        strip_hop_by_hop(&mut resp);
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "upgrade",
            "te",
            "x-other",
        ] {
            assert!(!resp.headers.contains_key(gone), "{gone}");
        }
        assert!(resp.headers.contains_key("x-kept"));
    }

    #[test]
    fn addresses_format_like_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "::1",
            "2001:db8::7",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::default().format(ip), ip.to_string());
        }
    }

    #[test]
    fn forwarded_host_from_authority_without_host_header() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.set_uri("https://h2.example:8443/x".parse().unwrap());
        add_forwarded(&mut req, None, true).unwrap();
        assert_eq!(req.headers["x-forwarded-host"], "h2.example:8443");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert!(!req.headers.contains_key("x-forwarded-for"));
    }
}
