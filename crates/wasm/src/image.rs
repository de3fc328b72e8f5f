//! The module a runtime would run: an image's layers applied in order, as containerd and
//! CRI-O apply them, then the module's path looked up in the filesystem that results.
//!
//! Applying a layer follows the OCI image spec's changesets: within a layer, a later entry
//! replaces an earlier one at the same path; a whiteout `.wh.<name>` removes `<name>` (and
//! what is under it) from the layers below, and `.wh..wh..opq` empties its directory of what
//! the layers below put there; entries are placed through the directory symbolic links the
//! layers below made; a hard link is the file it names at the time it is made. Paths are
//! normalised (`./`, `//`, `..` never above the root). Looking the module up follows
//! symbolic links inside the image (absolute ones from its root), at most
//! [`Budget::link_hops`](crate::budget::Budget::link_hops) of them.
//!
//! The layers are read twice at most: once for the filesystem (names, kinds, link targets,
//! sizes; the data is skipped, but decompressed to be skipped), and once more, up to the
//! module, only when the module is not the file the first pass already kept (the entrypoint's
//! own path, in the common case, is kept on the way). All of it is charged to one
//! [`Meter`].
//!
//! ```
//! use std::collections::HashMap;
//! use wharf_wasm::budget::{Budget, Meter};
//! use wharf_wasm::{EntryMatch, Location, WasmLayer, image};
//!
//! // Two layers: `app.wasm` in the first, replaced by a link to `v2.wasm` in the second.
//! fn layer(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
//!     let mut tar = tar::Builder::new(Vec::new());
//!     for (path, data, link) in entries {
//!         let mut header = tar::Header::new_gnu();
//!         header.set_mode(0o644);
//!         match link {
//!             Some(target) => {
//!                 header.set_entry_type(tar::EntryType::Symlink);
//!                 header.set_size(0);
//!                 tar.append_link(&mut header, path, target).unwrap();
//!             }
//!             None => {
//!                 header.set_size(data.len() as u64);
//!                 tar.append_data(&mut header, path, *data).unwrap();
//!             }
//!         }
//!     }
//!     tar.into_inner().unwrap()
//! }
//! let lower = layer(&[("app.wasm", b"\0asm\x01\0\0\0", None)]);
//! let upper = layer(&[("v2.wasm", b"\0asm\x01\0\0\0v2", None), ("app.wasm", b"", Some("v2.wasm"))]);
//! let descriptor = |bytes: &[u8]| {
//!     wharf_types::Descriptor::new(
//!         wharf_types::MediaType::OCI_LAYER_TAR.clone(),
//!         wharf_types::Digest::sha256(bytes),
//!         bytes.len() as u64,
//!     )
//! };
//! let at = Location::TarEntry(EntryMatch::Path("app.wasm".into()));
//! let stack = [
//!     WasmLayer::new(0, descriptor(&lower), at.clone()),
//!     WasmLayer::new(1, descriptor(&upper), at),
//! ];
//! let mut blobs = HashMap::new();
//! blobs.insert(stack[0].descriptor.digest.clone(), bytes::Bytes::from(lower));
//! blobs.insert(stack[1].descriptor.digest.clone(), bytes::Bytes::from(upper));
//! let found = image::find_modules(&stack, &mut blobs, &mut Meter::new(&Budget::default()))?;
//! assert_eq!(found[0].path, "v2.wasm");
//! assert_eq!(found[0].bytes.as_ref().unwrap(), b"\0asm\x01\0\0\0v2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use crate::archive::{self, EntryKind};
use crate::binary::WASM_MAGIC;
use crate::budget::Meter;
use crate::error::{Error, Result};
use crate::location::{EntryMatch, Location, WasmLayer, normalize_path};

/// Where the bytes of an artifact's layers come from.
pub trait Layers {
    /// Opens `layer`'s blob (its bytes as stored: compressed or not). `Ok(Err(why))`: this
    /// layer cannot be had (not stored here, not fetched), which is recorded for the module it
    /// was to give; `Err`: a failure that stops the whole read (storage that does not answer).
    fn open(&mut self, layer: &WasmLayer) -> std::io::Result<Result<Box<dyn Read + '_>, String>>;
}

