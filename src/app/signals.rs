//! Signals and shutdown.
//!
//! | signal  | effect |
//! |---------|--------|
//! | SIGHUP  | reload the config file |
//! | SIGTERM | drain: `/readyz` turns 503, stop accepting, finish in-flight requests within `grace`, exit 0 |
//! | SIGQUIT | graceful upgrade: hand the listeners to `cutover run --upgrade`, then drain as for SIGTERM |
//! | SIGINT  | exit at once |
//!
//! Pingora's own graceful shutdown sleeps for the whole grace period even
//! when nothing is in flight. [`exit_when_drained`] ends the process as soon
//! as the last request is done and the last client connection closed (busy
//! keep-alive connections close after their next response; idle ones shortly
//! after the listeners stop, see `edge::CLOSE_IDLE_AFTER`), or when the grace
//! period is over.

use crate::control::Control;
use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;
use tracing::{info, warn};

/// Something to run on SIGHUP.
pub(crate) type OnReload = Arc<dyn Fn() + Send + Sync>;

/// Unix signal handling for a running proxy.
pub(crate) struct UnixSignals {
    control: Arc<Control>,
    on_reload: Option<OnReload>,
}

impl UnixSignals {
    /// Signals for `control`; `on_reload` runs on SIGHUP.
    pub(crate) fn new(control: Arc<Control>, on_reload: Option<OnReload>) -> UnixSignals {
        UnixSignals { control, on_reload }
    }
}

#[async_trait]
impl ShutdownSignalWatch for UnixSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut quit), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            warn!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        info!("serving (SIGHUP reloads, SIGTERM drains, SIGQUIT hands over to an upgrade)");
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the config");
                    if let Some(reload) = &self.on_reload {
                        reload();
                    }
                }
                _ = term.recv() => {
                    info!("SIGTERM: draining");
                    self.control.lifecycle.draining.store(true, Ordering::Relaxed);
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = quit.recv() => {
                    info!("SIGQUIT: handing listeners to the new process, then draining");
                    self.control.lifecycle.upgrading.store(true, Ordering::Relaxed);
                    self.control.lifecycle.draining.store(true, Ordering::Relaxed);
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = int.recv() => {
                    info!("SIGINT: exiting now");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
    }
}

/// A shutdown signal driven by a channel (for the demo and embedding).
pub(crate) struct ChannelSignal(pub tokio::sync::Mutex<tokio::sync::oneshot::Receiver<()>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.lock().await;
        let _ = (&mut *rx).await;
        ShutdownSignal::FastShutdown
    }
}

/// Once Pingora starts its grace period, exit the process as soon as no
/// request is in flight, or when `grace` is over. Runs on its own thread.
pub(crate) fn exit_when_drained(
    control: Arc<Control>,
    mut phases: broadcast::Receiver<ExecutionPhase>,
    grace: Duration,
    before_exit: Arc<dyn Fn() + Send + Sync>,
) {
    std::thread::Builder::new()
        .name("cutover-drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            let deadline = Instant::now() + grace;
            loop {
                let requests = control.lifecycle.in_flight.load(Ordering::Acquire);
                let connections = control.lifecycle.connections.load(Ordering::Acquire);
                if requests == 0 && connections == 0 {
                    info!("drained: no request in flight and no client connection open, exiting");
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(
                        requests,
                        connections, "grace period over, exiting with work in flight"
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            before_exit();
            std::process::exit(0);
        })
        .map(|_| ())
        .unwrap_or_else(|e| warn!("cannot start the drain thread: {e}"));
}
