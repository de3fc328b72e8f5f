//! Manifest bytes by digest, in memory. Content addressing makes an entry correct forever:
//! whether a repository still holds the manifest is decided by its records, read on every
//! request, never by this cache. Bounded by total size, oldest entries evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use wharf_types::Digest;

/// The bytes kept at most (manifests are typically 0.5–4 KiB).
const CAPACITY: usize = 8 * 1024 * 1024;

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
        inner.bytes += bytes.len();
        inner.map.insert(digest.clone(), bytes.clone());
        inner.order.push_back(digest.clone());
        while inner.bytes > CAPACITY {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.map.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
    }
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
        assert_eq!(kept, 16);
        cache.insert(&Digest::sha256(b"big"), &Bytes::from(vec![0u8; CAPACITY / 16 + 1]));
        assert!(cache.get(&Digest::sha256(b"big")).is_none(), "too large to keep");
    }
}
