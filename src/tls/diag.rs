//! Saying why a TLS connection to a backend failed: the reason is logged and
//! kept on the backend for `/status`, for proxied requests and for health
//! probes alike.

use super::reason::Reason;
use crate::health::{BackendState, FailureKind};
use crate::request::Ctx;
use std::error::Error as StdError;
use tracing::warn;

/// `via` of a failure seen by a proxied request.
pub(crate) const VIA_REQUEST: &str = "request";
/// `via` of a failure seen by a health probe.
pub(crate) const VIA_HEALTH_CHECK: &str = "health_check";

/// The reason inside a Pingora error. The typed rustls error is used when
/// the cause chain still holds one (cutover's own connector keeps it);
/// Pingora's rustls connector keeps only its text, in the context.
pub(crate) fn reason_of(e: &pingora::Error) -> Reason {
    let mut cause = e.cause.as_deref();
    while let Some(c) = cause {
        if let Some(inner) = c.downcast_ref::<pingora::Error>() {
            cause = inner.cause.as_deref();
            continue;
        }
        if let Some(r) = typed(c) {
            return r;
        }
        break;
    }
    Reason::from_text(&e.to_string())
}

fn typed(e: &(dyn StdError + Send + Sync + 'static)) -> Option<Reason> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(Reason::from_rustls(r));
    }
    let io = e.downcast_ref::<std::io::Error>()?;
    io.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(Reason::from_rustls)
}

/// A proxied request's connection to its current backend failed: if it was
/// the TLS handshake, log why and keep it on the backend.
pub(crate) fn upstream_failed(ctx: &Ctx, kind: FailureKind, e: &pingora::Error) {
    if kind != FailureKind::Tls {
        return;
    }
    let (Some(snap), Some(id)) = (ctx.snap.as_ref(), ctx.current) else {
        return;
    };
    let (Some(pool), Some(backend)) = (snap.pools.get(id.pool), snap.backend(id)) else {
        return;
    };
    let reason = reason_of(e).to_string();
    warn!(
        pool = %pool.name,
        backend = %backend.addr,
        reason = reason.as_str(),
        "TLS handshake with the backend failed"
    );
    backend.state.note_tls_failure(reason, VIA_REQUEST);
}

/// A proxied request's TLS handshake with `backend` (of pool `pool`) failed
/// on cutover's own path: log why and keep it on the backend.
pub(crate) fn backend_tls_failed(pool: &str, backend: &crate::snapshot::Backend, reason: &Reason) {
    let reason = reason.to_string();
    warn!(
        pool,
        backend = %backend.addr,
        reason = reason.as_str(),
        "TLS handshake with the backend failed"
    );
    backend.state.note_tls_failure(reason, VIA_REQUEST);
}

/// A health probe's TLS handshake failed with `reason`: keep it, and log it
/// when it is new (probes repeat every interval; the log should not).
pub(crate) fn probe_failed(state: &BackendState, reason: &Reason) {
    let text = reason.to_string();
    if state.note_tls_failure(text.clone(), VIA_HEALTH_CHECK) {
        warn!(
            pool = %state.pool,
            backend = %state.addr,
            reason = text.as_str(),
            "TLS handshake with the backend failed (health check)"
        );
    }
}
