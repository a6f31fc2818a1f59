//! Imports of small configs written for one rule each: what must block,
//! what converts whole, and the report's exit codes.

use super::{import, Source, Verdict};
use proptest::prelude::*;
use std::path::Path;

fn run(source: Source, files: &[(&str, &str)]) -> super::Imported {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
    }
    import(source, &dir.path().join(files[0].0)).expect("import")
}

fn verdict_of(i: &super::Imported, directive: &str) -> Option<Verdict> {
    i.report
        .items
        .iter()
        .find(|x| x.directive.starts_with(directive))
        .map(|x| x.verdict)
}

#[test]
fn nginx_routing_it_cannot_express_blocks() {
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            "http {\n upstream app { server 10.0.0.1:8080; }\n server {\n  listen 80;\n  location / { proxy_pass http://app; }\n  location ~ \\.php$ { proxy_pass http://app; }\n  location /old/ { rewrite ^/old/(.*)$ /new/$1 break; proxy_pass http://app; }\n  location /admin/ { allow 10.0.0.0/8; deny all; proxy_pass http://app; }\n  location /v2/ { proxy_pass http://app/v3/; }\n }\n}\n",
        )],
    );
    assert_eq!(i.report.exit_code(), 4);
    for d in [
        "location ~",
        "rewrite",
        "allow",
        "deny all",
        "proxy_pass http://app/v3/",
    ] {
        assert_eq!(
            verdict_of(&i, d),
            Some(Verdict::Blocking),
            "{d}: {}",
            i.report.render_text()
        );
    }
    // What could be converted still is.
    assert!(i.toml.contains("path_prefix = \"/admin/\""), "{}", i.toml);
}

#[test]
fn nginx_that_converts_whole_exits_zero() {
    let i = run(
        Source::Nginx,
        &[
            ("nginx.conf", "events {}\nhttp {\n include sites/*.conf;\n}\n"),
            (
                "sites/a.conf",
                "upstream app { server 10.0.0.1:8080 weight=2 max_fails=0; server 10.0.0.2:8080 max_fails=0; }\nserver {\n listen 127.0.0.1:8080;\n server_name .example.com mail.*;\n location / { proxy_pass http://app; proxy_set_header Host $host; }\n}\n",
            ),
        ],
    );
    assert_eq!(i.report.exit_code(), 0, "{}", i.report.render_text());
    for host in ["\"example.com\"", "\"*.example.com\"", "\"mail.*\""] {
        assert!(i.toml.contains(&format!("host = {host}")), "{}", i.toml);
    }
    assert!(i.toml.contains("outlier = false"));
    assert!(i
        .report
        .items
        .iter()
        .any(|x| x.file.ends_with("sites/a.conf")));
}

#[test]
fn haproxy_negation_and_denials_block() {
    let i = run(
        Source::Haproxy,
        &[(
            "haproxy.cfg",
            "defaults\n mode http\nfrontend fe\n bind :8080\n acl api path_beg /api\n http-request deny if { path_beg /internal }\n use_backend b if !api\n default_backend b\nbackend b\n server s 10.0.0.1:80\n",
        )],
    );
    assert_eq!(i.report.exit_code(), 4);
    assert_eq!(verdict_of(&i, "http-request deny"), Some(Verdict::Blocking));
    assert_eq!(
        verdict_of(&i, "use_backend b if !api"),
        Some(Verdict::Blocking)
    );
}

#[test]
fn haproxy_tcp_mode_blocks_and_bad_syntax_is_an_error() {
    let i = run(
        Source::Haproxy,
        &[(
            "haproxy.cfg",
            "listen db\n mode tcp\n bind :5432\n server s 10.0.0.1:5432\n",
        )],
    );
    assert_eq!(verdict_of(&i, "mode tcp"), Some(Verdict::Blocking));
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.cfg");
    std::fs::write(&p, "frontend fe\n acl x hdr(host) \"open\n").expect("write");
    let e = import(Source::Haproxy, &p)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.ends_with(":2:1: unterminated quoted string"), "{e}");
    assert!(import(Source::Nginx, Path::new("/nonexistent/nginx.conf")).is_err());
}

