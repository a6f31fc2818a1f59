//! Reloading the config file: parse and validate the whole file, build a
//! complete snapshot, swap it in. An invalid or half-written file changes
//! nothing; the error is logged, counted and shown in `/status`.
//!
//! Listener addresses and the thread count cannot change without a restart:
//! a reload that changes them applies everything else, logs that a restart
//! is needed and keeps serving on the old listeners.
//!
//! Triggers: `SIGHUP` and `POST /reload` reload unconditionally; the file
//! watcher ([`watch`]) reloads when the file's content changed.

pub(crate) mod watch;

use crate::config::{summary, Config};
use crate::control::Control;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The file is invalid (or unreadable).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The config is valid but could not be put into effect.
    #[error("{0}")]
    Build(#[from] crate::snapshot::BuildError),
    /// The reload task failed.
    #[error("reload failed: {0}")]
    Internal(String),
}

/// What only a restart can change.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    admin: SocketAddr,
    threads: usize,
    cluster: Option<crate::config::ClusterSettings>,
}

impl Fixed {
    fn of(c: &Config) -> Fixed {
        Fixed {
            listen: c.proxy.listen.clone(),
            tls_listen: c.proxy.tls.iter().map(|t| t.listen).collect(),
            admin: c.admin.listen,
            threads: c.proxy.threads,
            cluster: c.cluster.clone(),
        }
    }

    fn differences(&self, new: &Fixed) -> Vec<String> {
        let mut d = Vec::new();
        if self.listen != new.listen {
            d.push("proxy.listen".to_string());
        }
        if self.tls_listen != new.tls_listen {
            d.push("proxy.tls listeners".to_string());
        }
        if self.admin != new.admin {
            d.push("admin.listen".to_string());
        }
        if self.threads != new.threads {
            d.push("proxy.threads".to_string());
        }
        if self.cluster != new.cluster {
            d.push("cluster".to_string());
        }
        d
    }
}

/// Reloads one config file into a [`Control`].
pub(crate) struct Reloader {
    control: Arc<Control>,
    path: PathBuf,
    running: Fixed,
    /// Settings changed in the file that wait for a restart.
    pending_restart: Mutex<Vec<String>>,
    /// Hash of the text last tried, so the watcher tries each version once.
    last_seen: Mutex<String>,
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for the config `control` was started with.
    pub(crate) fn new(control: Arc<Control>) -> Arc<Reloader> {
        let config = control.config();
        let reloader = Arc::new(Reloader {
            path: config.path.clone(),
            running: Fixed::of(&config),
            last_seen: Mutex::new(String::new()),
            control,
            pending_restart: Mutex::default(),
            serial: tokio::sync::Mutex::new(()),
        });
        if let Ok(text) = std::fs::read_to_string(&reloader.path) {
            if let Ok(mut seen) = reloader.last_seen.lock() {
                *seen = reloader.fingerprint(&text);
            }
        }
        reloader
    }

    /// Settings that changed in the file but need a restart.
    pub(crate) fn pending_restart(&self) -> Vec<String> {
        self.pending_restart
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Reload now, whatever the file holds; returns the new config's summary.
    pub(crate) async fn reload(&self) -> Result<String, ReloadError> {
        let _one_at_a_time = self.serial.lock().await;
        let text = self.read().await?;
        self.apply(text).await
    }

    /// Reload if the file's content differs from the last version tried
    /// (applied or refused); `None` when it is the same.
    pub(crate) async fn reload_if_changed(&self) -> Option<Result<String, ReloadError>> {
        let _one_at_a_time = self.serial.lock().await;
        let text = match self.read().await {
            Ok(t) => t,
            // A file briefly missing during a rename is not worth an error.
            Err(_) => return None,
        };
        let seen = self.last_seen.lock().map(|s| s.clone()).unwrap_or_default();
        if self.fingerprint(&text) == seen {
            return None;
        }
        Some(self.apply(text).await)
    }

    /// The config text and the certificate files it uses: a certificate
    /// renewed on disk is a change worth reloading too.
    fn fingerprint(&self, text: &str) -> String {
        let mut all = text.as_bytes().to_vec();
        for listener in &self.control.config().proxy.tls {
            for pair in &listener.certs {
                all.extend(std::fs::read(&pair.cert).unwrap_or_default());
                all.extend(std::fs::read(&pair.key).unwrap_or_default());
            }
        }
        crate::config::text_hash(&String::from_utf8_lossy(&all))
    }

    /// Directories whose changes may call for a reload: the config file's
    /// and its certificates'.
    pub(crate) fn watched_dirs(&self) -> Vec<std::path::PathBuf> {
        let dir = |p: &std::path::Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let mut dirs = vec![dir(&self.path)];
        for listener in &self.control.config().proxy.tls {
            for pair in &listener.certs {
                for p in [&pair.cert, &pair.key] {
                    let d = dir(p);
                    if !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
            }
        }
        dirs
    }

    async fn read(&self) -> Result<String, ReloadError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::read_to_string(&path).map_err(|source| {
                ReloadError::Config(crate::config::ConfigError::Io { path, source })
            })
        })
        .await
        .map_err(|e| ReloadError::Internal(e.to_string()))?
    }

    async fn apply(&self, text: String) -> Result<String, ReloadError> {
        let fingerprint = self.fingerprint(&text);
        if let Ok(mut seen) = self.last_seen.lock() {
            *seen = fingerprint;
        }
        let path = self.path.clone();
        let control = self.control.clone();
        // Validating and resolving names block: keep them off the async threads.
        let result = tokio::task::spawn_blocking(move || -> Result<Config, ReloadError> {
            let config = Config::from_str_named(&text, &path)?;
            control.apply_config(config.clone())?;
            Ok(config)
        })
        .await
        .map_err(|e| ReloadError::Internal(e.to_string()))
        .and_then(|r| r);
        match result {
            Ok(config) => {
                let pending = self.running.differences(&Fixed::of(&config));
                if !pending.is_empty() {
                    warn!(
                        settings = pending.join(", "),
                        "changed settings need a restart; still serving on the old listeners"
                    );
                }
                if let Ok(mut p) = self.pending_restart.lock() {
                    *p = pending;
                }
                self.control.record_reload(None);
                info!(hash = %config.hash, "config reloaded");
                Ok(summary(&config))
            }
            Err(e) => {
                warn!("config reload refused, the old config keeps serving: {e}");
                self.control.record_reload(Some(e.to_string()));
                Err(e)
            }
        }
    }
}
