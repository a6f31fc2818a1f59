//! Per-backend health state: active check verdicts (rise/fall), passive
//! outlier ejection, drains, and counters.
//!
//! A [`BackendState`] is keyed by pool and address and outlives config
//! reloads: a weight change or an unrelated edit does not reset it (Pingora's
//! own backend identity includes the weight; we do not inherit that). The
//! request path reads it with a few relaxed atomic loads
//! ([`BackendState::available`]); the rarer writers (the checker, failures)
//! use atomics too, and only the checker's streak counters sit behind a mutex
//! no request ever takes. Time is passed in as milliseconds from
//! [`crate::clock::now_ms`], so the logic is tested without clocks.

pub(crate) mod checker;

use crate::config::{Outlier, MAX_EJECTION};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an attempt on a backend failed, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection was refused.
    ConnectRefused,
    /// The connection did not open within `connect_timeout`.
    ConnectTimeout,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No data from the backend within `read_timeout`.
    ReadTimeout,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The backend answered 502, 503 or 504.
    Status5xx,
    /// Anything else (bad response framing, …).
    Other,
}

impl FailureKind {
    /// Every kind, in metric order.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::ConnectRefused,
        FailureKind::ConnectTimeout,
        FailureKind::Reset,
        FailureKind::ReadTimeout,
        FailureKind::Tls,
        FailureKind::Status5xx,
        FailureKind::Other,
    ];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Reset => "reset",
            FailureKind::ReadTimeout => "timeout",
            FailureKind::Tls => "tls",
            FailureKind::Status5xx => "http_5xx",
            FailureKind::Other => "other",
        }
    }
}

/// What an operator sees for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In rotation.
    Healthy,
    /// Failing active checks (or not yet checked).
    Unhealthy,
    /// Taken out by passive checks for a while.
    Ejected,
    /// Taken out by an operator.
    Draining,
}

impl Status {
    /// Lowercase name, as in `/services`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
            Status::Ejected => "ejected",
            Status::Draining => "draining",
        }
    }
}

/// A change of a backend's active-check verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It turned healthy.
    Up,
    /// It turned unhealthy.
    Down,
    /// A run of passes ended its outlier ejection early.
    EjectionLifted,
}

/// The active checker's streaks. Only the checker task locks this.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Whether any check has completed.
    pub checked: bool,
    /// Whether a check ever passed (until then one pass is enough).
    pub ever_passed: bool,
    /// Passes in a row.
    pub passes: u32,
    /// Failures in a row.
    pub fails: u32,
    /// Passes in a row since the last ejection began.
    pub passes_since_ejection: u32,
    /// The last failure's reason, for `/status`.
    pub last_error: Option<String>,
    /// When the last check finished.
    pub last_check_ms: u64,
}

/// The last failed TLS handshake with a backend, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// When it happened.
    pub at: std::time::SystemTime,
    /// Why, in plain words ([`crate::tls::reason::Reason`]).
    pub reason: String,
    /// Which connection saw it: `"request"` or `"health_check"`.
    pub via: &'static str,
}

/// Counters kept per backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Attempts sent to it.
    pub attempts: AtomicU64,
    /// Attempts in progress.
    pub in_flight: AtomicI64,
    /// Failures by [`FailureKind`] (indexed as [`FailureKind::ALL`]).
    pub failures: [AtomicU64; 7],
    /// Times it was ejected.
    pub ejections_total: AtomicU64,
}

/// The live state of one backend of one pool.
#[derive(Debug)]
pub struct BackendState {
    /// Pool name.
    pub pool: Arc<str>,
    /// `host:port` as configured.
    pub addr: Arc<str>,
    healthy: AtomicBool,
    draining: AtomicBool,
    /// Ejected until this `now_ms` (0: not ejected).
    ejected_until: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Ejections since the backend last behaved for a while; sets the doubling.
    ejections: AtomicU32,
    last_ejection_ms: AtomicU64,
    tally: Mutex<Tally>,
    /// Kept after a later success, so an operator still sees why it failed.
    last_tls_failure: Mutex<Option<TlsFailure>>,
    /// Counters for metrics and `/status`.
    pub stats: BackendStats,
}

impl BackendState {
    /// A new backend. With active checks it starts unhealthy and gets traffic
    /// after its first passing check; without, it is assumed healthy.
    pub fn new(pool: &str, addr: &str, has_checks: bool) -> BackendState {
        BackendState {
            pool: pool.into(),
            addr: addr.into(),
            healthy: AtomicBool::new(!has_checks),
            draining: AtomicBool::new(false),
            ejected_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            last_ejection_ms: AtomicU64::new(0),
            tally: Mutex::new(Tally::default()),
            last_tls_failure: Mutex::new(None),
            stats: BackendStats::default(),
        }
    }

