//! Why a TLS handshake with a backend failed, in words an operator can act
//! on ("unknown issuer", "name mismatch", …) instead of rustls' variant names.
//!
//! Two sources feed it: a typed [`rustls::Error`] (cutover's own connections:
//! health probes and the pinning connector) and plain text (Pingora's rustls
//! connector keeps only the error's `Display` in its own error's context, so
//! the proxied path has nothing typed to look at). Both end in a [`Reason`],
//! whose `Display` is the one place the messages are worded.

use rustls::{AlertDescription, CertificateError};
use std::fmt;

/// A TLS handshake failure, sorted by what the operator has to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No trusted CA signed the certificate (wrong or missing `ca`).
    UnknownIssuer,
    /// The certificate does not name the server (SNI or backend host); the
    /// detail says which names it does carry, when rustls said.
    NameMismatch(Option<String>),
    /// The certificate's validity period ended.
    Expired(Option<String>),
    /// The certificate's validity period has not begun.
    NotYetValid(Option<String>),
    /// The server presented a CA certificate (basicConstraints CA:TRUE) as
    /// its own, as `openssl req -x509` makes them.
    CaUsedAsEndEntity,
    /// A certificate's signature does not verify.
    BadSignature,
    /// The certificate's extended key usage excludes TLS server auth.
    WrongPurpose,
    /// The certificate is malformed, or uses something rustls cannot check.
    BadCertificate(String),
    /// The backend aborted the handshake with this alert.
    Alert(String),
    /// The backend's answer was not TLS (a plain HTTP port?).
    NotTls,
    /// The backend closed the connection in the middle of the handshake.
    Closed,
    /// The two sides share no TLS version, cipher suite or ALPN protocol.
    Incompatible(String),
    /// Anything else, as rustls or Pingora worded it.
    Other(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, head: &str, detail: &Option<String>| match detail {
            Some(d) => write!(f, "{head} ({d})"),
            None => f.write_str(head),
        };
        match self {
            Reason::UnknownIssuer => f.write_str(
                "unknown issuer: the certificate is not signed by a CA the pool trusts (its `ca`, else the system's roots)",
            ),
            Reason::NameMismatch(d) => with(f, "name mismatch: the certificate is not valid for the name cutover asked for (`sni`, else the backend's host)", d),
            // rustls' detail already begins with the same words.
            Reason::Expired(d) => f.write_str(d.as_deref().unwrap_or("certificate expired")),
            Reason::NotYetValid(d) => {
                f.write_str(d.as_deref().unwrap_or("certificate not yet valid"))
            }
            Reason::CaUsedAsEndEntity => f.write_str(
                "CA certificate used as an end-entity certificate: the backend's own certificate has basicConstraints CA:TRUE (as `openssl req -x509` makes it); put that exact certificate in the pool's `ca` to pin it",
            ),
            Reason::BadSignature => f.write_str("bad certificate signature"),
            Reason::WrongPurpose => {
                f.write_str("the certificate is not allowed for TLS server authentication (extended key usage)")
            }
            Reason::BadCertificate(d) => write!(f, "unusable certificate: {d}"),
            Reason::Alert(a) => write!(f, "handshake alert from the backend: {a}"),
            Reason::NotTls => f.write_str("the backend did not answer in TLS (a plain HTTP port?)"),
            Reason::Closed => f.write_str("the backend closed the connection during the handshake"),
            Reason::Incompatible(d) => write!(f, "no common ground with the backend: {d}"),
            Reason::Other(d) => f.write_str(d),
        }
    }
}

impl Reason {
    /// The reason for a typed rustls error.
    pub(crate) fn from_rustls(e: &rustls::Error) -> Reason {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => from_certificate_error(c),
            E::AlertReceived(a) => alert(a),
            E::NoCertificatesPresented => Reason::BadCertificate("the backend sent none".into()),
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => Reason::NotTls,
            E::PeerIncompatible(why) => Reason::Incompatible(format!("{why:?}")),
            E::NoApplicationProtocol => {
                Reason::Incompatible("no ALPN protocol in common (h2, http/1.1)".into())
            }
            other => Reason::Other(other.to_string()),
        }
    }

    /// The reason for an I/O error out of a TLS handshake (tokio-rustls
    /// wraps the rustls error in one).
    pub(crate) fn from_io(e: &std::io::Error) -> Reason {
        if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Reason::from_rustls(r);
        }
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => Reason::Closed,
            _ => Reason::from_text(&e.to_string()),
        }
    }

    /// The reason in an error's text, as rustls' `Display` wrote it
    /// (possibly inside Pingora's context and cause chain).
    pub(crate) fn from_text(text: &str) -> Reason {
        if let Some(rest) = after(text, "invalid peer certificate: ") {
            return certificate_text(rest);
        }
        if let Some(rest) = after(text, "received fatal alert: ") {
            return Reason::Alert(humanize_alert(first_word(rest)));
        }
        let has = |s: &str| text.contains(s);
        if has("peer sent no certificates") {
            Reason::BadCertificate("the backend sent none".into())
        } else if has("received corrupt message") || has("received unexpected message") {
            Reason::NotTls
        } else if has("peer doesn't support any known protocol") {
            Reason::Incompatible("no ALPN protocol in common (h2, http/1.1)".into())
        } else if let Some(rest) = after(text, "peer is incompatible: ") {
            Reason::Incompatible(first_word(rest).to_string())
        } else if has("handshake eof") || has("unexpected end of file") || has("reset by peer") {
            Reason::Closed
        } else {
            Reason::Other(text.trim().to_string())
        }
    }
}

