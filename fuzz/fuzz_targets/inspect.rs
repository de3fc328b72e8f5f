//! `inspect` and `validate` on arbitrary bytes: no panic, bounded work, and what is accepted
//! has a header that agrees with the reported kind.
//!
//! The checks live in `wharf_wasm::fuzzing::inspect_bytes`, which the tests also run.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_wasm::fuzzing::inspect_bytes(data));
