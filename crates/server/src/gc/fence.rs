//! The writers' side of collection: the epoch read before a write that makes something live,
//! and the confirmation after it (see the module docs of [`gc`](super) for the argument).

use std::time::Duration;

use bytes::Bytes;
use wharf_types::{Digest, Manifest, Repository, Tag};

use crate::error::{Error, Result};
use crate::registry::{Registry, TagRecord, digest_key, repo_key};

/// The record a collector sets to `sweep <run>` before it decides anything and to
/// `idle <run>` when it is done.
pub(crate) const EPOCH: &str = "gc/epoch";
/// The collector's lease: `<owner> <expires, unix ms>`.
pub(crate) const LEASE: &str = "gc/lease";
/// Where the doomed marks live: `gc/doomed/<alg>/<hex>` for a digest (its links, revisions
/// and bytes), `gc/doomed/tags/<hash of repository and tag>` for a tag.
pub(crate) const DOOMED: &str = "gc/doomed/";

/// The mark a collector writes before it re-checks and removes anything of `digest`.
pub(crate) fn doomed_digest(digest: &Digest) -> String {
    format!("{DOOMED}{}", digest_key(digest))
}

/// The mark a collector writes before it re-checks and removes a tag.
pub(crate) fn doomed_tag(repo: &Repository, tag: &str) -> String {
    format!("{DOOMED}tags/{}", Digest::sha256(format!("{repo}:{tag}").as_bytes()).encoded())
}

/// The collection epoch as a writer read it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Epoch(Option<Bytes>);

impl Epoch {
    /// Reads the epoch (one small record).
    pub(crate) async fn read(registry: &Registry) -> Result<Self> {
        Ok(Self(registry.storage().get_meta(EPOCH).await?))
    }

    /// No collection is deciding anything.
    fn idle(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.starts_with(b"idle "))
    }
}

/// Something a write made live, to be found whole after it.
#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// A blob linked by an upload or mount: the link and the bytes.
    Link(Repository, Digest),
    /// A blob a manifest references: the link and the bytes.
    Blob(Repository, Digest),
    /// A manifest an index references, or the pushed manifest itself: revision and bytes.
    Manifest(Repository, Digest),
    /// A tag the push wrote.
    Tag(Repository, Tag),
}

impl Check {
    /// What a manifest PUT made live: its blobs or children, itself and its tags.
    pub(crate) fn of_manifest(repo: &Repository, manifest: &Manifest, tags: &[Tag]) -> Vec<Self> {
        let is_index = manifest.as_index().is_some();
        let mut checks: Vec<Self> = manifest
            .references()
            .filter(|d| !d.is_non_distributable())
            .map(|d| {
                if is_index {
                    Self::Manifest(repo.clone(), d.digest.clone())
                } else {
                    Self::Blob(repo.clone(), d.digest.clone())
                }
            })
            .collect();
        checks.push(Self::Manifest(repo.clone(), manifest.digest().clone()));
        checks.extend(tags.iter().map(|t| Self::Tag(repo.clone(), t.clone())));
        checks
    }

    fn doomed_key(&self) -> String {
        match self {
            Self::Link(_, d) | Self::Blob(_, d) | Self::Manifest(_, d) => doomed_digest(d),
            Self::Tag(repo, tag) => doomed_tag(repo, tag.as_str()),
        }
    }

    /// Whether it is still whole; the error to answer when not.
    async fn verify(&self, registry: &Registry) -> Result<()> {
        let storage = registry.storage();
        let collected = |what: String| {
            Error::Collected(format!("{what} was removed by a concurrent garbage collection; push again"))
        };
        match self {
            Self::Link(repo, d) | Self::Blob(repo, d) => {
                if registry.blob_linked(repo, d).await? && storage.stat(d).await?.is_some() {
                    return Ok(());
                }
                Err(match self {
                    Self::Blob(..) => Error::ManifestBlobUnknown(d.clone()),
                    _ => collected(format!("blob {d}")),
                })
            }
            Self::Manifest(repo, d) => {
                if registry.holds_manifest(repo, d).await? && storage.stat(d).await?.is_some() {
                    return Ok(());
                }
                Err(Error::ManifestBlobUnknown(d.clone()))
            }
            Self::Tag(repo, tag) => {
                let key = repo_key(repo, &format!("_manifests/tags/{tag}"));
                if storage.get_meta(&key).await?.as_deref().and_then(TagRecord::decode).is_some() {
                    return Ok(());
                }
                Err(collected(format!("tag {tag}")))
            }
        }
    }
}

/// After a write that made `checks` live, before it is acknowledged: when no collection
/// started or ran since `before` was read, nothing can have been removed (a collection that
/// starts later sees the write); otherwise waits for the collection's verdict on each
/// (its doomed mark gone, or its lease over) and looks that each is still whole.
pub(crate) async fn confirm(registry: &Registry, before: &Epoch, checks: &[Check]) -> Result<()> {
    if !registry.gc_fence() {
        return Ok(());
    }
    let now = Epoch::read(registry).await?;
    if now == *before && now.idle() {
        return Ok(());
    }
    for check in checks {
        wait_for_verdict(registry, &check.doomed_key()).await?;
    }
    for check in checks {
        check.verify(registry).await?;
    }
    Ok(())
}

/// Waits while `key` (a doomed mark) exists and the collector that wrote it holds its lease.
async fn wait_for_verdict(registry: &Registry, key: &str) -> Result<()> {
    let storage = registry.storage();
    let deadline = tokio::time::Instant::now() + super::lease::LEASE_TIME * 2;
    while storage.get_meta(key).await?.is_some() {
        if !super::lease::Lease::someone_holds(registry).await? || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
