//! What a request path keeps of one mirrored exchange: the request as it
//! went to the primary backend and the primary's answer, as far as the
//! comparison needs them. Each path feeds it what it has — cutover's own
//! paths their HTTP/1 bytes, Pingora's path its parsed heads and body
//! pieces — and the mirror worker makes one form of them
//! ([`super::http1`]).

/// The most of an answer's body kept for comparing; beyond it the bodies
/// are not compared (status and headers still are).
pub const BODY_CAP: usize = 256 * 1024;

/// The request copied.
#[derive(Debug)]
pub(crate) enum Request {
    /// The HTTP/1 request cutover's own paths sent upstream: head and whole
    /// body.
    Http1(Vec<u8>),
    /// Pingora's path: the upstream head's parts, the body kept aside.
    Parts {
        /// Method.
        method: String,
        /// Path and query.
        target: String,
        /// Header (name, value) pairs.
        headers: Vec<(String, Vec<u8>)>,
    },
}

/// The primary's answer head.
#[derive(Debug)]
pub(crate) enum Head {
    /// The raw HTTP/1 head.
    Http1(Vec<u8>),
    /// Status and (lowercase name, value) pairs.
    Parts(u16, Vec<(String, String)>),
}

/// One mirrored exchange, as the request path saw it.
#[derive(Debug)]
pub struct Capture {
    max_body: usize,
    pub(crate) request: Option<Request>,
    /// The request body, when the request came in parts.
    pub(crate) request_body: Vec<u8>,
    pub(crate) head: Option<Head>,
    /// The answer's body as far as kept.
    pub(crate) body: Vec<u8>,
    /// `body` still has its chunked framing (cutover's HTTP/1 path passes
    /// bodies through as they are).
    pub(crate) chunked: bool,
    /// The answer's body went past [`BODY_CAP`].
    pub(crate) truncated: bool,
    /// The request's body was larger than `max_body` (or streamed): not
    /// copied, counted.
    pub(crate) too_large: bool,
    /// The primary's whole answer arrived.
    pub(crate) complete: bool,
}

impl Capture {
    /// A capture of a request whose body may be up to `max_body` bytes.
    pub fn new(max_body: usize) -> Capture {
        Capture {
            max_body,
            request: None,
            request_body: Vec::new(),
            head: None,
            body: Vec::new(),
            chunked: false,
            truncated: false,
            too_large: false,
            complete: false,
        }
    }

    /// The HTTP/1 request sent upstream, `head_len` bytes of head then the
    /// whole body.
    pub fn request_http1(&mut self, raw: &[u8], head_len: usize) {
        if raw.len().saturating_sub(head_len) > self.max_body {
            self.too_large = true;
        } else if self.request.is_none() {
            self.request = Some(Request::Http1(raw.to_vec()));
        }
    }

    /// The request's body streams through (larger than the retry buffer, or
    /// of unknown length): it is not kept, so not copied.
    pub fn streamed(&mut self) {
        self.too_large = true;
    }

    /// The upstream request's head, in parts.
    pub fn request_parts<'a>(
        &mut self,
        method: &str,
        target: &str,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) {
        if self.request.is_none() {
            self.request = Some(Request::Parts {
                method: method.to_string(),
                target: target.to_string(),
                headers: headers.map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            });
        }
    }

    /// A piece of the request's body (requests in parts).
    pub fn request_body(&mut self, piece: &[u8]) {
        if self.request_body.len() + piece.len() > self.max_body {
            self.too_large = true;
            self.request_body = Vec::new();
        } else if !self.too_large {
            self.request_body.extend_from_slice(piece);
        }
    }

    /// The primary's raw HTTP/1 answer head; `chunked`: its body pieces
    /// will come with their framing.
    pub fn response_head_http1(&mut self, raw: &[u8], chunked: bool) {
        self.head = Some(Head::Http1(raw.to_vec()));
        self.chunked = chunked;
        self.body.clear();
        self.truncated = false;
    }

    /// The primary's answer head, in parts.
    pub fn response_head<'a>(
        &mut self,
        status: u16,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) {
        let headers = headers
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        self.head = Some(Head::Parts(status, headers));
        self.body.clear();
        self.truncated = false;
    }

    /// A piece of the primary's answer body.
    pub fn response_body(&mut self, piece: &[u8]) {
        if self.truncated {
            return;
        }
        if self.body.len() + piece.len() > BODY_CAP {
            self.truncated = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(piece);
        }
    }

    /// The primary's whole answer has arrived.
    pub fn complete(&mut self) {
        self.complete = self.head.is_some();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_over_the_limits_are_not_kept() {
        let mut c = Capture::new(4);
        c.request_http1(b"GET / HTTP/1.1\r\n\r\n12345", 18);
        assert!(c.too_large && c.request.is_none());
        let mut c = Capture::new(4);
        c.request_parts("POST", "/", std::iter::empty());
        c.request_body(b"12");
        c.request_body(b"34");
        assert!(!c.too_large);
        c.request_body(b"5");
        assert!(c.too_large && c.request_body.is_empty());
        c.response_head(200, [("Content-Type", &b"text/plain"[..])].into_iter());
        c.response_body(&vec![b'x'; BODY_CAP]);
        assert!(!c.truncated);
        c.response_body(b"y");
        assert!(c.truncated && c.body.is_empty());
        c.complete();
        assert!(c.complete);
    }

    #[test]
    fn a_retry_starts_the_answer_afresh() {
        let mut c = Capture::new(10);
        c.response_head_http1(b"HTTP/1.1 502 Bad Gateway\r\n\r\n", false);
        c.response_body(b"bad");
        c.response_head_http1(b"HTTP/1.1 200 OK\r\n\r\n", true);
        assert!(c.body.is_empty() && c.chunked);
    }
}
