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
//! At replay, a record that still cannot be applied (a disk that changed under us), or bytes
//! after the last intact record that are not a write torn by a crash (a damaged journal), are
//! copied to `<root>/quarantine/<journal>-at-<offset>.bin` with an error in the log and
//! counted ([`FsStore::quarantined_count`](crate::FsStore::quarantined_count), the server's
//! `wharf_store_quarantined` metric); the replay goes on and the store opens.
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
    active: Mutex<Active>,
    /// Full journals, for the background thread to sync and remove, in order (each still
    /// holding its lock, so that no other store replays it meanwhile).
    retire: mpsc::Sender<Active>,
    /// What `open` moved to the quarantine folder.
    quarantined: u64,
}

#[derive(Debug)]
struct Active {
    /// Holds the `flock` that tells other stores this journal is live.
    file: File,
    path: PathBuf,
    seq: u64,
    offset: u64,
}

impl Journal {
    /// Replays what stores that are gone left in `<root>/journal`, then starts a journal of
    /// this store's own.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let dir = root.join("journal");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let quarantined = recover(root)?;
        let instance = crate::UploadId::random().as_str()[..16].to_owned();
        let active = Active::create(&dir, &instance, 1)?;
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
        Ok(Self { root: root.to_owned(), instance, active: Mutex::new(active), retire: tx, quarantined })
    }

    /// How many records or damaged tails `open` moved to the quarantine folder.
    pub(crate) fn quarantined(&self) -> u64 {
        self.quarantined
    }

    /// Stages `writes`, appends them as one record, makes it durable, then applies them
    /// (blocking). The writes must have been checked ([`Write::check`]). A batch that cannot
    /// be staged is refused with nothing journaled; one whose journal write or apply fails is
    /// cancelled in the journal before the error is returned, so it is never replayed.
    pub(crate) fn commit(&self, writes: &[Write]) -> Result<()> {
        let record = encode(writes);
        // Appends and applies in one order: a later batch's writes land after an earlier one's.
        let mut active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let staged = Staged::new(&self.root, writes)?;
        if active.offset > 0 && active.offset + record.len() as u64 > FILE_SIZE {
            let next = Active::create(&self.root.join("journal"), &self.instance, active.seq + 1)?;
            let full = std::mem::replace(&mut *active, next);
            // If the thread is gone the file stays, to be replayed (harmlessly) on next open.
            let _ = self.retire.send(full);
        }
        let at = active.offset;
        if let Err(e) = active.file.write_all_at(&record, at).and_then(|()| active.file.sync_data()) {
            // Not acknowledged, and perhaps written only in part: zeros in its place, so that
            // it never replays and the next record, written there, is followed by nothing stale.
            active.overwrite(at, &vec![0; record.len()]);
            return Err(Error::io("append to the journal", &active.path, e));
        }
        active.offset += record.len() as u64;
        // Durable but not applied (the writes renamed before the failure stay, as after any
        // failed write): cancelled, so that replay does not complete it behind the caller.
        staged.apply().inspect_err(|_| active.overwrite(at, CANCELLED))
    }
}

impl Active {
    fn create(dir: &Path, instance: &str, seq: u64) -> Result<Self> {
        let path = dir.join(format!("{instance}-{seq:08}.log"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io("lock", &path, e.into()))?;
        let zeros = vec![0u8; 1024 * 1024];
        for chunk in 0..FILE_SIZE / zeros.len() as u64 {
            file.write_all_at(&zeros, chunk * zeros.len() as u64)
                .map_err(|e| Error::io("write", &path, e))?;
        }
        file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        sync_dir(dir)?;
        Ok(Self { file, path, seq, offset: 0 })
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
            };
            let parent = to.parent().expect("below the root");
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
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

/// Replays, syncs and removes every journal in `<root>/journal` that no live store holds;
/// returns how many records or damaged tails it moved to `<root>/quarantine/` instead.
fn recover(root: &Path) -> Result<u64> {
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
        found.push((modified, path, file));
    }
    if found.is_empty() {
        return Ok(0);
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut quarantined = 0;
    for (_, path, file) in &found {
        let mut data = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut &*file, &mut data) {
            // The whole file goes aside as it is, for a person to look at.
            let to = root.join("quarantine").join(path.file_name().expect("a journal file name"));
            std::fs::create_dir_all(root.join("quarantine"))
                .and_then(|()| std::fs::rename(path, &to))
                .map_err(|e| Error::io("move to quarantine", path, e))?;
            tracing::error!(journal = %path.display(), error = %e, "a journal could not be read; it was moved to quarantine");
            quarantined += 1;
            continue;
        }
        let scan = scan(&data);
        for record in &scan.records {
            // A blob is applied only if it still verifies (it always should).
            let writes: Vec<Write> = record.writes.iter().filter(|w| w.check().is_ok()).cloned().collect();
            if let Err(e) = Staged::new(root, &writes).and_then(Staged::apply) {
                tracing::error!(
                    journal = %path.display(), offset = record.offset, error = %e,
                    "a journaled batch could not be replayed; its record was moved to quarantine"
                );
                quarantine(root, path, record.offset, &data[record.offset..record.offset + record.len])?;
                quarantined += 1;
            }
        }
        match scan.tail {
            Tail::Clean => {}
            Tail::Torn => tracing::warn!(
                journal = %path.display(), offset = scan.end,
                "dropped a journal record torn by a crash (it was never acknowledged)"
            ),
            Tail::Damaged { len } => {
                tracing::error!(
                    journal = %path.display(), offset = scan.end, bytes = len,
                    "a journal is damaged after its last intact record; the rest was moved to quarantine"
                );
                quarantine(root, path, scan.end, &data[scan.end..scan.end + len])?;
                quarantined += 1;
            }
        }
    }
    sync_fs(root)?;
    // Oldest first, each removal durable before the next: what a crash here leaves is always
    // the newest journals, which replay correctly over what is on disk.
    for (_, path, _) in &found {
        match std::fs::remove_file(path) {
            // Not found: an unreadable journal, moved to quarantine instead.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("remove", path, e)),
            _ => {}
        }
        sync_dir(&dir)?;
    }
    Ok(quarantined)
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
            Write::Set { key, value } => {
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

/// One intact record: where it starts, its length in the file, its writes.
struct Record {
    offset: usize,
    len: usize,
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
            records.push(Record { offset: at, len: HEADER + len, writes });
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
