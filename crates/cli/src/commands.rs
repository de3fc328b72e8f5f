//! What each subcommand does.

use std::path::{Path, PathBuf};

use serde_json::json;
use wharf_client::{Client, Reference, Registry, WasmLayout};
use wharf_types::{Descriptor, ImageManifest, Manifest, MediaType, PackageVersion, Platform};
use wharf_wasm::ArtifactBuilder;

use crate::cli::{self, Cli, Command};
use crate::failure::{Failure, Result};
use crate::session::{self, Resolved, Session};
use crate::{inspect, login};

/// Runs the command line.
pub(crate) async fn run(cli: Cli) -> Result {
    let session = Session::new(&cli.global);
    match &cli.command {
        Command::Push(args) => push(&session, args).await,
        Command::Pull(args) => pull(&session, args).await,
        Command::Inspect(args) => inspect_target(&session, args).await,
        Command::Verify(args) => crate::verify::verify(&session, args).await,
        Command::Login(args) => login::login(&session, args).await,
        Command::Logout(args) => login::logout(&session, args),
        Command::Copy(args) => copy(&session, args).await,
        Command::Tags(args) => tags(&session, &args.reference).await,
        Command::Versions(args) => versions(&session, &args.target).await,
        Command::Wit(args) => wit(&session, &args.target).await,
        Command::Catalog(args) => catalog(&session, &args.host).await,
        Command::Token(args) => token(&session, args).await,
        Command::Upstreams(args) => upstreams(&session, &args.host).await,
        Command::Referrers(args) => referrers(&session, args).await,
        Command::Attach(args) => attach(&session, args).await,
        Command::Delete(args) => delete(&session, &args.reference).await,
        Command::Manifest(args) => manifest(&session, &args.reference).await,
        Command::Blob(args) => blob(&session, args).await,
        Command::Completion(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "wharf", &mut std::io::stdout());
            Ok(())
        }
        Command::Man(args) => man(args.dir.as_deref()),
    }
}

/// A `KEY=VALUE` of `--annotation`.
fn annotation(text: &str) -> Result<(&str, &str)> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Failure::Usage(format!("--annotation `{text}`: expected KEY=VALUE")))
}

fn media_type(text: &str, flag: &str) -> Result<MediaType> {
    text.parse().map_err(|e| Failure::Usage(format!("{flag}: {e}")))
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed into place).
fn write_file(path: &Path, bytes: &[u8]) -> Result {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, path)).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        Failure::file(path, &e)
    })
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_owned).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON serializes"));
}

async fn push(session: &Session<'_>, args: &cli::Push) -> Result {
    if session.is_package(&args.reference) && !args.reference.contains('@') {
        let name = &args.reference;
        return Err(Failure::Usage(format!("`{name}`: push a version, e.g. `{name}@0.1.0`")));
    }
    let Resolved { reference, package, client } = session.resolve(&args.reference, true).await?;
    if reference.digest().is_some() {
        return Err(Failure::Usage(format!("`{}`: push to a tag, not a digest", args.reference)));
    }
    let package = match package {
        Some((name, version)) => version.map(|v| (name, v)),
        // A semver tag where the registry's discovery file puts a package: a package version.
        None => match reference.tag().and_then(|t| PackageVersion::of_tag(t.as_str())) {
            Some(version) => session::package_at(&client, &reference).await?.map(|name| (name, version)),
            None => None,
        },
    };
    // Shared, not copied, with the artifact built from it.
    let module = bytes::Bytes::from(std::fs::read(&args.file).map_err(|e| Failure::file(&args.file, &e))?);
    let header = wharf_wasm::Header::parse(&module).map_err(|e| match e {
        wharf_wasm::Error::NotWasm { reason } => {
            Failure::Failed(format!("{} is not a WebAssembly binary ({reason})", args.file.display()))
        }
        other => Failure::Failed(format!("{}: {other}", args.file.display())),
    })?;
    let layout = match args.layout {
        Some(cli::Layout::WasmToOci) => WasmLayout::WasmToOci,
        Some(cli::Layout::CncfArtifact) => WasmLayout::CncfArtifact,
        None => WasmLayout::for_binary(header.kind),
    };
    let title = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("module.wasm");
    let mut builder = ArtifactBuilder::new(module.clone()).with_title(title);
    if let Some((name, version)) = &package {
        // As `wkg publish`: the layer titled `<name>.wasm`, the version and the binary's
        // metadata as annotations.
        session.step(format!("publishing as {name}@{version}"));
        builder = builder.with_package(name.clone(), version.clone());
    }
    for text in &args.annotations {
        let (key, value) = annotation(text)?;
        builder = builder.with_annotation(key, value);
    }
    if let Some(t) = &args.artifact_type {
        builder = builder.with_artifact_type(media_type(t, "--artifact-type")?);
    }
    let artifact =
        builder.build(layout).map_err(|e| Failure::Failed(format!("{}: {e}", args.file.display())))?;
    session.step(format!(
        "pushing {} ({} bytes) as {layout} to {reference}",
        args.file.display(),
        module.len()
    ));
    let digest =
        client.push_artifact(&reference, &artifact).await.map_err(|e| Failure::at(&e, &reference))?;
    let shown = match &package {
        Some((name, version)) => format!("{name}@{version} ({reference})"),
        None => reference.to_string(),
    };
    if session.json() {
        print_json(&json!({
            "reference": reference.to_string(),
            "package": package.as_ref().map(|(name, _)| name.to_string()),
            "version": package.as_ref().map(|(_, version)| version.to_string()),
            "digest": digest,
            "mediaType": artifact.manifest.media_type().as_str(),
            "layout": layout.to_string(),
            "size": module.len(),
        }));
    } else {
        session.info(format!("pushed {} ({} bytes, {layout}) to {shown}", args.file.display(), module.len()));
        println!("{digest}");
    }
    Ok(())
}

