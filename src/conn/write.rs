//! Writes through [`GuardedStream`], coalesced: the socket below has no
//! write buffer (to keep idle connections small), so a response head and a
//! small body are gathered here and go out in one send at the flush.

use super::GuardedStream;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// Writes up to this size are held for coalescing.
const WRITE_COALESCE: usize = 16 * 1024;

impl GuardedStream {
    /// Send everything held in `wbuf`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while sent < self.wbuf.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "connection closed",
                    )))
                }
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.wbuf.drain(..sent);
                    return Poll::Pending;
                }
            }
        }
        // Free the buffer: an idle connection should hold nothing.
        self.wbuf = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() + buf.len() > WRITE_COALESCE {
            ready!(this.poll_drain(cx))?;
            if buf.len() > WRITE_COALESCE {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
        }
        this.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
