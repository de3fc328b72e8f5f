//! WIT, decoded by the Bytecode Alliance's `wit-parser` and printed by `wit-component` (the
//! code behind `wasm-tools component wit`), as WIT text and as structured JSON: a component's
//! world ([`World`]), or a binary-encoded WIT package ([`Package`], what `wkg wit build`
//! writes and `wkg publish` pushes) — the two look alike on the wire (a component header)
//! and are told apart by decoding. [`compatible`] is the semver check `wkg publish` runs
//! (`wit_component::semver_check`), applied to components and WIT packages.

use std::fmt::Write as _;

use serde::Serialize;
use wit_component::{DecodedWasm, WitPrinter};
use wit_parser::{Resolve, Type, WorldId, WorldItem, WorldKey};

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
    /// The packages its imports and exports come from (`wasi:cli@0.2.0`, `acme:greeter@0.1.0`).
    pub dependencies: Vec<Dependency>,
}

/// A binary-encoded WIT package: interfaces and worlds, no code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Package {
    /// `namespace:name` (`acme:greeter`).
    pub name: String,
    /// The version its `package` statement gives (`0.1.0`).
    pub version: Option<String>,
    /// The package as WIT text, then every package it uses, nested (at most [`MAX_WIT_TEXT`]
    /// bytes).
    pub wit: String,
    /// Its interfaces (kind `interface`, with their functions).
    pub interfaces: Vec<WorldEntry>,
    /// Its worlds.
    pub worlds: Vec<PackageWorld>,
    /// The other packages its interfaces and worlds use.
    pub dependencies: Vec<Dependency>,
}

/// A world of a WIT package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PackageWorld {
    /// Its name.
    pub name: String,
    /// What it imports.
    pub imports: Vec<WorldEntry>,
    /// What it exports.
    pub exports: Vec<WorldEntry>,
}

/// A package a component or WIT package depends on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct Dependency {
    /// `namespace:name`.
    pub package: String,
    /// The version used, if the WIT names one.
    pub version: Option<String>,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.package),
            None => f.write_str(&self.package),
        }
    }
}

/// What a component-encoded binary holds: a component's world, or a WIT package.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wit {
    /// A component (code), with its world.
    World(World),
    /// A WIT package (types only).
    Package(Package),
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
    match decode(bytes)? {
        Wit::World(world) => Ok(world),
        Wit::Package(p) => {
            Err(Error::Malformed { reason: format!("a WIT package ({}), not a component", p.name) })
        }
    }
}

/// Decodes a component-encoded binary: a component's [`World`], or a WIT [`Package`].
///
/// # Example
/// ```
/// let wit = "package acme:greeter@0.1.0;\ninterface hello { greet: func(name: string) -> string; }\n";
/// let bytes = wharf_wasm::wit::encode_package(&[wit])?;
/// let wharf_wasm::wit::Wit::Package(package) = wharf_wasm::wit::decode(&bytes)? else { panic!() };
/// assert_eq!((package.name.as_str(), package.version.as_deref()), ("acme:greeter", Some("0.1.0")));
/// assert_eq!(package.interfaces[0].functions[0].name, "greet");
/// assert!(package.wit.contains("greet: func(name: string) -> string;"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Wit> {
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
    decode_valid(bytes)
}

/// [`decode`] of a component already validated (as [`crate::inspect`] has, so it is not
/// validated twice).
pub(crate) fn decode_valid(bytes: &[u8]) -> Result<Wit> {
    // `wit-parser` panics on some valid components that no WIT describes (a fuzzing finding:
    // `unreachable!` for a type export bound to an instance type); such a panic is this
    // component's error, not the caller's crash.
    guarded(|| decode_wit(&decode_raw(bytes)?))
}

/// Runs a `wit-parser`/`wit-component` call, turning a panic into this input's error:
/// `wit-parser` panics on some valid components that no WIT describes (a fuzzing finding:
/// `unreachable!` for a type export bound to an instance type).
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::Malformed { reason: "the WIT decoder (wit-parser) cannot describe this component".into() })
    })
}

fn decode_raw(bytes: &[u8]) -> Result<DecodedWasm> {
    wit_component::decode(bytes).map_err(|e| Error::Malformed { reason: format!("{e:#}") })
}