/// Blobs held in memory, by digest.
impl<S: std::hash::BuildHasher> Layers for HashMap<wharf_types::Digest, bytes::Bytes, S> {
    fn open(&mut self, layer: &WasmLayer) -> std::io::Result<Result<Box<dyn Read + '_>, String>> {
        Ok(match self.get(&layer.descriptor.digest) {
            Some(bytes) => Ok(Box::new(&bytes[..])),
            None => Err(format!("the layer {} was not fetched", layer.descriptor.digest)),
        })
    }
}

/// A module looked for in an artifact's layers.
#[derive(Debug)]
#[non_exhaustive]
pub struct Found {
    /// The layer whose bytes hold it (for a tar layout, the layer of the file that won; for a
    /// failure, the layer being read).
    pub layer: WasmLayer,
    /// Its path in the image (normalised), empty for a raw layer or when none was found.
    pub path: String,
    /// Its bytes, or why none could be read.
    pub bytes: Result<Vec<u8>>,
}

/// Reads the modules `wasm_layers` (a [`Classification`](crate::Classification)'s) hold, in
/// the order listed: each raw layer whole; the tar layers that look for one path (an
/// annotated or platform image) together, as one filesystem; each probe (a file name, F7/F8)
/// in its own layer. `Err` only when [`Layers::open`] fails; what a layer holds (no module,
/// not a tar, over budget) is the [`Found::bytes`] of its entry.
pub fn find_modules(
    wasm_layers: &[WasmLayer],
    layers: &mut dyn Layers,
    meter: &mut Meter,
) -> std::io::Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stacked_done = false;
    for layer in wasm_layers {
        match &layer.location {
            Location::Raw => out.push(raw(layer, layers, meter)?),
            Location::TarEntry(EntryMatch::FileName(_)) => {
                out.push(stack(std::slice::from_ref(layer), layers, meter)?);
            }
            Location::TarEntry(wanted) => {
                if stacked_done {
                    continue;
                }
                stacked_done = true;
                // Every layer looking for this path, applied bottom to top.
                let mut group: Vec<WasmLayer> = wasm_layers
                    .iter()
                    .filter(|l| l.location == Location::TarEntry(wanted.clone()))
                    .cloned()
                    .collect();
                group.sort_by_key(|l| l.index);
                out.push(stack(&group, layers, meter)?);
            }
        }
    }
    Ok(out)
}

/// A raw layer: its bytes are the module.
fn raw(layer: &WasmLayer, layers: &mut dyn Layers, meter: &mut Meter) -> std::io::Result<Found> {
    let found = |bytes| Found { layer: layer.clone(), path: String::new(), bytes };
    if let Err(over) = meter.module(layer.descriptor.size) {
        return Ok(found(Err(over.into())));
    }
    let blob = match layers.open(layer)? {
        Ok(blob) => blob,
        Err(why) => return Ok(found(Err(Error::Unavailable(why)))),
    };
    meter.start_layer();
    let limit = meter.budget().module_bytes;
    let mut bytes = Vec::new();
    let read = crate::budget::Metered::new(blob, meter).take(limit.saturating_add(1)).read_to_end(&mut bytes);
    Ok(found(match read {
        Err(e) => Err(Error::layer(e)),
        Ok(_) if bytes.len() as u64 > limit => Err(Error::TooLarge { size: bytes.len() as u64, limit }),
        Ok(_) => Ok(bytes),
    }))
}

