//! The access log: one JSON line per request, to stdout or a file.
//!
//! The request path formats its line and hands it to a bounded channel;
//! a writer thread buffers and writes. If the writer falls behind, lines are
//! dropped and counted rather than slowing requests down.

use crate::config::AccessLogTarget;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE: usize = 16_384;

enum Message {
    Line(String),
    Flush(std::sync::mpsc::Sender<()>),
}

/// A running access log.
pub struct AccessLog {
    /// Where it writes.
    pub target: AccessLogTarget,
    tx: SyncSender<Message>,
    dropped: prometheus::IntCounter,
}

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open access log {path}: {source}")]
pub struct OpenError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl AccessLog {
    /// Start writing to `target` (`None` for `off`).
    pub fn open(
        target: &AccessLogTarget,
        dropped: prometheus::IntCounter,
    ) -> Result<Option<Arc<AccessLog>>, OpenError> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(None),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| OpenError {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("cutover-access-log".into())
            .spawn(move || writer(rx, out))
            .map_err(|source| OpenError {
                path: "(writer thread)".into(),
                source,
            })?;
        Ok(Some(Arc::new(AccessLog {
            target: target.clone(),
            tx,
            dropped,
        })))
    }

    /// Queue a line (without its newline). Never blocks.
    pub fn log(&self, line: String) {
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Write out everything queued so far (bounded wait).
    pub fn flush(&self) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(2));
        }
    }
}

fn writer(rx: Receiver<Message>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Message::Line(line)) => {
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
            }
            Ok(Message::Flush(done)) => {
                let _ = out.flush();
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

/// The fields of one access log line.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    /// Client address.
    pub client: Option<std::net::SocketAddr>,
    /// Method.
    pub method: &'a str,
    /// Host header.
    pub host: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Status sent (0: none).
    pub status: u16,
    /// Matched route.
    pub route: &'a str,
    /// Pool that served.
    pub pool: &'a str,
    /// Backend that served.
    pub backend: &'a str,
    /// Attempts made.
    pub attempts: usize,
    /// Time to the backend's response header.
    pub upstream_ms: Option<u64>,
    /// Time from request head to the end.
    pub total_ms: f64,
    /// Response body bytes sent.
    pub bytes: usize,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Format `e` as one JSON object.
pub fn format(e: &Entry<'_>, now: std::time::SystemTime) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"ts\":\"");
    let _ = write!(s, "{}", humantime::format_rfc3339_millis(now));
    s.push_str("\",\"client\":");
    match e.client {
        Some(c) => json_str(&mut s, &c.to_string()),
        None => s.push_str("null"),
    }
    s.push_str(",\"method\":");
    json_str(&mut s, e.method);
    s.push_str(",\"host\":");
    json_str(&mut s, e.host);
    s.push_str(",\"path\":");
    json_str(&mut s, e.path);
    let _ = write!(s, ",\"status\":{},\"route\":", e.status);
    json_str(&mut s, e.route);
    s.push_str(",\"pool\":");
    json_str(&mut s, e.pool);
    s.push_str(",\"backend\":");
    json_str(&mut s, e.backend);
    let _ = write!(s, ",\"attempts\":{},\"upstream_ms\":", e.attempts);
    match e.upstream_ms {
        Some(ms) => {
            let _ = write!(s, "{ms}");
        }
        None => s.push_str("null"),
    }
    let _ = write!(s, ",\"total_ms\":{:.3},\"bytes\":{}}}", e.total_ms, e.bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_every_field() {
        let e = Entry {
            client: Some("127.0.0.1:5000".parse().unwrap()),
            method: "GET",
            host: "api.example.com",
            path: "/a\"b\\c\u{1}",
            status: 200,
            route: "api",
            pool: "cloud",
            backend: "10.0.0.1:80",
            attempts: 2,
            upstream_ms: Some(3),
            total_ms: 4.25,
            bytes: 12,
        };
        let line = format(&e, std::time::UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\u{1}");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["attempts"], 2);
        assert_eq!(v["upstream_ms"], 3);
        assert_eq!(v["total_ms"], 4.25);
        for k in [
            "client", "method", "host", "status", "route", "pool", "backend", "bytes",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
