//! An OCI distribution client on reqwest and tokio: auth, pull, push, mount, tags.
//!
//! It depends on `wharf-types` only (never on the server or the store). Every manifest it
//! pulls is verified against its digest; every blob is hashed while it streams and refused if
//! it does not match. Credentials are redacted from `Debug`.
//!
//! With the `wasm` feature (default), [`Client::push_wasm`] pushes a module in the
//! wasm-to-oci or CNCF layout and [`Client::pull_wasm`] pulls one from any layout
//! `wharf-wasm` recognises.
//!
//! Status: this crate is being built (issue 7): the operations here work against any registry
//! speaking the distribution spec; retries, docker `config.json`, referrers, copy and OCI
//! layouts are still to come.
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
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod chunked;
mod client;
mod copy;
mod discovery;
mod error;
mod layout;
#[cfg(feature = "wasm")]
mod wasm;

pub use auth::{Credentials, DockerConfig, Secret};
pub use client::{Client, ClientBuilder, Progress};
pub use error::{Error, Result};
#[cfg(feature = "wasm")]
pub use wasm::{Layout, PulledWasm};
