//! The sticky key of a request: a header, a cookie or the client's IP,
//! hashed to a bucket (see [`crate::split::sticky_bucket`]).

use crate::config::Sticky;
use crate::route::HeaderLookup;
use crate::split::sticky_bucket;
use std::net::IpAddr;

/// The bucket of the request's sticky key, or `None` when it has no key.
pub(super) fn key_bucket(
    sticky: &Sticky,
    headers: &dyn HeaderLookup,
    client_ip: Option<IpAddr>,
) -> Option<u32> {
    let mut bucket = None;
    match sticky {
        Sticky::Header(name) => headers.first_value(name.as_str(), &mut |v| {
            if !v.is_empty() {
                bucket = Some(sticky_bucket(v));
            }
        }),
        Sticky::Cookie(name) => {
            headers.any_value("cookie", &mut |h| {
                bucket = cookie_value(h, name.as_bytes()).map(sticky_bucket);
                bucket.is_some()
            });
        }
        Sticky::SourceIp => {
            let ip = client_ip?;
            bucket = Some(match ip {
                IpAddr::V4(v4) => sticky_bucket(&v4.octets()),
                IpAddr::V6(v6) => sticky_bucket(&v6.octets()),
            });
        }
    }
    bucket
}

/// The value of cookie `name` in a `Cookie` header, if present and non-empty.
pub(super) fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (k, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        (k == name && !v.is_empty()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let h = b"a=1; session=abc; other=\"q\"";
        assert_eq!(cookie_value(h, b"session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(h, b"other"), Some(&b"q"[..]));
        assert_eq!(cookie_value(h, b"sess"), None);
        assert_eq!(cookie_value(b"session=", b"session"), None);
    }
}
