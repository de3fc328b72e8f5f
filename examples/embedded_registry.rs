//! A registry inside your program, and a Wasm module pushed, listed and pulled back: the
//! shortest way to try Wharf.
//!
//! ```text
//! cargo run --release --example embedded_registry
//! ```

use wharf::client::{ClientBuilder, WasmLayout};
use wharf::server::{Server, Wharf};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Wharf::in_memory();
    let server = Server::bind("127.0.0.1:0".parse()?, registry).await?;
    let host = server.local_addr();
    let handle = server.spawn();

    // Loopback registries are spoken to in plain HTTP; anything else needs TLS or
    // `with_insecure_host`.
    let client = ClientBuilder::new().build()?;
    let module = wat::parse_str(r#"(module (func (export "_start")))"#)?;
    let reference = format!("{host}/webassembly/helloworld:v1").parse()?;
    let manifest = client.push_wasm(&reference, module.clone(), WasmLayout::WasmToOci, "hello.wasm").await?;
    println!("pushed {reference} as {}", manifest.digest());
    println!("tags: {:?}", client.tags(&reference).await?);

    let pulled = client.pull_wasm(&reference).await?;
    assert_eq!(pulled.module, module);
    println!("pulled {} bytes, a {:#} artifact", pulled.module.len(), pulled.classification.kind);
    handle.shutdown().await?;
    Ok(())
}
