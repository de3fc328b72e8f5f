//! A digest-verified, content-addressed blob store with upload sessions, and its memory,
//! filesystem and S3-compatible backends.
//!
//! Every byte a registry keeps must be exactly the bytes its digest names, and an
//! acknowledged blob must survive a crash: this crate's `BlobStore` hashes while it writes,
//! commits only on a digest match, and makes blobs durable before acknowledging them. It
//! depends on `wharf-types` only.
//!
//! Status: the crate is laid out; its API arrives with its own issue. The digest machinery
//! it will use is [`wharf_types::Digester`].
#![cfg_attr(docsrs, feature(doc_cfg))]
