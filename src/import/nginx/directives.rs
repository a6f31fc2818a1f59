//! The verdict for an nginx directive no converter spoke of, by its name:
//! what does not matter to a proxy in cutover's place, what changes
//! behaviour, and what changes where requests go.

use crate::import::report::Verdict;

/// Process, logging and buffering tuning: no effect on what a client gets
/// from which backend.
const IGNORED: &[&str] = &[
    "user",
    "worker_processes",
    "pid",
    "error_log",
    "worker_rlimit_nofile",
    "worker_connections",
    "multi_accept",
    "use",
    "accept_mutex",
    "accept_mutex_delay",
    "load_module",
    "daemon",
    "master_process",
    "pcre_jit",
    "env",
    "thread_pool",
    "worker_cpu_affinity",
    "worker_priority",
    "timer_resolution",
    "worker_shutdown_timeout",
    "events",
    "access_log",
    "log_format",
    "open_log_file_cache",
    "sendfile",
    "tcp_nopush",
    "tcp_nodelay",
    "types_hash_max_size",
    "types_hash_bucket_size",
    "server_names_hash_bucket_size",
    "server_names_hash_max_size",
    "variables_hash_max_size",
    "variables_hash_bucket_size",
    "map_hash_max_size",
    "map_hash_bucket_size",
    "types",
    "default_type",
    "server_tokens",
    "resolver",
    "resolver_timeout",
    "client_header_buffer_size",
    "client_body_buffer_size",
    "client_body_temp_path",
    "proxy_buffering",
    "proxy_buffers",
    "proxy_buffer_size",
    "proxy_busy_buffers_size",
    "proxy_temp_path",
    "proxy_max_temp_file_size",
    "proxy_temp_file_write_size",
    "proxy_request_buffering",
    "proxy_http_version",
    "proxy_headers_hash_max_size",
    "proxy_headers_hash_bucket_size",
    "proxy_socket_keepalive",
    "proxy_ssl_session_reuse",
    "open_file_cache",
    "open_file_cache_valid",
    "open_file_cache_min_uses",
    "open_file_cache_errors",
    "ssl_session_cache",
    "ssl_session_timeout",
    "ssl_session_tickets",
    "ssl_buffer_size",
    "ssl_stapling",
    "ssl_stapling_verify",
    "ssl_trusted_certificate",
    "keepalive_requests",
    "keepalive_time",
    "reset_timedout_connection",
    "lingering_close",
    "lingering_time",
    "lingering_timeout",
    "aio",
    "directio",
    "output_buffers",
    "postpone_output",
    "http2_max_concurrent_streams",
    "http2_recv_buffer_size",
    "http2_chunk_size",
    "charset",
    "source_charset",
    "server_name_in_redirect",
    "port_in_redirect",
    "absolute_redirect",
    "msie_padding",
    "log_not_found",
    "log_subrequest",
    "root",
    "index",
    "worker_aio_requests",
];

/// Behaviour that cutover does not reproduce, though requests reach the
/// same pool.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "gzip",
        "cutover does not compress answers; they go as the backend sends them",
    ),
    ("add_header", "cutover does not add response headers"),
    ("add_trailer", "cutover does not add response trailers"),
    ("expires", "cutover does not add caching headers"),
    ("limit_req", "cutover does not rate-limit"),
    ("limit_req_zone", "cutover does not rate-limit"),
    ("limit_req_status", "cutover does not rate-limit"),
    ("limit_conn", "cutover does not limit connections per key"),
    (
        "limit_conn_zone",
        "cutover does not limit connections per key",
    ),
    ("limit_rate", "cutover does not limit bandwidth"),
    (
        "client_max_body_size",
        "cutover sets no request body size limit",
    ),
    (
        "proxy_hide_header",
        "cutover passes response headers as they are (hop-by-hop ones excepted)",
    ),
    (
        "proxy_pass_header",
        "cutover passes response headers as they are",
    ),
    (
        "proxy_ignore_headers",
        "cutover passes response headers as they are",
    ),
    (
        "proxy_intercept_errors",
        "cutover passes the backend's error pages",
    ),
    (
        "error_page",
        "cutover passes the backend's error pages and makes its own for 4xx/5xx it answers",
    ),
    (
        "proxy_redirect",
        "cutover does not rewrite Location headers",
    ),
    ("proxy_cookie_domain", "cutover does not rewrite cookies"),
    ("proxy_cookie_path", "cutover does not rewrite cookies"),
    (
        "proxy_send_timeout",
        "cutover has no separate deadline for sending to a backend",
    ),
    (
        "proxy_next_upstream_timeout",
        "cutover bounds retries by count, not time",
    ),
    (
        "real_ip_header",
        "cutover takes the client address from the connection",
    ),
    (
        "set_real_ip_from",
        "cutover takes the client address from the connection",
    ),
    (
        "real_ip_recursive",
        "cutover takes the client address from the connection",
    ),
    ("ssl_protocols", "cutover speaks TLS 1.2 and 1.3 (rustls)"),
    ("ssl_ciphers", "cutover uses rustls's cipher suites"),
    (
        "ssl_prefer_server_ciphers",
        "cutover uses rustls's cipher suites",
    ),
    (
        "ssl_ecdh_curve",
        "cutover uses rustls's key exchange groups",
    ),
    (
        "ssl_dhparam",
        "cutover uses rustls's key exchange groups (no finite-field DH)",
    ),
    (
        "proxy_ssl_certificate",
        "cutover presents no client certificate to backends",
    ),
    (
        "proxy_ssl_certificate_key",
        "cutover presents no client certificate to backends",
    ),
    ("sub_filter", "cutover does not rewrite bodies"),
    ("chunked_transfer_encoding", "cutover frames answers itself"),
    ("etag", "cutover passes the backend's headers"),
    ("set", "variables are not converted"),
    ("proxy_cache", "cutover does not cache"),
    ("proxy_cache_path", "cutover does not cache"),
    ("proxy_cache_valid", "cutover does not cache"),
    ("proxy_cache_key", "cutover does not cache"),
    ("mirror", "use cutover's shadow traffic instead"),
];

