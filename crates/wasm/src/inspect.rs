//! Looking inside `.wasm` bytes: module or component, imports, exports, WASI flavour.

use serde::Serialize;
use wasmparser::{Parser, Payload};

use crate::error::{Error, Result};

/// The four bytes every binary Wasm file starts with.
pub const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// The largest input [`inspect`] and [`validate`] read (256 MiB); larger input is refused
/// before any parsing.
pub const MAX_INSPECT_SIZE: usize = 256 * 1024 * 1024;

/// How many imports, exports and custom section names [`inspect`] records; beyond that it
/// counts but does not keep them, so hostile input cannot make it allocate without bound.
pub const MAX_LISTED: usize = 10_000;

/// Core module or component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryKind {
    /// A core WebAssembly module (version 1, layer 0).
    CoreModule,
    /// A component (the component model's layer 1).
    Component,
}

/// What the 8-byte preamble says (`WASM-FORMATS.md` §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Module or component.
    pub kind: BinaryKind,
    /// The version field (little-endian u16 at bytes 4–5).
    pub version: u16,
    /// The layer field (little-endian u16 at bytes 6–7).
    pub layer: u16,
}

impl Header {
    /// The component version `wasmparser` and today's toolchains read and write.
    pub const COMPONENT_VERSION: u16 = 0x0d;

    /// Reads the preamble: a core module is version 1 layer 0; a component is layer 1 with the
    /// current pre-standard version `0x0d`, an obsolete one (`0x0a`–`0x0c`) or the future
    /// standard version 1.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(preamble) = bytes.get(..8) else {
            return Err(Error::NotWasm {
                reason: format!("{} bytes, shorter than the 8-byte preamble", bytes.len()),
            });
        };
        if preamble[..4] != WASM_MAGIC {
            let reason =
                if preamble.starts_with(b"(") || preamble.first().is_some_and(u8::is_ascii_whitespace) {
                    "no `\\0asm` magic (this looks like the `.wat` text format)"
                } else {
                    "no `\\0asm` magic"
                };
            return Err(Error::NotWasm { reason: reason.into() });
        }
        let version = u16::from_le_bytes([preamble[4], preamble[5]]);
        let layer = u16::from_le_bytes([preamble[6], preamble[7]]);
        let kind = match (version, layer) {
            (1, 0) => BinaryKind::CoreModule,
            (0x0a..=0x0d | 1, 1) => BinaryKind::Component,
            _ => return Err(Error::UnknownBinaryVersion { version, layer }),
        };
        Ok(Self { kind, version, layer })
    }

    /// Whether this is a component in an encoding older than today's (`0x0a`–`0x0c`), which
    /// current tools no longer read.
    pub fn is_obsolete_component(&self) -> bool {
        self.kind == BinaryKind::Component && (0x0a..Self::COMPONENT_VERSION).contains(&self.version)
    }
}

/// An import of a module (`module`, `name`) or a component (`name` only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Import {
    /// The core module name (`wasi_snapshot_preview1`); empty for component imports.
    pub module: String,
    /// The item name (`fd_write`, `wasi:cli/environment@0.2.0`).
    pub name: String,
    /// `func`, `memory`, `instance`, …
    pub kind: &'static str,
}

/// An export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Export {
    /// The export name (`_start`, `wasi:cli/run@0.2.0`).
    pub name: String,
    /// `func`, `memory`, `instance`, …
    pub kind: &'static str,
}

/// Which WASI the binary imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WasiFlavour {
    /// No WASI imports.
    None,
    /// The pre-preview-1 `wasi_unstable` module.
    Unstable,
    /// WASI preview 1: `wasi_snapshot_preview1`.
    Preview1,
    /// Component-model WASI interfaces (`wasi:*`, preview 2 and later).
    Component,
}

/// What [`inspect`] found in a `.wasm` binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ModuleInfo {
    /// The preamble.
    pub header: Header,
    /// The size in bytes.
    pub size: u64,
    /// The top-level imports (at most [`MAX_LISTED`]).
    pub imports: Vec<Import>,
    /// The top-level exports (at most [`MAX_LISTED`]).
    pub exports: Vec<Export>,
    /// The WASI flavour of the top-level imports.
    pub wasi: WasiFlavour,
    /// The `wasi:*` interfaces a component imports (`wasi:cli/environment@0.2.0`).
    pub wasi_interfaces: Vec<String>,
    /// Names of custom sections at any depth (`name`, `producers`, `component-type:…`), at most
    /// [`MAX_LISTED`].
    pub custom_sections: Vec<String>,
    /// Core modules nested in a component.
    pub nested_modules: u32,
    /// Components nested in a component.
    pub nested_components: u32,
}

impl ModuleInfo {
    /// Module or component.
    pub fn kind(&self) -> BinaryKind {
        self.header.kind
    }
}

