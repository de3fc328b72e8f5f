//! Push a `.wasm` file as an OCI artifact — the Harbor article's wasm-to-oci flow.
//!
//! ```text
//! cargo run --example wasm_push -- helloworld.wasm localhost:5000/webassembly/helloworld:v1 --insecure [--layout cncf]
//! ```
//! `--insecure` talks plain HTTP to the reference's registry; `--layout cncf` writes the CNCF
//! Wasm OCI artifact instead of wasm-to-oci.

use wharf::client::Layout;
use wharf::types::Reference;

#[path = "support/progress.rs"]
mod progress;

#[path = "support/cli.rs"]
mod cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--") && *a != "cncf").collect();
    let [file, reference] = positional[..] else {
        return Err(
            "usage: wasm_push <file.wasm> <registry/repository:tag> [--insecure] [--layout cncf]".into()
        );
    };
    let reference: Reference = reference.parse()?;
    let layout = if args.iter().any(|a| a == "cncf") { Layout::CncfV0 } else { Layout::WasmToOci };
    let client = cli::client(&args, &[&reference], Some(progress::bars()))?;
    let module = std::fs::read(file)?;
    let title = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or("module.wasm");
    let manifest = client.push_wasm(&reference, module.into(), layout, title).await?;
    println!(
        "pushed {reference} ({} bytes of Wasm) as {}",
        std::fs::metadata(file)?.len(),
        manifest.digest()
    );
    Ok(())
}
