//! `server` blocks: their listeners (plain and TLS, with certificates
//! chosen by SNI), their names, and the routes their locations make, put
//! in the order nginx would pick them (exact names, then `*.suffix`, then
//! `prefix.*`, then the default server; longest location prefix first).

use super::location;
use super::parse::Directive;
use super::Ctx;
use crate::import::model::{Route, TlsListener};
use crate::import::report::Verdict;
use crate::import::units;
use std::net::SocketAddr;

pub(super) use super::settings::setting;

/// A route and where nginx would rank it.
pub(super) struct Draft {
    /// 0 exact host, 1 `*.suffix`, 2 `prefix.*`, 3 no host (default server).
    pub rank: u8,
    /// The host pattern's length: longer wildcards win in nginx.
    pub host_len: usize,
    /// The location prefix's length: the longest prefix wins.
    pub prefix_len: usize,
    /// The route.
    pub route: Route,
}

/// One `listen`.
struct Listen {
    addr: String,
    ssl: bool,
    http2: bool,
    default: bool,
    server: usize,
    /// The `listen` directive (the server's, for the implicit `*:80`).
    at: Place,
}

/// What the servers built, put together at the end.
#[derive(Default)]
pub(super) struct Servers {
    listens: Vec<Listen>,
    /// Per server: its (cert, key) pairs, whether it says `http2 on`, and
    /// where it is.
    tls: Vec<ServerTls>,
    /// Routes, in the order made.
    pub drafts: Vec<Draft>,
    /// Servers with names but no `location /`.
    gaps: Vec<Place>,
    /// The server whose routes also take requests for unknown hosts.
    catch_all: usize,
}

impl Servers {
    /// The servers of `http`: the one that takes unknown hosts is the
    /// first with `listen … default_server`, else the first server.
    pub(super) fn new(http: &Directive) -> Servers {
        let catch_all = http
            .children()
            .iter()
            .filter(|d| d.name == "server")
            .position(|s| {
                s.children().iter().any(|l| {
                    l.name == "listen"
                        && l.args
                            .iter()
                            .any(|a| a == "default_server" || a == "default")
                })
            })
            .unwrap_or(0);
        Servers {
            catch_all,
            ..Servers::default()
        }
    }
}

/// A server's TLS side.
struct ServerTls {
    /// (certificate, key) files.
    pairs: Vec<(String, String)>,
    /// `http2 on`.
    http2: bool,
    /// Where the server is.
    at: Place,
}

/// A directive's file, line and column.
type Place = (String, usize, usize);

fn place(d: &Directive) -> Place {
    (d.file.clone(), d.line, d.col)
}

fn push_at(cx: &mut Ctx, at: &Place, directive: &str, verdict: Verdict, note: &str) {
    cx.r.push(crate::import::Item {
        file: at.0.clone(),
        line: at.1,
        col: at.2,
        directive: directive.into(),
        verdict,
        note: note.into(),
    });
}

/// Read one `server` block.
pub(super) fn server(cx: &mut Ctx, servers: &mut Servers, scope: &[&Directive], d: &Directive) {
    let idx = servers.tls.len();
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    let mut http2 = false;
    let mut ssl_on = false;
    let mut any_listen = false;
    for c in d.children() {
        match c.name.as_str() {
            "listen" => {
                any_listen = true;
                listen(cx, servers, c, idx);
            }
            "ssl_certificate" => certs.push(c),
            "ssl_certificate_key" => keys.push(c),
            "http2" => {
                http2 = c.args.first().is_some_and(|a| a == "on");
                cx.mark(c, Verdict::Converted, "");
            }
            "ssl" => {
                ssl_on = c.args.first().is_some_and(|a| a == "on");
                cx.mark(c, Verdict::Converted, "");
            }
            "ssl_protocols" => {
                let both = c.args.len() == 2
                    && ["TLSv1.2", "TLSv1.3"]
                        .iter()
                        .all(|v| c.args.iter().any(|a| a == v));
                if both {
                    cx.mark(c, Verdict::Converted, "cutover speaks TLS 1.2 and 1.3");
                } else {
                    cx.mark(
                        c,
                        Verdict::Different,
                        "cutover speaks TLS 1.2 and 1.3 (rustls)",
                    );
                }
            }
            _ => setting(cx, c, true),
        }
    }
    if !any_listen {
        servers.listens.push(Listen {
            addr: "0.0.0.0:80".into(),
            ssl: ssl_on,
            http2: false,
            default: false,
            server: idx,
            at: place(d),
        });
    } else if ssl_on {
        for l in servers.listens.iter_mut().filter(|l| l.server == idx) {
            l.ssl = true;
        }
    }
    if certs.is_empty() {
        // nginx inherits the certificate from the `http` block.
        for level in scope.iter().rev() {
            certs = level
                .children()
                .iter()
                .filter(|c| c.name == "ssl_certificate")
                .collect();
            keys = level
                .children()
                .iter()
                .filter(|c| c.name == "ssl_certificate_key")
                .collect();
            if !certs.is_empty() {
                break;
            }
        }
    }
    let mut pairs = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let (Some(cert), Some(k)) = (c.args.first(), keys.get(i)) else {
            cx.mark(c, Verdict::Unsupported, "no matching ssl_certificate_key");
            continue;
        };
        let Some(key) = k.args.first() else { continue };
        if cert.contains('$') || key.contains('$') {
            cx.mark(
                c,
                Verdict::Unsupported,
                "a certificate chosen by variable: give cutover the files",
            );
            continue;
        }
        pairs.push((cx.path(cert), cx.path(key)));
        cx.mark(
            c,
            Verdict::Converted,
            "a certificate of the TLS listener, chosen by SNI",
        );
        cx.mark(k, Verdict::Converted, "");
    }
    servers.tls.push(ServerTls {
        pairs,
        http2,
        at: place(d),
    });
    let mut hosts = super::names::hosts(cx, d);
    let is_default = idx == servers.catch_all;
    if is_default {
        hosts.push(None);
    } else if hosts.is_empty() {
        // nginx's default name is "": only requests without a Host reach
        // a server that names nothing and is not a default.
        return cx.mark_tree(
            d,
            Verdict::Unsupported,
            "names no host and is not the default server: nginx sends it only requests without a Host; not converted",
        );
    }
    let mut inner = scope.to_vec();
    inner.push(d);
    let mut has_root = false;
    for c in d.children() {
        if c.name == "location" {
            has_root |= c.args.len() == 1 && c.args[0] == "/"
                || c.args.len() == 2 && c.args[0] == "^~" && c.args[1] == "/";
            location::location(cx, servers, &inner, c, &hosts);
        }
    }
    cx.mark(d, Verdict::Converted, "");
    if !has_root && hosts.iter().any(Option::is_some) {
        servers.gaps.push(place(d));
    }
}

