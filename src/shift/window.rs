//! Sliding-window statistics of one pool of one route, for the gate.
//!
//! A ring of half-second slots, each with a request count, an error count and
//! a small latency histogram, all atomics: recording is a handful of relaxed
//! atomic adds and never blocks. A slot is reset by the first recorder that
//! finds it holding an older half-second. Reading sums the slots of the last
//! `window` and estimates p99 from the merged histogram (as the upper bound
//! of the bucket holding the 99th percentile, so it never under-reports).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Slot length.
pub(crate) const SLOT_MS: u64 = 500;
/// Slots kept: one minute.
pub(crate) const SLOTS: usize = 120;
/// Latency bucket upper bounds in milliseconds (the last is open-ended).
pub(crate) const BOUNDS_MS: [f64; 24] = [
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    50.0,
    75.0,
    100.0,
    150.0,
    200.0,
    300.0,
    500.0,
    750.0,
    1000.0,
    1500.0,
    2000.0,
    3000.0,
    5000.0,
    10000.0,
    f64::INFINITY,
];

#[derive(Debug, Default)]
struct Slot {
    /// Which half-second this slot holds (`now_ms / SLOT_MS`).
    epoch: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU32; BOUNDS_MS.len()],
}

/// Figures over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Attempts.
    pub requests: u64,
    /// 5xx answers and transport failures.
    pub errors: u64,
    /// Estimated p99 latency (upper bound of its bucket), if any latency was seen.
    pub p99: Option<Duration>,
}

impl Figures {
    /// errors / requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The ring of slots.
#[derive(Debug)]
pub struct Window {
    slots: Box<[Slot]>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl Window {
    fn slot(&self, now_ms: u64) -> &Slot {
        let epoch = now_ms / SLOT_MS;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let seen = slot.epoch.load(Relaxed);
        if seen != epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            slot.requests.store(0, Relaxed);
            slot.errors.store(0, Relaxed);
            for b in &slot.latency {
                b.store(0, Relaxed);
            }
        }
        slot
    }

    /// Record an attempt that got a response after `latency`.
    pub fn record(&self, now_ms: u64, error: bool, latency: Duration) {
        let slot = self.slot(now_ms);
        slot.requests.fetch_add(1, Relaxed);
        if error {
            slot.errors.fetch_add(1, Relaxed);
        }
        let ms = latency.as_secs_f64() * 1000.0;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len() - 1);
        slot.latency[i].fetch_add(1, Relaxed);
    }

    /// Record an attempt that failed without a response.
    pub fn record_failure(&self, now_ms: u64) {
        let slot = self.slot(now_ms);
        slot.requests.fetch_add(1, Relaxed);
        slot.errors.fetch_add(1, Relaxed);
    }

    /// Figures over the last `window` (at most a minute) before `now_ms`,
    /// counting nothing older than `since_ms` (from the first whole slot
    /// after it, so nothing recorded before it is counted).
    pub fn figures(&self, now_ms: u64, window: Duration, since_ms: u64) -> Figures {
        self.sums(now_ms, window, since_ms).figures()
    }

    /// The raw counts behind [`Window::figures`]: what a replica publishes
    /// to its fleet, which adds them up before judging.
    pub fn sums(&self, now_ms: u64, window: Duration, since_ms: u64) -> Sums {
        let now_epoch = now_ms / SLOT_MS;
        let span = (window.as_millis() as u64)
            .div_ceil(SLOT_MS)
            .clamp(1, SLOTS as u64);
        let first_after = if since_ms == 0 {
            0
        } else {
            since_ms / SLOT_MS + 1
        };
        let oldest = now_epoch.saturating_sub(span - 1).max(first_after);
        let mut out = Sums::default();
        for slot in self.slots.iter() {
            let e = slot.epoch.load(Relaxed);
            if e < oldest || e > now_epoch {
                continue;
            }
            out.requests += slot.requests.load(Relaxed);
            out.errors += slot.errors.load(Relaxed);
            for (h, b) in out.latency.iter_mut().zip(&slot.latency) {
                *h += u64::from(b.load(Relaxed));
            }
        }
        out
    }
}

