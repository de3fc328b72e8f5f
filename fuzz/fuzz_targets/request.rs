//! The server's parsers of what a client sends: request paths (percent-decoding, routing,
//! repository names), query parameters, `Content-Range` and `Range` headers. No panic, and an
//! escaped `/` never becomes a separator.
//!
//! The checks live in `wharf_server::fuzzing::request`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_server::fuzzing::request(data));
