//! The way back to an HTTP/2 client: the backend's answer relayed (its
//! HTTP/1 framing undone, whole when it fits in [`RESPONSE_HOLD`], else
//! within the client's window, trailers as HTTP/2 trailers), or the proxy's
//! own answer.

use super::body::{self, Unframe};
use super::head::H2Head;
use crate::fast::exchange;
use crate::fast::response::{Final, Framing};
use crate::fast::{failure_status, upstream};
use crate::health::FailureKind;
use crate::request::decide;
use crate::request::{Ctx, Synthetic};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use h2::server::SendResponse;

/// Most of a response read before the client's head is sent: an answer up
/// to this size goes out whole, its backend connection already back in the
/// pool.
const RESPONSE_HOLD: usize = exchange::RESPONSE_BUF;

/// What went to the client.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) bytes: usize,
}

/// Answer with the proxy's own response.
pub(super) fn synthetic(ctx: &mut Ctx, respond: &mut SendResponse<Bytes>, code: u16) -> Answer {
    ctx.proxy_status = Some(code);
    let text = Synthetic::closing(code).body();
    let resp = http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, text.len())
        .body(());
    let sent = resp.ok().and_then(|r| respond.send_response(r, false).ok());
    let sent = sent.is_some_and(|mut s| {
        s.send_data(Bytes::from_static(text.as_bytes()), true)
            .is_ok()
    });
    Answer {
        status: code,
        bytes: if sent { text.len() } else { 0 },
    }
}

/// The backend answered: its connection, head, and the client's head.
pub(super) struct Answered<'s> {
    /// The backend connection, the answer's body still to come on it.
    pub(super) up: upstream::Conn,
    /// Which pooled connections it belongs with.
    pub(super) key: upstream::Key<'s>,
    /// The head and the first of the body.
    pub(super) buf: Vec<u8>,
    /// The head, parsed.
    pub(super) head: Final,
    /// The client's version of the head.
    pub(super) out: H2Head,
}

/// Send the backend's answer to the client: whole if it fits in
/// [`RESPONSE_HOLD`], else streamed as the client's window opens.
pub(super) async fn relay(
    ctx: &mut Ctx,
    snap: &Snapshot,
    respond: &mut SendResponse<Bytes>,
    a: Answered<'_>,
) -> Answer {
    let Answered {
        mut up,
        key,
        mut buf,
        head,
        out,
    } = a;
    let settings = &snap.config.proxy;
    if let Some(c) = ctx.mirror.as_mut() {
        // The body pieces below come unframed.
        c.response_head_http1(&buf[..head.len], false);
    }
    let mut unframe = Unframe::new(head.framing);
    let mut payload = Vec::with_capacity(match head.framing {
        Framing::Length(n) => (n as usize).min(RESPONSE_HOLD),
        Framing::Empty => 0,
        _ => RESPONSE_HOLD,
    });
    // Read ahead: most answers are complete here.
    let mut from = head.len;
    let ended = loop {
        match unframe.take(&buf[from..], &mut payload) {
            Ok(Some(took)) => break Ok(from + took == buf.len()),
            Ok(None) if payload.len() >= RESPONSE_HOLD => break Err(None),
            Ok(None) => {}
            Err(kind) => break Err(Some(kind)),
        }
        buf.clear();
        from = 0;
        match exchange::read_more(&mut up, &mut buf, settings.read_timeout).await {
            Ok(0) if unframe.until_close() => break Ok(false),
            Ok(0) => break Err(Some(FailureKind::Reset)),
            Ok(_) => {}
            Err(kind) => break Err(Some(kind)),
        }
    };
    let status = head.status;
    match ended {
        Err(Some(kind)) => {
            // Nothing went to the client yet: it gets the proxy's error.
            decide::record_failure(ctx, kind, true);
            synthetic(ctx, respond, failure_status(kind))
        }
        Ok(clean) => {
            if clean && head.reusable {
                upstream::put_idle(&key, up);
            }
            if let Some(c) = ctx.mirror.as_mut() {
                c.response_body(&payload);
                c.complete();
            }
            let len = payload.len();
            let trailers = unframe.trailers();
            let ends = trailers.is_none();
            let Ok(mut stream) = respond.send_response(out.into_response(), len == 0 && ends)
            else {
                return Answer { status, bytes: 0 };
            };
            // At most a hold's worth: queued whole, without waiting for
            // window (the connection's writes keep `send_timeout`).
            let sent = len == 0 || stream.send_data(Bytes::from(payload), ends).is_ok();
            if let Some(t) = trailers {
                let _ = stream.send_trailers(t);
            }
            Answer {
                status,
                bytes: if sent { len } else { 0 },
            }
        }
        Err(None) => {
            let Ok(mut stream) = respond.send_response(out.into_response(), false) else {
                return Answer { status, bytes: 0 };
            };
            let mut bytes = 0;
            loop {
                if let Some(c) = ctx.mirror.as_mut() {
                    c.response_body(&payload);
                }
                let n = payload.len();
                let piece = Bytes::from(std::mem::replace(
                    &mut payload,
                    Vec::with_capacity(RESPONSE_HOLD),
                ));
                if body::send(&mut stream, piece, false, settings.send_timeout)
                    .await
                    .is_err()
                {
                    return Answer { status, bytes };
                }
                bytes += n;
                buf.clear();
                let read = exchange::read_more(&mut up, &mut buf, settings.read_timeout).await;
                let end = match read {
                    Ok(0) if unframe.until_close() => Ok(Some(0)),
                    Ok(0) => Err(FailureKind::Reset),
                    Ok(_) => unframe.take(&buf, &mut payload),
                    Err(kind) => Err(kind),
                };
                match end {
                    Ok(None) => {}
                    Ok(Some(took)) => {
                        if took == buf.len() && head.reusable && !unframe.until_close() {
                            upstream::put_idle(&key, up);
                        }
                        if let Some(c) = ctx.mirror.as_mut() {
                            c.response_body(&payload);
                            c.complete();
                        }
                        let n = payload.len();
                        let last = Bytes::from(payload);
                        let trailers = unframe.trailers();
                        let ends = trailers.is_none();
                        let ok = body::send(&mut stream, last, ends, settings.send_timeout)
                            .await
                            .is_ok();
                        if let (true, Some(t)) = (ok, trailers) {
                            let _ = stream.send_trailers(t);
                        }
                        return Answer {
                            status,
                            bytes: bytes + if ok { n } else { 0 },
                        };
                    }
                    Err(kind) => {
                        // Mid-body: the client sees the stream reset.
                        decide::record_failure(ctx, kind, true);
                        stream.send_reset(h2::Reason::INTERNAL_ERROR);
                        return Answer { status, bytes };
                    }
                }
            }
        }
    }
}
