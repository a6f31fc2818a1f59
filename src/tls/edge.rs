//! TLS at the edge: cutover's own rustls handshake on TLS listeners.
//!
//! Pingora's TLS listener builds its settings from file names once (and
//! panics on a bad file) and gives a handshake 60 s. Here the listener is a
//! plain TCP listener to Pingora; [`EdgeTls::accept`] does the handshake
//! with a 10 s deadline, TLS 1.2 and 1.3 only, ALPN `h2`/`http/1.1`, and a
//! certificate chosen by SNI from a set that a reload swaps atomically
//! (connections already open keep the certificate they were made with).

use super::stream::TlsEdgeStream;
use super::{load_certified_key, TlsFileError};
use crate::config::TlsListener;
use arc_swap::ArcSwap;
use pingora::protocols::Stream;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The longest a client may take to finish its TLS handshake (less when
/// `header_timeout` is shorter).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificates of one listener, by the names they are valid for.
#[derive(Debug)]
struct CertSet {
    /// (lowercase DNS name or `*.suffix`, key)
    names: Vec<(String, Arc<CertifiedKey>)>,
    /// For clients without SNI, or with a name nothing matches.
    default: Arc<CertifiedKey>,
}

impl CertSet {
    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some((_, k)) = self.names.iter().find(|(n, _)| *n == sni) {
            return k.clone();
        }
        let wildcard = self.names.iter().find(|(n, _)| {
            n.strip_prefix("*.")
                .is_some_and(|suffix| sni.split_once('.').is_some_and(|(_, rest)| rest == suffix))
        });
        wildcard.map_or_else(|| self.default.clone(), |(_, k)| k.clone())
    }
}

/// DNS names a certificate is valid for (SANs, else the common name).
fn names_of(key: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = key.cert.first() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => {
                        Some(n.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    names
}

fn load_set(listener: &TlsListener) -> Result<CertSet, TlsFileError> {
    let mut names = Vec::new();
    let mut default = None;
    for pair in &listener.certs {
        let key = load_certified_key(&pair.cert, &pair.key)?;
        for n in names_of(&key) {
            names.push((n, key.clone()));
        }
        default.get_or_insert(key);
    }
    let default = default.ok_or_else(|| TlsFileError::Load {
        path: listener.listen.to_string().into(),
        reason: "no certificate".into(),
    })?;
    Ok(CertSet { names, default })
}

/// Picks the certificate for a handshake from the current set.
#[derive(Debug)]
struct SniResolver {
    set: ArcSwap<CertSet>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.set.load().pick(hello.server_name()))
    }
}

/// A TLS listener's handshake side.
pub struct EdgeTls {
    /// The listener's address.
    pub listen: SocketAddr,
    resolver: Arc<SniResolver>,
    config: ArcSwap<ServerConfig>,
}

fn server_config(resolver: Arc<SniResolver>, http2: bool) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3") // ok: constant
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config
}

impl EdgeTls {
    /// Load the certificates of `listener`.
    pub fn new(listener: &TlsListener) -> Result<EdgeTls, TlsFileError> {
        let resolver = Arc::new(SniResolver {
            set: ArcSwap::from_pointee(load_set(listener)?),
        });
        Ok(EdgeTls {
            listen: listener.listen,
            config: ArcSwap::from_pointee(server_config(resolver.clone(), listener.http2)),
            resolver,
        })
    }

    /// Load the certificates of `listener` again (a reload). On error the
    /// certificates in use stay.
    pub fn reload(&self, listener: &TlsListener) -> Result<(), TlsFileError> {
        let set = load_set(listener)?;
        self.resolver.set.store(Arc::new(set));
        self.config.store(Arc::new(server_config(
            self.resolver.clone(),
            listener.http2,
        )));
        Ok(())
    }

    /// Do the server side of a handshake on `stream`, within `deadline`
    /// (at most [`HANDSHAKE_TIMEOUT`]).
    pub async fn accept(&self, stream: Stream, deadline: Duration) -> std::io::Result<Stream> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.load_full());
        let tls = tokio::time::timeout(deadline.min(HANDSHAKE_TIMEOUT), acceptor.accept(stream))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        Ok(Box::new(TlsEdgeStream::new(tls)))
    }
}
