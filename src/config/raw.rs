//! The config file as written: serde structs that mirror the TOML, one for one.
//!
//! Nothing here is validated beyond its TOML type. Every value that a later
//! check may reject is wrapped in [`Spanned`] so the error can point at the
//! exact line and column. `deny_unknown_fields` everywhere turns a typo into an
//! error instead of a silently ignored setting. The conversion into the
//! validated types lives in `validate.rs`.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// A spanned string, the most common leaf.
pub type SStr = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub proxy: Option<Spanned<RawProxy>>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub state: Option<RawState>,
    #[serde(default)]
    pub log: Option<RawLog>,
    #[serde(default)]
    pub cluster: Option<Spanned<RawCluster>>,
    #[serde(default)]
    pub report: Option<Spanned<RawReport>>,
    #[serde(default)]
    pub pools: BTreeMap<String, Spanned<RawPool>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// `[proxy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub listen: Option<Spanned<Vec<SStr>>>,
    pub connect_timeout: Option<SStr>,
    pub read_timeout: Option<SStr>,
    pub idle_timeout: Option<SStr>,
    pub header_timeout: Option<SStr>,
    pub body_timeout: Option<SStr>,
    pub send_timeout: Option<SStr>,
    pub underscores_in_headers: Option<bool>,
    pub fast_path: Option<bool>,
    pub retry_buffer: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub retries: Option<Spanned<i64>>,
    pub threads: Option<Spanned<i64>>,
    pub grace: Option<SStr>,
    #[serde(default)]
    pub tls: Vec<Spanned<RawTlsListener>>,
}

/// `[[proxy.tls]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsListener {
    pub listen: SStr,
    pub certs: Spanned<Vec<Spanned<RawCertPair>>>,
    pub http2: Option<bool>,
}

/// One `{ cert = "…", key = "…" }` pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertPair {
    pub cert: SStr,
    pub key: SStr,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<SStr>,
    pub token_env: Option<SStr>,
    pub token_file: Option<SStr>,
}

/// `[state]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub path: SStr,
}

/// `[cluster]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub etcd: Spanned<Vec<SStr>>,
    pub name: Option<SStr>,
    pub prefix: Option<SStr>,
    pub user: Option<SStr>,
    pub password_env: Option<SStr>,
    pub password_file: Option<SStr>,
    pub ca: Option<SStr>,
}

/// `[report]`: the migration report's fixed costs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub currency: Option<SStr>,
    pub cost_before: Option<Spanned<f64>>,
    pub migration_cost: Option<Spanned<f64>>,
    pub failure_cost: Option<Spanned<f64>>,
}

/// `[pools.NAME.cost]`: a pool's running cost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolCost {
    pub per_hour: Option<Spanned<f64>>,
    pub per_million_requests: Option<Spanned<f64>>,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<SStr>,
}

/// `[pools.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub backends: Spanned<Vec<Spanned<RawBackend>>>,
    pub health: Option<Spanned<RawHealth>>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
    pub outlier: Option<Spanned<RawOutlier>>,
    pub cost: Option<Spanned<RawPoolCost>>,
}

/// A backend: `"10.0.0.11:80"` or `{ addr = "10.0.0.12:80", weight = 2 }`.
#[derive(Debug)]
pub struct RawBackend {
    pub addr: SStr,
    pub weight: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for RawBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBackend;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an address string or a table { addr = "host:port", weight = N }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBackend, E> {
                // A bare string carries no span of its own here; the caller
                // wraps the whole entry in `Spanned`, which is used instead.
                Ok(RawBackend {
                    addr: Spanned::new(0..0, v.to_string()),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBackend, A::Error> {
                let mut addr = None;
                let mut weight = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "addr" => addr = Some(map.next_value::<SStr>()?),
                        "weight" => weight = Some(map.next_value::<Spanned<i64>>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["addr", "weight"]));
                        }
                    }
                }
                let addr = addr.ok_or_else(|| de::Error::missing_field("addr"))?;
                Ok(RawBackend { addr, weight })
            }
        }
        d.deserialize_any(V)
    }
}

