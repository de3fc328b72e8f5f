//! Reference, repository, tag, tag-or-digest, platform and Wasm package parsing: what parses prints back to itself, and the familiar form names the same reference.
//!
//! The checks live in `wharf_types::fuzzing::reference`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_types::fuzzing::reference(data));
