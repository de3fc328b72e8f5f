//! Real modules and components (made with the `wat` crate), layers holding them, and the
//! builders' output.

use wharf_wasm::{
    ArtifactBuilder, BinaryKind, EntryMatch, Error, Kind, Location, WasiFlavor, WasmConfig, classify,
    extract, inspect, validate,
};

use crate::common::{component, hello_module, tar_layer};

#[test]
fn inspects_a_wasi_preview1_module() {
    let wasm = hello_module();
    let info = inspect(&wasm).expect("a module");
    assert_eq!(info.kind(), BinaryKind::CoreModule);
    assert_eq!((info.header.version, info.header.layer), (1, 0));
    assert_eq!(info.wasi, WasiFlavor::Preview1);
    assert_eq!(info.imports[0].module, "wasi_snapshot_preview1");
    assert_eq!(info.imports[0].name, "fd_write");
    assert_eq!(info.imports[0].kind, "func");
    let exports: Vec<_> = info.exports.iter().map(|e| (e.name.as_str(), e.kind.as_str())).collect();
    assert_eq!(exports, [("memory", "memory"), ("_start", "func")]);
    assert_eq!(info.size, wasm.len() as u64);
    validate(&wasm).expect("valid");
}

#[test]
fn inspects_a_component() {
    let wasm = component();
    let info = inspect(&wasm).expect("a component");
    assert_eq!(info.kind(), BinaryKind::Component);
    assert_eq!((info.header.version, info.header.layer), (0x0d, 1));
    assert_eq!(info.wasi, WasiFlavor::Component);
    assert_eq!(info.wasi_interfaces, ["wasi:cli/environment@0.2.0"]);
    assert_eq!(info.imports[0].kind, "instance");
    assert_eq!(info.exports.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["run"]);
    assert_eq!(info.nested_modules, 1);
    validate(&wasm).expect("valid");
}

#[test]
fn wasi_flavors_and_custom_sections() {
    let unstable = wat::parse_str(
        r#"(module (import "wasi_unstable" "proc_exit" (func (param i32))) (@custom "producers-x" "x"))"#,
    )
    .expect("valid");
    let info = inspect(&unstable).expect("module");
    assert_eq!(info.wasi, WasiFlavor::Unstable);
    assert!(info.custom_sections.iter().any(|s| s == "producers-x"), "{:?}", info.custom_sections);
    let plain = wat::parse_str("(module (func (export \"f\")))").expect("valid");
    assert_eq!(inspect(&plain).expect("module").wasi, WasiFlavor::None);
}

/// The component of the issue: imports `wasi:cli/environment`, exports `wasi:cli/run` and an
/// HTTP handler; its world, WASI version, producers, memories and section sizes.
#[test]
fn a_components_world_producers_and_layout() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wat");
    let wasm = wat::parse_file(path).expect("valid WAT");
    let info = inspect(&wasm).expect("a component");
    assert_eq!(info.wasi_version.as_deref(), Some("0.2.0"));
    let world = info.world.as_ref().expect("a world");
    assert_eq!(info.world_error, None);
    assert!(world.wit.contains("world root {"), "{}", world.wit);
    assert!(world.wit.contains("import wasi:cli/environment@0.2.0;"), "{}", world.wit);
    assert!(world.wit.contains("export wasi:http/incoming-handler@0.2.0;"), "{}", world.wit);
    assert!(world.wit.contains("get-environment: func() -> list<tuple<string, string>>;"), "{}", world.wit);
    assert!(world.has(false, "wasi:cli/run") && world.has(false, "wasi:http/*"));
    assert!(world.has(true, "wasi:cli/environment@0.2.0") && !world.has(true, "wasi:http/*"));
    let env = &world.imports[0];
    assert_eq!(
        (env.kind, env.package.as_deref(), env.version.as_deref(), env.interface.as_deref()),
        ("interface", Some("wasi:cli"), Some("0.2.0"), Some("environment"))
    );
    let names: Vec<_> = env.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["get-environment", "get-arguments"]);
    let handle = &world.exports[1].functions[0];
    assert_eq!((handle.params[0].name.as_str(), handle.params[0].ty.as_str()), ("request", "u32"));
    assert_eq!(world.exports[0].functions[0].result.as_deref(), Some("result"));
    // Producers, merged from the nested module; its memory; sections by size.
    assert_eq!(info.producers.language[0].name, "Rust");
    let tools: Vec<_> =
        info.producers.processed_by.iter().map(|t| (t.name.as_str(), t.version.as_str())).collect();
    assert_eq!(tools, [("rustc", "1.95.0"), ("wit-component", "0.263.0")]);
    assert_eq!((info.memories[0].initial_pages, info.memories[0].maximum_pages), (1, Some(16)));
    assert!(info.sections.iter().any(|s| s.name == "core-module"), "{:?}", info.sections);
    assert!(info.sections.windows(2).all(|w| w[0].size >= w[1].size), "largest first");
    let total: u64 = info.sections.iter().map(|s| s.size).sum();
    assert!(total < info.size && total > info.size / 2, "{total} of {}", info.size);
    assert!(info.validation.valid && info.validation.proposals.is_empty());
    // The JSON is camelCase throughout.
    let json = serde_json::to_value(&info).expect("JSON");
    for key in ["wasiVersion", "wasiInterfaces", "customSections", "nestedModules", "worldError"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["producers"]["processedBy"][0]["name"], "rustc");
}

