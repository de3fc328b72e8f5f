//! Parse a manifest file and print what it is: its digest (over the exact bytes), media type,
//! artifact type, and what it references.
//!
//! ```text
//! cargo run --example inspect_manifest -- tests/data/wasm-examples/01-harbor-test-wasm-to-oci-manifest.json
//! ```

use wharf::types::{Manifest, ManifestBody};

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: inspect_manifest <manifest.json>\n\nPrints a manifest's digest, media type, artifact type and references, offline.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, |args| async move { example(&args) })
}

fn example(args: &[String]) -> run::Result {
    let path = args.first().ok_or(USAGE)?;
    let manifest = Manifest::from_bytes(std::fs::read(path)?, None)?;
    println!("digest:        {}", manifest.digest());
    println!("media type:    {}", manifest.media_type());
    if let Some(artifact_type) = manifest.artifact_type() {
        println!("artifact type: {artifact_type}");
    }
    if let Some(subject) = manifest.subject() {
        println!("subject:       {}", subject.digest);
    }
    for (key, value) in manifest.annotations().into_iter().flatten() {
        println!("annotation:    {key}={value}");
    }
    match manifest.body() {
        ManifestBody::Image(image) => {
            println!(
                "config:        {} {} ({} bytes)",
                image.config.media_type, image.config.digest, image.config.size
            );
            for layer in &image.layers {
                let title = layer.title().map(|t| format!(" {t}")).unwrap_or_default();
                println!(
                    "layer:         {} {} ({} bytes){title}",
                    layer.media_type, layer.digest, layer.size
                );
            }
        }
        ManifestBody::Index(index) => {
            for child in &index.manifests {
                let platform = child.platform.as_ref().map(|p| format!(" [{p}]")).unwrap_or_default();
                println!("manifest:      {} {}{platform}", child.media_type, child.digest);
            }
        }
        _ => {}
    }
    Ok(())
}
