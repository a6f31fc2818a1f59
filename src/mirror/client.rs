//! The worker's HTTP/1 client: a copy sent to one backend (plain or TLS,
//! as the pool speaks), its whole answer read up to [`BODY_CAP`], idle
//! connections kept per backend. Its failures are the mirror's own: they
//! are counted in the mirror's figures and nowhere else.

use super::capture::BODY_CAP;
use super::http1::{Copy, Reply};
use crate::snapshot::Backend;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept per backend.
const IDLE_PER_BACKEND: usize = 16;

type Sender = SendRequest<Full<Bytes>>;

/// Why a copy got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No answer within the mirror's `timeout`.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The connection could not be made.
    #[error("cannot connect: {0:?}")]
    Connect(crate::health::FailureKind),
    /// The exchange failed.
    #[error("{0}")]
    Http(String),
}

/// Connections to the backends copies go to.
#[derive(Default)]
pub(crate) struct Client {
    idle: Mutex<HashMap<SocketAddr, Vec<Sender>>>,
}

impl Client {
    /// Send `copy` to `backend` (with the marker header) and read its
    /// answer, all within `timeout`.
    pub(crate) async fn send(
        &self,
        backend: &Backend,
        copy: &Copy,
        timeout: Duration,
    ) -> Result<Reply, SendError> {
        match tokio::time::timeout(timeout, self.exchange(backend, copy, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::TimedOut(timeout)),
        }
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, addr: SocketAddr, s: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < IDLE_PER_BACKEND {
            list.push(s);
        }
    }

    async fn connect(&self, backend: &Backend, timeout: Duration) -> Result<Sender, SendError> {
        let conn = crate::fast::upstream::connect(backend.socket, backend.tls.as_ref(), timeout)
            .await
            .map_err(|e| SendError::Connect(e.kind))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|e| SendError::Http(e.to_string()))?;
        tokio::spawn(async move {
            // Ends when the backend or the sender closes it.
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn exchange(
        &self,
        backend: &Backend,
        copy: &Copy,
        timeout: Duration,
    ) -> Result<Reply, SendError> {
        let mut sender = match self.take_idle(backend.socket) {
            Some(s) => s,
            None => self.connect(backend, timeout).await?,
        };
        sender
            .ready()
            .await
            .map_err(|e| SendError::Http(e.to_string()))?;
        let resp = sender
            .send_request(request(copy)?)
            .await
            .map_err(|e| SendError::Http(e.to_string()))?;
        let (parts, mut body) = resp.into_parts();
        let mut data = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SendError::Http(e.to_string()))?;
            if let Ok(piece) = frame.into_data() {
                if data.len() + piece.len() > BODY_CAP {
                    truncated = true;
                    break;
                }
                data.extend_from_slice(&piece);
            }
        }
        if !truncated {
            self.put_idle(backend.socket, sender);
        }
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers,
            body: if truncated { Vec::new() } else { data },
            truncated,
        })
    }
}

/// The HTTP request of `copy`, with the marker header. Headers that do not
/// parse are left out (they came through a request path that took them,
/// so this is not expected).
fn request(copy: &Copy) -> Result<http::Request<Full<Bytes>>, SendError> {
    let mut req = http::Request::builder()
        .method(copy.method.as_str())
        .uri(copy.target.as_str());
    for (name, value) in &copy.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            req = req.header(n, v);
        }
    }
    if !copy.body.is_empty() {
        req = req.header(http::header::CONTENT_LENGTH, copy.body.len());
    }
    req.header(super::MARKER, "1")
        .body(Full::new(Bytes::from(copy.body.clone())))
        .map_err(|e| SendError::Http(e.to_string()))
}
