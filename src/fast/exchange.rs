//! One attempt on a backend (send the head, read the answer's head) and the
//! relay of the answer's body to the client.

use super::response::{self, ClientSide, Final, Framing, HeadOut, Parsed};
use super::upstream::{self, Conn, Key};
use crate::chunked::ChunkedEnd;
use crate::health::FailureKind;
use crate::request::retry::Stage;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Room for a backend's response head and the first of its body.
pub(crate) const RESPONSE_BUF: usize = 8 * 1024;

/// A response head larger than this is refused (502); Pingora's limit.
const MAX_RESPONSE_HEAD: usize = 1024 * 1024;

/// Why an attempt failed, as the retry rule ([`crate::request::retry`])
/// needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptError {
    /// As counted against the backend.
    pub kind: FailureKind,
    /// How far it got. A head cut short cannot have been acted on: it ends
    /// with its blank line.
    pub stage: Stage,
    /// The connection came from the idle pool.
    pub reused: bool,
}

impl AttemptError {
    fn at(kind: FailureKind, stage: Stage) -> AttemptError {
        AttemptError {
            kind,
            stage,
            reused: false,
        }
    }
}

/// What one attempt needs.
pub(crate) struct Attempt<'a> {
    /// The backend.
    pub backend: &'a crate::snapshot::Backend,
    /// Its pool's name (for the log).
    pub pool: &'a str,
    /// Which pooled connections suit it.
    pub key: Key<'a>,
    /// The upstream request (head and body), ready to send.
    pub request: &'a [u8],
    /// How much of `request` is the head.
    pub head_len: usize,
    /// Deadline for the connection.
    pub connect_timeout: Duration,
    /// Deadline for each read from the backend.
    pub read_timeout: Duration,
}

impl<'a> Attempt<'a> {
    /// An attempt on backend `id` of `snap` sending `request`, whose first
    /// `head_len` bytes are the head, under the proxy's deadlines.
    pub(crate) fn new(
        snap: &'a crate::snapshot::Snapshot,
        id: crate::snapshot::BackendId,
        request: &'a [u8],
        head_len: usize,
    ) -> Attempt<'a> {
        let settings = &snap.config.proxy;
        let pool = &snap.pools[id.pool];
        let backend = &pool.backends[id.backend];
        Attempt {
            backend,
            pool: &pool.name,
            key: upstream::Key::of(backend),
            request,
            head_len,
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
        }
    }
}

/// A connection to the attempt's backend: a pooled one if one is usable
/// (unless `fresh`), else a new one; and whether it was pooled.
pub(crate) async fn connect(a: &Attempt<'_>, fresh: bool) -> Result<(Conn, bool), AttemptError> {
    if !fresh {
        if let Some(s) = upstream::take_idle(&a.key) {
            return Ok((s, true));
        }
    }
    match upstream::connect(a.key.addr, a.backend.tls.as_ref(), a.connect_timeout).await {
        Ok(s) => Ok((s, false)),
        Err(e) => {
            if let Some(reason) = e.tls {
                crate::tls::diag::backend_tls_failed(a.pool, a.backend, &reason);
            }
            Err(AttemptError::at(e.kind, Stage::Connect))
        }
    }
}

/// Make the attempt: a pooled connection if one is usable (unless `fresh`),
/// the request sent, the response head read into `buf` and its client
/// version written to `out`.
pub(crate) async fn attempt(
    a: &Attempt<'_>,
    fresh: bool,
    side: ClientSide<'_>,
    buf: &mut Vec<u8>,
    out: &mut impl HeadOut,
) -> Result<(Conn, Final), AttemptError> {
    let (mut up, reused) = connect(a, fresh).await?;
    let sent = send(&mut up, a.request, a.head_len, a.read_timeout).await;
    match sent.and(read_head(&mut up, a.read_timeout, side, buf, out).await) {
        Ok(head) => Ok((up, head)),
        Err(e) => Err(AttemptError { reused, ..e }),
    }
}

/// Write `data` (a request head and what follows it) to the backend. How far
/// it got decides a retry: once the whole head (`head_len` bytes) is in the
/// backend's socket, the backend may act on it (a body cut short is still a
/// request begun).
pub(crate) async fn send(
    up: &mut Conn,
    data: &[u8],
    head_len: usize,
    timeout: Duration,
) -> Result<(), AttemptError> {
    let mut written = 0;
    while written < data.len() {
        let failed = match tokio::time::timeout(timeout, up.write(&data[written..])).await {
            Ok(Ok(n)) if n > 0 => {
                written += n;
                continue;
            }
            Ok(_) => FailureKind::Reset,
            Err(_) => FailureKind::ReadTimeout,
        };
        let stage = if written >= head_len {
            Stage::Sent
        } else {
            Stage::HeadUnsent
        };
        return Err(AttemptError::at(failed, stage));
    }
    Ok(())
}