/// Directives that decide which backend answers, or whether anyone does.
const BLOCKING: &[(&str, &str)] = &[
    ("if", "conditional configuration: cutover cannot express it"),
    (
        "rewrite",
        "rewrites the request: cutover does not rewrite paths",
    ),
    (
        "return",
        "nginx answers (or redirects) itself: cutover would proxy these requests",
    ),
    (
        "try_files",
        "serves files: cutover would proxy these requests",
    ),
    ("alias", "serves files: cutover would proxy these requests"),
    (
        "autoindex",
        "serves directory listings: cutover would proxy these requests",
    ),
    (
        "allow",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "deny",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "auth_basic",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "auth_basic_user_file",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "auth_request",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "satisfy",
        "access control: requests nginx refuses would be proxied",
    ),
    (
        "limit_except",
        "access control by method: requests nginx refuses would be proxied",
    ),
    (
        "ssl_verify_client",
        "client certificates: requests nginx refuses would be proxied",
    ),
    (
        "ssl_client_certificate",
        "client certificates: requests nginx refuses would be proxied",
    ),
    (
        "valid_referers",
        "referer checks: requests nginx refuses would be proxied",
    ),
    (
        "secure_link",
        "signed links: requests nginx refuses would be proxied",
    ),
    (
        "internal",
        "internal-only location: cutover would proxy these requests",
    ),
    ("grpc_pass", "a gRPC upstream: not converted"),
    (
        "fastcgi_pass",
        "a FastCGI upstream: cutover speaks HTTP to backends",
    ),
    (
        "uwsgi_pass",
        "a uwsgi upstream: cutover speaks HTTP to backends",
    ),
    (
        "scgi_pass",
        "an SCGI upstream: cutover speaks HTTP to backends",
    ),
    (
        "memcached_pass",
        "a memcached upstream: cutover speaks HTTP to backends",
    ),
];

/// The verdict and note for directive `name` found in `context`.
pub(super) fn classify(name: &str, context: &str) -> (Verdict, String) {
    if name == "include" {
        return (Verdict::Converted, "read".into());
    }
    if name.contains("_by_lua")
        || name.starts_with("lua_")
        || name.starts_with("js_")
        || name.starts_with("perl")
    {
        return (
            Verdict::Blocking,
            "scripted request handling: cutover cannot run it".into(),
        );
    }
    if let Some((_, why)) = BLOCKING.iter().find(|(n, _)| *n == name) {
        return (Verdict::Blocking, (*why).into());
    }
    if name.starts_with("gzip") || name.starts_with("brotli") {
        return (
            Verdict::Unsupported,
            "cutover does not compress answers; they go as the backend sends them".into(),
        );
    }
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        return (Verdict::Unsupported, (*why).into());
    }
    if name.starts_with("proxy_ssl_") {
        return (Verdict::Ignored, "no https:// proxy_pass uses it".into());
    }
    if IGNORED.contains(&name) {
        let why = match name {
            "worker_processes" => {
                "cutover runs one process with [proxy] threads (default: one per core)"
            }
            "access_log" | "log_format" | "error_log" => "cutover logs JSON lines ([log] access)",
            "root" | "index" => "files are not served: every location here proxies",
            _ => "tuning with no effect on what a client gets",
        };
        return (Verdict::Ignored, why.into());
    }
    if context == "types" {
        return (
            Verdict::Ignored,
            "a MIME type (cutover passes Content-Type from the backend)".into(),
        );
    }
    (
        Verdict::Unsupported,
        format!("no cutover equivalent for {name} (in {context}); check whether it matters"),
    )
}
