//! The command line, as clap reads it: one definition for parsing, `--help`, the shell
//! completions and the man page.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Push, pull, inspect and copy WebAssembly — and any OCI artifact — in any OCI registry.
///
/// References are `HOST[:PORT]/REPOSITORY:TAG` or `…@sha256:DIGEST`. Registries on loopback
/// (`localhost`, `127.0.0.1`) speak plain HTTP, every other one HTTPS unless `--insecure`.
/// With `--registry HOST`, `NS:NAME[@VERSION]` names a Wasm package, found as `wkg` finds it.
/// Credentials come from `wharf login`, `--authfile`, or where podman and docker keep them.
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit status: 0 done, 1 failed, 2 usage (a bad argument or reference).\nResults go to stdout (`--json` for scripts), messages to stderr."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Talk plain HTTP to the registries this command names (as `wasm-to-oci --insecure`)
    #[arg(long, global = true)]
    pub(crate) insecure: bool,
    /// A containers-style certificate directory: its `*.crt` are trusted CAs, `client.cert`
    /// and `client.key` the client certificate (HTTPS even on loopback)
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cert_dir: Option<PathBuf>,
    /// The docker/podman auth file to read and write credentials in (default: as podman:
    /// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, …,
    /// `~/.docker/config.json`)
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) authfile: Option<PathBuf>,
    /// The registry of Wasm packages: with it, a TARGET without `/` is a package
    /// `NS:NAME[@VERSION]`, found where the registry's `/.well-known/wasm-pkg/registry.json`
    /// puts it (as `wkg` finds it)
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub(crate) registry: Option<String>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Say more (each step)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Say nothing but errors and the result
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Push a .wasm file: a module in the wasm-to-oci layout, a component in the CNCF layout
    #[command(
        after_help = "A version of a Wasm package (NS:NAME@VERSION with --registry, or a semver tag where the registry's discovery file puts a package) is pushed as `wkg publish` pushes it: the layer titled NAME.wasm, the version and the binary's metadata (description, licenses, source, homepage, authors) as annotations; a WIT package must declare that name and version.\n\nExamples:\n  wharf push hello.wasm localhost:5000/webassembly/helloworld:v1\n  wharf push component.wasm registry.example.com/wasm/app:1.0 --annotation org.opencontainers.image.source=https://example.com/app\n  wharf push greeter.wasm acme:greeter@0.1.0 --registry localhost:5000"
    )]
    Push(Push),
    /// Pull the Wasm module a reference names, from any layout, digest-verified
    #[command(
        after_help = "Examples:\n  wharf pull localhost:5000/webassembly/helloworld:v1 -o pulled.wasm\n  wharf pull ghcr.io/org/app:1.0 --platform wasi/wasm -o app.wasm"
    )]
    Pull(Pull),
    /// Show what an artifact is: layout, evidence, Harbor's view, the module or component
    #[command(
        after_help = "TARGET is a reference, a .wasm file, or a manifest file (with its config file).\n\nExamples:\n  wharf inspect localhost:5000/webassembly/helloworld:v1\n  wharf inspect hello.wasm --json\n  wharf inspect manifest.json config.json"
    )]
    Inspect(Inspect),
    /// Say whether an artifact's signatures satisfy the trust policies: the registry's, and a
    /// policy file's, verified here
    #[command(
        after_help = "The registry's verdict is a Wharf's: the signatures it verified (Sigstore bundles, cosign's .sig) and what its [[trust_policy]] tables say. With --policy, the signatures are read and verified here against the [trust] roots and logs and the [[trust_policy]] tables of FILE (the server's syntax, paths relative to FILE).\n\nExit status: 0 when every verdict lets it be pulled, 1 when one is `denied` or `unverified` or none is given.\n\nExamples:\n  wharf verify localhost:5000/prod/app:1.0\n  wharf verify registry.example.com/prod/app:1.0 --policy trust.toml --json"
    )]
    Verify(Verify),
    /// Store credentials for a registry (where docker, podman and skopeo read them)
    Login(Login),
    /// Remove the stored credentials of a registry
    Logout(Logout),
    /// Make, list and revoke your personal access tokens on a Wharf
    #[command(
        subcommand,
        after_help = "A personal access token signs in with your user name and does no more than its grants (and never more than you): give it to a script or a CI job instead of your password. Sign in first (`wharf login`); a token cannot make another.\n\nExamples:\n  wharf token create localhost:5000 --name ci --repository 'team/**' --actions pull --expires 30d\n  wharf token list localhost:5000\n  wharf token revoke localhost:5000 0f3a9c1e5b7d2a46"
    )]
    Token(Token),
    /// Copy an image or artifact between registries and OCI layout directories, digests kept
    #[command(
        after_help = "SRC and DST are references or OCI layout directories, `oci:DIR[:NAME]`.\n\nExamples:\n  wharf copy localhost:5000/app:v1 registry.example.com/app:v1\n  wharf copy localhost:5000/app:v1 oci:./app-layout:v1\n  wharf copy --all localhost:5000/app registry.example.com/app"
    )]
    Copy(Copy),
    /// List the tags of a repository
    Tags(Target),
    /// List a Wasm package's versions in semver order, with what each holds
    #[command(
        after_help = "On Wharf: each version's content, size, push time, exports, yanked state and dependencies, and what uses the package; on other registries: its semver tags.\n\nExamples:\n  wharf versions localhost:5000/pkgs/acme/greeter\n  wharf versions acme:greeter --registry localhost:5000"
    )]
    Versions(Versions),
    /// Print the WIT of a component (its world) or of a WIT package
    #[command(
        after_help = "Examples:\n  wharf wit acme:greeter@0.1.0 --registry localhost:5000\n  wharf wit localhost:5000/wasm/app:1.0\n  wharf wit component.wasm"
    )]
    Wit(Wit),
    /// List the repositories of a registry
    Catalog(Host),
    /// Show the registries a Wharf mirrors: prefix, time-to-live, sync rules and their state
    Upstreams(Host),
    /// List the artifacts that refer to a manifest (signatures, SBOMs, attestations)
    Referrers(Referrers),
    /// Attach a file to a manifest as a referrer (an artifact whose `subject` is it)
    #[command(
        after_help = "Example:\n  wharf attach localhost:5000/app:v1 sbom.spdx.json --artifact-type application/spdx+json"
    )]
    Attach(Attach),
    /// Delete a tag, or a manifest by digest
    Delete(Target),
    /// Print a manifest's exact bytes
    Manifest(Target),
    /// Write a blob (digest-verified) to a file, or to stdout
    Blob(Blob),
    /// Print a shell completion script
    #[command(
        after_help = "Example:\n  wharf completion bash > ~/.local/share/bash-completion/completions/wharf"
    )]
    Completion(Completion),
    /// Print the man page (roff), or write one per command into a directory
    #[command(after_help = "Example:\n  wharf man | man -l -")]
    Man(Man),
}

