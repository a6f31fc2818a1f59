//! Bodies on an HTTP/2 stream: the client's request body (read whole up to
//! `retry_buffer`, so that a retry can send it again, else streamed to the
//! backend as it comes), and the backend's HTTP/1 response body, unframed
//! and sent as DATA frames no faster than the client's flow-control window
//! opens.
//!
//! Every wait has its deadline: `body_timeout` between two frames of the
//! client's body, `read_timeout` on the backend, `send_timeout` for window
//! the client does not open. Window for the client's body is given back
//! only once its bytes are on their way to the backend, so a backend that
//! reads slowly slows the client instead of filling memory.

use crate::chunked::{ChunkedEnd, Part};
use crate::fast::response::Framing;
use crate::fast::upstream::Conn;
use crate::health::FailureKind;
use crate::request::headers::{is_one_of as is, REQUEST_HOP_BY_HOP, RESPONSE_HOP_BY_HOP};
use bytes::Bytes;
use h2::{RecvStream, SendStream};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Why the client's body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// No frame for `body_timeout`.
    TimedOut,
    /// The client reset the stream or the connection went away.
    Gone,
}

/// The next piece of the client's body (`None` at its end), within `stall`.
async fn next_piece(body: &mut RecvStream, stall: Duration) -> Result<Option<Bytes>, BodyError> {
    match tokio::time::timeout(stall, body.data()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(None) => Ok(None),
        Ok(Some(Err(_))) => Err(BodyError::Gone),
        Ok(Some(Ok(piece))) => Ok(Some(piece)),
    }
}

