//! The admin endpoint's server: a small HTTP/1 server (hyper) on the admin
//! listener, run as a Pingora service so the listener is handed over in a
//! graceful upgrade like the proxy's. It reads the request, calls
//! [`AdminApi::handle`], writes the answer.
//!
//! Unlike the proxy's listeners it keeps answering through a `SIGTERM`
//! drain, until the process exits: load balancers and Kubernetes read
//! `/readyz` (503 `draining`) exactly then. In an upgrade it stops at once
//! and the new process answers on the same socket.

use super::{AdminApi, AdminRequest};
use crate::app::accept::{obtain, Listen};
use crate::lifecycle::Lifecycle;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, warn};

/// Largest request body the admin API reads.
const MAX_BODY: usize = 1024 * 1024;
/// A request head must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin endpoint as a Pingora service.
pub(crate) struct AdminService {
    api: Arc<AdminApi>,
    listen: Option<Listen>,
    key: String,
    lifecycle: Arc<Lifecycle>,
}

impl AdminService {
    /// Serve `api` on `listen`.
    pub(crate) fn new(
        api: Arc<AdminApi>,
        listen: Listen,
        lifecycle: Arc<Lifecycle>,
    ) -> AdminService {
        AdminService {
            api,
            key: listen.key.clone(),
            listen: Some(listen),
            lifecycle,
        }
    }
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Answer one admin request.
async fn answer(api: &AdminApi, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(413, "request body too large\n")
        }
        Err(_) => return plain(400, "cannot read the request body\n"),
    };
    let answer = api
        .handle(AdminRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            authorization,
            body,
        })
        .await;
    let mut r = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *r.status_mut() = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(answer.content_type),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    for (name, value) in answer.headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

#[async_trait::async_trait]
impl Service for AdminService {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(listen) = self.listen.take() else {
            return;
        };
        let listener = match obtain(listen, &fds).and_then(tokio::net::TcpListener::from_std) {
            Ok(l) => l,
            Err(e) => {
                error!(listen = %self.key, "cannot serve the admin endpoint: {e}");
                return;
            }
        };
        let mut draining = false;
        loop {
            let accepted = tokio::select! {
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        if self.lifecycle.upgrading.load(Relaxed) {
                            break;
                        }
                        // Keep answering (`/readyz`: 503) until the
                        // process exits.
                        draining = true;
                    }
                    continue;
                }
                a = listener.accept() => a,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    warn!("admin accept() failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let api = self.api.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(answer(&api, req).await) }
                });
                // HTTP/1, or h2c by prior knowledge (what a client that
                // speaks HTTP/2 to the proxy may also use here).
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(16);
                let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    }

    fn name(&self) -> &str {
        "cutover admin"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(vec![self.key.clone()])
    }
}