/// `wharf push`.
#[derive(Debug, Args)]
pub(crate) struct Push {
    /// The .wasm file (a core module or a component)
    pub(crate) file: PathBuf,
    /// Where to push it: HOST/REPOSITORY:TAG, or NS:NAME@VERSION with --registry
    pub(crate) reference: String,
    /// The layout (default: wasm-to-oci for a module, cncf-artifact for a component)
    #[arg(long, value_enum)]
    pub(crate) layout: Option<Layout>,
    /// A manifest annotation (repeatable)
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
    /// The manifest's artifactType
    #[arg(long, value_name = "MEDIA_TYPE")]
    pub(crate) artifact_type: Option<String>,
}

/// The Wasm layouts `wharf push` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Layout {
    /// The wasm-to-oci layout: config application/vnd.wasm.config.v1+json, one application/vnd.wasm.content.layer.v1+wasm layer
    WasmToOci,
    /// The CNCF TAG-Runtime artifact: config application/vnd.wasm.config.v0+json, one application/wasm layer
    CncfArtifact,
}

/// `wharf pull`.
#[derive(Debug, Args)]
pub(crate) struct Pull {
    /// What to pull: HOST/REPOSITORY:TAG or …@sha256:…, or NS:NAME[@VERSION] with --registry
    pub(crate) reference: String,
    /// The file to write the module to
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// For an index: the child of this platform (default: its WebAssembly child)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub(crate) platform: Option<String>,
}

/// `wharf inspect`.
#[derive(Debug, Args)]
pub(crate) struct Inspect {
    /// A reference, NS:NAME[@VERSION] with --registry, a .wasm file, or a manifest file
    pub(crate) target: String,
    /// The config blob of a manifest file
    pub(crate) config: Option<PathBuf>,
}