/// Inspects `.wasm` bytes: the header decides module or component, then a streaming parse
/// (no validation, linear time) lists top-level imports and exports and custom sections.
///
/// # Example
/// ```
/// use wharf_wasm::{inspect, BinaryKind, WasiFlavour};
///
/// // (module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))
/// let wasm = [
///     0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 1, 127, 0, 2, 36, 1, 22, 119, 97, 115, 105,
///     95, 115, 110, 97, 112, 115, 104, 111, 116, 95, 112, 114, 101, 118, 105, 101, 119, 49,
///     9, 112, 114, 111, 99, 95, 101, 120, 105, 116, 0, 0,
/// ];
/// let info = inspect(&wasm)?;
/// assert_eq!(info.kind(), BinaryKind::CoreModule);
/// assert_eq!(info.wasi, WasiFlavour::Preview1);
/// assert_eq!(info.imports[0].name, "proc_exit");
/// assert!(inspect(b"not wasm").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo> {
    if bytes.len() > MAX_INSPECT_SIZE {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
    }
    let header = Header::parse(bytes)?;
    if header.kind == BinaryKind::Component && header.version != Header::COMPONENT_VERSION {
        return Err(Error::UnsupportedComponentEncoding { version: header.version });
    }
    let mut info = ModuleInfo {
        header,
        size: bytes.len() as u64,
        imports: Vec::new(),
        exports: Vec::new(),
        wasi: WasiFlavour::None,
        wasi_interfaces: Vec::new(),
        custom_sections: Vec::new(),
        nested_modules: 0,
        nested_components: 0,
    };
    // The top level's own `Version` opens depth 1; every nested module or component opens a
    // deeper level, closed by its `End`.
    let mut depth = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| Error::Malformed { reason: e.to_string() })? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ModuleSection { .. } => info.nested_modules += 1,
            Payload::ComponentSection { .. } => info.nested_components += 1,
            Payload::ImportSection(reader) if depth == 1 => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| Error::Malformed { reason: e.to_string() })?;
                    if info.imports.len() < MAX_LISTED {
                        info.imports.push(Import {
                            module: import.module.to_owned(),
                            name: import.name.to_owned(),
                            kind: core_type_kind(import.ty),
                        });
                    }
                }
            }
            Payload::ExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| Error::Malformed { reason: e.to_string() })?;
                    if info.exports.len() < MAX_LISTED {
                        info.exports.push(Export {
                            name: export.name.to_owned(),
                            kind: core_extern_kind(export.kind),
                        });
                    }
                }
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| Error::Malformed { reason: e.to_string() })?;
                    if info.imports.len() < MAX_LISTED {
                        info.imports.push(Import {
                            module: String::new(),
                            name: import.name.full_name().into_owned(),
                            kind: import.ty.kind().desc(),
                        });
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| Error::Malformed { reason: e.to_string() })?;
                    if info.exports.len() < MAX_LISTED {
                        info.exports.push(Export {
                            name: export.name.full_name().into_owned(),
                            kind: export.kind.desc(),
                        });
                    }
                }
            }
            Payload::CustomSection(reader) if info.custom_sections.len() < MAX_LISTED => {
                info.custom_sections.push(reader.name().to_owned());
            }
            _ => {}
        }
    }
    info.wasi = wasi_flavour(&info.imports);
    info.wasi_interfaces = info
        .imports
        .iter()
        .filter(|i| i.module.is_empty() && i.name.starts_with("wasi:"))
        .map(|i| i.name.clone())
        .collect();
    Ok(info)
}

/// Fully validates `bytes` (every proposal `wasmparser` knows enabled): the check a registry
/// runs before accepting a layer that claims to be Wasm.
pub fn validate(bytes: &[u8]) -> Result<Header> {
    if bytes.len() > MAX_INSPECT_SIZE {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
    }
    let header = Header::parse(bytes)?;
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| Error::Malformed { reason: e.to_string() })?;
    Ok(header)
}

fn wasi_flavour(imports: &[Import]) -> WasiFlavour {
    if imports.iter().any(|i| i.module.is_empty() && i.name.starts_with("wasi:")) {
        WasiFlavour::Component
    } else if imports.iter().any(|i| i.module == "wasi_snapshot_preview1") {
        WasiFlavour::Preview1
    } else if imports.iter().any(|i| i.module == "wasi_unstable") {
        WasiFlavour::Unstable
    } else {
        WasiFlavour::None
    }
}

fn core_type_kind(ty: wasmparser::TypeRef) -> &'static str {
    use wasmparser::TypeRef;
    match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => "func",
        TypeRef::Table(_) => "table",
        TypeRef::Memory(_) => "memory",
        TypeRef::Global(_) => "global",
        TypeRef::Tag(_) => "tag",
    }
}

fn core_extern_kind(kind: wasmparser::ExternalKind) -> &'static str {
    use wasmparser::ExternalKind;
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "func",
        ExternalKind::Table => "table",
        ExternalKind::Memory => "memory",
        ExternalKind::Global => "global",
        ExternalKind::Tag => "tag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_table() {
        let with = |v: [u8; 4]| {
            let mut b = WASM_MAGIC.to_vec();
            b.extend_from_slice(&v);
            Header::parse(&b)
        };
        assert_eq!(with([1, 0, 0, 0]).expect("module").kind, BinaryKind::CoreModule);
        let current = with([0x0d, 0, 1, 0]).expect("component");
        assert_eq!(current.kind, BinaryKind::Component);
        assert!(!current.is_obsolete_component());
        let old = with([0x0c, 0, 1, 0]).expect("obsolete component");
        assert!(old.is_obsolete_component());
        assert_eq!(with([1, 0, 1, 0]).expect("future standard").kind, BinaryKind::Component);
        assert!(matches!(with([2, 0, 0, 0]), Err(Error::UnknownBinaryVersion { .. })));
        assert!(matches!(with([0x0d, 0, 0, 0]), Err(Error::UnknownBinaryVersion { .. })));
        assert!(matches!(Header::parse(b"\0asm"), Err(Error::NotWasm { .. })));
        let wat = Header::parse(b"(module)").expect_err("text");
        assert!(wat.to_string().contains(".wat"), "{wat}");
    }

    #[test]
    fn obsolete_components_are_refused_clearly() {
        let b = [0, 0x61, 0x73, 0x6d, 0x0c, 0, 1, 0];
        let err = inspect(&b).expect_err("0x0c");
        assert!(matches!(err, Error::UnsupportedComponentEncoding { version: 0x0c }), "{err}");
    }
}
