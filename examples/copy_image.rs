//! Copy an image (an index with every platform, or one manifest) between repositories or
//! registries, digests preserved, with a progress bar for blobs over 1 MiB.
//!
//! ```text
//! cargo run --example copy_image -- localhost:5000/a/app:v1 localhost:5001/mirror/app:v1 --insecure
//! ```

use wharf::types::Reference;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: copy_image <source> <destination> [--insecure] [--cert-dir DIR] [--authfile FILE]\n\nCopies an image (every platform of an index) between repositories or registries, digests kept.\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP; --cert-dir trusts the CAs (*.crt) and presents the client certificate (client.cert, client.key) of a containers-style certificate directory; --authfile reads credentials from a docker/podman auth file.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let refs = cli::positional(&args);
    let [src, dst] = refs[..] else {
        return Err(USAGE.into());
    };
    let (src, dst): (Reference, Reference) = (src.parse()?, dst.parse()?);
    let client = cli::client(&args, &[&src, &dst], Some(wharf::client::Progress::bars()))?;
    let digest = client.copy(&src, &dst).await?;
    println!("copied {src} to {dst}: {digest}");
    Ok(())
}
