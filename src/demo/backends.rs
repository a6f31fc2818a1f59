//! The demo's built-in backends: small hyper servers on loopback whose
//! errors and latency can be turned up to stage an incident.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Faults injected into every backend of a demo pool.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Per mille of requests answered with 500.
    pub error_permille: AtomicU32,
    /// Extra latency per request, in milliseconds.
    pub extra_latency_ms: AtomicU64,
    /// Health checks fail.
    pub unhealthy: AtomicBool,
    /// A bug only the mirror sees: answers carry the currency in lower
    /// case (`"usd"`), every status still 200.
    pub wrong_currency: AtomicBool,
}

/// A running demo backend.
pub(crate) struct DemoBackend {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Start a backend of `pool` with base latency `latency` and shared `faults`.
pub(crate) async fn spawn(
    pool: &'static str,
    latency: Duration,
    faults: Arc<Faults>,
) -> std::io::Result<DemoBackend> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seq = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let faults = faults.clone();
            let seq = seq.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let faults = faults.clone();
                    let n = seq.fetch_add(1, Relaxed);
                    async move { Ok::<_, Infallible>(answer(pool, latency, &faults, n, req).await) }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(DemoBackend { addr })
}

async fn answer(
    pool: &'static str,
    latency: Duration,
    faults: &Faults,
    n: u64,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert("x-served-by", http::HeaderValue::from_static(pool));
        resp
    };
    if req.uri().path() == "/healthz" {
        return if faults.unhealthy.load(Relaxed) {
            respond(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n".into())
        } else {
            respond(StatusCode::OK, "ok\n".into())
        };
    }
    let extra = Duration::from_millis(faults.extra_latency_ms.load(Relaxed));
    tokio::time::sleep(latency + extra).await;
    // Spread errors evenly instead of drawing random numbers.
    let permille = u64::from(faults.error_permille.load(Relaxed));
    if permille > 0 && (n * 7919) % 1000 < permille {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{pool}: injected failure\n"),
        );
    }
    // The same answer from both pools, except who served it and a running
    // request number (noise the mirror learns to ignore).
    let currency = if faults.wrong_currency.load(Relaxed) {
        "usd"
    } else {
        "USD"
    };
    let mut resp = respond(
        StatusCode::OK,
        format!(
            "{{\"greeting\":\"hello\",\"served_by\":\"{pool}\",\"price\":12.5,\"currency\":\"{currency}\",\"request\":{n}}}\n"
        ),
    );
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
