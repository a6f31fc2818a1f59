//! Wiring: a Pingora server with the proxy service, its listeners and the
//! background control-plane work, built from a validated config.
//!
//! `App::build` does everything that can fail with an operator-facing error
//! (config to snapshot, DNS, binding the listeners) before anything runs;
//! `App::run` then blocks until shutdown.

pub(crate) mod accept;
pub(crate) mod edge;
pub(crate) mod listeners;
pub(crate) mod signals;

use crate::admin::server::AdminService;
use crate::admin::AdminApi;
use crate::config::Config;
use crate::control::Control;
use crate::proxy::CutoverProxy;
use crate::reload::Reloader;
use crate::snapshot::BuildError;
use async_trait::async_trait;
use listeners::{prebind, Prebound};
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::info;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// The config could not be turned into a running state.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// How long a replica of a fleet waits for the fleet's state before it
/// reports ready anyway.
const FLEET_JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How to start.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppOptions {
    /// The config came from its file (`config.path`), which can be reloaded.
    pub config_file: bool,
    /// Take the listeners over from a running process (graceful upgrade).
    pub upgrade: bool,
    /// The Unix socket the old and new process meet on during an upgrade.
    pub upgrade_sock: Option<PathBuf>,
}

/// The default upgrade socket for a config file: both processes of an
/// upgrade derive the same path from the same config path.
pub(crate) fn default_upgrade_sock(config_path: &std::path::Path) -> PathBuf {
    let canonical =
        std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let hash = crate::config::text_hash(&canonical.to_string_lossy());
    std::env::temp_dir().join(format!("cutover-{}.upgrade.sock", &hash[..12]))
}

/// A built, not yet running proxy.
pub(crate) struct App {
    server: Server,
    control: Arc<Control>,
    reload_tx: mpsc::UnboundedSender<()>,
    /// The proxy's plain HTTP listeners, with their real ports.
    pub proxy_addrs: Vec<SocketAddr>,
    /// The admin listener, with its real port.
    pub admin_addr: SocketAddr,
}

/// Background work: health checks and reloads.
struct ControlPlane {
    control: Arc<Control>,
    reloader: Option<Arc<Reloader>>,
    reload_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<()>>>,
    file_watch: std::sync::Mutex<Option<crate::reload::watch::FileWatch>>,
}

#[async_trait]
impl BackgroundService for ControlPlane {
    async fn start(&self, shutdown: ShutdownWatch) {
        let health = tokio::spawn(crate::health::checker::run(
            self.control.clone(),
            shutdown.clone(),
        ));
        let ticker = {
            let (control, mut shutdown) = (self.control.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(crate::control::TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = every.tick() => control.tick(std::time::SystemTime::now()),
                        _ = shutdown.changed() => if *shutdown.borrow() { break },
                    }
                }
            })
        };
        let fleet = tokio::spawn(crate::cluster::sync::run(
            self.control.clone(),
            shutdown.clone(),
        ));
        let report = tokio::spawn(crate::migration::run(
            self.control.clone(),
            shutdown.clone(),
        ));
        // Shadow traffic's copies, on a thread of their own at a lower
        // priority; abandoned at exit (they answer no one).
        if let Err(e) = crate::mirror::worker::spawn(self.control.clone()) {
            tracing::warn!("cannot start the mirror worker: {e}");
        }
        let file_watch = self.file_watch.lock().ok().and_then(|mut w| w.take());
        let watch = match (self.reloader.clone(), file_watch) {
            (Some(r), Some(w)) => Some(tokio::spawn(crate::reload::watch::run(
                r,
                w,
                shutdown.clone(),
            ))),
            _ => None,
        };
        let rx = self.reload_rx.lock().ok().and_then(|mut r| r.take());
        if let (Some(reloader), Some(mut rx)) = (self.reloader.clone(), rx) {
            let mut shutdown = shutdown;
            loop {
                tokio::select! {
                    trigger = rx.recv() => match trigger {
                        Some(()) => { let _ = reloader.reload().await; }
                        None => break,
                    },
                    _ = shutdown.changed() => if *shutdown.borrow() { break },
                }
            }
        }
        let _ = health.await;
        let _ = ticker.await;
        let _ = fleet.await;
        let _ = report.await;
        if let Some(w) = watch {
            let _ = w.await;
        }
    }
}

impl App {
    /// Build everything from `config`.
    pub(crate) fn build(config: Config, opts: AppOptions) -> Result<App, AppError> {
        let control = Control::new(config)?;
        let cfg = control.config();

        let mut conf = ServerConf {
            threads: cfg.proxy.threads,
            // Pingora's own shutdown sleeps this long; the drain thread
            // (signals::exit_when_drained) usually exits much sooner.
            grace_period_seconds: Some(cfg.proxy.grace.as_secs().max(1)),
            graceful_shutdown_timeout_seconds: Some(1),
            // Retries are decided per request in the proxy; this is only
            // Pingora's fail-safe cap on attempts.
            max_retries: crate::request::select::MAX_ATTEMPTS,
            upstream_keepalive_pool_size: 1024,
            // One single-threaded runtime per worker thread: measured cheaper
            // per request than a work-stealing pool (see README, Performance).
            work_stealing: false,
            ..ServerConf::default()
        };
        conf.upgrade_sock = opts
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| default_upgrade_sock(&cfg.path))
            .to_string_lossy()
            .into_owned();
        let opt = Opt {
            upgrade: opts.upgrade,
            daemon: false,
            nocapture: false,
            test: false,
            conf: None,
        };
        let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
        server.bootstrap();

