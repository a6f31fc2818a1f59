//! cutover's own HTTP/1 path for the common request.
//!
//! Pingora's HTTP/1 proxy session costs about 94,000 instructions and a
//! hundred allocations per proxied request (header maps built and rehashed
//! with a case map beside them, several timers, a large boxed future); that
//! is most of cutover's CPU per request. The common request — HTTP/1.1, no
//! upgrade, to a route whose pools are plain HTTP — needs none of it: this
//! path parses the head in place (`httparse`), reads a body up to
//! `retry_buffer` whole (so a retry can resend it) and streams a larger or
//! chunked one (`upload.rs`: never retried once read), makes the same
//! decisions through the same code as the Pingora path
//! ([`crate::request::decide`]: route, split, sticky, override, retries,
//! ejection, gate window, metrics, access log), writes the upstream head in
//! one buffer, keeps backend connections in a per-thread idle pool, and
//! passes the response body through with its own framing.
//!
//! Everything else — upgrades, `Expect`, HTTP/1.0, HTTP/2, TLS or HTTP/2
//! backends, unmatched requests — is left to
//! Pingora's proxy, untouched: [`serve`] hands the bytes back and says so.

pub(crate) mod exchange;
mod relay;
pub mod request;
pub mod response;
mod upload;
pub(crate) mod upstream;

use crate::access_log::Entry;
use crate::conn::GuardedStream;
use crate::control::Control;
use crate::health::FailureKind;
use crate::request::decide;
use crate::request::retry::Failed;
use crate::request::{Ctx, Synthetic};
use crate::route::RequestView;
use crate::snapshot::Snapshot;
use exchange::Attempt;
use http::Method;
use response::ClientSide;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What is known about a client connection for all its requests.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The client connection is TLS.
    pub tls: bool,
}

/// How [`serve`] left the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Answered; wait for the next request.
    KeepAlive,
    /// Answered (or failed); close the connection.
    Close,
    /// Not taken: the request's bytes are back in the stream for Pingora.
    NotTaken,
}

/// The outcome of proxying one taken request.
struct Answer {
    status: u16,
    bytes: usize,
    keep_alive: bool,
}

/// Serve the request at the head of `client`'s read-ahead bytes, if it is
/// one the fast path takes.
pub async fn serve(control: &Arc<Control>, client: &mut GuardedStream, conn: &ConnInfo) -> Served {
    let snap = control.snapshot();
    let buf = client.take_buffered();
    let mut storage = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
    let Some(head) = request::parse(&buf, &mut storage, snap.config.proxy.retry_buffer) else {
        client.put_back(buf);
        return Served::NotTaken;
    };
    let Ok(method) = Method::from_bytes(head.method.as_bytes()) else {
        client.put_back(buf);
        return Served::NotTaken;
    };
    let view = RequestView {
        method: &method,
        host: Some(head.host),
        path: head.path(),
        headers: &head.headers,
    };
    let taken = decide::match_route(&snap, &view).filter(|ri| {
        // HTTP/2 to the backends is Pingora's job.
        let route = &snap.routes[*ri];
        route.slots.iter().all(|s| snap.pools[s.pool].own_path)
    });
    let Some(ri) = taken else {
        client.put_back(buf);
        return Served::NotTaken;
    };
    client.in_request();
    // The body's first bytes may have come with the head; beyond the body,
    // a pipelined request's bytes wait in the stream.
    let body_end = head.len + head.body_len;
    let body_read = buf.len().min(body_end);
    if buf.len() > body_end {
        client.put_back(buf[body_end..].to_vec());
    }

    let client_ip = conn.client.map(|a| a.ip());
    let mut ctx = Ctx::new(Some(control.begin_request()));
    ctx.snap = Some(snap.clone());
    decide::choose_pool(&mut ctx, &snap, ri, &view, client_ip);
    let close = head.close || control.lifecycle.draining.load(Relaxed);
    let answer = if let Some(framing) = head.stream {
        // A body too large to keep for a retry, or chunked: streamed as it
        // comes (what arrived with the head is back in the stream), and not
        // kept for a mirror copy either.
        if let Some(c) = ctx.mirror.as_mut() {
            c.streamed();
        }
        let mut first = Vec::with_capacity(head.len + 160);
        request::write_upstream(&mut first, &head, client_ip, conn.tls);
        let req = Request {
            head: &first,
            head_len: first.len(),
            idempotent: method.is_idempotent(),
            head_request: method == Method::HEAD,
            close,
        };
        upload::proxy(&mut ctx, &snap, req, upload::Body::new(framing), client).await
    } else {
        // Room for what has arrived; the rest of a body grows it as it comes,
        // so a client that declares a body and stalls holds little.
        let mut upstream_req = Vec::with_capacity(head.len + 160 + (body_read - head.len));
        request::write_upstream(&mut upstream_req, &head, client_ip, conn.tls);
        let head_len = upstream_req.len();
        upstream_req.extend_from_slice(&buf[head.len..body_read]);
        let body_timeout = snap.config.proxy.body_timeout;
        match read_body(
            client,
            &mut upstream_req,
            body_end - body_read,
            body_timeout,
        )
        .await
        {
            Ok(()) => {
                let req = Request {
                    head: &upstream_req,
                    head_len,
                    idempotent: method.is_idempotent(),
                    head_request: method == Method::HEAD,
                    close,
                };
                proxy(&mut ctx, &snap, req, client).await
            }
            Err(BodyError::TimedOut) => respond_error(&mut ctx, client, 408).await,
            // 499, as nginx logs it: the client went away mid-request.
            Err(BodyError::Gone) => Answer {
                status: 499,
                bytes: 0,
                keep_alive: false,
            },
        }
    };
    let done = Entry {
        client: conn.client,
        method: head.method,
        host: head.host,
        path: head.target,
        status: answer.status,
        bytes: answer.bytes,
        ..Entry::default()
    };
    decide::finish(&control.metrics, &mut ctx, done);
    if answer.keep_alive {
        Served::KeepAlive
    } else {
        Served::Close
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It stalled past `body_timeout`.
    TimedOut,
    /// The client closed or reset the connection.
    Gone,
}

/// Append the `missing` rest of a request body from `client` to `out`,
/// growing `out` as bytes arrive (not by the declared length up front).
async fn read_body(
    client: &mut GuardedStream,
    out: &mut Vec<u8>,
    missing: usize,
    stall: std::time::Duration,
) -> Result<(), BodyError> {
    let end = out.len() + missing;
    while out.len() < end {
        let want = (end - out.len()).min(16 * 1024);
        out.reserve(want);
        let mut part = (&mut *client).take(want as u64);
        match tokio::time::timeout(stall, part.read_buf(out)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(BodyError::Gone),
            Ok(Ok(_)) => {}
            Err(_) => return Err(BodyError::TimedOut),
        }
    }
    Ok(())
}

/// The request as the attempts need it.
struct Request<'a> {
    /// Head and body, ready to send (a streamed body: the head only).
    head: &'a [u8],
    /// How much of it is the head.
    head_len: usize,
    idempotent: bool,
    head_request: bool,
    close: bool,
}

