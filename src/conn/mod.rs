//! The client connection guard: every deadline and limit on what a client
//! sends or fails to read, and the edge's one reading of HTTP/1 framing.
//!
//! [`GuardedStream`] wraps every client connection. It reads each HTTP/1
//! request head itself ([`GuardedStream::next_request`]) under the head
//! limits, so neither request path ever waits on a client without a
//! deadline:
//!
//! * `idle_timeout` before the first byte of a request (closed quietly),
//! * `header_timeout` from that byte to the end of the head (`408`), empty
//!   lines before a request line included,
//! * `max_header_bytes` for the head (`431`), bytes read ahead behind an
//!   earlier request included,
//!
//! then checks the head ([`check`]: `400`/`405`/`501` for what no hop should
//! read two ways) and learns how its body is framed. A request handed to
//! Pingora's proxy is handed out exactly — its head, then its body up to
//! its length or its last chunk — so nothing pipelined behind it can be
//! swallowed; what follows waits here for the next turn. Writes to the
//! client carry `send_timeout` (between two writes that make progress).
//! HTTP/2 connections must send their preface within the head deadlines;
//! after it the guard is a pass-through (Pingora keeps HTTP/2's idle
//! deadline).

use crate::chunked::ChunkedEnd;
use crate::lifecycle::{Lifecycle, OpenConnection};
use async_trait::async_trait;
use check::{BodyFraming, Rules};
use pingora::protocols::{Peek, Stream, ALPN};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

pub(crate) mod check;
mod delegate;
mod head;
mod read;
mod write;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest single read while waiting for a head: a usual head comes in one.
const HEAD_READ: usize = 4096;

/// The limits a client connection lives under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wait for the first byte of a request at most this long.
    pub idle: Duration,
    /// The whole head must arrive within this after its first byte.
    pub header: Duration,
    /// The head may be at most this long.
    pub max_bytes: usize,
    /// A write to the client may stall at most this long.
    pub send: Duration,
    /// What the head check relaxes.
    pub rules: Rules,
}

/// What [`GuardedStream::next_request`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A checked HTTP/1 request head is at the front of the stream.
    Request,
    /// The client sent the HTTP/2 preface: hand the connection to HTTP/2.
    Http2,
    /// The client closed, stayed idle past `idle_timeout`, or broke off.
    Closed,
    /// The head was refused; the error response (this status) was sent and
    /// the connection is to be closed.
    Refused(u16),
}

/// What the guard hands out on reads.
#[derive(Debug)]
enum Mode {
    /// Between requests: nothing is handed out (heads are read by
    /// [`GuardedStream::next_request`]).
    Idle,
    /// A request handed to Pingora: `head` bytes of its head left, then its
    /// body.
    Request { head: usize, body: Body },
    /// Everything, as it comes: a body the fast path frames itself, an
    /// HTTP/2 connection.
    Plain,
}

/// What is left of a request body handed to Pingora.
#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(ChunkedEnd),
    /// An upgrade: everything that follows.
    Unbounded,
    /// The request is complete: reads hold until its response is done.
    Done,
}

/// A client connection under the guard's limits. See the module docs.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Stream,
    limits: Limits,
    mode: Mode,
    /// The head at the front, as checked: its length and body framing.
    checked: Option<(usize, BodyFraming)>,
    /// HTTP/2 by ALPN: the preface must come first.
    expect_h2: bool,
    /// No request was read yet (h2c prior knowledge is only valid first).
    fresh: bool,
    /// When the wait for the next head began, and its first byte came.
    wait_started: Option<Instant>,
    first_byte: Option<Instant>,
    /// How far the search for the head's end got (so a trickled head is
    /// not scanned again from its start on every read).
    scanned: usize,
    /// The head deadline's timer, allocated on the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The send deadline's timer, armed while a write is stalled.
    send_sleep: Option<Pin<Box<Sleep>>>,
    send_armed: bool,
    /// Bytes read ahead and not yet handed out. Freed once handed out.
    replay: Vec<u8>,
    replay_pos: usize,
    /// The client closed its side.
    eof: bool,
    /// Writes held until a flush, so a response head and a small body go out
    /// in one send (the socket below has no write buffer, to keep idle
    /// connections small). Empty, with no allocation, between responses.
    wbuf: Vec<u8>,
    _open: OpenConnection,
}

impl GuardedStream {
    /// Guard `inner`, a new client connection, counted in `lifecycle`.
    pub fn new(inner: Stream, limits: Limits, lifecycle: &Arc<Lifecycle>) -> GuardedStream {
        let expect_h2 = matches!(inner.selected_alpn_proto(), Some(ALPN::H2));
        GuardedStream {
            inner,
            limits,
            mode: Mode::Idle,
            checked: None,
            expect_h2,
            fresh: true,
            wait_started: None,
            first_byte: None,
            scanned: 0,
            sleep: None,
            send_sleep: None,
            send_armed: false,
            replay: Vec::new(),
            replay_pos: 0,
            eof: false,
            wbuf: Vec::new(),
            _open: OpenConnection::new(lifecycle),
        }
    }

    fn unread(&self) -> &[u8] {
        &self.replay[self.replay_pos..]
    }