        // Bind now, unless the listeners come from the old process.
        let bind = |addrs: &[SocketAddr]| -> Result<Vec<Prebound>, AppError> {
            if opts.upgrade {
                return Ok(Vec::new());
            }
            addrs
                .iter()
                .map(|a| prebind(*a).map_err(|source| AppError::Bind { addr: *a, source }))
                .collect()
        };
        let proxy_bound = bind(&cfg.proxy.listen)?;
        let tls_listen: Vec<SocketAddr> = cfg.proxy.tls.iter().map(|t| t.listen).collect();
        let tls_bound = bind(&tls_listen)?;
        let tls_addrs: Vec<SocketAddr> = if opts.upgrade {
            tls_listen.clone()
        } else {
            tls_bound.iter().map(|p| p.local).collect()
        };
        let admin_bound = bind(&[cfg.admin.listen])?;
        let admin_addr = admin_bound.first().map_or(cfg.admin.listen, |p| p.local);
        let proxy_addrs: Vec<SocketAddr> = if opts.upgrade {
            cfg.proxy.listen.clone()
        } else {
            proxy_bound.iter().map(|p| p.local).collect()
        };

        let mut proxy =
            pingora::proxy::http_proxy(&server.configuration, CutoverProxy::new(control.clone()));
        proxy.server_options = Some({
            let mut o = HttpServerOptions::default();
            o.h2c = true;
            // An HTTP/2 connection with no stream open for `idle_timeout`
            // is closed (read at start: a change needs a restart).
            o.h2_idle_timeout = Some(cfg.proxy.idle_timeout);
            o
        });
        // TLS listeners are plain TCP listeners: the edge does the handshake.
        let tls_by_addr = tls_addrs
            .iter()
            .copied()
            .zip(control.edge_tls.iter().cloned())
            .collect();
        let edge = edge::Edge::new(proxy, control.clone(), tls_by_addr);
        let mut prebound: Vec<Option<Prebound>> =
            proxy_bound.into_iter().chain(tls_bound).map(Some).collect();
        let listens = proxy_addrs
            .iter()
            .chain(&tls_addrs)
            .enumerate()
            .map(|(i, addr)| accept::Listen {
                key: addr.to_string(),
                prebound: prebound.get_mut(i).and_then(Option::take),
            })
            .collect();
        server.add_service(accept::EdgeService::new(edge, listens));

        let reloader = opts.config_file.then(|| Reloader::new(control.clone()));
        let api = Arc::new(AdminApi::new(control.clone(), reloader.clone()));
        let admin_listen = accept::Listen {
            key: admin_addr.to_string(),
            prebound: admin_bound.into_iter().next(),
        };
        server.add_service(AdminService::new(
            api,
            admin_listen,
            control.lifecycle.clone(),
        ));

        let file_watch = match &reloader {
            Some(r) => {
                match crate::reload::watch::start(&r.watched_dirs()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!("cannot watch the config file ({e}); reload with SIGHUP or POST /reload");
                        None
                    }
                }
            }
            None => None,
        };
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        server.add_service(background_service(
            "control plane",
            ControlPlane {
                control: control.clone(),
                reloader,
                reload_rx: std::sync::Mutex::new(Some(reload_rx)),
                file_watch: std::sync::Mutex::new(file_watch),
            },
        ));

        for addr in &proxy_addrs {
            info!(kind = "proxy", %addr, "listening");
        }
        for addr in &tls_addrs {
            info!(kind = "tls", %addr, "listening");
        }
        info!(kind = "admin", addr = %admin_addr, "listening");
        Ok(App {
            server,
            control,
            reload_tx,
            proxy_addrs,
            admin_addr,
        })
    }

    /// The control plane (for the demo and embedding).
    pub(crate) fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// A function that asks for a reload of the config file (for SIGHUP).
    pub(crate) fn reload_trigger(&self) -> signals::OnReload {
        let tx = self.reload_tx.clone();
        Arc::new(move || {
            let _ = tx.send(());
        })
    }

    /// Watch Pingora's execution phases.
    pub(crate) fn phases(
        &self,
    ) -> tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase> {
        self.server.watch_execution_phase()
    }

    /// Serve until `signals` says stop. Blocks.
    pub(crate) fn run(self, signals: Box<dyn ShutdownSignalWatch>) {
        match self.control.cluster.clone() {
            // A replica of a fleet is ready once it serves the fleet's step
            // (or, without etcd, after a bounded wait with what it has).
            Some(cluster) => {
                let control = self.control.clone();
                std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                    else {
                        control.lifecycle.ready.store(true, Ordering::Relaxed);
                        return;
                    };
                    let joined = rt.block_on(cluster.wait_first_sync(FLEET_JOIN_WAIT));
                    if !joined {
                        tracing::warn!(
                            "ready without the fleet's state: etcd did not answer in time"
                        );
                    }
                    control.lifecycle.ready.store(true, Ordering::Relaxed);
                });
            }
            None => self.control.lifecycle.ready.store(true, Ordering::Relaxed),
        }
        self.server.run(RunArgs {
            shutdown_signal: signals,
        });
    }
}
