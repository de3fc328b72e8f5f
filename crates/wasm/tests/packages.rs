//! WIT packages told from components, their dependencies, and the semver check between two
//! versions (`wit::compatible`).

use wharf_wasm::inspect;
use wharf_wasm::wit::{Wit, compatible, decode, dummy_component, encode_package};

const GREETER: &str = "package acme:greeter@0.1.0;
interface hello { greet: func(name: string) -> string; }
world greeter { export hello; }";

fn greeter(version: &str, body: &str) -> Vec<u8> {
    encode_package(&[&format!("package acme:greeter@{version};\n{body}")]).expect("valid")
}

#[test]
fn a_wit_package_is_not_a_component() {
    let bytes = encode_package(&[GREETER]).expect("valid");
    let info = inspect(&bytes).expect("valid");
    assert_eq!(info.content, "wit-package");
    assert!(info.world.is_none());
    let package = info.package.expect("decoded as a package");
    assert_eq!(package.name, "acme:greeter");
    assert_eq!(package.version.as_deref(), Some("0.1.0"));
    assert_eq!(package.interfaces[0].name, "acme:greeter/hello@0.1.0");
    assert_eq!(package.interfaces[0].functions[0].params[0].ty, "string");
    assert_eq!(package.worlds[0].name, "greeter");
    assert!(package.wit.contains("package acme:greeter@0.1.0;"), "{}", package.wit);
    assert!(package.dependencies.is_empty());
    // The JSON the records hold.
    let json = serde_json::to_value(inspect(&bytes).expect("valid")).expect("valid");
    assert_eq!(json["content"], "wit-package");
    assert_eq!(json["package"]["name"], "acme:greeter");
}

#[test]
fn a_component_knows_the_packages_it_uses() {
    let app = "package acme:app@1.0.0;
world app { import wasi:clocks/monotonic-clock@0.2.0; export acme:greeter/hello@0.1.0; }";
    let clocks = "package wasi:clocks@0.2.0; interface monotonic-clock { now: func() -> u64; }";
    let bytes = dummy_component(&[GREETER, clocks, app], "app").expect("valid");
    let info = inspect(&bytes).expect("valid");
    assert_eq!(info.content, "component");
    let world = info.world.expect("a world");
    let deps: Vec<String> = world.dependencies.iter().map(ToString::to_string).collect();
    assert_eq!(deps, ["acme:greeter@0.1.0", "wasi:clocks@0.2.0"]);
    assert!(world.has(false, "acme:greeter/hello"));
    // A WIT package that uses another one depends on it.
    let uses = "package acme:loud@0.1.0; world shouty { import acme:greeter/hello@0.1.0; }";
    let Wit::Package(loud) = decode(&encode_package(&[GREETER, uses]).expect("valid")).expect("valid") else {
        panic!()
    };
    assert_eq!(loud.dependencies.iter().map(ToString::to_string).collect::<Vec<_>>(), ["acme:greeter@0.1.0"]);
}

