//! Looking inside `.wasm` bytes: module or component, imports, exports, WASI flavor.

use serde::Serialize;
use wasmparser::{Parser, Payload};

use crate::binary::{BinaryKind, Header, MAX_INSPECT_SIZE, MAX_LISTED};
use crate::error::{Error, Result};

/// What an import or export is: a core item (`func`, `table`, `memory`, `global`, `tag`) or a
/// component item (`func`, `instance`, `component`, `module`, `type`, `value`). Serialized
/// and displayed as those lowercase words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ItemKind {
    /// A function.
    Func,
    /// A core table.
    Table,
    /// A core memory.
    Memory,
    /// A core global.
    Global,
    /// A core exception tag.
    Tag,
    /// A component instance (a WIT interface, such as `wasi:cli/run@0.2.0`).
    Instance,
    /// A nested component.
    Component,
    /// A core module inside a component.
    Module,
    /// A component type.
    Type,
    /// A component value.
    Value,
}

impl ItemKind {
    /// The lowercase word (`func`, `instance`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Func => "func",
            Self::Table => "table",
            Self::Memory => "memory",
            Self::Global => "global",
            Self::Tag => "tag",
            Self::Instance => "instance",
            Self::Component => "component",
            Self::Module => "module",
            Self::Type => "type",
            Self::Value => "value",
        }
    }
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ItemKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An import of a module (`module`, `name`) or a component (`name` only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Import {
    /// The core module name (`wasi_snapshot_preview1`); empty for component imports.
    pub module: String,
    /// The item name (`fd_write`, `wasi:cli/environment@0.2.0`).
    pub name: String,
    /// `func`, `memory`, `instance`, …
    pub kind: ItemKind,
}

/// An export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Export {
    /// The export name (`_start`, `wasi:cli/run@0.2.0`).
    pub name: String,
    /// `func`, `memory`, `instance`, …
    pub kind: ItemKind,
}

/// Which WASI the binary imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WasiFlavor {
    /// No WASI imports.
    None,
    /// The pre-preview-1 `wasi_unstable` module.
    Unstable,
    /// WASI preview 1: `wasi_snapshot_preview1`.
    Preview1,
    /// Component-model WASI interfaces (`wasi:*`, preview 2 and later).
    Component,
}

impl std::fmt::Display for WasiFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Unstable => "wasi_unstable",
            Self::Preview1 => "preview 1",
            Self::Component => "component (preview 2+)",
        })
    }
}

/// A tool named in the `producers` custom section.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct Tool {
    /// `Rust`, `rustc`, `wit-component`, `TinyGo`, …
    pub name: String,
    /// Its version as recorded (`1.82.0 (f6e511eec 2024-10-15)`); may be empty.
    pub version: String,
}

/// What the binary says about itself in the top level's custom sections as `wasm-metadata`
/// (`wasm-tools metadata add`, `cargo component`, `wkg`) writes them — `version`,
/// `description`, `licenses`, `source`, `homepage`, `authors`, `revision`, each UTF-8 text —
/// which `wkg publish` turns into `org.opencontainers.image.*` annotations. A section that is
/// not UTF-8 or longer than [`MAX_METADATA`] bytes is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Metadata {
    /// The version of the packaged software.
    pub version: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// An SPDX license expression.
    pub licenses: Option<String>,
    /// Where the source code is (a URL).
    pub source: Option<String>,
    /// Where to learn more (a URL).
    pub homepage: Option<String>,
    /// Who made it.
    pub authors: Option<String>,
    /// The source revision it was built from.
    pub revision: Option<String>,
}

/// The longest metadata text kept (bytes).
pub const MAX_METADATA: usize = 4096;

