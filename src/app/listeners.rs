//! Listening sockets bound by cutover itself before Pingora starts.
//!
//! Binding first gives an operator a clear error (and exit code) for a port
//! in use instead of a panic inside a service thread, and lets `:0` pick a
//! free port whose real address is logged (tests rely on that). The sockets
//! are handed to Pingora through its listen-fd table, the same table a
//! graceful upgrade fills with the old process's sockets, so both paths end
//! in the same place.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

/// A socket bound ahead of time.
#[derive(Debug)]
pub(crate) struct Prebound {
    /// The address it is bound to (the port is real, never 0).
    pub local: SocketAddr,
    fd: OwnedFd,
}

impl Prebound {
    /// The socket as a standard listener.
    pub(crate) fn into_listener(self) -> TcpListener {
        TcpListener::from(self.fd)
    }
}

/// The accept queue's length asked for (as Pingora's own listeners).
const LISTEN_BACKLOG: libc::c_int = 65535;

/// Bind `addr` now.
pub(crate) fn prebind(addr: SocketAddr) -> std::io::Result<Prebound> {
    let listener = TcpListener::bind(addr)?;
    // The standard library listens with a backlog of 128: a burst of new
    // connections then waits a second for the SYN to be sent again. Listen
    // again with Pingora's backlog (the kernel caps it at somaxconn).
    use std::os::fd::AsRawFd;
    // SAFETY: `listen` on a socket this function owns; no memory is passed.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    Ok(Prebound {
        local,
        fd: OwnedFd::from(listener),
    })
}
