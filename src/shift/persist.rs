//! The state file: shift progress and operator decisions that survive a
//! restart (`[state] path`). Written atomically — a temp file, fsync, rename,
//! fsync of the directory — so a crash leaves the old or the new file, never
//! half of one. A missing file is a fresh start; a corrupt one is reported
//! and ignored, never fatal.

use super::ShiftState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Format version.
pub(crate) const VERSION: u32 = 1;

/// What is kept per route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RouteRecord {
    /// The route definition the record belongs to (see
    /// `control::route_definition`); a changed route starts afresh.
    pub definition: String,
    /// Unix milliseconds of the shift's step 0 when it had no `start_at`.
    pub origin_ms: u64,
    /// The shift's state.
    pub shift: Option<ShiftState>,
    /// An operator's split.
    pub manual: Option<Vec<f64>>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateFile {
    /// Format version.
    pub version: u32,
    /// Records by route name.
    pub routes: BTreeMap<String, RouteRecord>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file of this version.
    #[error("state file {path} is unreadable ({reason}); ignoring it")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Read the state file; a missing file gives an empty state.
pub(crate) fn load(path: &Path) -> Result<StateFile, PersistError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateFile::default()),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| PersistError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(PersistError::Corrupt {
            path: path.display().to_string(),
            reason: format!("version {} is not {VERSION}", file.version),
        });
    }
    Ok(file)
}

/// Write the state file atomically.
pub(crate) fn save(path: &Path, file: &StateFile) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("state".into(), |n| n.to_string_lossy())
    ));
    let mut text = serde_json::to_vec_pretty(file).unwrap_or_default();
    text.push(b'\n');
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path).unwrap(), StateFile::default());
        let mut f = StateFile {
            version: VERSION,
            ..Default::default()
        };
        f.routes.insert(
            "api".into(),
            RouteRecord {
                definition: "d".into(),
                origin_ms: 5,
                shift: None,
                manual: Some(vec![70.0, 30.0]),
            },
        );
        save(&path, &f).unwrap();
        assert_eq!(load(&path).unwrap(), f);
        std::fs::write(&path, "{ half").unwrap();
        assert!(matches!(load(&path), Err(PersistError::Corrupt { .. })));
        std::fs::write(&path, "{\"version\": 99, \"routes\": {}}").unwrap();
        assert!(matches!(load(&path), Err(PersistError::Corrupt { .. })));
    }
}
