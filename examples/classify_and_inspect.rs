//! Is this manifest WebAssembly, in which layout, and why? What is inside a module, and what
//! world does a component implement?
//!
//! ```text
//! cargo run --release --example classify_and_inspect
//! ```

use wharf::types::Manifest;
use wharf::wasm::{ArtifactBuilder, WasmLayout, classify, inspect};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The Harbor article's buildah image, annotated for crun's Wasm handler.
    let manifest = Manifest::from_bytes(
        &include_bytes!("../tests/data/wasm-examples/03-harbor-test-annotated-compat-manifest.json")[..],
        None,
    )?;
    let config = include_bytes!("../tests/data/wasm-examples/04-harbor-test-annotated-compat-config.json");
    let verdict = classify(&manifest, Some(config));
    println!("{:#}, which Harbor 2.6 shows as {}", verdict.kind, verdict.harbor.artifact_type);
    for evidence in &verdict.evidence {
        println!("  {} = {:?}: {}", evidence.field, evidence.value, evidence.rule);
    }

    let module = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    )?;
    let info = inspect(&module)?;
    println!("a {} of {} bytes, WASI {}", info.kind(), info.size, info.wasi);
    for import in &info.imports {
        println!("  imports {} {}::{}", import.kind, import.module, import.name);
    }
    for export in &info.exports {
        println!("  exports {} {}", export.kind, export.name);
    }
    let layout = WasmLayout::for_binary(info.kind());
    let artifact = ArtifactBuilder::new(module).with_title("hello.wasm").build(layout)?;
    println!("published as {}", classify(&artifact.manifest, Some(&artifact.config.data)).kind);

    let component = inspect(include_bytes!("../tests/data/wasm/cli-http-component.wasm"))?;
    let world = component.world.as_ref().ok_or("a component has a world")?;
    println!("a {} implementing world {}:\n{}", component.kind(), world.name, world.wit);
    Ok(())
}
