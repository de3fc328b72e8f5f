//! `MetaStore`: small durable records beside the blobs (a registry's tags, links, referrers),
//! kept by the same backend so that a restart, or another process on the same storage, sees
//! them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::RwLock;

use async_trait::async_trait;
use bytes::Bytes;
#[cfg(feature = "s3")]
use futures_util::TryStreamExt;
#[cfg(feature = "s3")]
use object_store::ObjectStoreExt as _;

use wharf_types::Digest;

use crate::error::{Error, Result};
use crate::fs::FsStore;
use crate::memory::MemoryStore;
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
    /// Applies `steps` in order, the writes within a step in any order; durable when it
    /// returns. Every key and blob digest is checked first: a bad one fails the call and
    /// writes nothing. After a crash, no write of a step is present without all the writes of
    /// the steps before it ([`FsStore`] journals the whole batch, so it is atomic there).
    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()>;
    /// How many journal records or fragments the backend could not replay and moved aside
    /// since it was opened (see [`FsStore`]'s quarantine); 0 for backends without a journal.
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
            Self::Set { key, .. } | Self::Remove { key } => check_key(key),
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
                Write::Set { key, value } => store.set_meta(&key, value).await,
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
    fn quarantined(&self) -> u64 {
        (**self).quarantined()
    }
}

/// The in-memory records of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryMeta(RwLock<BTreeMap<String, Bytes>>);

#[async_trait]
impl MetaStore for MemoryStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        Ok(self.meta.0.read().expect("lock").get(key).cloned())
    }
    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        self.meta.0.write().expect("lock").insert(key.to_owned(), value);
        Ok(())
    }
    async fn remove_meta(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        Ok(self.meta.0.write().expect("lock").remove(key).is_some())
    }
    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_meta_page(prefix, None, usize::MAX).await
    }
    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        use std::ops::Bound;
        let map = self.meta.0.read().expect("lock");
        let from = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(map
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }
    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        write_in_steps(self, steps).await
    }
}

#[async_trait]
impl MetaStore for FsStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        let path = crate::fs::record_path(self.root(), key);
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Some(v.into())),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        self.commit_writes(vec![Write::Set { key: key.to_owned(), value }]).await
    }

    async fn remove_meta(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let path = crate::fs::record_path(self.root(), key);
        let exists = tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file());
        if exists {
            self.commit_writes(vec![Write::Remove { key: key.to_owned() }]).await?;
        }
        Ok(exists)
    }

    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        // One journal record: the batch is atomic, so the order of the steps holds too.
        self.commit_writes(steps.into_iter().flatten().collect()).await
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        self.records_page(prefix, None, usize::MAX).await
    }

    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.records_page(prefix, after, limit).await
    }

    fn quarantined(&self) -> u64 {
        self.quarantined_count()
    }
}

#[cfg(feature = "s3")]
#[async_trait]
impl MetaStore for crate::S3Store {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        match self.object_store().get(&self.meta_key(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        self.object_store().put(&self.meta_key(key), value.into()).await?;
        Ok(())
    }

    async fn remove_meta(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let path = self.meta_key(key);
        match self.object_store().head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match self.object_store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_meta_page(prefix, None, usize::MAX).await
    }

    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let base = self.meta_key("");
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let list_from = if dir_part.is_empty() { base.clone() } else { self.meta_key(dir_part) };
        let base_len = base.as_ref().len();
        // S3 `start-after`: from the longest start of `after` that is a plain object key (keys
        // sort as their objects do); what lies between it and `after` is skipped below.
        let offset = after.filter(|a| *a >= prefix).and_then(|a| {
            let plain = a
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/".contains(c)))
                .map_or(a, |end| &a[..end]);
            let offset = object_store::path::Path::parse(format!("{}/{plain}", base.as_ref())).ok()?;
            // Inside the listed folder only (Garage lists nothing for an offset before it).
            offset.as_ref().starts_with(&format!("{}/", list_from.as_ref())).then_some(offset)
        });
        // The key of a listed object, when it belongs on the page.
        let key_of = |location: &str| {
            let key = location.get(base_len..)?.trim_start_matches('/');
            (key.starts_with(prefix) && after.is_none_or(|a| key > a)).then(|| key.to_owned())
        };
        if limit != usize::MAX
            && let Some(page) = self.list_page(&list_from, offset.as_ref(), limit, key_of).await?
        {
            return Ok(page);
        }
        let mut listing = match &offset {
            Some(offset) => self.object_store().list_with_offset(Some(&list_from), offset),
            None => self.object_store().list(Some(&list_from)),
        };
        let mut out = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            if let Some(key) = key_of(meta.location.as_ref()) {
                out.push(key);
                if out.len() >= limit {
                    break;
                }
            }
        }
        // S3 lists in key order; a whole listing is sorted anyway, for engines that do not.
        if limit == usize::MAX {
            out.sort();
        }
        Ok(out)
    }

    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        write_in_steps(self, steps).await
    }
}
