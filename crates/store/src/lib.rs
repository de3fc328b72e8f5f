//! A digest-verified, content-addressed blob store with upload sessions, and its memory,
//! filesystem and S3-compatible backends.
//!
//! Every byte a registry keeps must be exactly the bytes its digest names, and an
//! acknowledged blob must survive a crash. [`BlobStore`] hashes while it writes (each byte
//! once), makes a blob visible only after its digest was verified, and — on [`FsStore`] and
//! [`S3Store`] — makes it durable before acknowledging it. Upload sessions
//! ([`BlobStore::begin`], [`append`](BlobStore::append), [`commit`](BlobStore::commit)) are the
//! registry's chunked uploads; they survive restarts on the durable backends, and on S3 their
//! appends may come through different processes. The trait is object safe, so a server holds
//! an `Arc<dyn BlobStore>` chosen at run time. It depends on `wharf-types` only.
//!
//! # Example: a verified put, a ranged get
//! ```
//! use wharf_store::{BlobStore, FsStore};
//! use wharf_types::Digest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = FsStore::open(dir.path()).await?;
//! let digest = Digest::sha256(b"hello world");
//! store.put_bytes(&digest, "hello world".into()).await?;
//! let part = store.get(&digest, Some(6..11)).await?.bytes().await?;
//! assert_eq!(part, "world");
//! // The wrong digest stores nothing.
//! assert!(store.put_bytes(&Digest::sha256(b"other"), "hello".into()).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Example: an upload session behind `Arc<dyn BlobStore>`
//! ```
//! use std::sync::Arc;
//! use wharf_store::{single, BlobStore, MemoryStore};
//! use wharf_types::Digest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let store: Arc<dyn BlobStore> = Arc::new(MemoryStore::new());
//! let id = store.begin().await?;
//! store.append(&id, 0, single("hello ".into())).await?;
//! assert!(store.append(&id, 0, single("again".into())).await.is_err()); // wrong offset
//! store.append(&id, 6, single("world".into())).await?;
//! let info = store.commit(&id, &Digest::sha256(b"hello world")).await?;
//! assert_eq!(info.size, 11);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Crate features
//! - `s3`: [`S3Store`] on `object_store` (S3, Garage, MinIO, radosgw, …).
//! - `testing`: the `testing` module, the conformance suite every backend runs, and `Faults`,
//!   hooks that make any store fail as full disks and stopped engines do.
//! - `fuzzing`: the `fuzzing` module of invariant checks used by the fuzz targets.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "testing")]
mod faults;
mod fs;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod hooks;
mod journal;
mod layout;
mod listing;
mod memory;
mod meta;
#[cfg(feature = "s3")]
mod s3;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod upload_id;

pub use error::{Error, Fault, Result};
#[cfg(feature = "testing")]
pub use faults::Faults;
pub use fs::FsStore;
pub use hooks::{Hooked, Hooks, Op};
/// Decodes a journal file of an [`FsStore`] into its batches (for the fuzzer).
#[doc(hidden)]
pub use journal::decode as decode_journal;
#[doc(hidden)]
pub use journal::encode as encode_journal_record;
pub use memory::MemoryStore;
pub use meta::{MetaStore, Write, check_key};
#[cfg(feature = "s3")]
pub use s3::S3Store;
/// A backend that keeps both blobs and metadata records, as a registry needs: every store of
/// this crate is one, and `Arc<dyn Storage>` serves as either.
pub trait Storage: BlobStore + MetaStore {}

impl<T: BlobStore + MetaStore + ?Sized> Storage for T {}

pub use store::{BlobInfo, BlobStore, ByteStream, GetResult, from_chunks, single};
pub use upload_id::UploadId;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
