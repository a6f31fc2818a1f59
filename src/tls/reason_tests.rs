//! The wording of TLS failures, from typed rustls errors and from the text
//! Pingora keeps of them.

use super::*;
use rustls::pki_types::{ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;

/// What webpki's `CaUsedAsEndEntity` looks like once rustls wraps it.
#[derive(Debug)]
struct Webpki(&'static str);

impl fmt::Display for Webpki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Webpki {}

fn ca_as_leaf() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Webpki("CaUsedAsEndEntity"),
    ))))
}

fn name_mismatch() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("a.test").expect("a DNS name"),
        presented: vec!["b.test".into()],
    })
}

fn expired() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
        time: UnixTime::since_unix_epoch(Duration::from_secs(2_000)),
        not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_000)),
    })
}

/// The text Pingora's rustls connector makes of a handshake error.
fn as_pingora(e: &rustls::Error) -> String {
    format!(
        " TLSHandshakeFailure context: TLS connect() failed: tls connect error: {e}, SNI: a.test"
    )
}

#[test]
fn each_typed_error_gets_its_words() {
    let cases: Vec<(rustls::Error, &str)> = vec![
        (CertificateError::UnknownIssuer.into(), "unknown issuer"),
        (name_mismatch(), "name mismatch"),
        (expired(), "certificate expired"),
        (CertificateError::NotValidYet.into(), "not yet valid"),
        (
            CertificateError::NotValidYetContext {
                time: UnixTime::since_unix_epoch(Duration::from_secs(1_000)),
                not_before: UnixTime::since_unix_epoch(Duration::from_secs(2_000)),
            }
            .into(),
            "not valid yet",
        ),
        (
            ca_as_leaf(),
            "CA certificate used as an end-entity certificate",
        ),
        (
            CertificateError::BadSignature.into(),
            "bad certificate signature",
        ),
        (
            CertificateError::InvalidPurpose.into(),
            "extended key usage",
        ),
        (CertificateError::BadEncoding.into(), "malformed"),
        (
            rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
            "handshake alert from the backend: HandshakeFailure",
        ),
        (
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
            "no TLS version in common",
        ),
        (
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            "did not answer in TLS",
        ),
        (rustls::Error::NoCertificatesPresented, "sent none"),
        (rustls::Error::NoApplicationProtocol, "no ALPN protocol"),
    ];
    for (e, words) in cases {
        let said = Reason::from_rustls(&e).to_string();
        assert!(said.contains(words), "{e:?} -> {said:?}, wanted {words:?}");
    }
}

#[test]
fn the_names_a_certificate_carries_are_kept() {
    let said = Reason::from_rustls(&name_mismatch()).to_string();
    assert!(said.contains("a.test") && said.contains("b.test"), "{said}");
}

#[test]
fn pingoras_text_gives_the_same_reason_as_the_typed_error() {
    let errors = [
        CertificateError::UnknownIssuer.into(),
        name_mismatch(),
        expired(),
        CertificateError::NotValidYet.into(),
        ca_as_leaf(),
        CertificateError::BadSignature.into(),
        CertificateError::InvalidPurpose.into(),
        rustls::Error::AlertReceived(AlertDescription::UnrecognisedName),
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        rustls::Error::NoCertificatesPresented,
        rustls::Error::NoApplicationProtocol,
    ];
    for e in errors {
        let typed = Reason::from_rustls(&e);
        let text = Reason::from_text(&as_pingora(&e));
        assert_eq!(typed, text, "{e:?} as {:?}", as_pingora(&e));
    }
}

#[test]
fn io_errors_out_of_a_handshake() {
    let wrapped = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::from(CertificateError::UnknownIssuer),
    );
    assert_eq!(Reason::from_io(&wrapped), Reason::UnknownIssuer);
    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
    assert_eq!(Reason::from_io(&eof), Reason::Closed);
}

#[test]
fn unknown_text_is_passed_through() {
    assert_eq!(
        Reason::from_text("  something new  ").to_string(),
        "something new"
    );
}
