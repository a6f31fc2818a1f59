//! Validation of `[routes.mirror]`: shadow traffic to another pool.

use super::raw::*;
use super::validate::Validator;
use super::*;
use serde_spanned::Spanned;

/// The safe methods, copied when `methods` is not given.
const SAFE: [Method; 3] = [Method::GET, Method::HEAD, Method::OPTIONS];

impl Validator<'_> {
    pub(super) fn mirror(
        &self,
        m: &Spanned<RawMirror>,
        field: &str,
        split: &[SplitEntry],
        pools: &[PoolConfig],
        retry_buffer: usize,
    ) -> Result<MirrorConfig, ConfigError> {
        let raw = m.get_ref();
        let to = self.pool_ref(&raw.to, &format!("{field}.to"), pools)?;
        if let Some(tls) = &pools[to].tls {
            if tls.http2 {
                return Err(self.r.at(
                    raw.to.span(),
                    format!("{field}.to"),
                    format!(
                        "pool {:?} speaks HTTP/2 to its backends; copies are sent over HTTP/1 (plain or TLS)",
                        raw.to.get_ref()
                    ),
                ));
            }
        }
        if split.len() == 1 && split[0].pool == to {
            return Err(self.r.at(
                raw.to.span(),
                format!("{field}.to"),
                "the mirror pool is the route's only pool: there is nothing to compare it with",
            ));
        }
        let percent = match &raw.percent {
            None => 100.0,
            Some(v) if !(0.0..=100.0).contains(v.get_ref()) => {
                return Err(self.r.at(
                    v.span(),
                    format!("{field}.percent"),
                    "must be a percent from 0 to 100",
                ))
            }
            Some(v) => *v.get_ref(),
        };
        let mut methods: Vec<Method> = Vec::new();
        let listed = match &raw.methods {
            None => SAFE.to_vec(),
            Some(list) => self.methods(list, &format!("{field}.methods"))?,
        };
        for m in listed {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        let max_body = match &raw.max_body {
            None => retry_buffer.min(64 * 1024),
            Some(v) => {
                let n = size(v.get_ref()).ok_or_else(|| {
                    self.r.at(
                        v.span(),
                        format!("{field}.max_body"),
                        "must be a size like \"64KiB\", \"1MiB\" or a number of bytes",
                    )
                })?;
                if n > retry_buffer as u64 {
                    return Err(self.r.at(
                        v.span(),
                        format!("{field}.max_body"),
                        format!(
                            "{n} bytes is more than [proxy] retry_buffer ({retry_buffer}): a larger body streams through and is not kept for a copy; raise retry_buffer or lower max_body"
                        ),
                    ));
                }
                n as usize
            }
        };
        let timeout = match &raw.timeout {
            None => Duration::from_secs(2),
            Some(t) => self.duration(t, &format!("{field}.timeout"))?,
        };
        let mut ignore_headers = Vec::new();
        let mut ignore_json = Vec::new();
        if let Some(c) = &raw.compare {
            let c = c.get_ref();
            for h in c.ignore_headers.iter().flatten() {
                let name = self.header_name(h, &format!("{field}.compare.ignore_headers"))?;
                ignore_headers.push(name.as_str().to_string());
            }
            for p in c.ignore_json.iter().flatten() {
                let path = p.get_ref().trim();
                if !crate::mirror::compare::valid_path(path) {
                    return Err(self.r.at(
                        p.span(),
                        format!("{field}.compare.ignore_json"),
                        format!(
                            "{:?} is not a JSON path like \"$.timestamp\", \"$.items[*].id\" or \"$.items[0]\"",
                            p.get_ref()
                        ),
                    ));
                }
                ignore_json.push(path.to_string());
            }
        }
        Ok(MirrorConfig {
            to,
            percent,
            methods,
            max_body,
            timeout,
            ignore_headers,
            ignore_json,
        })
    }
}

/// Bytes in `64KiB`, `1MiB`, `2k`, `512`: binary units, case-insensitive.
fn size(v: &RawSize) -> Option<u64> {
    let text = match v {
        RawSize::Bytes(n) => return u64::try_from(*n).ok(),
        RawSize::Text(t) => t.trim().to_ascii_lowercase(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let t = |s: &str| size(&RawSize::Text(s.into()));
        assert_eq!(t("64KiB"), Some(65536));
        assert_eq!(t("1MiB"), Some(1 << 20));
        assert_eq!(t("2k"), Some(2048));
        assert_eq!(t("512"), Some(512));
        assert_eq!(t("12 KB"), Some(12 * 1024));
        assert_eq!(t("1.5MiB"), None);
        assert_eq!(t("KiB"), None);
        assert_eq!(size(&RawSize::Bytes(-1)), None);
        assert_eq!(size(&RawSize::Bytes(100)), Some(100));
    }
}
