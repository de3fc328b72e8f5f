//! Inspect any image in any registry: its manifest, the platforms of an index, and the Wasm
//! classification (with the evidence and Harbor 2.6's view).
//!
//! ```text
//! cargo run --example inspect -- localhost:5000/webassembly/helloworld:v1 --insecure
//! ```

use wharf::types::{ManifestBody, Reference};

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: inspect <registry/repository:tag> [--insecure] [--cert-dir DIR] [--authfile FILE]\n\nPrints an image's manifest, its platforms, and its Wasm classification.\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP; --cert-dir trusts the CAs (*.crt) and presents the client certificate (client.cert, client.key) of a containers-style certificate directory; --authfile reads credentials from a docker/podman auth file.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let reference: Reference = cli::positional(&args).first().ok_or(USAGE)?.parse()?;
    let client = cli::client(&args, &[&reference], None)?;
    let manifest = client.pull_manifest(&reference).await?;
    println!("{reference}\n  digest      {}\n  media type  {}", manifest.digest(), manifest.media_type());
    if let ManifestBody::Index(index) = manifest.body() {
        for child in &index.manifests {
            let platform = child.platform.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
            println!("  platform    {platform:<16} {}", child.digest);
        }
    }
    match client.pull_wasm(&reference).await {
        Ok(pulled) => {
            let c = &pulled.classification;
            println!(
                "  wasm        {} [{}], {} bytes, Harbor 2.6: {}",
                c.kind.name(),
                c.kind.format_id(),
                pulled.module.len(),
                c.harbor.artifact_type
            );
            for e in &c.evidence {
                println!("  evidence    {} = {:?}: {}", e.field, e.value, e.rule);
            }
        }
        Err(e) => println!("  wasm        no ({e})"),
    }
    Ok(())
}
