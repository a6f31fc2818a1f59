//! Pure request matching: which route takes a request. No allocation on the
//! request path; hosts are compared case-insensitively without their port.

use crate::config::{HostPattern, RouteMatch};
use http::{HeaderMap, Method};

/// The parts of a request a route can match on.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method.
    pub method: &'a Method,
    /// `Host` header or URI authority, possibly with a port.
    pub host: Option<&'a str>,
    /// URI path.
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// `host` without its port, and without a trailing dot.
pub fn strip_port(host: &str) -> &str {
    let h = if host.starts_with('[') {
        // [v6]:port
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    h.strip_suffix('.').unwrap_or(h)
}

impl RouteMatch {
    /// Whether `req` is taken by this route.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(pattern) = &self.host {
            let Some(host) = req.host.map(strip_port) else {
                return false;
            };
            let ok = match pattern {
                HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
                HostPattern::Wildcard(suffix) => {
                    host.len() > suffix.len()
                        && host.is_char_boundary(host.len() - suffix.len())
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                }
            };
            if !ok {
                return false;
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !req.path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if !self.methods.is_empty() && !self.methods.contains(req.method) {
            return false;
        }
        self.headers
            .iter()
            .all(|(name, value)| req.headers.get_all(name).iter().any(|v| v == value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn view<'a>(
        m: &'a Method,
        host: Option<&'a str>,
        path: &'a str,
        h: &'a HeaderMap,
    ) -> RequestView<'a> {
        RequestView {
            method: m,
            host,
            path,
            headers: h,
        }
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("api.example.com."), "api.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("host"), "host");
    }

    #[test]
    fn host_path_method_and_headers() {
        let m = RouteMatch {
            host: Some(HostPattern::Exact("api.example.com".into())),
            path_prefix: Some("/v1/".into()),
            methods: vec![Method::GET],
            headers: vec![(
                HeaderName::from_static("x-beta"),
                HeaderValue::from_static("1"),
            )],
        };
        let mut h = HeaderMap::new();
        h.insert("x-beta", HeaderValue::from_static("1"));
        let get = Method::GET;
        assert!(m.matches(&view(&get, Some("API.example.com:80"), "/v1/x", &h)));
        assert!(!m.matches(&view(&get, Some("other.com"), "/v1/x", &h)));
        assert!(!m.matches(&view(&get, None, "/v1/x", &h)));
        assert!(!m.matches(&view(&get, Some("api.example.com"), "/v2/x", &h)));
        assert!(!m.matches(&view(&Method::POST, Some("api.example.com"), "/v1/x", &h)));
        let empty = HeaderMap::new();
        assert!(!m.matches(&view(&get, Some("api.example.com"), "/v1/x", &empty)));
    }

    #[test]
    fn wildcard_hosts_match_subdomains_only() {
        let m = RouteMatch {
            host: Some(HostPattern::Wildcard(".example.com".into())),
            ..Default::default()
        };
        let get = Method::GET;
        let h = HeaderMap::new();
        assert!(m.matches(&view(&get, Some("a.example.com"), "/", &h)));
        assert!(m.matches(&view(&get, Some("a.b.Example.com:443"), "/", &h)));
        assert!(!m.matches(&view(&get, Some("example.com"), "/", &h)));
        assert!(!m.matches(&view(&get, Some("badexample.com"), "/", &h)));
    }

    #[test]
    fn empty_match_takes_everything() {
        let m = RouteMatch::default();
        assert!(m.matches(&view(&Method::DELETE, None, "/", &HeaderMap::new())));
    }
}