impl Metadata {
    /// The OCI annotations `wkg publish` sets from it (`org.opencontainers.image.description`,
    /// `.licenses`, `.source`, `.url` for the homepage, `.authors`), in that order.
    pub fn annotations(&self) -> Vec<(&'static str, &str)> {
        [
            ("org.opencontainers.image.description", &self.description),
            ("org.opencontainers.image.licenses", &self.licenses),
            ("org.opencontainers.image.source", &self.source),
            ("org.opencontainers.image.url", &self.homepage),
            ("org.opencontainers.image.authors", &self.authors),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }

    /// Records a top-level custom section if it is one of the metadata's.
    fn read(&mut self, name: &str, data: &[u8]) {
        let field = match name {
            "version" => &mut self.version,
            "description" => &mut self.description,
            "licenses" => &mut self.licenses,
            "source" => &mut self.source,
            "homepage" => &mut self.homepage,
            "authors" => &mut self.authors,
            "revision" => &mut self.revision,
            _ => return,
        };
        if data.len() <= MAX_METADATA
            && let Ok(text) = std::str::from_utf8(data)
        {
            *field = Some(text.to_owned());
        }
    }
}

/// The `producers` custom section (tool-conventions `ProducersSection.md`), merged over every
/// module and component inside the binary, each tool listed once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Producers {
    /// Source languages (`Rust`, `C11`, `JavaScript`).
    pub language: Vec<Tool>,
    /// Tools that produced or transformed the binary (`rustc`, `clang`, `wit-component`,
    /// `wasm-opt`).
    pub processed_by: Vec<Tool>,
    /// SDKs (`Emscripten`, `componentize-py`).
    pub sdk: Vec<Tool>,
}

impl Producers {
    /// Whether the binary named no producer at all.
    pub fn is_empty(&self) -> bool {
        self.language.is_empty() && self.processed_by.is_empty() && self.sdk.is_empty()
    }
}

/// A linear memory of a core module (defined or imported).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Memory {
    /// Imported rather than defined.
    pub imported: bool,
    /// The initial size in pages.
    pub initial_pages: u64,
    /// The maximum size in pages, if bounded.
    pub maximum_pages: Option<u64>,
    /// The page size in bytes (65,536 unless the custom-page-sizes proposal says otherwise).
    pub page_size: u64,
    /// 64-bit addresses (memory64).
    pub memory64: bool,
    /// Shared between threads (threads).
    pub shared: bool,
}

/// A table of a core module (defined or imported).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Table {
    /// Imported rather than defined.
    pub imported: bool,
    /// `funcref`, `externref`, …
    pub element_type: String,
    /// The initial number of elements.
    pub initial: u64,
    /// The maximum number of elements, if bounded.
    pub maximum: Option<u64>,
    /// 64-bit indexes (memory64 for tables).
    pub table64: bool,
}

/// The bytes one kind of top-level section takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Section {
    /// `code`, `data`, `import`, `core-module`, `custom:name`, `custom:producers`, …
    pub name: String,
    /// Bytes of content, summed over the sections of that name.
    pub size: u64,
}

