//! Watching the config file.
//!
//! The watch is on the file's directory, not the file: editors save by
//! writing a new file and renaming it over the old one, and Kubernetes swaps
//! a ConfigMap by re-pointing a `..data` symlink — the watched inode of the
//! file itself would miss both. Any event in the directory starts a short
//! settle timer; when no event has come for [`SETTLE`], the file is read and
//! reloaded if its content differs from the last version tried. So a burst
//! of writes is applied once, an unrelated file in the directory costs one
//! read, and a file written slowly is tried only once it holds still.

use super::Reloader;
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

/// Quiet time after the last event before the file is read.
pub(crate) const SETTLE: Duration = Duration::from_millis(25);

/// A watch on a config file's directory, started before the proxy serves
/// so that no change is missed; events wait in a channel until [`run`].
pub(crate) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

/// Start watching `dirs` (the config file's directory first).
pub(crate) fn start(dirs: &[std::path::PathBuf]) -> notify::Result<FileWatch> {
    let (tx, events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes of content or names count: reading the file (ours
        // included) is an access event and updates its access time (a
        // metadata event); reacting to those would read it in a loop.
        let change = event.is_ok_and(|e| match e.kind {
            EventKind::Modify(ModifyKind::Metadata(_)) => false,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => {
                true
            }
            _ => false,
        });
        if change {
            let _ = tx.send(());
        }
    })?;
    for (i, dir) in dirs.iter().enumerate() {
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => debug!(dir = %dir.display(), "watching for config changes"),
            // The config's own directory must be watched; others are a bonus.
            Err(e) if i == 0 => return Err(e),
            Err(e) => tracing::warn!(dir = %dir.display(), "cannot watch certificates here: {e}"),
        }
    }
    Ok(FileWatch {
        _watcher: watcher,
        events,
    })
}

/// Reload `reloader`'s file on changes seen by `watch`, until `shutdown`.
pub(crate) async fn run(
    reloader: Arc<Reloader>,
    mut watch: FileWatch,
    mut shutdown: ShutdownWatch,
) {
    // A change between loading the config and starting the watch.
    let _ = reloader.reload_if_changed().await;
    let rx = &mut watch.events;
    loop {
        tokio::select! {
            event = rx.recv() => if event.is_none() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break } else { continue },
        }
        // Let the burst settle: wait until SETTLE passes with no new event.
        loop {
            match tokio::time::timeout(SETTLE, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let _ = reloader.reload_if_changed().await;
    }
}
