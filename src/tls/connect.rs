//! cutover's own TLS connector for the proxied requests of pools whose `ca`
//! holds a pinned certificate (see [`super::pin`]).
//!
//! Pingora 0.9.1's rustls connector builds its verifier itself (webpki, or
//! its own skip-hostname / skip-all wrapper) and offers no hook for another
//! `ServerCertVerifier`; webpki then refuses a CA:TRUE server certificate
//! whatever the roots. What Pingora does offer is a custom L4 connector per
//! peer that may return a "virtual" socket. So for those pools the peer is
//! plain to Pingora and this connector makes the TCP connection *and* the
//! TLS handshake with [`super::pin::PinningVerifier`]; Pingora then speaks
//! HTTP over the finished TLS stream.
//!
//! The cost: Pingora only reuses a pooled connection whose file descriptor
//! it can check, and a virtual socket has none, so each request opens a new
//! connection (the peer's idle timeout is zero to close them at once).
//! HTTP/2 is spoken by prior knowledge over the TLS stream, ALPN `h2` only.

use super::reason::Reason;
use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora::{Error, ErrorType};
use rustls::pki_types::ServerName;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Connects to a backend and does the TLS handshake itself.
#[derive(Debug)]
pub(crate) struct PinnedConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    connect_timeout: Duration,
}

impl PinnedConnect {
    /// A connector using `config`, asking for `name` (SNI).
    pub(crate) fn new(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        connect_timeout: Duration,
    ) -> PinnedConnect {
        PinnedConnect {
            config,
            name,
            connect_timeout,
        }
    }
}

#[async_trait]
impl L4Connect for PinnedConnect {
    async fn connect(&self, addr: &SocketAddr) -> pingora::Result<Stream> {
        let Some(inet) = addr.as_inet().copied() else {
            return Error::e_explain(ErrorType::ConnectError, "TLS backends need an IP address");
        };
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(inet)).await {
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("connecting to {inet}: timeout {:?}", self.connect_timeout),
                )
            }
            Ok(Err(e)) => {
                let etype = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                    _ => ErrorType::ConnectError,
                };
                return Err(Error::because(etype, format!("connecting to {inet}"), e));
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| {
                // The context carries the plain-words reason; the cause keeps
                // rustls' own error for whoever looks further.
                let reason = Reason::from_io(&e);
                Error::because(
                    ErrorType::TLSHandshakeFailure,
                    format!("TLS handshake with {inet}: {reason}"),
                    e,
                )
            })?;
        Ok(Stream::from(VirtualSocketStream::new(Box::new(TlsSocket(
            tls,
        )))))
    }
}

/// A finished TLS client stream, as Pingora's virtual socket.
#[derive(Debug)]
struct TlsSocket(tokio_rustls::client::TlsStream<TcpStream>);

impl VirtualSocket for TlsSocket {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> std::io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.0.get_ref().0.set_nodelay(true),
            // Keep-alive probes are not configured for backends; ignore.
            _ => Ok(()),
        }
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The connector for a pool's peers when its `ca` holds a pinned
/// certificate (`None`: Pingora's own connector verifies as usual).
pub(crate) fn for_pool(
    tls: &crate::config::UpstreamTls,
    sni: &str,
    connect_timeout: Duration,
) -> Result<Option<Arc<PinnedConnect>>, super::TlsFileError> {
    let Some(ca) = tls.ca.as_ref().filter(|_| tls.verify) else {
        return Ok(None);
    };
    if super::pin::pinned_of(&super::load_certs(ca)?).is_empty() {
        return Ok(None);
    }
    let alpn = if tls.http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    };
    let config = super::client::client_config_alpn(tls, vec![alpn])?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| super::TlsFileError::Load {
        path: ca.clone(),
        reason: format!("bad TLS server name {sni:?}: {e}"),
    })?;
    Ok(Some(Arc::new(PinnedConnect::new(
        config,
        name,
        connect_timeout,
    ))))
}
