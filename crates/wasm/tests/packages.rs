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
