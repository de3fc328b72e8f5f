//! `S3Store`: blobs in an S3-compatible bucket (or any `object_store` backend), shared by
//! several stateless servers.
//!
//! # Bucket layout
//!
//! ```text
//! <prefix>/blobs/<algorithm>/<hex>                 committed, verified blobs
//! <prefix>/uploads/<upload id>/session             marks an open session (empty)
//! <prefix>/uploads/<upload id>/chunk-<offset>      one object per append, offset zero-padded
//! <prefix>/uploads/<upload id>/hash-<end>          the SHA-256 state after the chunk ending at <end>
//! <prefix>/meta/<key>                              a `MetaStore` record
//! ```
//!
//! With `redirect=true` in its URL (or [`S3Store::with_signer`]), the store hands out
//! presigned URLs of blobs ([`BlobStore::direct_url`]), so a registry can send clients to
//! the engine for the bytes.
//!
//! All session state lives in the bucket, so consecutive appends may go through different
//! processes. After each append the session's hash state is saved next to its chunk, so the
//! next process resumes the hash instead of reading the chunks back: a chunked upload reads
//! its bytes back once, at commit (none when it is one chunk: a server-side copy). Nothing
//! depends on conditional writes (Garage ignores them): blob keys are content addressed, so a repeated write stores the same bytes. A blob key is written only
//! after the digest of its bytes was verified: a multipart upload is completed only when the
//! streamed hash matches, and aborted otherwise.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use wharf_types::{Algorithm, Digest, Digester};

use crate::error::{Error, Result};
use crate::meta::{MetaStore, Write, check_key, write_in_steps};
use crate::store::{
    BlobInfo, BlobStore, ByteStream, GetResult, Hashed, Running, Sessions, check_range, session_digester,
    verify,
};
use crate::upload_id::UploadId;

/// Parts of multipart uploads; S3 needs at least 5 MiB for every part but the last.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload.
const PARTS_IN_FLIGHT: usize = 4;

/// How long the engine may stay silent (connecting, or between two reads of an answer)
/// before a request fails, unless the URL says `timeout=`.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How many times a failed request is tried again (within one `timeout` from its start),
/// unless the URL says `retries=`.
const DEFAULT_RETRIES: usize = 3;
/// The longest any one request may take, however steadily the engine answers (a blob of
/// gigabytes streams within it; a download that outlives it resumes where it broke off,
/// if the retries allow).
const REQUEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `timeout=` of an s3:// URL: `500ms`, `5s`, or a number of seconds.
fn parse_timeout(value: &str) -> Result<std::time::Duration> {
    let bad = || Error::Config(format!("timeout=`{value}`: a duration such as 500ms or 5s (at most 600s)"));
    let (number, scale) = match value.strip_suffix("ms") {
        Some(ms) => (ms, 1),
        None => (value.strip_suffix('s').unwrap_or(value), 1000),
    };
    let millis: u64 = number.parse().map_err(|_| bad())?;
    let timeout = std::time::Duration::from_millis(millis.checked_mul(scale).ok_or_else(bad)?);
    if timeout.is_zero() || timeout > REQUEST_LIMIT {
        return Err(bad());
    }
    Ok(timeout)
}

/// The engine's time-outs: `timeout` to connect and between two reads of an answer (a
/// stopped engine is noticed within it, however large the answer), [`REQUEST_LIMIT`] for a
/// whole request.
fn client_options(timeout: std::time::Duration) -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(timeout)
        .with_read_timeout(timeout)
        .with_timeout(REQUEST_LIMIT)
}

/// Retries of a failed request: at most `retries`, none begun later than `timeout` after the
/// first attempt, so that a request to an engine that is down fails within about two
/// `timeout`s (a server answers 503 then, instead of holding its client).
fn retry_config(timeout: std::time::Duration, retries: usize) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(50),
            max_backoff: timeout / 4,
            base: 2.0,
        },
        max_retries: retries,
        retry_timeout: timeout,
    }
}

