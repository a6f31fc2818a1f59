//! Client connection guard: the limits on a request head that Pingora does
//! not enforce.
//!
//! Pingora reads a request head of up to 1 MiB, and its timeouts apply per
//! read, so a client trickling one byte at a time can hold a connection
//! forever. [`GuardedStream`] wraps every client connection and, while the
//! connection waits for a request head, enforces:
//!
//! * `idle_timeout` before the first byte (the connection is closed quietly),
//! * `header_timeout` from the first byte to the end of the head (`408`),
//! * `max_header_bytes` for the head (`431`).
//!
//! The wrapper spots the end of the head itself (the blank line), and the
//! proxy marks the phases it cannot see: a request in progress
//! ([`mark_in_request`]) and the wait for the next one ([`mark_await_head`]).
//! HTTP/2 connections are left alone (their streams are multiplexed).
//! Outside the head phase a read is a plain pass-through.

use crate::control::{Lifecycle, OpenConnection};
use async_trait::async_trait;
use pingora::protocols::{Peek, Stream, ALPN};
use pingora::proxy::Session;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

mod delegate;
mod head;
mod write;

use head::HeadState;

const AWAIT_HEAD: u8 = 0;
const IN_REQUEST: u8 = 1;
const OFF: u8 = 2;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

const RESPONSE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 36\r\nconnection: close\r\n\r\n431 Request Header Fields Too Large\n";
const RESPONSE_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 Request Timeout\n";

/// The limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Wait for the first byte of a request at most this long.
    pub idle: Duration,
    /// The whole head must arrive within this after its first byte.
    pub header: Duration,
    /// The head may be at most this long.
    pub max_bytes: usize,
}

#[derive(Debug)]
struct Reject {
    response: &'static [u8],
    written: usize,
    why: &'static str,
}

/// A client connection with request-head limits. See the module docs.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Stream,
    phase: AtomicU8,
    limits: HeadLimits,
    head: Option<HeadState>,
    sleep: Option<Pin<Box<Sleep>>>,
    reject: Option<Reject>,
    /// Bytes read ahead (by [`GuardedStream::wait_for_request`] or
    /// [`Peek::try_peek`]), handed out again by the next reads. Freed once
    /// handed out.
    replay: Vec<u8>,
    replay_pos: usize,
    /// Writes held until a flush, so a response head and a small body go out
    /// in one send (the socket below has no write buffer, to keep idle
    /// connections small). Empty, with no allocation, between responses.
    wbuf: Vec<u8>,
    _open: OpenConnection,
}

impl GuardedStream {
    /// Guard `inner`, a new client connection, counted in `lifecycle`.
    pub fn new(inner: Stream, limits: HeadLimits, lifecycle: &Arc<Lifecycle>) -> GuardedStream {
        let h2 = matches!(inner.selected_alpn_proto(), Some(ALPN::H2));
        GuardedStream {
            inner,
            phase: AtomicU8::new(if h2 { OFF } else { AWAIT_HEAD }),
            limits,
            head: None,
            sleep: None,
            reject: None,
            replay: Vec::new(),
            replay_pos: 0,
            wbuf: Vec::new(),
            _open: OpenConnection::new(lifecycle),
        }
    }

    fn unread_replay(&self) -> &[u8] {
        &self.replay[self.replay_pos..]
    }

    /// One guarded read into a fresh buffer of up to `max` bytes, allocated
    /// only for the duration of the poll unless data arrives.
    fn poll_read_ahead(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Vec<u8>>> {
        let mut v: Vec<u8> = Vec::with_capacity(max);
        let mut rb = ReadBuf::uninit(v.spare_capacity_mut());
        ready!(self.poll_guarded(cx, &mut rb))?;
        let n = rb.filled().len();
        // SAFETY: `poll_guarded` initialised the first `n` bytes of the spare
        // capacity through `rb`.
        unsafe { v.set_len(n) };
        Poll::Ready(Ok(v))
    }

    /// Wait until the client sends its next request (`true`), or closes or
    /// stays idle past `idle` (`false`). What was read is kept and handed out
    /// again by the next reads. Waiting here, instead of inside Pingora's
    /// request reader, keeps an idle keep-alive connection down to this small
    /// struct: no buffer (one is allocated only when data arrives), no
    /// request state. The read takes up to 4 KiB, so a usual request head
    /// costs one read, as it would in Pingora.
    pub async fn wait_for_request(&mut self) -> io::Result<bool> {
        if !self.unread_replay().is_empty() {
            return Ok(true);
        }
        let data = std::future::poll_fn(|cx| self.poll_read_ahead(cx, 4096)).await?;
        if data.is_empty() {
            return Ok(false);
        }
        self.replay = data;
        self.replay_pos = 0;
        Ok(true)
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

    /// Hand `bytes` out again before anything else is read (they were
    /// counted against the head limits when first read).
    pub fn put_back(&mut self, bytes: Vec<u8>) {
        let mut rest = std::mem::replace(&mut self.replay, bytes);
        if !rest.is_empty() {
            // Not expected (the buffer was taken first), but keep the order.
            rest.drain(..self.replay_pos);
            self.replay.extend_from_slice(&rest);
        }
        self.replay_pos = 0;
    }

    /// A request's head was taken: reads (of its body) are plain until
    /// [`GuardedStream::await_next_head`]. (The guard's own scan has usually
    /// said so already, but not for a head that was read ahead behind an
    /// earlier request.)
    pub fn in_request(&self) {
        self.set_phase(IN_REQUEST);
    }

    /// The request is done: the next read waits for a new head, under the
    /// head limits.
    pub fn await_next_head(&self) {
        self.set_phase(AWAIT_HEAD);
    }

    /// The connection turned out to speak HTTP/2 (ALPN or h2c preface).
    pub fn is_http2(&self) -> bool {
        self.phase.load(Relaxed) == OFF
    }

    fn set_phase(&self, phase: u8) {
        // An HTTP/2 connection stays off for good.
        let _ = self
            .phase
            .fetch_update(Relaxed, Relaxed, |p| (p != OFF).then_some(phase));
    }

    fn start_reject(&mut self, response: &'static [u8], why: &'static str) {
        self.head = None;
        self.reject = Some(Reject {
            response,
            written: 0,
            why,
        });
    }

    /// Write the pending error response, then fail the read.
    fn poll_reject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(rej) = self.reject.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while rej.written < rej.response.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &rej.response[rej.written..]))?;
            if n == 0 {
                break;
            }
            rej.written += n;
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, rej.why)))
    }
}

