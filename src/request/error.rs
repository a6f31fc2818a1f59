//! The proxy's own answers — `400`, `404`, `408`, `431`, `502`, `504`, … —
//! as one type: a status, a short plain-text body like nginx's (instead of
//! an empty one), and whether the connection closes after it. Each adapter
//! renders it: raw HTTP/1 bytes for the connection guard and the fast path
//! ([`Synthetic::http1`]), a Pingora response for Pingora's path.

/// One of the proxy's own answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    /// The status code.
    pub status: u16,
    /// The connection closes after it.
    pub close: bool,
}

impl Synthetic {
    /// An answer that closes the connection (every error but a `404`).
    pub const fn closing(status: u16) -> Synthetic {
        Synthetic {
            status,
            close: true,
        }
    }

    /// The body: the status and a few words on what happened.
    pub fn body(&self) -> &'static str {
        match self.status {
            400 => "400 Bad Request\n",
            404 => "404 Not Found: no route matches this request\n",
            405 => "405 Method Not Allowed\n",
            408 => "408 Request Timeout\n",
            431 => "431 Request Header Fields Too Large\n",
            500 => "500 Internal Server Error\n",
            501 => "501 Not Implemented\n",
            502 => "502 Bad Gateway: no backend could be reached\n",
            503 => "503 Service Unavailable\n",
            504 => "504 Gateway Timeout: the backend did not answer in time\n",
            _ => "error\n",
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static str {
        http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
    }

    /// The whole answer as HTTP/1.1 bytes.
    pub fn http1(&self) -> Vec<u8> {
        let body = self.body();
        let connection = if self.close { "close" } else { "keep-alive" };
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: {}\r\nconnection: {connection}\r\n\r\n{body}",
            self.status,
            self.reason(),
            body.len()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_and_says_what_happened() {
        let text = String::from_utf8(Synthetic::closing(502).http1()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(head.ends_with("connection: close"));
        assert_eq!(body, "502 Bad Gateway: no backend could be reached\n");
        let kept = Synthetic {
            status: 404,
            close: false,
        };
        assert!(String::from_utf8(kept.http1())
            .expect("utf-8")
            .contains("connection: keep-alive\r\n"));
    }
}
