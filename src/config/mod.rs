//! The validated configuration: the only form of the config the rest of
//! cutover ever sees.
//!
//! The file is parsed into the raw serde types of [`raw`], then converted by
//! `validate` into [`Config`]. That conversion is the one place validation
//! lives, so a `Config` value always holds a usable state: every pool has
//! backends, every route's split names known pools and has a positive weight,
//! shift steps increase, durations parse. Errors name `FILE:LINE:COL` and the
//! field (see [`ConfigError`]).
//!
//! Parsing works on a string ([`Config::from_str_named`]); reading the file is
//! a thin wrapper ([`Config::load`]), so tests need no files.

mod error;
pub mod raw;
mod summary;
mod validate;
mod validate_cluster;
mod validate_pool;
mod validate_route;
mod validate_shift;
mod warnings;

pub use error::{ConfigError, Position};
pub use summary::summary;
pub(crate) use validate::plain_words;

use http::{HeaderName, HeaderValue, Method};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The default config file for `run` and `check`.
pub const DEFAULT_PATH: &str = "config/cutover.toml";

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (as given on the command line).
    pub path: PathBuf,
    /// A short stable hash of the file text, to tell versions apart.
    pub hash: String,
    /// `[proxy]`: listeners, timeouts, limits.
    pub proxy: ProxySettings,
    /// `[admin]`: the admin endpoint.
    pub admin: AdminSettings,
    /// `[state] path`: where runtime decisions are persisted, if anywhere.
    pub state_path: Option<PathBuf>,
    /// `[log] access`: where access log lines go.
    pub access_log: AccessLogTarget,
    /// `[cluster]`: the fleet this replica belongs to, if any.
    pub cluster: Option<ClusterSettings>,
    /// `[pools.*]`, in file order. Routes refer to pools by index into this.
    pub pools: Vec<PoolConfig>,
    /// `[[routes]]`, in file order (the first match wins).
    pub routes: Vec<RouteConfig>,
}

impl Config {
    /// Whether passive ejection may take out every backend of pool `pool`:
    /// some route uses it, and every route that does has another pool (in
    /// its split or as a failover) to send the traffic to. Otherwise at most
    /// half a pool is ejected, so a lone backend never is.
    pub fn pool_may_empty(&self, pool: usize) -> bool {
        let users: Vec<&RouteConfig> = self
            .routes
            .iter()
            .filter(|r| r.split.iter().any(|e| e.pool == pool) || r.failover.contains(&pool))
            .collect();
        !users.is_empty()
            && users.iter().all(|r| {
                r.split.iter().any(|e| e.pool != pool) || r.failover.iter().any(|p| *p != pool)
            })
    }
}

/// `[proxy]`
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Plain HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners.
    pub tls: Vec<TlsListener>,
    /// Limit on opening a connection to a backend.
    pub connect_timeout: Duration,
    /// Limit on waiting for a backend between reads.
    pub read_timeout: Duration,
    /// How long an idle client keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// The whole request head must arrive within this.
    pub header_timeout: Duration,
    /// A request body may stall at most this long between two reads
    /// (nginx's `client_body_timeout`); then `408`.
    pub body_timeout: Duration,
    /// A response to the client may stall at most this long between two
    /// writes that make progress (nginx's `send_timeout`); then the
    /// connection is closed.
    pub send_timeout: Duration,
    /// Forward request headers whose names contain `_` (nginx's
    /// `underscores_in_headers`). Off by default: backends that read `_`
    /// and `-` alike would let a client forge the proxy's own headers.
    pub underscores_in_headers: bool,
    /// Serve the common HTTP/1 request on cutover's own path (on by
    /// default; off sends every request through Pingora's proxy).
    pub fast_path: bool,
    /// Request bodies up to this size are read whole before the first
    /// attempt (on cutover's own path), so a retry can send them again.
    pub retry_buffer: usize,
    /// Request heads larger than this get 431.
    pub max_header_bytes: usize,
    /// Extra attempts on another backend after a failed one.
    pub retries: usize,
    /// Worker threads.
    pub threads: usize,
    /// How long `SIGTERM` waits for in-flight requests.
    pub grace: Duration,
}

/// One `[[proxy.tls]]` listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Certificate/key pairs; chosen by SNI, the first is the default.
    pub certs: Vec<CertPair>,
    /// Offer HTTP/2 by ALPN.
    pub http2: bool,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq)]
pub struct CertPair {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq)]
pub struct AdminSettings {
    /// Address of the admin endpoint.
    pub listen: SocketAddr,
    /// Bearer token required on every admin route but `/healthz` and `/readyz`.
    pub token: Option<AdminToken>,
}

/// The admin bearer token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// `[cluster]`: where a fleet of replicas keeps its shared shift state.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// etcd endpoints, `http://host:port` or `https://host:port`.
    pub etcd: Vec<String>,
    /// This replica's name in the fleet (default: the host name).
    pub name: String,
    /// The key prefix: one migration, one prefix (no trailing `/`).
    pub prefix: String,
    /// etcd user and password, if etcd has authentication on.
    pub auth: Option<(String, AdminToken)>,
    /// CA certificate (PEM) to verify etcd's TLS certificate.
    pub ca: Option<PathBuf>,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// JSON lines on standard output.
    Stdout,
    /// No access log.
    Off,
    /// JSON lines appended to a file.
    File(PathBuf),
}

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
}

/// One pool of a route's split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitEntry {
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// Relative weight (read as a percent when the weights add up to 100).
    pub weight: f64,
}

/// Request matching for a route. Empty parts match everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Host (without port), lowercase; `*.example.com` matches subdomains.
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

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str_named(&text, path)
    }

    /// Validate `text` as if it were read from `path` (used in error messages
    /// and to resolve relative file names).
    pub fn from_str_named(text: &str, path: &Path) -> Result<Config, ConfigError> {
        validate::validate(text, path)
    }
}

/// A short stable hash of config text (FNV-1a, 64 bits, hex).
pub fn text_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
