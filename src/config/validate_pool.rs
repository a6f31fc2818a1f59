//! Validation of `[pools.NAME]`: backends, health checks, upstream TLS,
//! outlier ejection.

use super::raw::*;
use super::validate::{valid_name, Validator};
use super::*;
use serde_spanned::Spanned;

impl Validator<'_> {
    pub(super) fn pools(
        &self,
        raw: std::collections::BTreeMap<String, Spanned<RawPool>>,
    ) -> Result<Vec<PoolConfig>, ConfigError> {
        // Keep file order: it is the order operators read in `check` and `/status`.
        let mut entries: Vec<_> = raw.into_iter().collect();
        entries.sort_by_key(|(_, pool)| pool.span().start);
        let mut pools = Vec::new();
        for (name, pool) in entries {
            if !valid_name(&name) {
                return Err(self.r.at(
                    pool.span(),
                    format!("pools.{name}"),
                    "pool names may use letters, digits, '-', '_' and '.' only",
                ));
            }
            pools.push(self.pool(&name, pool)?);
        }
        Ok(pools)
    }

    fn pool(&self, name: &str, raw: Spanned<RawPool>) -> Result<PoolConfig, ConfigError> {
        let field = format!("pools.{name}");
        let span = raw.span();
        let raw = raw.into_inner();
        if raw.backends.get_ref().is_empty() {
            return Err(self.r.at(
                raw.backends.span(),
                format!("{field}.backends"),
                "a pool needs at least one backend",
            ));
        }
        let mut backends: Vec<BackendConfig> = Vec::new();
        for (i, b) in raw.backends.get_ref().iter().enumerate() {
            let bfield = format!("{field}.backends[{i}]");
            let entry = b.get_ref();
            let addr_span = self.span_or(entry.addr.span(), b.span());
            let addr = entry.addr.get_ref().trim().to_string();
            check_backend_addr(&addr).map_err(|m| self.r.at(addr_span.clone(), &bfield, m))?;
            if backends.iter().any(|x| x.addr == addr) {
                return Err(self
                    .r
                    .at(addr_span, bfield, format!("{addr} is listed twice")));
            }
            let weight = match &entry.weight {
                Some(w) => self.int_in(w, &format!("{bfield}.weight"), 0..=1_000_000)? as u32,
                None => 1,
            };
            backends.push(BackendConfig { addr, weight });
        }
        if backends.iter().all(|b| b.weight == 0) {
            return Err(self.r.at(
                raw.backends.span(),
                format!("{field}.backends"),
                "every backend has weight 0; at least one must be positive",
            ));
        }
        let health = raw
            .health
            .as_ref()
            .map(|h| self.health(h, &format!("{field}.health")))
            .transpose()?;
        let tls = raw
            .tls
            .as_ref()
            .map(|t| self.upstream_tls(t, &format!("{field}.tls")))
            .transpose()?;
        let outlier = match &raw.outlier {
            None => Some(Outlier::default()),
            Some(o) => self.outlier(o, &format!("{field}.outlier"))?,
        };
        let _ = span;
        Ok(PoolConfig {
            name: name.to_string(),
            backends,
            health,
            tls,
            outlier,
        })
    }

    fn health(&self, h: &Spanned<RawHealth>, field: &str) -> Result<HealthCheck, ConfigError> {
        let raw = h.get_ref();
        let tcp = raw.tcp.unwrap_or(false);
        if tcp && (raw.path.is_some() || raw.expect.is_some()) {
            return Err(self.r.at(
                h.span(),
                field,
                "tcp = true checks only that a connection opens; remove path/expect",
            ));
        }
        let probe = if tcp {
            Probe::Tcp
        } else {
            let path = match &raw.path {
                Some(p) if !p.get_ref().starts_with('/') => {
                    return Err(self
                        .r
                        .at(p.span(), format!("{field}.path"), "must start with '/'"))
                }
                Some(p) => p.get_ref().clone(),
                None => "/".to_string(),
            };
            let expect = match &raw.expect {
                None => Expect::SuccessOrRedirect,
                Some(list) if list.get_ref().is_empty() => {
                    return Err(self.r.at(
                        list.span(),
                        format!("{field}.expect"),
                        "give at least one status code",
                    ))
                }
                Some(list) => {
                    let mut codes = Vec::new();
                    for c in list.get_ref() {
                        codes.push(self.int_in(c, &format!("{field}.expect"), 100..=599)? as u16);
                    }
                    Expect::Codes(codes)
                }
            };
            Probe::Http { path, expect }
        };
        Ok(HealthCheck {
            probe,
            interval: self.opt_duration(
                &raw.interval,
                &format!("{field}.interval"),
                Duration::from_secs(2),
            )?,
            timeout: self.opt_duration(
                &raw.timeout,
                &format!("{field}.timeout"),
                Duration::from_secs(1),
            )?,
            rise: match &raw.rise {
                Some(v) => self.int_in(v, &format!("{field}.rise"), 1..=100)? as u32,
                None => 2,
            },
            fall: match &raw.fall {
                Some(v) => self.int_in(v, &format!("{field}.fall"), 1..=100)? as u32,
                None => 3,
            },
        })
    }

    fn upstream_tls(
        &self,
        t: &Spanned<RawUpstreamTls>,
        field: &str,
    ) -> Result<UpstreamTls, ConfigError> {
        let raw = t.get_ref();
        let ca = match &raw.ca {
            Some(c) => {
                let path = self.file_path(c);
                crate::tls::check_ca(&path)
                    .map_err(|e| self.r.at(c.span(), format!("{field}.ca"), e))?;
                Some(path)
            }
            None => None,
        };
        let sni = match &raw.sni {
            Some(s) if s.get_ref().trim().is_empty() => {
                return Err(self
                    .r
                    .at(s.span(), format!("{field}.sni"), "must not be empty"))
            }
            Some(s) => Some(s.get_ref().trim().to_string()),
            None => None,
        };
        Ok(UpstreamTls {
            sni,
            verify: raw.verify.unwrap_or(true),
            ca,
            http2: raw.http2.unwrap_or(false),
        })
    }

    fn outlier(
        &self,
        o: &Spanned<RawOutlier>,
        field: &str,
    ) -> Result<Option<Outlier>, ConfigError> {
        Ok(match o.get_ref() {
            RawOutlier::Enabled(false) => None,
            RawOutlier::Enabled(true) => Some(Outlier::default()),
            RawOutlier::Settings {
                consecutive_failures,
                ejection,
            } => {
                let d = Outlier::default();
                Some(Outlier {
                    consecutive_failures: match consecutive_failures {
                        Some(v) => {
                            self.int_in(v, &format!("{field}.consecutive_failures"), 1..=1000)?
                                as u32
                        }
                        None => d.consecutive_failures,
                    },
                    ejection: self.opt_duration(
                        ejection,
                        &format!("{field}.ejection"),
                        d.ejection,
                    )?,
                })
            }
        })
    }
}

/// `host:port` where host is an IPv4 address, `[IPv6]` or a DNS name.
pub(super) fn check_backend_addr(addr: &str) -> Result<(), String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("{addr:?} is not a host:port address (e.g. \"10.0.0.11:80\")");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("{addr:?}: port must be 1 to 65535")),
    }
    let dns_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    if dns_ok {
        Ok(())
    } else {
        Err(bad())
    }
}
