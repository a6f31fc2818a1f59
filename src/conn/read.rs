//! Reads through the guard: what a request path is handed, framed so that
//! it gets one request and nothing of the next.

use super::{Body, GuardedStream, Mode, HEAD_READ};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// How much a read may hand out now.
enum Allow {
    /// Nothing: hold what arrives.
    Hold,
    /// At most this many bytes.
    Upto(usize),
    /// Up to the end of a chunked body.
    Chunked,
}

impl GuardedStream {
    /// Append up to `max` (at most [`HEAD_READ`]) bytes from the connection
    /// to `replay`. The read goes into a buffer on the stack and only what
    /// arrived is kept, so a waiting connection holds no spare room: an idle
    /// one holds nothing, a stalled one only the bytes it sent.
    pub(super) fn poll_append(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut room = [std::mem::MaybeUninit::<u8>::uninit(); HEAD_READ];
        let mut rb = ReadBuf::uninit(&mut room[..max.min(HEAD_READ)]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        let got = rb.filled();
        if !got.is_empty() {
            if self.unread().is_empty() {
                self.replay = got.to_vec();
                self.replay_pos = 0;
            } else {
                self.replay.extend_from_slice(got);
            }
        }
        Poll::Ready(Ok(got.len()))
    }

    /// Hand out up to `limit` bytes: read-ahead bytes first, then the
    /// connection's.
    fn poll_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        let unread = self.unread();
        if !unread.is_empty() {
            let n = unread.len().min(buf.remaining()).min(limit);
            buf.put_slice(&unread[..n]);
            self.replay_pos += n;
            if self.replay_pos == self.replay.len() {
                self.replay = Vec::new();
                self.replay_pos = 0;
            }
            return Poll::Ready(Ok(n));
        }
        if limit >= buf.remaining() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
            return Poll::Ready(Ok(buf.filled().len() - before));
        }
        let mut part = buf.take(limit);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        // SAFETY: the read initialised `n` bytes of `buf`'s unfilled part
        // through `part`, which views the same memory.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(n))
    }

    /// The request is complete and its answer under way: keep what the
    /// client sends meanwhile (a pipelined request) for its turn, and
    /// report only a close (a close after a pipelined request is held too,
    /// so that request is still answered).
    fn poll_hold(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.eof {
                return if self.unread().is_empty() {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            if self.unread().len() > self.limits.max_bytes {
                // Enough for the next head check to judge.
                return Poll::Pending;
            }
            match ready!(self.poll_append(cx, HEAD_READ)) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// A read as the current mode allows.
    pub(super) fn poll_framed(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let allow = match &self.mode {
            Mode::Idle => Allow::Hold,
            Mode::Plain => Allow::Upto(usize::MAX),
            Mode::Request { head, body } if *head == 0 => match body {
                Body::Length(n) => Allow::Upto(usize::try_from(*n).unwrap_or(usize::MAX)),
                Body::Chunked(_) => Allow::Chunked,
                Body::Unbounded => Allow::Upto(usize::MAX),
                Body::Done => Allow::Hold,
            },
            Mode::Request { head, .. } => Allow::Upto(*head),
        };
        let before = buf.filled().len();
        let n = match allow {
            Allow::Hold => return self.poll_hold(cx),
            Allow::Upto(limit) => ready!(self.poll_some(cx, buf, limit))?,
            Allow::Chunked => ready!(self.poll_some(cx, buf, usize::MAX))?,
        };
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        let Mode::Request { head, body } = &mut self.mode else {
            return Poll::Ready(Ok(()));
        };
        if *head > 0 {
            *head -= n;
            return Poll::Ready(Ok(()));
        }
        match body {
            Body::Length(left) => {
                *left -= n as u64;
                if *left == 0 {
                    *body = Body::Done;
                }
            }
            Body::Chunked(tracker) => {
                let got = &buf.filled()[before..];
                match tracker.feed(got) {
                    Err(_) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "malformed chunked request body",
                        )))
                    }
                    Ok(Some(end)) => {
                        // What follows the body is the next request's.
                        let extra = got[end..].to_vec();
                        buf.set_filled(before + end);
                        *body = Body::Done;
                        self.unread_front(extra);
                    }
                    Ok(None) => {}
                }
            }
            Body::Unbounded | Body::Done => {}
        }
        Poll::Ready(Ok(()))
    }

    /// Put `bytes`, read but not handed out, back in front of the rest.
    fn unread_front(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.unread().is_empty() {
            self.replay = bytes;
        } else {
            // They came from the read-ahead bytes: step back over them.
            self.replay_pos -= bytes.len();
            return;
        }
        self.replay_pos = 0;
    }
}