/// `wharf verify`.
#[derive(Debug, Args)]
pub(crate) struct Verify {
    /// HOST/REPOSITORY:TAG or …@sha256:…, or NS:NAME[@VERSION] with --registry
    pub(crate) reference: String,
    /// A TOML file with `[trust]` and `[[trust_policy]]` tables: verify here too
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// `wharf login`.
#[derive(Debug, Args)]
pub(crate) struct Login {
    /// The registry: HOST[:PORT]
    pub(crate) host: String,
    /// The user name (asked for when missing)
    #[arg(short, long)]
    pub(crate) username: Option<String>,
    /// Read the password from stdin (else it is asked for on the terminal)
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

/// `wharf logout`.
#[derive(Debug, Args)]
pub(crate) struct Logout {
    /// The registry: HOST[:PORT]
    pub(crate) host: String,
}

/// `wharf token`.
#[derive(Debug, Subcommand)]
pub(crate) enum Token {
    /// Make a token; its secret is printed this once
    Create(TokenCreate),
    /// List your tokens (never their secrets)
    List(Host),
    /// Revoke a token by its id
    Revoke(TokenRevoke),
}

/// `wharf token create`.
#[derive(Debug, Args)]
pub(crate) struct TokenCreate {
    /// The registry: HOST[:PORT]
    pub(crate) host: String,
    /// A label: 1 to 64 lowercase letters, digits, `.`, `_` and `-`
    #[arg(long)]
    pub(crate) name: String,
    /// A repository pattern it may act on (`*` within a component, `**` any depth; repeatable)
    #[arg(long = "repository", short = 'r', value_name = "PATTERN", required = true)]
    pub(crate) repositories: Vec<String>,
    /// What it may do there: some of pull, push, delete
    #[arg(long, value_delimiter = ',', default_value = "pull")]
    pub(crate) actions: Vec<String>,
    /// How long it lives (`30d`, `12h`, `never`) [default: the registry's, 30 days on Wharf]
    #[arg(long, value_name = "DURATION")]
    pub(crate) expires: Option<String>,
}

/// `wharf token revoke`.
#[derive(Debug, Args)]
pub(crate) struct TokenRevoke {
    /// The registry: HOST[:PORT]
    pub(crate) host: String,
    /// The token's id (from `wharf token list`)
    pub(crate) id: String,
}

/// `wharf copy`.
#[derive(Debug, Args)]
pub(crate) struct Copy {
    /// From: a reference, or oci:DIR[:NAME]
    pub(crate) source: String,
    /// To: a reference, or oci:DIR[:NAME]
    pub(crate) destination: String,
    /// Copy every tag of SRC's repository into DST's repository (registries only)
    #[arg(long)]
    pub(crate) all: bool,
}

/// A command on one reference (or repository).
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// HOST/REPOSITORY[:TAG|@DIGEST]
    pub(crate) reference: String,
}

/// `wharf versions`.
#[derive(Debug, Args)]
pub(crate) struct Versions {
    /// HOST/REPOSITORY, or NS:NAME with --registry
    pub(crate) target: String,
}

/// `wharf wit`.
#[derive(Debug, Args)]
pub(crate) struct Wit {
    /// HOST/REPOSITORY:TAG or …@sha256:…, NS:NAME[@VERSION] with --registry (no version: the
    /// newest), or a .wasm file
    pub(crate) target: String,
}

/// A command on a registry.
#[derive(Debug, Args)]
pub(crate) struct Host {
    /// The registry: HOST[:PORT]
    pub(crate) host: String,
}

/// `wharf referrers`.
#[derive(Debug, Args)]
pub(crate) struct Referrers {
    /// The manifest: HOST/REPOSITORY:TAG or …@sha256:…
    pub(crate) reference: String,
    /// Only the referrers of this artifactType
    #[arg(long, value_name = "MEDIA_TYPE")]
    pub(crate) artifact_type: Option<String>,
}

/// `wharf attach`.
#[derive(Debug, Args)]
pub(crate) struct Attach {
    /// The manifest to attach to: HOST/REPOSITORY:TAG or …@sha256:…
    pub(crate) reference: String,
    /// The file to attach
    pub(crate) file: PathBuf,
    /// What the attached artifact is (its artifactType)
    #[arg(long, value_name = "MEDIA_TYPE")]
    pub(crate) artifact_type: String,
    /// The media type of the file's layer
    #[arg(long, value_name = "MEDIA_TYPE", default_value = "application/octet-stream")]
    pub(crate) media_type: String,
    /// A manifest annotation (repeatable)
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
}

/// `wharf blob`.
#[derive(Debug, Args)]
pub(crate) struct Blob {
    /// The blob: HOST/REPOSITORY@sha256:…
    pub(crate) reference: String,
    /// The file to write (default: stdout)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// `wharf completion`.
#[derive(Debug, Args)]
pub(crate) struct Completion {
    /// The shell
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `wharf man`.
#[derive(Debug, Args)]
pub(crate) struct Man {
    /// Write wharf.1 and one page per command (wharf-push.1, …) into this directory
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}
