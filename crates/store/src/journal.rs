//! The write-ahead journal of an [`FsStore`](crate::FsStore): one `fdatasync` makes a whole
//! batch of record writes (and the small blobs they name) durable and atomic.
//!
//! Writing each record durably on its own costs a file `fsync` and a directory `fsync`, and a
//! registry's manifest PUT needs three such steps in order (bytes, then the records naming
//! them, then the tags). Instead, a batch is appended to the journal and the journal is
//! `fdatasync`ed once; then the batch is applied to the ordinary files (`records/…`,
//! `blobs/…`) without any `fsync`, so readers see it at once. When a journal file fills up,
//! the store switches to a new one, and a background thread `syncfs`es the file system
//! (everything the old file described is then on disk) and removes the old file.
//!
//! On open, the journals left by a store that is gone (a crash, a kill, or a plain exit) are
//! replayed in order, synced, and removed. A live store holds an exclusive `flock` on its
//! journal, so another store opened on the same directory leaves it alone.
//!
//! # Never bricking the store
//! A batch is staged before it is journaled: every directory it needs is created and every
//! file it writes is written to `tmp/`, so a batch that cannot be applied (a full disk, a path
//! blocked by a stray file) is refused before anything is journaled. Applying it is then a
//! rename (or removal) per write; if even that fails, the record is cancelled (`WJX1`, below)
//! before the error is returned, so it is never replayed as if it had been acknowledged (the
//! writes renamed before the failure stay, as after any failed write). A journal append that
//! fails is overwritten with zeros, so nothing of it replays.
//!
//! At replay, every key is brought to the last value the journals give it, writing only what
//! differs from the disk (journals whose batches were applied before the crash, nearly all,
//! replay without writing a byte). A write that meets a *transient* error (no space, an I/O
//! error of the device, a time-out) stops the replay and sets nothing aside: the journals stay,
//! locked, the store opens read-only, and the replay runs again before its first write (which
//! fails with the disk's error until it succeeds). A write that fails otherwise (a path blocked
//! by a stray file), or bytes after the last intact record that are not a write torn by a
//! crash (a damaged journal), are copied to `<root>/quarantine/<journal>-at-<offset>.bin` with
//! an error in the log and counted ([`FsStore::quarantined_count`](crate::FsStore::quarantined_count),
//! the server's `wharf_store_quarantined` metric) before anything is removed; the replay goes
//! on. A store whose disk has no room for a journal of its own opens too, and makes it at its
//! first write.
//!
//! # File format
//! `<root>/journal/<instance>-<seq>.log`, zero-filled ahead, a sequence of records:
//!
//! ```text
//! record := magic | payload length (u32 LE) | SHA-256 of the payload (32 bytes) | payload
//! magic  := "WJR1" (a batch) | "WJX1" (a cancelled batch: skipped at replay)
//! payload := write count (u32 LE) | write*
//! write  := 0 | digest (u16 LE length + UTF-8) | bytes (u32 LE length + bytes)   a blob
//!         | 1 | key (u16 LE length + UTF-8)    | value (u32 LE length + bytes)   set a record
//!         | 2 | key (u16 LE length + UTF-8)                                      remove a record
//! ```
//!
//! Replay stops at the first record that is not complete and intact: the zeros after the last
//! record, or a record torn by a crash (it was never acknowledged).
//!
//! # Brief records
//! A [`Write::Brief`] (an event on its way out, removed a moment later by the same process) is
//! journaled like a `Set` — so a crash replays it as an ordinary record — but not applied: the
//! journal keeps it in memory, where this store's reads and listings see it, until it is
//! removed or set (nothing ever touches the disk for it but its journal bytes), or published
//! ([`Journal::publish`]) for other processes to see. Before a journal file is retired, the
//! brief records still kept are written out as files (a failure refuses the batch that needed
//! the new file, and changes nothing), so that the sync that retires it covers them; a store
//! closed writes them out too. A store that crashes leaves them to the replay of the next store
//! opened on the directory: until then, other stores already open do not see them.
//!
//! Order: one store applies its batches in journal order. Two live stores on one directory
//! writing the same key are last-writer-wins as ever, but if both crash, their journals are
//! replayed one after the other (by last modification), which may keep the older write.