/// What [`inspect`] found in a `.wasm` binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModuleInfo {
    /// The preamble.
    pub header: Header,
    /// What the binary holds: `core-module`, `component`, or `wit-package` (a binary-encoded
    /// WIT package: a component header, types and no code; told only by decoding, feature
    /// `wit`).
    pub content: &'static str,
    /// The size in bytes.
    pub size: u64,
    /// The top-level imports (at most [`MAX_LISTED`]).
    pub imports: Vec<Import>,
    /// The top-level exports (at most [`MAX_LISTED`]).
    pub exports: Vec<Export>,
    /// The WASI flavor of the top-level imports.
    pub wasi: WasiFlavor,
    /// The WASI version targeted, from the imports: `unstable`, `preview1`, or the highest
    /// version of the `wasi:*` interfaces imported (`0.2.0`, `0.2.3`, `0.3.0-rc-2025-09-16`);
    /// `None` without WASI imports.
    pub wasi_version: Option<String>,
    /// The `wasi:*` interfaces a component imports (`wasi:cli/environment@0.2.0`).
    pub wasi_interfaces: Vec<String>,
    /// Names of custom sections at any depth (`name`, `producers`, `component-type:…`), at most
    /// [`MAX_LISTED`].
    pub custom_sections: Vec<String>,
    /// Core modules nested in a component.
    pub nested_modules: u32,
    /// Components nested in a component.
    pub nested_components: u32,
    /// The `producers` sections, merged.
    pub producers: Producers,
    /// The top level's `wasm-metadata` sections (description, licenses, …).
    pub metadata: Metadata,
    /// Memories of the core modules at any depth (at most [`MAX_LISTED`]).
    pub memories: Vec<Memory>,
    /// Tables of the core modules at any depth (at most [`MAX_LISTED`]).
    pub tables: Vec<Table>,
    /// The top-level start function's index, if any.
    pub start: Option<u32>,
    /// Bytes by top-level section, largest first.
    pub sections: Vec<Section>,
    /// Whether the binary validates (every proposal `wasmparser` knows enabled), and if not why.
    pub validation: Validation,
    /// For a component: its WIT world (feature `wit`); `None` for core modules, or when it cannot
    /// be decoded (the reason is in `world_error`).
    #[cfg(feature = "wit")]
    pub world: Option<crate::wit::World>,
    /// Why the component's world could not be decoded.
    #[cfg(feature = "wit")]
    pub world_error: Option<String>,
    /// For a binary-encoded WIT package (what `wkg wit build` writes; a component header and
    /// no code): the package (feature `wit`). `world` is `None` then.
    #[cfg(feature = "wit")]
    pub package: Option<crate::wit::Package>,
}

/// The result of validating a binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Validation {
    /// Whether it validates.
    pub valid: bool,
    /// The validator's message when it does not.
    pub error: Option<String>,
    /// The WebAssembly proposals beyond the baseline it needs (`simd`, `threads`, `gc`,
    /// `exception-handling`, `memory64`, …; [`PROPOSALS`]); empty when invalid.
    pub proposals: Vec<&'static str>,
}

/// The proposals [`inspect`] reports, by name; everything else `wasmparser` knows (the MVP,
/// mutable globals, bulk memory, reference types, sign extension, saturating conversions,
/// multi-value, the component model) is the baseline every current engine runs.
pub const PROPOSALS: &[(&str, wasmparser::WasmFeatures)] = {
    use wasmparser::WasmFeatures as F;
    &[
        ("simd", F::SIMD),
        ("relaxed-simd", F::RELAXED_SIMD),
        ("threads", F::THREADS),
        ("shared-everything-threads", F::SHARED_EVERYTHING_THREADS),
        ("gc", F::GC),
        ("function-references", F::FUNCTION_REFERENCES),
        ("exception-handling", F::EXCEPTIONS),
        ("legacy-exceptions", F::LEGACY_EXCEPTIONS),
        ("memory64", F::MEMORY64),
        ("multi-memory", F::MULTI_MEMORY),
        ("tail-call", F::TAIL_CALL),
        ("extended-const", F::EXTENDED_CONST),
        ("wide-arithmetic", F::WIDE_ARITHMETIC),
        ("custom-page-sizes", F::CUSTOM_PAGE_SIZES),
        ("stack-switching", F::STACK_SWITCHING),
        ("component-model-async", F::CM_ASYNC),
    ]
};

impl ModuleInfo {
    /// Module or component.
    pub fn kind(&self) -> BinaryKind {
        self.header.kind
    }
}