fn decode_wit(decoded: &DecodedWasm) -> Result<Wit> {
    let resolve = decoded.resolve();
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
    let entries = |items: &wit_parser::IndexMap<WorldKey, WorldItem>| -> Vec<WorldEntry> {
        items.iter().take(MAX_LISTED).map(|(key, item)| entry(resolve, key, item)).collect()
    };
    let mut dependencies: Vec<Dependency> = nested
        .iter()
        .map(|id| {
            let name = &resolve.packages[*id].name;
            Dependency {
                package: format!("{}:{}", name.namespace, name.name),
                version: name.version.as_ref().map(ToString::to_string),
            }
        })
        .take(MAX_LISTED)
        .collect();
    dependencies.sort();
    Ok(match decoded {
        DecodedWasm::Component(_, world_id) => {
            let world = &resolve.worlds[*world_id];
            Wit::World(World {
                name: world.name.clone(),
                wit,
                imports: entries(&world.imports),
                exports: entries(&world.exports),
                dependencies,
            })
        }
        DecodedWasm::WitPackage(_, id) => {
            let package = &resolve.packages[*id];
            Wit::Package(Package {
                name: format!("{}:{}", package.name.namespace, package.name.name),
                version: package.name.version.as_ref().map(ToString::to_string),
                wit,
                interfaces: package
                    .interfaces
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(_, id)| {
                        interface_entry(resolve, resolve.name_world_key(&WorldKey::Interface(*id)), *id)
                    })
                    .collect(),
                worlds: package
                    .worlds
                    .values()
                    .take(MAX_LISTED)
                    .map(|id| {
                        let world = &resolve.worlds[*id];
                        PackageWorld {
                            name: world.name.clone(),
                            imports: entries(&world.imports),
                            exports: entries(&world.exports),
                        }
                    })
                    .collect(),
                dependencies,
            })
        }
    })
}

