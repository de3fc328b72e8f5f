//! `MetaStore`: small durable records beside the blobs (a registry's tags, links, referrers),
//! kept by the same backend so that a restart, or another process on the same storage, sees
//! them.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use wharf_types::Digest;

use crate::error::{Error, Result};
use crate::store::BlobStore;

/// A key: `/`-separated components of `[A-Za-z0-9._-]`, none empty, `.` or `..`, none longer
/// than 255 bytes, at most 1024 bytes in all — safe as a relative path and an object key.
///
/// Keys are a flat namespace on every backend: a key may be a prefix of another (`catalog/org`
/// and `catalog/org/app` are two records, as a registry's repositories `org` and `org/app`
/// need).
pub fn check_key(key: &str) -> Result<()> {
    let valid = !key.is_empty() && key.len() <= 1024 && key.split('/').all(valid_component);
    if valid { Ok(()) } else { Err(Error::Config(format!("invalid metadata key `{}`", key.escape_debug()))) }
}

/// One component of a key: 1 to 255 bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 255
        && c != "."
        && c != ".."
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Small records by key, durable and atomically replaced, with prefix listing.
///
/// Writes are last-writer-wins (no compare-and-swap: S3 engines such as Garage do not honour
/// conditional writes); a registry's records are designed so that this is safe.
#[async_trait]
pub trait MetaStore: Send + Sync + fmt::Debug {
    /// The record at `key`.
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>>;
    /// Whether there is a record at `key`: [`get_meta`](Self::get_meta) without the bytes
    /// (on [`FsStore`](crate::FsStore) one `fstatat` instead of opening and reading the file).
    async fn meta_exists(&self, key: &str) -> Result<bool> {
        Ok(self.get_meta(key).await?.is_some())
    }
    /// Writes the record at `key`, replacing any; durable when it returns.
    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()>;
    /// Removes the record at `key`; `false` when there was none.
    async fn remove_meta(&self, key: &str) -> Result<bool>;
    /// Every key that starts with `prefix` (a key ending in `/`), sorted.
    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>>;
    /// A page of [`list_meta`](Self::list_meta): the keys after `after` (when given), at most
    /// `limit`. The backends here answer it in time proportional to the page, not to the
    /// number of keys under `prefix` (S3 `start-after` and max keys; sorted structures in
    /// memory and on disk); this default lists everything and cuts.
    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let mut keys = self.list_meta(prefix).await?;
        if let Some(after) = after {
            keys.retain(|k| k.as_str() > after);
        }
        keys.truncate(limit);
        Ok(keys)
    }
    /// Makes the brief records under `prefix` ([`Write::Brief`]) that this store keeps to
    /// itself records like any other, seen by every process on the storage. Nothing to do for
    /// backends that write every record out at once (the default).
    async fn publish(&self, prefix: &str) -> Result<()> {
        let _ = prefix;
        Ok(())
    }
    /// Applies `steps` in order, the writes within a step in any order; durable when it
    /// returns. Every key and blob digest is checked first: a bad one fails the call and
    /// writes nothing. After a crash, no write of a step is present without all the writes of
    /// the steps before it ([`FsStore`](crate::FsStore) journals the whole batch, so it is atomic there).
    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()>;
    /// How many journal records or fragments the backend could not replay and moved aside
    /// since it was opened (see [`FsStore`](crate::FsStore)'s quarantine); 0 for backends without a journal.
    fn quarantined(&self) -> u64 {
        0
    }
}

/// One write of a [`MetaStore::write_steps`] batch.
#[derive(Clone, PartialEq, Eq)]
pub enum Write {
    /// A small blob (a manifest), stored under its digest once verified.
    Blob {
        /// What the bytes must hash to.
        digest: Digest,
        /// The bytes.
        bytes: Bytes,
    },
    /// Sets the record at `key`.
    Set {
        /// The key, as [`check_key`] accepts.
        key: String,
        /// The record.
        value: Bytes,
    },
    /// Sets the record at `key`, expected to be removed soon by this same process (an event
    /// on its way out): as durable as [`Set`](Self::Set), and seen by this store's own reads
    /// and listings at once, but a store may keep it to itself — [`FsStore`](crate::FsStore)
    /// keeps it in its journal and in memory instead of writing a file that is removed a
    /// moment later — until it is removed, set again, or [`MetaStore::publish`]ed. Other
    /// processes on the storage may not see it until then; after a crash it is an ordinary
    /// record. Backends without a journal write it as a `Set`.
    Brief {
        /// The key, as [`check_key`] accepts.
        key: String,
        /// The record.
        value: Bytes,
    },
    /// Removes the record at `key`, if any.
    Remove {
        /// The key, as [`check_key`] accepts.
        key: String,
    },
}

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob { digest, bytes } => write!(f, "Blob({digest}, {} bytes)", bytes.len()),
            Self::Set { key, value } => write!(f, "Set({key}, {} bytes)", value.len()),
            Self::Brief { key, value } => write!(f, "Brief({key}, {} bytes)", value.len()),
            Self::Remove { key } => write!(f, "Remove({key})"),
        }
    }
}

impl Write {
    /// Refuses a bad key, or blob bytes that do not hash to their digest.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Self::Blob { digest, bytes } => {
                let mut digester = digest.digester();
                digester.update(bytes);
                crate::store::verify(digester, digest).map(drop)
            }
            Self::Set { key, .. } | Self::Brief { key, .. } | Self::Remove { key } => check_key(key),
        }
    }
}

/// `write_steps` for a backend without a journal: every write checked, then step after
/// step, the writes of a step concurrently, each durable before the next step starts.
pub(crate) async fn write_in_steps<S>(store: &S, steps: Vec<Vec<Write>>) -> Result<()>
where
    S: BlobStore + MetaStore + ?Sized,
{
    steps.iter().flatten().try_for_each(Write::check)?;
    for step in steps {
        futures_util::future::try_join_all(step.into_iter().map(|write| async move {
            match write {
                Write::Blob { digest, bytes } => store.put_bytes(&digest, bytes).await.map(drop),
                Write::Set { key, value } | Write::Brief { key, value } => store.set_meta(&key, value).await,
                Write::Remove { key } => store.remove_meta(&key).await.map(drop),
            }
        }))
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<T: MetaStore + ?Sized> MetaStore for std::sync::Arc<T> {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get_meta(key).await
    }
    async fn meta_exists(&self, key: &str) -> Result<bool> {
        (**self).meta_exists(key).await
    }
    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        (**self).set_meta(key, value).await
    }
    async fn remove_meta(&self, key: &str) -> Result<bool> {
        (**self).remove_meta(key).await
    }
    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).list_meta(prefix).await
    }
    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        (**self).list_meta_page(prefix, after, limit).await
    }
    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        (**self).write_steps(steps).await
    }
    async fn publish(&self, prefix: &str) -> Result<()> {
        (**self).publish(prefix).await
    }
    fn quarantined(&self) -> u64 {
        (**self).quarantined()
    }
}