/// Read the backend's response head into `buf` (informational answers
/// skipped) and write its client version to `out`.
pub(crate) async fn read_head(
    up: &mut Conn,
    read_timeout: Duration,
    side: ClientSide<'_>,
    buf: &mut Vec<u8>,
    out: &mut impl HeadOut,
) -> Result<Final, AttemptError> {
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(AttemptError::at(FailureKind::Other, Stage::Answering));
            }
            buf.reserve(buf.len());
        }
        let stage = if buf.is_empty() {
            Stage::Sent
        } else {
            Stage::Answering
        };
        match tokio::time::timeout(read_timeout, up.read_buf(buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(AttemptError::at(FailureKind::Reset, stage)),
            Ok(Ok(_)) => {}
            Err(_) => return Err(AttemptError::at(FailureKind::ReadTimeout, stage)),
        }
        loop {
            match response::parse(buf, side, out) {
                Parsed::Partial => break,
                Parsed::Bad => return Err(AttemptError::at(FailureKind::Other, Stage::Answering)),
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

/// Tracks where a response body ends as its bytes are read.
#[derive(Debug)]
pub(super) struct BodyTracker {
    framing: Framing,
    left: u64,
    chunks: ChunkedEnd,
}

impl BodyTracker {
    /// For a body with this framing.
    pub(super) fn new(framing: Framing) -> BodyTracker {
        BodyTracker {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunks: ChunkedEnd::default(),
        }
    }

    /// Of `data`, the body's next bytes, how many belong to it and whether
    /// its end is among them.
    fn account(&mut self, data: &[u8]) -> Result<(usize, bool), FailureKind> {
        Ok(match self.framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = (data.len() as u64).min(self.left) as usize;
                self.left -= take as u64;
                (take, self.left == 0)
            }
            Framing::Chunked => match self.chunks.feed(data) {
                Ok(Some(n)) => (n, true),
                Ok(None) => (data.len(), false),
                Err(_) => return Err(FailureKind::Other),
            },
            Framing::UntilClose => (data.len(), false),
        })
    }
}

/// Read one more piece of the body from the backend into `buf`.
pub(crate) async fn read_more(
    up: &mut Conn,
    buf: &mut Vec<u8>,
    read_timeout: Duration,
) -> Result<usize, FailureKind> {
    if buf.capacity() == buf.len() {
        // Only a head larger than the buffer gets here with no room.
        buf.reserve(RESPONSE_BUF);
    }
    match tokio::time::timeout(read_timeout, up.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(_)) => Err(FailureKind::Reset),
        Err(_) => Err(FailureKind::ReadTimeout),
    }
}

/// How much of a body [`read_ahead`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ahead {
    /// `buf[..end]` is the head and the body read so far.
    pub end: usize,
    /// The whole body is there.
    pub done: bool,
}

/// Read the body after a head of `from` bytes into `buf` until it is
/// complete or `buf` holds `hold` bytes. A response that fits is then
/// complete before the client is written to, and its backend connection
/// goes back to the pool while a slow client reads (as nginx's buffering
/// does).
pub(super) async fn read_ahead(
    up: &mut Conn,
    buf: &mut Vec<u8>,
    from: usize,
    tracker: &mut BodyTracker,
    read_timeout: Duration,
    hold: usize,
) -> Result<Ahead, FailureKind> {
    let mut end = from;
    loop {
        let (take, done) = tracker.account(&buf[end..])?;
        end += take;
        if done || buf.len() >= hold {
            return Ok(Ahead { end, done });
        }
        if read_more(up, buf, read_timeout).await? == 0 {
            return match tracker.framing {
                Framing::UntilClose => Ok(Ahead { end, done: true }),
                _ => Err(FailureKind::Reset),
            };
        }
    }
}

/// How a body relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyEnd {
    /// The whole body went to the client; the backend connection is at a
    /// clean boundary (reusable if its framing allows).
    Complete { clean: bool },
    /// The backend failed mid-body.
    Upstream(FailureKind),
    /// The client went away (or stopped reading past `send_timeout`).
    Client,
}

/// Relay the rest of a body, its earlier bytes already queued on `client`
/// (and kept in `tee`, for a mirror's comparison, if there is one).
/// Returns how it ended and how many more body bytes the client got.
pub(super) async fn relay_body<C: AsyncWrite + Unpin>(
    up: &mut Conn,
    client: &mut C,
    buf: &mut Vec<u8>,
    tracker: &mut BodyTracker,
    read_timeout: Duration,
    tee: &mut Option<&mut crate::mirror::Capture>,
) -> (BodyEnd, usize) {
    let mut sent = 0usize;
    loop {
        if client.flush().await.is_err() {
            return (BodyEnd::Client, sent);
        }
        buf.clear();
        match read_more(up, buf, read_timeout).await {
            Ok(0) if tracker.framing == Framing::UntilClose => {
                return (BodyEnd::Complete { clean: false }, sent)
            }
            Ok(0) => return (BodyEnd::Upstream(FailureKind::Reset), sent),
            Ok(_) => {}
            Err(kind) => return (BodyEnd::Upstream(kind), sent),
        }
        let (take, done) = match tracker.account(buf) {
            Ok(t) => t,
            Err(kind) => return (BodyEnd::Upstream(kind), sent),
        };
        if let Some(c) = tee.as_deref_mut() {
            c.response_body(&buf[..take]);
        }
        if client.write_all(&buf[..take]).await.is_err() {
            return (BodyEnd::Client, sent);
        }
        sent += take;
        if done {
            // Bytes beyond the body: the backend is out of step.
            let clean = take == buf.len();
            return match client.flush().await {
                Ok(()) => (BodyEnd::Complete { clean }, sent),
                Err(_) => (BodyEnd::Client, sent),
            };
        }
    }
}
