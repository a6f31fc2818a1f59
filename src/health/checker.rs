//! The active health checker: one probe loop per checked backend.
//!
//! Loops are reconciled whenever a new snapshot is published: a backend that
//! appears gets a loop whose first probe runs at once; one that disappears
//! has its loop stopped. Each loop reads its settings from the current
//! snapshot before every probe, so a reload that changes `interval` or
//! `path` applies without restarting anything. Loops run concurrently, so a
//! hanging backend never delays another's verdict.

use super::Transition;
use crate::clock::now_ms;
use crate::config::{HealthCheck, Probe};
use crate::snapshot::Snapshot;
use crate::tls::reason::Reason;
use pingora::server::ShutdownWatch;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tracing::{info, warn};

type Key = (Arc<str>, Arc<str>);

/// What the checker needs of the control plane, and no more: the current
/// snapshot (which backends to probe, and their state to update), and news
/// that a new one was published.
pub(crate) trait SnapshotSource: Send + Sync + 'static {
    /// The current snapshot.
    fn snapshot(&self) -> Arc<Snapshot>;
    /// A receiver that changes whenever a new snapshot is published.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Run the checker until `shutdown` turns true.
pub(crate) async fn run<S: SnapshotSource>(control: Arc<S>, mut shutdown: ShutdownWatch) {
    let mut loops: HashMap<Key, JoinHandle<()>> = HashMap::new();
    let mut published = control.subscribe();
    loop {
        reconcile(&control, &mut loops);
        tokio::select! {
            changed = published.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
    for handle in loops.values() {
        handle.abort();
    }
}

fn reconcile<S: SnapshotSource>(control: &Arc<S>, loops: &mut HashMap<Key, JoinHandle<()>>) {
    let snap = control.snapshot();
    let mut wanted = HashSet::new();
    for pool in snap.pools.iter().filter(|p| p.health.is_some()) {
        for b in &pool.backends {
            wanted.insert((pool.name.clone(), b.addr.clone()));
        }
    }
    loops.retain(|key, handle| {
        let keep = wanted.contains(key) && !handle.is_finished();
        if !keep {
            handle.abort();
        }
        keep
    });
    for key in wanted {
        loops
            .entry(key.clone())
            .or_insert_with(|| tokio::spawn(probe_loop(control.clone(), key)));
    }
}

/// TLS for probes of one pool: its settings and the client config made from them.
type ProbeTls = (crate::config::UpstreamTls, Arc<rustls::ClientConfig>);

async fn probe_loop<S: SnapshotSource>(control: Arc<S>, (pool_name, addr): Key) {
    let mut tls_cache: Option<ProbeTls> = None;
    loop {
        let started = tokio::time::Instant::now();
        let (check, socket, state, tls, sni) = {
            let snap = control.snapshot();
            let Some(pool) = snap.pools.iter().find(|p| p.name == pool_name) else {
                return;
            };
            let Some(check) = pool.health.clone() else {
                return;
            };
            let Some(b) = pool.backends.iter().find(|b| b.addr == addr) else {
                return;
            };
            (
                check,
                b.socket,
                b.state.clone(),
                pool.tls.clone(),
                b.peer.sni.clone(),
            )
        };
        let tls = match tls {
            None => None,
            Some(settings) => match &tls_cache {
                Some((cached, config)) if *cached == settings => Some(config.clone()),
                _ => match crate::tls::client::client_config(&settings) {
                    Ok(config) => {
                        tls_cache = Some((settings, config.clone()));
                        Some(config)
                    }
                    Err(e) => {
                        warn!(pool = %pool_name, "cannot set up TLS for health checks: {e}");
                        None
                    }
                },
            },
        };
        let target = Target {
            socket,
            host: if sni.is_empty() { &addr } else { &sni },
            tls: tls.map(|c| (c, sni.clone())),
        };
        let result = probe(&target, &check).await;
        if let Err(ProbeError::Tls(why)) = &result {
            crate::tls::diag::probe_failed(&state, why);
        }
        let pass = result.is_ok();
        let reason = result.err().map(|e| e.to_string());
        match state.record_check(pass, reason.clone(), check.rise, check.fall, now_ms()) {
            Some(Transition::Up) => info!(pool = %pool_name, backend = %addr, "backend is healthy"),
            Some(Transition::Down) => warn!(
                pool = %pool_name,
                backend = %addr,
                reason = reason.as_deref().unwrap_or("?"),
                "backend is unhealthy"
            ),
            Some(Transition::EjectionLifted) => {
                info!(pool = %pool_name, backend = %addr, "passing checks ended the ejection")
            }
            None => {}
        }
        tokio::time::sleep_until(started + check.interval).await;
    }
}

/// What a probe connects to.
pub(crate) struct Target<'a> {
    /// Address.
    pub socket: SocketAddr,
    /// `Host` header.
    pub host: &'a str,
    /// TLS client config and server name, for TLS pools.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeError {
    /// The TLS handshake failed (kept apart for `/status`'s TLS reason).
    Tls(Reason),
    /// Anything else, in words.
    Other(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Tls(r) => write!(f, "TLS handshake failed: {r}"),
            ProbeError::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for ProbeError {
    fn from(s: String) -> ProbeError {
        ProbeError::Other(s)
    }
}

/// Probe one backend once: `Ok` on a pass, else the reason.
pub(crate) async fn probe(target: &Target<'_>, check: &HealthCheck) -> Result<(), ProbeError> {
    match tokio::time::timeout(check.timeout, probe_inner(target, &check.probe)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Other(format!(
            "timed out after {}",
            humantime::format_duration(check.timeout)
        ))),
    }
}

async fn probe_inner(target: &Target<'_>, probe: &Probe) -> Result<(), ProbeError> {
    let tcp = TcpStream::connect(target.socket)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let Some((config, sni)) = &target.tls else {
        return Ok(http_probe(tcp, target.host, probe).await?);
    };
    let name = rustls::pki_types::ServerName::try_from(sni.clone())
        .map_err(|e| format!("bad TLS server name {sni:?}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| ProbeError::Tls(Reason::from_io(&e)))?;
    Ok(http_probe(tls, target.host, probe).await?)
}

async fn http_probe<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    probe: &Probe,
) -> Result<(), String> {
    let Probe::Http { path, expect } = probe else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cutover-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = read_status(&mut stream).await?;
    if expect.passes(status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// Read just the status line of an HTTP/1 response.
async fn read_status<S: AsyncRead + Unpin>(stream: &mut S) -> Result<u16, String> {
    let mut buf = [0u8; 256];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".into());
        }
        len += n;
        if let Some(end) = buf[..len].iter().position(|b| *b == b'\n') {
            return parse_status_line(&buf[..end]);
        }
        if len == buf.len() {
            return Err("status line too long".into());
        }
    }
}

fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let text = std::str::from_utf8(line).map_err(|_| "status line is not text".to_string())?;
    let mut parts = text.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {:?}", text.trim()));
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| format!("bad status line: {:?}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc").is_err());
    }
}