fn entry(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> WorldEntry {
    let name = resolve.name_world_key(key);
    match item {
        WorldItem::Interface { id, .. } => interface_entry(resolve, name, *id),
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

fn interface_entry(resolve: &Resolve, name: String, id: wit_parser::InterfaceId) -> WorldEntry {
    let iface = &resolve.interfaces[id];
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

/// Whether `newer` may follow `older` in one semver series (`^` range) of a package: the rules
/// `wkg publish` checks on the client (wasm-pkg-tools PR #213, `wit_component::semver_check`):
/// every world of `older` is still there, exporting at least what it exported and importing at
/// most what it imported, with every function and type of the same shape — and, for a WIT
/// package, every interface of `older` still there with everything it had (new interfaces,
/// functions and types may be added). `Err(Error::Incompatible)` names what broke; other
/// errors mean a binary could not be decoded.
///
/// # Example
/// ```
/// use wharf_wasm::wit::{compatible, encode_package};
/// let v1 = encode_package(&["package acme:greeter@0.1.0; interface hello { greet: func(name: string) -> string; }"])?;
/// let added = encode_package(&["package acme:greeter@0.1.1; interface hello { greet: func(name: string) -> string; wave: func(); }"])?;
/// let removed = encode_package(&["package acme:greeter@0.1.2; interface hello { wave: func(); }"])?;
/// assert!(compatible(&v1, &added).is_ok());
/// let why = compatible(&v1, &removed).unwrap_err().to_string();
/// assert!(why.contains("function `greet` of `acme:greeter/hello` was removed"), "{why}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compatible(older: &[u8], newer: &[u8]) -> Result<()> {
    for bytes in [older, newer] {
        if bytes.len() > MAX_INSPECT_SIZE {
            return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
        }
        if Header::parse(bytes)?.kind != BinaryKind::Component {
            return Err(Error::Malformed { reason: "a core module has no WIT".into() });
        }
        crate::binary::validate(bytes)?;
    }
    guarded(|| {
        let (old, new) = (decode_raw(older)?, decode_raw(newer)?);
        let (old_wit, new_wit) = (decode_wit(&old)?, decode_wit(&new)?);
        let broken = |reason: String| Err(Error::Incompatible { reason });
        match (&old_wit, &new_wit) {
            (Wit::World(_), Wit::Package(_)) => {
                return broken("the earlier version is a component and this is a WIT package".into());
            }
            (Wit::Package(_), Wit::World(_)) => {
                return broken("the earlier version is a WIT package and this is a component".into());
            }
            _ => {}
        }
        // What our summaries can name (a function removed or changed, an export removed, an
        // import added) is said in those words; the decision is `semver_check`'s.
        let explained = explain(&old_wit, &new_wit);
        if let Some(first) = explained.first() {
            return broken(first.clone());
        }
        let (mut old_resolve, old_worlds, old_main) = worlds(old);
        let (mut new_resolve, new_worlds, new_main) = worlds(new);
        // Each side's own package gets a version of its own, so that merging the two never
        // meets two different packages of one name (two components are both `root:component`;
        // two WIT packages may declare one version); `semver_check` ignores versions.
        let old_name = reversion(&mut old_resolve, old_main, "0.0.1");
        let new_name = reversion(&mut new_resolve, new_main, "0.0.2");
        let mut pairs: Vec<(String, WorldId, WorldId)> = Vec::new();
        for (name, old_id) in &old_worlds {
            match new_worlds.iter().find(|(n, _)| n == name) {
                Some((_, new_id)) => pairs.push((format!("world `{name}`"), *old_id, *new_id)),
                None => return broken(format!("world `{name}` was removed")),
            }
        }
        if let Wit::Package(old_pkg) = &old_wit
            && !old_pkg.interfaces.is_empty()
        {
            // A WIT package's interfaces are its API even where no world uses them: each
            // side gets a world exporting the earlier version's interfaces.
            let exports = |package: &str| {
                let (name, version) = package.split_once('@').unwrap_or((package, ""));
                let mut text = String::new();
                for i in old_pkg.interfaces.iter().filter_map(|i| i.interface.as_ref()) {
                    let _ = writeln!(text, "  export {name}/{i}@{version};");
                }
                text
            };
            let synthetic = |resolve: &mut Resolve, version: &str, exports: String| -> Result<WorldId> {
                let text = format!("package wharf:compat@{version};\nworld interfaces {{\n{exports}}}\n");
                let pkg = resolve
                    .push_str("compat.wit", &text)
                    .map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
                resolve
                    .select_world(&[pkg], Some("interfaces"))
                    .map_err(|e| Error::Malformed { reason: format!("{e:#}") })
            };
            let old_id = synthetic(&mut old_resolve, "0.0.1", exports(&old_name))?;
            let new_id = synthetic(&mut new_resolve, "0.0.2", exports(&new_name))?;
            pairs.push(("its interfaces".to_owned(), old_id, new_id));
        }
        for (what, old_id, new_id) in pairs {
            // As wkg: the newer release is `prev` and the older `new`, so that the check is
            // additive only in both directions that matter.
            let mut merged = new_resolve.clone();
            let remap = merged
                .merge(old_resolve.clone())
                .map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
            let old_in_merged = remap
                .map_world(old_id, wit_parser::Span::default())
                .map_err(|e| Error::Malformed { reason: e.to_string() })?;
            if let Err(e) = wit_component::semver_check(merged, new_id, old_in_merged) {
                return broken(format!("{what} is not compatible: {e:#}"));
            }
        }
        Ok(())
    })
}

/// The worlds a decoded binary defines (a component's one, a WIT package's every world) and
/// the package they belong to.
fn worlds(decoded: DecodedWasm) -> (Resolve, Vec<(String, WorldId)>, wit_parser::PackageId) {
    match decoded {
        DecodedWasm::Component(resolve, id) => {
            let name = resolve.worlds[id].name.clone();
            let pkg = resolve.worlds[id].package.unwrap_or_else(|| decoded_package(&resolve));
            (resolve, vec![(name, id)], pkg)
        }
        DecodedWasm::WitPackage(resolve, pkg) => {
            let list = resolve.packages[pkg].worlds.iter().map(|(n, id)| (n.clone(), *id)).collect();
            (resolve, list, pkg)
        }
    }
}

/// The last package of a resolve (a decoded component's own).
fn decoded_package(resolve: &Resolve) -> wit_parser::PackageId {
    resolve.packages.iter().map(|(id, _)| id).next_back().expect("a decoded component has a package")
}

/// Gives package `id` the version `version`; returns its new `namespace:name@version`.
fn reversion(resolve: &mut Resolve, id: wit_parser::PackageId, version: &str) -> String {
    let old = resolve.packages[id].name.clone();
    let mut name = old.clone();
    name.version = Some(version.parse().expect("a valid version"));
    resolve.package_names.shift_remove(&old);
    resolve.package_names.insert(name.clone(), id);
    resolve.packages[id].name = name;
    format!("{}:{}@{version}", old.namespace, old.name)
}

/// What breaks between two decodings, in words: an interface, export or function removed, a
/// function whose signature changed, an import added. Versions are ignored in names.
fn explain(old: &Wit, new: &Wit) -> Vec<String> {
    let mut out = Vec::new();
    let mut added = Vec::new();
    let bare = |name: &str| name.split_once('@').map_or(name, |(b, _)| b).to_owned();
    let signature = |f: &Function| {
        let params: Vec<String> = f.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
        match &f.result {
            Some(r) => format!("func({}) -> {r}", params.join(", ")),
            None => format!("func({})", params.join(", ")),
        }
    };
    let mut compare = |what: &str, old: &[WorldEntry], new: &[WorldEntry]| {
        for o in old {
            let Some(n) = new.iter().find(|n| bare(&n.name) == bare(&o.name)) else {
                out.push(format!("{what} `{}` was removed", bare(&o.name)));
                continue;
            };
            for f in &o.functions {
                let owner =
                    if o.kind == "function" { String::new() } else { format!(" of `{}`", bare(&o.name)) };
                match n.functions.iter().find(|g| g.name == f.name) {
                    None => out.push(format!("function `{}`{owner} was removed", f.name)),
                    Some(g) if signature(f) != signature(g) => out.push(format!(
                        "function `{}`{owner} changed from `{}` to `{}`",
                        f.name,
                        signature(f),
                        signature(g)
                    )),
                    Some(_) => {}
                }
            }
        }
    };
    match (old, new) {
        (Wit::World(o), Wit::World(n)) => {
            compare("export", &o.exports, &n.exports);
            for i in &n.imports {
                if !o.imports.iter().any(|p| bare(&p.name) == bare(&i.name)) {
                    added.push(format!("import `{}` was added", bare(&i.name)));
                }
            }
        }
        (Wit::Package(o), Wit::Package(n)) => {
            compare("interface", &o.interfaces, &n.interfaces);
            for w in &o.worlds {
                match n.worlds.iter().find(|x| x.name == w.name) {
                    None => added.push(format!("world `{}` was removed", w.name)),
                    Some(x) => compare(&format!("export of world `{}`:", w.name), &w.exports, &x.exports),
                }
            }
        }
        _ => {}
    }
    out.extend(added);
    out
}

/// Encodes WIT text as a binary WIT package (what `wkg wit build` writes): the last text is
/// the package, the ones before it the packages it uses. For tests and tools.
pub fn encode_package(texts: &[&str]) -> Result<Vec<u8>> {
    let (resolve, pkg) = resolve_texts(texts)?;
    wit_component::encode(&resolve, pkg, true).map_err(|e| Error::Malformed { reason: format!("{e:#}") })
}

/// A component of `world` (of the package the last text declares, the ones before it the
/// packages it uses) whose functions trap: the shape of a real implementation, for tests and
/// tools (what `wasm-tools component embed --dummy` + `component new` make).
pub fn dummy_component(texts: &[&str], world: &str) -> Result<Vec<u8>> {
    let (resolve, pkg) = resolve_texts(texts)?;
    let world = resolve
        .select_world(&[pkg], Some(world))
        .map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
    let mut module = wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        true,
    )
    .map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.module(&module).map_err(|e| Error::Malformed { reason: format!("{e:#}") })?;
    encoder.validate(true).encode().map_err(|e| Error::Malformed { reason: format!("{e:#}") })
}

fn resolve_texts(texts: &[&str]) -> Result<(Resolve, wit_parser::PackageId)> {
    let mut resolve = Resolve::default();
    let mut last = None;
    for (i, text) in texts.iter().enumerate() {
        last = Some(
            resolve
                .push_str(format!("package-{i}.wit"), text)
                .map_err(|e| Error::Malformed { reason: format!("{e:#}") })?,
        );
    }
    let pkg = last.ok_or_else(|| Error::Malformed { reason: "no WIT text".into() })?;
    Ok((resolve, pkg))
}
