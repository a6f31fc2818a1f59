//! The header policy ([`crate::request::headers`]) applied to Pingora's
//! header maps: `X-Forwarded-*` on the way in, hop-by-hop headers out of
//! the response, the response framing check. (Pingora's upstream request
//! policy strips the request's hop-by-hop headers, including those named in
//! `Connection`; [`strip_request_hop_by_hop`] removes the rest of the
//! policy's list.)

use crate::request::headers::{
    forwarded_for, is_one_of, POOL_TAG, REQUEST_HOP_BY_HOP, RESPONSE_HOP_BY_HOP,
};
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// `X-Forwarded-For`
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The policy's response hop-by-hop list as header names (`Connection`
/// first). `Transfer-Encoding` is left to Pingora, which re-frames the body.
static HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[0]),
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[1]),
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[2]),
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[3]),
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[4]),
    HeaderName::from_static(RESPONSE_HOP_BY_HOP[5]),
];

/// Remove from an upstream request the policy's hop-by-hop headers that
/// Pingora's own request policy keeps (`Proxy-Authorization`, `TE`, …).
/// One scan; a lookup only for names present.
pub(crate) fn strip_request_hop_by_hop(req: &mut RequestHeader) {
    let upgrade = req.headers.contains_key(http::header::UPGRADE);
    let present: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|k| is_one_of(k.as_str(), &REQUEST_HOP_BY_HOP))
        // A tunnel needs `Connection: upgrade` to reach the backend.
        .filter(|k| !(upgrade && *k == CONNECTION))
        .cloned()
        .collect();
    for name in &present {
        req.remove_header(name);
    }
}

/// The request's host: `Host` header, else the URI authority (HTTP/2).
pub(crate) fn request_host(req: &RequestHeader) -> Option<&str> {
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
pub(crate) fn add_forwarded(
    req: &mut RequestHeader,
    client_ip: Option<std::net::IpAddr>,
    tls: bool,
) -> pingora::Result<()> {
    // The policy's value (earlier hops, then this client), as one line.
    let mut value = Vec::with_capacity(48);
    let prior = req
        .headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes());
    if forwarded_for(prior, client_ip, &mut value) {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
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
pub(crate) fn check_response_framing(resp: &mut ResponseHeader) -> Result<(), &'static str> {
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
pub(crate) fn strip_hop_by_hop(resp: &mut ResponseHeader) {
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
pub(crate) fn tag_pool(resp: &mut ResponseHeader, pool: &str) -> pingora::Result<()> {
    let v = HeaderValue::from_str(pool).unwrap_or(HeaderValue::from_static("unknown"));
    resp.insert_header(POOL_TAG, v)
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
    fn the_policys_request_hop_by_hop_headers_go_and_an_upgrade_keeps_connection() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("proxy-authorization", "Basic eDp5")
            .unwrap();
        req.insert_header("te", "trailers").unwrap();
        req.insert_header("x-kept", "1").unwrap();
        strip_request_hop_by_hop(&mut req);
        assert!(!req.headers.contains_key("proxy-authorization"));
        assert!(!req.headers.contains_key("te"));
        assert!(req.headers.contains_key("x-kept"));
        let mut ws = RequestHeader::build("GET", b"/ws", None).unwrap();
        ws.insert_header("connection", "upgrade").unwrap();
        ws.insert_header("upgrade", "websocket").unwrap();
        strip_request_hop_by_hop(&mut ws);
        assert!(ws.headers.contains_key("connection"));
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