    /// Whether new requests may go here.
    #[inline]
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy.load(Relaxed)
            && !self.draining.load(Relaxed)
            && self.ejected_until.load(Relaxed) <= now_ms
    }

    /// The active-check verdict alone.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Whether an ejection is in force at `now_ms`.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until.load(Relaxed) > now_ms
    }

    /// Whether an operator drained it.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Drain (stop new requests) or undrain.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Relaxed);
    }

    /// What an operator sees.
    pub fn status(&self, now_ms: u64) -> Status {
        if self.is_draining() {
            Status::Draining
        } else if !self.is_healthy() {
            Status::Unhealthy
        } else if self.is_ejected(now_ms) {
            Status::Ejected
        } else {
            Status::Healthy
        }
    }

    /// A copy of the checker's streaks.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Record a failed TLS handshake. Returns whether the reason differs
    /// from the last one seen (callers log only news, not every probe).
    pub fn note_tls_failure(&self, reason: String, via: &'static str) -> bool {
        let Ok(mut last) = self.last_tls_failure.lock() else {
            return false;
        };
        let new = last.as_ref().is_none_or(|f| f.reason != reason);
        *last = Some(TlsFailure {
            at: std::time::SystemTime::now(),
            reason,
            via,
        });
        new
    }

    /// The last failed TLS handshake, if any.
    pub fn last_tls_failure(&self) -> Option<TlsFailure> {
        self.last_tls_failure.lock().ok().and_then(|l| l.clone())
    }

    /// The pool lost its active checks: assume healthy, as without checks.
    pub fn assume_healthy(&self) {
        self.healthy.store(true, Relaxed);
    }

    /// Record an active check result. The first pass of a never-passed
    /// backend makes it healthy at once; after that `rise` passes or `fall`
    /// failures in a row flip it.
    pub fn record_check(
        &self,
        pass: bool,
        reason: Option<String>,
        rise: u32,
        fall: u32,
        now_ms: u64,
    ) -> Option<Transition> {
        let Ok(mut t) = self.tally.lock() else {
            return None;
        };
        let first_pass = pass && !t.ever_passed;
        t.checked = true;
        t.last_check_ms = now_ms;
        let healthy = self.healthy.load(Relaxed);
        if pass {
            t.ever_passed = true;
            t.passes = t.passes.saturating_add(1);
            t.fails = 0;
            t.passes_since_ejection = t.passes_since_ejection.saturating_add(1);
            t.last_error = None;
            if !healthy && (first_pass || t.passes >= rise) {
                self.healthy.store(true, Relaxed);
                self.ejected_until.store(0, Relaxed);
                return Some(Transition::Up);
            }
            if self.is_ejected(now_ms) && t.passes_since_ejection >= rise {
                self.ejected_until.store(0, Relaxed);
                self.consecutive_failures.store(0, Relaxed);
                return Some(Transition::EjectionLifted);
            }
            None
        } else {
            t.fails = t.fails.saturating_add(1);
            t.passes = 0;
            t.passes_since_ejection = 0;
            t.last_error = reason;
            if healthy && t.fails >= fall {
                self.healthy.store(false, Relaxed);
                return Some(Transition::Down);
            }
            None
        }
    }

    /// A request succeeded here: the failure streak ends.
    #[inline]
    pub fn record_success(&self, now_ms: u64) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
        // Forget past ejections once it has behaved for the longest ejection.
        if self.ejections.load(Relaxed) != 0
            && now_ms > self.last_ejection_ms.load(Relaxed) + MAX_EJECTION.as_millis() as u64
        {
            self.ejections.store(0, Relaxed);
        }
    }

    /// A request failed here. Returns the ejection length if this failure
    /// ejected the backend. At most `max_ejected` of its pool are ejected at
    /// once (`ejected_in_pool` are now): half a pool, or all of it when every
    /// route using it has another pool to go to (see
    /// [`crate::config::Config::pool_may_empty`]).
    pub fn record_failure(
        &self,
        kind: FailureKind,
        outlier: Option<&Outlier>,
        ejected_in_pool: usize,
        max_ejected: usize,
        now_ms: u64,
    ) -> Option<Duration> {
        self.stats.failures[kind as usize].fetch_add(1, Relaxed);
        let outlier = outlier?;
        let n = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if n < outlier.consecutive_failures || self.is_ejected(now_ms) {
            return None;
        }
        if ejected_in_pool + 1 > max_ejected {
            return None;
        }
        let repeats = self.ejections.fetch_add(1, Relaxed).min(16);
        let length = outlier
            .ejection
            .saturating_mul(1u32 << repeats)
            .min(MAX_EJECTION);
        let until = now_ms + length.as_millis() as u64;
        self.ejected_until.store(until, Relaxed);
        self.last_ejection_ms.store(until, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        self.stats.ejections_total.fetch_add(1, Relaxed);
        if let Ok(mut t) = self.tally.lock() {
            t.passes_since_ejection = 0;
        }
        Some(length)
    }

    /// Failures of one kind so far.
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.stats.failures[kind as usize].load(Relaxed)
    }
}

#[cfg(test)]
mod tests;
