//! The one form the mirror worker works with ([`Copy`], [`Reply`]), made
//! from what a request path captured: HTTP/1 heads parsed, chunked bodies
//! unframed. Pure.

use super::capture::{Capture, Head, Request};

/// A request as it is sent again (to the mirror pool, or to the primary
/// for noise).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Copy {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header (name, value) pairs, hop-by-hop and framing ones left out.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// An answer, as compared.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Reply {
    /// Status code.
    pub status: u16,
    /// (lowercase name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// The body, unless `truncated`.
    pub body: Vec<u8>,
    /// The body was too large to keep: not compared.
    pub truncated: bool,
}

impl Reply {
    /// The comparison's view of it.
    pub(crate) fn answer(&self) -> super::compare::Answer<'_> {
        super::compare::Answer {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Headers not copied: the connection's own, and the framing (the copy's
/// is set from its body).
const NOT_COPIED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

fn copied(name: &str) -> bool {
    !NOT_COPIED.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn is_chunked(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    })
}

/// The request of `c`, ready to send again; `None` if it cannot be read.
pub(crate) fn request(c: &Capture) -> Option<Copy> {
    match c.request.as_ref()? {
        Request::Parts {
            method,
            target,
            headers,
        } => Some(Copy {
            method: method.clone(),
            target: target.clone(),
            headers: headers.iter().filter(|(n, _)| copied(n)).cloned().collect(),
            body: c.request_body.clone(),
        }),
        Request::Http1(raw) => {
            let mut storage = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut storage);
            let httparse::Status::Complete(len) = req.parse(raw).ok()? else {
                return None;
            };
            let rest = &raw[len..];
            let body = if is_chunked(req.headers) {
                dechunk(rest)?
            } else {
                rest.to_vec()
            };
            Some(Copy {
                method: req.method?.to_string(),
                target: req.path?.to_string(),
                headers: req
                    .headers
                    .iter()
                    .filter(|h| copied(h.name))
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
                body,
            })
        }
    }
}

/// The primary's answer of `c`; `None` if its head cannot be read.
pub(crate) fn reply(c: &Capture) -> Option<Reply> {
    let (status, headers) = match c.head.as_ref()? {
        Head::Parts(status, headers) => (*status, headers.clone()),
        Head::Http1(raw) => response_head(raw)?,
    };
    let (body, truncated) = match (c.truncated, c.chunked) {
        (true, _) => (Vec::new(), true),
        (false, true) => match dechunk(&c.body) {
            Some(b) => (b, false),
            None => (Vec::new(), true),
        },
        (false, false) => (c.body.clone(), false),
    };
    Some(Reply {
        status,
        headers,
        body,
        truncated,
    })
}

/// Status and (lowercase name, value) pairs of a raw response head.
pub(crate) fn response_head(raw: &[u8]) -> Option<(u16, Vec<(String, String)>)> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(raw).ok()? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => return None,
    }
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some((resp.code?, headers))
}

/// The payload of a whole chunked body (trailers dropped); `None` if it is
/// malformed or cut short.
pub(crate) fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_text = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        // A size from the backend: as large as it likes, never trusted.
        let end = size.checked_add(2)?;
        if raw.len() < end || &raw[size..end] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_unframed() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"0\r\n\r\n").as_deref(), Some(&b""[..]));
        assert_eq!(dechunk(b"5\r\nab"), None);
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"3\r\nabcX\r\n0\r\n\r\n"), None);
        assert_eq!(dechunk(b"ffffffffffffffff\r\nab\r\n"), None, "no overflow");
    }

    #[test]
    fn an_http1_capture_becomes_a_copy_and_a_reply() {
        let mut c = Capture::new(1024);
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        c.request_http1(raw, 0);
        c.response_head_http1(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        );
        c.response_body(b"4\r\n{\"a\"\r\n");
        c.response_body(b"3\r\n:1}\r\n0\r\n\r\n");
        c.complete();
        let copy = request(&c).expect("request");
        assert_eq!(copy.method, "POST");
        assert_eq!(copy.target, "/a?b=1");
        assert_eq!(copy.body, b"hi");
        let names: Vec<&str> = copy.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "X-Id"]);
        let r = reply(&c).expect("reply");
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{\"a\":1}");
        assert!(r
            .headers
            .contains(&("content-type".into(), "application/json".into())));
    }

    #[test]
    fn a_capture_in_parts_becomes_a_copy_and_a_reply() {
        let mut c = Capture::new(1024);
        c.request_parts(
            "GET",
            "/x",
            [("host", &b"h"[..]), ("te", &b"trailers"[..])].into_iter(),
        );
        c.response_head(404, [("Server", &b"s"[..])].into_iter());
        c.response_body(b"no");
        let copy = request(&c).expect("request");
        assert_eq!(copy.headers, vec![("host".to_string(), b"h".to_vec())]);
        let r = reply(&c).expect("reply");
        assert_eq!((r.status, r.body.as_slice()), (404, &b"no"[..]));
        assert_eq!(r.headers, vec![("server".to_string(), "s".to_string())]);
    }
}
