//! TLS to backends for cutover's own connections (health probes, and the
//! proxied requests of pools with a pinned certificate): the same trust
//! rules as Pingora's connector — a pool's `ca` if given, else the system's
//! roots; `verify = false` skips the chain and hostname checks — plus the
//! pinned certificates of [`super::pin`].

use super::pin::{pinned_of, PinningVerifier};
use super::{load_certs, TlsFileError};
use crate::config::UpstreamTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, loaded once.
fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            if let Ok(certs) = rustls_native_certs::load_native_certs() {
                for c in certs {
                    let _ = store.add(c);
                }
            }
            Arc::new(store)
        })
        .clone()
}

/// Accepts any certificate: `verify = false`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config for a pool's TLS settings (HTTP/1.1 only).
pub(crate) fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsFileError> {
    client_config_alpn(tls, vec![b"http/1.1".to_vec()])
}

/// A client config for a pool's TLS settings offering `alpn`.
pub(crate) fn client_config_alpn(
    tls: &UpstreamTls,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>, TlsFileError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3"); // ok: constant
    let mut config = if !tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth()
    } else if let Some(ca) = &tls.ca {
        let certs = load_certs(ca)?;
        let fail = |reason: String| TlsFileError::Load {
            path: ca.clone(),
            reason,
        };
        let mut store = RootCertStore::empty();
        for c in &certs {
            store.add(c.clone()).map_err(|e| fail(e.to_string()))?;
        }
        let verifier = PinningVerifier::new(Arc::new(store), pinned_of(&certs), provider())
            .map_err(|e| fail(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(native_roots())
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// TLS to one backend on cutover's own request paths: the pool's client
/// config and the name sent (SNI) and verified.
#[derive(Debug, Clone)]
pub struct BackendTls {
    /// The pool's client config (HTTP/1.1 by ALPN).
    pub config: Arc<ClientConfig>,
    /// The pool's `sni`, else the backend's host.
    pub name: ServerName<'static>,
}

/// The TLS settings of each backend of a pool with `tls` (HTTP/1 to the
/// backends), by backend address (`host:port`); `None` when cutover's own
/// paths cannot make them (the pool's requests then take Pingora's path,
/// which reports the problem).
pub(crate) fn backend_tls(tls: &UpstreamTls, addrs: &[&str]) -> Option<Vec<BackendTls>> {
    if tls.http2 {
        return None;
    }
    let config = client_config(tls).ok()?;
    addrs
        .iter()
        .map(|addr| {
            let host = match &tls.sni {
                Some(sni) => sni.as_str(),
                None => host_of(addr),
            };
            let name = ServerName::try_from(host.to_string()).ok()?;
            Some(BackendTls {
                config: config.clone(),
                name,
            })
        })
        .collect()
}

/// The host of `host:port` (`[v6]:port` too), without brackets.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod backend_tests {
    use super::*;

    #[test]
    fn backends_get_their_pools_sni_or_their_own_host() {
        let tls = UpstreamTls {
            sni: None,
            verify: false,
            ca: None,
            http2: false,
        };
        let made = backend_tls(&tls, &["api.internal:443", "[::1]:8443", "10.0.0.1:443"])
            .expect("plain settings");
        let names: Vec<String> = made.iter().map(|b| b.name.to_str().into_owned()).collect();
        assert_eq!(names, ["api.internal", "::1", "10.0.0.1"]);
        let named = UpstreamTls {
            sni: Some("cloud.example".into()),
            ..tls.clone()
        };
        let made = backend_tls(&named, &["10.0.0.1:443"]).expect("sni");
        assert_eq!(made[0].name.to_str(), "cloud.example");
        let h2 = UpstreamTls { http2: true, ..tls };
        assert!(
            backend_tls(&h2, &["a:1"]).is_none(),
            "HTTP/2 backends are Pingora's"
        );
    }
}
