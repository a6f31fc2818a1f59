//! Continuous load for fault tests: a few clients sending GETs in a loop
//! until stopped, tallying what came back.

use super::client::{client, get};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What the load saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// 2xx responses.
    pub ok: usize,
    /// Everything else, described.
    pub failed: Vec<String>,
    /// 2xx responses by `x-backend`.
    pub by_backend: HashMap<String, usize>,
}

impl LoadResult {
    /// Requests sent.
    pub fn total(&self) -> usize {
        self.ok + self.failed.len()
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.failed.extend(other.failed);
        for (k, v) in other.by_backend {
            *self.by_backend.entry(k).or_default() += v;
        }
    }
}

/// An HTTP/2 client's error for a stream the server's GOAWAY (NO_ERROR)
/// left unprocessed.
fn refused_by_goaway(error: &str) -> bool {
    error.contains("GoAway") && error.contains("NO_ERROR")
}

/// Load in progress.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Answers (of any kind) received so far.
    answered: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<LoadResult>>,
}

impl Load {
    /// Start `workers` clients sending GETs to `url` with `headers`.
    pub fn start(url: &str, workers: usize, headers: &[(&str, &str)]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let tasks = (0..workers)
            .map(|_| {
                let (stop, url, headers) = (stop.clone(), url.to_string(), headers.clone());
                let answered = answered.clone();
                tokio::spawn(async move {
                    let cl = client();
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let mut r = LoadResult::default();
                    while !stop.load(Ordering::Relaxed) {
                        let mut reply = get(&cl, &url, &h).await;
                        if reply.as_ref().is_err_and(|e| refused_by_goaway(e)) {
                            // A stream the server refused by GOAWAY was not
                            // processed (RFC 9113 §6.8): a browser sends it
                            // again on a new connection, and so does this.
                            reply = get(&cl, &url, &h).await;
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                        match reply {
                            Ok(reply) if (200..300).contains(&reply.status) => {
                                r.ok += 1;
                                let b = reply.header("x-backend").unwrap_or("-").to_string();
                                *r.by_backend.entry(b).or_default() += 1;
                            }
                            Ok(reply) => r.failed.push(format!(
                                "status {} {}",
                                reply.status,
                                reply.body.trim()
                            )),
                            Err(e) => r.failed.push(format!("error {e}")),
                        }
                    }
                    r
                })
            })
            .collect();
        Load {
            stop,
            answered,
            tasks,
        }
    }

    /// Wait (bounded, 15 s) until `n` more requests were answered than now:
    /// the load is flowing, through whatever happened before the call.
    pub async fn wait_answered(&self, n: usize) {
        let target = self.answered.load(Ordering::Relaxed) + n;
        let ok = super::eventually(std::time::Duration::from_secs(15), || async {
            self.answered.load(Ordering::Relaxed) >= target
        })
        .await;
        assert!(ok, "the load stalled before {n} more answers");
    }

    /// Stop and collect.
    pub async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadResult::default();
        for t in self.tasks {
            if let Ok(r) = t.await {
                all.merge(r);
            }
        }
        all
    }
}