/// Inspects `.wasm` bytes: the header decides module or component, then a streaming parse
/// lists top-level imports and exports, custom sections, producers, memories, tables and
/// section sizes; a validation says whether it is valid and which proposals it needs; for a
/// component (feature `wit`) its WIT world is decoded. Linear in the input, which is at most
/// [`MAX_INSPECT_SIZE`]; lists are capped at [`MAX_LISTED`].
///
/// # Example
/// ```
/// use wharf_wasm::{inspect, BinaryKind, WasiFlavor};
///
/// // (module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))
/// let wasm = [
///     0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 1, 127, 0, 2, 36, 1, 22, 119, 97, 115, 105,
///     95, 115, 110, 97, 112, 115, 104, 111, 116, 95, 112, 114, 101, 118, 105, 101, 119, 49,
///     9, 112, 114, 111, 99, 95, 101, 120, 105, 116, 0, 0,
/// ];
/// let info = inspect(&wasm)?;
/// assert_eq!(info.kind(), BinaryKind::CoreModule);
/// assert_eq!(info.wasi, WasiFlavor::Preview1);
/// assert_eq!(info.wasi_version.as_deref(), Some("preview1"));
/// assert_eq!(info.imports[0].name, "proc_exit");
/// assert!(info.validation.valid);
/// assert!(inspect(b"not wasm").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo> {
    if bytes.len() > MAX_INSPECT_SIZE {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
    }
    let header = Header::parse(bytes)?;
    if header.kind == BinaryKind::Component && header.version != Header::COMPONENT_VERSION {
        return Err(Error::UnsupportedComponentEncoding {
            version: header.version,
            current: Header::COMPONENT_VERSION,
        });
    }
    let mut info = ModuleInfo {
        header,
        size: bytes.len() as u64,
        imports: Vec::new(),
        exports: Vec::new(),
        wasi: WasiFlavor::None,
        wasi_version: None,
        wasi_interfaces: Vec::new(),
        custom_sections: Vec::new(),
        nested_modules: 0,
        nested_components: 0,
        producers: Producers::default(),
        metadata: Metadata::default(),
        memories: Vec::new(),
        tables: Vec::new(),
        start: None,
        sections: Vec::new(),
        validation: Validation { valid: false, error: None, proposals: Vec::new() },
        #[cfg(feature = "wit")]
        world: None,
        #[cfg(feature = "wit")]
        world_error: None,
        #[cfg(feature = "wit")]
        package: None,
        content: match header.kind {
            BinaryKind::CoreModule => "core-module",
            BinaryKind::Component => "component",
        },
    };
    let malformed = |e: wasmparser::BinaryReaderError| Error::Malformed { reason: e.to_string() };
    let mut sizes: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    // The top level's own `Version` opens depth 1; every nested module or component opens a
    // deeper level, closed by its `End`.
    let mut depth = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(malformed)?;
        if depth == 1
            && let Some((id, range)) = payload.as_section()
        {
            let name = match &payload {
                Payload::CustomSection(c) => format!("custom:{}", c.name()),
                _ => section_name(header.kind, id),
            };
            if sizes.len() < MAX_LISTED || sizes.contains_key(&name) {
                *sizes.entry(name).or_default() += range.end - range.start;
            }
        }
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ModuleSection { .. } => info.nested_modules += 1,
            Payload::ComponentSection { .. } => info.nested_components += 1,
            Payload::StartSection { func, .. } if depth == 1 => info.start = Some(func),
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(malformed)?;
                    match import.ty {
                        wasmparser::TypeRef::Memory(m) => push_capped(&mut info.memories, memory(m, true)),
                        wasmparser::TypeRef::Table(t) => push_capped(&mut info.tables, table(t, true)),
                        _ => {}
                    }
                    if depth == 1 {
                        push_capped(
                            &mut info.imports,
                            Import {
                                module: import.module.to_owned(),
                                name: import.name.to_owned(),
                                kind: core_type_kind(import.ty),
                            },
                        );
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    push_capped(&mut info.memories, memory(m.map_err(malformed)?, false));
                }
            }
            Payload::TableSection(reader) => {
                for t in reader {
                    push_capped(&mut info.tables, table(t.map_err(malformed)?.ty, false));
                }
            }
            Payload::ExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    push_capped(
                        &mut info.exports,
                        Export { name: export.name.to_owned(), kind: core_extern_kind(export.kind) },
                    );
                }
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    push_capped(
                        &mut info.imports,
                        Import {
                            module: String::new(),
                            name: import.name.full_name().into_owned(),
                            kind: component_kind(import.ty.kind()),
                        },
                    );
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    push_capped(
                        &mut info.exports,
                        Export {
                            name: export.name.full_name().into_owned(),
                            kind: component_kind(export.kind),
                        },
                    );
                }
            }
            Payload::CustomSection(reader) => {
                if let wasmparser::KnownCustom::Producers(fields) = reader.as_known() {
                    add_producers(&mut info.producers, fields).map_err(malformed)?;
                }
                if depth == 1 {
                    info.metadata.read(reader.name(), reader.data());
                }
                push_capped(&mut info.custom_sections, reader.name().to_owned());
            }
            _ => {}
        }
    }
    let mut sections: Vec<Section> = sizes.into_iter().map(|(name, size)| Section { name, size }).collect();
    sections.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    info.sections = sections;
    info.wasi = wasi_flavor(&info.imports);
    info.wasi_interfaces = info
        .imports
        .iter()
        .filter(|i| i.module.is_empty() && i.name.starts_with("wasi:"))
        .map(|i| i.name.clone())
        .collect();
    info.wasi_version = wasi_version(info.wasi, &info.wasi_interfaces);
    info.validation = validation(bytes);
    #[cfg(feature = "wit")]
    if header.kind == BinaryKind::Component && info.validation.valid {
        // Validated above (`validation.valid`): decoded without validating again.
        match crate::wit::decode_valid(bytes) {
            Ok(crate::wit::Wit::World(world)) => info.world = Some(world),
            Ok(crate::wit::Wit::Package(package)) => {
                info.package = Some(package);
                info.content = "wit-package";
            }
            Err(e) => info.world_error = Some(e.to_string()),
        }
    }
    Ok(info)
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

