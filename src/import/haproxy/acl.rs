//! HAProxy ACLs and `if` conditions, as the route matches cutover has:
//! host (exact, `*.suffix`, `prefix.*`), path prefix, methods, exact
//! header values, and a header's `crc32,mod(M)` range for a split.

use super::parse::Line;
use std::collections::HashMap;

/// A part of a request a condition picks: one alternative of an ACL.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Frag {
    /// Host pattern.
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Methods (any of them).
    pub methods: Vec<String>,
    /// Header name → exact value.
    pub headers: Vec<(String, String)>,
    /// `hdr(H),crc32,mod(M)` in `[lo, hi)`.
    pub hash: Option<Hash>,
}

/// A header hashed into `modulo` buckets, and the range of them taken.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hash {
    /// The header (lowercase).
    pub header: String,
    /// M of `mod(M)`.
    pub modulo: u64,
    /// First bucket taken.
    pub lo: u64,
    /// One past the last bucket taken.
    pub hi: u64,
}

/// Named ACLs: each is a list of alternatives (any may match), or why it
/// cannot be converted.
pub(super) type Acls = HashMap<String, Result<Vec<Frag>, String>>;

/// Read `acl NAME criterion [flags] values…` into `acls` (a second line
/// with the same name adds alternatives, as in HAProxy). Returns a note on
/// any difference.
pub(super) fn acl_line(acls: &mut Acls, line: &Line) -> Result<Option<String>, String> {
    let name = line.word(1).to_string();
    let parsed = criterion(line.rest(2));
    let note = parsed.as_ref().ok().and_then(|(_, n)| n.clone());
    let entry = acls.entry(name).or_insert_with(|| Ok(Vec::new()));
    match (entry.as_mut(), parsed) {
        (Ok(list), Ok((frags, _))) => list.extend(frags),
        (Ok(_), Err(e)) => *entry = Err(e.clone()),
        (Err(_), _) => {}
    }
    match entry {
        Ok(_) => Ok(note),
        Err(e) => Err(e.clone()),
    }
}

/// One criterion with its flags and values.
pub(super) fn criterion(words: &[String]) -> Result<(Vec<Frag>, Option<String>), String> {
    let Some(fetch) = words.first() else {
        return Err("an ACL without a criterion".into());
    };
    let mut match_kind = None;
    let mut nocase = false;
    let mut values = Vec::new();
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-i" => nocase = true,
            "-m" => {
                i += 1;
                match_kind = words.get(i).cloned();
            }
            "-f" => return Err("values from a file (-f) are not converted".into()),
            "--" => {}
            v => values.push(v.to_string()),
        }
        i += 1;
    }
    let fetch = fetch.strip_prefix("req.").unwrap_or(fetch);
    if let Some(h) = hash_fetch(fetch) {
        return hash(h, &values).map(|f| (f, None));
    }
    let (base, arg) = match fetch.split_once('(') {
        Some((b, a)) => (b, a.trim_end_matches(')').to_ascii_lowercase()),
        None => (fetch, String::new()),
    };
    let kind = match (base, match_kind.as_deref()) {
        ("hdr" | "fhdr", Some("beg")) | ("hdr_beg", _) => "beg",
        ("hdr" | "fhdr", Some("end")) | ("hdr_end", _) => "end",
        ("hdr" | "fhdr", None | Some("str")) => "str",
        ("path", Some("beg")) | ("path_beg", _) => "path_beg",
        ("method", _) => "method",
        (other, _) => return Err(format!("the criterion {other} is not converted")),
    };
    let frag = |f: Frag| f;
    let out: Result<Vec<Frag>, String> = match kind {
        "path_beg" => Ok(values
            .iter()
            .map(|v| {
                frag(Frag {
                    path_prefix: Some(v.clone()),
                    ..Frag::default()
                })
            })
            .collect()),
        "method" => Ok(vec![Frag {
            methods: values.iter().map(|m| m.to_ascii_uppercase()).collect(),
            ..Frag::default()
        }]),
        // cutover matches the host without its port.
        _ if arg == "host" => values
            .iter()
            .map(|v| host_frag(kind, without_port(v)))
            .collect(),
        "str" => Ok(values
            .iter()
            .map(|v| Frag {
                headers: vec![(arg.clone(), v.clone())],
                ..Frag::default()
            })
            .collect()),
        _ => Err(format!(
            "a header {kind} match on {arg}: cutover matches other headers exactly"
        )),
    };
    let ported = arg == "host"
        && values
            .iter()
            .any(|v| crate::route::strip_port(v) != v.as_str());
    let note = if ported {
        Some(
            "the port is left out: cutover matches the host whatever port the client named"
                .to_string(),
        )
    } else {
        (nocase && kind == "str" && arg != "host").then(|| {
            "header values compare exactly in cutover (-i ignores case in HAProxy)".to_string()
        })
    };
    out.map(|f| (f, note))
}

/// A Host value without its `:port`.
fn without_port(v: &str) -> &str {
    match v.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            h
        }
        _ => v,
    }
}

fn host_frag(kind: &str, v: &str) -> Result<Frag, String> {
    let v = v.to_ascii_lowercase();
    let host = match kind {
        "str" => v,
        "beg" if v.ends_with('.') => format!("{v}*"),
        "end" if v.starts_with('.') => format!("*{v}"),
        _ => {
            return Err(format!(
                "host {kind} {v:?}: cutover matches whole labels (\"api.\" or \".example.com\")"
            ))
        }
    };
    Ok(Frag {
        host: Some(host),
        ..Frag::default()
    })
}

