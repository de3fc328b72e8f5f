//! The layering check: drawn from the code's own imports (`crate::…` and `super::…` paths,
//! a module's own children named relatively, re-exports of the crate root resolved to the
//! module that defines them), every file of `wharf-store`, `wharf-wasm` and `wharf-server`
//! sits in a layer and imports only from layers below it, so no circle of files can form.
//!
//! Unit tests (`#[cfg(test)] mod tests`) are left out: they may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's files as modules (`gc::quota`), and the arrows between them.
struct Graph {
    arrows: BTreeMap<String, BTreeSet<String>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src` as its module path (`lib.rs` and `main.rs` are the root, `""`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            let name = if name == "lib" || name == "main" { String::new() } else { name };
            if !name.is_empty() || path.file_name().is_some_and(|f| f == "lib.rs") {
                out.insert(name, path);
            }
        }
    }
    out
}

/// The source without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines().map(|l| l.find("//").map_or(l, |at| &l[..at])).collect::<Vec<_>>().join("\n")
}

/// The paths written after `crate::` or `super::` at `text[at..]`, groups expanded:
/// `a::{b, c::{d}}` gives `a::b`, `a::c::d`.
fn paths(text: &str) -> Vec<Vec<String>> {
    fn ident(s: &[u8], i: &mut usize) -> Option<String> {
        let start = *i;
        while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
            *i += 1;
        }
        (*i > start).then(|| String::from_utf8_lossy(&s[start..*i]).into_owned())
    }
    fn skip_ws(s: &[u8], i: &mut usize) {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn path(s: &[u8], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut here = prefix.to_vec();
        loop {
            skip_ws(s, i);
            if *i < s.len() && s[*i] == b'{' {
                *i += 1;
                loop {
                    skip_ws(s, i);
                    if *i >= s.len() || s[*i] == b'}' {
                        *i += 1;
                        return;
                    }
                    path(s, i, &here, out);
                    skip_ws(s, i);
                    if *i < s.len() && s[*i] == b',' {
                        *i += 1;
                    }
                }
            }
            match ident(s, i) {
                Some(name) => here.push(name),
                None => break,
            }
            if s[*i..].starts_with(b"::") {
                *i += 2;
            } else {
                break;
            }
        }
        // `as` renames and the rest of the statement do not matter.
        if !here.is_empty() {
            out.push(here);
        }
    }
    let s = text.as_bytes();
    let mut out = Vec::new();
    for keyword in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(keyword) {
            let at = from + found;
            from = at + keyword.len();
            let boundary =
                at == 0 || !(s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'_' || s[at - 1] == b':');
            if !boundary {
                continue;
            }
            let mut i = from;
            let mut supers = 0;
            if keyword == "super::" {
                supers = 1;
                while text[i..].starts_with("super::") {
                    supers += 1;
                    i += "super::".len();
                }
            }
            let mut found = Vec::new();
            path(s, &mut i, &[], &mut found);
            for mut p in found {
                p.insert(0, format!("{keyword}{supers}"));
                out.push(p);
            }
        }
    }
    out
}

/// The crate root's re-exports: a name at the root and the module that defines it.
fn reexports(root_code: &str, modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in root_code.split(';') {
        let Some(at) = statement.find("pub use ") else { continue };
        let rest = format!("crate::{}", statement[at + "pub use ".len()..].trim());
        for p in paths(&rest) {
            let segments = &p[1..];
            if segments.len() >= 2 && modules.contains_key(&segments[0]) {
                out.insert(segments.last().expect("a name").clone(), segments[0].clone());
            }
        }
    }
    out
}

fn graph(krate: &str) -> Graph {
    let src = root().join("crates").join(krate).join("src");
    let modules = modules(&src);
    let root_code = code(&modules[""]);
    let reexports = reexports(&root_code, &modules);
    let mut arrows = BTreeMap::new();
    for (name, path) in &modules {
        if name.is_empty() {
            continue;
        }
        let here: Vec<&str> = name.split("::").collect();
        let mut to = BTreeSet::new();
        for p in paths(&code(path)) {
            let (head, rest) = p.split_first().expect("a keyword");
            let mut full: Vec<String> = if head.starts_with("crate::") {
                Vec::new()
            } else {
                // `super::` from `a/b.rs` (module `a::b`) is `a`, from `a/mod.rs` (module `a`)
                // the root: a file's module is its own `self`.
                let ups: usize = head["super::".len()..].parse().expect("count");
                let keep = here.len().saturating_sub(ups);
                here[..keep].iter().map(|s| (*s).to_owned()).collect()
            };
            full.extend(rest.iter().cloned());
            let target = (1..=full.len())
                .rev()
                .map(|k| full[..k].join("::"))
                .find(|m| modules.contains_key(m) && !m.is_empty())
                .or_else(|| full.first().and_then(|first| reexports.get(first).cloned()));
            if let Some(target) = target
                && &target != name
            {
                to.insert(target);
            }
        }
        // A module's own children, named relatively (`child::item`, `use child::{…}`): an
        // arrow too, so a child that imports its parent back closes a circle.
        let text = code(path);
        for child in
            modules.keys().filter(|m| m.rsplit_once("::").map_or(name.is_empty(), |(p, _)| p == name))
        {
            let short = child.rsplit("::").next().expect("a name");
            let needle = format!("{short}::");
            let used = text.match_indices(&needle).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    || text[..at].ends_with("self::")
            });
            if used {
                to.insert(child.clone());
            }
        }
        arrows.insert(name.clone(), to);
    }
    Graph { arrows }
}

impl Graph {
    /// The arrows that lie on a circle: `a → b` where `a` is reachable from `b`.
    fn arrows_on_circles(&self) -> BTreeSet<(String, String)> {
        let reach = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.to_owned()];
            while let Some(m) = stack.pop() {
                for next in self.arrows.get(&m).into_iter().flatten() {
                    if seen.insert(next.clone()) {
                        stack.push(next.clone());
                    }
                }
            }
            seen
        };
        let mut out = BTreeSet::new();
        for (from, tos) in &self.arrows {
            for to in tos {
                if reach(to).contains(from) {
                    out.insert((from.clone(), to.clone()));
                }
            }
        }
        out
    }

    /// Each arrow that does not point to a lower layer, as `"a → b"`.
    fn against(&self, layers: &[&[&str]]) -> Vec<String> {
        let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
        let mut wrong = Vec::new();
        for (from, tos) in &self.arrows {
            let Some(here) = layer_of(from) else {
                wrong.push(format!("{from} is in no layer: put it in one"));
                continue;
            };
            for to in tos {
                match layer_of(to) {
                    Some(there) if there < here => {}
                    _ => wrong.push(format!("{from} → {to}")),
                }
            }
        }
        wrong
    }
}

/// `wharf-store`, bottom up.
const STORE: &[&[&str]] = &[
    &["upload_id"],
    &["error"],
    &["store", "layout"],
    &["meta"],
    &["hooks", "listing", "journal"],
    &["faults"],
    &["memory", "fs", "s3"],
    &["testing", "fuzzing"],
];

/// `wharf-wasm`, bottom up.
const WASM: &[&[&str]] = &[
    &["budget", "names", "location"],
    &["upload_id"],
    &["error"],
    &["binary", "archive", "harbor"],
    &["wit", "config", "image"],
    &["inspect", "classify", "extract"],
    &["build", "record"],
    &["fuzzing"],
];

#[test]
fn the_store_and_wasm_crates_import_only_downwards() {
    for (krate, layers) in [("store", STORE), ("wasm", WASM)] {
        let g = graph(krate);
        let wrong = g.against(layers);
        assert!(wrong.is_empty(), "crates/{krate}: arrows that do not point down: {wrong:#?}");
        assert!(g.arrows_on_circles().is_empty(), "crates/{krate}: a circle");
    }
}

/// `wharf-server`, bottom up (see `docs/ARCHITECTURE.md`): ground, transport, the core,
/// services beside it, the façade, the edges, the assembly. A tier with rows of its own has
/// modules that import one another only downwards.
const SERVER: &[&[&str]] = &[
    // Ground: imports nothing of the crate (or only ground below it).
    &["api", "clock", "files", "text", "units"],
    &["error", "lease"],
    // Transport.
    &["tls::x509", "listener::body", "listener::sendfile", "listener::public", "listener::limits"],
    &["tls", "listener::tracked"],
    &["listener"],
    // The core: the OCI registry over wharf-store.
    &["registry::keys", "registry::cache", "registry::health"],
    &["registry::fence"],
    &["registry"],
    // Services beside the core: never rest, web, config or the façade.
    &[
        "wasm_policy",
        "metrics",
        "jobs::slots",
        "auth::settings",
        "auth::audit",
        "auth::credentials",
        "lifecycle::retention",
        "lifecycle::budget",
        "packages",
    ],
    &["auth::oidc"],
    &[
        "search",
        "jobs",
        "lifecycle::lease",
        "lifecycle::quota",
        "lifecycle::scrub",
        "auth",
        "mirror",
        "trust",
    ],
    &["classify", "lifecycle", "auth::token", "webhooks::event"],
    &["packages::versioning", "packages::view", "webhooks::format"],
    &["webhooks::deliver"],
    &["webhooks"],
    // The façade.
    &["wharf"],
    // Edges.
    &["config", "web::session", "web::view", "rest::route", "rest::params", "rest::respond"],
    &["rest::context", "web"],
    &[
        "rest::log",
        "rest::guard",
        "rest::ops",
        "rest::listings",
        "rest::extension",
        "rest::credentials",
        "rest::manifests",
        "rest::blobs",
    ],
    &["rest::handlers"],
    &["rest"],
    // Assembly.
    &["server", "fuzzing"],
];

#[test]
fn the_server_imports_only_downwards() {
    let g = graph("server");
    let wrong = g.against(SERVER);
    assert!(wrong.is_empty(), "crates/server: arrows that do not point down: {wrong:#?}");
    assert!(g.arrows_on_circles().is_empty(), "crates/server: a circle");
}

/// The check itself fails on a bad import: a store file importing a backend, the server's
/// core importing its HTTP edge.
#[test]
fn a_bad_import_is_caught() {
    let mut server = graph("server");
    server.arrows.get_mut("registry").expect("registry/mod.rs").insert("rest".to_owned());
    assert!(server.against(SERVER).contains(&"registry → rest".to_owned()));
    let mut g = graph("store");
    g.arrows.get_mut("error").expect("error.rs").insert("fs".to_owned());
    assert!(g.against(STORE).contains(&"error → fs".to_owned()));
    assert!(!g.arrows_on_circles().is_empty(), "fs → error → fs");
    let parsed = paths("use crate::{a::{B, c::D}, e};\nlet x = super::super::f::G;");
    assert!(parsed.contains(&vec!["crate::0".into(), "a".into(), "B".into()]), "{parsed:?}");
    assert!(parsed.contains(&vec!["crate::0".into(), "a".into(), "c".into(), "D".into()]));
    assert!(parsed.contains(&vec!["crate::0".into(), "e".into()]));
    assert!(parsed.contains(&vec!["super::2".into(), "f".into(), "G".into()]));
}
