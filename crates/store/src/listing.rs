//! Paged, sorted listings of an [`FsStore`](crate::FsStore)'s records folder: each directory
//! is read and sorted once and kept while its modification time says nothing changed in it,
//! so a page costs a `stat` per directory on its path and a binary search, not a walk.
//!
//! A directory's modification time changes whenever an entry is added to or removed from it,
//! by this process or by another one on the same folder. Timestamps are coarse (a kernel
//! tick), so a directory is kept only when it had not changed for [`SETTLED`] before it was
//! read: a change after the read then always shows as a new time. Small directories are
//! cheap to read and are not kept; the cache holds at most [`BUDGET`] names in all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::meta::valid_component;

/// How long a directory must have been unchanged before its listing is kept.
const SETTLED: Duration = Duration::from_secs(1);
/// Directories with fewer entries are read every time.
const SMALL: usize = 256;
/// At most this many names are kept, over all directories.
const BUDGET: usize = 1 << 20;

/// The mark appended to the last component of a record key (never a key character).
pub(crate) const RECORD_MARK: char = '=';

/// One entry of a records directory whose rel key is `rel`.
#[derive(Debug)]
enum Entry {
    /// The file `=`: the record whose key is `rel` itself (a last component of 255 bytes).
    Own,
    /// The file `<stem>=`: the record `rel/stem`.
    Record(Box<str>),
    /// A directory: the records `rel/<name>/…`.
    Dir(Box<str>),
}

impl Entry {
    /// Sorts the entries of a directory in the order of the keys they hold: `rel` itself,
    /// then `rel/a` before `rel/a/…` before `rel/a-b` (`-` < `/`) before `rel/ab`.
    fn order(&self) -> (&str, bool) {
        match self {
            Self::Own => ("", false),
            Self::Record(stem) => (stem, false),
            Self::Dir(name) => (name, true),
        }
    }

    /// Whether every key this entry holds is `<= after`.
    fn done(&self, rel: &str, after: &str) -> bool {
        match self {
            Self::Own => rel <= after,
            Self::Record(stem) => join(rel, stem).as_str() <= after,
            Self::Dir(name) => {
                let below = format!("{}/", join(rel, name));
                after > below.as_str() && !after.starts_with(&below)
            }
        }
    }
}

/// Compares two entries by [`Entry::order`]: a directory `name` as `name/`.
fn compare(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    let ((a, a_dir), (b, b_dir)) = (a.order(), b.order());
    let a = a.bytes().chain(a_dir.then_some(b'/'));
    let b = b.bytes().chain(b_dir.then_some(b'/'));
    a.cmp(b)
}

#[derive(Debug)]
struct Kept {
    modified: SystemTime,
    entries: Arc<[Entry]>,
}

/// The sorted listings kept for a store's records folder.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    kept: Mutex<(HashMap<PathBuf, Kept>, usize)>,
}

impl Listings {
    /// The record keys under `root` that start with `prefix`, sorted, after `after`, at most
    /// `limit`.
    pub(crate) fn page(
        &self,
        root: &Path,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        // Walk from the deepest directory the prefix names.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        if !dir_part.is_empty() {
            crate::check_key(dir_part)?;
        }
        let mut page = Page { prefix, after, limit, keys: Vec::new() };
        if limit > 0 {
            self.visit(&root.join("records").join(dir_part), dir_part, &mut page)?;
        }
        Ok(page.keys)
    }

    /// Adds the keys of the directory `dir` (rel key `rel`) to `page`; `true` once it is full.
    fn visit(&self, dir: &Path, rel: &str, page: &mut Page<'_>) -> Result<bool> {
        let entries = self.entries(dir, rel)?;
        let start = page.after.map_or(0, |after| entries.partition_point(|e| e.done(rel, after)));
        for entry in &entries[start..] {
            let full = match entry {
                Entry::Own => page.offer(rel.to_owned()),
                Entry::Record(stem) => page.offer(join(rel, stem)),
                Entry::Dir(name) => self.visit(&dir.join(&**name), &join(rel, name), page)?,
            };
            if full {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sorted entries of `dir`, kept or read.
    fn entries(&self, dir: &Path, rel: &str) -> Result<Arc<[Entry]>> {
        let modified = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => m.modified().ok(),
            Ok(_) => return Ok(Arc::from([])),
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                return Ok(Arc::from([]));
            }
            Err(e) => return Err(Error::io("stat", dir, e)),
        };
        if let Some(modified) = modified {
            let kept = self.kept.lock().expect("lock");
            if let Some(k) = kept.0.get(dir).filter(|k| k.modified == modified) {
                return Ok(Arc::clone(&k.entries));
            }
        }
        let read_at = SystemTime::now();
        let entries: Arc<[Entry]> = read(dir, rel)?.into();
        let settled = modified.is_some_and(|m| read_at.duration_since(m).is_ok_and(|age| age >= SETTLED));
        if settled && entries.len() >= SMALL && entries.len() <= BUDGET {
            let mut kept = self.kept.lock().expect("lock");
            let (map, names) = &mut *kept;
            if *names + entries.len() > BUDGET {
                map.clear();
                *names = 0;
            }
            *names += entries.len();
            let old = map.insert(
                dir.to_owned(),
                Kept { modified: modified.expect("settled"), entries: Arc::clone(&entries) },
            );
            *names -= old.map_or(0, |o| o.entries.len());
        }
        Ok(entries)
    }
}

/// A page being filled.
struct Page<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    limit: usize,
    keys: Vec<String>,
}

impl Page<'_> {
    /// Takes `key` if it belongs on the page; `true` once the page is full.
    fn offer(&mut self, key: String) -> bool {
        if key.starts_with(self.prefix) && self.after.is_none_or(|a| key.as_str() > a) {
            self.keys.push(key);
        }
        self.keys.len() >= self.limit
    }
}

/// Reads and sorts the directory `dir` (rel key `rel`). Every component is checked as it is
/// met; anything else is a stray file, never listed.
fn read(dir: &Path, rel: &str) -> Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let long_dir = rel.rsplit('/').next().is_some_and(|last| last.len() == 255);
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if valid_component(&name) {
                out.push(Entry::Dir(name.into()));
            }
            continue;
        }
        match name.strip_suffix(RECORD_MARK) {
            Some("") if long_dir => out.push(Entry::Own),
            Some(stem) if stem.len() < 255 && valid_component(stem) => out.push(Entry::Record(stem.into())),
            _ => {}
        }
    }
    out.sort_unstable_by(compare);
    Ok(out)
}

/// `rel/name`, or `name` at the top.
pub(crate) fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") }
}