async fn pull(session: &Session<'_>, args: &cli::Pull) -> Result {
    let platform = match &args.platform {
        Some(p) => Some(p.parse::<Platform>().map_err(|e| Failure::Usage(format!("--platform: {e}")))?),
        None => None,
    };
    let Resolved { reference, client, .. } = session.resolve(&args.reference, true).await?;
    let pulled = match &platform {
        Some(p) => client.pull_wasm_for_platform(&reference, p).await,
        None => client.pull_wasm(&reference).await,
    }
    .map_err(|e| Failure::at(&e, &reference))?;
    write_file(&args.output, &pulled.module)?;
    let kind = &pulled.classification.kind;
    if session.json() {
        print_json(&json!({
            "reference": reference.to_string(),
            "digest": pulled.manifest.digest(),
            "kind": kind.name(),
            "format": kind.format_id(),
            "size": pulled.module.len(),
            "file": args.output.display().to_string(),
        }));
    } else {
        session.info(format!(
            "pulled {} bytes of Wasm from {reference} ({kind:#}) into {}",
            pulled.module.len(),
            args.output.display()
        ));
    }
    Ok(())
}

async fn inspect_target(session: &Session<'_>, args: &cli::Inspect) -> Result {
    let path = Path::new(&args.target);
    let (name, record) = if path.is_file() {
        (args.target.clone(), inspect::local(path, args.config.as_deref())?)
    } else {
        if args.config.is_some() {
            return Err(Failure::Usage(format!(
                "`{}` is not a file: a CONFIG goes with a manifest file",
                args.target
            )));
        }
        let Resolved { reference, client, .. } = session.resolve(&args.target, true).await?;
        (reference.to_string(), inspect::remote(&client, &reference).await?)
    };
    if session.json() {
        print_json(&record);
    } else {
        print!("{}", inspect::render(&name, &record, session.verbose()));
    }
    Ok(())
}

/// A side of `wharf copy`: a registry reference or an OCI layout directory.
enum Place {
    Registry(Reference),
    Layout { dir: PathBuf, name: Option<String> },
}

