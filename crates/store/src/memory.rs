//! `MemoryStore`: blobs in a map, for tests and ephemeral registries.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use wharf_types::{Digest, Digester};

use crate::error::{Error, Result};
use crate::meta::{MetaStore, Write, check_key, write_in_steps};
use crate::store::{
    BlobInfo, BlobStore, ByteStream, GetResult, Hashed, check_range, session_digester, verify,
};
use crate::upload_id::UploadId;

/// A blob store in memory. Nothing survives the process; everything else holds as for the
/// durable backends.
///
/// # Example
/// ```
/// use wharf_store::{BlobStore, MemoryStore};
/// use wharf_types::Digest;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = MemoryStore::new();
/// let digest = Digest::sha256(b"hello");
/// store.put_bytes(&digest, "hello".into()).await?;
/// assert_eq!(store.read_all(&digest).await?, "hello");
/// assert!(store.put_bytes(&Digest::sha256(b"x"), "y".into()).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    blobs: RwLock<BTreeMap<Digest, (Bytes, SystemTime)>>,
    quarantined: Mutex<BTreeMap<Digest, Bytes>>,
    uploads: Mutex<HashMap<UploadId, Upload>>,
    meta: MemoryMeta,
}

#[derive(Debug)]
struct Upload {
    data: BytesMut,
    digester: Digester,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn blob(&self, digest: &Digest) -> Option<Bytes> {
        self.blobs.read().expect("lock").get(digest).map(|(b, _)| b.clone())
    }

    fn with_upload<T>(&self, id: &UploadId, f: impl FnOnce(&mut Upload) -> T) -> Result<T> {
        let mut uploads = self.uploads.lock().expect("lock");
        uploads.get_mut(id).map(f).ok_or_else(|| Error::UploadNotFound { id: id.clone() })
    }

    fn take_upload(&self, id: &UploadId) -> Result<Upload> {
        self.uploads.lock().expect("lock").remove(id).ok_or_else(|| Error::UploadNotFound { id: id.clone() })
    }
}

#[async_trait]
impl BlobStore for MemoryStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.blob(digest).map(|b| BlobInfo::new(digest.clone(), b.len() as u64)))
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult> {
        let blob = self.blob(digest).ok_or_else(|| Error::BlobNotFound { digest: digest.clone() })?;
        let size = blob.len() as u64;
        let range = check_range(digest, range, size)?;
        #[allow(clippy::cast_possible_truncation)] // within an in-memory blob's length
        let slice = blob.slice(range.start as usize..range.end as usize);
        let stream = if slice.is_empty() {
            stream::empty().boxed()
        } else {
            stream::once(async { Ok(slice) }).boxed()
        };
        Ok(GetResult { size, range, stream, file: None })
    }

    async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo> {
        let mut digester = expected.digester();
        let mut buffer = BytesMut::new();
        let mut input = Hashed::new(data, &mut digester);
        while let Some(chunk) = input.next().await? {
            buffer.extend_from_slice(&chunk);
        }
        verify(digester, expected)?;
        let size = buffer.len() as u64;
        self.blobs.write().expect("lock").insert(expected.clone(), (buffer.freeze(), SystemTime::now()));
        Ok(BlobInfo::new(expected.clone(), size))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blobs.write().expect("lock").remove(digest).is_some())
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>> {
        Ok(self.blobs.read().expect("lock").get(digest).map(|(_, t)| *t))
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let Some((bytes, _)) = self.blobs.write().expect("lock").remove(digest) else { return Ok(false) };
        self.quarantined.lock().expect("lock").insert(digest.clone(), bytes);
        Ok(true)
    }

    fn list(&self) -> BoxStream<'_, Result<Digest>> {
        let digests: Vec<_> = self.blobs.read().expect("lock").keys().cloned().map(Ok).collect();
        stream::iter(digests).boxed()
    }

    async fn begin(&self) -> Result<UploadId> {
        let id = UploadId::random();
        let upload = Upload { data: BytesMut::new(), digester: session_digester() };
        self.uploads.lock().expect("lock").insert(id.clone(), upload);
        Ok(id)
    }

    async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        // No lock is held while the data streams: the running hash is copied out, the bytes
        // gathered aside, and both put back only if the session still ends at `offset`.
        let mut digester = self.with_upload(id, |u| {
            let size = u.data.len() as u64;
            if offset == size {
                Ok(u.digester.clone())
            } else {
                Err(Error::WrongOffset { id: id.clone(), offset, size })
            }
        })??;
        let mut received = BytesMut::new();
        let mut input = Hashed::new(data, &mut digester);
        while let Some(chunk) = input.next().await? {
            received.extend_from_slice(&chunk);
        }
        self.with_upload(id, |u| {
            let size = u.data.len() as u64;
            if offset != size {
                return Err(Error::WrongOffset { id: id.clone(), offset, size });
            }
            u.data.extend_from_slice(&received);
            u.digester = digester;
            Ok(u.data.len() as u64)
        })?
    }

    async fn status(&self, id: &UploadId) -> Result<u64> {
        self.with_upload(id, |u| u.data.len() as u64)
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let upload = self.take_upload(id)?;
        let digester = if upload.digester.algorithm() == expected.algorithm() {
            upload.digester
        } else {
            let mut d = expected.digester();
            d.update(&upload.data);
            d
        };
        verify(digester, expected)?;
        let size = upload.data.len() as u64;
        self.blobs.write().expect("lock").insert(expected.clone(), (upload.data.freeze(), SystemTime::now()));
        Ok(BlobInfo::new(expected.clone(), size))
    }

    async fn abort(&self, id: &UploadId) -> Result<()> {
        self.take_upload(id).map(drop)
    }
}

/// The in-memory records of a [`MemoryStore`].
#[derive(Debug, Default)]
struct MemoryMeta(RwLock<BTreeMap<String, Bytes>>);

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
