//! What the core read recently, in memory.
//!
//! [`ManifestCache`]: manifest bytes by digest. Content addressing makes an entry correct
//! forever: whether a repository still holds the manifest is decided by its records, read on
//! every request, never by this cache. Bounded by the memory its entries take (bytes, keys
//! and bookkeeping), oldest entries evicted first.
//!
//! [`Recent`]: where each tag or digest reference pointed when it was last read. Never used
//! while the storage answers (a tag moved by another process is served at once); only when it
//! is unavailable, for at most its time-to-live, so that pulls of what was just pulled go on
//! through a storage outage.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use wharf_types::Digest;

/// The memory the entries may take (manifests are typically 0.5–4 KiB).
const CAPACITY: usize = 8 * 1024 * 1024;
/// What an entry costs besides its bytes and its digest's text (kept twice: map and queue):
/// the `Digest`s, the `Bytes` handle, the allocation headers and the map's slot.
const ENTRY_OVERHEAD: usize = 160;

#[derive(Debug, Default)]
pub(crate) struct ManifestCache(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ManifestCache {
    pub(crate) fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: &Digest, bytes: &Bytes) {
        if bytes.len() > CAPACITY / 16 {
            return;
        }
        let mut inner = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.map.contains_key(digest) {
            return;
        }
        inner.bytes += cost(digest, bytes);
        // A copy of exactly these bytes: a slice of a larger buffer (a request body) would
        // keep all of it alive.
        inner.map.insert(digest.clone(), Bytes::copy_from_slice(bytes));
        inner.order.push_back(digest.clone());
        while inner.bytes > CAPACITY {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.map.remove(&oldest) {
                inner.bytes -= cost(&oldest, &evicted);
            }
        }
    }
}

/// References remembered at most (about 200 bytes each).
const RECENT_ENTRIES: usize = 20_000;

/// Where references pointed when last read: repository → reference → digest, media type,
/// size, and when.
#[derive(Debug, Default)]
pub(crate) struct Recent(Mutex<RecentInner>);

#[derive(Debug, Default)]
struct RecentInner {
    repos: HashMap<String, HashMap<String, Located>>,
    entries: usize,
}

/// A reference's manifest as last read, and when.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    at: std::time::Instant,
}

impl Recent {
    /// Remembers where `reference` of `repo` points (written again only after a tenth of
    /// `ttl`: the hot path mostly only looks).
    pub(crate) fn remember(
        &self,
        repo: &str,
        reference: &str,
        (digest, media_type, size): (&Digest, &str, u64),
        ttl: std::time::Duration,
    ) {
        let mut inner = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = inner.repos.get(repo).and_then(|refs| refs.get(reference))
            && known.digest == *digest
            && known.at.elapsed() < ttl / 10
        {
            return;
        }
        if inner.entries >= RECENT_ENTRIES {
            for refs in inner.repos.values_mut() {
                refs.retain(|_, l| l.at.elapsed() < ttl);
            }
            inner.repos.retain(|_, refs| !refs.is_empty());
            inner.entries = inner.repos.values().map(HashMap::len).sum();
            if inner.entries >= RECENT_ENTRIES {
                return;
            }
        }
        let located = Located {
            digest: digest.clone(),
            media_type: media_type.to_owned(),
            size,
            at: std::time::Instant::now(),
        };
        let refs = inner.repos.entry(repo.to_owned()).or_default();
        let added = refs.insert(reference.to_owned(), located).is_none();
        inner.entries += usize::from(added);
    }

    /// Where `reference` of `repo` pointed, if read within `ttl`.
    pub(crate) fn recall(&self, repo: &str, reference: &str, ttl: std::time::Duration) -> Option<Located> {
        let inner = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.repos.get(repo)?.get(reference).filter(|l| l.at.elapsed() < ttl).cloned()
    }
}

/// The memory an entry takes.
fn cost(digest: &Digest, bytes: &Bytes) -> usize {
    bytes.len() + 2 * digest.as_str().len() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_size_oldest_first() {
        let cache = ManifestCache::default();
        let entry = Bytes::from(vec![0u8; CAPACITY / 16]);
        let digests: Vec<Digest> = (0..20u8).map(|i| Digest::sha256(&[i])).collect();
        for d in &digests {
            cache.insert(d, &entry);
        }
        assert!(cache.get(&digests[0]).is_none(), "the oldest went first");
        assert!(cache.get(&digests[19]).is_some());
        let kept = digests.iter().filter(|d| cache.get(d).is_some()).count();
        assert_eq!(kept, 15, "16 entries' bytes fill it, with their keys and bookkeeping 15");
        cache.insert(&Digest::sha256(b"big"), &Bytes::from(vec![0u8; CAPACITY / 16 + 1]));
        assert!(cache.get(&Digest::sha256(b"big")).is_none(), "too large to keep");
    }

    #[test]
    fn small_entries_count_their_bookkeeping() {
        let cache = ManifestCache::default();
        let entry = Bytes::from_static(b"{}");
        let cost = cost(&Digest::sha256(b"0"), &entry);
        for i in 0..(CAPACITY / cost + 100) {
            cache.insert(&Digest::sha256(i.to_string().as_bytes()), &entry);
        }
        let inner = cache.0.lock().expect("lock");
        assert!(inner.bytes <= CAPACITY);
        assert_eq!(inner.map.len(), CAPACITY / cost, "{cost} bytes an entry");
    }
}
