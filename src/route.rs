//! Pure request matching: which route takes a request. No allocation on the
//! request path; hosts are compared case-insensitively without their port.
//! Headers are read through [`HeaderLookup`], so a request parsed by Pingora
//! (an `http::HeaderMap`) and one parsed in place by the fast path (a slice
//! of `httparse` headers) match alike.

use crate::config::{HostPattern, RouteMatch};
use http::{HeaderMap, Method};

/// Read access to a request's headers, whatever holds them.
pub trait HeaderLookup: Sync {
    /// Call `f` with each value of header `name` (lowercase) in order until
    /// it returns `true`; returns whether it did.
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;

    /// Call `f` with the first value of header `name` (lowercase), if any.
    fn first_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.any_value(name, &mut |v| {
            f(v);
            true
        });
    }
}

impl HeaderLookup for HeaderMap {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.get_all(name).iter().any(|v| f(v.as_bytes()))
    }
}

impl HeaderLookup for &[httparse::Header<'_>] {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| f(h.value))
    }
}

/// The parts of a request a route can match on.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method.
    pub method: &'a Method,
    /// `Host` header or URI authority, possibly with a port.
    pub host: Option<&'a str>,
    /// URI path.
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a dyn HeaderLookup,
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
                HostPattern::Prefix(start) => {
                    host.len() > start.len()
                        && host.is_char_boundary(start.len())
                        && host[..start.len()].eq_ignore_ascii_case(start)
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
        self.headers.iter().all(|(name, value)| {
            req.headers
                .any_value(name.as_str(), &mut |v| v == value.as_bytes())
        })
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
    fn prefix_hosts_match_on_the_first_labels() {
        let m = RouteMatch {
            host: Some(HostPattern::Prefix("api.".into())),
            ..Default::default()
        };
        let get = Method::GET;
        let h = HeaderMap::new();
        assert!(m.matches(&view(&get, Some("api.example.com"), "/", &h)));
        assert!(m.matches(&view(&get, Some("API.other.org:8080"), "/", &h)));
        assert!(!m.matches(&view(&get, Some("api"), "/", &h)));
        assert!(!m.matches(&view(&get, Some("api."), "/", &h)));
        assert!(!m.matches(&view(&get, Some("www.api.example.com"), "/", &h)));
    }

    #[test]
    fn parsed_headers_match_like_a_header_map() {
        let m = RouteMatch {
            headers: vec![(
                HeaderName::from_static("x-beta"),
                HeaderValue::from_static("1"),
            )],
            ..Default::default()
        };
        let parsed = [
            httparse::Header {
                name: "Host",
                value: b"a",
            },
            httparse::Header {
                name: "X-Beta",
                value: b"1",
            },
        ];
        let get = Method::GET;
        let with = RequestView {
            method: &get,
            host: Some("a"),
            path: "/",
            headers: &&parsed[..],
        };
        assert!(m.matches(&with));
        let without = RequestView {
            headers: &&parsed[..1],
            ..with
        };
        assert!(!m.matches(&without));
    }

    #[test]
    fn empty_match_takes_everything() {
        let m = RouteMatch::default();
        assert!(m.matches(&view(&Method::DELETE, None, "/", &HeaderMap::new())));
    }
}
