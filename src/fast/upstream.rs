//! Backend connections for the fast path: connect with a deadline, and keep
//! idle keep-alive connections for reuse.
//!
//! The idle pool is per thread. Each of Pingora's threads runs its own
//! runtime (work stealing is off), so a connection is only ever used on the
//! thread whose reactor it is registered with, and taking or returning one
//! needs no lock or atomic. Idle connections expire after
//! [`crate::snapshot::peer::UPSTREAM_IDLE`]; expired ones are swept out while
//! the pool is in use, so connections to a removed backend do not linger.

use crate::health::FailureKind;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per backend and thread.
const MAX_IDLE_PER_BACKEND: usize = 128;

/// How often expired connections are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct IdleConn {
    stream: TcpStream,
    since: Instant,
}

#[derive(Default)]
struct IdlePool {
    /// Per backend address; a handful of backends, so a scan beats a map.
    by_addr: Vec<(SocketAddr, Vec<IdleConn>)>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<IdlePool> = RefCell::new(IdlePool::default());
}

/// Whether an idle connection still looks usable: the backend has neither
/// closed it nor sent anything unasked. No system call unless the reactor
/// has seen the socket become readable.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            // Readable: an end of stream, stray bytes, or a stale readiness
            // flag from the last response. Only the last is fine.
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

impl IdlePool {
    fn sweep(&mut self, now: Instant, max_idle: Duration) {
        for (_, conns) in &mut self.by_addr {
            conns.retain(|c| now.duration_since(c.since) < max_idle);
        }
        self.by_addr.retain(|(_, conns)| !conns.is_empty());
        self.last_sweep = Some(now);
    }

    /// Sweep if the last sweep is [`SWEEP_EVERY`] old.
    fn maybe_sweep(&mut self, now: Instant, max_idle: Duration) {
        if self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            self.sweep(now, max_idle);
        }
    }

    fn take(&mut self, addr: SocketAddr, max_idle: Duration) -> Option<TcpStream> {
        let now = Instant::now();
        self.maybe_sweep(now, max_idle);
        let (_, conns) = self.by_addr.iter_mut().find(|(a, _)| *a == addr)?;
        // Most recently used first: it is the likeliest to still be open.
        while let Some(c) = conns.pop() {
            if now.duration_since(c.since) < max_idle && still_open(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    fn put(&mut self, addr: SocketAddr, stream: TcpStream, max_idle: Duration) {
        let now = Instant::now();
        self.maybe_sweep(now, max_idle);
        let conn = IdleConn { stream, since: now };
        match self.by_addr.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, conns)) if conns.len() < MAX_IDLE_PER_BACKEND => conns.push(conn),
            Some(_) => {}
            None => self.by_addr.push((addr, vec![conn])),
        }
    }
}

/// An idle connection to `addr` from this thread's pool, if one is usable.
pub(super) fn take_idle(addr: SocketAddr) -> Option<TcpStream> {
    IDLE.with(|p| {
        p.borrow_mut()
            .take(addr, crate::snapshot::peer::UPSTREAM_IDLE)
    })
}

/// Keep `stream`, a connection to `addr` with no request in progress, for
/// reuse.
pub(crate) fn put_idle(addr: SocketAddr, stream: TcpStream) {
    IDLE.with(|p| {
        p.borrow_mut()
            .put(addr, stream, crate::snapshot::peer::UPSTREAM_IDLE)
    });
}

/// Open a connection to `addr` within `timeout`.
pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, FailureKind> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(FailureKind::ConnectTimeout),
        Ok(Err(_)) => Err(FailureKind::ConnectRefused),
        Ok(Ok(stream)) => {
            // Request heads are small and complete: send them at once.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn closed_and_expired_connections_are_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pool = IdlePool::default();
        let ttl = Duration::from_secs(30);

        // Open, kept, taken again.
        let client = connect(addr, ttl).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        pool.put(addr, client, ttl);
        let client = pool.take(addr, ttl).expect("an open connection is reused");

        // The backend closes it while idle: not reused.
        drop(server);
        client.readable().await.unwrap();
        pool.put(addr, client, ttl);
        assert!(pool.take(addr, ttl).is_none());

        // Stray bytes from the backend: not reused.
        let client = connect(addr, ttl).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        server.write_all(b"junk").await.unwrap();
        client.readable().await.unwrap();
        pool.put(addr, client, ttl);
        assert!(pool.take(addr, ttl).is_none());

        // Expired.
        let client = connect(addr, ttl).await.unwrap();
        pool.put(addr, client, ttl);
        assert!(pool.take(addr, Duration::ZERO).is_none());
    }
}