/// A blob store on `object_store`: S3 and S3-compatible engines (Garage, MinIO, radosgw,
/// Ceph), or any other `ObjectStore` (its in-memory store serves the tests).
///
/// # Example
/// ```no_run
/// use wharf_store::{BlobStore, S3Store};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
/// let store = S3Store::from_url("s3://registry?endpoint=http://127.0.0.1:3900&region=garage")?;
/// let digest = wharf_types::Digest::sha256(b"hi");
/// store.put_bytes(&digest, "hi".into()).await?;
/// # Ok(()) }
/// ```
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    sessions: Sessions,
    /// Presigns blob URLs, when redirects are on.
    signer: Option<Arc<dyn Signer>>,
    /// Lists with S3's max-keys, so a page of records is one small request.
    lister: Option<Arc<dyn PaginatedListStore>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("redirects", &self.signer.is_some())
            .field("paged_lists", &self.lister.is_some())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store over any `object_store` backend, with keys below `prefix` (may be empty).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self { store, prefix: Path::from(prefix), sessions: Sessions::default(), signer: None, lister: None }
    }

    /// The same store, handing out blob URLs presigned by `signer` ([`BlobStore::direct_url`]).
    #[must_use]
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The same store, listing record pages through `lister` (S3's `max-keys`), so a page of
    /// records costs a page (`ObjectStore::list` asks for 1,000 keys at a time).
    #[must_use]
    pub fn with_paged_lists(mut self, lister: Arc<dyn PaginatedListStore>) -> Self {
        self.lister = Some(lister);
        self
    }

    /// Lists the objects below the folder `from` (the first after `offset`) in key order and
    /// keeps what `keep` makes of them, until `limit` are kept; `None` without a paged lister.
    pub(crate) async fn list_page(
        &self,
        from: &Path,
        offset: Option<&Path>,
        limit: usize,
        keep: impl Fn(&str) -> Option<String> + Send + Sync,
    ) -> Result<Option<Vec<String>>> {
        let Some(lister) = &self.lister else { return Ok(None) };
        let folder = format!("{}/", from.as_ref());
        let mut kept = Vec::new();
        let mut token = None;
        loop {
            let options = PaginatedListOptions {
                offset: offset.map(|o| o.as_ref().to_owned()),
                max_keys: Some((limit - kept.len()).clamp(1, 1000)),
                page_token: token.take(),
                ..PaginatedListOptions::default()
            };
            let page = lister.list_paginated(Some(&folder), options).await?;
            for meta in page.result.objects {
                if let Some(key) = keep(meta.location.as_ref()) {
                    kept.push(key);
                    if kept.len() >= limit {
                        return Ok(Some(kept));
                    }
                }
            }
            match page.page_token {
                Some(next) => token = Some(next),
                None => return Ok(Some(kept)),
            }
        }
    }

    /// Whether the store hands out presigned blob URLs.
    pub fn redirects(&self) -> bool {
        self.signer.is_some()
    }

    /// A store from `s3://<bucket>[/<prefix>]?endpoint=<url>&region=<region>[&redirect=true]
    /// [&timeout=5s][&retries=3]`; credentials from the standard AWS environment variables. A
    /// plain-`http` endpoint is allowed (for engines on loopback), and requests use path
    /// style. With `redirect=true` the store presigns blob URLs for clients
    /// ([`BlobStore::direct_url`]).
    ///
    /// `timeout` (default 5 s) bounds how long the engine may keep a request waiting: to
    /// connect, and between two reads of its answer; a failed request is tried again up to
    /// `retries` times (default 3, at most 10) while less than `timeout` has passed since its
    /// first attempt. A request to an engine that is stopped therefore fails within about two
    /// `timeout`s, as [`Fault::Unavailable`](crate::Fault::Unavailable); one that is refused at
    /// once, within a fraction of a second. No request lasts longer than 10 minutes.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest =
            url.strip_prefix("s3://").ok_or_else(|| Error::Config(format!("`{url}` is not an s3:// URL")))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(Error::Config("the s3:// URL names no bucket".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false);
        let mut redirect = false;
        let (mut timeout, mut retries, mut allow_http) = (DEFAULT_TIMEOUT, DEFAULT_RETRIES, false);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match key {
                "endpoint" => {
                    allow_http = value.starts_with("http://");
                    builder.with_endpoint(value)
                }
                "region" => builder.with_region(value),
                "redirect" => {
                    redirect = match value {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(Error::Config(format!("redirect=`{other}`: true or false")));
                        }
                    };
                    builder
                }
                "timeout" => {
                    timeout = parse_timeout(value)?;
                    builder
                }
                "retries" => {
                    retries =
                        value.parse().ok().filter(|r| *r <= 10).ok_or_else(|| {
                            Error::Config(format!("retries=`{value}`: a count from 0 to 10"))
                        })?;
                    builder
                }
                other => {
                    return Err(Error::Config(format!("unknown s3:// URL parameter `{other}`")));
                }
            };
        }
        let s3 = Arc::new(
            builder
                .with_client_options(client_options(timeout).with_allow_http(allow_http))
                .with_retry(retry_config(timeout, retries))
                .build()?,
        );
        let store = Self::new(Arc::clone(&s3) as Arc<dyn ObjectStore>, prefix.trim_matches('/'))
            .with_paged_lists(Arc::clone(&s3) as Arc<dyn PaginatedListStore>);
        Ok(if redirect { store.with_signer(s3) } else { store })
    }

    fn key(&self, rest: &str) -> Path {
        let mut key = self.prefix.clone();
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            key = key.join(part);
        }
        key
    }

    /// The object store underneath.
    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Where `MetaStore` record `key` lives (`<prefix>/meta/<key>`).
    pub(crate) fn meta_key(&self, key: &str) -> Path {
        self.key(&format!("meta/{key}"))
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        self.key(&format!("blobs/{}/{}", digest.algorithm(), digest.encoded()))
    }

    fn session_dir(&self, id: &UploadId) -> Path {
        self.key(&format!("uploads/{id}"))
    }

    /// The session's chunks in order, as (key, offset, size); [`Error::UploadNotFound`]
    /// without its marker.
    async fn chunks(&self, id: &UploadId) -> Result<Session> {
        let dir = self.session_dir(id);
        let objects: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        let mut marker = false;
        let mut session = Session::default();
        for meta in objects {
            match meta.location.filename() {
                Some("session") => marker = true,
                Some(name) => {
                    let number = |prefix: &str| name.strip_prefix(prefix).and_then(|o| o.parse::<u64>().ok());
                    if let Some(offset) = number("chunk-") {
                        session.chunks.push((meta.location.clone(), offset, meta.size));
                    } else if let Some(end) = number("hash-") {
                        session.states.push((meta.location.clone(), end));
                    }
                }
                None => {}
            }
        }
        if !marker {
            return Err(Error::UploadNotFound { id: id.clone() });
        }
        session.chunks.sort_by_key(|c| c.1);
        session.states.sort_by_key(|s| s.1);
        let mut expected = 0;
        for (key, offset, size) in &session.chunks {
            if *offset != expected {
                return Err(Error::Corrupt(format!(
                    "upload {id}: chunk {key} at {offset}, expected {expected}"
                )));
            }
            expected += size;
        }
        Ok(session)
    }

    /// The SHA-256 hash of a session's stored bytes: this process's running hash when it has
    /// it, otherwise the latest saved state, hashing only the chunks stored after it (none,
    /// unless a process stopped between writing a chunk and its state); the whole upload only
    /// when no usable state is stored.
    async fn session_hash(&self, running: Option<Running>, session: &Session) -> Result<Digester> {
        let size = session.size();
        if let Some(r) = running.filter(|r| r.len == size) {
            return Ok(r.digester);
        }
        let boundary = |end: u64| end == size || session.chunks.iter().any(|c| c.1 == end);
        let mut resumed = None;
        for (key, end) in session.states.iter().rev().filter(|(_, end)| *end <= size && boundary(*end)) {
            let Some(got) = not_found_as_none(self.store.get(key).await)? else { continue };
            let state = got.bytes().await?;
            if let Some(d) =
                Digester::resume(&state).filter(|d| d.len() == *end && d.algorithm() == Algorithm::Sha256)
            {
                resumed = Some(d);
                break;
            }
        }
        let mut digester = resumed.unwrap_or_else(session_digester);
        let from = digester.len();
        let rest = session.chunks.iter().filter(|c| c.1 >= from).cloned().collect();
        Hashed::new(self.chunk_stream(rest), &mut digester).drain().await?;
        Ok(digester)
    }

    /// Saves the hash state of a session after `digester.len()` bytes. Only a shortcut for
    /// the next process: when it fails, that process hashes the chunks after an older state.
    async fn save_hash(&self, id: &UploadId, digester: &Digester) {
        let key = self.session_dir(id).join(format!("hash-{:020}", digester.len()));
        let _ = self.store.put(&key, PutPayload::from(digester.state())).await;
    }

    /// Streams `data` into `key` (a single put up to one part, multipart beyond), feeding
    /// `digester`; the object is completed only if `accept` approves the final hash.
    async fn write_object(
        &self,
        key: &Path,
        data: ByteStream,
        digester: &mut Digester,
        accept: impl FnOnce(&Digester) -> Result<()> + Send,
    ) -> Result<u64> {
        let mut input = Hashed::new(data, digester);
        let mut head = BytesMut::new();
        // Gather up to one part: small objects go in one PUT.
        while head.len() < PART_SIZE {
            let Some(chunk) = input.next().await? else {
                let size = input.len;
                accept(digester)?;
                self.store.put(key, PutPayload::from(head.freeze())).await?;
                return Ok(size);
            };
            head.extend_from_slice(&chunk);
        }
        let upload = self.store.put_multipart(key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.put(head.freeze());
        let streamed = async {
            while let Some(chunk) = input.next().await? {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Ok::<_, Error>(input.len)
        }
        .await;
        match streamed.and_then(|size| accept(digester).map(|()| size)) {
            Ok(size) => {
                writer.finish().await?;
                Ok(size)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// The concatenated chunks as one stream.
    fn chunk_stream(&self, chunks: Vec<Chunk>) -> ByteStream {
        let store = self.store.clone();
        futures_util::stream::iter(chunks)
            .then(move |(key, _, _)| {
                let store = store.clone();
                async move { store.get(&key).await.map(object_store::GetResult::into_stream) }
            })
            .try_flatten()
            .map_err(std::io::Error::other)
            .boxed()
    }

    async fn delete_session(&self, id: &UploadId) -> Result<()> {
        let dir = self.session_dir(id);
        let keys: Vec<_> = self.store.list(Some(&dir)).map_ok(|m| m.location).try_collect().await?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A stored chunk of an upload session: its key, offset and size.
type Chunk = (Path, u64, u64);

/// What the bucket holds of an upload session.
#[derive(Debug, Default)]
struct Session {
    /// The chunks, by offset, contiguous from 0.
    chunks: Vec<Chunk>,
    /// The saved hash states and the offset each ends at, by offset.
    states: Vec<(Path, u64)>,
}

impl Session {
    fn size(&self) -> u64 {
        self.chunks.iter().map(|c| c.2).sum()
    }
}

fn not_found_as_none<T>(r: object_store::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn direct_url(
        &self,
        digest: &Digest,
        head: bool,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let method =
            if head { object_store::signer::Method::HEAD } else { object_store::signer::Method::GET };
        let url = signer.signed_url(method, &self.blob_key(digest), expires_in).await?;
        Ok(Some(url.to_string()))
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        let meta = not_found_as_none(self.store.head(&self.blob_key(digest)).await)?;
        Ok(meta.map(|m| BlobInfo::new(digest.clone(), m.size)))
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult> {
        let key = self.blob_key(digest);
        let not_found = || Error::BlobNotFound { digest: digest.clone() };
        let Some(range) = range else {
            let result = not_found_as_none(self.store.get(&key).await)?.ok_or_else(not_found)?;
            let size = result.meta.size;
            let stream = result.into_stream().map_err(std::io::Error::other).boxed();
            return Ok(GetResult { size, range: 0..size, stream, file: None });
        };
        let meta = not_found_as_none(self.store.head(&key).await)?.ok_or_else(not_found)?;
        let range = check_range(digest, Some(range), meta.size)?;
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
        let result = not_found_as_none(self.store.get_opts(&key, options).await)?.ok_or_else(not_found)?;
        let stream = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(GetResult { size: meta.size, range, stream, file: None })
    }

    async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo> {
        let mut digester = expected.digester();
        let size = self
            .write_object(&self.blob_key(expected), data, &mut digester, |d| {
                verify(d.clone(), expected).map(drop)
            })
            .await?;
        Ok(BlobInfo::new(expected.clone(), size))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let key = self.blob_key(digest);
        if not_found_as_none(self.store.head(&key).await)?.is_none() {
            return Ok(false);
        }
        not_found_as_none(self.store.delete(&key).await)?;
        Ok(true)
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        let meta = not_found_as_none(self.store.head(&self.blob_key(digest)).await)?;
        Ok(meta.map(|m| m.last_modified.into()))
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let from = self.blob_key(digest);
        let to = self.key(&format!("quarantine/blobs/{}/{}", digest.algorithm(), digest.encoded()));
        match self.store.copy(&from, &to).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            other => other?,
        }
        not_found_as_none(self.store.delete(&from).await)?;
        Ok(true)
    }

    fn list(&self) -> BoxStream<'_, Result<Digest>> {
        let dir = self.key("blobs");
        self.store
            .list(Some(&dir))
            .map_err(Error::from)
            .try_filter_map(|meta| async move {
                let parts: Vec<_> = meta.location.parts().collect();
                let [.., algorithm, hex] = parts.as_slice() else {
                    return Ok(None);
                };
                Ok(format!("{}:{}", algorithm.as_ref(), hex.as_ref()).parse::<Digest>().ok())
            })
            .boxed()
    }

    async fn begin(&self) -> Result<UploadId> {
        let id = UploadId::random();
        self.store.put(&self.session_dir(&id).join("session"), PutPayload::default()).await?;
        *self.sessions.get(&id).lock().await = Some(Running { len: 0, digester: session_digester() });
        Ok(id)
    }

    async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        let lock = self.sessions.get(id);
        let mut running = lock.lock().await;
        let session = self.chunks(id).await.inspect_err(|_| self.sessions.forget(id))?;
        let size = session.size();
        if offset != size {
            return Err(Error::WrongOffset { id: id.clone(), offset, size });
        }
        let mut digester = self.session_hash(running.take(), &session).await?;
        let key = self.session_dir(id).join(format!("chunk-{offset:020}"));
        let before = digester.clone();
        match self.write_object(&key, data, &mut digester, |_| Ok(())).await {
            Ok(written) => {
                if written > 0 {
                    self.save_hash(id, &digester).await;
                }
                *running = Some(Running { len: size + written, digester });
                Ok(size + written)
            }
            Err(e) => {
                *running = Some(Running { len: size, digester: before });
                Err(e)
            }
        }
    }

    async fn status(&self, id: &UploadId) -> Result<u64> {
        Ok(self.chunks(id).await?.size())
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let lock = self.sessions.get(id);
        let mut running = lock.lock().await;
        let session = self.chunks(id).await.inspect_err(|_| self.sessions.forget(id))?;
        let size = session.size();
        let target = self.blob_key(expected);
        let result = match session.chunks.as_slice() {
            // One chunk: check the hash (resumed, nothing read back), then copy it server-side.
            [only] if expected.algorithm() == Algorithm::Sha256 => {
                match self.session_hash(running.take(), &session).await.and_then(|d| verify(d, expected)) {
                    Ok(_) => self.store.copy(&only.0, &target).await.map_err(Error::from),
                    Err(e) => Err(e),
                }
            }
            // Otherwise (or another algorithm than the sessions' hash) stream the chunks into
            // the blob once, hashing them on the way: it is completed only on a match.
            chunks => {
                let mut d = expected.digester();
                self.write_object(&target, self.chunk_stream(chunks.to_vec()), &mut d, |d| {
                    verify(d.clone(), expected).map(drop)
                })
                .await
                .map(drop)
            }
        };
        let cleaned = self.delete_session(id).await;
        drop(running);
        self.sessions.forget(id);
        result?;
        cleaned?;
        Ok(BlobInfo::new(expected.clone(), size))
    }

    async fn abort(&self, id: &UploadId) -> Result<()> {
        let session = self.sessions.get(id);
        let _running = session.lock().await;
        self.chunks(id).await?;
        let result = self.delete_session(id).await;
        self.sessions.forget(id);
        result
    }
}

#[async_trait]
impl MetaStore for S3Store {
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