fn from_certificate_error(c: &CertificateError) -> Reason {
    use CertificateError as C;
    match c {
        C::UnknownIssuer => Reason::UnknownIssuer,
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            // rustls' own wording lists the names the certificate carries.
            Reason::NameMismatch(Some(c.to_string()).filter(|s| s != "NotValidForName"))
        }
        C::Expired => Reason::Expired(None),
        C::ExpiredContext { .. } => Reason::Expired(Some(c.to_string())),
        C::NotValidYet => Reason::NotYetValid(None),
        C::NotValidYetContext { .. } => Reason::NotYetValid(Some(c.to_string())),
        C::BadSignature => Reason::BadSignature,
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => Reason::WrongPurpose,
        C::Other(o) => other_certificate_error(&o.to_string()),
        other => certificate_text(&other.to_string()),
    }
}

/// webpki errors rustls has no variant for reach us as `Other(…)` text.
fn other_certificate_error(text: &str) -> Reason {
    if text.contains("CaUsedAsEndEntity") {
        Reason::CaUsedAsEndEntity
    } else if text.contains("EndEntityUsedAsCa") {
        Reason::BadCertificate("a certificate that is not a CA signed another one".into())
    } else {
        Reason::BadCertificate(text.trim().to_string())
    }
}

/// A `CertificateError` as its `Display` wrote it.
fn certificate_text(text: &str) -> Reason {
    // Pingora appends ", SNI: name" after rustls' text.
    let text = text.split(", SNI: ").next().unwrap_or(text).trim();
    let starts = |s: &str| text.starts_with(s);
    if starts("UnknownIssuer") {
        Reason::UnknownIssuer
    } else if starts("NotValidForName") {
        Reason::NameMismatch(None)
    } else if starts("certificate not valid for name") {
        Reason::NameMismatch(Some(text.to_string()))
    } else if starts("certificate expired") {
        Reason::Expired(Some(text.to_string()))
    } else if starts("Expired") {
        Reason::Expired(None)
    } else if starts("certificate not valid yet") {
        Reason::NotYetValid(Some(text.to_string()))
    } else if starts("NotValidYet") {
        Reason::NotYetValid(None)
    } else if starts("BadSignature") {
        Reason::BadSignature
    } else if starts("InvalidPurpose") || starts("certificate does not allow extended key usage") {
        Reason::WrongPurpose
    } else if starts("Other(") {
        other_certificate_error(text)
    } else {
        let what = match first_word(text) {
            "BadEncoding" => "malformed (bad DER encoding)",
            "Revoked" => "revoked",
            "UnhandledCriticalExtension" => "it has a critical extension rustls does not support",
            w if w.starts_with("UnsupportedSignatureAlgorithm") => {
                "signed with an unsupported algorithm"
            }
            _ => text,
        };
        Reason::BadCertificate(what.to_string())
    }
}

fn alert(a: &AlertDescription) -> Reason {
    Reason::Alert(humanize_alert(&format!("{a:?}")))
}

/// An alert name with what it usually means from a backend.
fn humanize_alert(name: &str) -> String {
    let hint = match name {
        "HandshakeFailure" => " (no cipher suite or key exchange in common, or the backend wants something cutover did not send)",
        "ProtocolVersion" => " (no TLS version in common: cutover speaks TLS 1.2 and 1.3)",
        "UnrecognisedName" => " (the backend has no certificate for the SNI name)",
        "CertificateRequired" => " (the backend wants a client certificate)",
        "NoApplicationProtocol" => " (no ALPN protocol in common)",
        "InternalError" => " (the backend failed internally)",
        _ => "",
    };
    format!("{name}{hint}")
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|i| &text[i + marker.len()..])
}

fn first_word(text: &str) -> &str {
    text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or(text)
}

#[cfg(test)]
#[path = "reason_tests.rs"]
mod tests;
