//! A bare Pingora proxy, for the load bench only: the baseline that tells
//! what cutover's features cost. It forwards every request round-robin to
//! the backends given on the command line, with the same server settings as
//! cutover (threads, no downstream modules, upstream keep-alive) and none of
//! cutover's work (no routes, split, health, metrics or head guard).
//!
//! Usage: `bare_pingora LISTEN THREADS BACKEND...`

use async_trait::async_trait;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Bare {
    backends: Vec<std::net::SocketAddr>,
    next: AtomicUsize,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        Ok(Box::new(HttpPeer::new(
            self.backends[i],
            false,
            String::new(),
        )))
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
        },
    );
    svc.add_tcp(&args[1]);
    server.add_service(svc);
    server.run_forever();
}
