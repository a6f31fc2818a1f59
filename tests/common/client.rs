//! A real HTTP client for tests (hyper, keep-alive): HTTP/1.1, or HTTP/2
//! by prior knowledge when the run asks for it.
//!
//! A test names the host it wants in a `host` header. Over HTTP/1 that is
//! the `Host` line; an HTTP/2 client (a browser) says it in `:authority`
//! instead, so in HTTP/2 runs the request's URI takes that authority and
//! the connector below still connects to the URL's address.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Where an authority that is not an address really is, per client (tests
/// run side by side, each with its own proxy behind the same host names).
type Routes = Arc<Mutex<HashMap<String, SocketAddr>>>;

/// The client: hyper's pooled client, and its connector's routes.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    routes: Routes,
}

/// Connects to the address a request's authority stands for.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    routes: Routes,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let authority = uri.authority().map_or(String::new(), |a| a.to_string());
        let known = self.routes.lock().unwrap().get(&authority).copied();
        Box::pin(async move {
            let tcp = match known {
                Some(addr) => TcpStream::connect(addr).await?,
                None => {
                    let host = uri.host().unwrap_or("");
                    let port = uri.port_u16().unwrap_or(80);
                    TcpStream::connect((host, port)).await?
                }
            };
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(tcp))
        })
    }
}

/// A keep-alive HTTP/1.1 client; an HTTP/2 one (h2c, prior knowledge)
/// when the suite runs with `CUTOVER_TEST_CLIENT=h2` (scripts/test.sh runs
/// the behaviour suites with each).
pub fn client() -> HttpClient {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(30));
    if http2_clients() {
        builder.http2_only(true);
    }
    let connector = Connector::default();
    HttpClient {
        routes: connector.routes.clone(),
        inner: builder.build(connector),
    }
}

/// Whether this run's clients speak HTTP/2.
pub fn http2_clients() -> bool {
    std::env::var("CUTOVER_TEST_CLIENT").is_ok_and(|v| v == "h2")
}

/// A finished response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Send a request; `Err` for a transport failure.
pub async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let mut uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| *v);
    if let (true, Some(host)) = (http2_clients(), host) {
        // HTTP/2: the host goes in `:authority`; the connection still goes
        // to the URL's address.
        let addr: SocketAddr = uri
            .authority()
            .ok_or("no authority")?
            .as_str()
            .parse()
            .map_err(|e| format!("{e}"))?;
        client.routes.lock().unwrap().insert(host.to_string(), addr);
        let mut parts = uri.into_parts();
        parts.authority = Some(host.parse().map_err(|e| format!("{e}"))?);
        uri = http::Uri::from_parts(parts).map_err(|e| format!("{e}"))?;
    }
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        if http2_clients() && k.eq_ignore_ascii_case("host") {
            continue;
        }
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = client
        .inner
        .request(req)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET `url` with `headers`.
pub async fn get(
    client: &HttpClient,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    send(client, "GET", url, headers, "").await
}

/// An HTTP/2 connection to `addr` by prior knowledge (h2c), driven in the
/// background.
pub async fn h2c<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}
