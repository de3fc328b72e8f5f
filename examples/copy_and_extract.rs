//! Copy an image between two registries (digests kept), then pull the Wasm module out of its
//! tar+gzip layer, as Istio's `WasmPlugin` images carry it (`plugin.wasm`).
//!
//! ```text
//! cargo run --release --example copy_and_extract
//! ```

use std::io::Write;

use wharf::client::ClientBuilder;
use wharf::server::{Server, ServerHandle, Wharf};
use wharf::types::{MediaType, Reference};

/// A registry in memory on a free loopback port, serving until its handle shuts it down.
async fn registry() -> Result<(String, ServerHandle), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0".parse()?, Wharf::in_memory()).await?;
    Ok((server.local_addr().to_string(), server.spawn()))
}

/// A tar+gzip layer holding `module` as `plugin.wasm`.
fn tar_gz(module: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    let mut header = tar::Header::new_gnu();
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "plugin.wasm", module)?;
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ((source, first), (target, second)) = (registry().await?, registry().await?);
    let client = ClientBuilder::new().build()?;
    let module = wat::parse_str(
        r#"(module (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0))"#,
    )?;
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

    let from: Reference = format!("{source}/istio/filter:1.0").parse()?;
    let pushed = client
        .push_image(
            &from,
            (MediaType::OCI_CONFIG, &config[..]),
            [(MediaType::OCI_LAYER_TAR_GZIP, tar_gz(&module)?)],
        )
        .await?;
    let to: Reference = format!("{target}/mirror/filter:1.0").parse()?;
    let copied = client.copy(&from, &to).await?;
    assert_eq!(copied, pushed, "a copy keeps the digest");
    println!("copied {from} to {to}: {copied}");

    let pulled = client.pull_wasm(&to).await?;
    assert_eq!(pulled.module, module);
    println!(
        "{} bytes of Wasm out of the tar+gzip layer ({:#})",
        pulled.module.len(),
        pulled.classification.kind
    );
    first.shutdown().await?;
    second.shutdown().await?;
    Ok(())
}