/// Proposals are found by what the validator needs; an invalid module says why; preview 1,
/// 0.2.x and 0.3 WASI versions; a start function and tables.
#[test]
fn proposals_validation_and_wasi_versions() {
    let simd = wat::parse_str(
        "(module (memory 1 1 shared) (func (export \"f\") (result v128) v128.const i64x2 0 0) \
         (func (result i32) i32.const 0 i32.atomic.load) (table 2 funcref) (start 2) (func))",
    )
    .expect("valid");
    let info = inspect(&simd).expect("module");
    assert!(info.validation.valid, "{:?}", info.validation);
    assert_eq!(info.validation.proposals, ["simd", "threads"]);
    assert!(info.memories[0].shared);
    assert_eq!(info.tables[0].element_type, "funcref");
    assert_eq!(info.start, Some(2));
    let plain = wat::parse_str("(module (func (export \"f\") (result i32) i32.const 1))").expect("valid");
    assert!(inspect(&plain).expect("module").validation.proposals.is_empty());
    // Parses, but does not validate: the reason is kept, inspection still answers.
    let invalid = wat::parse_str("(module (func (result i32)))").expect("parses");
    let info = inspect(&invalid).expect("inspected");
    assert!(!info.validation.valid);
    assert!(
        info.validation.error.as_deref().is_some_and(|e| e.contains("type mismatch")),
        "{:?}",
        info.validation
    );
    assert_eq!(inspect(&hello_module()).expect("module").wasi_version.as_deref(), Some("preview1"));
    let versions = |imports: &[&str]| {
        let body: Vec<String> = imports.iter().map(|i| format!("(import \"{i}\" (instance))")).collect();
        let wasm = wat::parse_str(format!("(component {})", body.join(" "))).expect("valid");
        inspect(&wasm).expect("component").wasi_version
    };
    assert_eq!(versions(&["wasi:io/poll@0.2.0", "wasi:cli/stdout@0.2.3"]).as_deref(), Some("0.2.3"));
    assert_eq!(
        versions(&["wasi:io/poll@0.2.6", "wasi:cli/stdout@0.3.0-rc-2025-09-16"]).as_deref(),
        Some("0.3.0-rc-2025-09-16")
    );
    assert_eq!(
        versions(&["wasi:io/poll@0.3.0-rc-2025-09-16", "wasi:cli/stdout@0.3.0"]).as_deref(),
        Some("0.3.0")
    );
}

