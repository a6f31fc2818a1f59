//! Shared test helpers: backends, the proxy process, a client.
#![allow(dead_code, unused_imports, unreachable_pub, clippy::unwrap_used)]

pub mod backend;
pub mod client;
pub mod corpus;
pub mod etcd;
pub mod h2raw;
pub mod load;
pub mod proxy;
pub mod raw;
pub mod tls;

pub use backend::Backend;
pub use client::{client, get, h2c, send, HttpClient, Reply};
pub use proxy::ProxyProc;

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll `check` until it holds or `timeout` passes; whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A config's `backends = [...]` list for these addresses.
pub fn addrs(backends: &[&Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The standard test `[proxy]` and `[admin]` sections (port 0 everywhere),
/// with the request path this run tests (see [`fast_path_line`]).
pub fn base_config() -> String {
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\nthreads = 1\nconnect_timeout = \"500ms\"\nread_timeout = \"3s\"\n{}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n",
        fast_path_line()
    )
}

/// [`base_config`] with one pool `app` of `backends` (a TOML list's items)
/// and one route `api` taking every request to it.
pub fn one_route(backends: &str) -> String {
    format!(
        "{}[pools.app]\nbackends = [{backends}]\n[[routes]]\nname = \"api\"\nsplit = {{ app = 1 }}\n",
        base_config()
    )
}

/// `fast_path = false` when the suite runs with `CUTOVER_TEST_FAST_PATH=false`
/// (scripts/test.sh runs the behaviour suites once on each request path),
/// else nothing (the default, cutover's own path where it applies).
pub fn fast_path_line() -> &'static str {
    match std::env::var("CUTOVER_TEST_FAST_PATH") {
        Ok(v) if v == "false" => "fast_path = false\n",
        _ => "",
    }
}

/// The timestamp of a log line (tracing's RFC 3339 prefix).
pub fn log_time(line: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(line.split_whitespace().next()?).ok()
}

/// Await all of `futures` concurrently (on this task); their outputs in order.
pub async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut slots: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(slots.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().flatten().collect()
}

/// `promtool check metrics` must accept `text`.
pub fn promtool_check(text: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
