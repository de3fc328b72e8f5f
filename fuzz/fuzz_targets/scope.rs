//! Token scopes (`repository:a/b:pull,push`, space-separated lists) and repository patterns:
//! no panic; an accepted scope prints and parses back to itself.
//!
//! The checks live in `wharf_auth::fuzzing::scope`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_auth::fuzzing::scope(data));