fn memory(m: wasmparser::MemoryType, imported: bool) -> Memory {
    Memory {
        imported,
        initial_pages: m.initial,
        maximum_pages: m.maximum,
        page_size: m.page_size_log2.map_or(65_536, |log2| 1u64.checked_shl(log2).unwrap_or(0)),
        memory64: m.memory64,
        shared: m.shared,
    }
}

fn table(t: wasmparser::TableType, imported: bool) -> Table {
    Table {
        imported,
        element_type: t.element_type.to_string(),
        initial: t.initial,
        maximum: t.maximum,
        table64: t.table64,
    }
}

fn add_producers(
    producers: &mut Producers,
    fields: wasmparser::ProducersSectionReader<'_>,
) -> std::result::Result<(), wasmparser::BinaryReaderError> {
    for field in fields {
        let field = field?;
        let list = match field.name {
            "language" => &mut producers.language,
            "processed-by" => &mut producers.processed_by,
            "sdk" => &mut producers.sdk,
            _ => continue,
        };
        for value in field.values {
            let value = value?;
            let tool = Tool { name: value.name.to_owned(), version: value.version.to_owned() };
            if !list.contains(&tool) && list.len() < MAX_LISTED {
                list.push(tool);
            }
        }
    }
    Ok(())
}

/// The name of a top-level section by id (the core and component binary formats' tables).
fn section_name(kind: BinaryKind, id: u8) -> String {
    const CORE: [&str; 14] = [
        "custom",
        "type",
        "import",
        "function",
        "table",
        "memory",
        "global",
        "export",
        "start",
        "element",
        "code",
        "data",
        "data-count",
        "tag",
    ];
    const COMPONENT: [&str; 13] = [
        "custom",
        "core-module",
        "core-instance",
        "core-type",
        "component",
        "instance",
        "alias",
        "type",
        "canonical",
        "start",
        "import",
        "export",
        "value",
    ];
    let table: &[&str] = if kind == BinaryKind::Component { &COMPONENT } else { &CORE };
    table.get(usize::from(id)).map_or_else(|| format!("unknown-{id}"), |n| (*n).to_owned())
}

