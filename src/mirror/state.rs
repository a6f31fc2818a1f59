//! A route's mirror figures and what it has learned, shared across
//! snapshots (kept over reloads while the route mirrors to the same pool):
//! counters, the gate's window of comparisons, the learned noise and the
//! last mismatches.

use super::compare::{Ignore, Mismatch};
use crate::shift::window::Window;
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// How many mismatches are kept for `GET /routes/{route}/mirror`.
pub const RECENT: usize = 50;

/// The longest request target kept with a mismatch.
const TARGET_CAP: usize = 512;

/// A route's mirror: figures and learned state.
#[derive(Default)]
pub struct MirrorState {
    /// Picks the requests copied (the route's `percent`).
    pub seq: AtomicU64,
    /// Round-robin over the backends copies go to.
    pub rr: AtomicU64,
    /// Copies sent to the mirror pool.
    pub mirrored: AtomicU64,
    /// Copies whose answer was compared with the primary's.
    pub compared: AtomicU64,
    /// Compared and the same.
    pub matched: AtomicU64,
    /// Mismatches on the status.
    pub status: AtomicU64,
    /// Mismatches on a header.
    pub header: AtomicU64,
    /// Mismatches on the body.
    pub body: AtomicU64,
    /// Copies dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Requests picked but not copied: the body was over `max_body` (or
    /// streamed through).
    pub too_large: AtomicU64,
    /// Copies the mirror pool did not answer (refused, reset, timed out,
    /// no backend available, unreadable answer).
    pub errors: AtomicU64,
    /// Requests also sent a second time to the primary, to learn noise.
    pub noise_samples: AtomicU64,
    /// Copies in a row the mirror pool refused (or never let connect).
    pub refused_in_a_row: AtomicU64,
    /// Until then (process clock, ms) the mirror pool is taken for down:
    /// requests are not copied (counted as `errors`), so a dead mirror
    /// costs no connection attempt per request.
    pub paused_until_ms: AtomicU64,
    /// Comparisons over time (a mismatch counts as an error): what the
    /// shift gate's `max_mirror_mismatch` judges.
    pub window: Window,
    learned: Mutex<Learned>,
}

#[derive(Default)]
struct Learned {
    noise: Ignore,
    recent: VecDeque<Diff>,
}

/// One mismatch, as shown to operators.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diff {
    /// When it was found (Unix seconds).
    pub at: f64,
    /// The request line's method and target.
    pub method: String,
    /// Path and query (cut at 512 bytes).
    pub target: String,
    /// `status`, `header` or `body`.
    pub kind: &'static str,
    /// The primary's status.
    pub primary_status: u16,
    /// The mirror's status.
    pub mirror_status: u16,
    /// The first differing header, for `header`.
    pub header: Option<String>,
    /// The first differing JSON path, for a JSON `body`.
    pub path: Option<String>,
    /// Body sizes.
    pub primary_bytes: usize,
    /// The mirror's body size.
    pub mirror_bytes: usize,
}

impl Diff {
    /// A mismatch found on a request.
    pub(crate) fn new(
        method: &str,
        target: &str,
        m: &Mismatch,
        primary: (u16, usize),
        mirror: (u16, usize),
    ) -> Diff {
        let mut cut = target.len().min(TARGET_CAP);
        while !target.is_char_boundary(cut) {
            cut -= 1;
        }
        let (header, path) = match m {
            Mismatch::Header { name } => (Some(name.clone()), None),
            Mismatch::Body { path, .. } => (None, path.clone()),
            Mismatch::Status { .. } => (None, None),
        };
        Diff {
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            method: method.to_string(),
            target: target[..cut].to_string(),
            kind: m.kind(),
            primary_status: primary.0,
            mirror_status: mirror.0,
            header,
            path,
            primary_bytes: primary.1,
            mirror_bytes: mirror.1,
        }
    }
}

/// A route's mirror figures, as `/status` shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Figures {
    /// Copies sent to the mirror pool.
    pub mirrored: u64,
    /// Copies compared.
    pub compared: u64,
    /// Compared and the same.
    pub matched: u64,
    /// Compared and different.
    pub mismatched: u64,
    /// Mismatches by kind.
    pub mismatched_by_kind: ByKind,
    /// Copies dropped (queue full).
    pub dropped: u64,
    /// Requests not copied: body over `max_body`.
    pub too_large: u64,
    /// Copies the mirror pool did not answer.
    pub errors: u64,
    /// Requests sent twice to the primary to learn noise.
    pub noise_samples: u64,
    /// Mismatched / compared since the process started (0 before any).
    pub mismatch_rate: f64,
    /// What was learned as noise.
    pub learned_noise: Noise,
}

