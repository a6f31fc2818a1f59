//! cutover's own HTTP/1 path for the common request.
//!
//! Pingora's HTTP/1 proxy session costs about 94,000 instructions and a
//! hundred allocations per proxied request (header maps built and rehashed
//! with a case map beside them, several timers, a large boxed future); that
//! is most of cutover's CPU per request. The common request — HTTP/1.1, no
//! body or a small `Content-Length` one, no upgrade, to a route whose pools
//! are plain HTTP — needs none of it: this path parses the head in place
//! (`httparse`), reads a body whole (so a retry can resend it), makes the same
//! decisions through the same code as the Pingora path
//! ([`crate::proxy::outcome`]: route, split, sticky, override, retries,
//! ejection, gate window, metrics, access log), writes the upstream head in
//! one buffer, keeps backend connections in a per-thread idle pool, and
//! passes the response body through with its own framing.
//!
//! Everything else — chunked or large request bodies, upgrades, `Expect`,
//! HTTP/1.0, HTTP/2, TLS or HTTP/2 backends, unmatched requests — is left to
//! Pingora's proxy, untouched: [`serve`] hands the bytes back and says so.

mod chunked;
mod exchange;
pub mod request;
pub mod response;
mod upstream;

use crate::conn::GuardedStream;
use crate::control::Control;
use crate::health::FailureKind;
use crate::proxy::ctx::Ctx;
use crate::proxy::outcome::{self, Finished};
use crate::route::RequestView;
use crate::snapshot::Snapshot;
use exchange::{Attempt, BodyEnd};
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
    let Some(head) = request::parse(&buf, &mut storage) else {
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
    let taken = outcome::match_route(&snap, &view).filter(|ri| {
        // TLS or HTTP/2 to the backends is Pingora's job.
        let route = &snap.routes[*ri];
        route.slots.iter().all(|s| snap.pools[s.pool].tls.is_none())
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
    outcome::choose_pool(&mut ctx, &snap, ri, &view, client_ip);
    let mut upstream_req = Vec::with_capacity(head.len + 160 + head.body_len);
    request::write_upstream(&mut upstream_req, &head, client_ip, conn.tls);
    upstream_req.extend_from_slice(&buf[head.len..body_read]);
    let answer = match read_body(client, &mut upstream_req, body_end - body_read).await {
        Ok(()) => {
            let close = head.close || control.lifecycle.draining.load(Relaxed);
            let req = Request {
                head: &upstream_req,
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
    };
    let done = Finished {
        client: conn.client,
        method: head.method,
        host: head.host,
        path: head.target,
        status: answer.status,
        bytes: answer.bytes,
    };
    outcome::finish(control, &mut ctx, &done);
    client.await_next_head();
    if answer.keep_alive {
        Served::KeepAlive
    } else {
        Served::Close
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It stalled past [`crate::proxy::BODY_READ_TIMEOUT`].
    TimedOut,
    /// The client closed or reset the connection.
    Gone,
}

/// Append the `missing` rest of a request body from `client` to `out`.
async fn read_body(
    client: &mut GuardedStream,
    out: &mut Vec<u8>,
    missing: usize,
) -> Result<(), BodyError> {
    if missing == 0 {
        return Ok(());
    }
    let start = out.len();
    out.resize(start + missing, 0);
    let mut filled = start;
    while filled < out.len() {
        let read = client.read(&mut out[filled..]);
        match tokio::time::timeout(crate::proxy::BODY_READ_TIMEOUT, read).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(BodyError::Gone),
            Ok(Ok(n)) => filled += n,
            Err(_) => return Err(BodyError::TimedOut),
        }
    }
    Ok(())
}

/// The request as the attempts need it.
struct Request<'a> {
    /// Head and body, ready to send.
    head: &'a [u8],
    idempotent: bool,
    head_request: bool,
    close: bool,
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
    let tagged = ctx
        .route
        .is_some_and(|ri| snap.routes[ri].override_header.is_some());
    loop {
        let Some((p, b)) = outcome::begin_attempt(ctx) else {
            return respond_error(ctx, client, 502).await;
        };
        let pool = &snap.pools[p];
        let attempt = Attempt {
            addr: pool.backends[b].socket,
            request: req.head,
            idempotent: req.idempotent,
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
        };
        let side = ClientSide {
            head_request: req.head_request,
            close: req.close,
            tag: tagged.then_some(&*pool.name),
        };
        let mut buf = Vec::with_capacity(exchange::RESPONSE_BUF);
        let mut out = Vec::with_capacity(512);
        let (mut up, head) = match exchange::attempt(&attempt, side, &mut buf, &mut out).await {
            Ok(answer) => answer,
            Err(e) => {
                outcome::record_failure(ctx, e.kind);
                let may_retry = match e.kind {
                    // Nothing reached the backend: any request may go on.
                    FailureKind::ConnectRefused | FailureKind::ConnectTimeout => true,
                    // The connection died before an answer: safe to resend
                    // what never fully reached it, or what may be sent twice.
                    FailureKind::Reset => e.safe_to_resend(req.idempotent),
                    _ => false,
                };
                if may_retry && outcome::retries_allowed(ctx) {
                    continue;
                }
                let code = if e.kind == FailureKind::ReadTimeout {
                    504
                } else {
                    502
                };
                return respond_error(ctx, client, code).await;
            }
        };
        outcome::record_answer(ctx, head.status);
        if client.write_all(&out).await.is_err() {
            return Answer {
                status: head.status,
                bytes: 0,
                keep_alive: false,
            };
        }
        let (end, bytes) = exchange::relay_body(
            &mut up,
            client,
            &mut buf,
            head.len,
            head.framing,
            settings.read_timeout,
        )
        .await;
        let keep_alive = match end {
            BodyEnd::Complete { clean } => {
                if clean && head.reusable {
                    upstream::put_idle(attempt.addr, up);
                }
                !head.client_close
            }
            BodyEnd::Upstream(kind) => {
                outcome::record_failure(ctx, kind);
                false
            }
            BodyEnd::Client => false,
        };
        return Answer {
            status: head.status,
            bytes,
            keep_alive,
        };
    }
}

/// Answer with the proxy's own error and close the connection.
async fn respond_error(ctx: &mut Ctx, client: &mut GuardedStream, code: u16) -> Answer {
    ctx.proxy_status = Some(code);
    let body = crate::proxy::body_for(code);
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = client.write_all(response.as_bytes()).await.is_ok() && client.flush().await.is_ok();
    Answer {
        status: code,
        bytes: if sent { body.len() } else { 0 },
        keep_alive: false,
    }
}