/// Validates with every proposal on; if that needs more than the baseline, finds which
/// proposals by validating once without each.
fn validation(bytes: &[u8]) -> Validation {
    use wasmparser::{Validator, WasmFeatures};
    let all = WasmFeatures::all();
    if let Err(e) = Validator::new_with_features(all).validate_all(bytes) {
        return Validation { valid: false, error: Some(e.to_string()), proposals: Vec::new() };
    }
    let probed = PROPOSALS.iter().fold(WasmFeatures::empty(), |acc, (_, f)| acc.union(*f));
    let baseline = all.difference(probed);
    let proposals = if Validator::new_with_features(baseline).validate_all(bytes).is_ok() {
        Vec::new()
    } else {
        PROPOSALS
            .iter()
            .filter(|(_, f)| Validator::new_with_features(all.difference(*f)).validate_all(bytes).is_err())
            .map(|(name, _)| *name)
            .collect()
    };
    Validation { valid: true, error: None, proposals }
}

fn wasi_flavor(imports: &[Import]) -> WasiFlavor {
    if imports.iter().any(|i| i.module.is_empty() && i.name.starts_with("wasi:")) {
        WasiFlavor::Component
    } else if imports.iter().any(|i| i.module == "wasi_snapshot_preview1") {
        WasiFlavor::Preview1
    } else if imports.iter().any(|i| i.module == "wasi_unstable") {
        WasiFlavor::Unstable
    } else {
        WasiFlavor::None
    }
}

/// The WASI version: `preview1`/`unstable` for core imports, else the highest version among
/// the `wasi:*@x.y.z` interfaces (compared as semantic versions, pre-releases below releases).
fn wasi_version(flavor: WasiFlavor, interfaces: &[String]) -> Option<String> {
    match flavor {
        WasiFlavor::None => None,
        WasiFlavor::Unstable => Some("unstable".into()),
        WasiFlavor::Preview1 => Some("preview1".into()),
        WasiFlavor::Component => {
            let versions = interfaces.iter().filter_map(|i| i.split_once('@').map(|(_, v)| v));
            versions.max_by(|a, b| semver_key(a).cmp(&semver_key(b))).map(str::to_owned)
        }
    }
}

/// `(major, minor, patch, is-release, pre-release)` of `x.y.z[-pre]`; unparsable parts are 0.
fn semver_key(version: &str) -> (u64, u64, u64, bool, &str) {
    let (core, pre) = version.split_once('-').unwrap_or((version, ""));
    let mut parts = core.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b, c, pre.is_empty(), pre)
}

fn core_type_kind(ty: wasmparser::TypeRef) -> ItemKind {
    use wasmparser::TypeRef;
    match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => ItemKind::Func,
        TypeRef::Table(_) => ItemKind::Table,
        TypeRef::Memory(_) => ItemKind::Memory,
        TypeRef::Global(_) => ItemKind::Global,
        TypeRef::Tag(_) => ItemKind::Tag,
    }
}

fn core_extern_kind(kind: wasmparser::ExternalKind) -> ItemKind {
    use wasmparser::ExternalKind;
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => ItemKind::Func,
        ExternalKind::Table => ItemKind::Table,
        ExternalKind::Memory => ItemKind::Memory,
        ExternalKind::Global => ItemKind::Global,
        ExternalKind::Tag => ItemKind::Tag,
    }
}

fn component_kind(kind: wasmparser::ComponentExternalKind) -> ItemKind {
    use wasmparser::ComponentExternalKind as K;
    match kind {
        K::Module => ItemKind::Module,
        K::Func => ItemKind::Func,
        K::Value => ItemKind::Value,
        K::Type => ItemKind::Type,
        K::Instance => ItemKind::Instance,
        K::Component => ItemKind::Component,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::WASM_MAGIC;

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
        assert!(matches!(err, Error::UnsupportedComponentEncoding { version: 0x0c, .. }), "{err}");
    }
}