#[test]
fn nginx_https_upstreams_take_the_proxy_ssl_settings() {
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            "http {\n upstream cloud { server api-1.cloud.example:443; server api-2.cloud.example:443; }\n server {\n  listen 8080;\n  location / {\n   proxy_pass https://cloud;\n   proxy_set_header Host $host;\n   proxy_ssl_verify on;\n   proxy_ssl_server_name on;\n   proxy_ssl_name api.cloud.example;\n   proxy_ssl_trusted_certificate /etc/ssl/cloud-ca.pem;\n  }\n }\n}\n",
        )],
    );
    assert!(
        i.toml.contains(
            "tls = { verify = true, sni = \"api.cloud.example\", ca = \"/etc/ssl/cloud-ca.pem\" }"
        ),
        "{}",
        i.toml
    );
    for d in [
        "proxy_ssl_verify",
        "proxy_ssl_server_name",
        "proxy_ssl_name",
        "proxy_ssl_trusted_certificate",
    ] {
        assert_eq!(verdict_of(&i, d), Some(Verdict::Converted), "{d}");
    }
}

#[test]
fn haproxy_tls_servers_backups_and_timeouts() {
    // The CA must exist: the result is validated as `cutover check` would.
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_string()]).expect("cert");
    let i = run(
        Source::Haproxy,
        &[(
            "haproxy.cfg",
            "global\n ca-base certs\ndefaults\n mode http\n timeout connect 5000\n timeout server 1m\n timeout client 30s\n retries 3\n option redispatch\nfrontend fe\n bind 127.0.0.1:8080\n default_backend cloud\nbackend cloud\n option httpchk HEAD /ping\n http-check expect status 204\n server c1 api-1.cloud.example:443 ssl verify required ca-file cloud-ca.pem sni str(api.cloud.example) check inter 5s rise 3 fall 2\n server c2 api-2.cloud.example:443 ssl verify required ca-file cloud-ca.pem sni str(api.cloud.example) check inter 5s rise 3 fall 2\n server spare 10.9.9.9:443 ssl verify none backup\n",
        ), ("certs/cloud-ca.pem", &ca.cert.pem())],
    );
    let t = &i.toml;
    for want in [
        "connect_timeout = \"5s\"",
        "read_timeout = \"1m\"",
        "idle_timeout = \"30s\"",
        "retries = 3",
        "tls = { verify = true, sni = \"api.cloud.example\", ca = \"",
        "certs/cloud-ca.pem\" }",
        "health = { path = \"/ping\", interval = \"5s\", rise = 3, fall = 2, expect = [204] }",
        "[pools.cloud-backup]",
        "failover = [\"cloud-backup\"]",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    assert_eq!(i.report.exit_code(), 0, "{}", i.report.render_text());
}

