//! What a Pingora error means for cutover: which failure kind it counts as,
//! whether it may be retried, and which status the client gets — with a
//! short plain-text body, like nginx's, instead of an empty one.

use crate::health::FailureKind;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// The failure kind an upstream error counts as.
pub fn classify(e: &Error) -> FailureKind {
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
pub fn status_for(e: &Error) -> u16 {
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

/// A short body for an error status.
pub fn body_for(code: u16) -> &'static str {
    match code {
        400 => "400 Bad Request\n",
        404 => "404 Not Found: no route matches this request\n",
        405 => "405 Method Not Allowed\n",
        408 => "408 Request Timeout\n",
        431 => "431 Request Header Fields Too Large\n",
        500 => "500 Internal Server Error\n",
        501 => "501 Not Implemented\n",
        502 => "502 Bad Gateway: no backend could be reached\n",
        503 => "503 Service Unavailable\n",
        504 => "504 Gateway Timeout: the backend did not answer in time\n",
        _ => "error\n",
    }
}

/// The proxy's own error response for a raw HTTP/1 connection: the status,
/// the short body of [`body_for`], and `Connection: close`.
pub fn error_response(code: u16) -> Vec<u8> {
    let body = body_for(code);
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Send a complete plain-text response from the proxy itself.
pub async fn respond_plain(session: &mut Session, code: u16, close: bool) -> pingora::Result<()> {
    let body = body_for(code);
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
