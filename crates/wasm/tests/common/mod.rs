//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};

use wharf_types::Manifest;

pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

pub(crate) fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub(crate) fn manifest(json: &str) -> Manifest {
    Manifest::from_bytes(json.to_owned(), None).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// A sha256 digest string of `seed`, for composed manifests.
pub(crate) fn digest(seed: &str) -> String {
    wharf_types::Digest::sha256(seed.as_bytes()).to_string()
}

/// A descriptor JSON object.
pub(crate) fn desc(media_type: &str, seed: &str, extra: &str) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":100{extra}}}"#,
        digest(seed)
    )
}

/// An image manifest JSON with `config` and `layers` (descriptor JSON) and more top-level
/// fields in `extra`.
pub(crate) fn image(config: &str, layers: &[String], extra: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{config},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// A core module importing WASI preview 1 that prints a greeting.
pub(crate) const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wharf\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// A component importing a WASI interface and exporting a function.
pub(crate) const COMPONENT_WAT: &str = r#"(component
  (import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-arguments" (func (result (list string))))))
  (core module $m (func (export "run")))
  (core instance $i (instantiate $m))
  (func $run (canon lift (core func $i "run")))
  (export "run" (func $run)))"#;

pub(crate) fn hello_module() -> Vec<u8> {
    wat::parse_str(HELLO_WAT).expect("valid WAT")
}

pub(crate) fn component() -> Vec<u8> {
    wat::parse_str(COMPONENT_WAT).expect("valid component WAT")
}

/// A tar layer (gzip-compressed when `gzip`) holding `files` (path, bytes).
pub(crate) fn tar_layer(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, *bytes)
            .expect("append");
    }
    let tar = builder.into_inner().expect("finish tar");
    if !gzip {
        return tar;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &tar).expect("gzip");
    encoder.finish().expect("gzip")
}
