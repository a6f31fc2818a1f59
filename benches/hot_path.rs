//! Micro-benchmarks of the per-request steps: what cutover decides for each
//! request (route, split, pick, sticky, snapshot, metrics, log line), and the
//! fast path's own HTTP/1 work (parse the request head and write the upstream
//! one; parse the response head and write the client's). Each bench names the
//! step it measures; together they bound cutover's user-space cost per
//! request (a few microseconds against the ≈30 µs of CPU, mostly the kernel's,
//! that proxying a request takes). Run with
//! `cargo bench --bench hot_path`; `scripts/bench.sh` runs the load
//! comparison against nginx and HAProxy.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use cutover::access_log::{format, Entry};
use cutover::config::Config;
use cutover::control::Control;
use cutover::request::select::{choose_pool, next_backend, Tried};
use cutover::route::RequestView;
use cutover::split::{sequence_bucket, sticky_bucket};
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const CONFIG: &str = r#"
[admin]
listen = "127.0.0.1:0"
[pools.onprem]
backends = ["10.0.0.11:80", "10.0.0.12:80", { addr = "10.0.0.13:80", weight = 2 }]
[pools.cloud]
backends = ["10.1.0.21:80", "10.1.0.22:80"]
[[routes]]
name = "static"
match = { path_prefix = "/static/" }
split = { onprem = 100 }
[[routes]]
name = "admin"
match = { host = "admin.example.com" }
split = { onprem = 100 }
[[routes]]
name = "beta"
match = { host = "api.example.com", headers = { "x-beta" = "1" } }
split = { cloud = 100 }
[[routes]]
name = "api"
match = { host = "api.example.com", path_prefix = "/v1/", methods = ["GET", "POST"] }
split = { onprem = 75, cloud = 25 }
sticky = { header = "X-User-Id" }
[routes.shift]
to = "cloud"
steps = [25, 50, 100]
hold = "1h"
"#;

fn control() -> std::sync::Arc<Control> {
    let cfg =
        Config::from_str_named(CONFIG, std::path::Path::new("bench.toml")).expect("bench config");
    Control::new(cfg).expect("control")
}

fn benches(c: &mut Criterion) {
    let control = control();
    let snap = control.snapshot();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.example.com"));
    headers.insert("x-user-id", HeaderValue::from_static("user-4711"));
    let method = Method::GET;
    let view = RequestView {
        method: &method,
        host: Some("api.example.com"),
        path: "/v1/orders/42",
        headers: &headers,
    };

    // Snapshot: the one ArcSwap load a request makes (an Arc clone).
    c.bench_function("snapshot load", |b| {
        b.iter(|| black_box(control.snapshot()))
    });

    // Route match: the 4th of 4 routes matches (host, path, method).
    c.bench_function("route match (4 routes)", |b| {
        b.iter(|| {
            black_box(
                snap.routes
                    .iter()
                    .position(|r| r.matcher.matches(black_box(&view))),
            )
        })
    });

    let route = &snap.routes[3];
    let now = cutover::clock::now_ms();
    // Pool choice without a sticky key: one atomic add and a bucket lookup.
    c.bench_function("pool pick (sequence)", |b| {
        b.iter(|| {
            let bucket = sequence_bucket(route.seq.fetch_add(1, Relaxed));
            black_box(choose_pool(route, &snap.pools, bucket, None, now))
        })
    });
    // Pool choice with a sticky key: hash the key, then the bucket lookup.
    c.bench_function("pool pick (sticky header)", |b| {
        b.iter(|| {
            let bucket = sticky_bucket(black_box(b"user-4711"));
            black_box(choose_pool(route, &snap.pools, bucket, None, now))
        })
    });
    c.bench_function("sticky bucket (9-byte key)", |b| {
        b.iter(|| black_box(sticky_bucket(black_box(b"user-4711"))))
    });
    // Backend choice: weighted round robin over available backends.
    let tried = Tried::default();
    c.bench_function("backend pick (3 weighted backends)", |b| {
        b.iter(|| black_box(next_backend(&snap, route, 0, &tried, now)))
    });
    // Recording a finished request: counter + histogram.
    let m = route.metrics[0].clone();
    c.bench_function("metrics record", |b| {
        b.iter(|| m.observe(black_box(200), black_box(0.0042)))
    });
    // Recording an attempt in the shift gate's window.
    let w = route.windows[0].clone();
    c.bench_function("gate window record", |b| {
        b.iter(|| w.record(black_box(now), false, Duration::from_micros(4200)))
    });
    // Formatting an access log line (only with `[log] access` on).
    let entry = Entry {
        client: Some("203.0.113.7:51234".parse().expect("addr")),
        method: "GET",
        host: "api.example.com",
        path: "/v1/orders/42?expand=items",
        status: 200,
        route: "api",
        pool: "cloud",
        backend: "10.1.0.21:80",
        attempts: 1,
        upstream_ms: Some(3),
        total_ms: 3.42,
        bytes: 5120,
    };
    let t = std::time::SystemTime::now();
    c.bench_function("access log line format", |b| {
        b.iter(|| black_box(format(black_box(&entry), t)))
    });
    fast_path(c);
}

/// The fast path's HTTP/1 work, against a browser-sized request head and a
/// typical API response head.
fn fast_path(c: &mut Criterion) {
    use cutover::fast::{request, response};
    let req = b"GET /v1/orders/42?expand=items HTTP/1.1\r\nHost: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\nAccept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, br\r\n\
X-User-Id: u-81723\r\nCookie: session=abc123; theme=dark\r\nConnection: keep-alive\r\n\r\n";
    let client_ip = Some("203.0.113.7".parse().expect("ip"));
    let mut out = Vec::with_capacity(1024);
    c.bench_function("fast path: parse request head, write upstream head", |b| {
        b.iter(|| {
            let mut storage = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
            let head = request::parse(black_box(req), &mut storage, request::MAX_BODY)
                .expect("a plain request");
            out.clear();
            request::write_upstream(&mut out, &head, client_ip, false);
            black_box(out.len())
        })
    });
    let resp = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 05:00:00 GMT\r\n\
Content-Type: application/json\r\nContent-Length: 512\r\nConnection: keep-alive\r\n\
Cache-Control: no-store\r\nX-Request-Id: 9f1c2a\r\n\r\n";
    c.bench_function("fast path: parse response head, write client head", |b| {
        b.iter(|| {
            out.clear();
            let side = response::ClientSide::default();
            black_box(response::parse(black_box(resp), side, &mut out))
        })
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
