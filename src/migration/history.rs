//! The shift's history: per route, one [`Point`] per 10 s (the new pool's
//! share, the shift's state and step, the gate's last verdict, and each
//! pool's answers over those 10 s), kept for 24 h in a bounded ring and
//! written next to the state file (`STATE.history.json`) so it survives a
//! restart.

use super::StepSummary;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Time between samples.
pub const SAMPLE: std::time::Duration = std::time::Duration::from_secs(10);
/// Samples kept per route: 24 h.
pub const KEEP: usize = 24 * 3600 / 10;

/// One sample of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Unix seconds.
    pub t: u64,
    /// The new pool's effective share, percent (routes with a shift).
    pub share: Option<f64>,
    /// The shift's state.
    pub state: Option<String>,
    /// The shift's step (1-based; 0 before it starts).
    pub step: Option<usize>,
    /// The gate's last verdict.
    pub verdict: Option<String>,
    /// Each pool's answers over the sample.
    pub pools: Vec<PoolPoint>,
}

/// A pool's answers over one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolPoint {
    /// The pool.
    pub pool: String,
    /// Attempts.
    pub requests: u64,
    /// Failed attempts and 5xx.
    pub errors: u64,
    /// p99, ms.
    pub p99_ms: Option<f64>,
}

/// Every route's ring, behind a lock taken by the sampler and the admin
/// endpoint only (never on the request path).
#[derive(Debug, Default)]
pub struct History {
    routes: Mutex<BTreeMap<String, VecDeque<Point>>>,
}

/// The file the history is kept in, next to the state file.
pub fn file_for(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".history.json");
    state.with_file_name(name)
}

impl History {
    /// Add a sample for `route`, dropping the oldest past [`KEEP`].
    pub fn push(&self, route: &str, p: Point) {
        if let Ok(mut routes) = self.routes.lock() {
            let ring = routes.entry(route.to_string()).or_default();
            if ring.len() >= KEEP {
                ring.pop_front();
            }
            ring.push_back(p);
        }
    }

