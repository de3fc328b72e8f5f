//! Cache budgets (`max_bytes` of an `[[upstream]]`): the repositories under a mirror's prefix
//! hold at most so many bytes of unique blobs and manifests. A collection finds what they
//! hold — each tag, and each manifest fetched by digest that no tag names, with what it holds
//! here (the manifest, the children and blobs fetched so far) and when it was last pulled —
//! and evicts the least recently pulled until the rest fits. What is evicted is fetched again
//! from the upstream when asked for: a cache miss, never an error.

use std::collections::HashMap;

use wharf_types::{Digest, Repository};

/// The size budget of a mirror's repositories.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheBudget {
    /// The upstream's name (for reports).
    pub name: String,
    /// Where its repositories appear here: every repository under `<prefix>/`.
    pub prefix: Repository,
    /// The bytes they may hold.
    pub max_bytes: u64,
}

impl CacheBudget {
    /// `max_bytes` for the repositories under `prefix`.
    pub fn new(name: &str, prefix: Repository, max_bytes: u64) -> Self {
        Self { name: name.to_owned(), prefix, max_bytes }
    }

    /// Whether the repository is under the budget's prefix.
    pub(crate) fn covers(&self, repo: &Repository) -> bool {
        repo.as_str().strip_prefix(self.prefix.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a cache entry is: a tag, or a manifest no tag names (fetched by digest).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Root {
    Tag(String),
    Manifest(Digest),
}

/// One thing a cache holds.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) repo: Repository,
    pub(crate) root: Root,
    /// When it was last pulled (or, never pulled, fetched): unix seconds.
    pub(crate) used: u64,
    /// The digests it holds here and their sizes: the manifest, its fetched children, their
    /// fetched blobs.
    pub(crate) holds: Vec<(Digest, u64)>,
    /// Never evicted (younger than the grace window, or spared by retention): it counts.
    pub(crate) stays: bool,
}

/// What [`evict`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Eviction {
    /// The entries evicted (their indexes), least recently used first.
    pub(crate) evicted: Vec<usize>,
    /// The unique bytes all entries hold.
    pub(crate) held: u64,
    /// The unique bytes the others hold.
    pub(crate) kept: u64,
}

/// Evicts entries, least recently used first, until what the others hold (each digest
/// counted once) is at most `max`. Entries that [`stay`](Entry::stays) are never evicted.
pub(crate) fn evict(entries: &[Entry], max: u64) -> Eviction {
    let mut users: HashMap<&Digest, (u64, usize)> = HashMap::new();
    for entry in entries {
        for (digest, size) in &entry.holds {
            users.entry(digest).or_insert((*size, 0)).1 += 1;
        }
    }
    let all: u64 = users.values().map(|(size, _)| size).sum();
    let mut held = all;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&entries[a], &entries[b]);
        a.used.cmp(&b.used).then_with(|| (&a.repo, &a.root).cmp(&(&b.repo, &b.root)))
    });
    let mut evicted = Vec::new();
    for i in order {
        if held <= max {
            break;
        }
        if entries[i].stays {
            continue;
        }
        evicted.push(i);
        for (digest, _) in &entries[i].holds {
            if let Some((size, count)) = users.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    held -= *size;
                }
            }
        }
    }
    Eviction { evicted, held: all, kept: held }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str, used: u64, holds: &[(&[u8], u64)]) -> Entry {
        Entry {
            repo: "hub/app".parse().expect("repo"),
            root: Root::Tag(tag.to_owned()),
            used,
            holds: holds.iter().map(|(b, s)| (Digest::sha256(b), *s)).collect(),
            stays: false,
        }
    }

    #[test]
    fn the_least_recently_pulled_go_first_and_shared_bytes_count_once() {
        let entries = [
            entry("old", 10, &[(b"m1", 1), (b"base", 100), (b"a", 50)]),
            entry("new", 30, &[(b"m2", 1), (b"base", 100), (b"b", 50)]),
            entry("mid", 20, &[(b"m3", 1), (b"c", 80)]),
        ];
        let outcome = |evicted: &[usize], kept| Eviction { evicted: evicted.to_vec(), held: 283, kept };
        // 1+100+50 + 1+50 + 1+80 = 283.
        assert_eq!(evict(&entries, 283), outcome(&[], 283));
        // Evicting `old` frees only what it alone holds (base stays for `new`).
        assert_eq!(evict(&entries, 240), outcome(&[0], 232));
        assert_eq!(evict(&entries, 200), outcome(&[0, 2], 151));
        assert_eq!(evict(&entries, 0), outcome(&[0, 2, 1], 0));
        // What must stay stays, and counts.
        let mut entries = entries;
        entries[2].stays = true;
        assert_eq!(evict(&entries, 0), outcome(&[0, 1], 81));
    }

    #[test]
    fn covers_what_is_under_the_prefix() {
        let budget = CacheBudget::new("hub", "hub".parse().expect("repo"), 1);
        assert!(budget.covers(&"hub/library/alpine".parse().expect("repo")));
        assert!(!budget.covers(&"hub".parse().expect("repo")));
        assert!(!budget.covers(&"hubble/x".parse().expect("repo")));
    }
}
