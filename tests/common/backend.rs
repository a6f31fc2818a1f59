//! Test backends: hyper servers on 127.0.0.1:0 whose behaviour a test can
//! change while they run (status, latency, health, hang, stop/restart).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a backend does, changeable at run time.
#[derive(Debug)]
pub struct Behaviour {
    /// Status for normal requests.
    pub status: AtomicU16,
    /// Status for `/healthz`.
    pub health_status: AtomicU16,
    /// Alternate `/healthz` between pass and fail on every probe.
    pub health_flap: AtomicBool,
    /// Delay before answering, in ms.
    pub delay_ms: AtomicU64,
    /// Read the request, then close the connection without answering.
    pub die_after_body: AtomicBool,
    /// Answer with hop-by-hop headers (`Connection: x-hop-secret`, …).
    pub hop_headers: AtomicBool,
    /// Requests received so far (health checks excluded), counted when
    /// their body is in, before any delay.
    pub arrived: AtomicU64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: AtomicU16::new(200),
            health_status: AtomicU16::new(200),
            health_flap: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            die_after_body: AtomicBool::new(false),
            hop_headers: AtomicBool::new(false),
            arrived: AtomicU64::new(0),
        }
    }
}

/// A running test backend.
pub struct Backend {
    /// Its name, echoed in `x-backend`.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests answered (health checks excluded).
    pub hits: Arc<AtomicU64>,
    /// Health checks received.
    pub health_hits: Arc<AtomicU64>,
    /// Headers of the last request (health checks excluded).
    pub last_headers: Arc<Mutex<Option<http::HeaderMap>>>,
    /// Change what it does.
    pub behaviour: Arc<Behaviour>,
    stop: watch::Sender<bool>,
}

impl Backend {
    /// Start a backend named `name` on a fresh port.
    pub async fn spawn(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test backend");
        Self::serve(name, listener)
    }

    /// Start a backend on a given address (to restart a killed one).
    pub async fn spawn_at(name: &str, addr: SocketAddr) -> Backend {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {addr}: {e}"),
            }
        };
        Self::serve(name, listener)
    }

    fn serve(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().expect("local addr");
        let (stop, stop_rx) = watch::channel(false);
        let b = Backend {
            name: name.to_string(),
            addr,
            hits: Arc::default(),
            health_hits: Arc::default(),
            last_headers: Arc::default(),
            behaviour: Arc::default(),
            stop,
        };
        let name = b.name.clone();
        let (hits, health_hits, last, behaviour) = (
            b.hits.clone(),
            b.health_hits.clone(),
            b.last_headers.clone(),
            b.behaviour.clone(),
        );
        tokio::spawn(async move {
            let mut stop_accept = stop_rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop_accept.changed() => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let name = name.clone();
                let (hits, health_hits, last, behaviour) = (
                    hits.clone(),
                    health_hits.clone(),
                    last.clone(),
                    behaviour.clone(),
                );
                let mut stop_conn = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let name = name.clone();
                        let (hits, health_hits, last, behaviour) = (
                            hits.clone(),
                            health_hits.clone(),
                            last.clone(),
                            behaviour.clone(),
                        );
                        async move { handle(req, &name, &hits, &health_hits, &last, &behaviour).await }
                    });
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {},
                        _ = stop_conn.changed() => {},
                    }
                });
            }
        });
        b
    }

    /// Stop listening and drop every open connection (a crash).
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response that ends the connection abruptly.
#[derive(Debug)]
struct Abort;
impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("abort")
    }
}
impl std::error::Error for Abort {}

async fn handle(
    req: Request<Incoming>,
    name: &str,
    hits: &AtomicU64,
    health_hits: &AtomicU64,
    last: &Mutex<Option<http::HeaderMap>>,
    b: &Behaviour,
) -> Result<Response<Full<Bytes>>, Abort> {
    let reply = |status: u16, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        resp.headers_mut()
            .insert("x-backend", name.parse().expect("header"));
        resp
    };
    if req.uri().path() == "/healthz" {
        let n = health_hits.fetch_add(1, SeqCst);
        let status = if b.health_flap.load(SeqCst) {
            if n % 2 == 0 {
                200
            } else {
                503
            }
        } else {
            b.health_status.load(SeqCst)
        };
        return Ok(reply(status, "health\n".into()));
    }
    *last.lock().expect("lock") = Some(req.headers().clone());
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    b.arrived.fetch_add(1, SeqCst);
    if b.die_after_body.load(SeqCst) {
        hits.fetch_add(1, SeqCst);
        return Err(Abort);
    }
    let delay = b.delay_ms.load(SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    hits.fetch_add(1, SeqCst);
    let mut resp = reply(
        b.status.load(SeqCst),
        format!("{name} {method} {}\n", body.len()),
    );
    if b.hop_headers.load(SeqCst) {
        let h = resp.headers_mut();
        h.insert("connection", "x-hop-secret".parse().expect("value"));
        h.insert("x-hop-secret", "1".parse().expect("value"));
        h.insert("keep-alive", "timeout=3".parse().expect("value"));
        h.insert("x-end-to-end", "1".parse().expect("value"));
    }
    Ok(resp)
}

/// A TCP listener that accepts connections and never answers.
pub async fn black_hole_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// An address nothing listens on (bound, then closed).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}
