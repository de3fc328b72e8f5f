//! Recognise WebAssembly in every OCI layout people publish, say why, and build Wasm
//! artifacts.
//!
//! This crate will classify a manifest (and its config) as one of the known Wasm layouts
//! (wasm-to-oci, the CNCF Wasm OCI artifact, annotated `compat` images, `wasi/wasm` platform
//! images, runwasi, Spin, solo.io, wasmCloud, …) with the evidence that decided it and the
//! answer Harbor 2.6 would give, and inspect `.wasm` bytes. It depends on `wharf-types` only.
//!
//! Status: the crate is laid out; its API arrives with its own issue. The Wasm media types
//! already live in [`wharf_types::MediaType`] (for example
//! [`MediaType::WASM_CONFIG_V1`](wharf_types::MediaType::WASM_CONFIG_V1)).
#![cfg_attr(docsrs, feature(doc_cfg))]
