//! Pingora's request path: cutover's `ProxyHttp` implementation, an adapter
//! over the request core ([`crate::request`]).
//!
//! Per request: one snapshot load, a route match, a bucket (sticky key or
//! the route's sequence counter), a pool, then a backend per attempt — all
//! decided by the core. Pingora's callbacks describe each failed attempt to
//! the core's retry rule (`request::retry`), which says whether to go again
//! and whether the backend is blamed.

mod errors;
pub(crate) mod headers;

use crate::control::Control;
use crate::health::FailureKind;
use crate::request::decide;
use crate::request::retry::{Failed, Stage};
use crate::request::Ctx;
use crate::route::RequestView;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub(crate) use errors::classify;

/// The proxy application.
pub(crate) struct CutoverProxy {
    control: Arc<Control>,
}

impl CutoverProxy {
    /// A proxy serving from `control`'s snapshots.
    pub(crate) fn new(control: Arc<Control>) -> CutoverProxy {
        CutoverProxy { control }
    }
}

#[async_trait]
impl ProxyHttp for CutoverProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(Some(self.control.begin_request()))
    }

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {
        // No compression or other modules: nothing to set up per request.
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let snap = self.control.snapshot();
        if self.control.lifecycle.draining.load(Relaxed) {
            // Shutting down: answer this one, then close the connection.
            session.set_keepalive(None);
        } else {
            // Keep-alive without Pingora's own timer around reading the next
            // head (`Some(0)`): the connection guard already enforces the
            // idle and header deadlines, and each of Pingora's timers costs
            // a registration per request.
            session.set_keepalive(Some(0));
        }
        // The edge loop took the read timeout off for the head (the guard
        // covers it); a request body must still keep moving.
        let p = &snap.config.proxy;
        session.set_read_timeout(Some(p.body_timeout));
        if session.as_downstream().is_http2() {
            // HTTP/2 flow control can stall a response with no socket write
            // pending, which the guard cannot see: Pingora's own deadline.
            session.set_write_timeout(Some(p.send_timeout));
            // `Expect: 100-continue` is not passed on: a backend would hold
            // the request for a go-ahead it cannot give through Pingora's
            // HTTP/2 session, which drops 1xx heads. (So on this path the
            // client waits its own timeout, curl's 1 s, before its body;
            // cutover's HTTP/2 path answers 100 at once.)
            if session
                .req_header()
                .headers
                .contains_key(http::header::EXPECT)
            {
                let _ = session
                    .req_header_mut()
                    .remove_header(&http::header::EXPECT);
            }
            if !p.underscores_in_headers {
                // The guard drops these from HTTP/1 heads; HTTP/2 heads
                // never pass through it.
                let names: Vec<http::HeaderName> = session
                    .req_header()
                    .headers
                    .keys()
                    .filter(|k| k.as_str().contains('_'))
                    .cloned()
                    .collect();
                for name in names {
                    let _ = session.req_header_mut().remove_header(&name);
                }
            }
        }
        ctx.snap = Some(snap);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let Some(snap) = ctx.snap.clone() else {
            return Ok(false);
        };
        let req = session.req_header();
        let view = RequestView {
            method: &req.method,
            host: headers::request_host(req),
            path: req.uri.path(),
            headers: &req.headers,
        };
        let Some(ri) = decide::match_route(&snap, &view) else {
            ctx.proxy_status = Some(404);
            errors::respond_plain(session, 404, false).await?;
            return Ok(true);
        };
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        decide::choose_pool(ctx, &snap, ri, &view, client_ip);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Some(id) = decide::begin_attempt(ctx) else {
            return Error::e_explain(
                ErrorType::HTTPStatus(502),
                "every backend of the route was tried",
            );
        };
        let Some(snap) = ctx.snap.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no snapshot");
        };
        match snap.backend(id) {
            Some(backend) => Ok(Box::new(backend.peer.clone())),
            None => Error::e_explain(ErrorType::InternalError, "no such backend"),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        headers::strip_request_hop_by_hop(upstream_request);
        headers::add_forwarded(upstream_request, client_ip, tls)?;
        if let Some(c) = ctx.mirror.as_mut() {
            let target = upstream_request
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str());
            c.request_parts(
                upstream_request.method.as_str(),
                target,
                upstream_request
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            );
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let (Some(c), Some(piece)) = (ctx.mirror.as_mut(), body.as_ref()) {
            c.request_body(piece);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<std::time::Duration>> {
        if let (Some(c), Some(piece)) = (ctx.mirror.as_mut(), body.as_ref()) {
            c.response_body(piece);
        }
        Ok(None)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if upstream_response.status.is_informational() && upstream_response.status != 101 {
            return Ok(());
        }
        if let Err(why) = headers::check_response_framing(upstream_response) {
            decide::record_failure(ctx, FailureKind::Other, true);
            return Error::e_explain(ErrorType::HTTPStatus(502), why);
        }
        if let Some(c) = ctx.mirror.as_mut() {
            c.response_head(
                upstream_response.status.as_u16(),
                upstream_response
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            );
        }
        headers::strip_hop_by_hop(upstream_response);
        decide::record_answer(ctx, upstream_response.status.as_u16());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let (Some(snap), Some(ri), Some(p)) = (ctx.snap.as_ref(), ctx.route, ctx.served_pool)
        else {
            return Ok(());
        };
        if snap.routes[ri].override_header.is_some() {
            headers::tag_pool(upstream_response, &snap.pools[p].name)?;
        }
        Ok(())
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        _error: &Error,
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        // Each failed attempt is already logged once, by `record_failure`.
        true
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let kind = classify(&e);
        crate::tls::diag::upstream_failed(ctx, kind, &e);
        let retry = decide::judge_failure(ctx, Failed::new(kind, Stage::Connect));
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        upstream_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        if e.esource() != &pingora::ErrorSource::Upstream {
            // The client's side failed: nothing to judge a backend by.
            e.set_retry(false);
            return e;
        }
        let kind = classify(&e);
        // Pingora streams a request body to the backend as it comes: a
        // backend that times out waiting for the rest of a stalled body is
        // not at fault.
        ctx.client_stalled =
            kind == FailureKind::ReadTimeout && !session.as_downstream_mut().is_body_done();
        let answering = ctx.response_started || session.response_written().is_some();
        // Pingora does not say whether a failed write cut the head or the
        // body short: a request it began sending counts as sent.
        let stage = if answering {
            Stage::Answering
        } else {
            Stage::Sent
        };
        let failed = Failed {
            idempotent: session.req_header().method.is_idempotent(),
            resendable: !session.as_ref().retry_buffer_truncated(),
            reused: upstream_reused,
            client_stalled: ctx.client_stalled,
            ..Failed::new(kind, stage)
        };
        let retry = decide::judge_failure(ctx, failed);
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // The client's own stalled body: 408, as `body_timeout` would.
        let code = if ctx.client_stalled {
            408
        } else {
            errors::status_for(e)
        };
        if code > 0 && session.response_written().is_none() {
            ctx.proxy_status = Some(code);
            if let Err(err) = errors::respond_plain(session, code, true).await {
                tracing::debug!("could not send {code} to the client: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(c) = ctx.mirror.as_mut() {
            // The backend's whole answer went through: nothing failed.
            if e.is_none() && ctx.proxy_status.is_none() && session.response_written().is_some() {
                c.complete();
            }
        }
        // 499, as nginx logs it: the client went away before an answer.
        let status = match session.response_written() {
            Some(r) => r.status.as_u16(),
            None => ctx.proxy_status.filter(|s| *s > 0).unwrap_or(499),
        };
        let req = session.req_header();
        let done = crate::access_log::Entry {
            client: session.client_addr().and_then(|a| a.as_inet()).copied(),
            method: req.method.as_str(),
            host: headers::request_host(req).unwrap_or(""),
            path: req.uri.path_and_query().map_or("", |p| p.as_str()),
            status,
            bytes: session.as_downstream().body_bytes_sent(),
            ..Default::default()
        };
        decide::finish(&self.control.metrics, ctx, done);
    }
}
