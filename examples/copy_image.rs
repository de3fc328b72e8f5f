//! Copy an image (an index with every platform, or one manifest) between repositories or
//! registries, digests preserved, with a progress bar for blobs over 1 MiB.
//!
//! ```text
//! cargo run --example copy_image -- localhost:5000/a/app:v1 localhost:5001/mirror/app:v1 --insecure
//! ```

use wharf::types::Reference;

#[path = "support/progress.rs"]
mod progress;

#[path = "support/cli.rs"]
mod cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let refs: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [src, dst] = refs[..] else {
        return Err("usage: copy_image <source> <destination> [--insecure]".into());
    };
    let (src, dst): (Reference, Reference) = (src.parse()?, dst.parse()?);
    let client = cli::client(&args, &[&src, &dst], Some(progress::bars()))?;
    let digest = client.copy(&src, &dst).await?;
    println!("copied {src} to {dst}: {digest}");
    Ok(())
}
