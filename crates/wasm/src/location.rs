//! Where the Wasm bytes sit in a manifest's layers, and the paths inside an image: what the
//! classifier says and the layer and image readers follow.

use serde::Serialize;
use wharf_types::Descriptor;

/// How to find the Wasm bytes in a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
#[non_exhaustive]
pub enum Location {
    /// The layer blob is the `.wasm` file.
    Raw,
    /// A file inside a tar (or tar+gzip) layer.
    TarEntry(EntryMatch),
}

/// Which entry of a tar layer holds the module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "match", content = "value")]
#[non_exhaustive]
pub enum EntryMatch {
    /// The entry at this path (from `Entrypoint`/`Cmd`; no leading `/` or `./`).
    Path(String),
    /// The first entry with this file name in any directory (`plugin.wasm`, `extension.wasm`).
    FileName(String),
    /// The first regular file whose name ends in `.wasm` (when the config is not at hand).
    AnyWasm,
}

/// A layer that holds (or may hold) Wasm bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WasmLayer {
    /// The position in `layers` (always in range).
    pub index: usize,
    /// The layer's descriptor.
    pub descriptor: Descriptor,
    /// Where the bytes are.
    pub location: Location,
}

impl WasmLayer {
    /// The layer at `index` of a manifest's `layers`, holding Wasm at `location`.
    pub fn new(index: usize, descriptor: Descriptor, location: Location) -> Self {
        Self { index, descriptor, location }
    }
}

/// Normalizes a path inside an image: no leading `/` or `./`, no empty or `.` components,
/// `..` resolved (never above the root).
pub fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}
