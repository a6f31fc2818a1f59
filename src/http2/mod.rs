//! cutover's own HTTP/2 server path: the third thin adapter on the decision
//! core, beside cutover's HTTP/1 path ([`crate::fast`]) and Pingora's.
//!
//! Pingora's HTTP/2 session cost about five times HAProxy's CPU per request
//! (a task, header-map conversions, timers and a large boxed future per
//! stream, and its full proxy state machine). Here one task serves the
//! whole connection: the `h2` crate's connection is driven by the accept
//! loop, and the streams run beside it in the same task
//! ([`FuturesUnordered`]), each proxied to an HTTP/1 backend over the
//! pooled connections cutover's HTTP/1 path uses ([`stream`]).
//!
//! The limits: the handshake within `header_timeout`; the connection closed
//! (GOAWAY) after `idle_timeout` with no stream open; at most
//! [`MAX_STREAMS`] concurrent streams; a header block at most
//! `max_header_bytes` (the `h2` crate also bounds the CONTINUATION frames
//! carrying it); clients resetting streams faster than they are served
//! (rapid reset) or provoking resets get GOAWAY; writes to the client under
//! `send_timeout` (the connection guard), a stream's body under
//! `body_timeout`.
//!
//! Connections whose requests may need an HTTP/2 backend still go to
//! Pingora whole (see [`serves`]).

mod body;
mod head;
mod relay;
mod stream;

use crate::conn::GuardedStream;
use crate::control::Control;
use crate::fast::ConnInfo;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Concurrent streams a client may open (nginx's default; HAProxy's is 100).
pub(crate) const MAX_STREAMS: u32 = 128;

/// Window per stream for request bodies: as nginx, enough for a usual
/// upload without a round trip, small enough that an idle connection's
/// streams cannot hold much.
const STREAM_WINDOW: u32 = 64 * 1024;

/// Window for the connection's request bodies together.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Response bytes buffered per stream beyond what the client's window
/// takes; more waits for window (the default is 400 KiB).
const SEND_BUFFER: usize = 64 * 1024;

/// Streams the client resets before they are served, or provokes resets
/// of, before the connection is closed with GOAWAY.
const MAX_PENDING_RESETS: usize = 32;
const MAX_ERROR_RESETS: usize = 256;

/// How long a closing connection (GOAWAY sent, no stream open) waits for
/// the client to close it.
const CLOSE_AFTER: Duration = Duration::from_secs(1);

/// Whether this path serves HTTP/2 clients under `snap`: every pool speaks
/// HTTP/1, plain or over TLS (HTTP/2 to a backend, gRPC's case, is
/// Pingora's job).
pub(crate) fn serves(snap: &Snapshot) -> bool {
    snap.pools.iter().all(|p| p.own_path)
}

/// Serve an HTTP/2 client connection (its preface already checked by the
/// guard) until it closes.
pub(crate) async fn serve(
    control: &Arc<Control>,
    io: Box<GuardedStream>,
    conn: ConnInfo,
    shutdown: &ShutdownWatch,
) {
    let (header_timeout, idle_timeout, max_header) = {
        let snap = control.snapshot();
        let p = &snap.config.proxy;
        (p.header_timeout, p.idle_timeout, p.max_header_bytes)
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX))
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(Some(MAX_ERROR_RESETS))
        .handshake::<_, Bytes>(io);
    let mut h2 = match tokio::time::timeout(header_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!("HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let mut streams = FuturesUnordered::new();
    let mut idle_since = Instant::now();
    let idle = tokio::time::sleep_until(idle_since + idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    let mut down = shutdown.clone();
    // Made once: a watch future made afresh each turn of the loop would
    // register with the channel (a lock) and leave it again every time.
    let stopping = async move {
        let _ = down.wait_for(|d| *d).await;
    };
    tokio::pin!(stopping);
    loop {
        // Streams first: every stream that can finish its step does so
        // before the connection is polled, which then writes all their
        // frames in one go (one write to the client for many responses).
        tokio::select! {
            biased;
            Some(()) = streams.next(), if !streams.is_empty() => {
                if streams.is_empty() {
                    // Noted, not re-armed: a connection serving one
                    // request after another would move the timer each
                    // time. The timer, when it fires, looks here.
                    idle_since = Instant::now();
                }
            }
            accepted = h2.accept() => match accepted {
                Some(Ok((req, respond))) => {
                    // Boxed: a finished stream's slot in the set can
                    // outlive it (a waker left behind), and should not
                    // keep the request's state.
                    streams.push(Box::pin(stream::serve(control, &conn, req, respond)));
                }
                Some(Err(e)) => {
                    tracing::debug!("HTTP/2 connection ended: {e}");
                    break;
                }
                None => break,
            },
            () = &mut idle, if streams.is_empty() => {
                let wait = if closing { CLOSE_AFTER } else { idle_timeout };
                let due = idle_since + wait;
                if due > Instant::now() {
                    // Busy since the timer was set: wait out the rest.
                    idle.as_mut().reset(due);
                    continue;
                }
                if closing {
                    // The client did not close after GOAWAY.
                    break;
                }
                h2.graceful_shutdown();
                closing = true;
                idle_since = Instant::now();
                idle.as_mut().reset(idle_since + CLOSE_AFTER);
            }
            () = &mut stopping, if !closing => {
                // The listeners have stopped: streams in flight finish,
                // new ones go elsewhere.
                h2.graceful_shutdown();
                closing = true;
                idle_since = Instant::now();
                idle.as_mut().reset(idle_since + CLOSE_AFTER);
            }
        }
    }
}
