//! Integration tests of `wharf-types`: real manifests from the field, property tests of the
//! parsers, and the fuzz invariants on random input.

mod examples;
mod properties;
