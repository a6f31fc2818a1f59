//! The proxy's own accept loop, as a Pingora service.
//!
//! Pingora's listening service spawns, for every connection, a task sized
//! for its largest path (its TLS handshake included): about 9 KB that an
//! idle keep-alive connection holds for as long as it stays open. This loop
//! spawns a task holding only [`Edge::serve`]'s small idle state. It still
//! uses Pingora's listen-fd table, so a graceful upgrade hands these
//! sockets over like any other.

use super::edge::Edge;
use super::listeners::Prebound;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{SocketDigest, Stream};
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use tracing::{error, warn};

/// One listening address of the proxy.
pub(crate) struct Listen {
    /// The key in Pingora's fd table (the address as bound).
    pub key: String,
    /// The socket, when this process bound it (not in an upgrade).
    pub prebound: Option<Prebound>,
}

/// The proxy's listeners and the edge that serves their connections.
pub(crate) struct EdgeService {
    edge: Arc<Edge>,
    listens: Vec<Listen>,
    keys: Vec<String>,
}

impl EdgeService {
    /// Serve `listens` with `edge`.
    pub(crate) fn new(edge: Edge, listens: Vec<Listen>) -> EdgeService {
        let keys = listens.iter().map(|l| l.key.clone()).collect();
        EdgeService {
            edge: Arc::new(edge),
            listens,
            keys,
        }
    }
}

/// The listening socket for `listen`: inherited from the old process in an
/// upgrade, else ours (registered in the table for a later upgrade). As
/// with Pingora's own listeners, the loop owns the descriptor the table
/// names: it is closed when the loop ends at shutdown (so new connections are
/// refused), after an upgrade has already been handed a copy.
pub(crate) fn obtain(
    listen: Listen,
    fds: &Option<ListenFds>,
) -> std::io::Result<std::net::TcpListener> {
    let Some(table) = fds else {
        return match listen.prebound {
            Some(p) => Ok(p.into_listener()),
            None => Err(std::io::Error::other("no socket and no fd table")),
        };
    };
    let mut table = table.lock();
    let raw = match (table.get(&listen.key).copied(), listen.prebound) {
        (Some(fd), _) => fd,
        (None, Some(p)) => {
            let fd = p.into_listener().into_raw_fd();
            table.add(listen.key.clone(), fd);
            fd
        }
        (None, None) => {
            return Err(std::io::Error::other(format!(
                "{} was not handed over by the old process",
                listen.key
            )))
        }
    };
    // SAFETY: `raw` is an open listening socket that nothing else owns: the
    // table only names it, for a later upgrade.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(raw) };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// One of the worker threads' runtimes (each thread runs its own: no work
/// stealing, see `app::build`) for a new connection: of two picked at
/// random, the one with fewer tasks. Pingora's pick is uniform at random,
/// which leaves one thread with noticeably more connections than another,
/// and its requests queue longer (a worse p99).
fn less_busy_runtime() -> tokio::runtime::Handle {
    let a = pingora_runtime::current_handle();
    let b = pingora_runtime::current_handle();
    if b.metrics().num_alive_tasks() < a.metrics().num_alive_tasks() {
        b
    } else {
        a
    }
}

/// The accepted socket `tcp`, registered with the reactor of the runtime
/// entered, and wrapped for Pingora. Done before the connection's task is
/// spawned, not inside it: what an `async` block holds at an `.await` keeps
/// its room in the task for the task's whole life, even once moved out
/// (≈0.7 KB per open connection, measured with 10,000 idle clients).
fn register(
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Option<Stream> {
    let tcp = match tokio::net::TcpStream::from_std(tcp) {
        Ok(t) => t,
        Err(e) => {
            warn!("could not register a connection: {e}");
            return None;
        }
    };
    let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
    let _ = digest.peer_addr.set(Some(peer.into()));
    let _ = digest.local_addr.set(local.map(Into::into));
    let mut l4 = L4Stream::from(tcp);
    pingora::protocols::GetSocketDigest::set_socket_digest(&mut l4, digest);
    Some(Box::new(l4))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    edge: Arc<Edge>,
    mut shutdown: ShutdownWatch,
) {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break } else { continue }
            }
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("accept() failed: {e}");
                if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE)
                {
                    // Out of descriptors: give connections time to close.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // Out of this runtime's reactor: the connection is registered again
        // on the thread that serves it, so its readiness events wake its task
        // there directly, not through a cross-thread wake-up per request.
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                warn!("could not hand a connection over: {e}");
                continue;
            }
        };
        let runtime = less_busy_runtime();
        let stream = {
            // Registered with the serving runtime's reactor from here.
            let _serving = runtime.enter();
            match register(tcp, peer, local) {
                Some(s) => s,
                None => continue,
            }
        };
        let (edge, shutdown) = (edge.clone(), shutdown.clone());
        runtime.spawn(async move { edge.serve(stream, shutdown).await });
    }
}

#[async_trait::async_trait]
impl Service for EdgeService {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut loops = Vec::new();
        for listen in self.listens.drain(..) {
            let key = listen.key.clone();
            let listener = obtain(listen, &fds).and_then(tokio::net::TcpListener::from_std);
            match listener {
                Ok(l) => loops.push(tokio::spawn(accept_loop(
                    l,
                    self.edge.clone(),
                    shutdown.clone(),
                ))),
                Err(e) => error!(listen = %key, "cannot listen: {e}"),
            }
        }
        for l in loops {
            let _ = l.await;
        }
        self.edge.cleanup().await;
    }

    fn name(&self) -> &str {
        "cutover proxy"
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(self.keys.clone())
    }
}
