//! List the tags of a repository in any registry (following pagination).
//!
//! ```text
//! cargo run --example list_tags -- localhost:5000/webassembly/helloworld --insecure
//! ```

use wharf::client::{ClientBuilder, DockerConfig};
use wharf::types::Reference;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reference: Reference = args
        .first()
        .filter(|a| !a.starts_with('-'))
        .ok_or("usage: list_tags <registry/repository> [--insecure]")?
        .parse()?;
    let mut builder = ClientBuilder::new();
    if args.iter().any(|a| a == "--insecure") {
        builder = builder.with_insecure_host(reference.api_host());
    }
    if let Some(config) = DockerConfig::load()? {
        builder = builder.with_docker_config(config);
    }
    for tag in builder.build()?.tags(&reference).await? {
        println!("{tag}");
    }
    Ok(())
}
