//! Push a `.wasm` file as an OCI artifact — the Harbor article's wasm-to-oci flow.
//!
//! ```text
//! cargo run --example wasm_push -- helloworld.wasm localhost:5000/webassembly/helloworld:v1 --insecure [--layout cncf]
//! ```
//! `--insecure` talks plain HTTP to the reference's registry; `--layout cncf` writes the CNCF
//! Wasm OCI artifact instead of wasm-to-oci.

use wharf::client::WasmLayout;
use wharf::types::Reference;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: wasm_push <file.wasm> <registry/repository:tag> [--insecure] [--cert-dir DIR] [--authfile FILE] [--layout cncf]\n\nPushes a .wasm file as an OCI artifact (wasm-to-oci, or the CNCF layout with --layout cncf).\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP; --cert-dir trusts the CAs (*.crt) and presents the client certificate (client.cert, client.key) of a containers-style certificate directory; --authfile reads credentials from a docker/podman auth file.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let positional = cli::positional(&args);
    let [file, reference] = positional[..] else {
        return Err(USAGE.into());
    };
    let reference: Reference = reference.parse()?;
    let layout = if cli::value(&args, "--layout") == Some("cncf") {
        WasmLayout::CncfArtifact
    } else {
        WasmLayout::WasmToOci
    };
    let client = cli::client(&args, &[&reference], Some(wharf::client::Progress::bars()))?;
    let module = std::fs::read(file)?;
    let title = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or("module.wasm");
    let manifest = client.push_wasm(&reference, module, layout, title).await?;
    println!(
        "pushed {reference} ({} bytes of Wasm) as {}",
        std::fs::metadata(file)?.len(),
        manifest.digest()
    );
    Ok(())
}
