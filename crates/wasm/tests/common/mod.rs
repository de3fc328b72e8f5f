//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};

use wharf_types::Manifest;

pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
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
    format!(r#"{{"mediaType":"{media_type}","digest":"{}","size":100{extra}}}"#, digest(seed))
}

/// An image manifest JSON with `config` and `layers` (descriptor JSON) and more top-level
/// fields in `extra`.
pub(crate) fn image(config: &str, layers: &[String], extra: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{config},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// A WASI preview 1 module that prints `hello from wharf` (`tests/data/wasm/hello.wat`).
pub(crate) fn hello_module() -> Vec<u8> {
    fixture("hello")
}

/// A component importing a WASI interface and exporting `run`
/// (`tests/data/wasm/component.wat`).
pub(crate) fn component() -> Vec<u8> {
    fixture("component")
}

/// The committed `tests/data/wasm/<name>.wasm`, checked against its `.wat` source (with
/// `WHARF_BLESS=1`, rewritten from it).
fn fixture(name: &str) -> Vec<u8> {
    let dir = data_dir().join("wasm");
    let built = wat::parse_file(dir.join(format!("{name}.wat"))).expect("valid WAT");
    let path = dir.join(format!("{name}.wasm"));
    if std::env::var_os("WHARF_BLESS").is_some() {
        std::fs::write(&path, &built).expect("write fixture");
    }
    let committed = std::fs::read(&path).expect("fixture present (WHARF_BLESS=1 writes it)");
    assert_eq!(committed, built, "{name}.wasm is not what {name}.wat builds (WHARF_BLESS=1 rewrites it)");
    committed
}

/// A tar layer (gzip-compressed when `gzip`) holding `files` (path, bytes).
pub(crate) fn tar_layer(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *bytes).expect("append");
    }
    let tar = builder.into_inner().expect("finish tar");
    if !gzip {
        return tar;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &tar).expect("gzip");
    encoder.finish().expect("gzip")
}
