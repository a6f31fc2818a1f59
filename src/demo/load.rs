//! The demo's load generator: a few keep-alive clients sending requests as
//! different users, tallying which pool answered, errors and latency.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tallies for one pool (or for the proxy's own answers).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Responses.
    pub requests: AtomicU64,
    /// 5xx responses and failed requests.
    pub errors: AtomicU64,
    /// Latencies (µs) since the last [`Tally::take_window`].
    window: Mutex<Vec<u32>>,
}

/// Figures for one display interval.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    /// p99 latency in the interval.
    pub p99: Duration,
}

impl Tally {
    fn record(&self, latency: Duration, error: bool) {
        self.requests.fetch_add(1, Relaxed);
        if error {
            self.errors.fetch_add(1, Relaxed);
        }
        if let Ok(mut w) = self.window.lock() {
            w.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }

    /// Latency figures since the last call, resetting them.
    pub(crate) fn take_window(&self) -> Window {
        let mut samples = self
            .window
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        samples.sort_unstable();
        let p99 = samples
            .get((samples.len() * 99 / 100).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        Window {
            p99: Duration::from_micros(u64::from(p99)),
        }
    }
}

/// Demo users.
pub(crate) const USERS: usize = 600;

/// What the load generator saw.
#[derive(Debug)]
pub(crate) struct LoadStats {
    /// Answered by the on-prem pool.
    pub onprem: Tally,
    /// Answered by the cloud pool.
    pub cloud: Tally,
    /// Answered by the proxy itself (no backend) or failed outright.
    pub proxy: Tally,
    /// Each user's last pool: 0 none yet, 1 on-prem, 2 cloud.
    last_pool: Vec<std::sync::atomic::AtomicU8>,
    /// Times a user on cloud was next served by on-prem.
    pub moved_back: AtomicU64,
}

impl Default for LoadStats {
    fn default() -> Self {
        LoadStats {
            onprem: Tally::default(),
            cloud: Tally::default(),
            proxy: Tally::default(),
            last_pool: (0..USERS).map(|_| Default::default()).collect(),
            moved_back: AtomicU64::new(0),
        }
    }
}

impl LoadStats {
    fn saw(&self, user: usize, pool: u8) {
        let prev = self.last_pool[user].swap(pool, Relaxed);
        if prev == 2 && pool == 1 {
            self.moved_back.fetch_add(1, Relaxed);
        }
    }
}

/// Send requests to `proxy` from `workers` clients at about `rate` requests
/// per second in all, until `stop` is set.
pub(crate) async fn run(
    proxy: SocketAddr,
    workers: usize,
    rate: u32,
    stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let per_worker = Duration::from_secs_f64(workers as f64 / f64::from(rate.max(1)));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut user: u64 = 0x9e37_79b9 ^ (w as u64 * 0x85eb_ca6b);
            let mut next = tokio::time::Instant::now();
            while !stop.load(Relaxed) {
                user ^= user << 13;
                user ^= user >> 7;
                user ^= user << 17;
                let id = (user % USERS as u64) as usize;
                let req = http::Request::get(format!("http://{proxy}/"))
                    .header("host", "demo.local")
                    .header("x-user-id", format!("user-{id}"))
                    .body(Empty::<Bytes>::new());
                let Ok(req) = req else { continue };
                let started = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let error = resp.status().is_server_error();
                        let pool = resp
                            .headers()
                            .get("x-served-by")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let _ = resp.into_body().collect().await;
                        let tally = match pool.as_str() {
                            "onprem" => {
                                stats.saw(id, 1);
                                &stats.onprem
                            }
                            "cloud" => {
                                stats.saw(id, 2);
                                &stats.cloud
                            }
                            _ => &stats.proxy,
                        };
                        tally.record(started.elapsed(), error);
                    }
                    Err(_) => stats.proxy.record(started.elapsed(), true),
                }
                next += per_worker;
                tokio::time::sleep_until(next).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