    /// `route`'s samples, oldest first.
    pub fn of(&self, route: &str) -> Vec<Point> {
        self.routes
            .lock()
            .map(|r| {
                r.get(route)
                    .map(|v| v.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Keep only the routes in `names` (after a reload removed some).
    pub fn retain(&self, names: &[&str]) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.retain(|k, _| names.contains(&k.as_str()));
        }
    }

    /// Read a saved history; a missing or unreadable file is an empty one
    /// (the history is a record, not state the proxy needs).
    pub fn load(path: &Path) -> History {
        let h = History::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return h;
        };
        match serde_json::from_str::<BTreeMap<String, Vec<Point>>>(&text) {
            Ok(saved) => {
                if let Ok(mut routes) = h.routes.lock() {
                    for (k, mut v) in saved {
                        if v.len() > KEEP {
                            v.drain(..v.len() - KEEP);
                        }
                        routes.insert(k, v.into());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable report history: {e}")
            }
        }
        h
    }

    /// Write the history atomically (a temp file renamed over it).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = {
            let routes = self
                .routes
                .lock()
                .map_err(|_| std::io::Error::other("history lock poisoned"))?;
            serde_json::to_vec(&*routes).map_err(std::io::Error::other)?
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

/// A step's summary before any figures are added.
fn fresh(step: usize, share: f64, t: u64) -> StepSummary {
    StepSummary {
        step,
        share,
        from: t,
        to: t,
        rps: 0.0,
        p99_ms: None,
        failure_rate: 0.0,
        verdict: None,
        rolled_back: false,
    }
}

/// Each step of a shift, from `points` (for the new pool `new`).
pub fn steps(points: &[Point], new: &str) -> Vec<StepSummary> {
    let mut out: Vec<StepSummary> = Vec::new();
    let mut acc = (0u64, 0u64, 0u64); // requests, errors, samples
    for p in points {
        let (Some(step), Some(state)) = (p.step, p.state.as_deref()) else {
            continue;
        };
        let rollback = state == "rolled_back";
        if rollback {
            // The rollback ends the step it happened on; the sample that
            // sees it holds the step's last seconds (the breach) and the
            // gate's verdict on them. A step rolled back before any sample
            // saw it running gets a summary of its own.
            match out.last() {
                Some(last) if last.rolled_back && last.step == step => continue,
                Some(last) if !last.rolled_back && last.step == step => {}
                _ if step == 0 => continue,
                _ => {
                    acc = (0, 0, 0);
                    out.push(fresh(step, 0.0, p.t));
                }
            }
        } else if step == 0 || state == "idle" {
            continue;
        } else if out.last().is_none_or(|s| s.step != step || s.rolled_back) {
            acc = (0, 0, 0);
            out.push(fresh(step, p.share.unwrap_or(0.0), p.t));
        }
        let np = p.pools.iter().find(|x| x.pool == new);
        let Some(s) = out.last_mut() else { continue };
        s.to = p.t;
        s.rolled_back = rollback;
        if p.verdict.is_some() {
            s.verdict = p.verdict.clone();
        }
        if let Some(np) = np {
            acc.0 += np.requests;
            acc.1 += np.errors;
            s.p99_ms = match (s.p99_ms, np.p99_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        acc.2 += 1;
        s.rps = acc.0 as f64 / (acc.2 as f64 * SAMPLE.as_secs_f64());
        s.failure_rate = if acc.0 == 0 {
            0.0
        } else {
            acc.1 as f64 / acc.0 as f64
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, step: usize, state: &str, req: u64, err: u64) -> Point {
        Point {
            t,
            share: Some([0.0, 1.0, 5.0, 25.0][step.min(3)]),
            state: Some(state.into()),
            step: Some(step),
            verdict: Some("pass".into()),
            pools: vec![PoolPoint {
                pool: "cloud".into(),
                requests: req,
                errors: err,
                p99_ms: Some(20.0),
            }],
        }
    }

    #[test]
    fn steps_are_summed_and_a_rollback_ends_one() {
        let pts = vec![
            point(0, 0, "idle", 0, 0),
            point(10, 1, "running", 100, 0),
            point(20, 1, "running", 100, 2),
            point(30, 2, "running", 400, 40),
            // A rollback keeps the step it happened on.
            point(40, 2, "rolled_back", 100, 10),
            point(50, 2, "rolled_back", 0, 0),
            point(60, 1, "running", 10, 0),
            // Step 2 again, rolled back before a sample saw it running.
            point(70, 2, "rolled_back", 30, 30),
        ];
        let s = steps(&pts, "cloud");
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!((s[0].step, s[0].from, s[0].to), (1, 10, 20));
        assert!((s[0].rps - 10.0).abs() < 1e-9);
        assert!((s[0].failure_rate - 0.01).abs() < 1e-9);
        assert!(s[1].rolled_back && !s[0].rolled_back);
        assert_eq!(s[1].to, 40);
        assert!((s[1].failure_rate - 0.1).abs() < 1e-9);
        assert!((s[1].rps - 25.0).abs() < 1e-9);
        assert!(!s[2].rolled_back && s[2].step == 1);
        assert!(s[3].rolled_back && s[3].step == 2 && (s[3].failure_rate - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_ring_is_bounded_and_survives_a_restart() {
        let h = History::default();
        for t in 0..(KEEP as u64 + 5) {
            h.push("r", point(t, 1, "running", 1, 0));
        }
        assert_eq!(h.of("r").len(), KEEP);
        assert_eq!(h.of("r")[0].t, 5);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_for(&dir.path().join("state.json"));
        h.save(&path).expect("save");
        assert_eq!(History::load(&path).of("r"), h.of("r"));
        std::fs::write(&path, "{ not json").expect("write");
        assert!(History::load(&path).of("r").is_empty());
    }
}
