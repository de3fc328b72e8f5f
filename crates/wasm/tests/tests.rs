//! Integration tests of `wharf-wasm`: the real manifests from the field, a composed manifest
//! for every layout of WASM-FORMATS.md, real modules and components, layers, builders, and
//! the fuzz invariants.

mod common;
mod examples;
mod image;
mod layouts;
mod modules;
mod packages;
mod properties;