/// `health = { … }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: Option<SStr>,
    pub interval: Option<SStr>,
    pub timeout: Option<SStr>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub expect: Option<Spanned<Vec<Spanned<i64>>>>,
    pub tcp: Option<bool>,
}

/// `tls = { sni = "…", verify = true, ca = "…", http2 = false }` on a pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub sni: Option<SStr>,
    pub verify: Option<bool>,
    pub ca: Option<SStr>,
    pub http2: Option<bool>,
}

/// `outlier = false` or `outlier = { consecutive_failures = 5, ejection = "30s" }`.
#[derive(Debug)]
pub enum RawOutlier {
    /// `outlier = true` / `false`.
    Enabled(bool),
    /// A table of settings.
    Settings {
        consecutive_failures: Option<Spanned<i64>>,
        ejection: Option<SStr>,
    },
}

impl<'de> Deserialize<'de> for RawOutlier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawOutlier;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "false, true, or a table { consecutive_failures = N, ejection = \"30s\" }",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawOutlier, E> {
                Ok(RawOutlier::Enabled(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOutlier, A::Error> {
                let mut consecutive_failures = None;
                let mut ejection = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "consecutive_failures" => consecutive_failures = Some(map.next_value()?),
                        "ejection" => ejection = Some(map.next_value()?),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["consecutive_failures", "ejection"],
                            ));
                        }
                    }
                }
                Ok(RawOutlier::Settings {
                    consecutive_failures,
                    ejection,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: SStr,
    #[serde(rename = "match")]
    pub matcher: Option<Spanned<RawMatch>>,
    pub split: Spanned<BTreeMap<SStr, Spanned<f64>>>,
    pub failover: Option<Spanned<Vec<SStr>>>,
    pub sticky: Option<Spanned<RawSticky>>,
    pub override_header: Option<SStr>,
    pub shift: Option<Spanned<RawShift>>,
    pub mirror: Option<Spanned<RawMirror>>,
}

/// `[routes.mirror]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub to: SStr,
    pub percent: Option<Spanned<f64>>,
    pub methods: Option<Spanned<Vec<SStr>>>,
    pub max_body: Option<Spanned<RawSize>>,
    pub timeout: Option<SStr>,
    pub compare: Option<Spanned<RawCompare>>,
}

/// A size: bytes as a number, or `"64KiB"`, `"1MiB"`, `"512"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    /// A whole number of bytes.
    Bytes(i64),
    /// A number with a unit.
    Text(String),
}

/// `compare = { ignore_headers, ignore_json }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    pub ignore_headers: Option<Vec<SStr>>,
    pub ignore_json: Option<Vec<SStr>>,
}

/// `match = { host, path_prefix, methods, headers }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<SStr>,
    pub path_prefix: Option<SStr>,
    pub methods: Option<Spanned<Vec<SStr>>>,
    pub headers: Option<BTreeMap<SStr, SStr>>,
}

/// `sticky = { header = "…" }`, `{ cookie = "…" }` or `{ source_ip = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    pub header: Option<SStr>,
    pub cookie: Option<SStr>,
    pub source_ip: Option<bool>,
}

/// `[routes.shift]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShift {
    pub to: SStr,
    pub from: Option<SStr>,
    pub steps: Spanned<Vec<Spanned<f64>>>,
    pub hold: SStr,
    pub start_at: Option<SStr>,
    pub gate: Option<Spanned<RawGate>>,
}

/// `[routes.shift.gate]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub max_error_rate: Option<Spanned<f64>>,
    pub max_p99: Option<SStr>,
    pub max_p99_ratio: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub on_breach: Option<SStr>,
    pub max_mirror_mismatch: Option<Spanned<f64>>,
}
