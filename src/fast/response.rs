//! The backend's response head on the fast path: parsed in place, its body
//! framing worked out, and rewritten for the client (hop-by-hop headers out,
//! `Connection: close` in when this connection ends). Pure.

use super::request::header;
use crate::request::headers::{
    is_one_of as is, tokens, POOL_TAG, RESPONSE_HOP_BY_HOP as HOP_BY_HOP,
};
use httparse::Header;

/// Most response headers parsed (as many as Pingora takes).
pub const MAX_HEADERS: usize = 256;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD` request, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding, passed through as is.
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A final response head, its client version already written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Final {
    /// Status code.
    pub status: u16,
    /// Length of the backend's head in the buffer.
    pub len: usize,
    /// How its body is delimited.
    pub framing: Framing,
    /// The backend connection may be reused after the body.
    pub reusable: bool,
    /// The client connection must close after the body.
    pub client_close: bool,
}

/// What the start of the backend's bytes holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An informational (1xx) head of this length, to be skipped.
    Informational(usize),
    /// The final head.
    Final(Final),
    /// Not a valid HTTP/1 response (or a 101 nobody asked for).
    Bad,
}

/// What the client side needs to say in the head.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSide<'a> {
    /// The request was `HEAD`: no body follows whatever the headers say.
    pub head_request: bool,
    /// The client connection closes after this response.
    pub close: bool,
    /// Name the pool that served in `X-Cutover-Pool`.
    pub tag: Option<&'a str>,
    /// The client speaks HTTP/2: no transfer coding goes out.
    pub http2: bool,
}

/// Whether `name` is listed in one of the `Connection` headers. The framing
/// headers never count: the body is passed on with the framing they give.
fn nominated(headers: &[Header<'_>], name: &str) -> bool {
    if is(name, &["content-length", "transfer-encoding"]) {
        return false;
    }
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| tokens(h.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// The body framing of a response with these headers (RFC 9112 §6.3), or
/// `None` when it cannot be read one way only: a `Content-Length` that is
/// not one plain number (a list, a repeat, a sign), or a transfer coding in
/// an HTTP/1.0 response. (nginx answers 502 to these too.)
fn framing(
    status: u16,
    version: u8,
    headers: &[Header<'_>],
    head_request: bool,
) -> Option<Framing> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding counts.
            let last = tokens(h.value).filter(|t| !t.is_empty()).last();
            chunked = Some(last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = h.value.trim_ascii();
            if length.is_some() || v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            length = Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
        }
    }
    if chunked.is_some() && version == 0 {
        return None;
    }
    if head_request || status == 204 || status == 304 {
        return Some(Framing::Empty);
    }
    Some(match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::UntilClose,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    })
}

/// Where the client's version of a response head goes: HTTP/1 bytes on
/// cutover's own HTTP/1 path, an HTTP/2 header block on its HTTP/2 path.
/// [`parse`] decides which headers go out; the sink only writes them.
pub trait HeadOut {
    /// The status line (HTTP/2 keeps only the code); `headers`: how many
    /// headers the backend sent (at most that many follow).
    fn status(&mut self, status: u16, reason: &str, headers: usize);
    /// One header to pass on; a folded line arrives unfolded.
    fn header(&mut self, name: &str, value: &[u8]);
    /// The head is complete; `close`: the client connection ends after it.
    fn end(&mut self, close: bool);
}

impl HeadOut for Vec<u8> {
    fn status(&mut self, status: u16, reason: &str, _headers: usize) {
        self.extend_from_slice(b"HTTP/1.1 ");
        let mut code = [0u8; 3];
        for (i, d) in code.iter_mut().enumerate() {
            *d = b'0' + (status / 10u16.pow(2 - i as u32) % 10) as u8;
        }
        self.extend_from_slice(&code);
        self.push(b' ');
        self.extend_from_slice(reason.as_bytes());
        self.extend_from_slice(b"\r\n");
    }

    fn header(&mut self, name: &str, value: &[u8]) {
        header(self, name.as_bytes(), value);
    }

    fn end(&mut self, close: bool) {
        if close {
            self.extend_from_slice(b"Connection: close\r\n");
        }
        self.extend_from_slice(b"\r\n");
    }
}

/// Parse the backend's bytes at the start of `buf`. For a final head, the
/// client's version of it goes to `out`.
pub fn parse(buf: &[u8], side: ClientSide<'_>, out: &mut impl HeadOut) -> Parsed {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    // As lenient as Pingora with what backends send (`Name : value`,
    // folded lines), so both paths take the same answers.
    let parsed = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut resp, buf);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return Parsed::Bad;
    };
    if status == 101 || status < 100 {
        return Parsed::Bad;
    }
    if (100..200).contains(&status) {
        return Parsed::Informational(len);
    }
    let headers: &[Header<'_>] = resp.headers;
    let Some(framing) = framing(status, version, headers, side.head_request) else {
        return Parsed::Bad;
    };
    let backend_close = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close")));
    // With a transfer coding, a `Content-Length` beside it is wrong and a
    // smuggling vector for whatever sits behind the client (RFC 9112 §6.3):
    // it does not go out, and the backend connection is not trusted again.
    let coded = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let both = coded
        && headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-length"));
    let reusable = version == 1 && !backend_close && !both && framing != Framing::UntilClose;
    // A 204 or 304 has no body whatever its headers say: no framing header
    // may make the client wait for one (a 304's length describes the
    // representation, so it stays). HTTP/2 frames bodies itself: it never
    // carries a transfer coding.
    let bodiless_status = status == 204 || status == 304;
    let drop_coding = bodiless_status || side.http2;
    let client_close = side.close || framing == Framing::UntilClose;

    out.status(status, resp.reason.unwrap_or(""), headers.len() + 1);
    // Usually `Connection` says only `keep-alive` or `close`: then no other
    // header is nominated and the per-header check is skipped.
    let nominates = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| {
            tokens(h.value).any(|t| {
                !t.is_empty()
                    && !t.eq_ignore_ascii_case(b"keep-alive")
                    && !t.eq_ignore_ascii_case(b"close")
            })
        });
    for h in headers {
        if is(h.name, &HOP_BY_HOP)
            || (nominates && nominated(headers, h.name))
            || ((coded || status == 204) && h.name.eq_ignore_ascii_case("content-length"))
            || (drop_coding && h.name.eq_ignore_ascii_case("transfer-encoding"))
            || (side.tag.is_some() && h.name.eq_ignore_ascii_case(POOL_TAG))
        {
            continue;
        }
        if h.value.iter().any(|b| *b == b'\r' || *b == b'\n') {
            // A folded line goes out unfolded (RFC 9112 §5.2).
            let unfolded: Vec<u8> = h
                .value
                .iter()
                .map(|b| if *b == b'\r' || *b == b'\n' { b' ' } else { *b })
                .collect();
            out.header(h.name, &unfolded);
        } else {
            out.header(h.name, h.value);
        }
    }
    if let Some(pool) = side.tag {
        out.header(POOL_TAG, pool.as_bytes());
    }
    out.end(client_close);
    Parsed::Final(Final {
        status,
        len,
        framing,
        reusable,
        client_close,
    })
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
