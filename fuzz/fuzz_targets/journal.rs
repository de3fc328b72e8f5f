//! The `FsStore` journal reader on any file content: no panic, only safe keys, records that
//! re-encode to themselves, and a cut journal reads as a prefix.
//!
//! The checks live in `wharf_store::fuzzing::journal`, which the tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_store::fuzzing::journal(data));