/// Words config files are made of, so random text reaches deep into both
/// importers rather than failing on the first token.
const WORDS: &[&str] = &[
    "http",
    "server",
    "upstream",
    "location",
    "listen",
    "proxy_pass",
    "split_clients",
    "map",
    "include",
    "{",
    "}",
    ";",
    "\"",
    "'",
    "#",
    "$",
    "${x}",
    "~",
    "=",
    "^~",
    "/",
    "/api/",
    "http://",
    "https://",
    "$var",
    "10%",
    "*",
    "default",
    "80",
    "ssl",
    "backup",
    "weight=2",
    "max_fails=0",
    "frontend",
    "backend",
    "defaults",
    "listen",
    "bind",
    "acl",
    "use_backend",
    "if",
    "unless",
    "!",
    "||",
    "hdr(host)",
    "hdr_beg(host)",
    "path_beg",
    "method",
    "req.hdr(x),crc32,mod(100)",
    "lt",
    "mod(0)",
    "18446744073709551615",
    "default_backend",
    "timeout",
    "connect",
    "5s",
    "retries",
    "option",
    "httpchk",
    "check",
    "inter",
    "é",
    "\\",
    "\n",
    "127.0.0.1:1",
    "[::1]:80",
    "unix:/x",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the file holds, an import gives a config and a report or a
    /// positioned error; it never panics.
    #[test]
    fn no_input_makes_an_importer_panic(words in proptest::collection::vec(proptest::sample::select(WORDS), 0..120), newlines in proptest::collection::vec(any::<bool>(), 120)) {
        let mut text = String::new();
        for (i, w) in words.iter().enumerate() {
            text.push_str(w);
            text.push(if newlines.get(i).copied().unwrap_or(false) { '\n' } else { ' ' });
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.conf");
        std::fs::write(&p, &text).expect("write");
        for source in [Source::Nginx, Source::Haproxy] {
            match import(source, &p) {
                Ok(i) => prop_assert!(i.report.exit_code() == 0 || i.report.exit_code() == 3 || i.report.exit_code() == 4),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

fn haproxy_split(rules: &str) -> super::Imported {
    run(
        Source::Haproxy,
        &[(
            "haproxy.cfg",
            &format!(
                "defaults\n mode http\nfrontend fe\n bind 127.0.0.1:8080\n acl api path_beg /api\n{rules}\nbackend a\n server a 10.0.0.1:80\nbackend b\n server b 10.0.0.2:80\nbackend c\n server c 10.0.0.3:80\n"
            ),
        )],
    )
}

#[test]
fn haproxy_hash_ranges_split_as_haproxy_takes_them() {
    // The top of the range to a, the rest to the default.
    let i = haproxy_split(
        " use_backend a if { req.hdr(x-u),crc32,mod(100) ge 90 }\n default_backend b",
    );
    assert!(i.toml.contains("split = { a = 10, b = 90 }"), "{}", i.toml);
    // Overlapping ranges: the first rule wins the overlap.
    let i = haproxy_split(
        " use_backend a if { req.hdr(x-u),crc32,mod(100) lt 30 }\n use_backend b if { req.hdr(x-u),crc32,mod(100) lt 50 }\n default_backend c",
    );
    assert!(
        i.toml.contains("split = { a = 30, b = 20, c = 50 }"),
        "{}",
        i.toml
    );
    // Two ranges in one rule.
    let i = haproxy_split(
        " use_backend a if { req.hdr(x-u),crc32,mod(100) lt 5 } || { req.hdr(x-u),crc32,mod(100) ge 95 }\n default_backend b",
    );
    assert!(i.toml.contains("split = { a = 10, b = 90 }"), "{}", i.toml);
}

#[test]
fn haproxy_hash_rules_that_cannot_merge_block() {
    // A rule between the hash rule and the default: the rest of the range
    // goes on to it in HAProxy.
    let i = haproxy_split(" use_backend a if { req.hdr(x-u),crc32,mod(100) lt 10 }\n use_backend c if api\n default_backend b");
    assert_eq!(i.report.exit_code(), 4, "{}", i.report.render_text());
    // A later hash rule with another alternative keeps it as a route.
    let i = haproxy_split(
        " use_backend a if { req.hdr(x-u),crc32,mod(100) lt 10 }\n use_backend b if { req.hdr(x-u),crc32,mod(100) lt 20 } || api\n default_backend c",
    );
    assert!(i.toml.contains("path_prefix = \"/api\""), "{}", i.toml);
}

#[test]
fn nginx_gaps_nginx_would_answer_with_an_error_block() {
    let conf = |vars: &str, pass: &str| {
        format!(
            "http {{\n upstream a {{ server 10.0.0.1:80; }}\n upstream b {{ server 10.0.0.2:80; }}\n {vars}\n server {{\n  listen 8080 default_server;\n  location / {{ proxy_pass {pass}; proxy_set_header Host $host; }}\n }}\n}}\n"
        )
    };
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            &conf("split_clients $http_x_u $p { 10% a; 80% b; }", "http://$p"),
        )],
    );
    assert_eq!(
        verdict_of(&i, "proxy_pass http://$p"),
        Some(Verdict::Blocking),
        "{}",
        i.report.render_text()
    );
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            &conf("map $http_x_pool $p { cloud b; }", "http://$p"),
        )],
    );
    assert_eq!(
        verdict_of(&i, "proxy_pass http://$p"),
        Some(Verdict::Blocking)
    );
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            &conf("map $http_x_pool $p { default a; cloud b; }", "http://$p/"),
        )],
    );
    assert_eq!(
        verdict_of(&i, "proxy_pass http://$p/"),
        Some(Verdict::Blocking)
    );
    // A timeout in one location only is a difference: cutover's is global.
    let i = run(
        Source::Nginx,
        &[("nginx.conf", "http {\n upstream a { server 10.0.0.1:80; }\n server {\n  listen 8080;\n  location / { proxy_pass http://a; proxy_set_header Host $host; proxy_read_timeout 300s; }\n }\n}\n")],
    );
    assert_eq!(
        verdict_of(&i, "proxy_read_timeout"),
        Some(Verdict::Different)
    );
}

#[test]
fn hosts_with_ports_and_upstreams_on_two_schemes() {
    let i = haproxy_split(
        " acl shop hdr(host) -i shop.example.com:8080\n use_backend a if shop\n default_backend b",
    );
    assert!(i.toml.contains("host = \"shop.example.com\""), "{}", i.toml);
    assert_eq!(verdict_of(&i, "acl shop"), Some(Verdict::Different));
    let i = run(
        Source::Nginx,
        &[(
            "nginx.conf",
            "http {\n upstream app { server 10.0.0.1:443; }\n server {\n  listen 8080;\n  location /a/ { proxy_pass http://app; proxy_set_header Host $host; }\n  location /b/ { proxy_pass https://app; proxy_set_header Host $host; }\n }\n}\n",
        )],
    );
    assert_eq!(
        verdict_of(&i, "proxy_pass https://app"),
        Some(Verdict::Blocking),
        "{}",
        i.report.render_text()
    );
}