/// Tar layers applied in order (one, for a probe), then the module looked up.
fn stack(group: &[WasmLayer], layers: &mut dyn Layers, meter: &mut Meter) -> std::io::Result<Found> {
    let top = group.last().expect("a group has a layer");
    let Location::TarEntry(wanted) = &top.location else { unreachable!("only tar layers are stacked") };
    let failed =
        |layer: &WasmLayer, e: Error| Found { layer: layer.clone(), path: String::new(), bytes: Err(e) };
    let mut tree = Tree::default();
    let mut kept = Kept::new(wanted);
    for (position, layer) in group.iter().enumerate() {
        let blob = match layers.open(layer)? {
            Ok(blob) => blob,
            // A layer missing: the filesystem cannot be known.
            Err(why) => return Ok(failed(layer, Error::Unavailable(why))),
        };
        if let Err(e) = tree.apply(position, blob, meter, &mut kept) {
            return Ok(failed(layer, e));
        }
    }
    let (path, file) = match tree.find(wanted, meter) {
        Ok(found) => found,
        Err(e) => return Ok(failed(top, e)),
    };
    let layer = group[file.id.layer].clone();
    let bytes = match kept.take(file.id) {
        Some(bytes) => Ok(bytes),
        None => match read_entry(&layer, file, layers, meter)? {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(e),
        },
    };
    Ok(Found { layer, path, bytes })
}

/// The second pass: the data of entry `file.id.ordinal` of `layer`.
fn read_entry(
    layer: &WasmLayer,
    file: File,
    layers: &mut dyn Layers,
    meter: &mut Meter,
) -> std::io::Result<Result<Vec<u8>>> {
    if let Err(over) = meter.module(file.size) {
        return Ok(Err(over.into()));
    }
    let blob = match layers.open(layer)? {
        Ok(blob) => blob,
        Err(why) => return Ok(Err(Error::Unavailable(why))),
    };
    Ok((|| {
        let mut archive = archive::open(blob, meter)?;
        while let Some(entry) = archive.next_entry()? {
            if entry.ordinal == file.id.ordinal {
                return archive.read_data();
            }
        }
        Err(Error::Image {
            reason: format!("entry {} of the layer is gone on a second read", file.id.ordinal),
        })
    })())
}

/// Reads the module `wanted` names out of one tar layer (its final state: a later entry
/// replaces an earlier one), within `meter`: [`extract`](crate::extract)'s work.
pub(crate) fn one_layer(
    blob: impl Read,
    wanted: &EntryMatch,
    meter: &mut Meter,
) -> Result<(String, Vec<u8>)> {
    let mut tree = Tree::default();
    let mut kept = Kept::new(wanted);
    tree.apply(0, Box::new(blob), meter, &mut kept)?;
    let (path, file) = tree.find(wanted, meter)?;
    meter.module(file.size)?;
    match kept.take(file.id) {
        Some(bytes) => Ok((path, bytes)),
        // A single stream cannot be read twice: the module had to be kept on the way.
        None => Err(Error::Image {
            reason: format!(
                "/{path} is reached through a link to an entry the stream passed; read the layer with \
                 image::find_modules"
            ),
        }),
    }
}

/// An entry of the image: which layer (its position in the stack) and which entry of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId {
    layer: usize,
    ordinal: u64,
}

/// A regular file of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct File {
    id: EntryId,
    size: u64,
    /// Whether its data starts with the Wasm magic.
    magic: bool,
}

#[derive(Clone, Debug)]
enum Node {
    Dir,
    File(File),
    Symlink(String),
    /// A device, a FIFO, a hard link to nothing: never a module.
    Other,
}

/// The image's filesystem: every path (normalised, no leading `/`) with what it is and the
/// entry that made it.
#[derive(Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, (Node, EntryId)>,
}

/// What a layer does, gathered while it is read and applied at its end (whiteouts apply to
/// the layers below only).
enum Change {
    Add(String, Node, EntryId),
    HardLink(String, String, EntryId),
}

fn split_last(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") }
}

