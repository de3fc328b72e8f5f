//! The Wharf reference registry: the OCI distribution spec v1.1 over HTTP on axum,
//! Wasm-aware, embeddable as a library and run as the `wharf-server` binary.
//!
//! It depends on `wharf-types`, `wharf-wasm` and `wharf-store`, never on the client.
//!
//! Status: the crate is laid out; the registry arrives with its own issue. Its error bodies
//! will be [`wharf_types::ErrorResponse`]s with the codes of [`wharf_types::ErrorCode`].
#![cfg_attr(docsrs, feature(doc_cfg))]
