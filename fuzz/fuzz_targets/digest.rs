//! Digest and media type parsing and hashing: parsed digests print back to their input, whole, split, resumed and verified hashing agree, and any bytes as a saved hash state give a hasher or nothing.
//!
//! The checks live in `wharf_types::fuzzing::digest`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_types::fuzzing::digest(data));