use std::fs::File;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use bytes::{Buf, Bytes};
use sha2::{Digest as _, Sha256};
use wharf_types::Digest;

use crate::error::{Error, Result};
use crate::layout::{blob_path, record_path, sync_dir, sync_fs};
use crate::meta::Write;

const MAGIC: &[u8; 4] = b"WJR1";
/// The magic of a record whose batch failed to apply and was refused: skipped at replay.
const CANCELLED: &[u8; 4] = b"WJX1";
const HEADER: usize = 4 + 4 + 32;
/// The size a journal file is zero-filled to: appends inside it change no file metadata,
/// so their `fdatasync` is a single small write. A bigger batch grows the file.
const FILE_SIZE: u64 = 8 * 1024 * 1024;

/// A store's journal: the file batches are appended to, and the thread that retires full ones.
#[derive(Debug)]
pub(crate) struct Journal {
    root: PathBuf,
    instance: String,
    state: Mutex<State>,
    /// Full journals, for the background thread to sync and remove, in order (each still
    /// holding its lock, so that no other store replays it meanwhile).
    retire: mpsc::Sender<Active>,
    /// What replays moved to the quarantine folder.
    quarantined: std::sync::atomic::AtomicU64,
    /// The brief records kept (see the module's docs): changed only under `state`'s lock,
    /// after the batch that changes them is applied.
    brief: Mutex<std::collections::BTreeMap<String, Bytes>>,
    /// How many there are, read without the lock (none, nearly always).
    brief_count: std::sync::atomic::AtomicUsize,
}

/// What the journal writes to, and what it must finish first.
#[derive(Debug)]
struct State {
    /// The file batches are appended to; `None` until one could be made (a full disk at open).
    active: Option<Active>,
    /// The sequence number of the next journal file.
    next_seq: u64,
    /// Journals left by stores that are gone whose replay met a transient error (a full disk,
    /// an I/O error), still locked: replayed again before this store journals anything.
    left: Vec<Left>,
}

/// A journal left by a store that is gone, locked by this one until it is replayed.
#[derive(Debug)]
struct Left {
    modified: std::time::SystemTime,
    path: PathBuf,
    /// Holds the `flock`.
    _file: File,
}

#[derive(Debug)]
struct Active {
    /// Holds the `flock` that tells other stores this journal is live.
    file: File,
    path: PathBuf,
    offset: u64,
}

