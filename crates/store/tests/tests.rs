//! Integration tests of `wharf-store`: the conformance suite on every backend (memory, fs,
//! the S3 backend over object_store's in-memory store, and a real Garage node when one is
//! configured), the model check, sessions moving between processes, and the fs crash test.

mod backends;
mod crash;
