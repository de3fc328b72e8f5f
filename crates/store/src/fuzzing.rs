//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests.
//!
//! Each function takes arbitrary bytes and panics when an invariant breaks; the fuzz targets
//! call them with libFuzzer's input and the tests with proptest's, so the same checks run on
//! the stable toolchain in every `cargo test`.

use crate::journal::{decode, encode};
use crate::meta::Write;

/// The `FsStore` journal reader, on any file content: it never panics; every batch it returns
/// holds only safe keys and writes that encode back to a record it reads the same; and a
/// journal cut anywhere reads as a prefix of the batches.
pub fn journal(data: &[u8]) {
    let batches = decode(data);
    let mut rebuilt = Vec::new();
    for writes in &batches {
        for write in writes {
            if let Write::Set { key, .. } | Write::Remove { key } = write {
                assert!(crate::check_key(key).is_ok(), "unsafe key {key:?} read from a journal");
            }
        }
        rebuilt.extend(encode(writes));
    }
    assert_eq!(decode(&rebuilt), batches, "re-encoded batches read back differently");
    assert!(rebuilt.len() <= data.len(), "the records read are longer than the file");
    let cut = data.len() / 2;
    let prefix = decode(&data[..cut]);
    assert!(batches.starts_with(&prefix), "a cut journal read batches the whole one does not have");
}
