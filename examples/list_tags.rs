//! List the tags of a repository in any registry (following pagination).
//!
//! ```text
//! cargo run --example list_tags -- localhost:5000/webassembly/helloworld --insecure
//! ```

use wharf::types::Reference;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/run.rs"]
mod run;

const USAGE: &str = "usage: list_tags <registry/repository> [--insecure] [--cert-dir DIR] [--authfile FILE]\n\nLists a repository's tags, following pagination.\nlocalhost and 127.0.0.0/8 registries are plain HTTP; --insecure makes any registry plain HTTP; --cert-dir trusts the CAs (*.crt) and presents the client certificate (client.cert, client.key) of a containers-style certificate directory; --authfile reads credentials from a docker/podman auth file.";

fn main() -> std::process::ExitCode {
    run::main(USAGE, example)
}

async fn example(args: Vec<String>) -> run::Result {
    let reference: Reference = cli::positional(&args).first().ok_or(USAGE)?.parse()?;
    let client = cli::client(&args, &[&reference], None)?;
    for tag in client.tags(&reference).await? {
        println!("{tag}");
    }
    Ok(())
}