impl Place {
    fn parse(text: &str, all: bool) -> Result<Self> {
        let Some(rest) = text.strip_prefix("oci:") else {
            let reference =
                if all { session::repository_reference(text)? } else { session::manifest_reference(text)? };
            return Ok(Self::Registry(reference));
        };
        // `oci:DIR:NAME`: the last `:` starts the name unless what follows it is a path.
        let (dir, name) = match rest.rsplit_once(':') {
            Some((dir, name)) if !name.contains('/') && !dir.is_empty() => (dir, Some(name.to_owned())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(Failure::Usage(format!("`{text}`: expected oci:DIR[:NAME]")));
        }
        Ok(Self::Layout { dir: dir.into(), name })
    }

    fn host(&self) -> Option<&str> {
        match self {
            Self::Registry(r) => Some(r.api_host()),
            Self::Layout { .. } => None,
        }
    }
}

async fn copy(session: &Session<'_>, args: &cli::Copy) -> Result {
    let source = Place::parse(&args.source, args.all)?;
    let destination = Place::parse(&args.destination, args.all)?;
    let hosts: Vec<&str> = [source.host(), destination.host()].into_iter().flatten().collect();
    let client = session.client(&hosts)?;
    let copied: Vec<(String, wharf_types::Digest)> = match (&source, &destination) {
        (Place::Registry(src), Place::Registry(dst)) if args.all => {
            let tags = client.tags(src).await.map_err(|e| Failure::at(&e, src))?;
            let mut copied = Vec::new();
            for tag in tags {
                let tag: wharf_types::Tag =
                    tag.parse().map_err(|e: wharf_types::Error| Failure::Failed(e.to_string()))?;
                let (from, to) = (src.clone().with_tag(tag.clone()), dst.clone().with_tag(tag));
                session.step(format!("copying {from} to {to}"));
                copied.push((to.to_string(), copy_one(&client, &from, &to).await?));
            }
            copied
        }
        (_, _) if args.all => {
            return Err(Failure::Usage("--all copies between registries, not OCI layouts".into()));
        }
        (Place::Registry(src), Place::Registry(dst)) => {
            vec![(dst.to_string(), copy_one(&client, src, dst).await?)]
        }
        (Place::Registry(src), Place::Layout { dir, name }) => {
            let name = name.clone().or_else(|| src.tag().map(ToString::to_string));
            let digest = client
                .export_layout_named(src, dir, name.as_deref())
                .await
                .map_err(|e| Failure::at(&e, src))?;
            vec![(args.destination.clone(), digest)]
        }
        (Place::Layout { dir, name }, Place::Registry(dst)) => {
            let digest =
                client.push_layout(dir, name.as_deref(), dst).await.map_err(|e| Failure::at(&e, dst))?;
            vec![(dst.to_string(), digest)]
        }
        (Place::Layout { .. }, Place::Layout { .. }) => {
            return Err(Failure::Usage("both sides are OCI layouts: copy the directory itself".into()));
        }
    };
    if session.json() {
        let list: Vec<_> = copied.iter().map(|(to, d)| json!({ "destination": to, "digest": d })).collect();
        print_json(&json!(list));
    } else {
        for (to, digest) in &copied {
            session.info(format!("copied {to}"));
            println!("{digest}");
        }
    }
    Ok(())
}

async fn copy_one(client: &Client, src: &Reference, dst: &Reference) -> Result<wharf_types::Digest> {
    client.copy(src, dst).await.map_err(|e| {
        // Which side failed is in the message (the URL or the answer); name both hosts.
        let host = if e.is_unauthorized() || e.is_denied() { dst.api_host() } else { src.api_host() };
        Failure::registry(&e, host)
    })
}

async fn tags(session: &Session<'_>, text: &str) -> Result {
    let reference = session::repository_reference(text)?;
    let client = session.client(&[reference.api_host()])?;
    let tags = client.tags(&reference).await.map_err(|e| Failure::at(&e, &reference))?;
    if session.json() {
        print_json(&json!(tags));
    } else {
        for tag in &tags {
            println!("{tag}");
        }
    }
    Ok(())
}

async fn versions(session: &Session<'_>, text: &str) -> Result {
    let Resolved { reference, package, client } = session.resolve(text, false).await?;
    let shown = format!("{}/{}", reference.registry(), reference.repository());
    let found = client.package_versions(&reference).await.map_err(|e| Failure::at(&e, &reference))?;
    let value = if let Some(value) = found {
        value
    } else {
        // Another registry (or no such repository): its semver tags, in order.
        let tags = client.tags(&reference).await.map_err(|e| Failure::at(&e, &reference))?;
        let (mut versions, mut other) = (Vec::new(), Vec::new());
        for tag in tags {
            match PackageVersion::of_tag(&tag) {
                Some(v) => versions.push((v, tag)),
                None => other.push(tag),
            }
        }
        versions.sort_by(|a, b| a.0.cmp_version(&b.0));
        other.sort();
        let versions: Vec<_> =
            versions.iter().map(|(v, tag)| json!({ "version": v.to_string(), "tag": tag })).collect();
        json!({
            "package": package.as_ref().map(|(name, _)| name.to_string()),
            "repository": reference.repository().as_str(),
            "versions": versions,
            "otherTags": other,
        })
    };
    if session.json() {
        print_json(&value);
    } else {
        let name =
            value["package"].as_str().map_or_else(String::new, |p| format!("{} ", inspect::clean(&json!(p))));
        session.info(format!("{name}at {shown}"));
        print!("{}", inspect::render_versions(&value, session.verbose()));
    }
    Ok(())
}

async fn wit(session: &Session<'_>, text: &str) -> Result {
    let path = Path::new(text);
    let record = if path.is_file() {
        inspect::local(path, None)?
    } else {
        let Resolved { reference, client, .. } = session.resolve(text, true).await?;
        inspect::remote(&client, &reference).await?
    };
    // The module of the artifact, or of an index's first Wasm child.
    let module = match &record["module"] {
        serde_json::Value::Null => record["wasmChildren"]
            .as_array()
            .and_then(|c| c.first())
            .map_or(&serde_json::Value::Null, |c| &c["module"]),
        module => module,
    };
    let (what, name, wit) = if module["package"].is_object() {
        let package = &module["package"];
        let version = package["version"].as_str().map_or_else(String::new, |v| format!("@{v}"));
        ("package", format!("{}{version}", package["name"].as_str().unwrap_or_default()), &package["wit"])
    } else if module["world"].is_object() {
        ("world", module["world"]["name"].as_str().unwrap_or_default().to_owned(), &module["world"]["wit"])
    } else {
        let why = match module["content"].as_str() {
            Some("core-module") => "a core module has no WIT".to_owned(),
            Some(_) => module["worldError"].as_str().map_or_else(
                || "its WIT could not be read".to_owned(),
                |e| format!("its WIT could not be read: {}", inspect::clean(&json!(e))),
            ),
            None => "it holds no WebAssembly".to_owned(),
        };
        return Err(Failure::Failed(format!("`{}` has no WIT: {why}", inspect::clean(&json!(text)))));
    };
    let wit = wit.as_str().unwrap_or_default();
    if session.json() {
        print_json(&json!({ "content": module["content"], what: name, "wit": wit }));
    } else {
        session.info(format!("WIT {what} {}", inspect::clean(&json!(name))));
        for line in wit.lines() {
            println!("{}", inspect::clean(&json!(line)));
        }
    }
    Ok(())
}

async fn catalog(session: &Session<'_>, host: &str) -> Result {
    let registry: Registry =
        host.parse().map_err(|e| Failure::Usage(format!("{e} (a registry is HOST[:PORT])")))?;
    let client = session.client(&[registry.api_host()])?;
    let names = client.catalog(&registry).await.map_err(|e| Failure::registry(&e, registry.api_host()))?;
    if session.json() {
        print_json(&json!(names));
    } else {
        for name in &names {
            println!("{name}");
        }
    }
    Ok(())
}

/// The registry `host` names, for a Wharf extension.
fn registry_of(host: &str) -> Result<Registry> {
    host.parse().map_err(|e| Failure::Usage(format!("{e} (a registry is HOST[:PORT])")))
}

/// `wharf token create|list|revoke`.
async fn token(session: &Session<'_>, command: &crate::cli::Token) -> Result {
    use crate::cli::Token;
    let host = match command {
        Token::Create(c) => &c.host,
        Token::List(h) => &h.host,
        Token::Revoke(r) => &r.host,
    };
    let registry = registry_of(host)?;
    let client = session.client(&[registry.api_host()])?;
    let failed = |e: wharf_client::Error| Failure::registry(&e, registry.api_host());
    let text = crate::inspect::clean;
    match command {
        Token::Create(c) => {
            let mut request = json!({
                "name": c.name,
                "grants": [{ "repositories": c.repositories, "actions": c.actions }],
            });
            if let Some(expires) = &c.expires {
                request["expiresIn"] = json!(expires);
            }
            let made = client.create_personal_token(&registry, &request).await.map_err(failed)?;
            if session.json() {
                print_json(&made);
            } else {
                println!("{}", text(&made["secret"]));
                session.info(format!(
                    "token {} ({}) made; its secret, above, is shown this once: sign in with your user name and it",
                    text(&made["id"]),
                    text(&made["name"])
                ));
            }
        }
        Token::List(_) => {
            let listed = client.personal_tokens(&registry).await.map_err(failed)?;
            if session.json() {
                print_json(&listed);
                return Ok(());
            }
            let tokens = listed["tokens"].as_array().map_or(&[][..], Vec::as_slice);
            if tokens.is_empty() {
                session.info("no tokens");
            }
            for t in tokens {
                let grants: Vec<String> = t["grants"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(|g| format!("{} on {}", text(&g["actions"]), text(&g["repositories"])))
                    .collect();
                println!(
                    "{}  {}  {}  expires {}{}",
                    text(&t["id"]),
                    text(&t["name"]),
                    grants.join("; "),
                    t["expires"].as_u64().map_or_else(|| "never".to_owned(), |e| e.to_string()),
                    if t["disabled"] == true { "  (disabled)" } else { "" },
                );
            }
        }
        Token::Revoke(r) => {
            client.revoke_personal_token(&registry, &r.id).await.map_err(failed)?;
            session.info(format!("token {} revoked", text(&json!(r.id))));
        }
    }
    Ok(())
}

async fn upstreams(session: &Session<'_>, host: &str) -> Result {
    let registry: Registry =
        host.parse().map_err(|e| Failure::Usage(format!("{e} (a registry is HOST[:PORT])")))?;
    let client = session.client(&[registry.api_host()])?;
    let found = client.upstreams(&registry).await.map_err(|e| Failure::registry(&e, registry.api_host()))?;
    let Some(value) = found else {
        return Err(Failure::Usage(format!("{host} has no upstreams API (it is not a Wharf)")));
    };
    if session.json() {
        print_json(&value);
        return Ok(());
    }
    let upstreams = value["upstreams"].as_array().map_or(&[][..], Vec::as_slice);
    if upstreams.is_empty() {
        println!("{host} mirrors no registry");
    }
    let text = crate::inspect::clean;
    for u in upstreams {
        println!(
            "{}  {}  as {}/…  tags checked after {}s{}{}",
            text(&u["name"]),
            text(&u["url"]),
            text(&u["prefix"]),
            u["tagTtlSeconds"].as_u64().unwrap_or_default(),
            if u["authenticated"] == true { ", with credentials" } else { "" },
            if u["allowPrivate"] == true { ", private addresses allowed" } else { "" },
        );
        for rule in u["sync"].as_array().map_or(&[][..], Vec::as_slice) {
            let tags: Vec<String> =
                rule["tags"].as_array().map_or(&[][..], Vec::as_slice).iter().map(text).collect();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let last = rule["lastQueued"]
                .as_u64()
                .map_or_else(|| "never".into(), |at| format!("{}s ago", now.saturating_sub(at)));
            println!(
                "  sync {} tags {} every {}s, last queued {last}",
                text(&rule["repository"]),
                tags.join(","),
                rule["everySeconds"].as_u64().unwrap_or_default()
            );
        }
        println!("  sync jobs waiting: {}", u["syncPending"].as_u64().unwrap_or_default());
    }
    Ok(())
}

/// The digest `reference` names (a HEAD for a tag).
async fn subject(client: &Client, reference: &Reference) -> Result<(wharf_types::Digest, MediaType, u64)> {
    let manifest = client.pull_manifest(reference).await.map_err(|e| Failure::at(&e, reference))?;
    Ok((manifest.digest().clone(), manifest.media_type().clone(), manifest.size()))
}

async fn referrers(session: &Session<'_>, args: &cli::Referrers) -> Result {
    let reference = session::manifest_reference(&args.reference)?;
    let client = session.client(&[reference.api_host()])?;
    let (digest, _, _) = subject(&client, &reference).await?;
    let found = client
        .referrers(&reference, &digest, args.artifact_type.as_deref())
        .await
        .map_err(|e| Failure::at(&e, &reference))?;
    if session.json() {
        print_json(&json!(found));
    } else {
        for d in &found {
            let artifact_type = d.artifact_type.as_ref().map_or("-", MediaType::as_str);
            println!("{} {} {}", d.digest, artifact_type, d.size);
        }
    }
    Ok(())
}

async fn attach(session: &Session<'_>, args: &cli::Attach) -> Result {
    let reference = session::manifest_reference(&args.reference)?;
    let artifact_type = media_type(&args.artifact_type, "--artifact-type")?;
    let layer_type = media_type(&args.media_type, "--media-type")?;
    let data = std::fs::read(&args.file).map_err(|e| Failure::file(&args.file, &e))?;
    let client = session.client(&[reference.api_host()])?;
    let registry = |e| Failure::at(&e, &reference);
    let (digest, subject_type, subject_size) = subject(&client, &reference).await?;
    let config = client.push_blob(&reference, &b"{}"[..]).await.map_err(registry)?;
    let size = data.len() as u64;
    let layer = client.push_blob(&reference, data).await.map_err(registry)?;
    let title = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("attachment");
    let mut image = ImageManifest::new(
        Descriptor::new(MediaType::OCI_EMPTY, config, 2),
        vec![Descriptor::new(layer_type, layer, size).with_annotation(Descriptor::TITLE, title)],
    )
    .with_artifact_type(artifact_type)
    .with_subject(Descriptor::new(subject_type, digest.clone(), subject_size));
    for text in &args.annotations {
        let (key, value) = annotation(text)?;
        image = image.with_annotation(key, value);
    }
    let manifest = Manifest::from_image(&image).map_err(|e| Failure::Failed(e.to_string()))?;
    let target = reference.clone().with_digest(manifest.digest().clone());
    let pushed = client.push_referrer(&target, &manifest).await.map_err(registry)?;
    if session.json() {
        print_json(&json!({ "digest": pushed, "subject": digest }));
    } else {
        session.info(format!("attached {} to {reference} ({digest})", args.file.display()));
        println!("{pushed}");
    }
    Ok(())
}

async fn delete(session: &Session<'_>, text: &str) -> Result {
    let reference = session::manifest_reference(text)?;
    let client = session.client(&[reference.api_host()])?;
    client.delete_manifest(&reference).await.map_err(|e| Failure::at(&e, &reference))?;
    if session.json() {
        print_json(&json!({ "deleted": reference.to_string() }));
    }
    session.info(format!("deleted {reference}"));
    Ok(())
}

async fn manifest(session: &Session<'_>, text: &str) -> Result {
    use std::io::Write as _;
    let reference = session::manifest_reference(text)?;
    let client = session.client(&[reference.api_host()])?;
    let manifest = client.pull_manifest(&reference).await.map_err(|e| Failure::at(&e, &reference))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(manifest.bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Failed(format!("stdout: {e}")))
}

async fn blob(session: &Session<'_>, args: &cli::Blob) -> Result {
    let reference = session::repository_reference(&args.reference)?;
    let Some(digest) = reference.digest().cloned() else {
        return Err(Failure::Usage(format!("`{}` names no blob: HOST/REPOSITORY@sha256:…", args.reference)));
    };
    let client = session.client(&[reference.api_host()])?;
    let registry = |e| Failure::at(&e, &reference);
    let Some(path) = &args.output else {
        let mut stdout = tokio::io::stdout();
        client.pull_blob(&reference, &digest, &mut stdout).await.map_err(registry)?;
        return Ok(());
    };
    let partial = partial_path(path);
    let mut file = tokio::fs::File::create(&partial).await.map_err(|e| Failure::file(&partial, &e))?;
    let pulled = client.pull_blob(&reference, &digest, &mut file).await;
    drop(file);
    match pulled {
        Ok(size) => {
            std::fs::rename(&partial, path).map_err(|e| Failure::file(path, &e))?;
            session.info(format!("wrote {size} bytes of {digest} to {}", path.display()));
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(registry(e))
        }
    }
}

fn man(dir: Option<&Path>) -> Result {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        return clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .map_err(|e| Failure::Failed(format!("stdout: {e}")));
    };
    std::fs::create_dir_all(dir).map_err(|e| Failure::file(dir, &e))?;
    let write = |name: &str, command: clap::Command| {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(command).render(&mut out).map_err(|e| Failure::file(&path, &e))?;
        std::fs::write(&path, out).map_err(|e| Failure::file(&path, &e))
    };
    for sub in command.get_subcommands() {
        let name = format!("wharf-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
    }
    write("wharf", command)
}
