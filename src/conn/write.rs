//! Writes through [`GuardedStream`]: coalesced (the socket below has no
//! write buffer, to keep idle connections small, so a response head and a
//! small body are gathered here and go out in one send at the flush), and
//! under `send_timeout`: a client that stops reading fails the write once
//! no write has made progress for that long (nginx's `send_timeout`), so
//! it holds neither its connection nor a backend's for ever. The timer is
//! armed only while a write is stalled.

use super::GuardedStream;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// Writes are held for coalescing up to this much in all.
const WRITE_COALESCE: usize = 16 * 1024;

/// A write this large is not held (nor copied): it goes out at once.
const DIRECT_WRITE: usize = 4 * 1024;

impl GuardedStream {
    /// Whether the send deadline has passed, arming it on the first stall.
    fn send_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.limits.send;
        let sleep = self
            .send_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.send_armed {
            self.send_armed = true;
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// What a stalled write returns: pending, or the timeout error.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.send_timed_out(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client did not read the response within send_timeout",
            )));
        }
        Poll::Pending
    }

    /// One write to the connection under the send deadline.
    fn poll_send(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx),
            done => {
                self.send_armed = false;
                done
            }
        }
    }

    /// Send everything held in `wbuf`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while sent < self.wbuf.len() {
            let polled = Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[sent..]);
            match polled {
                Poll::Pending => {
                    self.wbuf.drain(..sent);
                    return self.stalled(cx);
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "connection closed",
                    )))
                }
                Poll::Ready(Ok(n)) => {
                    self.send_armed = false;
                    sent += n;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        // Free the buffer: an idle connection should hold nothing.
        self.wbuf = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Flush the connection under the send deadline (TLS may hold bytes).
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx),
            done => {
                self.send_armed = false;
                done
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.len() < DIRECT_WRITE && this.wbuf.len() + buf.len() <= WRITE_COALESCE {
            this.wbuf.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // A large write goes out now, with what is held in front of it in
        // the same system call, and is not copied: a client that stops
        // reading then costs the caller's buffer only.
        loop {
            if this.wbuf.is_empty() {
                return this.poll_send(cx, buf);
            }
            let held = this.wbuf.len();
            let parts = [IoSlice::new(&this.wbuf), IoSlice::new(buf)];
            match Pin::new(&mut this.inner).poll_write_vectored(cx, &parts) {
                Poll::Pending => return this.stalled(cx),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "connection closed",
                    )))
                }
                Poll::Ready(Ok(n)) => {
                    this.send_armed = false;
                    if n < held {
                        this.wbuf.drain(..n);
                        continue;
                    }
                    this.wbuf = Vec::new();
                    if n > held {
                        return Poll::Ready(Ok(n - held));
                    }
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.poll_flush_inner(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.stalled(cx),
            done => done,
        }
    }
}
