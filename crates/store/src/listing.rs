//! Paged, sorted listings of an [`FsStore`](crate::FsStore)'s records folder: each directory
//! is read and sorted once and kept while its modification time says nothing changed in it,
//! so a page costs a `stat` per directory on its path and a binary search, not a walk.
//!
//! A directory's modification time changes whenever an entry is added to or removed from it,
//! by this process or by another one on the same folder. Timestamps are coarse (a kernel
//! tick), so a directory is kept only when it had not changed for [`SETTLED`] before it was
//! read: a change after the read then always shows as a new time. (This takes the file
//! system's clock to be the machine's, as for local file systems; on a network file system
//! whose server's clock lags, prefer S3.) Small directories are
//! cheap to read and are not kept; the cache holds at most [`BUDGET`] names in all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::layout::RECORD_MARK;
use crate::meta::valid_component;

/// How long a directory must have been unchanged before its listing is kept: longer than a
/// file-system timestamp tick (4–10 ms on Linux), so a later change never gets the same time.
const SETTLED: Duration = Duration::from_millis(100);
/// Directories with fewer entries are read every time.
const SMALL: usize = 256;
/// At most this many names are kept, over all directories.
const BUDGET: usize = 1 << 20;

/// What an entry of a records directory (rel key `rel`) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The file `=`: the record whose key is `rel` itself (a last component of 255 bytes).
    Own,
    /// The file `<name>=`: the record `rel/name`.
    Record,
    /// A directory: the records `rel/<name>/…`.
    Dir,
}

/// One entry: its name is `names[start..start + len]` of its [`Listing`].
#[derive(Clone, Copy, Debug)]
struct Slot {
    start: u32,
    len: u8,
    kind: Kind,
}

/// A directory's entries, sorted in the order of the keys they hold: `rel` itself, then
/// `rel/a` before `rel/a/…` before `rel/a-b` (`-` < `/`) before `rel/ab`. The names share
/// one buffer: a folder of 100,000 tags is two allocations, not 100,000.
#[derive(Debug, Default)]
struct Listing {
    names: String,
    slots: Vec<Slot>,
}

impl Listing {
    fn name(&self, slot: Slot) -> &str {
        let start = slot.start as usize;
        &self.names[start..start + usize::from(slot.len)]
    }

    /// The bytes an entry sorts by: a directory `name` as `name/`.
    fn order(&self, slot: Slot) -> impl Iterator<Item = u8> + '_ {
        self.name(slot).bytes().chain((slot.kind == Kind::Dir).then_some(b'/'))
    }

    /// Whether every key the entry holds is `<= after`.
    fn done(&self, slot: Slot, rel: &str, after: &str) -> bool {
        match slot.kind {
            Kind::Own => rel <= after,
            Kind::Record => join(rel, self.name(slot)).as_str() <= after,
            Kind::Dir => {
                let below = format!("{}/", join(rel, self.name(slot)));
                after > below.as_str() && !after.starts_with(&below)
            }
        }
    }
}

#[derive(Debug)]
struct Kept {
    modified: SystemTime,
    listing: Arc<Listing>,
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
        let listing = self.listing(dir, rel)?;
        let slots = &listing.slots;
        let start = page.after.map_or(0, |after| slots.partition_point(|&s| listing.done(s, rel, after)));
        for &slot in &slots[start..] {
            let name = listing.name(slot);
            let full = match slot.kind {
                Kind::Own => page.offer(rel.to_owned()),
                Kind::Record => page.offer(join(rel, name)),
                Kind::Dir => self.visit(&dir.join(name), &join(rel, name), page)?,
            };
            if full {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sorted entries of `dir`, kept or read.
    fn listing(&self, dir: &Path, rel: &str) -> Result<Arc<Listing>> {
        let modified = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => m.modified().ok(),
            Ok(_) => return Ok(Arc::default()),
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                return Ok(Arc::default());
            }
            Err(e) => return Err(Error::io("stat", dir, e)),
        };
        if let Some(modified) = modified {
            let kept = self.kept.lock().expect("lock");
            if let Some(k) = kept.0.get(dir).filter(|k| k.modified == modified) {
                return Ok(Arc::clone(&k.listing));
            }
        }
        let read_at = SystemTime::now();
        let listing = Arc::new(read(dir, rel)?);
        let count = listing.slots.len();
        let settled = modified.is_some_and(|m| read_at.duration_since(m).is_ok_and(|age| age >= SETTLED));
        if settled && (SMALL..=BUDGET).contains(&count) {
            let mut kept = self.kept.lock().expect("lock");
            let (map, names) = &mut *kept;
            if *names + count > BUDGET {
                map.clear();
                *names = 0;
            }
            *names += count;
            let kept = Kept { modified: modified.expect("settled"), listing: Arc::clone(&listing) };
            let old = map.insert(dir.to_owned(), kept);
            *names -= old.map_or(0, |o| o.listing.slots.len());
        }
        Ok(listing)
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
fn read(dir: &Path, rel: &str) -> Result<Listing> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Ok(Listing::default());
        }
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let long_dir = rel.rsplit('/').next().is_some_and(|last| last.len() == 255);
    let mut listing = Listing::default();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let (name, kind) = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if !valid_component(&name) {
                continue;
            }
            (name.as_str(), Kind::Dir)
        } else {
            match name.strip_suffix(RECORD_MARK) {
                Some("") if long_dir => ("", Kind::Own),
                Some(stem) if stem.len() < 255 && valid_component(stem) => (stem, Kind::Record),
                _ => continue,
            }
        };
        let (Ok(start), Ok(len)) = (u32::try_from(listing.names.len()), u8::try_from(name.len())) else {
            // Names are at most 255 bytes; this is a folder of over 4 GiB of names.
            return Err(Error::Corrupt(format!("{} is too large to list", dir.display())));
        };
        listing.names.push_str(name);
        listing.slots.push(Slot { start, len, kind });
    }
    let mut slots = std::mem::take(&mut listing.slots);
    slots.sort_unstable_by(|&a, &b| listing.order(a).cmp(listing.order(b)));
    listing.slots = slots;
    Ok(listing)
}

/// `rel/name`, or `name` at the top.
pub(crate) fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") }
}
