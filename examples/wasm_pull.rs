//! Pull the Wasm module an OCI reference names, from any layout Wharf recognises
//! (wasm-to-oci, CNCF, annotated or `wasi/wasm` images, indexes, …).
//!
//! ```text
//! cargo run --example wasm_pull -- localhost:5000/webassembly/helloworld:v1 -o pulled.wasm --insecure
//! ```

use wharf::types::Reference;

#[path = "support/progress.rs"]
mod progress;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: wasm_pull <registry/repository:tag> -o <out.wasm> [--insecure]\n\nPulls the Wasm module a reference names, from any layout Wharf recognises.\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let out = args.iter().position(|a| a == "-o").and_then(|i| args.get(i + 1)).ok_or(USAGE)?;
    let reference: Reference = args.first().filter(|a| !a.starts_with('-')).ok_or(USAGE)?.parse()?;
    let client = cli::client(&args, &[&reference], Some(progress::bars()))?;
    let pulled = client.pull_wasm(&reference).await?;
    std::fs::write(out, &pulled.module)?;
    let kind = &pulled.classification.kind;
    println!(
        "pulled {} bytes of Wasm from {reference} ({} [{}]) into {out}",
        pulled.module.len(),
        kind.name(),
        kind.format_id()
    );
    Ok(())
}
