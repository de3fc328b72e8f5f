//! An OCI distribution client on reqwest and tokio: auth, pull, push, mount, tags,
//! referrers, copy, and Wasm push/pull.
//!
//! It depends on `wharf-types` (and `wharf-wasm` behind its `wasm` feature), never on the
//! server or the store.
//!
//! Status: the crate is laid out; its API arrives with its own issue. References it will
//! take are [`wharf_types::Reference`]s.
#![cfg_attr(docsrs, feature(doc_cfg))]
