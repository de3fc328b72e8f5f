//! The Wharf reference registry: the OCI distribution spec v1.1 over HTTP on axum, embeddable
//! as a library and run as the `wharf-server` binary.
//!
//! - [`Wharf`]: the registry (repositories, blobs, uploads, manifests, tags, referrers) over any
//!   [`wharf_store::Storage`], with no HTTP in it. All state — blobs, manifests, tags,
//!   repository links, referrers, upload sessions — lives in the storage backend, so a restart
//!   loses nothing and several processes over one S3 bucket serve the same registry.
//! - Wasm awareness: every push is classified by `wharf-wasm` and served by the `_wharf`
//!   extension API (`/v2/<name>/_wharf/artifacts[/<ref>]`, `/v2/_wharf/repositories`) with
//!   Harbor 2.6's view beside it; [`Wharf::with_wasm_validate`] refuses fake Wasm layers.
//! - Operations: `/healthz`, `/readyz`, `/metrics` (Prometheus text), one access-log line per
//!   request with a request id.
//! - [`router`]: the `/v2/` API as an axum `Router`.
//! - Access control ([`auth`], on `wharf-auth`): htpasswd users and groups, client
//!   certificates, a Docker-token-spec token service at `/token`, permissions by repository
//!   pattern, failed-login limits, an audit log. TLS ([`tls`]) on rustls, HTTP/2 by ALPN,
//!   certificates reloaded when they change. Both come from the [`config`] file.
//! - Storage lifecycle ([`lifecycle`]: online garbage collection, retention, quotas, scrub),
//!   Wasm policies ([`wasm_policy`]), trust policies over verified signatures ([`trust`]),
//!   search ([`search`]), the web page at `/` ([`web`]).
//! - [`Server`]: bind (port 0 works), serve, shut down gracefully.
//!
//! Inside, the crate is layered — ground, transport, the OCI core, services beside it, the
//! [`Wharf`] façade, the edges (HTTP, web, config), the server — each importing only what is
//! below it (`docs/ARCHITECTURE.md` draws it; `tests/layers.rs` checks it).
//!
//! # Example: an in-memory registry on a free port
//! ```
//! use wharf_server::{Server, Wharf};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Wharf::in_memory();
//! let server = Server::bind("127.0.0.1:0".parse()?, registry).await?;
//! let addr = server.local_addr();
//! let handle = server.spawn();
//! // … talk to http://{addr}/v2/ …
//! handle.shutdown().await?;
//! # let _ = addr;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

// Ground: import nothing of the crate.
pub mod api;
mod clock;
mod error;
mod files;
mod lease;
mod text;
mod units;
// Transport.
mod listener;
pub mod tls;
// Core.
mod registry;
// Services.
pub mod auth;
mod classify;
mod jobs;
pub mod lifecycle;
mod metrics;
pub mod mirror;
pub mod packages;
pub mod search;
pub mod trust;
pub mod wasm_policy;
pub mod webhooks;
// Façade.
mod wharf;
// Edges.
pub mod config;
mod rest;
pub mod web;
// Assembly.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod server;

pub use api::{ArtifactRecord, ArtifactSummary, RepositorySummary, SearchHit};
pub use auth::AccessControl;
pub use error::{Error, Result};
pub use listener::{Limits, PublicUrl, raise_open_files_limit};
pub use registry::{BLOB_URL_EXPIRY, Page, PutManifest, STALE_FOR, StoredManifest};
pub use server::{Server, ServerHandle, StorageSpec, router, router_with_access};
pub use wharf::Wharf;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