#[test]
fn refuses_what_is_not_wasm() {
    for (bytes, what) in [
        (&b""[..], "empty"),
        (b"(module)", "text"),
        (b"\x7fELF\x02\x01\x01\0", "ELF"),
        (b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f", "truncated section"),
    ] {
        assert!(inspect(bytes).is_err(), "{what} accepted");
        assert!(validate(bytes).is_err(), "{what} validated");
    }
    // Parses, but does not validate: a function returning nothing that leaves a value.
    // (`wat` encodes without validating.)
    let invalid = wat::parse_str("(module (func i32.const 1))").expect("encodes");
    inspect(&invalid).expect("parses");
    assert!(matches!(validate(&invalid), Err(Error::Malformed { .. })));
}

#[test]
fn extracts_from_tar_and_tar_gzip_layers() {
    let wasm = hello_module();
    for gzip in [false, true] {
        let layer = tar_layer(
            &[("bin/sh", b"#!/bin/sh"), ("./app.wasm", &wasm), ("plugin.wasm", b"\0asm\x01\0\0\0")],
            gzip,
        );
        let found = extract::read_wasm(
            &layer[..],
            &Location::TarEntry(EntryMatch::Path("/app.wasm".into())),
            1 << 20,
        )
        .expect("found");
        assert_eq!((found.path.as_str(), &found.bytes), ("app.wasm", &wasm));
        let plugin = extract::read_wasm(
            &layer[..],
            &Location::TarEntry(EntryMatch::FileName("plugin.wasm".into())),
            1 << 20,
        )
        .expect("found");
        assert_eq!(plugin.path, "plugin.wasm");
        let any =
            extract::read_wasm(&layer[..], &Location::TarEntry(EntryMatch::AnyWasm), 1 << 20).expect("found");
        assert_eq!(any.bytes, wasm);
        let missing = extract::read_wasm(
            &layer[..],
            &Location::TarEntry(EntryMatch::Path("nope.wasm".into())),
            1 << 20,
        );
        assert!(matches!(missing, Err(Error::EntryNotFound { .. })));
        let capped =
            extract::read_wasm(&layer[..], &Location::TarEntry(EntryMatch::Path("app.wasm".into())), 10);
        assert!(matches!(capped, Err(Error::TooLarge { .. })));
    }
    let raw = extract::read_wasm(&wasm[..], &Location::Raw, 1 << 20).expect("raw");
    assert_eq!(raw.bytes, wasm);
    assert!(matches!(extract::read_wasm(&wasm[..], &Location::Raw, 8), Err(Error::TooLarge { .. })));
    assert!(
        extract::read_wasm(&b"not a tar at all"[..], &Location::TarEntry(EntryMatch::AnyWasm), 1 << 20)
            .is_err()
    );
}

/// tar+zstd (podman and buildah write it with `--compression-format zstd`), in several frames
/// behind a skippable frame as zstd:chunked writes them; a bound on the bytes read.
#[test]
fn extracts_from_tar_zstd_layers_and_bounds_the_bytes_read() {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};
    let wasm = hello_module();
    let filler = vec![7u8; 300_000];
    let tar = tar_layer(&[("filler", &filler), ("app.wasm", &wasm)], false);
    let (a, b) = tar.split_at(tar.len() / 2);
    let mut layer = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    layer.extend(compress_to_vec(a, CompressionLevel::Fastest));
    layer.extend(compress_to_vec(b, CompressionLevel::Fastest));
    let at = Location::TarEntry(EntryMatch::Path("app.wasm".into()));
    let found = extract::read_wasm(&layer[..], &at, 1 << 20).expect("found in tar+zstd");
    assert_eq!(found.bytes, wasm);
    // The module sits after 300 KB of tar: a 100 KB bound on the bytes read stops before it.
    let bounded = extract::read_wasm_bounded(&layer[..], &at, 1 << 20, 100_000);
    assert!(
        matches!(bounded, Err(Error::OverBudget(o)) if o.limit == 100_000 && o.size > 100_000),
        "not bounded: {bounded:?}"
    );
    let plain = extract::read_wasm_bounded(&tar[..], &at, 1 << 20, 100_000);
    assert!(plain.is_err(), "not bounded without compression");
}

