//! Pull the Wasm module an OCI reference names, from any layout Wharf recognizes
//! (wasm-to-oci, CNCF, annotated or `wasi/wasm` images, indexes, …).
//!
//! ```text
//! cargo run --example wasm_pull -- localhost:5000/webassembly/helloworld:v1 -o pulled.wasm --insecure
//! ```

use wharf::types::Reference;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: wasm_pull <registry/repository:tag> -o <out.wasm> [--insecure] [--cert-dir DIR] [--authfile FILE]\n\nPulls the Wasm module a reference names, from any layout Wharf recognizes.\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP; --cert-dir trusts the CAs (*.crt) and presents the client certificate (client.cert, client.key) of a containers-style certificate directory; --authfile reads credentials from a docker/podman auth file.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let out = cli::value(&args, "-o").ok_or(USAGE)?;
    let reference: Reference = cli::positional(&args).first().ok_or(USAGE)?.parse()?;
    let client = cli::client(&args, &[&reference], Some(wharf::client::Progress::bars()))?;
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
