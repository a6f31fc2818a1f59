//! What a Pingora error means for cutover: which failure kind it counts as
//! and which status the client gets; and the proxy's own answers
//! ([`Synthetic`]) rendered as Pingora responses.

use crate::health::FailureKind;
use crate::request::Synthetic;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// The failure kind an upstream error counts as.
pub(crate) fn classify(e: &Error) -> FailureKind {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout => FailureKind::ConnectTimeout,
        ConnectRefused | ConnectNoRoute | ConnectError | SocketError | BindError => {
            FailureKind::ConnectRefused
        }
        TLSWantX509Lookup | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert
        | HandshakeError => FailureKind::Tls,
        ReadTimedout | WriteTimedout => FailureKind::ReadTimeout,
        ConnectionClosed | ReadError | WriteError => FailureKind::Reset,
        _ => FailureKind::Other,
    }
}

/// The status for a request that could not be proxied (0: the client is gone).
pub(super) fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        CustomCode(_, code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ReadTimedout | WriteTimedout => 504,
                _ => 502,
            },
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                ReadTimedout => 408,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// Send one of the proxy's own answers.
pub(super) async fn respond_plain(
    session: &mut Session,
    code: u16,
    close: bool,
) -> pingora::Result<()> {
    let answer = Synthetic {
        status: code,
        close,
    };
    let body = answer.body();
    let mut resp = ResponseHeader::build(code, Some(3))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    if close {
        resp.insert_header(http::header::CONNECTION, "close")?;
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await?;
    Ok(())
}
