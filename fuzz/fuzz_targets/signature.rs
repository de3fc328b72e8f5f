//! The signature readers (Sigstore bundles, cosign simple-signing): no panic, and nothing
//! verifies against the test trust material but what the test identity or key signed over
//! the test manifest.
//!
//! The checks live in `wharf_auth::fuzzing::signature`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = wharf_auth::fuzzing::signature(data);
});
