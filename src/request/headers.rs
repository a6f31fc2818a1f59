//! The one header policy, applied by both request paths: which headers
//! concern one connection only (never passed on, in either direction),
//! which the proxy writes itself, and how `X-Forwarded-For` is built.
//! Change a rule here and both paths follow.

use std::net::IpAddr;

/// Request headers never forwarded to a backend: they concern the client's
/// connection, or this proxy (`Proxy-Authorization`). `Upgrade` is kept for
/// a tunnel (and dropped by the edge's head check when `Connection` does
/// not name it); `Transfer-Encoding` is the body's framing.
pub const REQUEST_HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
    "http2-settings",
];

/// Response headers never forwarded to a client. `Transfer-Encoding` is the
/// body's framing, which each path handles itself. A `101` keeps
/// `Connection` and `Upgrade`, which the upgrade needs.
pub const RESPONSE_HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "proxy-authenticate",
    "upgrade",
];

/// Headers the proxy writes itself; what a client sent under these names is
/// replaced (`X-Forwarded-For` is appended to, see [`forwarded_for`]).
pub const FORWARDED: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// The response header naming the pool that served, on routes with an
/// `override_header`.
pub const POOL_TAG: &str = "X-Cutover-Pool";

/// Whether header `name` is one of `names` (lowercase).
pub fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// The comma-separated tokens of a header value, trimmed.
pub fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// The `X-Forwarded-For` value to send, into `out`: the earlier hops from
/// every `X-Forwarded-For` line the client sent (`prior`, in order, blank
/// ones skipped), then the client's own address. Returns `false` (and
/// writes nothing) when there is nothing to say.
pub fn forwarded_for<'a>(
    prior: impl Iterator<Item = &'a [u8]>,
    client: Option<IpAddr>,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    for v in prior.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()) {
        if out.len() > start {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(v);
    }
    if let Some(ip) = client {
        if out.len() > start {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(IpText::default().format(ip).as_bytes());
    }
    out.len() > start
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
    pub fn format(&mut self, ip: IpAddr) -> &str {
        use std::io::Write;
        let len = match ip {
            IpAddr::V4(v4) => {
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
            IpAddr::V6(v6) => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(IpText::default().format(ip), ip.to_string());
        }
    }

    #[test]
    fn forwarded_for_joins_every_hop_then_the_client() {
        let client = Some("127.0.0.9".parse().expect("an address"));
        let mut out = Vec::new();
        let prior: [&[u8]; 3] = [b"10.0.0.1", b" ", b"10.0.0.2, 10.0.0.3 "];
        assert!(forwarded_for(prior.into_iter(), client, &mut out));
        assert_eq!(out, b"10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.9");
        // Without a client address the earlier hops still go on.
        out.clear();
        assert!(forwarded_for(prior.into_iter(), None, &mut out));
        assert_eq!(out, b"10.0.0.1, 10.0.0.2, 10.0.0.3");
        out.clear();
        assert!(!forwarded_for(std::iter::empty(), None, &mut out));
        assert!(out.is_empty());
    }
}