/// `hdr(H),crc32[(seed)],mod(M)` → (H, M).
fn hash_fetch(fetch: &str) -> Option<(String, u64)> {
    let mut parts = fetch.split(',');
    let first = parts.next()?;
    let header = first
        .strip_prefix("hdr(")?
        .strip_suffix(')')?
        .to_ascii_lowercase();
    let conv = parts.next()?;
    if conv != "crc32" && !conv.starts_with("crc32(") {
        return None;
    }
    let modulo: u64 = parts
        .next()?
        .strip_prefix("mod(")?
        .strip_suffix(')')?
        .parse()
        .ok()?;
    // mod(0) is no range at all.
    (parts.next().is_none() && modulo > 0).then_some((header, modulo))
}

fn hash((header, modulo): (String, u64), values: &[String]) -> Result<Vec<Frag>, String> {
    let (op, n) = match values {
        [op, n] => (
            op.as_str(),
            n.parse::<u64>()
                .map_err(|_| format!("{n:?} is not a number"))?,
        ),
        [n] => (
            "eq",
            n.parse::<u64>()
                .map_err(|_| format!("{n:?} is not a number"))?,
        ),
        _ => return Err("a hash range needs one operator and a number".into()),
    };
    let (lo, hi) = match op {
        "lt" => (0, n),
        "le" => (0, n.saturating_add(1)),
        "gt" => (n.saturating_add(1), modulo),
        "ge" => (n, modulo),
        "eq" => (n, n.saturating_add(1)),
        other => return Err(format!("the operator {other} is not converted")),
    };
    Ok(vec![Frag {
        hash: Some(Hash {
            header,
            modulo,
            lo: lo.min(modulo),
            hi: hi.min(modulo),
        }),
        ..Frag::default()
    }])
}

/// AND two fragments; `None` when no request can match both.
/// Whether every host `narrow` matches, `wide` matches too.
fn host_within(narrow: &str, wide: &str) -> bool {
    if narrow == wide {
        return true;
    }
    match (wide.strip_prefix('*'), wide.strip_suffix('*')) {
        (Some(suffix), _) => narrow.ends_with(suffix) && !narrow.starts_with('*'),
        (_, Some(prefix)) => narrow.starts_with(prefix) && !narrow.ends_with('*'),
        _ => false,
    }
}

fn and(a: &Frag, b: &Frag) -> Option<Frag> {
    let host = match (&a.host, &b.host) {
        (Some(x), Some(y)) if host_within(x, y) => Some(x.clone()),
        (Some(x), Some(y)) if host_within(y, x) => Some(y.clone()),
        (Some(_), Some(_)) => return None,
        (x, y) => x.clone().or(y.clone()),
    };
    let path_prefix = match (&a.path_prefix, &b.path_prefix) {
        (Some(x), Some(y)) if x.starts_with(y.as_str()) => Some(x.clone()),
        (Some(x), Some(y)) if y.starts_with(x.as_str()) => Some(y.clone()),
        (Some(_), Some(_)) => return None,
        (x, y) => x.clone().or(y.clone()),
    };
    let methods = match (a.methods.is_empty(), b.methods.is_empty()) {
        (true, _) => b.methods.clone(),
        (_, true) => a.methods.clone(),
        _ => {
            let both: Vec<String> = a
                .methods
                .iter()
                .filter(|m| b.methods.contains(m))
                .cloned()
                .collect();
            if both.is_empty() {
                return None;
            }
            both
        }
    };
    let hash = match (&a.hash, &b.hash) {
        (Some(_), Some(_)) => return None,
        (x, y) => x.clone().or(y.clone()),
    };
    let mut headers = a.headers.clone();
    headers.extend(b.headers.iter().cloned());
    Some(Frag {
        host,
        path_prefix,
        methods,
        headers,
        hash,
    })
}

/// `if|unless COND…` → the alternatives it allows (OR of ANDs).
pub(super) fn condition(acls: &Acls, words: &[String]) -> Result<Vec<Frag>, String> {
    match words.first().map(String::as_str) {
        Some("if") => {}
        Some("unless") => {
            return Err("`unless`: cutover cannot match the opposite of a condition".into())
        }
        None => return Ok(vec![Frag::default()]),
        Some(other) => return Err(format!("{other:?}: expected if")),
    }
    let mut out = Vec::new();
    let mut group = vec![Frag::default()];
    let mut i = 1;
    while i < words.len() {
        let w = &words[i];
        let term: Vec<Frag> = match w.as_str() {
            "||" | "or" => {
                out.append(&mut group);
                group = vec![Frag::default()];
                i += 1;
                continue;
            }
            "{" => {
                let end = words[i..].iter().position(|x| x == "}").map(|p| p + i);
                let Some(end) = end else {
                    return Err("an anonymous ACL without `}`".into());
                };
                let (frags, _) = criterion(&words[i + 1..end])?;
                i = end + 1;
                group = cross(&group, &frags);
                continue;
            }
            w if w.starts_with('!') => {
                return Err(format!(
                    "{w}: cutover cannot match the opposite of a condition"
                ))
            }
            w => match acls.get(w) {
                Some(Ok(f)) => f.clone(),
                Some(Err(e)) => return Err(format!("acl {w}: {e}")),
                None => return Err(format!("acl {w} is not defined")),
            },
        };
        group = cross(&group, &term);
        i += 1;
    }
    out.append(&mut group);
    Ok(out)
}

fn cross(group: &[Frag], term: &[Frag]) -> Vec<Frag> {
    group
        .iter()
        .flat_map(|g| term.iter().filter_map(move |t| and(g, t)))
        .collect()
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
