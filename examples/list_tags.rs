//! List the tags of a repository in any registry (following pagination).
//!
//! ```text
//! cargo run --example list_tags -- localhost:5000/webassembly/helloworld --insecure
//! ```

use wharf::types::Reference;

#[path = "support/cli.rs"]
mod cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reference: Reference = args
        .first()
        .filter(|a| !a.starts_with('-'))
        .ok_or("usage: list_tags <registry/repository> [--insecure]")?
        .parse()?;
    let client = cli::client(&args, &[&reference], None)?;
    for tag in client.tags(&reference).await? {
        println!("{tag}");
    }
    Ok(())
}
