//! The OCI vocabulary every Wharf crate speaks: digests, names, references, media types,
//! descriptors, manifests with their exact bytes, distribution error codes, and the names and
//! versions of Wasm packages (`wkg`'s `namespace:name@version`).
//!
//! Use this crate when you handle OCI content and want validated values instead of strings:
//! a [`Digest`] is always `sha256:`/`sha512:` with lowercase hex of the right length, a
//! [`Repository`] can never escape a directory, a [`Manifest`] keeps the bytes its digest was
//! computed over. It does no I/O and has no async, so it fits parsers, fuzzers and `no`-network
//! tools as well as clients and servers.
//!
//! # Example: references
//! ```
//! use wharf_types::Reference;
//!
//! let r: Reference = "localhost:5000/wasm/hello:v1".parse()?;
//! assert_eq!(r.registry(), "localhost:5000");
//! assert_eq!(r.repository().as_str(), "wasm/hello");
//! assert_eq!("ubuntu".parse::<Reference>()?.to_string(), "docker.io/library/ubuntu:latest");
//! assert!("a//b".parse::<Reference>().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: a manifest and its digest
//! ```
//! use wharf_types::{Digest, Manifest, MediaType};
//!
//! let bytes = br#"{"schemaVersion":2,
//!   "config":{"mediaType":"application/vnd.wasm.config.v1+json","size":2,
//!     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
//!   "layers":[{"mediaType":"application/vnd.wasm.content.layer.v1+wasm","size":8,
//!     "digest":"sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"}]}"#;
//! let manifest = Manifest::from_bytes(&bytes[..], None)?;
//! assert_eq!(manifest.digest(), &Digest::sha256(bytes));
//! let image = manifest.as_image().expect("an image manifest");
//! assert_eq!(image.config.media_type, MediaType::WASM_CONFIG_V1);
//! assert_eq!(image.layers[0].media_type, "APPLICATION/vnd.wasm.content.layer.v1+wasm");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: streaming a digest
//! ```
//! use wharf_types::Digest;
//!
//! let expected = Digest::sha256(b"hello world");
//! let mut digester = expected.digester();
//! for chunk in [&b"hello "[..], b"world"] {
//!     digester.update(chunk);
//! }
//! digester.verify(&expected)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//! - Descriptors, platforms, manifests and indexes are this crate's own serde types rather
//!   than `oci-spec`'s: they carry the validated [`Digest`] and [`MediaType`] newtypes, keep
//!   every unknown field (`extra`), and accept Docker schema 2 manifests and lists. The image
//!   *configuration* is `oci-spec`'s [`ImageConfig`], re-exported.
//! - A [`Manifest`]'s digest is computed once, over the bytes as received; nothing is ever
//!   hashed from re-serialised JSON.
//! - Errors quote at most [`error::Input::MAX_SHOWN`] characters of untrusted input.
//!
//! # Crate features
//! - `arbitrary`: `arbitrary::Arbitrary` for [`Digest`], [`Repository`], [`Tag`],
//!   [`Reference`] and [`MediaType`], generating valid values.
//! - `fuzzing`: the `fuzzing` module of invariant checks used by the fuzz targets.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod descriptor;
mod digest;
mod distribution;
pub mod error;
mod manifest;
mod media_type;
mod name;
#[cfg(feature = "oci-spec")]
#[cfg_attr(docsrs, doc(cfg(feature = "oci-spec")))]
pub mod oci;
mod package;
mod reference;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use descriptor::{Annotations, Descriptor, Platform};
pub use digest::{Algorithm, Digest, Digester};
pub use distribution::{ErrorCode, ErrorInfo, ErrorResponse};
pub use error::{Error, Result};
pub use manifest::{ImageIndex, ImageManifest, MAX_MANIFEST_SIZE, Manifest, ManifestBody};
pub use media_type::MediaType;
pub use name::{Repository, Tag};
pub use package::{PackageName, PackageVersion};
pub use reference::{
    DEFAULT_TAG, DOCKER_HUB, DOCKER_HUB_API_HOST, MAX_NAME_LEN, Reference, Registry, TagOrDigest,
};

/// An image configuration (`application/vnd.oci.image.config.v1+json`, and Docker's), as
/// `oci-spec` models it: architecture, os, config (`Env`, `Cmd`, `Entrypoint`, `Labels`, …),
/// rootfs and history.
#[cfg(feature = "oci-spec")]
#[cfg_attr(docsrs, doc(cfg(feature = "oci-spec")))]
pub use oci_spec::image::ImageConfiguration as ImageConfig;

/// The `oci-spec` crate, for the types this crate does not wrap (feature `oci-spec`).
#[cfg(feature = "oci-spec")]
#[cfg_attr(docsrs, doc(cfg(feature = "oci-spec")))]
pub use oci_spec;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
