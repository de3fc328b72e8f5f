//! A component's WIT world decoded (wit-parser) and printed (wit-component) from arbitrary
//! bytes: no panic, bounded text, deterministic.
//!
//! The checks live in `wharf_wasm::fuzzing::wit_bytes`, which the tests also run.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_wasm::fuzzing::wit_bytes(data));