    /// Wait for the next request head (or the HTTP/2 preface), under the
    /// head limits, and check it. A refused head is answered here. The
    /// head stays at the front of the stream; an idle connection holds no
    /// buffer while it waits (one is allocated only when data arrives).
    pub async fn next_request(&mut self) -> Next {
        self.mode = Mode::Idle;
        self.checked = None;
        let next = std::future::poll_fn(|cx| self.poll_next(cx)).await;
        self.wait_started = None;
        self.first_byte = None;
        self.scanned = 0;
        if let Next::Refused(status) = next {
            let response = crate::request::Synthetic::closing(status).http1();
            let _ = tokio::io::AsyncWriteExt::write_all(self, &response).await;
            let _ = tokio::io::AsyncWriteExt::flush(self).await;
        }
        next
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        loop {
            if let Some(next) = self.examine() {
                return Poll::Ready(next);
            }
            if self.eof {
                return Poll::Ready(Next::Closed);
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Next::Closed),
                Ok(_) => {}
                // An HTTP/1 answer means nothing to an HTTP/2 client.
                Err(e) if e.kind() == io::ErrorKind::TimedOut && self.expect_h2 => {
                    return Poll::Ready(Next::Closed)
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Poll::Ready(Next::Refused(408))
                }
                Err(_) => return Poll::Ready(Next::Closed),
            }
        }
    }

    /// What the bytes read so far amount to, if anything yet.
    fn examine(&mut self) -> Option<Next> {
        let buffered = self.unread();
        if buffered.is_empty() {
            return None;
        }
        let may_be_preface = H2_PREFACE.starts_with(&buffered[..buffered.len().min(24)]);
        if self.expect_h2 || (self.fresh && may_be_preface) {
            if buffered.len() >= H2_PREFACE.len() && may_be_preface {
                self.mode = Mode::Plain;
                return Some(Next::Http2);
            }
            if !may_be_preface && self.expect_h2 {
                return Some(Next::Closed);
            }
            if may_be_preface {
                return None;
            }
        }
        let max = self.limits.max_bytes;
        match head::scan(buffered, self.scanned) {
            head::Scan::Partial { resume, .. } => {
                let over = buffered.len() > max;
                self.scanned = resume;
                over.then_some(Next::Refused(431))
            }
            head::Scan::Complete { start, end } => {
                if end > max {
                    return Some(Next::Refused(431));
                }
                match check::check(&buffered[start..end], self.limits.rules) {
                    Err(refused) => {
                        tracing::debug!(
                            status = refused.status,
                            "request refused: {}",
                            refused.why
                        );
                        Some(Next::Refused(refused.status))
                    }
                    Ok(c) => {
                        // Empty lines before the request line are dropped.
                        let pos = self.replay_pos + start;
                        if let Some(head) = c.rewritten {
                            let rest = pos + (end - start);
                            self.replay.splice(pos..rest, head);
                        }
                        self.replay_pos = pos;
                        self.checked = Some((c.len, c.body));
                        self.fresh = false;
                        Some(Next::Request)
                    }
                }
            }
        }
    }

    /// Read more of a head into `replay`, with its deadline: `idle` before
    /// its first byte, `header` after. Returns the bytes read (0: closed or
    /// idle too long); a late head is a `TimedOut` error (`408`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let started = *self.wait_started.get_or_insert_with(Instant::now);
        if self.first_byte.is_none() && !self.unread().is_empty() {
            self.first_byte = Some(Instant::now());
        }
        if self.replay_pos > 0 {
            self.replay.drain(..self.replay_pos);
            self.scanned = self.scanned.saturating_sub(self.replay_pos);
            self.replay_pos = 0;
        }
        let room = HEAD_READ.min(self.limits.max_bytes + 1);
        let polled = self.poll_append(cx, room);
        match polled {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(0))
            }
            Poll::Ready(Ok(n)) => {
                self.first_byte.get_or_insert_with(Instant::now);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = match self.first_byte {
                    None => started + self.limits.idle,
                    Some(t) => t + self.limits.header,
                };
                if self.poll_deadline(cx, deadline).is_pending() {
                    return Poll::Pending;
                }
                if self.first_byte.is_some() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head timed out",
                    )));
                }
                Poll::Ready(Ok(0))
            }
        }
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }

    /// Take the bytes read ahead and not yet handed out (the fast path parses
    /// them in place). What it does not use goes back with
    /// [`GuardedStream::put_back`].
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.replay);
        if self.replay_pos > 0 {
            bytes.drain(..self.replay_pos);
            self.replay_pos = 0;
        }
        bytes
    }

    /// Hand `bytes` out again before anything else is read.
    pub fn put_back(&mut self, bytes: Vec<u8>) {
        let mut rest = std::mem::replace(&mut self.replay, bytes);
        if !rest.is_empty() {
            // Not expected (the buffer was taken first), but keep the order.
            rest.drain(..self.replay_pos);
            self.replay.extend_from_slice(&rest);
        }
        self.replay_pos = 0;
    }

    /// The fast path took the request at the front: reads pass through
    /// (it reads exactly the body it framed).
    pub fn in_request(&mut self) {
        self.mode = Mode::Plain;
    }

    /// Hand the request at the front to Pingora: reads give it this
    /// request's head and body and nothing beyond.
    pub fn hand_over(&mut self) {
        let Some((head, framing)) = self.checked.take() else {
            self.mode = Mode::Plain;
            return;
        };
        let body = match framing {
            BodyFraming::None | BodyFraming::Length(0) => Body::Done,
            BodyFraming::Length(n) => Body::Length(n),
            BodyFraming::Chunked => Body::Chunked(ChunkedEnd::default()),
            BodyFraming::Tunnel => Body::Unbounded,
        };
        self.mode = Mode::Request { head, body };
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_framed(cx, buf)
    }
}

/// Pingora peeks for the h2c preface; by then the guard holds it.
#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let have = self.unread();
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        buf[n..].fill(0);
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
