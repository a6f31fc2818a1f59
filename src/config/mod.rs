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
mod pools_routes;
pub mod raw;
mod summary;
mod validate;
mod validate_admin;
mod validate_cluster;
mod validate_mirror;
mod validate_pool;
mod validate_report;
mod validate_route;
mod validate_shift;
mod warnings;

pub use error::{ConfigError, Position};
pub use pools_routes::*;
pub use summary::summary;
pub(crate) use validate::plain_words;

use http::{HeaderName, HeaderValue, Method};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// `[report]` and `[pools.*.cost]`: what the migration report costs
    /// with.
    pub report: ReportSettings,
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

/// `[report]` and the pools' `cost` tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSettings {
    /// Currency code shown with the costs.
    pub currency: String,
    /// C1: the cost of the system before the migration.
    pub cost_before: Option<f64>,
    /// C2: the extra cost of migrating.
    pub migration_cost: Option<f64>,
    /// What one failed request costs, to put a price on E.
    pub failure_cost: Option<f64>,
    /// Running cost per pool, by pool name.
    pub pool_costs: Vec<(String, PoolCost)>,
}

/// `[pools.NAME.cost]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolCost {
    /// Per hour, whatever the traffic.
    pub per_hour: f64,
    /// Per million requests served.
    pub per_million_requests: f64,
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
