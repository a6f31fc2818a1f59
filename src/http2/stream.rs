//! One HTTP/2 request, proxied to an HTTP/1 backend through the same
//! decision core as the other paths ([`crate::request::decide`]: route,
//! split, sticky, override, retries, ejection, gate window, metrics, access
//! log) and the same backend exchange as cutover's HTTP/1 path (pooled
//! connections, the one response-header policy).
//!
//! Until the backend's head arrives the request races the client's
//! `RST_STREAM`: a stream the client gives up on (rapid reset) stops its
//! backend work at once and is logged as 499.

use super::body::{self, BodyError, PumpError};
use super::head::{self, BodyHead, H2Head, Upstream};
use super::relay::{relay, synthetic, Answer, Answered};
use crate::access_log::Entry;
use crate::control::Control;
use crate::fast::exchange::{self, Attempt, AttemptError};
use crate::fast::response::{ClientSide, Final};
use crate::fast::{failure_status, upstream, ConnInfo};
use crate::health::FailureKind;
use crate::request::decide;
use crate::request::retry::Failed;
use crate::request::Ctx;
use crate::route::RequestView;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::Method;
use std::sync::Arc;

/// Serve one request stream.
pub(crate) async fn serve(
    control: &Arc<Control>,
    conn: &ConnInfo,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let snap = control.snapshot();
    let (mut parts, mut body) = req.into_parts();
    if !snap.config.proxy.underscores_in_headers {
        head::drop_underscored(&mut parts.headers);
    }
    let mut ctx = Ctx::new(Some(control.begin_request()));
    ctx.snap = Some(snap.clone());
    let target = head::target(&parts.uri);
    let host = head::host(&parts.uri, &parts.headers);
    let answer = match host {
        // CONNECT (a tunnel) is not proxied; a request with no host is
        // malformed.
        _ if parts.method == Method::CONNECT => synthetic(&mut ctx, &mut respond, 405),
        None => synthetic(&mut ctx, &mut respond, 400),
        Some(host) => {
            let view = RequestView {
                method: &parts.method,
                host: Some(host),
                path: parts.uri.path(),
                headers: &parts.headers,
            };
            match decide::match_route(&snap, &view) {
                None => synthetic(&mut ctx, &mut respond, 404),
                Some(ri) => {
                    let client_ip = conn.client.map(|a| a.ip());
                    decide::choose_pool(&mut ctx, &snap, ri, &view, client_ip);
                    let req = Upstream {
                        method: &parts.method,
                        target,
                        host,
                        headers: &parts.headers,
                        client_ip,
                        tls: conn.tls,
                    };
                    proxy(&mut ctx, &snap, &req, &mut body, &mut respond).await
                }
            }
        }
    };
    let done = Entry {
        client: conn.client,
        method: parts.method.as_str(),
        host: host.unwrap_or(""),
        path: target,
        status: answer.status,
        bytes: answer.bytes,
        ..Entry::default()
    };
    decide::finish(&control.metrics, &mut ctx, done);
}

/// The client's body as the attempts send it.
struct Outgoing {
    /// Head, and the body read so far.
    bytes: Vec<u8>,
    head_len: usize,
    /// The rest of the body is still to come (chunked when the client did
    /// not declare its length).
    streamed: Option<bool>,
}

/// Read the body (whole, or up to `retry_buffer`) and write the head.
async fn outgoing(
    snap: &Snapshot,
    req: &Upstream<'_>,
    body: &mut RecvStream,
) -> Result<Outgoing, BodyError> {
    let settings = &snap.config.proxy;
    let mut data = Vec::new();
    let whole = body.is_end_stream()
        || body::read_up_to(
            body,
            &mut data,
            settings.retry_buffer,
            settings.body_timeout,
        )
        .await?;
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A whole body with trailers goes chunked: HTTP/1 carries trailer
    // fields only there.
    let fields = match whole && !body.is_end_stream() {
        true => body::trailers(body, settings.body_timeout).await,
        false => None,
    };
    let (framing, streamed) = match (whole, declared) {
        (true, _) if fields.is_some() => (BodyHead::Chunked, None),
        (true, _) if data.is_empty() && declared.is_none() => (BodyHead::None, None),
        (true, _) => (BodyHead::Length(data.len() as u64), None),
        (false, Some(n)) => (BodyHead::Length(n), Some(false)),
        (false, None) => (BodyHead::Chunked, Some(true)),
    };
    let mut bytes = Vec::with_capacity(512 + data.len());
    head::write_upstream(&mut bytes, req, framing);
    let head_len = bytes.len();
    if framing == BodyHead::Chunked {
        // What was read so far is the first chunk.
        if !data.is_empty() {
            bytes.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            bytes.extend_from_slice(&data);
            bytes.extend_from_slice(b"\r\n");
        }
        if streamed.is_none() {
            body::last_chunk(&mut bytes, fields.as_ref());
        }
    } else {
        bytes.extend_from_slice(&data);
    }
    Ok(Outgoing {
        bytes,
        head_len,
        streamed,
    })
}

/// Why no backend answer came.
enum NoAnswer {
    /// The proxy answers with this status.
    Status(u16),
    /// The client went away (or reset the stream) first.
    Gone,
}

