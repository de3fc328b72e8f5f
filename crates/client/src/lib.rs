//! An OCI distribution client on reqwest and tokio: auth, pull, push, mount, tags,
//! referrers, copy, OCI layouts, and Wasm push/pull — for any registry.
//!
//! It depends on `wharf-types` (and `wharf-wasm` behind the `wasm` feature), never on the
//! server or the store. Every manifest it pulls is verified against its digest; every blob is
//! hashed while it streams and refused if it does not match. Secrets are redacted from
//! `Debug`.
//!
//! - [`ClientBuilder`]: plain-HTTP hosts, credentials per host or from a docker
//!   `config.json` ([`DockerConfig`]: `auths`, credential helpers, identity tokens), timeout,
//!   user agent, retries (429; 502–504 and connection failures for idempotent requests;
//!   `Retry-After`), blob concurrency, a [`Progress`] hook.
//! - Auth: anonymous, Basic, and the Docker token flow (`token`/`access_token`, OAuth2
//!   refresh tokens by POST), cached per host and scope, fetched again when refused.
//! - Pull: [`Client::resolve`] (HEAD), [`Client::pull_manifest`], [`Client::pull_for_platform`],
//!   [`Client::pull_blob`] (resumes with `Range` after a dropped connection).
//! - Push: [`Client::push_blob`] (monolithic, or resumable chunks honouring
//!   `OCI-Chunk-Min-Length` above 64 MiB), [`Client::push_blob_stream`], [`Client::mount_blob`]
//!   (202 is an answer, not an error), [`Client::push_manifest`],
//!   [`Client::push_manifest_tags`] (`?tag=` with a per-tag fallback).
//! - Discovery: [`Client::tags_stream`], [`Client::catalog_stream`], [`Client::referrers`] and
//!   [`Client::push_referrer`] (the referrers API, or the `sha256-<hex>` fallback tag).
//! - [`Client::copy`] (indexes recursively, blobs streamed in parallel or mounted, digests
//!   preserved), [`Client::export_layout`] / [`Client::push_layout`] (OCI image layouts).
//! - Reach: [`ClientBuilder::with_public_addresses_only`] for a server fetching from URLs it
//!   is given — no loopback, private, link-local or metadata address, however named
//!   ([`is_public`]).
//! - Wasm packages: [`Client::package_registry`] finds where a registry keeps `ns:name`
//!   packages (`/.well-known/wasm-pkg/registry.json`, as `wkg` does; [`PackageRegistry`]),
//!   [`Client::package_versions`] reads Wharf's versions API.
//! - With `wasm`: [`Client::push_wasm`] and [`Client::pull_wasm`].
//!
//! # Example
//! ```no_run
//! use wharf_client::{ClientBuilder, Credentials};
//! use wharf_types::Reference;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new()
//!     .with_insecure_host("localhost:5000")
//!     .with_credentials("localhost:5000", Credentials::basic("user", "secret"))
//!     .build()?;
//! let reference: Reference = "localhost:5000/wasm/hello:v1".parse()?;
//! let manifest = client.pull_manifest(&reference).await?;
//! println!("{} {}", manifest.digest(), manifest.media_type());
//! # Ok(()) }
//! ```
//!
//! # Crate features
//! - `wasm` (default): Wasm push and pull on `wharf-wasm`.
//! - TLS, one at least: `rustls-ring` (default; rustls with *ring*, installed as rustls's
//!   process-wide provider when the program has chosen none), `rustls-aws-lc` (rustls with
//!   aws-lc-rs, a larger C build), `native-tls` (the platform's library).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "rustls-ring", feature = "rustls-aws-lc", feature = "native-tls")))]
compile_error!(
    "wharf-client needs a TLS backend: enable `rustls-ring` (default), `rustls-aws-lc` or `native-tls`"
);

mod auth;
mod chunked;
mod client;
mod copy;
mod discovery;
mod error;
mod layout;
mod packages;
mod reach;
#[cfg(feature = "wasm")]
mod wasm;

pub use auth::{Credentials, DockerConfig, Secret};
pub use client::{Client, ClientBuilder, Progress};
pub use error::{Error, Result};
pub use packages::{PackageRegistry, REGISTRY_METADATA_PATH};
pub use reach::{PublicResolver, check_url, is_public};
/// The HTTP client underneath, for its types in this crate's API ([`Error::Http`]).
pub use reqwest;
#[cfg(feature = "wasm")]
pub use wasm::PulledWasm;
pub use wharf_types::{self, Reference, Registry};
#[cfg(feature = "wasm")]
#[cfg_attr(docsrs, doc(cfg(feature = "wasm")))]
pub use wharf_wasm::{self, Artifact, ArtifactBuilder, WasmLayout};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
