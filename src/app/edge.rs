//! The client-facing application: TLS on TLS listeners, request-head limits
//! on every connection (see [`crate::conn`]), and the HTTP/1 keep-alive loop,
//! handing each request to cutover's fast path ([`crate::fast`]) or, when
//! that does not take it, to Pingora's HTTP proxy. HTTP/2 connections go to
//! cutover's HTTP/2 path ([`crate::http2`]), or to Pingora whole when their
//! requests may need a TLS or HTTP/2 backend.

use crate::conn::check::Rules;
use crate::conn::{GuardedStream, Limits, Next};
use crate::control::Control;
use crate::fast::{self, ConnInfo, Served};
use crate::proxy::CutoverProxy;
use crate::tls::edge::EdgeTls;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long idle keep-alive connections are left open after the listeners
/// stop, so that a client's request in flight is not cut off.
pub(crate) const CLOSE_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves once the server is shutting down and [`CLOSE_IDLE_AFTER`] has
/// passed: an idle keep-alive connection is closed then.
async fn close_when_idle(shutdown: &mut ShutdownWatch) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        // The server is gone; nothing to wait for.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(CLOSE_IDLE_AFTER).await;
}

/// A clean close (TLS `close_notify`, then FIN), so that a body that ends
/// with the connection does not look cut short. Boxed: an idle connection
/// should not carry its room.
async fn close_cleanly(guarded: &mut GuardedStream) {
    let _ = Box::pin(tokio::time::timeout(
        CLOSE_IDLE_AFTER,
        tokio::io::AsyncWriteExt::shutdown(guarded),
    ))
    .await;
}

/// Pingora's proxy behind a connection guard (and TLS, on TLS listeners).
pub(crate) struct Edge {
    proxy: Arc<HttpProxy<CutoverProxy>>,
    control: Arc<Control>,
    /// TLS listeners by their bound address.
    tls: Vec<(SocketAddr, Arc<EdgeTls>)>,
}

impl Edge {
    /// Wrap `proxy`; limits come from `control`'s current config; connections
    /// to the addresses in `tls` are TLS.
    pub(crate) fn new(
        proxy: HttpProxy<CutoverProxy>,
        control: Arc<Control>,
        tls: Vec<(SocketAddr, Arc<EdgeTls>)>,
    ) -> Edge {
        Edge {
            proxy: Arc::new(proxy),
            control,
            tls,
        }
    }

    fn tls_for(&self, stream: &Stream) -> Option<&Arc<EdgeTls>> {
        if self.tls.is_empty() {
            return None;
        }
        let digest = stream.get_socket_digest()?;
        let local = *digest.local_addr()?.as_inet()?;
        self.tls.iter().find(|(a, _)| *a == local).map(|(_, t)| t)
    }
}

impl Edge {
    /// Serve one client connection until it closes.
    pub(crate) async fn serve(self: Arc<Self>, stream: Stream, shutdown: ShutdownWatch) {
        let _ = self.serve_inner(stream, &shutdown).await;
    }

    async fn serve_inner(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let stream = match self.tls_for(&stream) {
            None => stream,
            // Boxed: the handshake's state is large, and an idle connection
            // should not carry room for it.
            Some(tls) => match Box::pin(
                tls.accept(stream, self.control.snapshot().config.proxy.header_timeout),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return None;
                }
            },
        };
        let (limits, fast_path) = {
            let snap = self.control.snapshot();
            let p = &snap.config.proxy;
            let limits = Limits {
                idle: p.idle_timeout,
                header: p.header_timeout,
                max_bytes: p.max_header_bytes,
                send: p.send_timeout,
                rules: Rules {
                    underscores_in_headers: p.underscores_in_headers,
                },
            };
            (limits, p.fast_path)
        };
        let mut guarded = Box::new(GuardedStream::new(stream, limits, &self.control.lifecycle));
        let conn = {
            use pingora::protocols::{GetSocketDigest, Ssl};
            ConnInfo {
                client: guarded
                    .get_socket_digest()
                    .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied()),
                tls: guarded.get_ssl_digest().is_some(),
            }
        };
        let mut settings: Option<HttpPersistentSettings> = None;
        loop {
            // Idle between requests in this small future; the request's own
            // (large) state lives on the heap only while a request runs.
            let mut closing = shutdown.clone();
            let next = tokio::select! {
                n = guarded.next_request() => n,
                _ = close_when_idle(&mut closing) => Next::Closed,
            };
            match next {
                Next::Request => {}
                Next::Http2 => {
                    // The preface arrived in time (ALPN h2 or h2c prior
                    // knowledge): cutover's HTTP/2 path serves it, or
                    // Pingora's when a backend may need TLS or HTTP/2.
                    if fast_path && crate::http2::serves(&self.control.snapshot()) {
                        Box::pin(crate::http2::serve(&self.control, guarded, conn, shutdown)).await;
                        return None;
                    }
                    return Box::pin(self.proxy.process_new(guarded, shutdown)).await;
                }
                Next::Closed => return None,
                Next::Refused(_) => {
                    close_cleanly(&mut guarded).await;
                    return None;
                }
            }
            // The common request takes cutover's own path; the rest goes to
            // Pingora. Boxed like Pingora's: idle connections stay small.
            if fast_path {
                match Box::pin(fast::serve(&self.control, &mut guarded, &conn)).await {
                    Served::KeepAlive => continue,
                    Served::Close => {
                        close_cleanly(&mut guarded).await;
                        return None;
                    }
                    Served::NotTaken => {}
                }
            }
            guarded.hand_over();
            let mut session = ServerSession::new_http1(guarded);
            // The guard has read the head under its deadlines; Pingora's
            // read timeout would only add a timer per request.
            // `early_request_filter` sets one again for the body.
            session.set_read_timeout(None);
            if let Some(s) = settings.take() {
                s.apply_to_session(&mut session);
            }
            let reused = Box::pin(self.proxy.process_new_http(session, shutdown)).await?;
            let (stream, next) = reused.consume();
            settings = next;
            guarded = stream.into_any().downcast::<GuardedStream>().ok()?;
        }
    }

    /// The listeners have stopped. Busy keep-alive connections close after
    /// their next response (the proxy answers `Connection: close` while
    /// draining); connections still idle after [`CLOSE_IDLE_AFTER`] are then
    /// closed. Closing every idle connection at once, as Pingora does, races
    /// with clients that are sending their next request at that moment.
    pub(crate) async fn cleanup(&self) {
        tokio::time::sleep(CLOSE_IDLE_AFTER).await;
        self.proxy.cleanup().await
    }
}
