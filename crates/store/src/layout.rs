//! Where an [`FsStore`](crate::FsStore) keeps things under its root, and how they are made
//! durable: the one place that knows the folder's layout, shared by the store, its journal and
//! its listings.

use std::fs::File;
use std::path::{Path, PathBuf};

use wharf_types::Digest;

use crate::error::{Error, Result};

/// The mark appended to the last component of a record key (never a key character).
pub(crate) const RECORD_MARK: char = '=';

/// Where the blob `digest` lives under a store's `root`.
pub(crate) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.encoded();
    root.join("blobs").join(digest.algorithm().as_str()).join(&hex[..2]).join(hex)
}

/// Where the record `key` (valid by [`check_key`](crate::check_key)) lives under `root`.
pub(crate) fn record_path(root: &Path, key: &str) -> PathBuf {
    let mut path = root.join("records");
    let (dirs, last) = key.rsplit_once('/').unwrap_or(("", key));
    if !dirs.is_empty() {
        path.push(dirs);
    }
    if last.len() < 255 {
        path.push(format!("{last}{RECORD_MARK}"));
    } else {
        path.push(last);
        path.push(RECORD_MARK.to_string());
    }
    path
}

/// A store's root directory, held open: the hot reads (a record, a blob's size) walk only
/// the path below it (`openat`, `fstatat`), not the root's own components again for every
/// request. Paths given to it are relative: [`record_path`] and [`blob_path`] of `""`.
#[derive(Debug)]
pub(crate) struct RootDir(rustix::fd::OwnedFd);

impl RootDir {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map(Self)
            .map_err(|e| Error::io("open", root, e.into()))
    }

    /// The file at `rel`, open for reading.
    pub(crate) fn open_file(&self, rel: &Path) -> std::io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        Ok(rustix::fs::openat(&self.0, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?.into())
    }

    /// What is at `rel` (one `fstatat`, following links as `std::fs::metadata` does).
    pub(crate) fn stat(&self, rel: &Path) -> std::io::Result<FileStat> {
        let stat = rustix::fs::statat(&self.0, rel, rustix::fs::AtFlags::empty())?;
        Ok(FileStat {
            size: u64::try_from(stat.st_size).unwrap_or(0),
            regular: rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile,
        })
    }
}

/// What [`RootDir::stat`] found.
pub(crate) struct FileStat {
    pub(crate) size: u64,
    /// A regular file (not a directory or anything else).
    pub(crate) regular: bool,
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))
}

/// Makes everything written to the file system holding `root` durable.
pub(crate) fn sync_fs(root: &Path) -> Result<()> {
    let dir = File::open(root).map_err(|e| Error::io("open", root, e))?;
    #[cfg(target_os = "linux")]
    let synced = rustix::fs::syncfs(&dir);
    #[cfg(not(target_os = "linux"))]
    let synced = {
        rustix::fs::sync();
        Ok(())
    };
    synced.map_err(|e| Error::io("syncfs", root, e.into()))
}
