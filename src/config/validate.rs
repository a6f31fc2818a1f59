//! Raw config → validated [`Config`]: the one place validation lives.
//!
//! Each check reports the span of the offending value and its dotted field
//! path. Defaults (as the README lists them) are filled in here, so nothing
//! downstream has to know them. Routes are checked in `validate_route.rs`.

use super::error::Reporter;
use super::raw::*;
use super::*;
use serde_spanned::Spanned;
use std::collections::HashSet;
use std::ops::Range;

/// Parse and validate config `text` read from `path`.
pub(super) fn validate(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let r = Reporter { file: &file, text };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(&r, &e, ""))?;
    let raw: RawConfig = serde_path_to_error::deserialize(de)
        .map_err(|e| toml_error(&r, e.inner(), &clean_path(&e.path().to_string())))?;

    let v = Validator {
        r,
        base_dir,
        text_len: text.len(),
    };
    let proxy = v.proxy(raw.proxy)?;
    let admin_span = raw
        .admin
        .as_ref()
        .and_then(|a| a.listen.as_ref())
        .map(|l| l.span());
    let admin = v.admin(raw.admin)?;
    if let Some(taken) = proxy
        .listen
        .iter()
        .chain(proxy.tls.iter().map(|t| &t.listen))
        .find(|a| same_socket(a, &admin.listen))
    {
        return Err(v.r.at(
            admin_span.unwrap_or_else(|| v.eof()),
            "admin.listen",
            format!(
                "{} is also where the proxy listens ({taken}); give the admin endpoint a port of its own",
                admin.listen
            ),
        ));
    }
    let state_path = raw.state.map(|s| v.file_path(&s.path));
    let access_log = v.access_log(raw.log)?;
    let cluster = raw.cluster.as_ref().map(|c| v.cluster(c)).transpose()?;
    let report = v.report(raw.report.as_ref(), &raw.pools)?;
    let pools = v.pools(raw.pools)?;
    let routes = v.routes(raw.routes, &pools, proxy.retry_buffer)?;
    Ok(Config {
        path: path.to_path_buf(),
        hash: text_hash(text),
        proxy,
        admin,
        state_path,
        access_log,
        cluster,
        report,
        pools,
        routes,
    })
}

/// Whether binding `a` and `b` would collide: the same port (not 0, which
/// picks a fresh one) on the same address, or on any address and one of
/// them is the wildcard.
fn same_socket(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A serde path as an operator reads it: without the span wrappers' inner
/// names and without unnamed map keys.
fn clean_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    path.split('.')
        .filter(|seg| !seg.starts_with("$__serde_spanned") && *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// Turn a TOML/serde error into a positioned config error.
fn toml_error(r: &Reporter, e: &toml::de::Error, field: &str) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    r.at(span, field, plain_words(e.message().trim_end(), field))
}

/// A serde message in an operator's words: "invalid type: integer `60`,
/// expected a string" becomes "must be a string in quotes, not the number
/// 60 (durations are written like "60s")"; `i64` and `f64` become "a whole
/// number" and "a number". Anything else is kept.
pub(crate) fn plain_words(message: &str, field: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let found = if let Some(n) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
    {
        format!("the number {}", n.trim_matches('`'))
    } else if let Some(s) = found.strip_prefix("string ") {
        format!("the text {s}")
    } else {
        found.to_string()
    };
    let (expected, hint) = match expected.split(" at line ").next().unwrap_or(expected) {
        "a string" => {
            let leaf = field.rsplit('.').next().unwrap_or(field);
            let duration = leaf.ends_with("timeout")
                || matches!(leaf, "hold" | "interval" | "grace" | "max_p99" | "ejection");
            (
                "a string in quotes".to_string(),
                if duration {
                    " (durations are written like \"60s\" or \"500ms\")"
                } else {
                    ""
                },
            )
        }
        "i64" | "u64" | "u32" | "usize" => ("a whole number".to_string(), ""),
        "f64" | "f32" => ("a number".to_string(), ""),
        "a boolean" => ("true or false".to_string(), ""),
        other => (other.to_string(), ""),
    };
    format!("must be {expected}, not {found}{hint}")
}

pub(super) struct Validator<'a> {
    pub r: Reporter<'a>,
    /// Relative file names are taken relative to the config file's directory.
    pub base_dir: PathBuf,
    pub text_len: usize,
}