fn guard(session: &Session) -> Option<&GuardedStream> {
    let stream = session.as_downstream().stream()?;
    (**stream).as_any().downcast_ref::<GuardedStream>()
}

/// The request head was read: stop enforcing head limits.
pub fn mark_in_request(session: &Session) {
    if let Some(g) = guard(session) {
        g.set_phase(IN_REQUEST);
    }
}

/// The request is done: the next read waits for a new head.
pub fn mark_await_head(session: &Session) {
    if let Some(g) = guard(session) {
        g.set_phase(AWAIT_HEAD);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reject.is_some() {
            return this.poll_reject(cx);
        }
        let replay = this.unread_replay();
        if !replay.is_empty() {
            // Already counted against the head limits when first read.
            let n = replay.len().min(buf.remaining());
            buf.put_slice(&replay[..n]);
            this.replay_pos += n;
            if this.replay_pos == this.replay.len() {
                this.replay = Vec::new();
                this.replay_pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        this.poll_guarded(cx, buf)
    }
}

impl GuardedStream {
    /// A read from the connection with the head limits applied.
    fn poll_guarded(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        if this.reject.is_some() {
            return this.poll_reject(cx);
        }
        if this.phase.load(Relaxed) != AWAIT_HEAD {
            this.head = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let head = this.head.get_or_insert_with(|| HeadState {
            started: Instant::now(),
            first_byte: None,
            bytes: 0,
            after_newline: false,
        });
        match polled {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if head.bytes == 0 && new.starts_with(H2_PREFACE_START) {
                    this.phase.store(OFF, Relaxed);
                    this.head = None;
                    return Poll::Ready(Ok(()));
                }
                if head.first_byte.is_none() {
                    head.first_byte = Some(Instant::now());
                }
                let end = head.feed(new);
                head.bytes += end.unwrap_or(new.len());
                if head.bytes > this.limits.max_bytes {
                    buf.set_filled(before);
                    this.start_reject(RESPONSE_431, "request head too large");
                    return this.poll_reject(cx);
                }
                if end.is_some() {
                    this.set_phase(IN_REQUEST);
                    this.head = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = match head.first_byte {
                    None => head.started + this.limits.idle,
                    Some(t) => t + this.limits.header,
                };
                let waiting_first_byte = head.first_byte.is_none();
                let deadline = tokio::time::Instant::from_std(deadline);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if waiting_first_byte {
                    // Idle keep-alive connection: close quietly (EOF).
                    this.head = None;
                    return Poll::Ready(Ok(()));
                }
                this.start_reject(RESPONSE_408, "request head timed out");
                this.poll_reject(cx)
            }
        }
    }
}

/// Pingora peeks for the HTTP/2 preface by waiting for 24 bytes with no
/// timeout at all. Here the peek reads through the guard (so the head limits
/// apply) and stops as soon as the bytes cannot be the preface.
#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        loop {
            let have = self.unread_replay();
            let impossible = !H2_PREFACE.starts_with(&have[..have.len().min(H2_PREFACE.len())]);
            if have.len() >= buf.len() || impossible {
                let n = have.len().min(buf.len());
                buf[..n].copy_from_slice(&have[..n]);
                buf[n..].fill(0);
                if have.starts_with(H2_PREFACE) {
                    self.phase.store(OFF, Relaxed);
                    self.head = None;
                }
                return Ok(true);
            }
            let more = std::future::poll_fn(|cx| self.poll_read_ahead(cx, 4096)).await?;
            if more.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before a request",
                ));
            }
            let rest = self.replay.split_off(self.replay_pos);
            self.replay = rest;
            self.replay.extend_from_slice(&more);
            self.replay_pos = 0;
        }
    }
}
