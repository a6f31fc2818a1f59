//! Comparing a primary answer with its mirror's (issue 18's core, pure):
//! status, then headers (minus ignored ones, framing and learned noise),
//! then the body — byte-equal, or JSON-equal ignoring listed paths and
//! learned noise when both bodies are JSON. The first difference is named
//! (the header, or the JSON path), so an operator can see what differs.
//!
//! Noise is learned Diffy-style: two answers of the *primary* pool to the
//! same request should agree; whatever differs between them (a timestamp,
//! a request id) is noise and is not counted against the mirror.

use serde_json::Value;
use std::collections::BTreeSet;

/// A finished answer, as far as comparing goes.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// Header (lowercase name, value) pairs, in order.
    pub headers: &'a [(String, String)],
    /// The whole body.
    pub body: &'a [u8],
}

impl Answer<'_> {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Option<Value> {
        let ct = self.header("content-type");
        let says_json = ct.iter().any(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/json") || v.contains("+json")
        });
        if !says_json {
            return None;
        }
        serde_json::from_slice(self.body).ok()
    }
}

/// What differs, the first thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The statuses differ.
    Status {
        /// The primary's.
        primary: u16,
        /// The mirror's.
        mirror: u16,
    },
    /// A header differs (or is on one side only).
    Header {
        /// Its name.
        name: String,
    },
    /// The bodies differ: at a JSON path, or as bytes.
    Body {
        /// The first differing JSON path, when both are JSON.
        path: Option<String>,
        /// The primary's size.
        primary_len: usize,
        /// The mirror's size.
        mirror_len: usize,
    },
}

impl Mismatch {
    /// `status`, `header` or `body`: the kind counted in the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Mismatch::Status { .. } => "status",
            Mismatch::Header { .. } => "header",
            Mismatch::Body { .. } => "body",
        }
    }
}

/// Headers never compared: framing and per-hop headers describe the
/// transfer, not the answer (the body is compared instead).
const FRAMING: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "date",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// What to leave out of a comparison: configured, and learned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ignore {
    /// Header names (lowercase).
    pub headers: BTreeSet<String>,
    /// JSON paths: `$.a.b`, `$.items[*].id`, `$.items[0]`.
    pub json: BTreeSet<String>,
}

impl Ignore {
    fn header(&self, name: &str) -> bool {
        FRAMING.contains(&name) || self.headers.contains(name)
    }

    fn path(&self, path: &str) -> bool {
        self.json.iter().any(|p| path_matches(p, path))
    }

    /// Learn noise from two primary answers to one request: every header
    /// and JSON field that differs between them is ignored from now on.
    /// Returns whether anything new was learned.
    pub fn learn(&mut self, a: &Answer<'_>, b: &Answer<'_>) -> bool {
        // Two answers that disagree on the status are not the same answer
        // told twice: nothing to learn from them.
        if a.status != b.status {
            return false;
        }
        let before = (self.headers.len(), self.json.len());
        let mut names: BTreeSet<&str> = a.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.extend(b.headers.iter().map(|(n, _)| n.as_str()));
        for n in names {
            if !self.header(n) && a.header(n) != b.header(n) {
                self.headers.insert(n.to_string());
            }
        }
        if let (Some(x), Some(y)) = (a.json(), b.json()) {
            let mut diffs = Vec::new();
            json_diffs(&x, &y, &mut String::from("$"), self, &mut diffs, 64);
            // The whole body is never noise: that would stop comparing it.
            for d in diffs.into_iter().filter(|d| d != "$") {
                self.json.insert(generalise(&d));
            }
        }
        (self.headers.len(), self.json.len()) != before
    }
}

/// Compare the mirror's answer with the primary's; `None` when they match.
pub fn compare(primary: &Answer<'_>, mirror: &Answer<'_>, ignore: &Ignore) -> Option<Mismatch> {
    if primary.status != mirror.status {
        return Some(Mismatch::Status {
            primary: primary.status,
            mirror: mirror.status,
        });
    }
    let mut names: BTreeSet<&str> = primary.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.extend(mirror.headers.iter().map(|(n, _)| n.as_str()));
    if let Some(n) = names
        .into_iter()
        .find(|n| !ignore.header(n) && primary.header(n) != mirror.header(n))
    {
        return Some(Mismatch::Header {
            name: n.to_string(),
        });
    }
    let body = |path| Mismatch::Body {
        path,
        primary_len: primary.body.len(),
        mirror_len: mirror.body.len(),
    };
    if primary.body == mirror.body {
        return None;
    }
    match (primary.json(), mirror.json()) {
        (Some(x), Some(y)) => {
            let mut diffs = Vec::new();
            json_diffs(&x, &y, &mut String::from("$"), ignore, &mut diffs, 1);
            diffs.into_iter().next().map(|p| body(Some(p)))
        }
        _ => Some(body(None)),
    }
}

/// Collect up to `max` paths where `a` and `b` differ, skipping ignored
/// ones; `path` is where `a` and `b` sit.
fn json_diffs(
    a: &Value,
    b: &Value,
    path: &mut String,
    ignore: &Ignore,
    out: &mut Vec<String>,
    max: usize,
) {
    if out.len() >= max || ignore.path(path) {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = path.len();
                push_key(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => json_diffs(u, v, path, ignore, out, max),
                    _ if ignore.path(path) => {}
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
                if out.len() >= max {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                json_diffs(u, v, path, ignore, out, max);
                path.truncate(len);
                if out.len() >= max {
                    return;
                }
            }
        }
        // 1 and 1.0 are the same number in JSON.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        (x, y) if x == y => {}
        _ => out.push(path.clone()),
    }
}

fn push_key(path: &mut String, k: &str) {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        path.push('.');
        path.push_str(k);
    } else {
        path.push_str(&format!("[{}]", serde_json::Value::String(k.to_string())));
    }
}

/// A concrete path with its array indices made `[*]`, so noise learned on
/// one element covers its siblings.
fn generalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(']') {
            Some(j) if after[..j].bytes().all(|b| b.is_ascii_digit()) && j > 0 => {
                out.push_str("[*]");
                rest = &after[j + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `path` is a JSON path as `ignore_json` takes them: `$`, then
/// `.name` and `[N]` / `[*]` segments.
pub fn valid_path(path: &str) -> bool {
    let Some(mut rest) = path.strip_prefix('$') else {
        return false;
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return false;
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return false;
            };
            let index = &after[..end];
            if !(index == "*" || (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))) {
                return false;
            }
            rest = &after[end + 1..];
        } else {
            return false;
        }
    }
    true
}

/// Whether `pattern` (with `[*]` for any index) names `path` or one of
/// its ancestors (ignoring `$.a` ignores everything under it).
fn path_matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut s) = (pattern.as_bytes(), path.as_bytes());
    loop {
        match (p.first(), s.first()) {
            (None, None) => return true,
            // An ancestor: the path goes on with a new segment.
            (None, Some(b'.' | b'[')) => return true,
            (None, _) => return false,
            (Some(_), None) => return false,
            (Some(b'['), Some(b'[')) if p.starts_with(b"[*]") => {
                let Some(end) = s.iter().position(|c| *c == b']') else {
                    return false;
                };
                p = &p[3..];
                s = &s[end + 1..];
            }
            (Some(a), Some(b)) if a == b => {
                p = &p[1..];
                s = &s[1..];
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
