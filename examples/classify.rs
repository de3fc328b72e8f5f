//! Classify a manifest as WebAssembly (or not): the layout, the evidence, what Harbor 2.6
//! would record, and — given the `.wasm` file — what is inside the module.
//!
//! ```text
//! cargo run --example classify -- manifest.json [config.json] [--module x.wasm] [--json]
//! cargo run --example classify -- \
//!     tests/data/wasm-examples/03-harbor-test-annotated-compat-manifest.json \
//!     tests/data/wasm-examples/04-harbor-test-annotated-compat-config.json \
//!     --module tests/data/wasm/hello.wasm
//! ```

use wharf::types::Manifest;
use wharf::wasm::{classify, inspect};

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: classify manifest.json [config.json] [--module x.wasm] [--json]\n\nClassifies a manifest (and its config) as WebAssembly or not, offline.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, |args| async move { example(args) })
}

fn example(args: Vec<String>) -> run::Result {
    let (mut files, mut module, mut json) = (Vec::new(), None, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--module" => module = Some(args.next().ok_or("--module needs a path")?),
            _ => files.push(arg),
        }
    }
    let manifest_path = files.first().ok_or(USAGE)?;
    let manifest = Manifest::from_bytes(std::fs::read(manifest_path)?, None)?;
    let config = files.get(1).map(std::fs::read).transpose()?;
    let classification = classify(&manifest, config.as_deref());
    let module_info = module
        .map(|path| {
            std::fs::read(path).map_err(Box::<dyn std::error::Error>::from).and_then(|b| Ok(inspect(&b)?))
        })
        .transpose()?;

    if json {
        let out = serde_json::json!({
            "digest": manifest.digest(),
            "wasm": classification.is_wasm(),
            "classification": classification,
            "module": module_info,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let kind = &classification.kind;
    println!("manifest  {} ({})", manifest.digest(), manifest.media_type());
    println!(
        "kind      {} [{}]{}",
        kind.name(),
        kind.format_id(),
        if kind.is_wasm() { "" } else { " — not WebAssembly" }
    );
    if let Some(p) = &classification.platform {
        println!("platform  {p}");
    }
    for e in &classification.evidence {
        println!("evidence  {} = {:?}: {}", e.field, e.value, e.rule);
    }
    for l in &classification.wasm_layers {
        println!("layer     #{} {} {:?}", l.index, l.descriptor.digest, l.location);
    }
    for c in &classification.wasm_children {
        println!("child     #{} {}", c.index, c.descriptor.digest);
    }
    for h in &classification.hints {
        println!("hint      {} = {:?}: {}", h.field, h.value, h.rule);
    }
    for w in &classification.warnings {
        println!("warning   {w}");
    }
    let harbor = &classification.harbor;
    println!("harbor    type {} (media type {})", harbor.artifact_type, harbor.media_type);
    for (k, v) in &harbor.extra_attrs {
        println!("          {k}: {v}");
    }
    if let Some(info) = module_info {
        println!("module    {:?}, {} bytes, WASI {:?}", info.kind(), info.size, info.wasi);
        for i in &info.imports {
            println!("  import  {} {} ({})", i.module, i.name, i.kind);
        }
        for e in &info.exports {
            println!("  export  {} ({})", e.name, e.kind);
        }
    }
    Ok(())
}