/// Mismatches by kind.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ByKind {
    /// On the status.
    pub status: u64,
    /// On a header.
    pub header: u64,
    /// On the body.
    pub body: u64,
}

/// Learned noise.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Noise {
    /// Header names.
    pub headers: BTreeSet<String>,
    /// JSON paths.
    pub json: BTreeSet<String>,
}

impl MirrorState {
    /// The figures now.
    pub fn figures(&self) -> Figures {
        let by_kind = ByKind {
            status: self.status.load(Relaxed),
            header: self.header.load(Relaxed),
            body: self.body.load(Relaxed),
        };
        let mismatched = by_kind.status + by_kind.header + by_kind.body;
        let compared = self.compared.load(Relaxed);
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        Figures {
            mirrored: self.mirrored.load(Relaxed),
            compared,
            matched: self.matched.load(Relaxed),
            mismatched,
            mismatched_by_kind: by_kind,
            dropped: self.dropped.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            errors: self.errors.load(Relaxed),
            noise_samples: self.noise_samples.load(Relaxed),
            mismatch_rate: if compared == 0 {
                0.0
            } else {
                mismatched as f64 / compared as f64
            },
            learned_noise: Noise {
                headers: learned.noise.headers.clone(),
                json: learned.noise.json.clone(),
            },
        }
    }

    /// The last mismatches, newest first.
    pub fn recent(&self) -> Vec<Diff> {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        learned.recent.iter().rev().cloned().collect()
    }

    /// Learn noise from two primary answers; whether anything was new.
    pub(crate) fn learn(
        &self,
        a: &super::compare::Answer<'_>,
        b: &super::compare::Answer<'_>,
    ) -> bool {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        learned.noise.learn(a, b)
    }

    /// The configured ignores plus the learned noise.
    pub(crate) fn ignore(&self, configured: &Ignore) -> Ignore {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = configured.clone();
        all.headers.extend(learned.noise.headers.iter().cloned());
        all.json.extend(learned.noise.json.iter().cloned());
        all
    }

    /// Count a comparison at `now_ms`: a match, or `diff`.
    pub(crate) fn count(&self, now_ms: u64, diff: Option<Diff>) {
        self.compared.fetch_add(1, Relaxed);
        self.window
            .record(now_ms, diff.is_some(), std::time::Duration::ZERO);
        let Some(diff) = diff else {
            self.matched.fetch_add(1, Relaxed);
            return;
        };
        match diff.kind {
            "status" => &self.status,
            "header" => &self.header,
            _ => &self.body,
        }
        .fetch_add(1, Relaxed);
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if learned.recent.len() >= RECENT {
            learned.recent.pop_front();
        }
        learned.recent.push_back(diff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::compare::Answer;

    #[test]
    fn counts_kinds_and_keeps_the_last_mismatches() {
        let s = MirrorState::default();
        s.count(1, None);
        for i in 0..(RECENT + 5) {
            let m = Mismatch::Header {
                name: format!("x-{i}"),
            };
            s.count(2, Some(Diff::new("GET", "/a", &m, (200, 1), (200, 1))));
        }
        let f = s.figures();
        assert_eq!((f.compared, f.matched, f.mismatched), (56, 1, 55));
        assert_eq!(f.mismatched_by_kind.header, 55);
        let recent = s.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].header.as_deref(), Some("x-54"), "newest first");
        let w = s.window.figures(3, std::time::Duration::from_secs(60), 0);
        assert_eq!((w.requests, w.errors), (56, 55));
    }

    #[test]
    fn learned_noise_joins_the_configured_ignores() {
        let s = MirrorState::default();
        let json = vec![("content-type".to_string(), "application/json".to_string())];
        let a = Answer {
            status: 200,
            headers: &json,
            body: br#"{"t":1,"v":2}"#,
        };
        let b = Answer {
            body: br#"{"t":2,"v":2}"#,
            ..a
        };
        assert!(s.learn(&a, &b));
        let mut configured = Ignore::default();
        configured.headers.insert("server".into());
        let all = s.ignore(&configured);
        assert!(all.json.contains("$.t") && all.headers.contains("server"));
        assert!(s.figures().learned_noise.json.contains("$.t"));
    }

    #[test]
    fn long_targets_are_cut_on_a_character_boundary() {
        let target = format!("/{}", "é".repeat(400));
        let d = Diff::new(
            "GET",
            &target,
            &Mismatch::Status {
                primary: 200,
                mirror: 500,
            },
            (200, 0),
            (500, 0),
        );
        assert!(d.target.len() <= TARGET_CAP);
    }
}
