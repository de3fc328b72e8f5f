//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests.

use wharf_types::Manifest;

use crate::{Location, classify, inspect};

/// `classify` on arbitrary input: the first byte splits the rest into manifest and config.
/// A Wasm kind always has evidence; every layer or child index named is in range; the
/// verdict is the same twice (pure).
pub fn classify_bytes(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (config, manifest) = rest.split_at(rest.len() - at);
    let Ok(manifest) = Manifest::from_bytes(manifest.to_vec(), None) else {
        return;
    };
    for config in [None, Some(config)] {
        let c = classify(&manifest, config);
        if c.is_wasm() {
            assert!(!c.evidence.is_empty(), "{:?} without evidence", c.kind);
        }
        let (layers, children) = match manifest.body() {
            wharf_types::ManifestBody::Image(m) => (m.layers.len(), 0),
            wharf_types::ManifestBody::Index(i) => (0, i.manifests.len()),
            _ => (0, 0),
        };
        for l in &c.wasm_layers {
            assert!(l.index < layers, "layer index {} of {layers}", l.index);
            if matches!(l.location, Location::Raw) {
                assert!(c.is_wasm());
            }
        }
        for child in &c.wasm_children {
            assert!(child.index < children, "child index {} of {children}", child.index);
        }
        assert_eq!(c.is_wasm(), !matches!(c.kind, crate::Kind::NotWasm));
        assert_eq!(classify(&manifest, config), c, "classify is not deterministic");
    }
}

/// `inspect` on arbitrary bytes: never panics; what it accepts has a Wasm header that agrees
/// with its kind, and lists no more than it may.
pub fn inspect_bytes(data: &[u8]) {
    if let Ok(info) = quietly(|| inspect(data)) {
        assert!(data.starts_with(&crate::WASM_MAGIC));
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(crate::Header::parse(data).expect("accepted, so the header parses"), info.header);
        assert!(info.imports.len() <= crate::MAX_LISTED && info.exports.len() <= crate::MAX_LISTED);
        if info.wasi == crate::WasiFlavor::Component {
            assert!(!info.wasi_interfaces.is_empty());
        }
    }
    let _ = crate::validate(data);
}

/// A layer's bytes read as tar, tar+gzip or tar+zstd: never panics, never returns more than
/// its caps allow, and a module found "as any `.wasm`" starts with the Wasm magic.
pub fn extract_bytes(data: &[u8]) {
    use crate::{EntryMatch, extract};
    const MAX_MODULE: u64 = 1 << 20;
    const MAX_READ: u64 = 4 << 20;
    for wanted in [
        EntryMatch::AnyWasm,
        EntryMatch::Path("/app/main.wasm".into()),
        EntryMatch::FileName("plugin.wasm".into()),
    ] {
        let any = matches!(wanted, EntryMatch::AnyWasm);
        if let Ok(found) = extract::read_wasm_bounded(data, &Location::TarEntry(wanted), MAX_MODULE, MAX_READ)
        {
            assert!(found.bytes.len() as u64 <= MAX_MODULE);
            assert!(!any || found.bytes.starts_with(&crate::WASM_MAGIC));
            assert_eq!(found.path, extract::normalize_path(&found.path), "the path is normalized");
        }
    }
    if let Ok(raw) = extract::read_wasm_bounded(data, &Location::Raw, MAX_MODULE, MAX_READ) {
        assert_eq!(raw.bytes, data.get(..raw.bytes.len()).unwrap_or_default());
    }
}

/// A component's WIT world from arbitrary bytes: never panics; what decodes has bounded
/// text, names every entry, and decodes the same twice.
#[cfg(feature = "wit")]
pub fn wit_bytes(data: &[u8]) {
    if let Ok(world) = quietly(|| crate::wit::world(data)) {
        assert!(world.wit.len() <= crate::wit::MAX_WIT_TEXT + 128);
        assert!(world.imports.iter().chain(&world.exports).all(|e| !e.name.is_empty()));
        assert_eq!(quietly(|| crate::wit::world(data)).ok(), Some(world), "decoding is not deterministic");
    }
}

/// Runs `f`; under `cargo fuzz` (`cfg(fuzzing)`) with a silent panic hook, because
/// `libfuzzer-sys` installs a hook that aborts on any panic, even one `wit::world` catches (a
/// panic inside `wit-parser`). A panic `f` lets escape still aborts the fuzzer through
/// `fuzz_target!`'s own check. (The tests leave the hook alone: it is global, and they run in
/// threads.)
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(fuzzing)]
    {
        type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
        struct Restore(Option<Hook>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(hook) = self.0.take() {
                    std::panic::set_hook(hook);
                }
            }
        }
        let _restore = Restore(Some(std::panic::take_hook()));
        std::panic::set_hook(Box::new(|_| {}));
        f()
    }
    #[cfg(not(fuzzing))]
    f()
}
