//! Pinned backend certificates: the `openssl req -x509` trap.
//!
//! `openssl req -x509 -newkey … -nodes` makes a self-signed certificate with
//! basicConstraints CA:TRUE, and operators then give that same file as the
//! pool's `ca`. webpki refuses a CA certificate as a server's own
//! (`CaUsedAsEndEntity`) whatever the trust store holds, so such a backend
//! could never be reached. cutover accepts it as a *pinned* certificate: a
//! backend that presents, byte for byte, a certificate of the pool's `ca`
//! that cannot be a working issuer is trusted without a chain or a name
//! check. The handshake signature is still verified against that
//! certificate, so the backend must hold its private key. Every other
//! certificate is verified by webpki exactly as before.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// What cutover makes of one certificate of a `ca` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaEntry {
    /// The subject, for messages (`CN=…`).
    pub subject: String,
    /// Self-signed (subject and issuer are the same name).
    pub self_signed: bool,
    /// basicConstraints CA:TRUE.
    pub ca_true: bool,
    /// Accepted as a pinned server certificate: it is no issuer webpki
    /// would take as a CA and sign-only (CA:TRUE *and* the keyCertSign key
    /// usage), so a backend can only mean it as its own certificate.
    pub pinnable: bool,
}

/// Look at one DER certificate (`None`: it does not parse).
pub(crate) fn inspect(der: &[u8]) -> Option<CaEntry> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let ca_true = cert.is_ca();
    let signs_certs = cert
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|ku| ku.value.key_cert_sign());
    Some(CaEntry {
        subject: cert.subject().to_string(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        ca_true,
        pinnable: !(ca_true && signs_certs),
    })
}

/// The pinnable certificates among `certs`.
pub(crate) fn pinned_of(certs: &[CertificateDer<'static>]) -> Vec<CertificateDer<'static>> {
    certs
        .iter()
        .filter(|c| inspect(c.as_ref()).is_some_and(|e| e.pinnable))
        .cloned()
        .collect()
}

/// Whether the certificate's validity period covers `now` (an unparsable
/// one does not).
fn valid_at(der: &[u8], now: UnixTime) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(secs) = i64::try_from(now.as_secs()) else {
        return false;
    };
    x509_parser::time::ASN1Time::from_timestamp(secs).is_ok_and(|t| cert.validity().is_valid_at(t))
}

/// A verifier that accepts the pinned certificates as they are and hands
/// every other one to webpki with the pool's `ca` as roots.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl PinningVerifier {
    /// A verifier trusting `roots`, with `pinned` accepted byte for byte.
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        pinned: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<PinningVerifier, rustls::client::VerifierBuilderError> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build()?;
        Ok(PinningVerifier {
            pinned,
            webpki,
            provider,
        })
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            // Pinned: no chain and no name, but a lapsed one is still refused.
            return if valid_at(end_entity.as_ref(), now) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(CertificateError::Expired.into())
            };
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `cutover check` warnings for a pool's `ca` file: each self-signed CA:TRUE
/// certificate that cutover will only take as a pinned one.
pub(crate) fn ca_warnings(pool: &str, path: &std::path::Path) -> Vec<String> {
    let Ok(certs) = super::load_certs(path) else {
        return Vec::new();
    };
    certs
        .iter()
        .filter_map(|c| inspect(c.as_ref()))
        .filter(|e| e.self_signed && e.ca_true && e.pinnable)
        .map(|e| {
            format!(
                "pools.{pool}.tls.ca: {} holds a self-signed CA:TRUE certificate ({}), as \
                 `openssl req -x509` makes them; rustls refuses a CA certificate as a \
                 server's own, so cutover accepts it only as a pinned end-entity \
                 certificate: a backend presenting exactly this certificate is trusted \
                 (whatever its name), through cutover's own TLS client, which opens a new \
                 connection per request. If it is a real CA, give it the keyCertSign key usage.",
                path.display(),
                e.subject
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

    fn made(ca: bool, usages: Vec<KeyUsagePurpose>) -> rcgen::Certificate {
        let mut params = CertificateParams::new(vec!["backend.test".to_string()]).unwrap();
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.key_usages = usages;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    fn cert(ca: bool, usages: Vec<KeyUsagePurpose>) -> CertificateDer<'static> {
        made(ca, usages).der().clone()
    }

    #[test]
    fn only_a_ca_that_signs_certificates_is_not_pinned() {
        let openssl_like = inspect(&cert(true, vec![])).unwrap();
        assert!(openssl_like.self_signed && openssl_like.ca_true && openssl_like.pinnable);
        let real_ca = inspect(&cert(true, vec![KeyUsagePurpose::KeyCertSign])).unwrap();
        assert!(real_ca.ca_true && !real_ca.pinnable);
        let leaf = inspect(&cert(false, vec![])).unwrap();
        assert!(!leaf.ca_true && leaf.pinnable);
        assert!(inspect(b"not a certificate").is_none());
    }

    #[test]
    fn the_pinned_certificate_is_accepted_for_any_name_and_no_other_is() {
        let pinned = cert(true, vec![]);
        let other = cert(true, vec![]);
        let mut roots = RootCertStore::empty();
        roots.add(pinned.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = PinningVerifier::new(Arc::new(roots), vec![pinned.clone()], provider).unwrap();
        let name = ServerName::try_from("any.name").unwrap();
        let now = UnixTime::now();
        assert!(v.verify_server_cert(&pinned, &[], &name, &[], now).is_ok());
        let refused = v.verify_server_cert(&other, &[], &name, &[], now);
        assert!(refused.is_err());
        let long_after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1 << 40));
        assert_eq!(
            v.verify_server_cert(&pinned, &[], &name, &[], long_after)
                .err(),
            Some(rustls::Error::InvalidCertificate(CertificateError::Expired))
        );
    }

    #[test]
    fn check_warns_of_a_self_signed_ca_true_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, made(true, vec![]).pem()).unwrap();
        let w = ca_warnings("cloud", &path);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("pools.cloud.tls.ca: "), "{}", w[0]);
        std::fs::write(&path, made(true, vec![KeyUsagePurpose::KeyCertSign]).pem()).unwrap();
        assert!(ca_warnings("cloud", &path).is_empty());
    }
}
