//! The token (JWT) reader, the JWKS and PEM key readers: no panic, and no input verifies under
//! keys that never signed it (`alg: none`, HMAC, mangled signatures all refused).
//!
//! The checks live in `wharf_auth::fuzzing::token`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_auth::fuzzing::token(data));
