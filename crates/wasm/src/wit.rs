//! A component's WIT world, decoded by the Bytecode Alliance's `wit-parser` and printed by
//! `wit-component` (the code behind `wasm-tools component wit`), as WIT text and as structured
//! JSON.

use serde::Serialize;
use wit_component::{DecodedWasm, WitPrinter};
use wit_parser::{Resolve, Type, WorldItem, WorldKey};

use crate::binary::{BinaryKind, Header, MAX_INSPECT_SIZE, MAX_LISTED};
use crate::error::{Error, Result};

/// The largest WIT text kept (1 MiB); a longer rendering is cut at a line end and marked.
pub const MAX_WIT_TEXT: usize = 1024 * 1024;

/// A component's world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct World {
    /// The world's name (`root` for a component `wit-component` built).
    pub name: String,
    /// The world as WIT text: its package, then every package it uses, nested — what
    /// `wasm-tools component wit` prints (at most [`MAX_WIT_TEXT`] bytes).
    pub wit: String,
    /// What it imports.
    pub imports: Vec<WorldEntry>,
    /// What it exports.
    pub exports: Vec<WorldEntry>,
}

/// One import or export of a world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorldEntry {
    /// The full name: `wasi:cli/environment@0.2.0` for an interface of a package, a plain
    /// name for a function, type or inline interface.
    pub name: String,
    /// `interface`, `function` or `type`.
    pub kind: &'static str,
    /// The interface's package (`wasi:cli`), if it belongs to one.
    pub package: Option<String>,
    /// The package's version (`0.2.0`).
    pub version: Option<String>,
    /// The interface's own name (`environment`).
    pub interface: Option<String>,
    /// The functions (an interface's, or the function itself).
    pub functions: Vec<Function>,
}

/// A function with its WIT signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Function {
    /// `get-environment`, `[method]fields.get`, …
    pub name: String,
    /// Parameters with their WIT types.
    pub params: Vec<Param>,
    /// The WIT result type, if any.
    pub result: Option<String>,
}

/// A parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its WIT type (`list<tuple<string, string>>`).
    #[serde(rename = "type")]
    pub ty: String,
}

impl World {
    /// Whether the world imports (`imports == true`) or exports an interface matching
    /// `pattern`: an exact name, a name without its version (`wasi:cli/run`), or a `*` suffix
    /// (`wasi:http/*`, `wasi:*`).
    pub fn has(&self, imports: bool, pattern: &str) -> bool {
        let entries = if imports { &self.imports } else { &self.exports };
        entries.iter().any(|e| interface_matches(&e.name, pattern))
    }
}

/// Whether an interface name (`wasi:http/incoming-handler@0.2.0`) matches `pattern`: equal,
/// equal without the version, or a prefix ending in `*`.
pub fn interface_matches(name: &str, pattern: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return name.starts_with(prefix);
    }
    name == pattern
        || (!pattern.contains('@') && name.split_once('@').is_some_and(|(bare, _)| bare == pattern))
}

/// Decodes a component's world.
///
/// # Example
/// ```
/// let component = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/wasm/component.wasm"))?;
/// let world = wharf_wasm::wit::world(&component)?;
/// assert!(world.wit.contains("world root"));
/// assert!(world.has(true, "wasi:cli/environment"));
/// assert_eq!(world.exports[0].name, "run");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn world(bytes: &[u8]) -> Result<World> {
    if bytes.len() > MAX_INSPECT_SIZE {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
    }
    if Header::parse(bytes)?.kind != BinaryKind::Component {
        return Err(Error::Malformed { reason: "a core module has no WIT world".into() });
    }
    // Validated first: `wit-parser` sizes its read buffer from section headers, so a section
    // claiming more bytes than the input holds would make it allocate that much (a fuzzing
    // finding: 1.3 GB from 291 bytes). A valid component's sections lie within its bytes.
    crate::binary::validate(bytes)?;
    world_of_valid(bytes)
}

/// [`world`] of a component already validated (as [`crate::inspect`] has, so it is not
/// validated twice).
pub(crate) fn world_of_valid(bytes: &[u8]) -> Result<World> {
    // `wit-parser` panics on some valid components that no WIT describes (a fuzzing finding:
    // `unreachable!` for a type export bound to an instance type); such a panic is this
    // component's error, not the caller's crash.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_world(bytes))).unwrap_or_else(|_| {
        Err(Error::Malformed { reason: "the WIT decoder (wit-parser) cannot describe this component".into() })
    })
}

fn decode_world(bytes: &[u8]) -> Result<World> {
    let decoded = wit_component::decode(bytes).map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
    let DecodedWasm::Component(resolve, world_id) = &decoded else {
        return Err(Error::Malformed { reason: "not a component".into() });
    };
    let main = decoded.package();
    let nested: Vec<_> = resolve.packages.iter().map(|(id, _)| id).filter(|id| *id != main).collect();
    let mut printer = WitPrinter::default();
    printer.print(resolve, main, &nested).map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
    let mut wit = printer.output.to_string();
    if wit.len() > MAX_WIT_TEXT {
        let cut = wit[..MAX_WIT_TEXT].rfind('\n').unwrap_or(0);
        wit.truncate(cut);
        wit.push_str("\n// … cut: the WIT text is longer than 1 MiB\n");
    }
    let world = &resolve.worlds[*world_id];
    let entries = |items: &wit_parser::IndexMap<WorldKey, WorldItem>| -> Vec<WorldEntry> {
        items.iter().take(MAX_LISTED).map(|(key, item)| entry(resolve, key, item)).collect()
    };
    Ok(World {
        name: world.name.clone(),
        wit,
        imports: entries(&world.imports),
        exports: entries(&world.exports),
    })
}

fn entry(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> WorldEntry {
    let name = resolve.name_world_key(key);
    match item {
        WorldItem::Interface { id, .. } => {
            let iface = &resolve.interfaces[*id];
            let package = iface.package.map(|p| &resolve.packages[p].name);
            WorldEntry {
                name,
                kind: "interface",
                package: package.map(|p| format!("{}:{}", p.namespace, p.name)),
                version: package.and_then(|p| p.version.as_ref()).map(ToString::to_string),
                interface: iface.name.clone(),
                functions: iface.functions.values().take(MAX_LISTED).map(|f| function(resolve, f)).collect(),
            }
        }
        WorldItem::Function(f) => WorldEntry {
            name,
            kind: "function",
            package: None,
            version: None,
            interface: None,
            functions: vec![function(resolve, f)],
        },
        WorldItem::Type { .. } => WorldEntry {
            name,
            kind: "type",
            package: None,
            version: None,
            interface: None,
            functions: Vec::new(),
        },
    }
}

fn function(resolve: &Resolve, f: &wit_parser::Function) -> Function {
    Function {
        name: f.name.clone(),
        params: f
            .params
            .iter()
            .map(|p| Param { name: p.name.clone(), ty: type_name(resolve, &p.ty) })
            .collect(),
        result: f.result.as_ref().map(|t| type_name(resolve, t)),
    }
}

/// A type as WIT writes it, by `wit-component`'s printer.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    let mut printer = WitPrinter::default();
    match printer.print_type_name(resolve, ty) {
        Ok(()) => printer.output.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}