impl Tree {
    /// Reads one layer and applies it.
    fn apply(
        &mut self,
        position: usize,
        blob: Box<dyn Read + '_>,
        meter: &mut Meter,
        kept: &mut Kept<'_>,
    ) -> Result<()> {
        let mut archive = archive::open(blob, meter)?;
        let mut changes = Vec::new();
        let mut removed = Vec::new();
        let mut opaque = Vec::new();
        while let Some(entry) = archive.next_entry()? {
            let path = normalize_path(&entry.path);
            if path.is_empty() {
                continue; // the root itself
            }
            let (parent, name) = split_last(&path);
            if name == ".wh..wh..opq" {
                opaque.push(parent.to_owned());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                // `.wh..wh.*` other than the opaque marker are aufs's own bookkeeping.
                if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                    removed.push(join(parent, hidden));
                }
                continue;
            }
            archive.meter().path(path.len() + entry.link.len() + 64)?;
            let id = EntryId { layer: position, ordinal: entry.ordinal };
            let change = match entry.kind {
                EntryKind::File => {
                    let head = archive.peek_data(WASM_MAGIC.len())?;
                    let magic = head == WASM_MAGIC;
                    if kept.wants(&path, name, magic, id) && archive.meter().module(entry.size).is_ok() {
                        let mut bytes = head;
                        bytes.extend(archive.read_data()?);
                        kept.keep(id, bytes);
                    }
                    Change::Add(path, Node::File(File { id, size: entry.size, magic }), id)
                }
                EntryKind::Dir => Change::Add(path, Node::Dir, id),
                EntryKind::Symlink => Change::Add(path, Node::Symlink(entry.link), id),
                EntryKind::HardLink => Change::HardLink(path, normalize_path(&entry.link), id),
                EntryKind::Other => Change::Add(path, Node::Other, id),
            };
            changes.push(change);
        }
        drop(archive);
        for path in removed {
            let at = self.place(&path, meter).unwrap_or(path);
            self.remove_tree(&at, true);
        }
        for dir in opaque {
            let at = self.resolve(&dir, true, meter).unwrap_or(dir);
            self.remove_tree(&at, false);
        }
        for change in changes {
            match change {
                Change::Add(path, node, id) => self.add(&path, node, id, meter)?,
                Change::HardLink(path, target, id) => {
                    // The file the link names now (a later change to it does not follow).
                    let node = self.place(&target, meter).ok().and_then(|at| self.nodes.get(&at)).map_or(
                        Node::Other,
                        |(node, _)| match node {
                            Node::Dir => Node::Other,
                            other => other.clone(),
                        },
                    );
                    self.add(&path, node, id, meter)?;
                }
            }
        }
        Ok(())
    }

    /// Puts `node` at `path` (its parent resolved through the links below).
    fn add(&mut self, path: &str, node: Node, id: EntryId, meter: &Meter) -> Result<()> {
        let at = self.place(path, meter)?;
        if matches!(node, Node::Dir) && matches!(self.nodes.get(&at), Some((Node::Dir, _))) {
            return Ok(()); // directories merge
        }
        self.remove_tree(&at, true);
        self.nodes.insert(at, (node, id));
        Ok(())
    }

    /// Where an entry at `path` lands: its parent directory resolved, its name kept.
    fn place(&self, path: &str, meter: &Meter) -> Result<String> {
        let (parent, name) = split_last(path);
        let parent = self.resolve(parent, true, meter)?;
        Ok(join(&parent, name))
    }

    /// Removes `path`'s descendants (and `path` itself with `this`).
    fn remove_tree(&mut self, path: &str, this: bool) {
        if path.is_empty() {
            self.nodes.clear();
            return;
        }
        if this {
            self.nodes.remove(path);
        }
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in below {
            self.nodes.remove(&key);
        }
    }

    /// `path` with every symbolic link on the way followed (the last one too with
    /// `follow_last`); a component that is a file or device before the end is an error.
    fn resolve(&self, path: &str, follow_last: bool, meter: &Meter) -> Result<String> {
        let mut queue: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = queue.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let at = join(&resolved.join("/"), &part);
            let last = queue.iter().all(|p| p.is_empty() || p == ".");
            match self.nodes.get(&at) {
                Some((Node::Symlink(target), _)) if !last || follow_last => {
                    hops += 1;
                    meter.hops(hops)?;
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    queue.extend(target.split('/').rev().map(str::to_owned));
                }
                Some((Node::File(_) | Node::Other, _)) if !last => {
                    return Err(Error::Image {
                        reason: format!("/{at} is not a directory (on the way to /{path})"),
                    });
                }
                _ => resolved.push(part),
            }
        }
        Ok(resolved.join("/"))
    }

    /// The module `wanted` names in the finished filesystem: its path and file.
    fn find(&self, wanted: &EntryMatch, meter: &Meter) -> Result<(String, File)> {
        match wanted {
            EntryMatch::Path(p) => self.file_at(&normalize_path(p), meter),
            EntryMatch::FileName(name) => {
                let mut candidates: Vec<(&String, EntryId)> = self
                    .nodes
                    .iter()
                    .filter(|(path, _)| split_last(path).1 == name)
                    .map(|(path, (_, id))| (path, *id))
                    .collect();
                candidates.sort_by_key(|(_, id)| (std::cmp::Reverse(id.layer), id.ordinal));
                match candidates.first() {
                    Some((path, _)) => self.file_at(path, meter),
                    None => Err(Error::EntryNotFound { wanted: format!("a file named {name}") }),
                }
            }
            EntryMatch::AnyWasm => {
                let mut candidates: Vec<(&String, EntryId)> = self
                    .nodes
                    .iter()
                    .filter(|(path, _)| {
                        std::path::Path::new(split_last(path).1)
                            .extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
                    })
                    .map(|(path, (_, id))| (path, *id))
                    .collect();
                candidates.sort_by_key(|(_, id)| (std::cmp::Reverse(id.layer), id.ordinal));
                candidates
                    .into_iter()
                    .find_map(|(path, _)| self.file_at(path, meter).ok().filter(|(_, f)| f.magic))
                    .ok_or_else(|| Error::EntryNotFound { wanted: "a .wasm file".into() })
            }
        }
    }

    /// The regular file at `path`, links followed.
    fn file_at(&self, path: &str, meter: &Meter) -> Result<(String, File)> {
        let at = self.resolve(path, true, meter)?;
        match self.nodes.get(&at) {
            Some((Node::File(file), _)) => Ok((at, *file)),
            Some(_) => Err(Error::NotAFile { path: format!("/{at}") }),
            None if at == path => Err(Error::EntryNotFound { wanted: format!("/{path}") }),
            None => {
                Err(Error::EntryNotFound { wanted: format!("/{path} (a link to /{at}, which is not there)") })
            }
        }
    }
}

