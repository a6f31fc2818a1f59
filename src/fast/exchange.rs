//! One attempt on a backend (send the head, read the answer's head) and the
//! relay of the answer's body to the client.

use super::chunked::ChunkedEnd;
use super::response::{self, ClientSide, Final, Framing, Parsed};
use super::upstream;
use crate::health::FailureKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Room for a backend's response head and the first of its body.
pub const RESPONSE_BUF: usize = 16 * 1024;

/// A response head larger than this is refused (502); Pingora's limit.
const MAX_RESPONSE_HEAD: usize = 1024 * 1024;

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptError {
    /// As counted against the backend.
    pub kind: FailureKind,
    /// Some of the backend's answer had arrived.
    pub got_bytes: bool,
    /// The whole request head reached the backend's socket, so the backend
    /// may have acted on it. (A head cut short cannot have been processed:
    /// it ends with its blank line.)
    pub sent: bool,
}

impl AttemptError {
    fn new(kind: FailureKind, got_bytes: bool) -> AttemptError {
        AttemptError {
            kind,
            got_bytes,
            sent: true,
        }
    }

    fn unsent(kind: FailureKind) -> AttemptError {
        AttemptError {
            kind,
            got_bytes: false,
            sent: false,
        }
    }

    /// Whether sending the request again cannot make the backend act on it
    /// twice.
    pub fn safe_to_resend(&self, idempotent: bool) -> bool {
        !self.sent || (idempotent && !self.got_bytes)
    }
}

/// What one attempt needs.
pub struct Attempt<'a> {
    /// The backend.
    pub addr: SocketAddr,
    /// The upstream request head, ready to send.
    pub request: &'a [u8],
    /// The request may be sent again (its method is idempotent).
    pub idempotent: bool,
    /// Deadline for the connection.
    pub connect_timeout: Duration,
    /// Deadline for each read from the backend.
    pub read_timeout: Duration,
}

/// Make the attempt: a pooled connection if one is usable (a fresh one when
/// the pooled one turns out to be stale), the request sent, the response
/// head read into `buf` and its client version written to `out`.
pub async fn attempt(
    a: &Attempt<'_>,
    side: ClientSide<'_>,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(TcpStream, Final), AttemptError> {
    let mut pooled = upstream::take_idle(a.addr);
    loop {
        let reused = pooled.is_some();
        let mut up = match pooled.take() {
            Some(s) => s,
            None => upstream::connect(a.addr, a.connect_timeout)
                .await
                .map_err(AttemptError::unsent)?,
        };
        match exchange(&mut up, a, side, buf, out).await {
            Ok(head) => return Ok((up, head)),
            // The backend had closed the idle connection just as it was
            // reused: nothing was processed, so try a fresh connection.
            Err(e) if reused && e.kind == FailureKind::Reset && e.safe_to_resend(a.idempotent) => {
                buf.clear();
            }
            Err(e) => return Err(e),
        }
    }
}

async fn exchange(
    up: &mut TcpStream,
    a: &Attempt<'_>,
    side: ClientSide<'_>,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Final, AttemptError> {
    match tokio::time::timeout(a.read_timeout, up.write_all(a.request)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(AttemptError::unsent(FailureKind::Reset)),
        Err(_) => return Err(AttemptError::unsent(FailureKind::ReadTimeout)),
    }
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(AttemptError::new(FailureKind::Other, true));
            }
            buf.reserve(buf.len());
        }
        let got_bytes = !buf.is_empty();
        match tokio::time::timeout(a.read_timeout, up.read_buf(buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(AttemptError::new(FailureKind::Reset, got_bytes)),
            Ok(Ok(_)) => {}
            Err(_) => return Err(AttemptError::new(FailureKind::ReadTimeout, got_bytes)),
        }
        loop {
            match response::parse(buf, side, out) {
                Parsed::Partial => break,
                Parsed::Bad => return Err(AttemptError::new(FailureKind::Other, true)),
                Parsed::Final(head) => return Ok(head),
                // 100 Continue, 103 Early Hints: not passed on (nothing
                // here asked for them); the final head follows.
                Parsed::Informational(len) => {
                    buf.drain(..len);
                    if buf.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}

/// How a body relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body went to the client; the backend connection is at a
    /// clean boundary (reusable if its framing allows).
    Complete { clean: bool },
    /// The backend failed mid-body.
    Upstream(FailureKind),
    /// The client went away.
    Client,
}

/// Relay the body of a response whose head (of `head_len` bytes) is at the
/// start of `buf`, after the client head already queued on `client`.
/// Returns how it ended and how many body bytes the client got.
pub async fn relay_body<C: AsyncWrite + Unpin>(
    up: &mut TcpStream,
    client: &mut C,
    buf: &mut Vec<u8>,
    head_len: usize,
    framing: Framing,
    read_timeout: Duration,
) -> (BodyEnd, usize) {
    let mut sent = 0usize;
    let mut start = head_len;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunks = ChunkedEnd::default();
    loop {
        let data = &buf[start..];
        let (take, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = (data.len() as u64).min(left) as usize;
                left -= take as u64;
                (take, left == 0)
            }
            Framing::Chunked => match chunks.feed(data) {
                Ok(Some(n)) => (n, true),
                Ok(None) => (data.len(), false),
                Err(_) => return (BodyEnd::Upstream(FailureKind::Other), sent),
            },
            Framing::UntilClose => (data.len(), false),
        };
        if client.write_all(&data[..take]).await.is_err() {
            return (BodyEnd::Client, sent);
        }
        sent += take;
        if done {
            // Bytes beyond the body: the backend is out of step.
            let clean = start + take == buf.len();
            return match client.flush().await {
                Ok(()) => (BodyEnd::Complete { clean }, sent),
                Err(_) => (BodyEnd::Client, sent),
            };
        }
        if client.flush().await.is_err() {
            return (BodyEnd::Client, sent);
        }
        buf.clear();
        start = 0;
        match tokio::time::timeout(read_timeout, up.read_buf(buf)).await {
            Ok(Ok(0)) if framing == Framing::UntilClose => {
                return (BodyEnd::Complete { clean: false }, sent)
            }
            Ok(Ok(0)) | Ok(Err(_)) => return (BodyEnd::Upstream(FailureKind::Reset), sent),
            Ok(Ok(_)) => {}
            Err(_) => return (BodyEnd::Upstream(FailureKind::ReadTimeout), sent),
        }
    }
}