impl Validator<'_> {
    /// A span for a value that carries none (a bare string in a list).
    pub(super) fn span_or(&self, inner: Range<usize>, outer: Range<usize>) -> Range<usize> {
        if inner.is_empty() && inner.start == 0 {
            outer
        } else {
            inner
        }
    }

    /// The end of the file, for settings that are missing altogether.
    pub(super) fn eof(&self) -> Range<usize> {
        self.text_len..self.text_len
    }

    pub(super) fn file_path(&self, s: &SStr) -> PathBuf {
        let p = PathBuf::from(s.get_ref());
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn duration(&self, s: &SStr, field: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
            self.r.at(
                s.span(),
                field,
                format!(
                    "{:?} is not a duration ({e}); write e.g. \"500ms\", \"2s\", \"10m\"",
                    s.get_ref()
                ),
            )
        })?;
        if d.is_zero() {
            return Err(self.r.at(s.span(), field, "must be greater than zero"));
        }
        Ok(d)
    }

    pub(super) fn opt_duration(
        &self,
        s: &Option<SStr>,
        field: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s, field))
    }

    pub(super) fn int_in(
        &self,
        v: &Spanned<i64>,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let n = *v.get_ref();
        if !range.contains(&n) {
            return Err(self.r.at(
                v.span(),
                field,
                format!(
                    "{n} is out of range; must be {} to {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(n)
    }

    pub(super) fn socket_addr(&self, s: &SStr, field: &str) -> Result<SocketAddr, ConfigError> {
        s.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
            self.r.at(
                s.span(),
                field,
                format!(
                    "{:?} is not an IP:port address (e.g. \"0.0.0.0:8080\" or \"[::]:8080\")",
                    s.get_ref()
                ),
            )
        })
    }

    fn proxy(&self, raw: Option<Spanned<RawProxy>>) -> Result<ProxySettings, ConfigError> {
        let (raw, span) = match raw {
            Some(p) => {
                let span = p.span();
                (p.into_inner(), span)
            }
            None => (RawProxy::default(), self.eof()),
        };
        let listen = match &raw.listen {
            None => vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            Some(list) => {
                let mut out = Vec::new();
                for (i, a) in list.get_ref().iter().enumerate() {
                    out.push(self.socket_addr(a, &format!("proxy.listen[{i}]"))?);
                }
                out
            }
        };
        let mut tls = Vec::new();
        for (i, t) in raw.tls.iter().enumerate() {
            tls.push(self.tls_listener(t, i)?);
        }
        let mut seen = HashSet::new();
        // Port 0 picks a fresh port each time, so it never collides.
        for a in listen
            .iter()
            .chain(tls.iter().map(|t| &t.listen))
            .filter(|a| a.port() != 0)
        {
            if !seen.insert(*a) {
                return Err(self.r.at(
                    raw.listen.as_ref().map_or(span.clone(), |l| l.span()),
                    "proxy.listen",
                    format!("{a} is listed twice"),
                ));
            }
        }
        if listen.is_empty() && tls.is_empty() {
            return Err(self.r.at(
                raw.listen.as_ref().map_or(span, |l| l.span()),
                "proxy.listen",
                "no listener: give at least one address in proxy.listen or a [[proxy.tls]]",
            ));
        }
        let max_header_bytes = match &raw.max_header_bytes {
            Some(v) => self.int_in(v, "proxy.max_header_bytes", 1024..=1_048_575)? as usize,
            None => 65536,
        };
        let retry_buffer = match &raw.retry_buffer {
            Some(v) => self.int_in(v, "proxy.retry_buffer", 0..=1_048_576)? as usize,
            None => 65536,
        };
        let retries = match &raw.retries {
            Some(v) => self.int_in(v, "proxy.retries", 0..=10)? as usize,
            None => 2,
        };
        let threads = match &raw.threads {
            Some(v) => self.int_in(v, "proxy.threads", 1..=256)? as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(ProxySettings {
            listen,
            tls,
            connect_timeout: self.opt_duration(
                &raw.connect_timeout,
                "proxy.connect_timeout",
                Duration::from_secs(2),
            )?,
            read_timeout: self.opt_duration(
                &raw.read_timeout,
                "proxy.read_timeout",
                Duration::from_secs(60),
            )?,
            idle_timeout: self.opt_duration(
                &raw.idle_timeout,
                "proxy.idle_timeout",
                Duration::from_secs(60),
            )?,
            header_timeout: self.opt_duration(
                &raw.header_timeout,
                "proxy.header_timeout",
                Duration::from_secs(10),
            )?,
            body_timeout: self.opt_duration(
                &raw.body_timeout,
                "proxy.body_timeout",
                Duration::from_secs(60),
            )?,
            send_timeout: self.opt_duration(
                &raw.send_timeout,
                "proxy.send_timeout",
                Duration::from_secs(60),
            )?,
            underscores_in_headers: raw.underscores_in_headers.unwrap_or(false),
            fast_path: raw.fast_path.unwrap_or(true),
            retry_buffer,
            max_header_bytes,
            retries,
            threads,
            grace: self.opt_duration(&raw.grace, "proxy.grace", Duration::from_secs(30))?,
        })
    }

    fn tls_listener(
        &self,
        t: &Spanned<RawTlsListener>,
        i: usize,
    ) -> Result<TlsListener, ConfigError> {
        let field = format!("proxy.tls[{i}]");
        let raw = t.get_ref();
        let listen = self.socket_addr(&raw.listen, &format!("{field}.listen"))?;
        if raw.certs.get_ref().is_empty() {
            return Err(self.r.at(
                raw.certs.span(),
                format!("{field}.certs"),
                "needs at least one { cert, key } pair",
            ));
        }
        let mut certs = Vec::new();
        for (j, pair) in raw.certs.get_ref().iter().enumerate() {
            let p = pair.get_ref();
            let cert = self.file_path(&p.cert);
            let key = self.file_path(&p.key);
            crate::tls::check_pair(&cert, &key)
                .map_err(|e| self.r.at(pair.span(), format!("{field}.certs[{j}]"), e))?;
            certs.push(CertPair { cert, key });
        }
        Ok(TlsListener {
            listen,
            certs,
            http2: raw.http2.unwrap_or(true),
        })
    }

    fn access_log(&self, raw: Option<RawLog>) -> Result<AccessLogTarget, ConfigError> {
        let Some(access) = raw.and_then(|l| l.access) else {
            return Ok(AccessLogTarget::Off);
        };
        Ok(match access.get_ref().as_str() {
            "stdout" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            "" => {
                return Err(self.r.at(
                    access.span(),
                    "log.access",
                    "must be \"stdout\", \"off\" or a file path",
                ))
            }
            _ => AccessLogTarget::File(self.file_path(&access)),
        })
    }
}

/// Names of pools and routes: safe in metrics labels, URLs and logs.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