/// The attempt of `req` on backend `id`, and how its answer is written to
/// the client (`tagged`: with the pool's name, for the override header).
fn plan<'a>(
    snap: &'a Snapshot,
    id: crate::snapshot::BackendId,
    req: &Request<'a>,
    tagged: bool,
) -> (Attempt<'a>, ClientSide<'a>) {
    let attempt = Attempt::new(snap, id, req.head, req.head_len);
    let side = ClientSide {
        head_request: req.head_request,
        close: req.close,
        tag: tagged.then_some(attempt.pool),
        http2: false,
    };
    (attempt, side)
}

/// The proxy's own answer when a backend failed: 504 if it timed out.
pub(crate) fn failure_status(kind: FailureKind) -> u16 {
    if kind == FailureKind::ReadTimeout {
        504
    } else {
        502
    }
}

/// Attempts until a backend answers or retries run out, then the answer's
/// relay (or the proxy's own 502/504).
async fn proxy(
    ctx: &mut Ctx,
    snap: &Snapshot,
    req: Request<'_>,
    client: &mut GuardedStream,
) -> Answer {
    let settings = &snap.config.proxy;
    let tagged = decide::tags_pool(ctx);
    if let Some(c) = ctx.mirror.as_mut() {
        c.request_http1(req.head, req.head_len);
    }
    // The next attempt skips the idle pool (a retry after a stale one).
    let mut fresh = false;
    loop {
        let Some(id) = decide::begin_attempt(ctx) else {
            return respond_error(ctx, client, 502).await;
        };
        let (attempt, side) = plan(snap, id, &req, tagged);
        let mut buf = Vec::with_capacity(exchange::RESPONSE_BUF);
        let mut out = Vec::with_capacity(512);
        let skip_pool = std::mem::take(&mut fresh);
        let (up, head) =
            match exchange::attempt(&attempt, skip_pool, side, &mut buf, &mut out).await {
                Ok(answer) => answer,
                Err(e) => {
                    // The body is kept whole, to be sent again.
                    let failed = Failed {
                        idempotent: req.idempotent,
                        reused: e.reused,
                        ..Failed::new(e.kind, e.stage)
                    };
                    if decide::judge_failure(ctx, failed) {
                        fresh = ctx.fresh_retry;
                        continue;
                    }
                    return respond_error(ctx, client, failure_status(e.kind)).await;
                }
            };
        decide::record_answer(ctx, head.status);
        return relay::relay(ctx, client, up, &attempt, buf, &out, head, settings).await;
    }
}

/// Answer with the proxy's own error and close the connection.
async fn respond_error(ctx: &mut Ctx, client: &mut GuardedStream, code: u16) -> Answer {
    ctx.proxy_status = Some(code);
    let answer = Synthetic::closing(code);
    let sent = client.write_all(&answer.http1()).await.is_ok() && client.flush().await.is_ok();
    Answer {
        status: code,
        bytes: if sent { answer.body().len() } else { 0 },
        keep_alive: false,
    }
}
