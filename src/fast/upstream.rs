//! Backend connections for cutover's own request paths: connect (and, for
//! a pool with `tls`, the TLS handshake) within `connect_timeout`, and keep
//! idle keep-alive connections for reuse.
//!
//! The idle pool is per thread. Each of Pingora's threads runs its own
//! runtime (work stealing is off), so a connection is only ever used on the
//! thread whose reactor it is registered with, and taking or returning one
//! needs no lock or atomic. Idle connections expire after
//! [`crate::snapshot::peer::UPSTREAM_IDLE`]; expired ones are swept out while
//! the pool is in use, so connections to a removed backend do not linger.

use crate::health::FailureKind;
use crate::tls::client::BackendTls;
use crate::tls::reason::Reason;
use rustls::pki_types::ServerName;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to a backend: plain, or HTTP/1 over TLS.
#[derive(Debug)]
pub(crate) enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (boxed: its state is large, and most pools are plain).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Which idle connections suit a request: the backend's address, and for
/// TLS the name the connection was made for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Key<'a> {
    /// The backend.
    pub addr: SocketAddr,
    /// The TLS server name; `None` for plain connections.
    pub tls: Option<&'a ServerName<'static>>,
}

impl<'a> Key<'a> {
    /// The key of `backend`'s connections.
    pub(crate) fn of(backend: &'a crate::snapshot::Backend) -> Key<'a> {
        Key {
            addr: backend.socket,
            tls: backend.tls.as_ref().map(|t| &t.name),
        }
    }
}

/// A [`Key`] kept in the pool.
#[derive(Debug)]
struct OwnedKey {
    addr: SocketAddr,
    tls: Option<ServerName<'static>>,
}

impl OwnedKey {
    fn matches(&self, key: &Key<'_>) -> bool {
        self.addr == key.addr && self.tls.as_ref() == key.tls
    }
}

/// Idle connections kept per backend and thread.
const MAX_IDLE_PER_BACKEND: usize = 128;

/// How often expired connections are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct IdleConn {
    stream: Conn,
    since: Instant,
}

#[derive(Default)]
struct IdlePool {
    /// Per backend; a handful of backends, so a scan beats a map.
    by_addr: Vec<(OwnedKey, Vec<IdleConn>)>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<IdlePool> = RefCell::new(IdlePool::default());
}

/// Whether an idle connection still looks usable: the backend has neither
/// closed it nor sent anything unasked. No system call unless the reactor
/// has seen the socket become readable.
fn still_open(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match conn {
        Conn::Plain(stream) => match stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                // Readable: an end of stream, stray bytes, or a stale
                // readiness flag from the last response. Only the last is
                // fine.
                let mut probe = [0u8; 1];
                matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        },
        Conn::Tls(tls) => match tls.get_ref().0.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                // A TLS 1.3 server sends session tickets after the
                // handshake: reading through TLS takes those in and finds
                // nothing else (pending) on a usable connection; a
                // close_notify, an end or application bytes rule it out.
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                matches!(
                    Pin::new(&mut **tls).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        },
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

    fn take(&mut self, key: &Key<'_>, max_idle: Duration) -> Option<Conn> {
        let now = Instant::now();
        self.maybe_sweep(now, max_idle);
        let (_, conns) = self.by_addr.iter_mut().find(|(k, _)| k.matches(key))?;
        // Most recently used first: it is the likeliest to still be open.
        while let Some(mut c) = conns.pop() {
            if now.duration_since(c.since) < max_idle && still_open(&mut c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    fn put(&mut self, key: &Key<'_>, stream: Conn, max_idle: Duration) {
        let now = Instant::now();
        self.maybe_sweep(now, max_idle);
        let conn = IdleConn { stream, since: now };
        match self.by_addr.iter_mut().find(|(k, _)| k.matches(key)) {
            Some((_, conns)) if conns.len() < MAX_IDLE_PER_BACKEND => conns.push(conn),
            Some(_) => {}
            None => {
                let owned = OwnedKey {
                    addr: key.addr,
                    tls: key.tls.cloned(),
                };
                self.by_addr.push((owned, vec![conn]));
            }
        }
    }
}

/// An idle connection for `key` from this thread's pool, if one is usable.
pub(super) fn take_idle(key: &Key<'_>) -> Option<Conn> {
    IDLE.with(|p| {
        p.borrow_mut()
            .take(key, crate::snapshot::peer::UPSTREAM_IDLE)
    })
}

/// Keep `stream`, a connection for `key` with no request in progress, for
/// reuse.
pub(crate) fn put_idle(key: &Key<'_>, stream: Conn) {
    IDLE.with(|p| {
        p.borrow_mut()
            .put(key, stream, crate::snapshot::peer::UPSTREAM_IDLE)
    });
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) struct ConnectError {
    /// As counted against the backend.
    pub kind: FailureKind,
    /// Why the TLS handshake failed, when it did.
    pub tls: Option<Reason>,
}

impl From<FailureKind> for ConnectError {
    fn from(kind: FailureKind) -> Self {
        ConnectError { kind, tls: None }
    }
}

/// Open a connection to `addr` (with TLS when `tls`) within `timeout`.
pub(crate) async fn connect(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    timeout: Duration,
) -> Result<Conn, ConnectError> {
    let open = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| FailureKind::ConnectRefused)?;
        // Request heads are small and complete: send them at once.
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(Conn::Plain(stream));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        match connector.connect(tls.name.clone(), stream).await {
            Ok(s) => Ok(Conn::Tls(Box::new(s))),
            Err(e) => Err(ConnectError {
                kind: FailureKind::Tls,
                tls: Some(Reason::from_io(&e)),
            }),
        }
    };
    match tokio::time::timeout(timeout, open).await {
        Err(_) => Err(FailureKind::ConnectTimeout.into()),
        Ok(r) => r,
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
        let key = Key { addr, tls: None };
        fn readable(c: &Conn) -> &TcpStream {
            match c {
                Conn::Plain(s) => s,
                Conn::Tls(_) => unreachable!("plain"),
            }
        }

        // Open, kept, taken again.
        let client = connect(addr, None, ttl).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        pool.put(&key, client, ttl);
        let client = pool.take(&key, ttl).expect("an open connection is reused");

        // The backend closes it while idle: not reused.
        drop(server);
        readable(&client).readable().await.unwrap();
        pool.put(&key, client, ttl);
        assert!(pool.take(&key, ttl).is_none());

        // Stray bytes from the backend: not reused.
        let client = connect(addr, None, ttl).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        server.write_all(b"junk").await.unwrap();
        readable(&client).readable().await.unwrap();
        pool.put(&key, client, ttl);
        assert!(pool.take(&key, ttl).is_none());

        // Another key (a TLS name) does not get it.
        let client = connect(addr, None, ttl).await.unwrap();
        pool.put(&key, client, ttl);
        let name = ServerName::try_from("a.test").unwrap();
        let other = Key {
            addr,
            tls: Some(&name),
        };
        assert!(pool.take(&other, ttl).is_none());

        // Expired.
        assert!(pool.take(&key, Duration::ZERO).is_none());
    }
}
