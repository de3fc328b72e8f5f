//! The Wasm classifier on arbitrary manifest and config bytes: a Wasm kind always has
//! evidence, every layer or child index it names is in range, and it is deterministic.
//!
//! The checks live in `wharf_wasm::fuzzing::classify_bytes`, which the tests also run.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_wasm::fuzzing::classify_bytes(data));