#[test]
fn compatible_follows_wkg() {
    let v010 = greeter("0.1.0", "interface hello { greet: func(name: string) -> string; }");
    let more = greeter("0.1.1", "interface hello { greet: func(name: string) -> string; wave: func(); }");
    let other = greeter(
        "0.1.1",
        "interface hello { greet: func(name: string) -> string; } interface extra { x: func(); }",
    );
    assert!(compatible(&v010, &more).is_ok());
    assert!(compatible(&v010, &other).is_ok());
    let why = |old: &[u8], new: &[u8]| compatible(old, new).expect_err("refused").to_string();
    let removed = greeter("0.1.2", "interface hello { wave: func(); }");
    assert_eq!(why(&more, &removed), "function `greet` of `acme:greeter/hello` was removed");
    let changed = greeter("0.1.2", "interface hello { greet: func(name: u32) -> string; wave: func(); }");
    assert_eq!(
        why(&more, &changed),
        "function `greet` of `acme:greeter/hello` changed from `func(name: string) -> string` to `func(name: u32) -> string`"
    );
    let gone = greeter("0.1.2", "interface other { x: func(); }");
    assert_eq!(why(&v010, &gone), "interface `acme:greeter/hello` was removed");
    // A type changed: no summary names it; the semver check does.
    let typed = |v: &str, fields: &str| {
        greeter(
            v,
            &format!("interface hello {{ record person {{ {fields} }} greet: func(p: person) -> string; }}"),
        )
    };
    let why_type = why(&typed("0.1.0", "name: string"), &typed("0.1.1", "name: string, age: u8"));
    assert!(why_type.contains("its interfaces is not compatible"), "{why_type}");
    assert!(compatible(&typed("0.1.0", "name: string"), &typed("0.1.1", "name: string")).is_ok());
    // Components: an export removed, an import added.
    let world = |v: &str, body: &str| {
        dummy_component(&[GREETER, &format!("package acme:app@{v}; {body}")], "app").expect("valid")
    };
    let clocks = "package wasi:clocks@0.2.0; interface monotonic-clock { now: func() -> u64; }";
    let app1 = world("1.0.0", "world app { export acme:greeter/hello@0.1.0; export run: func(); }");
    let app2 = world("1.1.0", "world app { export run: func(); }");
    assert_eq!(why(&app1, &app2), "export `acme:greeter/hello` was removed");
    let app3 = dummy_component(
        &[GREETER, clocks, "package acme:app@1.2.0; world app { import wasi:clocks/monotonic-clock@0.2.0; export acme:greeter/hello@0.1.0; export run: func(); }"],
        "app",
    )
    .expect("valid");
    assert_eq!(why(&app1, &app3), "import `wasi:clocks/monotonic-clock` was added");
    let dropped = compatible(&app3, &app1);
    assert!(dropped.is_ok(), "an import dropped, nothing else: {dropped:?}");
    // A component and a WIT package are never one series.
    assert!(why(&v010, &app1).contains("WIT package"));
    // Not Wasm: an error, but not an incompatibility.
    assert!(!matches!(compatible(b"nope", &v010), Err(wharf_wasm::Error::Incompatible { .. }) | Ok(())));
}

/// `bytes` with a top-level custom section `name` holding `data` appended.
fn with_custom(mut bytes: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = u8::try_from(n & 0x7f).expect("seven bits");
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    bytes.push(0);
    leb(body.len(), &mut bytes);
    bytes.extend_from_slice(&body);
    bytes
}

#[test]
fn published_like_wkg_publish() {
    use wharf_types::{PackageName, PackageVersion};
    use wharf_wasm::{ArtifactBuilder, Error, WasmLayout};
    let mut bytes = encode_package(&[GREETER]).expect("valid");
    bytes = with_custom(bytes, "description", b"Greets people");
    bytes = with_custom(bytes, "licenses", b"Apache-2.0");
    bytes = with_custom(bytes, "homepage", b"https://example.com/greeter");
    bytes = with_custom(bytes, "authors", &[0xff, 0xfe]);
    bytes = with_custom(bytes, "source", "x".repeat(wharf_wasm::MAX_METADATA + 1).as_bytes());
    let info = inspect(&bytes).expect("valid");
    assert_eq!(info.metadata.description.as_deref(), Some("Greets people"));
    assert_eq!((info.metadata.authors.as_deref(), info.metadata.source.as_deref()), (None, None));
    let name: PackageName = "acme:greeter".parse().expect("valid");
    let version: PackageVersion = "0.1.0".parse().expect("valid");
    let artifact = ArtifactBuilder::new(bytes.clone())
        .with_title("greeter-0.1.0.wasm")
        .with_annotation("org.opencontainers.image.licenses", "MIT")
        .with_package(name.clone(), version.clone())
        .build(WasmLayout::CncfArtifact)
        .expect("built");
    let image = artifact.manifest.as_image().expect("an image");
    let annotations = image.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(annotations["org.opencontainers.image.description"], "Greets people");
    assert_eq!(annotations["org.opencontainers.image.url"], "https://example.com/greeter");
    assert_eq!(annotations["org.opencontainers.image.licenses"], "MIT", "the caller's annotation wins");
    assert!(!annotations.contains_key("org.opencontainers.image.authors"));
    assert_eq!(image.layers[0].title(), Some("greeter.wasm"));
    // A WIT package published as another version (or package) than it declares: refused.
    for (n, v) in [("acme:greeter", "0.2.0"), ("acme:other", "0.1.0")] {
        let built = ArtifactBuilder::new(bytes.clone())
            .with_package(n.parse().expect("valid"), v.parse().expect("valid"))
            .build(WasmLayout::CncfArtifact);
        let Err(Error::PackageMismatch { reason }) = built else { panic!("{n}@{v}: {built:?}") };
        assert!(reason.contains("declares `package acme:greeter@0.1.0`"), "{reason}");
    }
}