/// Counts over a window: attempts, failures and the latency histogram
/// (bucket bounds [`BOUNDS_MS`]). They add up across replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sums {
    /// Attempts.
    pub requests: u64,
    /// 5xx answers and transport failures.
    pub errors: u64,
    /// Answers per latency bucket.
    pub latency: [u64; BOUNDS_MS.len()],
}

impl Sums {
    /// Add `other` in.
    pub fn add(&mut self, other: &Sums) {
        // Saturating: a peer's figures come from outside this process.
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a = a.saturating_add(*b);
        }
    }

    /// The figures the gate judges: p99 as the upper bound of its bucket.
    pub fn figures(&self) -> Figures {
        Figures {
            requests: self.requests,
            errors: self.errors,
            p99: self.quantile(0.99),
        }
    }

    /// The `q` quantile of the latencies (0 < q ≤ 1), as the upper bound of
    /// the bucket holding it (so it never under-reports); `None` without
    /// answers.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let seen: u64 = self.latency.iter().fold(0u64, |a, b| a.saturating_add(*b));
        if seen == 0 {
            return None;
        }
        // In ten-thousandths, so 0.99 ranks exactly as `seen * 99 / 100`.
        let per_10k = (q * 10_000.0).round().clamp(1.0, 10_000.0) as u64;
        let rank = seen.saturating_mul(per_10k).div_ceil(10_000).clamp(1, seen);
        let mut acc: u64 = 0;
        for (i, h) in self.latency.iter().enumerate() {
            acc = acc.saturating_add(*h);
            if acc >= rank {
                let bound = if BOUNDS_MS[i].is_finite() {
                    BOUNDS_MS[i]
                } else {
                    30_000.0
                };
                return Some(Duration::from_secs_f64(bound / 1000.0));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_only() {
        let w = Window::default();
        let ms = Duration::from_millis;
        for i in 0..100 {
            w.record(1_000 + i, i % 10 == 0, ms(4));
        }
        w.record_failure(1_200);
        let f = w.figures(1_400, Duration::from_secs(10), 0);
        assert_eq!((f.requests, f.errors), (101, 11));
        assert_eq!(f.p99, Some(ms(5)));
        // Ten seconds later they have left a 5-second window.
        assert_eq!(w.figures(11_400, Duration::from_secs(5), 0).requests, 0);
        // A slot is reused after a minute without mixing old counts in.
        w.record(61_000, false, ms(40));
        let f = w.figures(61_000, Duration::from_secs(60), 0);
        assert_eq!(
            w.figures(61_000, Duration::from_secs(60), 61_500).requests,
            0
        );
        assert_eq!(f.requests, 1);
        assert_eq!(f.p99, Some(ms(50)));
    }

    #[test]
    fn sums_of_replicas_add_up_to_one_window() {
        let (a, b, both) = (Window::default(), Window::default(), Window::default());
        let ms = Duration::from_millis;
        for i in 0..200u64 {
            let (w, lat) = if i % 3 == 0 { (&a, 3) } else { (&b, 80) };
            w.record(1_000 + i, i % 7 == 0, ms(lat));
            both.record(1_000 + i, i % 7 == 0, ms(lat));
        }
        let mut sum = a.sums(1_400, Duration::from_secs(10), 0);
        sum.add(&b.sums(1_400, Duration::from_secs(10), 0));
        assert_eq!(sum, both.sums(1_400, Duration::from_secs(10), 0));
        assert_eq!(
            sum.figures(),
            both.figures(1_400, Duration::from_secs(10), 0)
        );
        let json = serde_json::to_string(&sum).unwrap();
        assert_eq!(serde_json::from_str::<Sums>(&json).unwrap(), sum);
    }

    #[test]
    fn p99_is_the_upper_bound_of_its_bucket() {
        let w = Window::default();
        for _ in 0..980 {
            w.record(10, false, Duration::from_millis(2));
        }
        for _ in 0..20 {
            w.record(10, false, Duration::from_millis(400));
        }
        assert_eq!(
            w.figures(10, Duration::from_secs(1), 0).p99,
            Some(Duration::from_millis(500))
        );
    }
}
