//! The edge's rules for a request head, applied once to every HTTP/1 request
//! before either request path sees it, so the two paths cannot disagree
//! about what a request is. Pure: bytes in, a verdict out.
//!
//! A head is refused (RFC 9112, and what nginx answers) when it is
//! malformed (`400`), lacks `Host` in HTTP/1.1 or has an invalid or a second
//! one (`400`), has a `Content-Length` that is not one plain number (`400`),
//! has both `Content-Length` and `Transfer-Encoding` (`400`), a transfer
//! coding other than `chunked` (`501`), or is a `CONNECT` (`405`). Accepted
//! heads are normalised: an absolute-form target becomes origin-form with
//! its authority as `Host`, header names with `_` are dropped (unless
//! allowed), and an `Upgrade` that `Connection` does not name is dropped (so
//! it cannot open a tunnel). The verdict also says how the body is framed,
//! so the connection guard can hand a request path exactly one request.

use std::mem::MaybeUninit;

/// Most request headers taken (as Pingora).
const MAX_HEADERS: usize = 256;

/// How a request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// An upgrade: after the head the connection may become a tunnel.
    Tunnel,
}

/// An accepted request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The head's length as it is to be passed on (the rewritten one's, if
    /// rewritten).
    pub len: usize,
    /// How its body is framed.
    pub body: BodyFraming,
    /// The head to pass on instead of the one received, when normalising
    /// changed it.
    pub rewritten: Option<Vec<u8>>,
}

/// A refused head: the status to answer with (the connection then closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// `400`, `405` or `501`.
    pub status: u16,
    /// Why, for the debug log.
    pub why: &'static str,
}

fn refuse(status: u16, why: &'static str) -> Refused {
    Refused { status, why }
}

/// What the head check may relax.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// Keep header names with `_`.
    pub underscores_in_headers: bool,
}

/// Whether `v` is a valid `Host` value: a DNS-style name, an IPv4 address
/// or a bracketed IPv6 literal, then an optional port. Stricter than RFC
/// 3986's reg-name (no sub-delimiters, no userinfo), like nginx: a host is
/// copied into `X-Forwarded-Host` and routing, where `,` or `@` or `/`
/// would let a client say two things at once.
pub(crate) fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|b| *b == b']') else {
            return false;
        };
        let literal = &v[1..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..=close], None),
            [b':', port @ ..] => (&v[..=close], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|b| *b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if host.is_empty() {
        return false;
    }
    if host[0] != b'['
        && !host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return false;
    }
    port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Split an absolute-form target (`http://host[:port]/path?q`) into its
/// authority and origin-form path (`/` when empty).
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .or_else(|| {
            // Schemes are case-insensitive.
            let (scheme, rest) = target.split_once("://")?;
            (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
                .then_some(rest)
        })?;
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    Some((authority, if path.is_empty() { "/" } else { path }))
}

/// Check the request head `head` (from its request line through its blank
/// line; leading empty lines already skipped).
pub(crate) fn check(head: &[u8], rules: Rules) -> Result<Checked, Refused> {
    let mut storage: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(head, &mut storage) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(refuse(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(refuse(431, "too many headers")),
        Err(_) => return Err(refuse(400, "malformed request head")),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(refuse(400, "malformed request line"));
    };
    if method == "CONNECT" {
        return Err(refuse(405, "CONNECT is not proxied"));
    }
    let mut absolute = None;
    if !target.starts_with('/') {
        if target == "*" {
            if method != "OPTIONS" {
                return Err(refuse(400, "asterisk-form target outside OPTIONS"));
            }
        } else {
            let Some((authority, path)) = split_absolute(target) else {
                return Err(refuse(
                    400,
                    "request target is not origin- or absolute-form",
                ));
            };
            if !valid_host(authority.as_bytes()) {
                return Err(refuse(400, "invalid authority in the request target"));
            }
            absolute = Some((authority, path));
        }
    }

    let headers: &[httparse::Header<'_>] = req.headers;
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut codings = 0;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    let mut drop_some = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 {
                return Err(refuse(400, "more than one Host"));
            }
            if !valid_host(h.value) {
                return Err(refuse(400, "invalid Host"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let v = h.value.trim_ascii();
            if length.is_some() {
                return Err(refuse(400, "more than one Content-Length"));
            }
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(refuse(400, "Content-Length is not a plain number"));
            }
            length = Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for t in tokens(h.value) {
                codings += 1;
                chunked = t.eq_ignore_ascii_case(b"chunked");
            }
            if h.value.trim_ascii().is_empty() {
                return Err(refuse(400, "empty Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        }
        drop_some |= !rules.underscores_in_headers && name.contains('_');
    }
    if version == 1 && hosts == 0 {
        return Err(refuse(400, "HTTP/1.1 request without Host"));
    }
    let body = match (codings, length) {
        (0, None) => BodyFraming::None,
        (0, Some(n)) => BodyFraming::Length(n),
        (_, Some(_)) => return Err(refuse(400, "both Content-Length and Transfer-Encoding")),
        (_, None) if version == 0 => {
            return Err(refuse(400, "Transfer-Encoding in an HTTP/1.0 request"))
        }
        // Only `chunked`, once: what every hop reads the same way.
        (1, None) if chunked => BodyFraming::Chunked,
        _ => return Err(refuse(501, "unsupported transfer coding")),
    };
    let tunnel = upgrade && connection_upgrade && version == 1;
    let body = match body {
        BodyFraming::None if tunnel => BodyFraming::Tunnel,
        other => other,
    };
    let drop_upgrade = upgrade && !tunnel;
    if absolute.is_none() && !drop_some && !drop_upgrade {
        return Ok(Checked {
            len,
            body,
            rewritten: None,
        });
    }

    // Normalise: the request line, then the headers kept.
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(absolute.map_or(target, |(_, path)| path).as_bytes());
    out.extend_from_slice(if version == 1 {
        b" HTTP/1.1\r\n"
    } else {
        b" HTTP/1.0\r\n"
    });
    let mut host_written = false;
    for h in headers {
        let name = h.name;
        let dropped = (!rules.underscores_in_headers && name.contains('_'))
            || (drop_upgrade && name.eq_ignore_ascii_case("upgrade"));
        if dropped {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        match absolute {
            // The target's authority is the host (RFC 9112 §3.2.2).
            Some((authority, _)) if name.eq_ignore_ascii_case("host") => {
                out.extend_from_slice(authority.as_bytes());
                host_written = true;
            }
            _ => out.extend_from_slice(h.value),
        }
        out.extend_from_slice(b"\r\n");
    }
    if let (Some((authority, _)), false) = (absolute, host_written) {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Checked {
        len: out.len(),
        body,
        rewritten: Some(out),
    })
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