/// Read the client's body into `out` until it ends (`true`) or `out` holds
/// more than `limit` bytes (`false`: the rest is still to come).
pub(crate) async fn read_up_to(
    body: &mut RecvStream,
    out: &mut Vec<u8>,
    limit: usize,
    stall: Duration,
) -> Result<bool, BodyError> {
    while let Some(piece) = next_piece(body, stall).await? {
        out.extend_from_slice(&piece);
        let _ = body.flow_control().release_capacity(piece.len());
        if out.len() > limit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How streaming the client's body to the backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpError {
    /// On the client's side.
    Client(BodyError),
    /// On the backend's side.
    Upstream(FailureKind),
}

/// Write `data` to the backend within `timeout`.
async fn write(up: &mut Conn, data: &[u8], timeout: Duration) -> Result<(), PumpError> {
    match tokio::time::timeout(timeout, up.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(PumpError::Upstream(FailureKind::Reset)),
        Err(_) => Err(PumpError::Upstream(FailureKind::ReadTimeout)),
    }
}

/// Stream the rest of the client's body to the backend, chunk-framed when
/// `chunked`, each piece's window given back once it is written.
pub(crate) async fn pump(
    body: &mut RecvStream,
    up: &mut Conn,
    chunked: bool,
    stall: Duration,
    write_timeout: Duration,
) -> Result<(), PumpError> {
    while let Some(piece) = next_piece(body, stall).await.map_err(PumpError::Client)? {
        if piece.is_empty() {
            continue;
        }
        if chunked {
            write(
                up,
                format!("{:x}\r\n", piece.len()).as_bytes(),
                write_timeout,
            )
            .await?;
        }
        write(up, &piece, write_timeout).await?;
        if chunked {
            write(up, b"\r\n", write_timeout).await?;
        }
        let _ = body.flow_control().release_capacity(piece.len());
    }
    if chunked {
        let fields = trailers(body, stall).await;
        let mut last = Vec::new();
        last_chunk(&mut last, fields.as_ref());
        write(up, &last, write_timeout).await?;
    }
    Ok(())
}

/// The client's trailer fields, once its body has ended, if it sent any.
pub(crate) async fn trailers(body: &mut RecvStream, stall: Duration) -> Option<http::HeaderMap> {
    match tokio::time::timeout(stall, body.trailers()).await {
        Ok(Ok(Some(fields))) if !fields.is_empty() => Some(fields),
        _ => None,
    }
}

/// Append the last chunk of a chunked request body: `0`, the trailer
/// fields that may go to a backend (not those about framing, routing or
/// one connection), and the empty line.
pub(crate) fn last_chunk(out: &mut Vec<u8>, fields: Option<&http::HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in fields.into_iter().flatten() {
        let n = name.as_str();
        if is(n, &REQUEST_HOP_BY_HOP)
            || is(
                n,
                &["content-length", "transfer-encoding", "host", "trailer"],
            )
        {
            continue;
        }
        crate::fast::request::header(out, n.as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The most trailer bytes kept from a chunked answer; more is a broken
/// answer.
const MAX_TRAILERS: usize = 16 * 1024;

/// The backend's body framing undone: what goes into DATA frames, and the
/// trailer fields of a chunked body (an HTTP/2 trailers frame).
#[derive(Debug)]
pub(crate) struct Unframe {
    framing: Framing,
    left: u64,
    chunks: ChunkedEnd,
    trailers: Vec<u8>,
}

impl Unframe {
    /// For a body with this framing.
    pub(crate) fn new(framing: Framing) -> Unframe {
        Unframe {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunks: ChunkedEnd::default(),
            trailers: Vec::new(),
        }
    }

    /// The trailer fields of a finished chunked body that may go on to the
    /// client (not those about framing or one connection), if any.
    pub(crate) fn trailers(&self) -> Option<http::HeaderMap> {
        // Only a section with a field line: an empty one is the bare CRLF.
        if self.trailers.len() <= 2 {
            return None;
        }
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let Ok(httparse::Status::Complete((_, fields))) =
            httparse::parse_headers(&self.trailers, &mut storage)
        else {
            return None;
        };
        let mut map = http::HeaderMap::new();
        for f in fields {
            if is(f.name, &RESPONSE_HOP_BY_HOP)
                || is(f.name, &["content-length", "transfer-encoding", "trailer"])
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                http::header::HeaderName::from_bytes(f.name.as_bytes()),
                http::header::HeaderValue::from_bytes(f.value),
            ) {
                map.append(n, v);
            }
        }
        (!map.is_empty()).then_some(map)
    }

    /// The body is delimited by the backend closing the connection.
    pub(crate) fn until_close(&self) -> bool {
        self.framing == Framing::UntilClose
    }

    /// Take the body's bytes from `data` (the next bytes read from the
    /// backend) into `out`. Returns how many bytes of `data` the body took
    /// once its end is among them.
    pub(crate) fn take(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, FailureKind> {
        match self.framing {
            Framing::Empty => Ok(Some(0)),
            Framing::Length(_) => {
                let n = (data.len() as u64).min(self.left) as usize;
                out.extend_from_slice(&data[..n]);
                self.left -= n as u64;
                Ok((self.left == 0).then_some(n))
            }
            Framing::Chunked => {
                let trailers = &mut self.trailers;
                let fed = self.chunks.feed_with(data, &mut |part| match part {
                    Part::Data(piece) => out.extend_from_slice(piece),
                    Part::Trailer(b) => trailers.push(b),
                });
                if self.trailers.len() > MAX_TRAILERS {
                    return Err(FailureKind::Other);
                }
                fed.map_err(|_| FailureKind::Other)
            }
            Framing::UntilClose => {
                out.extend_from_slice(data);
                Ok(None)
            }
        }
    }
}

/// The client stopped taking the body: its window stayed shut past
/// `send_timeout`, or it reset the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientGone;

/// Send `data` on `stream` as the client's window allows (`end`: it is the
/// body's last piece), waiting at most `stall` for window each time.
pub(crate) async fn send(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    stall: Duration,
) -> Result<(), ClientGone> {
    if data.is_empty() {
        return stream.send_data(data, end).map_err(|_| ClientGone);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted =
            tokio::time::timeout(stall, std::future::poll_fn(|cx| stream.poll_capacity(cx))).await;
        let n = match granted {
            Ok(Some(Ok(n))) if n > 0 => n.min(data.len()),
            Ok(Some(Ok(_))) => continue,
            _ => return Err(ClientGone),
        };
        let piece = data.split_to(n);
        stream
            .send_data(piece, end && data.is_empty())
            .map_err(|_| ClientGone)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unframe(framing: Framing, reads: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut u = Unframe::new(framing);
        let mut out = Vec::new();
        let mut end = None;
        for r in reads {
            end = u.take(r, &mut out).unwrap();
        }
        (out, end)
    }

    #[test]
    fn bodies_lose_their_http1_framing() {
        assert_eq!(
            unframe(Framing::Length(5), &[b"hel", b"loEXTRA"]),
            (b"hello".to_vec(), Some(2))
        );
        assert_eq!(
            unframe(
                Framing::Chunked,
                &[b"3\r\nhel\r\n2;x=1\r", b"\nlo\r\n0\r\n\r\n"]
            ),
            (b"hello".to_vec(), Some(10))
        );
        assert_eq!(
            unframe(Framing::UntilClose, &[b"ab", b"c"]),
            (b"abc".to_vec(), None)
        );
        assert_eq!(unframe(Framing::Empty, &[]), (vec![], None));
        let mut u = Unframe::new(Framing::Chunked);
        assert_eq!(u.take(b"zz\r\n", &mut Vec::new()), Err(FailureKind::Other));
    }
}
