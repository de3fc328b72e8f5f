//! The client the registry examples share: plain HTTP for loopback registries, and for the
//! references' hosts with `--insecure`; TLS trust and client certificates from `--cert-dir`
//! (the containers tools' layout: `*.crt` CAs, `client.cert` + `client.key`); credentials
//! from `--authfile`, else where podman and docker keep them (`$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`, …).

use wharf::client::{Client, ClientBuilder, DockerConfig, Progress};
use wharf::types::Reference;

/// Flags that take a value.
const VALUED: [&str; 4] = ["--cert-dir", "--authfile", "--layout", "-o"];

/// The value of `--flag value` or `--flag=value`.
pub(crate) fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

/// The arguments that are neither flags nor flag values.
pub(crate) fn positional(args: &[String]) -> Vec<&String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if VALUED.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

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
    if let Some(dir) = value(args, "--cert-dir") {
        for reference in references {
            // A registry with certificates speaks HTTPS, loopback or not.
            builder = builder.with_cert_dir(reference.api_host(), dir).with_loopback_plain_http(false);
        }
    }
    let config = match value(args, "--authfile") {
        Some(path) => Some(DockerConfig::from_path(std::path::Path::new(path))?),
        None => DockerConfig::load()?,
    };
    if let Some(config) = config {
        builder = builder.with_docker_config(config);
    }
    if let Some(progress) = progress {
        builder = builder.with_progress(progress);
    }
    Ok(builder.build()?)
}
