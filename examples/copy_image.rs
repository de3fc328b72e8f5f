//! Copy an image (an index with every platform, or one manifest) between repositories or
//! registries, digests preserved, with a progress bar for blobs over 1 MiB.
//!
//! ```text
//! cargo run --example copy_image -- localhost:5000/a/app:v1 localhost:5001/mirror/app:v1 --insecure
//! ```

use wharf::client::{ClientBuilder, DockerConfig};
use wharf::types::Reference;

#[path = "support/progress.rs"]
mod progress;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let refs: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [src, dst] = refs[..] else {
        return Err("usage: copy_image <source> <destination> [--insecure]".into());
    };
    let (src, dst): (Reference, Reference) = (src.parse()?, dst.parse()?);
    let mut builder = ClientBuilder::new().with_progress(progress::bars());
    if args.iter().any(|a| a == "--insecure") {
        builder = builder.with_insecure_host(src.api_host()).with_insecure_host(dst.api_host());
    }
    if let Some(config) = DockerConfig::load()? {
        builder = builder.with_docker_config(config);
    }
    let digest = builder.build()?.copy(&src, &dst).await?;
    println!("copied {src} to {dst}: {digest}");
    Ok(())
}
