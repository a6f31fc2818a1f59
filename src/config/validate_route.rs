//! Validation of `[[routes]]`: matching, split, failover, sticky, shift, gate.

use super::raw::*;
use super::validate::{valid_name, Validator};
use super::*;
use serde_spanned::Spanned;
use std::collections::HashSet;

impl Validator<'_> {
    pub(super) fn routes(
        &self,
        raw: Vec<Spanned<RawRoute>>,
        pools: &[PoolConfig],
        retry_buffer: usize,
    ) -> Result<Vec<RouteConfig>, ConfigError> {
        let mut names = HashSet::new();
        let mut routes = Vec::new();
        for (i, route) in raw.into_iter().enumerate() {
            let field = format!("routes[{i}]");
            let name = &route.get_ref().name;
            if !valid_name(name.get_ref()) {
                return Err(self.r.at(
                    name.span(),
                    format!("{field}.name"),
                    "route names may use letters, digits, '-', '_' and '.' only",
                ));
            }
            if !names.insert(name.get_ref().clone()) {
                return Err(self.r.at(
                    name.span(),
                    format!("{field}.name"),
                    format!("another route is already named {:?}", name.get_ref()),
                ));
            }
            routes.push(self.route(route, &field, pools, retry_buffer)?);
        }
        Ok(routes)
    }

    pub(super) fn pool_ref(
        &self,
        name: &SStr,
        field: &str,
        pools: &[PoolConfig],
    ) -> Result<usize, ConfigError> {
        pools
            .iter()
            .position(|p| &p.name == name.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                self.r.at(
                    name.span(),
                    field,
                    format!(
                        "unknown pool {:?} (defined pools: {})",
                        name.get_ref(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    fn route(
        &self,
        route: Spanned<RawRoute>,
        field: &str,
        pools: &[PoolConfig],
        retry_buffer: usize,
    ) -> Result<RouteConfig, ConfigError> {
        let route_span = route.span();
        let raw = route.into_inner();
        let matcher = match &raw.matcher {
            Some(m) => self.matcher(m.get_ref(), &format!("{field}.match"))?,
            None => RouteMatch::default(),
        };

        // Split, in file order.
        let split_field = format!("{field}.split");
        let mut entries: Vec<_> = raw.split.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        if entries.is_empty() {
            return Err(self.r.at(
                raw.split.span(),
                &split_field,
                "a route needs at least one pool in its split",
            ));
        }
        let mut split = Vec::new();
        for (name, weight) in entries {
            let pool = self.pool_ref(name, &split_field, pools)?;
            let w = *weight.get_ref();
            if !w.is_finite() || w < 0.0 {
                return Err(self.r.at(
                    weight.span(),
                    format!("{split_field}.{}", name.get_ref()),
                    format!("weight {w} is negative; weights must be 0 or more"),
                ));
            }
            split.push(SplitEntry { pool, weight: w });
        }
        if split.iter().all(|e| e.weight == 0.0) {
            return Err(self.r.at(
                raw.split.span(),
                &split_field,
                "every weight is zero; at least one pool must have a positive weight",
            ));
        }

        let mut failover = Vec::new();
        if let Some(list) = &raw.failover {
            for name in list.get_ref() {
                let span = self.span_or(name.span(), list.span());
                let named = Spanned::new(span, name.get_ref().clone());
                let pool = self.pool_ref(&named, &format!("{field}.failover"), pools)?;
                if split.iter().any(|e| e.pool == pool) || failover.contains(&pool) {
                    return Err(self.r.at(
                        named.span(),
                        format!("{field}.failover"),
                        format!(
                            "pool {:?} is already in the split or listed twice",
                            name.get_ref()
                        ),
                    ));
                }
                failover.push(pool);
            }
        }

        let sticky = raw
            .sticky
            .as_ref()
            .map(|s| self.sticky(s, &format!("{field}.sticky")))
            .transpose()?;
        let override_header = raw
            .override_header
            .as_ref()
            .map(|h| self.header_name(h, &format!("{field}.override_header")))
            .transpose()?;
        let shift = raw
            .shift
            .as_ref()
            .map(|s| self.shift(s, &format!("{field}.shift"), &split, pools))
            .transpose()?;
        let mirror = raw
            .mirror
            .as_ref()
            .map(|m| self.mirror(m, &format!("{field}.mirror"), &split, pools, retry_buffer))
            .transpose()?;
        let mirror_gate = shift
            .as_ref()
            .and_then(|s| s.gate.as_ref())
            .is_some_and(|g| g.max_mirror_mismatch.is_some());
        if mirror_gate && mirror.is_none() {
            let span = raw
                .shift
                .as_ref()
                .and_then(|s| s.get_ref().gate.as_ref())
                .and_then(|g| g.get_ref().max_mirror_mismatch.as_ref())
                .map_or(route_span, |v| v.span());
            return Err(self.r.at(
                span,
                format!("{field}.shift.gate.max_mirror_mismatch"),
                "needs a [routes.mirror] on the route: there are no comparisons to judge",
            ));
        }

        Ok(RouteConfig {
            name: raw.name.into_inner(),
            matcher,
            split,
            failover,
            sticky,
            override_header,
            shift,
            mirror,
        })
    }

    /// A list of HTTP methods (`["GET", "post"]`), upper-cased.
    pub(super) fn methods(
        &self,
        list: &Spanned<Vec<SStr>>,
        field: &str,
    ) -> Result<Vec<Method>, ConfigError> {
        list.get_ref()
            .iter()
            .map(|s| {
                let upper = s.get_ref().trim().to_ascii_uppercase();
                let valid = !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase());
                Method::from_bytes(upper.as_bytes())
                    .ok()
                    .filter(|_| valid)
                    .ok_or_else(|| {
                        self.r.at(
                            self.span_or(s.span(), list.span()),
                            field,
                            format!("{:?} is not an HTTP method", s.get_ref()),
                        )
                    })
            })
            .collect()
    }

    pub(super) fn header_name(&self, s: &SStr, field: &str) -> Result<HeaderName, ConfigError> {
        HeaderName::from_bytes(s.get_ref().trim().as_bytes()).map_err(|_| {
            self.r.at(
                s.span(),
                field,
                format!("{:?} is not a valid header name", s.get_ref()),
            )
        })
    }

    fn matcher(&self, m: &RawMatch, field: &str) -> Result<RouteMatch, ConfigError> {
        let host = match &m.host {
            None => None,
            Some(h) => {
                let lower = h.get_ref().trim().to_ascii_lowercase();
                let (pattern, bare) = match (lower.strip_prefix("*."), lower.strip_suffix(".*")) {
                    (Some(rest), _) => {
                        (HostPattern::Wildcard(format!(".{rest}")), rest.to_string())
                    }
                    (None, Some(start)) => {
                        (HostPattern::Prefix(format!("{start}.")), start.to_string())
                    }
                    (None, None) => (HostPattern::Exact(lower.clone()), lower.clone()),
                };
                let ok = !bare.is_empty()
                    && bare
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                if !ok {
                    return Err(self.r.at(
                        h.span(),
                        format!("{field}.host"),
                        format!(
                            "{:?} is not a host name (without port; \"*.example.com\" for subdomains, \"api.*\" for a first label)",
                            h.get_ref()
                        ),
                    ));
                }
                Some(pattern)
            }
        };
        let path_prefix = match &m.path_prefix {
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(self.r.at(
                    p.span(),
                    format!("{field}.path_prefix"),
                    "must start with '/'",
                ))
            }
            Some(p) => Some(p.get_ref().clone()),
            None => None,
        };
        let methods = match &m.methods {
            Some(list) => self.methods(list, &format!("{field}.methods"))?,
            None => Vec::new(),
        };
        let mut headers = Vec::new();
        if let Some(map) = &m.headers {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            for (k, v) in entries {
                let name = self.header_name(k, &format!("{field}.headers"))?;
                let value = HeaderValue::from_str(v.get_ref()).map_err(|_| {
                    self.r.at(
                        v.span(),
                        format!("{field}.headers.{}", k.get_ref()),
                        "not a valid header value",
                    )
                })?;
                headers.push((name, value));
            }
        }
        Ok(RouteMatch {
            host,
            path_prefix,
            methods,
            headers,
        })
    }

    fn sticky(&self, s: &Spanned<RawSticky>, field: &str) -> Result<Sticky, ConfigError> {
        let raw = s.get_ref();
        let source_ip = raw.source_ip.unwrap_or(false);
        let chosen = [raw.header.is_some(), raw.cookie.is_some(), source_ip]
            .iter()
            .filter(|x| **x)
            .count();
        if chosen != 1 {
            return Err(self.r.at(
                s.span(),
                field,
                "give exactly one of header = \"…\", cookie = \"…\" or source_ip = true",
            ));
        }
        if let Some(h) = &raw.header {
            return Ok(Sticky::Header(
                self.header_name(h, &format!("{field}.header"))?,
            ));
        }
        if let Some(c) = &raw.cookie {
            let name = c.get_ref().trim();
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !ok {
                return Err(self.r.at(
                    c.span(),
                    format!("{field}.cookie"),
                    format!("{:?} is not a cookie name", c.get_ref()),
                ));
            }
            return Ok(Sticky::Cookie(name.to_string()));
        }
        Ok(Sticky::SourceIp)
    }
}
