//! The storage lifecycle's parsers: tag and link records, sizes, durations, grace windows,
//! retention globs. No panic; written records read back the same.
//!
//! The checks live in `wharf_server::fuzzing::lifecycle`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_server::fuzzing::lifecycle(data));
