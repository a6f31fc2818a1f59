//! TLS for tests: a CA and certificates made on the spot (rcgen), a TLS
//! client, and TLS backends (hyper, HTTP/1.1 and HTTP/2, with trailers).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and key.
#[derive(Clone)]
pub struct Pair {
    /// Certificate chain (leaf).
    pub cert: String,
    /// Private key.
    pub key: String,
}

impl TestCa {
    /// A new CA.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A real CA says it signs certificates; cutover takes a CA:TRUE
        // certificate without this usage as a pinned server certificate.
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names`, signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Pair {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A self-signed certificate with basicConstraints CA:TRUE for `names`, as
/// `openssl req -x509 -newkey … -nodes` makes one (no key usage).
pub fn self_signed_ca_true(names: &[&str]) -> Pair {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "backend");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Write a pair as `stem.pem` and `stem.key` in `dir`.
pub fn write_pair(dir: &Path, stem: &str, pair: &Pair) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, &pair.cert).unwrap();
    std::fs::write(&k, &pair.key).unwrap();
    (c, k)
}

/// A client config trusting `ca_pem`, offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(config)
}

/// The TLS client stream type.
pub type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// Connect to `addr` with TLS, sending `sni` (a DNS name, or an IP for none).
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<ClientTls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The DNS names of the certificate the server presented.
pub fn peer_names(tls: &ClientTls) -> Vec<String> {
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    x.subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The DER of the certificate the server presented.
pub fn peer_der(tls: &ClientTls) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

/// One HTTP/2 request over an established TLS connection.
pub async fn h2_request(
    tls: ClientTls,
    req: http::Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes, Option<http::HeaderMap>) {
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes(), trailers)
}

/// A body of one data frame and then trailers (what a gRPC answer looks like).
pub struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A TLS backend answering HTTP/1.1 and HTTP/2 (by ALPN) as `name`, with a
/// certificate for `dns` from `ca`. Requests with `content-type:
/// application/grpc` get a gRPC-style answer with `grpc-status` trailers.
pub async fn spawn_tls_backend(
    name: &'static str,
    ca: &TestCa,
    dns: &str,
) -> (SocketAddr, Arc<AtomicU64>) {
    spawn_tls_backend_with(name, &ca.leaf(&[dns])).await
}

/// A TLS backend as [`spawn_tls_backend`], presenting `pair`.
pub async fn spawn_tls_backend_with(
    name: &'static str,
    pair: &Pair,
) -> (SocketAddr, Arc<AtomicU64>) {
    let (addr, hits, _) = spawn_tls_backend_counting(name, pair).await;
    (addr, hits)
}

/// A TLS backend as [`spawn_tls_backend_with`]; also counts the TLS
/// connections it accepted.
pub async fn spawn_tls_backend_counting(
    name: &'static str,
    pair: &Pair,
) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let accepted = Arc::new(AtomicU64::new(0));
    let accepted_out = accepted.clone();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, hits) = (acceptor.clone(), counter.clone());
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let version = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    "h2"
                } else {
                    "http/1.1"
                };
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let hits = hits.clone();
                    async move {
                        if req.uri().path() != "/healthz" {
                            hits.fetch_add(1, SeqCst);
                        }
                        let grpc = req
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                        let proto = req.headers().get("x-forwarded-proto").cloned();
                        let _ = req.into_body().collect().await;
                        let mut trailers = None;
                        let data = if grpc {
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", "0".parse().unwrap());
                            t.insert("grpc-message", "ok".parse().unwrap());
                            trailers = Some(t);
                            Bytes::from_static(b"\x00\x00\x00\x00\x02hi")
                        } else {
                            Bytes::from(format!("{name} over {version}\n"))
                        };
                        let mut resp = hyper::Response::new(WithTrailers {
                            data: Some(data),
                            trailers,
                        });
                        resp.headers_mut()
                            .insert("x-backend", name.parse().unwrap());
                        resp.headers_mut()
                            .insert("x-backend-protocol", version.parse().unwrap());
                        if let Some(p) = proto {
                            resp.headers_mut().insert("x-saw-forwarded-proto", p);
                        }
                        if grpc {
                            resp.headers_mut()
                                .insert("content-type", "application/grpc".parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, hits, accepted_out)
}
