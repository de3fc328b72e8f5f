//! Files read again when they change (certificates, htpasswd, the config file's rules): the
//! one watcher the server has (a ground module: it imports nothing of the crate).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A file's modification time and size: when either changes, it is read again.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Files, and their stamps when they were last read.
#[derive(Debug)]
pub(crate) struct Watched {
    paths: Vec<PathBuf>,
    seen: Mutex<Vec<Option<Stamp>>>,
}

impl Watched {
    /// `paths`, as they are now (just read).
    pub(crate) fn new(paths: Vec<PathBuf>) -> Self {
        let seen = paths.iter().map(|p| stamp(p)).collect();
        Self { paths, seen: Mutex::new(seen) }
    }

    /// The files.
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads the files again with `read` when one changed since the last read (or always,
    /// with `force`): `None` when nothing changed. A failed read is tried again at the next
    /// call unless `once` (then it is reported once and waits for the next change).
    pub(crate) fn reread<T, E>(
        &self,
        force: bool,
        once: bool,
        read: impl FnOnce(&[PathBuf]) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        let now: Vec<_> = self.paths.iter().map(|p| stamp(p)).collect();
        let mut seen = self.seen.lock().expect("lock");
        if !force && *seen == now {
            return Ok(None);
        }
        if once {
            seen.clone_from(&now);
        }
        let value = read(&self.paths)?;
        *seen = now;
        Ok(Some(value))
    }
}
