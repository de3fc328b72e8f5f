//! Recognize WebAssembly in every OCI layout people publish, say why, look inside the module,
//! and build Wasm artifacts.
//!
//! Harbor 2.6 recognizes three cases and shows the CNCF Wasm artifact (which runwasi, wkg and
//! containerd moved to) as `UNKNOWN`. This crate recognizes every layout catalogued in
//! Wharf's `WASM-FORMATS.md` — F1 wasm-to-oci and F12 Kubewarden, F2 annotated `compat`
//! images, F3 `wasi/wasm` platform images, F4 runwasi images, F5 the CNCF artifact, F6 and F7
//! solo.io/Istio, F8 Istio's legacy layout, F9 Spin, F10 wasmCloud, F11 experimental
//! `artifactType`s, and Wasm indexes — with the evidence for each verdict and the answer
//! Harbor 2.6 would give. It depends on `wharf-types` only and does no network I/O.
//!
//! - [`classify`]: manifest (+ config bytes) → [`Classification`]: [`Kind`], the layers
//!   holding Wasm and where in them, platform, [`Evidence`], warnings, [`HarborView`].
//! - [`inspect`]: `.wasm` bytes → [`ModuleInfo`]: module or component, imports, exports, WASI
//!   flavor, custom sections; [`validate`] for a full validation.
//! - [`extract`]: the module bytes out of one raw, tar, tar+gzip or tar+zstd layer (sync, or
//!   async with the `tokio` feature); [`image`]: the module a runtime would run, out of an
//!   image's layers applied in order (whiteouts, links, later entries winning).
//! - [`budget`]: what reading one artifact's layers may cost (bytes decompressed, extended
//!   header sizes, entries, links followed, module size, time); every reader above charges
//!   one [`budget::Meter`].
//! - [`ArtifactBuilder`]: the wasm-to-oci and CNCF v0 layouts, ready to push.
//! - [`record`]: an artifact's record (classification and modules) in the JSON shape
//!   `wharf-server`'s `_wharf` API serves and `wharf inspect --json` prints.
//!
//! # Example: classify
//! ```
//! use wharf_types::Manifest;
//! use wharf_wasm::{classify, Kind};
//!
//! let manifest = Manifest::from_bytes(&br#"{"schemaVersion":2,
//!   "mediaType":"application/vnd.oci.image.manifest.v1+json",
//!   "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
//!     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
//!   "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":8,
//!     "digest":"sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"}],
//!   "annotations":{"module.wasm.image/variant":"compat-smart"}}"#[..], None)?;
//! let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app.wasm"]}}"#;
//! let c = classify(&manifest, Some(config));
//! assert!(matches!(c.kind, Kind::CompatAnnotated { ref value, .. } if value == "compat-smart"));
//! assert_eq!(c.harbor.artifact_type, "IMAGE"); // Harbor 2.6 knows only `compat`
//! assert_eq!(c.wasm_layers[0].location,
//!     wharf_wasm::Location::TarEntry(wharf_wasm::EntryMatch::Path("app.wasm".into())));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: build, then classify what was built
//! ```
//! use wharf_wasm::{classify, ArtifactBuilder, Kind};
//!
//! let artifact = ArtifactBuilder::new(b"\0asm\x01\0\0\0".to_vec()).with_title("a.wasm").wasm_to_oci()?;
//! assert_eq!(classify(&artifact.manifest, Some(&artifact.config.data)).kind, Kind::WasmToOci);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//! - `classify` is pure and linear in its input: the server can run it on every push.
//!   Layouts that only a layer's *content* reveals (F7 `plugin.wasm`, F8 `extension.wasm`)
//!   come back as [`Classification::layer_probes`]; read them with [`extract`] and call
//!   [`Classification::confirm_tar_entry`] (or let [`record::read_modules`] do both).
//! - Layers are untrusted bytes: tar is read by this crate's own streaming reader, which
//!   checks an extended header's size before reading its body (a 1 MB gzip whose first entry
//!   is a 1 GiB long name costs one header, not 1 GiB), and every byte is charged to a
//!   [`budget::Meter`].
//! - The classification compares media types case-insensitively and without parameters and
//!   `os`/`architecture` case-insensitively; the Harbor view compares exactly, as Harbor does.
//!
//! # Crate features
//! - `tokio`: [`extract::read_wasm_async`] for `AsyncRead` layers.
//! - `fuzzing`: the invariant checks the fuzz targets run.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod archive;
mod binary;
pub mod budget;
mod build;
mod classify;
mod config;
mod error;
pub mod extract;
mod harbor;
pub mod image;
mod inspect;
mod location;
mod names;
pub mod record;
#[cfg(feature = "wit")]
#[cfg_attr(docsrs, doc(cfg(feature = "wit")))]
pub mod wit;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use binary::{BinaryKind, Header, MAX_INSPECT_SIZE, MAX_LISTED, WASM_MAGIC, validate};
pub use build::{Artifact, ArtifactBuilder, Blob, WasmLayout};
pub use classify::{Classification, Evidence, Kind, WasmChild, classify};
pub use config::{Component, WasmConfig};
pub use error::{Error, Result};
pub use harbor::{HARBOR_IMAGE, HARBOR_UNKNOWN, HARBOR_WASM, HarborView};
pub use inspect::{
    Export, Import, ItemKind, MAX_METADATA, Memory, Metadata, ModuleInfo, PROPOSALS, Producers, Section,
    Table, Tool, Validation, WasiFlavor, inspect,
};
pub use location::{EntryMatch, Location, WasmLayer};
pub use names::{ISTIO_EXTENSION_FILE, SOLO_PLUGIN_FILE, annotations, labels};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
