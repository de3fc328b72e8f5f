//! The writers' side of collection: the epoch read before a write that makes something live,
//! and the confirmation after it (see the module docs of [`lifecycle`](crate::lifecycle)
//! for the argument).

use std::time::Duration;

use bytes::Bytes;
use wharf_types::{Digest, Manifest, Repository, Tag};

use wharf_store::Storage;

use super::keys::{self, TagRecord};
use crate::error::{Error, Result};

/// How long the collector's lease holds without renewal.
pub(crate) const GC_LEASE_TIME: Duration = Duration::from_secs(30);

/// The collection epoch as a writer read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Epoch(Option<Bytes>);

impl Epoch {
    /// Reads the epoch (one small record).
    pub(crate) async fn read(storage: &dyn Storage) -> Result<Self> {
        Ok(Self(storage.get_meta(keys::GC_EPOCH).await?))
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
    pub(crate) fn of_manifest(
        repo: &Repository,
        manifest: &Manifest,
        tags: &[Tag],
        references_held: bool,
    ) -> Vec<Self> {
        let is_index = manifest.as_index().is_some();
        let mut checks: Vec<Self> = manifest
            .references()
            .filter(|d| references_held && !d.is_non_distributable())
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
            Self::Link(_, d) | Self::Blob(_, d) | Self::Manifest(_, d) => keys::doomed_digest(d),
            Self::Tag(repo, tag) => keys::doomed_tag(repo, tag.as_str()),
        }
    }

    /// Whether it is still whole; the error to answer when not.
    async fn verify(&self, storage: &dyn Storage) -> Result<()> {
        let collected = |what: String| {
            Error::Collected(format!("{what} was removed by a concurrent garbage collection; push again"))
        };
        match self {
            Self::Link(repo, d) | Self::Blob(repo, d) => {
                if storage.meta_exists(&keys::layer(repo, d)).await? && storage.stat(d).await?.is_some() {
                    return Ok(());
                }
                Err(match self {
                    Self::Blob(..) => Error::ManifestBlobUnknown(d.clone()),
                    _ => collected(format!("blob {d}")),
                })
            }
            Self::Manifest(repo, d) => {
                if storage.meta_exists(&keys::revision(repo, d)).await? && storage.stat(d).await?.is_some() {
                    return Ok(());
                }
                Err(Error::ManifestBlobUnknown(d.clone()))
            }
            Self::Tag(repo, tag) => {
                if storage
                    .get_meta(&keys::tag(repo, tag.as_str()))
                    .await?
                    .as_deref()
                    .and_then(TagRecord::decode)
                    .is_some()
                {
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
pub(crate) async fn confirm(storage: &dyn Storage, before: &Epoch, checks: &[Check]) -> Result<()> {
    let now = Epoch::read(storage).await?;
    if now == *before && now.idle() {
        return Ok(());
    }
    for check in checks {
        wait_for_verdict(storage, &check.doomed_key()).await?;
    }
    for check in checks {
        check.verify(storage).await?;
    }
    Ok(())
}

/// Waits while `key` (a doomed mark) exists and the collector that wrote it holds its lease.
async fn wait_for_verdict(storage: &dyn Storage, key: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + GC_LEASE_TIME * 2;
    while storage.meta_exists(key).await? {
        if crate::lease::holder(storage, keys::GC_LEASE).await?.is_none()
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
