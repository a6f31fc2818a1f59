//! A bare Pingora proxy, for the load bench only: the baseline that tells
//! what cutover's features cost. It forwards every request round-robin to
//! the backends given on the command line, with the same server settings as
//! cutover (threads, no downstream modules, upstream keep-alive) and none of
//! cutover's work (no routes, split, health, metrics or head guard).
//!
//! With `BARE_TIMEOUTS=1` in the environment it also sets the upstream
//! timeouts cutover sets by default (connect 2 s, read and write 60 s, idle
//! pooled connections 30 s) — the settings any Pingora proxy at an edge
//! needs, since Pingora has none by default — so the two can be compared
//! with the same safety. `BARE_FORWARDED=1` adds `X-Forwarded-For`,
//! `-Proto` and `-Host` to each upstream request, written plainly, as a
//! Pingora user would.
//!
//! Usage: `bare_pingora LISTEN THREADS BACKEND...`
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Bare {
    backends: Vec<std::net::SocketAddr>,
    next: AtomicUsize,
    timeouts: bool,
    forwarded: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        let mut peer = HttpPeer::new(self.backends[i], false, String::new());
        if self.timeouts {
            let o = &mut peer.options;
            o.connection_timeout = Some(Duration::from_secs(2));
            o.total_connection_timeout = Some(Duration::from_secs(2));
            o.read_timeout = Some(Duration::from_secs(60));
            o.write_timeout = Some(Duration::from_secs(60));
            o.idle_timeout = Some(Duration::from_secs(30));
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if self.forwarded {
            if let Some(ip) = session.client_addr().and_then(|a| a.as_inet()) {
                req.insert_header("X-Forwarded-For", ip.ip().to_string())?;
            }
            req.insert_header("X-Forwarded-Proto", "http")?;
            if let Some(host) = req.headers.get("host").cloned() {
                req.insert_header("X-Forwarded-Host", host)?;
            }
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bare_pingora LISTEN THREADS BACKEND...");
        std::process::exit(2);
    }
    let threads: usize = args[2].parse().unwrap_or(1);
    let backends = args[3..].iter().filter_map(|a| a.parse().ok()).collect();
    let conf = ServerConf {
        threads,
        upstream_keepalive_pool_size: 1024,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            backends,
            next: AtomicUsize::new(0),
            timeouts: std::env::var_os("BARE_TIMEOUTS").is_some_and(|v| v == "1"),
            forwarded: std::env::var_os("BARE_FORWARDED").is_some_and(|v| v == "1"),
        },
    );
    svc.add_tcp(&args[1]);
    server.add_service(svc);
    server.run_forever();
}
