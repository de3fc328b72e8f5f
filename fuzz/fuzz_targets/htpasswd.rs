//! The htpasswd reader: no panic; what it accepts renders and reads back to the same users.
//!
//! The checks live in `wharf_auth::fuzzing::htpasswd`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_auth::fuzzing::htpasswd(data));
