//! Manifest parsing: an accepted manifest keeps its bytes, its digest is the SHA-256 of those bytes, and its parsed form survives a write and re-read.
//!
//! The checks live in `wharf_types::fuzzing::manifest`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_types::fuzzing::manifest(data));
