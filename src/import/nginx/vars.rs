//! Variables a `proxy_pass` can pick its upstream by: `split_clients`
//! (→ a weighted split, sticky on the hashed key) and `map` on a request
//! header (→ routes that match the header's values).

use super::parse::Directive;
use super::Ctx;
use crate::import::report::Verdict;

/// What a `$variable` holds.
#[derive(Debug, Clone)]
pub(crate) enum Var {
    /// `split_clients KEY $var { P% value; … * value; }`.
    Split {
        /// (percent, value).
        parts: Vec<(f64, String)>,
        /// `("header"|"cookie"|"source_ip", name)`, if the key is one.
        sticky: Option<(String, String)>,
        /// Where it was defined.
        origin: String,
    },
    /// `map $http_NAME $var { value result; default result; }`.
    Header {
        /// The request header (lowercase, dashes).
        header: String,
        /// (header value, result), in file order.
        cases: Vec<(String, String)>,
        /// The result when no case matches.
        default: Option<String>,
        /// Where it was defined.
        origin: String,
    },
}

/// The sticky key a hash input names: `$remote_addr`, `$http_x_user`,
/// `$cookie_session`. Several variables hashed together cannot be one key;
/// the first is used and the caller is told.
fn sticky_key(input: &str) -> (Option<(String, String)>, usize) {
    let mut keys = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let len = body
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &body[..len];
        rest = &body[len..];
        if braced {
            rest = rest.strip_prefix('}').unwrap_or(rest);
        }
        keys.push(name.to_string());
    }
    let n = keys.len();
    let first = keys.first().and_then(|k| {
        if k == "remote_addr" || k == "binary_remote_addr" {
            Some(("source_ip".to_string(), String::new()))
        } else if let Some(h) = k.strip_prefix("http_") {
            Some(("header".to_string(), h.replace('_', "-")))
        } else {
            k.strip_prefix("cookie_")
                .map(|c| ("cookie".to_string(), c.to_string()))
        }
    });
    (first, n)
}

/// `split_clients "KEY" $var { … }`.
pub(super) fn split_clients(cx: &mut Ctx, d: &Directive) {
    let (Some(input), Some(var)) = (d.args.first(), d.args.get(1)) else {
        cx.mark(
            d,
            Verdict::Blocking,
            "split_clients needs a key and a variable",
        );
        return;
    };
    let mut parts = Vec::new();
    let mut total = 0.0;
    let mut star = None;
    for c in d.children() {
        let value = c.args.first().cloned().unwrap_or_default();
        if c.name == "*" {
            star = Some(value);
        } else if let Some(p) = c.name.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()) {
            total += p;
            parts.push((p, value));
        } else {
            cx.mark(c, Verdict::Blocking, "not a percentage");
            continue;
        }
        cx.mark(c, Verdict::Converted, "");
    }
    if let Some(v) = star {
        parts.push(((100.0 - total).max(0.0), v));
    }
    let (sticky, nkeys) = sticky_key(input);
    let mut note = String::from(
        "a weighted split; cutover hashes the key into its own buckets, so the shares are the same but not which users fall in which pool",
    );
    match (&sticky, nkeys) {
        (Some((kind, name)), 1) => note.push_str(&format!("; sticky on {kind} {name}")),
        (Some((kind, name)), _) => note.push_str(&format!(
            "; the key hashes {nkeys} variables, cutover's sticky key is one: {kind} {name}"
        )),
        (None, 0) => {
            note.push_str("; the key is constant: every request falls in one part under nginx")
        }
        (None, _) => note.push_str("; the key is not a header, cookie or address: not sticky"),
    }
    cx.mark(d, Verdict::Different, note);
    cx.vars.insert(
        var.clone(),
        Var::Split {
            parts,
            sticky,
            origin: Ctx::origin(d),
        },
    );
}

/// `map $http_NAME $var { … }`.
pub(super) fn map(cx: &mut Ctx, d: &Directive) {
    let (Some(source), Some(var)) = (d.args.first(), d.args.get(1)) else {
        cx.mark(d, Verdict::Blocking, "map needs a source and a variable");
        return;
    };
    let Some(header) = source.strip_prefix("$http_") else {
        // A map on anything else is fine as long as no proxy_pass uses
        // it; one that does is reported there.
        cx.mark(
            d,
            Verdict::Unsupported,
            "cutover can route on request headers only; not converted",
        );
        return;
    };
    let header = header.replace('_', "-");
    let mut cases = Vec::new();
    let mut default = None;
    for c in d.children() {
        let result = c.args.first().cloned().unwrap_or_default();
        match c.name.as_str() {
            "default" => {
                default = Some(result);
                cx.mark(c, Verdict::Converted, "");
            }
            "hostnames" | "volatile" => cx.mark(c, Verdict::Ignored, ""),
            n if n.starts_with('~') => cx.mark(
                c,
                Verdict::Blocking,
                "a regular expression: cutover matches header values exactly",
            ),
            n => {
                let value = n.strip_prefix('\\').unwrap_or(n).to_string();
                cases.push((value, result));
                cx.mark(
                    c,
                    Verdict::Different,
                    "matched exactly (nginx ignores case)",
                );
            }
        }
    }
    cx.mark(d, Verdict::Converted, format!("routes on header {header}"));
    cx.vars.insert(
        var.clone(),
        Var::Header {
            header,
            cases,
            default,
            origin: Ctx::origin(d),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_keys_from_hash_inputs() {
        let k = |s: &str| sticky_key(s);
        assert_eq!(
            k("${remote_addr}AAA").0,
            Some(("source_ip".into(), String::new()))
        );
        assert_eq!(
            k("$http_x_user_id").0,
            Some(("header".into(), "x-user-id".into()))
        );
        assert_eq!(
            k("${cookie_session}salt").0,
            Some(("cookie".into(), "session".into()))
        );
        assert_eq!(k("$request_id").0, None);
        assert_eq!(k("${remote_addr}${http_user_agent}").1, 2);
        assert_eq!(k("constant").1, 0);
    }
}
