//! Directives that become one of cutover's `[proxy]` settings (timeouts,
//! retries, header limits), and the request headers nginx sets that
//! cutover sets alike.

use super::parse::Directive;
use super::Ctx;
use crate::import::report::Verdict;
use crate::import::units;

/// The directives that set one of cutover's `[proxy]` settings, which
/// apply to every route.
const GLOBAL: &[&str] = &[
    "proxy_connect_timeout",
    "proxy_read_timeout",
    "client_header_timeout",
    "client_body_timeout",
    "send_timeout",
    "keepalive_timeout",
    "large_client_header_buffers",
    "underscores_in_headers",
    "proxy_next_upstream",
    "proxy_next_upstream_tries",
];

/// Convert `d` if it is a setting; anything else is left for others.
/// `narrow`: it sits in a `server` or `location`, where nginx applies it
/// to that block only.
pub(super) fn setting(cx: &mut Ctx, d: &Directive, narrow: bool) {
    convert(cx, d);
    if narrow && GLOBAL.contains(&d.name.as_str()) {
        cx.mark(
            d,
            Verdict::Different,
            "set for one server or location only; cutover's [proxy] setting applies to every route",
        );
    }
}

fn convert(cx: &mut Ctx, d: &Directive) {
    let arg = d.args.first().map(String::as_str).unwrap_or("");
    let timeout = |key: &'static str| (key, units::nginx_ms(arg));
    let (key, ms) = match d.name.as_str() {
        "proxy_connect_timeout" => timeout("connect_timeout"),
        "proxy_read_timeout" => timeout("read_timeout"),
        "client_header_timeout" => timeout("header_timeout"),
        "client_body_timeout" => timeout("body_timeout"),
        "send_timeout" => timeout("send_timeout"),
        "keepalive_timeout" => timeout("idle_timeout"),
        "large_client_header_buffers" => return header_buffers(cx, d),
        "underscores_in_headers" => {
            let on = arg == "on";
            return cx.global("underscores_in_headers", on.to_string(), d, "");
        }
        "proxy_next_upstream" => return next_upstream(cx, d),
        "proxy_next_upstream_tries" => return tries(cx, d),
        "proxy_set_header" => return set_header(cx, d),
        _ => return,
    };
    match ms {
        Some(0) if key == "idle_timeout" => cx.mark(
            d,
            Verdict::Unsupported,
            "keepalive_timeout 0 turns keep-alive off; cutover always allows it",
        ),
        Some(0) => cx.mark(
            d,
            Verdict::Unsupported,
            "a zero timeout; cutover's default is kept",
        ),
        Some(ms) => cx.global(key, crate::import::model::q(&units::duration(ms)), d, ""),
        None => cx.mark(
            d,
            Verdict::Unsupported,
            format!("{arg:?} is not a time nginx accepts"),
        ),
    }
}

fn header_buffers(cx: &mut Ctx, d: &Directive) {
    let n = d.args.first().and_then(|n| n.parse::<u64>().ok());
    let size = d.args.get(1).and_then(|s| units::nginx_size(s));
    match (n, size) {
        (Some(n), Some(size)) => {
            cx.global(
                "max_header_bytes",
                n.saturating_mul(size).to_string(),
                d,
                "",
            );
            cx.mark(
                d,
                Verdict::Different,
                "cutover bounds the whole request head to number × size; nginx also bounds each line to one buffer",
            );
        }
        _ => cx.mark(d, Verdict::Unsupported, "cannot read its number and size"),
    }
}

fn next_upstream(cx: &mut Ctx, d: &Directive) {
    if d.args.iter().any(|a| a == "off") {
        return cx.global("retries", "0".into(), d, "no retries");
    }
    let answers: Vec<&str> = d
        .args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("http_") || *a == "non_idempotent")
        .collect();
    if answers.is_empty() {
        cx.mark(
            d,
            Verdict::Converted,
            "cutover retries a failed connection or timeout on another backend",
        );
    } else {
        cx.mark(
            d,
            Verdict::Different,
            format!(
                "cutover retries failed connections only, never on an answer and never a non-idempotent request once its body went: {} not converted",
                answers.join(" ")
            ),
        );
    }
}

fn tries(cx: &mut Ctx, d: &Directive) {
    match d.args.first().and_then(|n| n.parse::<u64>().ok()) {
        Some(0) => cx.mark(
            d,
            Verdict::Different,
            "0 means every server in nginx; cutover's retries stay at their default (2)",
        ),
        Some(n) => cx.global(
            "retries",
            (n - 1).to_string(),
            d,
            "tries include the first attempt",
        ),
        None => cx.mark(d, Verdict::Unsupported, "not a number"),
    }
}

/// `proxy_set_header NAME VALUE`: the headers cutover sets itself are
/// converted; others are not added.
fn set_header(cx: &mut Ctx, d: &Directive) {
    let name = d
        .args
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    let value = d.args.get(1).map(String::as_str).unwrap_or("");
    let (verdict, note) = match (name.as_str(), value) {
        ("host", "$host" | "$http_host") => {
            (Verdict::Converted, "cutover passes the client's Host")
        }
        ("host", _) => (
            Verdict::Different,
            "cutover passes the client's Host unchanged",
        ),
        ("x-forwarded-for", "$proxy_add_x_forwarded_for") => (
            Verdict::Converted,
            "cutover appends the client address to X-Forwarded-For",
        ),
        ("x-forwarded-for", _) => (
            Verdict::Different,
            "cutover appends the client address to X-Forwarded-For",
        ),
        ("x-forwarded-proto", "$scheme") | ("x-forwarded-host", "$host" | "$http_host") => {
            (Verdict::Converted, "cutover sets it")
        }
        ("connection", _) | ("upgrade", _) => (
            Verdict::Converted,
            "cutover handles Connection and Upgrade itself (WebSocket included)",
        ),
        _ => (
            Verdict::Unsupported,
            "cutover does not add or change request headers",
        ),
    };
    cx.mark(d, verdict, note);
}
