//! Header rewriting: `X-Forwarded-*` on the way in, hop-by-hop headers out
//! of the response. (Pingora's upstream request policy already strips
//! hop-by-hop request headers, including those named in `Connection`, and
//! keeps a WebSocket upgrade intact.)

use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// `X-Forwarded-For`
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Cutover-Pool`
pub static X_CUTOVER_POOL: HeaderName = HeaderName::from_static("x-cutover-pool");

/// Response headers that only concern one connection. `Transfer-Encoding`
/// is left to Pingora, which re-frames the body itself.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "proxy-authenticate",
];

/// The request's host: `Host` header, else the URI authority (HTTP/2).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Add the `X-Forwarded-*` headers to an upstream request.
pub fn add_forwarded(
    req: &mut RequestHeader,
    client_ip: Option<std::net::IpAddr>,
    tls: bool,
) -> pingora::Result<()> {
    if let Some(ip) = client_ip {
        let ip = ip.to_string();
        let value = match req
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip,
        };
        req.insert_header(X_FORWARDED_FOR.clone(), value)?;
    }
    req.insert_header(
        X_FORWARDED_PROTO.clone(),
        if tls { "https" } else { "http" },
    )?;
    if let Some(host) = request_host(req).map(str::to_owned) {
        req.insert_header(X_FORWARDED_HOST.clone(), host)?;
    }
    Ok(())
}

/// Names listed in `Connection` headers.
fn connection_nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Strip hop-by-hop headers (and those named in `Connection`) from a
/// response. A `101 Switching Protocols` keeps `Connection`/`Upgrade`, which
/// the upgrade needs.
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.status.as_u16() == 101 {
        return;
    }
    if resp.headers.contains_key(CONNECTION) {
        for name in connection_nominated(&resp.headers) {
            resp.remove_header(&name);
        }
    }
    for name in HOP_BY_HOP {
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    if resp.headers.contains_key(UPGRADE) {
        resp.remove_header(&UPGRADE);
    }
}

/// Tag a response with the pool that served it.
pub fn tag_pool(resp: &mut ResponseHeader, pool: &str) -> pingora::Result<()> {
    let v = HeaderValue::from_str(pool).unwrap_or(HeaderValue::from_static("unknown"));
    resp.insert_header(X_CUTOVER_POOL.clone(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_and_overwrite() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("host", "api.example.com").unwrap();
        req.insert_header("x-forwarded-for", "10.1.1.1").unwrap();
        req.insert_header("x-forwarded-proto", "https").unwrap();
        add_forwarded(&mut req, Some("127.0.0.9".parse().unwrap()), false).unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.1.1.1, 127.0.0.9");
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
        assert!(resp.headers.contains_key("x-kept"));
    }
}
