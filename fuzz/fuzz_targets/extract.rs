//! The layer extractor on arbitrary bytes (tar, tar+gzip, tar+zstd sniffed from the content):
//! no panic, caps on the module size and the bytes read hold.
//!
//! The checks live in `wharf_wasm::fuzzing::extract_bytes`, which the tests also run.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_wasm::fuzzing::extract_bytes(data));
