//! The validated `[pools.NAME]` and `[[routes]]` sections: backends, health
//! checks, upstream TLS, outlier ejection; route matching, splits, sticky
//! users, shifts and their gates. Re-exported by [`crate::config`].

use http::{HeaderName, HeaderValue, Method};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// `[pools.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: String,
    /// Its backends, at least one.
    pub backends: Vec<BackendConfig>,
    /// Active health checks, if configured.
    pub health: Option<HealthCheck>,
    /// TLS to the backends, if configured.
    pub tls: Option<UpstreamTls>,
    /// Passive outlier ejection, unless turned off.
    pub outlier: Option<Outlier>,
}

/// One backend of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// `host:port` as written.
    pub addr: String,
    /// Relative weight inside the pool.
    pub weight: u32,
}

/// Active health check settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// What a probe does.
    pub probe: Probe,
    /// Time between probes of one backend.
    pub interval: Duration,
    /// Limit on one probe.
    pub timeout: Duration,
    /// Consecutive passes to turn healthy.
    pub rise: u32,
    /// Consecutive failures to turn unhealthy.
    pub fall: u32,
}

/// The kind of probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// `GET path`, judged by the status code.
    Http {
        /// Request path.
        path: String,
        /// Which statuses pass.
        expect: Expect,
    },
    /// Only check that a TCP connection opens.
    Tcp,
}

/// Which HTTP statuses pass a health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx or 3xx.
    SuccessOrRedirect,
    /// Exactly these codes.
    Codes(Vec<u16>),
}

impl Expect {
    /// Whether `status` passes.
    pub fn passes(&self, status: u16) -> bool {
        match self {
            Expect::SuccessOrRedirect => (200..400).contains(&status),
            Expect::Codes(codes) => codes.contains(&status),
        }
    }
}

/// TLS from cutover to a pool's backends.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    /// SNI and the name to verify; defaults to the backend's host.
    pub sni: Option<String>,
    /// Verify the chain and hostname.
    pub verify: bool,
    /// Extra CA bundle to trust (PEM).
    pub ca: Option<PathBuf>,
    /// Speak HTTP/2 to the backends.
    pub http2: bool,
}

/// Passive outlier ejection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlier {
    /// Failures in a row that eject a backend.
    pub consecutive_failures: u32,
    /// First ejection length; doubles on repeat up to [`MAX_EJECTION`].
    pub ejection: Duration,
}

/// The longest an outlier ejection lasts.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: 5,
            ejection: Duration::from_secs(30),
        }
    }
}

/// `[[routes]]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Unique name.
    pub name: String,
    /// Which requests it takes.
    pub matcher: RouteMatch,
    /// Pools and their relative weights, in file order; at least one weight > 0.
    pub split: Vec<SplitEntry>,
    /// Standby pools used only when every split pool is down.
    pub failover: Vec<usize>,
    /// How a user is pinned to a pool.
    pub sticky: Option<Sticky>,
    /// A request header that picks the pool by name (for testers).
    pub override_header: Option<HeaderName>,
    /// The gradual shift, if any.
    pub shift: Option<ShiftConfig>,
    /// Shadow traffic: copies of some requests sent to another pool and
    /// the answers compared.
    pub mirror: Option<MirrorConfig>,
}

/// `[routes.mirror]`
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// Index of the pool that receives the copies.
    pub to: usize,
    /// Share of the route's requests copied, in percent (0.01 % steps).
    pub percent: f64,
    /// Methods copied (default: the safe ones, GET HEAD OPTIONS).
    pub methods: Vec<Method>,
    /// Requests with a larger body are not copied (counted).
    pub max_body: usize,
    /// Deadline for the mirror's whole answer.
    pub timeout: Duration,
    /// Header names (lowercase) left out of the comparison.
    pub ignore_headers: Vec<String>,
    /// JSON paths left out of the comparison (`$.a.b`, `$.items[*].id`).
    pub ignore_json: Vec<String>,
}

/// One pool of a route's split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitEntry {
    /// Index into [`Config::pools`](super::Config::pools).
    pub pool: usize,
    /// Relative weight (read as a percent when the weights add up to 100).
    pub weight: f64,
}

/// Request matching for a route. Empty parts match everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Host (without port), lowercase; `*.example.com` matches subdomains,
    /// `api.*` hosts that start with `api.`.
    pub host: Option<HostPattern>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Allowed methods; empty means any.
    pub methods: Vec<Method>,
    /// Headers that must be present with exactly this value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A host to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The host exactly (lowercase).
    Exact(String),
    /// `*.suffix`: any subdomain; holds `.suffix` (lowercase).
    Wildcard(String),
    /// `prefix.*`: any host that starts with `prefix.` (nginx's `mail.*`,
    /// HAProxy's `hdr_beg(host)`); holds `prefix.` (lowercase).
    Prefix(String),
}

/// What pins a user to a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// The value of this request header.
    Header(HeaderName),
    /// The value of this cookie.
    Cookie(String),
    /// The client's IP address.
    SourceIp,
}

/// `[routes.shift]`
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftConfig {
    /// Index of the pool traffic moves to.
    pub to: usize,
    /// Index of the pool traffic moves from.
    pub from: usize,
    /// Percent of the route on `to` at each step, increasing, in (0, 100].
    pub steps: Vec<f64>,
    /// Time on each step.
    pub hold: Duration,
    /// Wall-clock start of step 0; `None` means when the route is first loaded.
    pub start_at: Option<SystemTime>,
    /// Metric gate checked while a step holds.
    pub gate: Option<GateConfig>,
}

/// `[routes.shift.gate]`
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// Highest tolerated (5xx + upstream failures) / requests on `to`.
    pub max_error_rate: Option<f64>,
    /// Highest tolerated p99 latency on `to`.
    pub max_p99: Option<Duration>,
    /// Highest tolerated `to` p99 / `from` p99.
    pub max_p99_ratio: Option<f64>,
    /// No verdict on fewer requests than this in the window.
    pub min_requests: u64,
    /// Highest tolerated share of mirrored requests whose answers differ:
    /// above it (or with fewer than `min_requests` compared) a shift does
    /// not start or advance.
    pub max_mirror_mismatch: Option<f64>,
    /// What a breach does.
    pub on_breach: OnBreach,
}

/// What a gate breach does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBreach {
    /// Share of `to` back to 0 %, shift stopped.
    Rollback,
    /// Freeze the current step.
    Pause,
}
