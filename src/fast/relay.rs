//! The backend's answer relayed to an HTTP/1 client: held whole when it
//! fits (the backend connection freed before a slow client reads it), else
//! streamed; kept for the mirror's comparison when the request is copied.

use super::exchange::{self, Attempt, BodyEnd};
use super::{failure_status, respond_error, response, upstream, Answer};
use crate::conn::GuardedStream;
use crate::request::decide;
use crate::request::Ctx;
use tokio::io::AsyncWriteExt;

/// Most of a response held before the client is written to: a response up
/// to this size (most API answers) releases its backend connection before a
/// slow client has read it. Larger ones stream through a buffer of this
/// size, the backend connection held until the client has them (bounded by
/// `send_timeout`). One buffer's worth per connection keeps a stalled
/// client's cost near nginx's.
const RESPONSE_HOLD: usize = exchange::RESPONSE_BUF;

/// Relay the answer whose head `head` (the client's version in `out`) is
/// at the start of `buf`: as much of the body as [`RESPONSE_HOLD`] allows
/// read first, then the rest streamed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay(
    ctx: &mut Ctx,
    client: &mut GuardedStream,
    mut up: upstream::Conn,
    attempt: &Attempt<'_>,
    mut buf: Vec<u8>,
    out: &[u8],
    head: response::Final,
    settings: &crate::config::ProxySettings,
) -> Answer {
    let mut tracker = exchange::BodyTracker::new(head.framing);
    let read_timeout = settings.read_timeout;
    let ahead = match exchange::read_ahead(
        &mut up,
        &mut buf,
        head.len,
        &mut tracker,
        read_timeout,
        RESPONSE_HOLD,
    )
    .await
    {
        Ok(a) => a,
        Err(kind) => {
            // Nothing went to the client yet: it gets the proxy's error.
            decide::record_failure(ctx, kind, true);
            return respond_error(ctx, client, failure_status(kind)).await;
        }
    };
    let held = &buf[head.len..ahead.end];
    if let Some(c) = ctx.mirror.as_mut() {
        c.response_head_http1(&buf[..head.len], head.framing == response::Framing::Chunked);
        c.response_body(held);
        if ahead.done {
            c.complete();
        }
    }
    if ahead.done {
        // The whole answer is here: the backend connection is free before
        // the client has read a byte.
        if ahead.end == buf.len() && head.reusable {
            upstream::put_idle(&attempt.key, up);
        }
        let held_len = held.len();
        let mut sent = client.write_all(out).await.is_ok() && client.write_all(held).await.is_ok();
        // The answer is queued on the connection (or on its way): a client
        // slow to take it holds that copy only.
        drop(buf);
        sent = sent && client.flush().await.is_ok();
        return Answer {
            status: head.status,
            bytes: if sent { held_len } else { 0 },
            keep_alive: sent && !head.client_close,
        };
    }
    let held_len = held.len();
    if client.write_all(out).await.is_err() || client.write_all(held).await.is_err() {
        return Answer {
            status: head.status,
            bytes: 0,
            keep_alive: false,
        };
    }
    let mut tee = ctx.mirror.as_deref_mut();
    let (end, bytes) = exchange::relay_body(
        &mut up,
        client,
        &mut buf,
        &mut tracker,
        read_timeout,
        &mut tee,
    )
    .await;
    let keep_alive = match end {
        BodyEnd::Complete { clean } => {
            if let Some(c) = ctx.mirror.as_mut() {
                c.complete();
            }
            if clean && head.reusable {
                upstream::put_idle(&attempt.key, up);
            }
            !head.client_close
        }
        BodyEnd::Upstream(kind) => {
            decide::record_failure(ctx, kind, true);
            false
        }
        BodyEnd::Client => false,
    };
    Answer {
        status: head.status,
        bytes: held_len + bytes,
        keep_alive,
    }
}