impl Journal {
    /// Replays what stores that are gone left in `<root>/journal`, then starts a journal of
    /// this store's own.
    ///
    /// Opening never needs fresh space: when the replay meets a full disk (or another
    /// transient I/O error) the journals stay, locked, to be replayed before this store's
    /// first write; when there is no room for a journal of its own, it is made at the first
    /// write. Until then the store reads, and its writes fail with the disk's error.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let dir = root.join("journal");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let instance = crate::UploadId::random().as_str()[..16].to_owned();
        let (tx, rx) = mpsc::channel::<Active>();
        let sync_root = root.to_owned();
        std::thread::Builder::new()
            .name("wharf-journal".into())
            .spawn(move || {
                // Everything a full journal describes was applied before it was retired. Once
                // one could not be synced and removed, the later ones are kept too: a replay
                // must never apply an older journal over a newer one's writes.
                let mut in_order = true;
                for full in rx {
                    in_order = in_order
                        && sync_fs(&sync_root).is_ok()
                        && std::fs::remove_file(&full.path).is_ok()
                        && sync_dir(&sync_root.join("journal")).is_ok();
                }
            })
            .map_err(|e| Error::io("spawn the journal thread", &dir, e))?;
        let journal = Self {
            root: root.to_owned(),
            instance,
            state: Mutex::new(State { active: None, next_seq: 1, left: find_left(root)? }),
            retire: tx,
            quarantined: std::sync::atomic::AtomicU64::new(0),
            brief: Mutex::default(),
            brief_count: std::sync::atomic::AtomicUsize::new(0),
        };
        let mut state = journal.lock();
        if let Err(e) = journal.ready(&mut state) {
            if !transient(&e) {
                return Err(e);
            }
            tracing::error!(
                error = %e,
                "the store opened read-only: its journal cannot be replayed or started yet; \
                 writes fail until the storage has room again, then the journal is replayed first"
            );
        }
        drop(state);
        Ok(journal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replays the journals left behind, if any, and makes this store's own journal, if it has
    /// none: what must hold before a batch is journaled.
    fn ready(&self, state: &mut State) -> Result<()> {
        if !state.left.is_empty() {
            let quarantined = replay(&self.root, &state.left)?;
            self.quarantined.fetch_add(quarantined, std::sync::atomic::Ordering::Relaxed);
            state.left.clear();
        }
        if state.active.is_none() {
            state.active = Some(Active::create(&self.root.join("journal"), &self.instance, state.next_seq)?);
            state.next_seq += 1;
        }
        Ok(())
    }

    /// How many records or damaged tails replays moved to the quarantine folder.
    pub(crate) fn quarantined(&self) -> u64 {
        self.quarantined.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stages `writes`, appends them as one record, makes it durable, then applies them
    /// (blocking). The writes must have been checked ([`Write::check`]). A batch that cannot
    /// be staged is refused with nothing journaled; one whose journal write or apply fails is
    /// cancelled in the journal before the error is returned, so it is never replayed.
    pub(crate) fn commit(&self, writes: &[Write]) -> Result<()> {
        let record = encode(writes);
        // Appends and applies in one order: a later batch's writes land after an earlier one's.
        let mut state = self.lock();
        self.ready(&mut state)?;
        let staged = Staged::new(&self.root, writes)?;
        let state = &mut *state;
        if let Some(full) = &state.active
            && full.offset > 0
            && full.offset + record.len() as u64 > FILE_SIZE
        {
            // What the full file holds that nothing else does goes to disk first; the
            // retiring thread's sync then covers it.
            self.write_out("")?;
            let next = Active::create(&self.root.join("journal"), &self.instance, state.next_seq)?;
            state.next_seq += 1;
            let full = state.active.replace(next).expect("made ready");
            // If the thread is gone the file stays, to be replayed (harmlessly) on next open.
            let _ = self.retire.send(full);
        }
        let active = state.active.as_mut().expect("made ready");
        let at = active.offset;
        if let Err(e) = active.file.write_all_at(&record, at).and_then(|()| active.file.sync_data()) {
            // Not acknowledged, and perhaps written only in part: zeros in its place, so that
            // it never replays and the next record, written there, is followed by nothing stale.
            active.overwrite(at, &vec![0; record.len()]);
            return Err(Error::io("append to the journal", &active.path, e));
        }
        active.offset += record.len() as u64;
        crash_point(writes);
        // Durable but not applied (the writes renamed before the failure stay, as after any
        // failed write): cancelled, so that replay does not complete it behind the caller.
        staged.apply().inspect_err(|_| active.overwrite(at, CANCELLED))?;
        self.keep_brief(writes);
        Ok(())
    }

    /// Brings the brief records kept up to date with an applied batch, in its order.
    fn keep_brief(&self, writes: &[Write]) {
        let touches = |w: &Write| match w {
            Write::Brief { .. } => true,
            Write::Set { .. } | Write::Remove { .. } => self.brief_count() > 0,
            Write::Blob { .. } => false,
        };
        if !writes.iter().any(touches) {
            return;
        }
        let mut brief = self.brief_lock();
        for write in writes {
            match write {
                Write::Brief { key, value } => {
                    brief.insert(key.clone(), value.clone());
                }
                Write::Set { key, .. } | Write::Remove { key } => {
                    brief.remove(key);
                }
                Write::Blob { .. } => {}
            }
        }
        self.brief_count.store(brief.len(), std::sync::atomic::Ordering::Release);
    }

    fn brief_lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Bytes>> {
        self.brief.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn brief_count(&self) -> usize {
        self.brief_count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The brief record at `key`, if this store keeps one.
    pub(crate) fn brief(&self, key: &str) -> Option<Bytes> {
        if self.brief_count() == 0 {
            return None;
        }
        self.brief_lock().get(key).cloned()
    }

    /// The keys of the brief records kept that start with `prefix`, after `after`, sorted, at
    /// most `limit`.
    pub(crate) fn brief_keys(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        if self.brief_count() == 0 {
            return Vec::new();
        }
        let brief = self.brief_lock();
        let from = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        brief
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Writes the brief records under `prefix` out as ordinary records (blocking), for every
    /// process to see. They are in the journal already: no sync is needed.
    pub(crate) fn publish(&self, prefix: &str) -> Result<()> {
        if self.brief_count() == 0 {
            return Ok(());
        }
        // In the order of batches: no batch applies between the files written and the keys
        // forgotten.
        let _state = self.lock();
        self.write_out(prefix)
    }

    /// Writes the brief records under `prefix` out and forgets them; the caller holds the
    /// state lock. A failure (a full disk) forgets nothing.
    fn write_out(&self, prefix: &str) -> Result<()> {
        let mut brief = self.brief_lock();
        let sets: Vec<Write> = brief
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(key, value)| Write::Set { key: key.clone(), value: value.clone() })
            .collect();
        if sets.is_empty() {
            return Ok(());
        }
        Staged::new(&self.root, &sets)?.apply()?;
        for set in &sets {
            if let Write::Set { key, .. } = set {
                brief.remove(key);
            }
        }
        self.brief_count.store(brief.len(), std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

impl Drop for Journal {
    /// A store closed: the brief records it kept are written out, for the stores still open
    /// on the directory to see now (they are in the journal this store leaves, which the next
    /// store opened here replays; a crash leaves them to that replay alone).
    fn drop(&mut self) {
        if self.brief_count() > 0
            && let Err(e) = self.write_out("")
        {
            tracing::warn!(error = %e, "brief records could not be written out at close; the next open replays them");
        }
    }
}

/// A debug build started with `WHARF_TEST_KILL_AFTER_JOURNAL=<text>` kills itself (SIGKILL)
/// right after a batch that writes a key containing `<text>` is durable in the journal, before
/// it is applied: the crash the replay exists for, made on purpose by the tests.
fn crash_point(writes: &[Write]) {
    #[cfg(debug_assertions)]
    {
        static KILL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if let Some(text) = KILL.get_or_init(|| std::env::var("WHARF_TEST_KILL_AFTER_JOURNAL").ok())
            && writes.iter().any(|w| matches!(w, Write::Set { key, .. } | Write::Brief { key, .. } | Write::Remove { key } if key.contains(text.as_str())))
        {
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = writes;
}

impl Active {
    /// A new journal file, zero-filled; nothing is left of it when that fails (a full disk).
    fn create(dir: &Path, instance: &str, seq: u64) -> Result<Self> {
        let path = dir.join(format!("{instance}-{seq:08}.log"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let filled = (|| {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .map_err(|e| Error::io("lock", &path, e.into()))?;
            let zeros = vec![0u8; 1024 * 1024];
            for chunk in 0..FILE_SIZE / zeros.len() as u64 {
                file.write_all_at(&zeros, chunk * zeros.len() as u64)
                    .map_err(|e| Error::io("write", &path, e))?;
            }
            file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
            sync_dir(dir)
        })();
        if let Err(e) = filled {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Self { file, path, offset: 0 })
    }

    /// Writes `bytes` at `at`, durably (best effort: the disk is already failing).
    fn overwrite(&self, at: u64, bytes: &[u8]) {
        let _ = self.file.write_all_at(bytes, at).and_then(|()| self.file.sync_data());
    }
}

/// A batch made ready to apply: directories created, contents written to `tmp/`. Applying is
/// one rename (or removal) per write; staged files not applied are removed on drop.
struct Staged {
    records: PathBuf,
    steps: Vec<Step>,
}

enum Step {
    Place { temp: Option<PathBuf>, to: PathBuf },
    Remove(PathBuf),
}

impl Staged {
    fn new(root: &Path, writes: &[Write]) -> Result<Self> {
        let mut staged = Self { records: root.join("records"), steps: Vec::with_capacity(writes.len()) };
        for write in writes {
            let (to, content) = match write {
                Write::Blob { digest, bytes } => {
                    let path = blob_path(root, digest);
                    if path.exists() {
                        continue;
                    }
                    (path, bytes)
                }
                Write::Set { key, value } => (record_path(root, key), value),
                Write::Remove { key } => {
                    staged.steps.push(Step::Remove(record_path(root, key)));
                    continue;
                }
                // Kept in memory by the journal, not written.
                Write::Brief { .. } => continue,
            };
            let parent = to.parent().expect("below the root");
            // Made before the journal write (a full disk refuses the batch whole); one `statx`
            // when it exists, as most do (`create_dir_all` would try a `mkdir` first).
            if !parent.is_dir() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
            }
            let temp = root.join("tmp").join(crate::UploadId::random().as_str());
            staged.steps.push(Step::Place { temp: Some(temp.clone()), to });
            std::fs::write(&temp, content).map_err(|e| Error::io("write", &temp, e))?;
        }
        Ok(staged)
    }

    /// Renames every staged file into place and removes what the batch removes, in order.
    fn apply(mut self) -> Result<()> {
        for step in &mut self.steps {
            match step {
                Step::Place { temp, to } => {
                    let from = temp.as_ref().expect("applied once");
                    let mut result = std::fs::rename(from, &*to);
                    // Another store on the directory may have pruned the (empty) parent.
                    for _ in 0..3 {
                        match &result {
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound && from.exists() => {
                                let _ = std::fs::create_dir_all(to.parent().expect("below the root"));
                                result = std::fs::rename(from, &*to);
                            }
                            _ => break,
                        }
                    }
                    result.map_err(|e| Error::io("rename", &*to, e))?;
                    *temp = None;
                }
                Step::Remove(path) => match std::fs::remove_file(&*path) {
                    Ok(()) => prune(&self.records, path),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            || e.kind() == std::io::ErrorKind::NotADirectory => {}
                    Err(e) => return Err(Error::io("remove", &*path, e)),
                },
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for step in &self.steps {
            if let Step::Place { temp: Some(temp), .. } = step {
                let _ = std::fs::remove_file(temp);
            }
        }
    }
}

/// Removes the directories above a removed record that are left empty, up to `records/`.
fn prune(records: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir {
        if d == records || !d.starts_with(records) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// The journals in `<root>/journal` that no live store holds, oldest first, locked.
fn find_left(root: &Path) -> Result<Vec<Left>> {
    let dir = root.join("journal");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a live store's journal
        }
        // A live store retires a full journal by removing it, then unlocking: a file that is
        // no longer at its path was just retired, not left behind.
        let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        if std::fs::metadata(&path).map_or(true, |m| m.ino() != meta.ino()) {
            continue;
        }
        let modified = meta.modified().map_err(|e| Error::io("stat", &path, e))?;
        found.push(Left { modified, path, _file: file });
    }
    found.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
    Ok(found)
}

/// Whether an error may go away by itself (no room, an I/O error of the device, a time-out):
/// a journaled batch that meets one is replayed later, never set aside.
fn transient(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => {
            e.fault().is_some()
                || source.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
                || matches!(
                    source.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::OutOfMemory
                        | std::io::ErrorKind::ResourceBusy
                        | std::io::ErrorKind::WouldBlock
                )
        }
        _ => e.fault().is_some(),
    }
}

/// Replays the journals `left` (oldest first) over what is on disk, syncs, and removes them;
/// returns how many records or damaged tails went to `<root>/quarantine/`.
///
/// The replay brings every key to the last value the journals give it, writing only what
/// differs from the disk, in the order of those last writes (a batch's blobs and records
/// before its tags, as they were written): journals whose batches were all applied before the
/// crash, as nearly all are, replay without writing a byte, so a full disk does not stop it.
/// A write that meets a transient error stops the replay with that error, and nothing is
/// removed or set aside: the journals stay, to be replayed again. A write that fails
/// otherwise (a path blocked by a stray file) goes to quarantine, and the replay goes on.
fn replay(root: &Path, left: &[Left]) -> Result<u64> {
    if left.is_empty() {
        return Ok(0);
    }
    let mut quarantined = 0;
    // Key → the last write to it, with where it came from; blobs by digest.
    let mut last: std::collections::HashMap<String, (usize, Write, PathBuf, usize)> =
        std::collections::HashMap::new();
    let mut order = 0;
    let mut unreadable = Vec::new();
    for journal in left {
        let path = &journal.path;
        let data = match std::fs::read(path).map_err(|e| Error::io("read", path, e)) {
            Ok(data) => data,
            Err(e) if transient(&e) => return Err(e),
            Err(e) => {
                tracing::error!(journal = %path.display(), error = %e, "a journal could not be read; it is moved to quarantine");
                unreadable.push(path.clone());
                continue;
            }
        };
        let scan = scan(&data);
        for record in scan.records {
            for write in record.writes {
                // A blob is applied only if it still verifies (it always should).
                if write.check().is_err() {
                    continue;
                }
                let key = match &write {
                    Write::Blob { digest, .. } => format!("blob {digest}"),
                    Write::Set { key, .. } | Write::Brief { key, .. } | Write::Remove { key } => {
                        format!("key {key}")
                    }
                };
                order += 1;
                last.insert(key, (order, write, path.clone(), record.offset));
            }
        }
        match scan.tail {
            Tail::Clean => {}
            Tail::Torn => tracing::warn!(
                journal = %path.display(), offset = scan.end,
                "dropped a journal record torn by a crash (it was never acknowledged)"
            ),
            Tail::Damaged { len } => {
                quarantine(root, path, scan.end, &data[scan.end..scan.end + len])?;
                tracing::error!(
                    journal = %path.display(), offset = scan.end, bytes = len,
                    "a journal is damaged after its last intact record; the rest was moved to quarantine"
                );
                quarantined += 1;
            }
        }
    }
    let mut writes: Vec<_> = last.into_values().collect();
    writes.sort_by_key(|w| w.0);
    for (_, write, path, offset) in &writes {
        if applied(root, write) {
            continue;
        }
        match Staged::new(root, std::slice::from_ref(write)).and_then(Staged::apply) {
            Ok(()) => {}
            Err(e) if transient(&e) => return Err(e),
            Err(e) => {
                quarantine(root, path, *offset, &encode(std::slice::from_ref(write)))?;
                tracing::error!(
                    journal = %path.display(), offset, error = %e,
                    "a journaled write could not be replayed; it was moved to quarantine"
                );
                quarantined += 1;
            }
        }
    }
    for path in &unreadable {
        let to = root.join("quarantine").join(path.file_name().expect("a journal file name"));
        // Moved whole, as it is: set aside in one step, nothing of it removed.
        std::fs::create_dir_all(root.join("quarantine"))
            .and_then(|()| std::fs::rename(path, &to))
            .map_err(|e| Error::io("move to quarantine", path, e))?;
        quarantined += 1;
    }
    sync_fs(root)?;
    // Oldest first, each removal durable before the next: what a crash here leaves is always
    // the newest journals, which replay correctly over what is on disk.
    let dir = root.join("journal");
    for journal in left {
        match std::fs::remove_file(&journal.path) {
            // Not found: an unreadable journal, moved to quarantine instead.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", &journal.path, e));
            }
            _ => {}
        }
        sync_dir(&dir)?;
    }
    Ok(quarantined)
}

/// Whether the disk already holds what `write` makes (read, never written).
fn applied(root: &Path, write: &Write) -> bool {
    match write {
        Write::Blob { digest, .. } => blob_path(root, digest).exists(),
        Write::Set { key, value } | Write::Brief { key, value } => {
            std::fs::read(record_path(root, key)).is_ok_and(|v| v == *value)
        }
        Write::Remove { key } => {
            matches!(
                std::fs::symlink_metadata(record_path(root, key)),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
            )
        }
    }
}

/// Writes `bytes`, found at `offset` of `journal`, to `<root>/quarantine/`, durably.
fn quarantine(root: &Path, journal: &Path, offset: usize, bytes: &[u8]) -> Result<()> {
    let dir = root.join("quarantine");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let stem = journal.file_stem().and_then(|s| s.to_str()).unwrap_or("journal");
    let path = dir.join(format!("{stem}-at-{offset}.bin"));
    std::fs::write(&path, bytes)
        .and_then(|()| File::open(&path)?.sync_all())
        .map_err(|e| Error::io("write", &path, e))?;
    sync_dir(&dir)
}

/// One journal record holding `writes`.
pub fn encode(writes: &[Write]) -> Vec<u8> {
    let mut payload = Vec::new();
    let count = u32::try_from(writes.len()).expect("fewer than 2^32 writes");
    payload.extend_from_slice(&count.to_le_bytes());
    let field = |payload: &mut Vec<u8>, s: &[u8], wide: bool| {
        if wide {
            payload.extend_from_slice(&u32::try_from(s.len()).expect("under 4 GiB").to_le_bytes());
        } else {
            payload.extend_from_slice(&u16::try_from(s.len()).expect("keys are short").to_le_bytes());
        }
        payload.extend_from_slice(s);
    };
    for write in writes {
        match write {
            Write::Blob { digest, bytes } => {
                payload.push(0);
                field(&mut payload, digest.as_str().as_bytes(), false);
                field(&mut payload, bytes, true);
            }
            // A brief record replays as an ordinary one.
            Write::Set { key, value } | Write::Brief { key, value } => {
                payload.push(1);
                field(&mut payload, key.as_bytes(), false);
                field(&mut payload, value, true);
            }
            Write::Remove { key } => {
                payload.push(2);
                field(&mut payload, key.as_bytes(), false);
            }
        }
    }
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(MAGIC);
    record.extend_from_slice(&u32::try_from(payload.len()).expect("under 4 GiB").to_le_bytes());
    record.extend_from_slice(&Sha256::digest(&payload));
    record.extend_from_slice(&payload);
    record
}

/// The batches of a journal file, in order, up to the first record that is not complete and
/// intact; cancelled records are skipped. Never panics, whatever the bytes.
pub fn decode(data: &[u8]) -> Vec<Vec<Write>> {
    scan(data).records.into_iter().map(|r| r.writes).collect()
}

/// A journal file read: its intact, uncancelled records, where reading stopped, what follows.
struct Scan {
    records: Vec<Record>,
    end: usize,
    tail: Tail,
}

/// One intact record: where it starts, its writes.
struct Record {
    offset: usize,
    writes: Vec<Write>,
}

/// What follows the last intact record.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// Only zeros (the file's preallocated space).
    Clean,
    /// The start of one record, then zeros: a write a crash cut short, never acknowledged.
    Torn,
    /// Anything else, `len` bytes up to the last non-zero one: a damaged journal.
    Damaged { len: usize },
}

fn scan(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| r.len() >= HEADER) {
        let magic = &rest[..4];
        if magic != MAGIC && magic != CANCELLED {
            break;
        }
        let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
        let Some(payload) = rest.get(HEADER..HEADER.saturating_add(len)) else {
            break;
        };
        if Sha256::digest(payload).as_slice() != &rest[8..40] {
            break;
        }
        let Some(writes) = decode_payload(payload) else {
            break;
        };
        if magic == MAGIC {
            records.push(Record { offset: at, writes });
        }
        at += HEADER + len;
    }
    let rest = &data[at.min(data.len())..];
    let tail = match rest.iter().rposition(|&b| b != 0) {
        None => Tail::Clean,
        Some(last) => {
            // A torn record starts as a record does, and nothing lies past its declared end.
            let starts = [MAGIC, CANCELLED].iter().any(|m| m.starts_with(&rest[..rest.len().min(4)]));
            let extent = rest.get(4..8).map_or(rest.len(), |l| {
                HEADER.saturating_add(u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
            });
            if starts && last < extent { Tail::Torn } else { Tail::Damaged { len: last + 1 } }
        }
    };
    Scan { records, end: at, tail }
}

fn decode_payload(mut p: &[u8]) -> Option<Vec<Write>> {
    fn field<'a>(p: &mut &'a [u8], wide: bool) -> Option<&'a [u8]> {
        let len = if wide {
            if p.len() < 4 {
                return None;
            }
            p.get_u32_le() as usize
        } else {
            if p.len() < 2 {
                return None;
            }
            usize::from(p.get_u16_le())
        };
        let (value, rest) = (p.get(..len)?, p.get(len..)?);
        *p = rest;
        Some(value)
    }
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    if p.len() < 4 {
        return None;
    }
    let count = p.get_u32_le();
    let mut writes = Vec::new();
    for _ in 0..count {
        if p.is_empty() {
            return None;
        }
        let write = match p.get_u8() {
            0 => {
                let digest: Digest = text(field(&mut p, false)?)?.parse().ok()?;
                Write::Blob { digest, bytes: Bytes::copy_from_slice(field(&mut p, true)?) }
            }
            1 => {
                let key = text(field(&mut p, false)?)?;
                Write::Set { key, value: Bytes::copy_from_slice(field(&mut p, true)?) }
            }
            2 => Write::Remove { key: text(field(&mut p, false)?)? },
            _ => return None,
        };
        // Keys are re-checked: a record never names a path outside `meta/`.
        if let Write::Set { key, .. } | Write::Remove { key } = &write {
            crate::check_key(key).ok()?;
        }
        writes.push(write);
    }
    p.is_empty().then_some(writes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Vec<Write> {
        vec![
            Write::Blob { digest: Digest::sha256(b"{}"), bytes: Bytes::from_static(b"{}") },
            Write::Set { key: "a/b".into(), value: Bytes::from_static(b"value") },
            Write::Remove { key: "a/c".into() },
        ]
    }

    #[test]
    fn records_round_trip_and_stop_at_the_first_torn_one() {
        let one = encode(&sample());
        let two = encode(&[Write::Set { key: "x".into(), value: Bytes::new() }]);
        let mut file = [one.clone(), two.clone(), vec![0; 100]].concat();
        assert_eq!(decode(&file), vec![sample(), vec![Write::Set { key: "x".into(), value: Bytes::new() }]]);
        // A record cut short, or with a flipped byte, ends the journal there.
        file.truncate(one.len() + two.len() - 1);
        assert_eq!(decode(&file), vec![sample()]);
        let mut flipped = [one.clone(), two].concat();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(decode(&flipped), vec![sample()]);
        assert!(decode(&[]).is_empty());
        assert!(decode(&one[..HEADER]).is_empty());
    }

    proptest! {
        #[test]
        fn the_reader_holds_its_invariants_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            crate::fuzzing::journal(&data);
        }

        #[test]
        fn the_reader_holds_its_invariants_on_damaged_records(cut in 0usize..200, flip in 0usize..200) {
            let mut file = [encode(&sample()), encode(&sample()[1..])].concat();
            if let Some(b) = file.get_mut(flip) {
                *b ^= 0x20;
            }
            file.truncate(file.len().saturating_sub(cut));
            crate::fuzzing::journal(&file);
        }
    }

    /// The fuzzer's seed (`tests/data/journal/`, written by an independent encoder) reads as
    /// the manifest PUT and tag delete it holds.
    #[test]
    fn the_committed_seed_journal_reads_as_written() {
        let seed = include_bytes!("../tests/data/journal/two-batches.log");
        let batches = decode(seed);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 1]);
        let Write::Blob { digest, bytes } = &batches[0][0] else { panic!("the first write is the manifest") };
        digest.verify(bytes).expect("the seed's blob verifies");
        assert!(batches[0][0].check().is_ok());
        assert_eq!(
            batches[1],
            [Write::Remove { key: "repositories/library/hello/_manifests/tags/latest".into() }]
        );
        crate::fuzzing::journal(seed);
    }

    #[test]
    fn a_record_naming_a_path_outside_meta_is_not_replayed() {
        let bad = encode(&[Write::Set { key: "../escape".into(), value: Bytes::new() }]);
        assert!(decode(&bad).is_empty());
    }
}