/// The bytes of the file the first pass expects to be the module (the entrypoint's own path,
/// the first file of a probe's name, the topmost layer's first `.wasm` module), kept so the
/// layer need not be read twice.
struct Kept<'w> {
    wanted: &'w EntryMatch,
    path: Option<String>,
    bytes: Option<(EntryId, Vec<u8>)>,
}

impl<'w> Kept<'w> {
    fn new(wanted: &'w EntryMatch) -> Self {
        let path = match wanted {
            EntryMatch::Path(p) => Some(normalize_path(p)),
            _ => None,
        };
        Self { wanted, path, bytes: None }
    }

    fn wants(&self, path: &str, name: &str, magic: bool, id: EntryId) -> bool {
        // The first of its layer, or of a higher layer than the one kept.
        let first = self.bytes.as_ref().is_none_or(|(kept, _)| kept.layer < id.layer);
        match self.wanted {
            EntryMatch::Path(_) => self.path.as_deref() == Some(path),
            EntryMatch::FileName(n) => n == name && first,
            EntryMatch::AnyWasm => {
                magic
                    && first
                    && std::path::Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
            }
        }
    }

    /// Keeps one file at a time: the latest.
    fn keep(&mut self, id: EntryId, bytes: Vec<u8>) {
        self.bytes = Some((id, bytes));
    }

    fn take(&mut self, id: EntryId) -> Option<Vec<u8>> {
        match self.bytes.take() {
            Some((kept, bytes)) if kept == id => Some(bytes),
            other => {
                self.bytes = other;
                None
            }
        }
    }
}