/// Attempts until a backend answers or retries run out.
async fn attempts<'s>(
    ctx: &mut Ctx,
    snap: &'s Snapshot,
    req: &Upstream<'_>,
    body: &mut RecvStream,
) -> Result<Answered<'s>, NoAnswer> {
    let settings = &snap.config.proxy;
    let out = match outgoing(snap, req, body).await {
        Ok(o) => o,
        Err(BodyError::TimedOut) => return Err(NoAnswer::Status(408)),
        Err(BodyError::Gone) => return Err(NoAnswer::Gone),
    };
    if let Some(c) = ctx.mirror.as_mut() {
        match out.streamed {
            None => c.request_http1(&out.bytes, out.head_len),
            Some(_) => c.streamed(),
        }
    }
    let tagged = decide::tags_pool(ctx);
    let mut fresh = false;
    loop {
        let Some(id) = decide::begin_attempt(ctx) else {
            return Err(NoAnswer::Status(502));
        };
        let backend = &snap.pools[id.pool].backends[id.backend];
        let attempt = Attempt::new(snap, id, &out.bytes, out.head_len);
        let side = ClientSide {
            head_request: req.method == Method::HEAD,
            close: false,
            tag: tagged.then_some(attempt.pool),
            http2: true,
        };
        let mut buf = Vec::with_capacity(exchange::RESPONSE_BUF);
        let mut h2head = H2Head::default();
        let skip_pool = std::mem::take(&mut fresh);
        let result = match out.streamed {
            None => exchange::attempt(&attempt, skip_pool, side, &mut buf, &mut h2head).await,
            Some(chunked) => {
                match stream_attempt(&attempt, skip_pool, chunked, body, settings, side, &mut buf)
                    .await
                {
                    Ok(r) => Ok(r),
                    // The body is gone: no other attempt can send it.
                    Err(Streaming::Client(BodyError::TimedOut)) => {
                        return Err(NoAnswer::Status(408))
                    }
                    Err(Streaming::Client(BodyError::Gone)) => return Err(NoAnswer::Gone),
                    Err(Streaming::Pumped(kind)) => {
                        decide::record_failure(ctx, kind, true);
                        return Err(NoAnswer::Status(failure_status(kind)));
                    }
                    Err(Streaming::Attempt(e)) => Err(e),
                }
                .map(|(up, head, out)| {
                    h2head = out;
                    (up, head)
                })
            }
        };
        match result {
            Ok((up, head)) => {
                decide::record_answer(ctx, head.status);
                return Ok(Answered {
                    up,
                    key: upstream::Key::of(backend),
                    buf,
                    head,
                    out: h2head,
                });
            }
            Err(e) => {
                let failed = Failed {
                    idempotent: req.method.is_idempotent(),
                    reused: e.reused,
                    ..Failed::new(e.kind, e.stage)
                };
                if decide::judge_failure(ctx, failed) {
                    fresh = ctx.fresh_retry;
                    continue;
                }
                return Err(NoAnswer::Status(failure_status(e.kind)));
            }
        }
    }
}

/// How an attempt with a streamed body failed.
enum Streaming {
    /// Before any of the rest of the body was read: it may be retried.
    Attempt(AttemptError),
    /// The client failed mid-body.
    Client(BodyError),
    /// The backend failed once the body was under way.
    Pumped(FailureKind),
}

/// An attempt whose body streams from the client as it comes.
async fn stream_attempt(
    attempt: &Attempt<'_>,
    fresh: bool,
    chunked: bool,
    body: &mut RecvStream,
    settings: &crate::config::ProxySettings,
    side: ClientSide<'_>,
    buf: &mut Vec<u8>,
) -> Result<(upstream::Conn, Final, H2Head), Streaming> {
    let (mut up, reused) = exchange::connect(attempt, fresh)
        .await
        .map_err(Streaming::Attempt)?;
    exchange::send(
        &mut up,
        attempt.request,
        attempt.head_len,
        settings.read_timeout,
    )
    .await
    .map_err(|e| Streaming::Attempt(AttemptError { reused, ..e }))?;
    match body::pump(
        body,
        &mut up,
        chunked,
        settings.body_timeout,
        settings.read_timeout,
    )
    .await
    {
        Ok(()) => {}
        Err(PumpError::Client(e)) => return Err(Streaming::Client(e)),
        Err(PumpError::Upstream(kind)) => return Err(Streaming::Pumped(kind)),
    }
    let mut out = H2Head::default();
    match exchange::read_head(&mut up, settings.read_timeout, side, buf, &mut out).await {
        Ok(head) => Ok((up, head, out)),
        Err(e) => Err(Streaming::Pumped(e.kind)),
    }
}

/// Proxy the request; the wait for a backend's head ends early if the
/// client resets the stream.
async fn proxy(
    ctx: &mut Ctx,
    snap: &Snapshot,
    req: &Upstream<'_>,
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Answer {
    // `Expect: 100-continue`: the client waits for a go-ahead before its
    // body. Give it at once, as nginx does, so it does not sit out its own
    // timeout (curl's is 1 s); the backend is not asked (the header is not
    // sent on).
    if !body.is_end_stream()
        && req
            .headers
            .get_all(http::header::EXPECT)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        let mut go = http::Response::new(());
        *go.status_mut() = http::StatusCode::CONTINUE;
        // A client that has gone is seen by the reset below.
        let _ = respond.send_informational(go);
    }
    let answered = {
        let work = attempts(ctx, snap, req, body);
        let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
        tokio::select! {
            a = work => a,
            _ = reset => Err(NoAnswer::Gone),
        }
    };
    match answered {
        Ok(a) => relay(ctx, snap, respond, a).await,
        Err(NoAnswer::Status(code)) => synthetic(ctx, respond, code),
        // 499, as nginx logs it: the client went away mid-request.
        Err(NoAnswer::Gone) => Answer {
            status: 499,
            bytes: 0,
        },
    }
}