fn listen(cx: &mut Ctx, servers: &mut Servers, d: &Directive, server: usize) {
    let Some(raw) = d.args.first() else { return };
    let addr = units::host_port(&raw.replace("localhost", "127.0.0.1"), 80);
    let Some(addr) = addr.filter(|a| a.parse::<SocketAddr>().is_ok()) else {
        cx.mark(
            d,
            Verdict::Unsupported,
            "cutover listens on IP:port addresses only",
        );
        return;
    };
    let mut l = Listen {
        addr,
        ssl: false,
        http2: false,
        default: false,
        server,
        at: place(d),
    };
    let mut notes = Vec::new();
    let mut verdict = Verdict::Converted;
    for p in &d.args[1..] {
        match p.split('=').next().unwrap_or("") {
            "ssl" => l.ssl = true,
            "http2" => l.http2 = true,
            "default_server" | "default" => l.default = true,
            "proxy_protocol" => {
                verdict = Verdict::Blocking;
                notes.push(
                    "cutover does not read the PROXY protocol: connections would fail".to_string(),
                );
            }
            "quic" => {
                verdict = verdict.max(Verdict::Unsupported);
                notes.push("HTTP/3 is not served".to_string());
            }
            _ => {}
        }
    }
    cx.mark(d, verdict, notes.join("; "));
    servers.listens.push(l);
}

impl Servers {
    /// Put the listeners and routes into the target.
    pub(super) fn finish(mut self, cx: &mut Ctx) {
        for l in &self.listens {
            if l.ssl {
                let Some(st) = self.tls.get(l.server) else {
                    continue;
                };
                let pairs = st.pairs.clone();
                let h2 = st.http2 || l.http2;
                let origin = format!("{}:{}", st.at.0, st.at.1);
                match cx.t.tls.iter_mut().find(|t| t.listen == l.addr) {
                    Some(t) => {
                        for p in pairs {
                            if !t.certs.contains(&p) {
                                t.certs.push(p);
                            }
                        }
                        t.http2 |= h2;
                    }
                    None if pairs.is_empty() => {
                        let at = l.at.clone();
                        push_at(
                            cx,
                            &at,
                            "(listen … ssl)",
                            Verdict::Blocking,
                            "a TLS listener without a certificate cutover can use: nothing would listen here",
                        );
                    }
                    None => cx.t.tls.push(TlsListener {
                        listen: l.addr.clone(),
                        certs: pairs,
                        http2: h2,
                        origin,
                    }),
                }
            } else if !cx.t.listen.contains(&l.addr) {
                cx.t.listen.push(l.addr.clone());
            }
        }
        // Routes do not look at the address a request came in on: say so
        // when servers listen on different sets of addresses.
        let sets: Vec<Vec<&str>> = (0..self.tls.len())
            .map(|i| {
                let mut v: Vec<&str> = self
                    .listens
                    .iter()
                    .filter(|l| l.server == i)
                    .map(|l| l.addr.as_str())
                    .collect();
                v.sort_unstable();
                v
            })
            .collect();
        if sets.windows(2).any(|w| w[0] != w[1]) && sets.len() > 1 {
            if let Some(ServerTls { at, .. }) = self.tls.get(1) {
                push_at(
                    cx,
                    at,
                    "(servers on different addresses)",
                    Verdict::Different,
                    "cutover's routes match host and path on every listener alike; nginx picks servers per address",
                );
            }
        }
        if self.drafts.iter().any(|d| d.rank == 3) {
            for at in &self.gaps {
                push_at(
                    cx,
                    at,
                    "(server without location /)",
                    Verdict::Blocking,
                    "nginx answers this server's other paths itself; in cutover they would reach the default server's routes",
                );
            }
        }
        // The routes were kept in the target only to give each a unique
        // name; now they go in nginx's order. Stable: ties keep file order.
        cx.t.routes.clear();
        self.drafts.sort_by_key(|d| {
            (
                d.rank,
                std::cmp::Reverse(d.host_len),
                std::cmp::Reverse(d.prefix_len),
            )
        });
        for d in self.drafts {
            cx.t.routes.push(d.route);
        }
    }
}
