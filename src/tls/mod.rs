//! TLS material: loading PEM certificates and keys, and checking that a key
//! belongs to its certificate before anything is served with it.
//!
//! Pingora's own TLS settings panic on unreadable files; every file goes
//! through here first so a bad one is a config error naming the file.

pub(crate) mod client;
pub(crate) mod connect;
pub(crate) mod diag;
pub(crate) mod edge;
pub(crate) mod pin;
pub(crate) mod reason;
mod stream;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file is missing, unreadable or holds no usable PEM block.
    #[error("cannot load {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the key {key} does not match the certificate {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

fn load_err(path: &Path, reason: impl ToString) -> TlsFileError {
    TlsFileError::Load {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file, leaf first.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| load_err(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load_err(path, format!("bad PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(load_err(path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| load_err(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| load_err(path, format!("no usable private key: {e:?}")))
}

/// Load a certificate chain and its key, and check that they belong together.
pub(crate) fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, TlsFileError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| load_err(key, format!("unsupported key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| TlsFileError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })?;
    Ok(Arc::new(certified))
}

/// Check a certificate/key pair without keeping it.
pub(crate) fn check_pair(cert: &Path, key: &Path) -> Result<(), TlsFileError> {
    load_certified_key(cert, key).map(|_| ())
}

/// Check that a CA bundle holds at least one certificate.
pub(crate) fn check_ca(path: &Path) -> Result<(), TlsFileError> {
    load_certs(path).map(|_| ())
}

/// A CA bundle as Pingora's upstream connector wants it.
pub(crate) fn upstream_ca(
    path: &Path,
) -> Result<Arc<pingora::protocols::tls::CaType>, TlsFileError> {
    use pingora::utils::tls::WrappedX509;
    let mut out = Vec::new();
    for der in load_certs(path)? {
        let raw = der.as_ref().to_vec();
        // Parse with a fallible parser first: Pingora's own helper panics
        // on a certificate it cannot parse.
        x509_parser::parse_x509_certificate(&raw)
            .map_err(|e| load_err(path, format!("bad certificate: {e}")))?;
        out.push(WrappedX509::new(raw, pingora::utils::tls::parse_x509));
    }
    Ok(Arc::from(out))
}
