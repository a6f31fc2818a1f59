//! Durations, sizes and addresses as nginx and HAProxy write them, turned
//! into cutover's forms.

/// nginx time (`60`, `60s`, `1m30s`, `500ms`, `1h`; a bare number is
/// seconds) in milliseconds.
pub(super) fn nginx_ms(s: &str) -> Option<u64> {
    parse_units(s, 1000)
}

/// HAProxy time (`5000`, `5s`, `1m`; a bare number is milliseconds) in
/// milliseconds.
pub(super) fn haproxy_ms(s: &str) -> Option<u64> {
    parse_units(s, 1)
}

/// `1m30s`-style text; a bare number is in units of `bare_ms`.
fn parse_units(s: &str, bare_ms: u64) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok()?.checked_mul(bare_ms);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "us" => {
                // Sub-millisecond: round up so a timeout never becomes zero.
                rest = &rest[unit_len..];
                total = total.checked_add(n.div_ceil(1000))?;
                continue;
            }
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// Milliseconds as a cutover duration string, in the largest exact unit.
pub(super) fn duration(ms: u64) -> String {
    if ms == 0 {
        "0ms".into()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// nginx size (`8k`, `1m`, `4096`) in bytes.
pub(super) fn nginx_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A backend or listen address as `host:port`, adding `default_port` when
/// there is none. `None` for what cutover cannot dial (unix sockets) or
/// cannot read.
pub(super) fn host_port(addr: &str, default_port: u16) -> Option<String> {
    let addr = addr.trim();
    if addr.is_empty() || addr.starts_with("unix:") || addr.starts_with('/') {
        return None;
    }
    if let Some(rest) = addr.strip_prefix('[') {
        // [v6] or [v6]:port
        let end = rest.find(']')?;
        let host = &rest[..end];
        let port = match &rest[end + 1..] {
            "" => default_port,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some(format!("[{host}]:{port}"));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port: u16 = port.parse().ok()?;
            let host = if host.is_empty() || host == "*" {
                "0.0.0.0"
            } else {
                host
            };
            Some(format!("{host}:{port}"))
        }
        Some(_) => None,
        None if addr.bytes().all(|b| b.is_ascii_digit()) => {
            let port: u16 = addr.parse().ok()?;
            Some(format!("0.0.0.0:{port}"))
        }
        None => Some(format!("{addr}:{default_port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(nginx_ms("60"), Some(60_000));
        assert_eq!(nginx_ms("1m30s"), Some(90_000));
        assert_eq!(nginx_ms("500ms"), Some(500));
        assert_eq!(nginx_ms("2h"), Some(7_200_000));
        assert_eq!(nginx_ms("5x"), None);
        assert_eq!(nginx_ms(""), None);
        assert_eq!(haproxy_ms("5000"), Some(5000));
        assert_eq!(haproxy_ms("5s"), Some(5000));
        assert_eq!(haproxy_ms("100us"), Some(1));
        assert_eq!(duration(90_000), "90s");
        assert_eq!(duration(120_000), "2m");
        assert_eq!(duration(1500), "1500ms");
    }

    #[test]
    fn sizes_and_addresses() {
        assert_eq!(nginx_size("8k"), Some(8192));
        assert_eq!(nginx_size("1M"), Some(1 << 20));
        assert_eq!(host_port("10.0.0.1", 80).as_deref(), Some("10.0.0.1:80"));
        assert_eq!(host_port("*:8080", 80).as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(host_port("443", 80).as_deref(), Some("0.0.0.0:443"));
        assert_eq!(host_port("[::1]:8443", 80).as_deref(), Some("[::1]:8443"));
        assert_eq!(
            host_port("api.internal", 443).as_deref(),
            Some("api.internal:443")
        );
        assert_eq!(host_port("unix:/run/app.sock", 80), None);
        assert_eq!(host_port("::1", 80), None);
    }
}
