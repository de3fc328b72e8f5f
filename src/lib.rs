//! Wharf: a Rust toolkit for OCI registries with first-class WebAssembly support.
//!
//! This facade re-exports the Wharf crates under short names, each behind a feature of the
//! same name (all on by default), so one dependency brings the whole toolkit and any layer
//! can be left out:
//!
//! | module | crate | job |
//! |---|---|---|
//! | [`types`] | `wharf-types` | digests, references, media types, manifests, error codes |
//! | [`wasm`] | `wharf-wasm` | recognize Wasm in every OCI layout, inspect modules |
//! | [`store`] | `wharf-store` | digest-verified blob storage: memory, filesystem, S3 |
//! | [`client`] | `wharf-client` | an OCI distribution client |
//! | [`server`] | `wharf-server` | the reference registry |
//!
//! # Example
//! ```
//! use wharf::types::{Digest, Reference};
//!
//! let r: Reference = "localhost:5000/wasm/hello:v1".parse()?;
//! assert_eq!(r.registry(), "localhost:5000");
//! assert_eq!(Digest::sha256(b"{}"), Digest::EMPTY_JSON);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//! - `types`, `wasm`, `store`, `client`, `server`: the crate of that name (all default).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
pub use wharf_client as client;
#[cfg(feature = "server")]
pub use wharf_server as server;
#[cfg(feature = "store")]
pub use wharf_store as store;
#[cfg(feature = "types")]
pub use wharf_types as types;
#[cfg(feature = "wasm")]
pub use wharf_wasm as wasm;
