//! Upstream peers: the Pingora `HttpPeer` for each backend, built once per
//! snapshot with every timeout set (Pingora's defaults have none) and cloned
//! per attempt.

use super::BuildError;
use crate::config::{PoolConfig, ProxySettings};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::time::Duration;

/// How long an idle upstream keep-alive connection is kept for reuse.
pub(crate) const UPSTREAM_IDLE: Duration = Duration::from_secs(30);

/// The peer for backend `addr` of `pool`.
pub(crate) fn build_peer(
    settings: &ProxySettings,
    pool: &PoolConfig,
    addr: &str,
    socket: SocketAddr,
) -> Result<HttpPeer, BuildError> {
    let (tls, sni) = match &pool.tls {
        Some(t) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (true, t.sni.clone().unwrap_or_else(|| host.to_string()))
        }
        None => (false, String::new()),
    };
    let tls_err = |reason: String| BuildError::Tls {
        pool: pool.name.clone(),
        reason,
    };
    let pinned = match &pool.tls {
        Some(t) => crate::tls::connect::for_pool(t, &sni, settings.connect_timeout)
            .map_err(|e| tls_err(e.to_string()))?,
        None => None,
    };
    // With a pinned certificate cutover does the handshake itself, so the
    // peer is plain to Pingora (see `tls::connect`).
    let mut peer = HttpPeer::new(socket, tls && pinned.is_none(), sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(settings.connect_timeout);
    // The TLS handshake counts against the same budget as the TCP connect.
    o.total_connection_timeout = Some(settings.connect_timeout);
    o.read_timeout = Some(settings.read_timeout);
    o.write_timeout = Some(settings.read_timeout);
    o.idle_timeout = Some(UPSTREAM_IDLE);
    if let Some(t) = &pool.tls {
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
        o.alpn = if t.http2 { ALPN::H2H1 } else { ALPN::H1 };
        if let Some(ca) = &t.ca {
            o.ca = Some(crate::tls::upstream_ca(ca).map_err(|e| tls_err(e.to_string()))?);
        }
        if let Some(connect) = pinned {
            o.custom_l4 = Some(connect);
            // Over a finished TLS stream Pingora sees no ALPN: HTTP/2 is
            // spoken by prior knowledge, as the connector offered only h2.
            o.alpn = if t.http2 { ALPN::H2 } else { ALPN::H1 };
            // Pingora cannot check a virtual socket for reuse: close at once
            // rather than keep connections that will never be taken again.
            o.idle_timeout = Some(Duration::ZERO);
        }
    }
    Ok(peer)
}