#[test]
fn classification_then_extraction_finds_the_annotated_module() {
    // An F2 image as buildah writes it: the module at the Cmd path inside the tar+gzip layer.
    let wasm = hello_module();
    let layer = tar_layer(&[("hello.wasm", &wasm)], true);
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let json = crate::common::image(
        &crate::common::desc("application/vnd.oci.image.config.v1+json", "c", ""),
        &[format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
            wharf_types::Digest::sha256(&layer),
            layer.len()
        )],
        r#","annotations":{"module.wasm.image/variant":"compat"}"#,
    );
    let c = classify(&crate::common::manifest(&json), Some(config));
    let found = extract::read_wasm(&layer[..], &c.wasm_layers[0].location, extract::DEFAULT_MAX_MODULE_SIZE)
        .expect("found");
    assert_eq!(found.bytes, wasm);
    assert_eq!(inspect(&found.bytes).expect("module").wasi, WasiFlavor::Preview1);
}

#[test]
fn extracts_from_an_async_reader() {
    let wasm = hello_module();
    let layer = tar_layer(&[("app.wasm", &wasm)], true);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
    let found = runtime
        .block_on(extract::read_wasm_async(
            std::io::Cursor::new(layer),
            Location::TarEntry(EntryMatch::Path("app.wasm".into())),
            1 << 20,
            extract::DEFAULT_MAX_READ,
        ))
        .expect("found");
    assert_eq!(found.bytes, wasm);
}

#[test]
fn builders_round_trip_through_classify() {
    for (wasm, kind) in [(hello_module(), BinaryKind::CoreModule), (component(), BinaryKind::Component)] {
        let w2o = ArtifactBuilder::new(wasm.clone()).with_title("hello.wasm").wasm_to_oci().expect("builds");
        assert_eq!(w2o.config.data.as_ref(), b"{}");
        assert_eq!(w2o.config.descriptor.digest, wharf_types::Digest::EMPTY_JSON);
        let c = classify(&w2o.manifest, Some(&w2o.config.data));
        assert_eq!(c.kind, Kind::WasmToOci);
        assert_eq!(c.harbor.artifact_type, "WASM");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(w2o.layers[0].data.as_ref(), wasm.as_slice());
        assert_eq!(w2o.blobs().count(), 2);

        let cncf = ArtifactBuilder::new(wasm.clone())
            .with_created("2025-01-01T00:00:00Z")
            .with_author("Wharf tests")
            .with_annotation("org.opencontainers.image.version", "0.1.0")
            .cncf()
            .expect("builds");
        let c = classify(&cncf.manifest, Some(&cncf.config.data));
        assert_eq!(c.kind, Kind::CncfArtifact);
        assert_eq!(c.binary_kind, Some(kind));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let config: WasmConfig = serde_json::from_slice(&cncf.config.data).expect("config");
        assert_eq!(config.layer_digests, [cncf.layers[0].descriptor.digest.to_string()]);
        if kind == BinaryKind::Component {
            assert_eq!(config.os, "wasip2");
            let component = config.component.expect("component world");
            assert_eq!(component.imports, ["wasi:cli/environment@0.2.0"]);
            assert_eq!(component.exports, ["run"]);
        } else {
            assert_eq!((config.os.as_str(), config.component), ("wasip1", None));
        }
        assert_eq!(
            cncf.manifest
                .annotations()
                .and_then(|a| a.get("org.opencontainers.image.version"))
                .map(String::as_str),
            Some("0.1.0")
        );
    }
    // A builder refuses what is not Wasm.
    assert!(ArtifactBuilder::new(b"(module)".to_vec()).wasm_to_oci().is_err());
    assert!(ArtifactBuilder::new(b"hello".to_vec()).cncf().is_err());
    // The default creation time is RFC 3339.
    let built = ArtifactBuilder::new(hello_module()).cncf().expect("builds");
    let config: WasmConfig = serde_json::from_slice(&built.config.data).expect("config");
    assert!(config.created.is_some_and(|c| c.len() >= 20 && c.contains('T')));
}
