//! `cutover mirror diffs ROUTE`: a route's mirror figures and last
//! mismatches, from a running proxy's admin endpoint.

use serde_json::Value;

/// Fetch and print; returns the exit code.
pub(super) fn diffs(admin: &str, token: Option<&str>, route: &str, json: bool, last: usize) -> i32 {
    let path = format!("/routes/{route}/mirror");
    let value = match super::status::fetch_blocking(admin, &path, token) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cutover mirror diffs: {e}");
            return 1;
        }
    };
    super::status::print(&value, json, || render(&value, last));
    0
}

fn n(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn list(v: Option<&Value>) -> String {
    let items: Vec<&str> = v
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The answer of `GET /routes/{route}/mirror` in words, with the `last`
/// mismatches.
pub(super) fn render(v: &Value, last: usize) -> String {
    use std::fmt::Write;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?");
    let f = v.get("figures").cloned().unwrap_or(Value::Null);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "route {}: copies to pool {} ({} % of {}; bodies up to {} bytes; {} timeout)",
        s("route"),
        s("to"),
        v.get("percent").and_then(Value::as_f64).unwrap_or(0.0),
        list(v.get("methods")),
        n(v, &["max_body"]),
        s("timeout"),
    );
    let _ = writeln!(
        out,
        "mirrored {}  compared {}  matched {}  mismatched {} (status {}, header {}, body {})",
        n(&f, &["mirrored"]),
        n(&f, &["compared"]),
        n(&f, &["matched"]),
        n(&f, &["mismatched"]),
        n(&f, &["mismatched_by_kind", "status"]),
        n(&f, &["mismatched_by_kind", "header"]),
        n(&f, &["mismatched_by_kind", "body"]),
    );
    let _ = writeln!(
        out,
        "dropped {}  too large {}  mirror errors {}  noise samples {}",
        n(&f, &["dropped"]),
        n(&f, &["too_large"]),
        n(&f, &["errors"]),
        n(&f, &["noise_samples"]),
    );
    let noise = f.get("learned_noise");
    let _ = writeln!(
        out,
        "learned noise: headers {}; JSON {}",
        list(noise.and_then(|x| x.get("headers"))),
        list(noise.and_then(|x| x.get("json"))),
    );
    let diffs = v
        .get("mismatches")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if diffs.is_empty() {
        out.push_str("no mismatches\n");
        return out;
    }
    let _ = writeln!(
        out,
        "last {} of {} kept mismatches, newest first:",
        last.min(diffs.len()),
        diffs.len()
    );
    for d in diffs.iter().take(last) {
        let t = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
        let what = match t("kind") {
            "header" => format!("header {}", t("header")),
            "body" if !t("path").is_empty() => format!("body at {}", t("path")),
            "body" => "body bytes".to_string(),
            k => k.to_string(),
        };
        let _ = writeln!(
            out,
            "  {} {}  {what}  status {} vs {}  body {} vs {} bytes",
            t("method"),
            t("target"),
            n(d, &["primary_status"]),
            n(d, &["mirror_status"]),
            n(d, &["primary_bytes"]),
            n(d, &["mirror_bytes"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mismatches_in_words() {
        let v = json!({
            "route": "api", "to": "cloud", "percent": 5.0, "methods": ["GET", "HEAD"],
            "max_body": 65536, "timeout": "2s",
            "figures": { "mirrored": 10, "compared": 9, "matched": 7, "mismatched": 2,
                "mismatched_by_kind": { "status": 1, "header": 0, "body": 1 },
                "dropped": 0, "too_large": 1, "errors": 1, "noise_samples": 3,
                "learned_noise": { "headers": ["x-request-id"], "json": ["$.ts"] } },
            "mismatches": [
                { "method": "GET", "target": "/users/7", "kind": "body", "path": "$.email",
                  "primary_status": 200, "mirror_status": 200, "primary_bytes": 50, "mirror_bytes": 48 },
                { "method": "GET", "target": "/v2", "kind": "status", "path": null,
                  "primary_status": 200, "mirror_status": 404, "primary_bytes": 5, "mirror_bytes": 9 }
            ]
        });
        let text = render(&v, 1);
        assert!(text.contains("last 1 of 2 kept mismatches"), "{text}");
        assert!(!text.contains("/v2"), "only the last one: {text}");
        let text = render(&v, 10);
        assert!(
            text.contains("copies to pool cloud (5 % of GET, HEAD"),
            "{text}"
        );
        assert!(
            text.contains("mismatched 2 (status 1, header 0, body 1)"),
            "{text}"
        );
        assert!(
            text.contains("learned noise: headers x-request-id; JSON $.ts"),
            "{text}"
        );
        assert!(
            text.contains("GET /users/7  body at $.email  status 200 vs 200"),
            "{text}"
        );
        assert!(
            text.contains("GET /v2  status  status 200 vs 404"),
            "{text}"
        );
    }
}
