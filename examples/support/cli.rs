//! The client the registry examples share: plain HTTP for loopback registries, and for the
//! references' hosts with `--insecure`; credentials from the docker `config.json` when there
//! is one.

use wharf::client::{Client, ClientBuilder, DockerConfig, Progress};
use wharf::types::Reference;

pub(crate) fn client(
    args: &[String],
    references: &[&Reference],
    progress: Option<Progress>,
) -> Result<Client, Box<dyn std::error::Error>> {
    let mut builder = ClientBuilder::new();
    if args.iter().any(|a| a == "--insecure") {
        for reference in references {
            builder = builder.with_insecure_host(reference.api_host());
        }
    }
    if let Some(config) = DockerConfig::load()? {
        builder = builder.with_docker_config(config);
    }
    if let Some(progress) = progress {
        builder = builder.with_progress(progress);
    }
    Ok(builder.build()?)
}
