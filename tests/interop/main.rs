//! The interop suite: real third-party clients against `wharf-server` (fs storage, loopback),
//! the Harbor article's flows end to end.
//!
//! 1. wasm-to-oci: a module made by `wat2wasm` pushed by oras-py and by the `wasm_push`
//!    example, each pulled back by both, byte-exact; the artifact API says wasm-to-oci, `WASM`.
//! 2. Annotated images: buildah builds `FROM scratch` images annotated `run.oci.handler=wasm`
//!    and `module.wasm.image/variant=compat` and pushes them; umoci makes one more that skopeo
//!    pushes; all classified F2 / `WASM`; `skopeo copy` to an OCI layout keeps the digest;
//!    `pull_wasm` extracts the module from the tar layer.
//! 3. podman builds a `wasi/wasm` image and pushes a manifest list with it (`--format oci`);
//!    the server reports the platform image and the Wasm index; `skopeo copy --all` keeps the
//!    index digest.
//! 4. A CNCF v0 artifact pushed by `wharf-client`, pulled by oras-py byte-exact.
//! 5. skopeo `list-tags`, `inspect --raw`, `delete`; an oras-py referrer listed by the
//!    referrers API.
//! 6. The modules pulled in flows 1 and 2 run under wasmtime (PyPI) and print their greeting.
//! 7. With TLS (a CA made here) and the issue-14 access rules: `skopeo login --cert-dir`,
//!    `buildah push --cert-dir` (the article's command), `podman login`/`pull`/`push`, oras-py
//!    with credentials, and the `wasm_push`/`wasm_pull` examples reading the auth file that
//!    `podman login` wrote; pushes by a reader are refused with the registry's message in the
//!    tool's output.
//! 8. Components: `wasm-tools` builds one from WAT, `wkg` pushes and pulls it (see the flow).
//! 9. The `wharf` command line: the article's flow (`wharf push`, `wharf pull -o`, byte-exact)
//!    for a module and a component against `wharf-server` and against docker-registry 2.8.2;
//!    `wharf copy` of the buildah image between the two keeps its digest; `wharf login`
//!    against distribution with htpasswd writes the auth file skopeo then uses, and
//!    `wharf logout` takes it away.
//!
//! 10. The web page (`tests/web/browser.mjs`: playwright-core driving Debian's chromium, axe-core
//!     on every page): with flow 7's users and rules, anonymous visitors see only `public/**`;
//!     the wasm-to-oci artifact's overview and exports, the buildah image's annotation and build
//!     history, the `wkg` component's WIT world; a hostile manifest's strings shown as text with
//!     nothing run; bob (a reader) refused a delete, alice deleting a tag through the page;
//!     screenshots of each page in `target/web-screenshots/`.
//!
//! 11. S3 (Garage) with `redirect=true`, flow 7's users and rules: blob GETs answer `307` to
//!     presigned URLs on the engine; `wharf-client`, oras-py and skopeo pull through them with
//!     credentials, byte-exact and digest-verified, and (seen by a relay in front of the
//!     engine) never send those credentials to the engine.
//!
//! 12. Wasm packages with `wkg` 0.16.1 and a config naming Wharf only as `default_registry`:
//!     discovery (`/.well-known/wasm-pkg/registry.json`, prefix `pkgs/`), `wkg wit build` +
//!     `wkg publish` of a WIT package's versions, the server's `[[versioning]]` refusing a
//!     breaking 0.1.2 and an overwrite of 0.1.0 (wkg's own check skipped), a second project's
//!     `wkg wit fetch`/`build`, `wkg get` byte-exact, the versions API and dependents.
//!
//! 13. A pull-through mirror: the `wharf-server` binary with two `[[upstream]]`s — docker-registry
//!     2.8.2 (plain HTTP) and a second Wharf (TLS with its own CA, Basic credentials from the
//!     environment). skopeo through each prefix, podman with a registries.conf mirror, `ctr`
//!     (Debian's containerd, started here) with a `hosts.toml` mirror — images named as
//!     upstream, the upstreams' digests; 20 concurrent pulls of an uncached 64 MiB layer are one
//!     GET in distribution's access log; one platform of a two-platform index fetches only that
//!     platform's layer; `wkg get` of a WASI package through the mirror's discovery prefix. Then
//!     distribution stops: everything pulled before still pulls (by tag, by digest, podman,
//!     ctr, wkg), a never-pulled tag fails with 502.
//!
//! 15. Webhooks: `wkg oci push` of a component arrives at a receiver that verifies with PyPI's
//!     `standardwebhooks` and parses with the CloudEvents SDK, with the component's Wasm fields.
//! 16. A robot account limited to pushing `ci/app`: podman, skopeo, oras-py and `wkg oci push`
//!     push with its secret; its push to `ci/other` and its delete are refused.
//!
//! Needs skopeo, buildah, podman, umoci, wat2wasm (wabt), docker-registry, containerd and a Python with `oras` and
//! `wasmtime` (`WHARF_PYTHON`, else `.venv/bin/python` in the workspace): `.ci/run` installs
//! them all. A missing tool skips the suite, or fails it when `WHARF_REQUIRE_ALL=1`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use wharf::client::{Client, ClientBuilder, WasmLayout};
use wharf::types::{Digest, Reference};

const WAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wat");
const CLIENTS_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/clients.py");
const GREETING: &str = "hello from wharf\n";
const CONTAINERFILE: &str = "FROM scratch\nCOPY helloworld.wasm /\nENTRYPOINT [\"/helloworld.wasm\"]\n";

#[path = "../../crates/server/tests/common/pki.rs"]
mod pki;

#[path = "../../crates/client/tests/support/registry.rs"]
mod registry;

/// Flow 7's access rules: issue 14's configuration (`listen` and `storage` are the test's).
const ACCESS: &str = include_str!("../data/auth/wharf.toml");

/// Flow 8's Wasm policy.
const POLICY: &str = "[[wasm_policy]]\nname = \"no-environment\"\nrepositories = [\"policy-denied/**\"]\ndeny_imports = [\"wasi:cli/environment\"]\n\n[packages]\nnamespace_prefix = \"pkgs/\"\n\n[[versioning]]\nname = \"packages\"\nrepositories = [\"pkgs/**\"]\nimmutable_tags = [\"semver\"]\nsemver_only = true\ncompatible = true\n";

/// The component of flow 8: imports `wasi:cli/environment@0.2.0`, exports `wasi:cli/run@0.2.0`
/// and an HTTP handler.
const COMPONENT_WAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wat");

/// Flows run one at a time: the c/image tools share caches under `/var/lib/containers`.
static SERIAL: Mutex<()> = Mutex::new(());

/// One flow's world: a registry on loopback, a scratch folder with the module, and the
/// environment the container tools run in (their own storage, an empty auth file).
struct World {
    host: String,
    client: Client,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    python: PathBuf,
    module: Vec<u8>,
    /// `https` with TLS (flow 7), `http` otherwise.
    scheme: &'static str,
    /// Whether access control is on (flow 7's users and rules); the test acts as `admin`.
    secure: bool,
    /// The containers `--cert-dir` of the registry (its CA), with TLS.
    certs: Option<String>,
    _server: wharf::server::ServerHandle,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl World {
    /// Starts a registry and makes the module with `wat2wasm`; `None` when a tool is missing.
    fn start(flow: &str) -> Option<Self> {
        Self::start_with(flow, false)
    }

    /// [`start`](Self::start), with TLS on `localhost` and flow 7's users and rules when
    /// `secure`.
    fn start_with(flow: &str, secure: bool) -> Option<Self> {
        Self::start_mode(flow, secure, secure)
    }

    /// [`start`](Self::start) with TLS or not, and flow 7's users and rules or not.
    fn start_mode(flow: &str, tls: bool, secure: bool) -> Option<Self> {
        Self::start_on(flow, tls, secure, None, "")
    }

    /// [`start_mode`](Self::start_mode) on `storage` (a `--storage` value; fs in the scratch
    /// folder without it), with `more` configuration after flow 7's users and rules.
    fn start_on(flow: &str, tls: bool, secure: bool, storage: Option<&str>, more: &str) -> Option<Self> {
        let python = std::env::var_os("WHARF_PYTHON")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"), PathBuf::from);
        let mut missing = absent(&["skopeo", "buildah", "podman", "umoci", "wat2wasm"]);
        let python_ok = Command::new(&python)
            .args(["-c", "import oras.client, wasmtime"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !python_ok {
            missing.push(format!("{} with oras and wasmtime", python.display()));
        }
        if !runs(flow, &missing) {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().expect("tempdir");
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let access = secure.then(|| {
            if tls {
                std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
                pki::Pki::new(&dir.path().join("tls"));
            }
            let mut users = wharf_auth::Htpasswd::default();
            for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw"), ("admin", "admin-pw")] {
                users.set(user, password, 4).expect("hash");
            }
            std::fs::write(dir.path().join("users.htpasswd"), users.render()).expect("htpasswd");
            wharf::server::config::FileConfig::parse(&format!("{ACCESS}{more}")).expect("config")
        });
        let (server, host) = rt.block_on(async {
            let storage: Arc<dyn wharf::store::Storage> = match storage {
                Some(spec) => {
                    spec.parse::<wharf::server::StorageSpec>().expect("spec").open().await.expect("storage")
                }
                None => {
                    Arc::new(wharf::store::FsStore::open(dir.path().join("registry")).await.expect("store"))
                }
            };
            // Flow 8's policy: no component importing `wasi:cli/environment` under `policy-denied/`.
            let policy: wharf::server::config::FileConfig =
                wharf::server::config::FileConfig::parse(POLICY).expect("policy config");
            let policies =
                wharf::server::wasm_policy::WasmPolicies::from_config(&policy.wasm_policy).expect("policies");
            let versioning = policy.versioning().expect("versioning");
            let registry =
                wharf::server::Wharf::new(storage).with_wasm_policies(policies).with_versioning(versioning);
            let mut server = wharf::server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry)
                .await
                .expect("bind");
            let mut host = server.local_addr().to_string();
            if let Some(config) = &access {
                server =
                    server.with_access(config.access(dir.path(), None).expect("access").expect("[auth]"));
                if tls {
                    server = server.with_tls(config.tls(dir.path()).expect("tls").expect("[tls]"));
                    host = format!("localhost:{}", server.local_addr().port());
                }
            }
            (server.spawn(), host)
        });
        let certs = tls.then(|| {
            let certs = dir.path().join("certs.d").join(&host);
            std::fs::create_dir_all(&certs).expect("mkdir");
            std::fs::copy(dir.path().join("tls/ca.crt"), certs.join("ca.crt")).expect("ca.crt");
            certs.to_str().expect("utf-8").to_owned()
        });
        let mut builder = match &certs {
            None => ClientBuilder::new().with_insecure_host(&host),
            Some(certs) => ClientBuilder::new().with_cert_dir(&host, certs).with_loopback_plain_http(false),
        };
        if secure {
            builder = builder.with_credentials(&host, wharf::client::Credentials::basic("admin", "admin-pw"));
        }
        let client = builder.build().expect("client");
        let http = if tls {
            let ca = std::fs::read(dir.path().join("tls/ca.crt")).expect("ca");
            reqwest::Client::builder()
                .tls_certs_merge([reqwest::Certificate::from_pem(&ca).expect("ca")])
                .build()
                .expect("client")
        } else {
            reqwest::Client::new()
        };
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/cs-run\"\ngraphroot = \"{0}/cs-graph\"\n",
                dir.path().display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(dir.path().join("auth.json"), "{}").expect("auth.json");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp");
        let mut world = World {
            host,
            client,
            http,
            rt,
            dir,
            python,
            module: Vec::new(),
            scheme: if tls { "https" } else { "http" },
            secure,
            certs,
            _server: server,
            _serial: serial,
        };
        let wasm = world.path("helloworld.wasm");
        world.run("wat2wasm", &[WAT, "-o", &wasm]);
        world.module = std::fs::read(&wasm).expect("module");
        assert_eq!(&world.module[..4], b"\0asm");
        Some(world)
    }

    /// The build context: the module and a `FROM scratch` Containerfile that copies it in.
    fn build_context(&self) -> String {
        std::fs::write(self.path("Containerfile"), CONTAINERFILE).expect("Containerfile");
        self.path("")
    }

    /// `buildah build` of the build context as `local`, annotated `annotation` (`key=value`),
    /// with timestamps at 0 so the digest depends on the content alone.
    fn build_image(&self, annotation: &str, local: &str) {
        let context = self.build_context();
        self.run(
            "buildah",
            &["build", "--timestamp", "0", "--annotation", annotation, "-t", local, &context],
        );
    }

    /// `buildah push` of `local` to `target` (`host/repository:tag`) over plain HTTP; the digest
    /// buildah reports.
    fn buildah_push(&self, local: &str, target: &str) -> Digest {
        let digest_file = self.path("buildah.digest");
        self.run(
            "buildah",
            &[
                "push",
                "--tls-verify=false",
                "--digestfile",
                &digest_file,
                local,
                &format!("docker://{target}"),
            ],
        );
        digest_of(&std::fs::read_to_string(&digest_file).expect("digest file"))
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("utf-8 path").to_owned()
    }

    fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.host).parse().expect("reference")
    }

    /// Runs a tool in this world's environment (with `env` besides), to whatever end.
    fn output(&self, program: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let program = program.as_ref().display().to_string();
        Command::new(&program)
            .args(args)
            .current_dir(self.dir.path())
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("TMPDIR", self.path("tmp"))
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Runs a tool to success in this world's environment and returns its stdout.
    fn run(&self, program: impl AsRef<Path>, args: &[&str]) -> String {
        self.run_env(program, args, &[])
    }

    /// [`run`](Self::run) with more environment variables.
    fn run_env(&self, program: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> String {
        let program = program.as_ref().display().to_string();
        let output = self.output(&program, args, env);
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// `skopeo copy -q <flags> <from> <to>`.
    fn skopeo_copy(&self, flags: &[&str], from: &str, to: &str) {
        let mut args = vec!["copy", "-q"];
        args.extend_from_slice(flags);
        args.extend([from, to]);
        self.run("skopeo", &args);
    }

    fn python(&self, args: &[&str]) -> String {
        self.python_env(args, &[])
    }

    fn python_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut all = vec![CLIENTS_PY];
        all.extend_from_slice(args);
        self.run_env(&self.python, &all, env)
    }

    /// Runs one of the root package's examples (built by `cargo test`; built here otherwise).
    fn example(&self, name: &str, args: &[&str]) -> String {
        self.run(Self::example_path(name), args)
    }

    fn example_path(name: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("test binary");
        let path = exe.parent().and_then(Path::parent).expect("target dir").join("examples").join(name);
        if !path.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--example", name])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo");
            assert!(status.success(), "cargo build --example {name}");
        }
        path
    }

    /// The `wharf` binary (built by `cargo test --workspace`; built here otherwise).
    fn cli_path() -> PathBuf {
        Self::bin_path("wharf-cli", "wharf")
    }

    /// A binary of the workspace (built by `cargo test --workspace`; built here otherwise).
    fn bin_path(package: &str, name: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("test binary");
        let path = exe.parent().and_then(Path::parent).expect("target dir").join(name);
        if !path.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", package, "--bin", name])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo");
            assert!(status.success(), "cargo build -p {package}");
        }
        path
    }

    /// Runs a module under wasmtime and checks its greeting.
    fn assert_runs(&self, module: &str) {
        assert_eq!(self.python(&["run-wasm", module]), GREETING, "{module} under wasmtime");
    }

    /// `GET` a registry path as JSON.
    fn get_json(&self, path: &str) -> Value {
        self.rt.block_on(async {
            let mut request = self.http.get(format!("{}://{}{path}", self.scheme, self.host));
            if self.secure {
                request = request.basic_auth("admin", Some("admin-pw"));
            }
            let response = request.send().await.expect("GET");
            assert!(response.status().is_success(), "GET {path}: {}", response.status());
            response.json().await.expect("JSON")
        })
    }

    /// The server's Wasm view of `repository` at `reference` (tag or digest), once the
    /// job reading its modules has run (at most ten seconds).
    fn artifact(&self, repository: &str, reference: &str) -> Value {
        let path = format!("/v2/{repository}/_wharf/artifacts/{reference}");
        for _ in 0..200 {
            let artifact = self.get_json(&path);
            if artifact["inspection"]["status"] != "pending" {
                return artifact;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{path}: the module inspection is still pending after ten seconds");
    }

    /// The module info the server found for an artifact holding the greeting module.
    fn assert_module(&self, artifact: &Value) {
        assert_eq!(artifact["inspection"]["status"], "done", "{artifact:#}");
        assert_eq!(artifact["module"]["header"]["kind"], "core-module", "{artifact:#}");
        assert_eq!(artifact["module"]["wasi"], "preview1", "{artifact:#}");
        assert_eq!(artifact["module"]["wasiVersion"], "preview1", "{artifact:#}");
        assert_eq!(artifact["module"]["size"], self.module.len(), "{artifact:#}");
        assert!(artifact["module"]["imports"].as_array().is_some_and(|i| !i.is_empty()), "{artifact:#}");
        assert!(artifact["module"]["exports"].as_array().is_some_and(|e| !e.is_empty()), "{artifact:#}");
        assert_eq!(artifact["module"]["validation"]["valid"], true, "{artifact:#}");
    }

    /// The digest the registry serves for `reference`.
    fn digest(&self, reference: &Reference) -> Digest {
        self.rt.block_on(self.client.resolve(reference)).expect("resolve").0
    }
}

/// The digest and bytes of the manifest an OCI layout's `index.json` names first.
/// The programs of `tools` this machine lacks (each asked for `--version`).
fn absent(tools: &[&str]) -> Vec<String> {
    tools
        .iter()
        .filter(|t| Command::new(t).arg("--version").output().is_err())
        .map(|t| (*t).to_owned())
        .collect()
}

/// Whether a flow runs: one with something `missing` is skipped (said on stderr), and fails
/// instead under `WHARF_REQUIRE_ALL=1` (`.ci/run` installs everything).
fn runs(flow: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("WHARF_REQUIRE_ALL").map_or(true, |v| v != "1"),
        "{flow}: missing {missing:?} and WHARF_REQUIRE_ALL=1 (.ci/run installs them)"
    );
    eprintln!("SKIPPED {flow}: missing {}", missing.join(", "));
    false
}

fn layout_manifest(layout: &str) -> (Digest, Vec<u8>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(Path::new(layout).join("index.json")).expect("index.json"))
            .expect("index JSON");
    let digest: Digest = index["manifests"][0]["digest"].as_str().expect("digest").parse().expect("digest");
    let bytes = std::fs::read(Path::new(layout).join("blobs/sha256").join(digest.encoded())).expect("blob");
    assert_eq!(Digest::sha256(&bytes), digest, "the layout's manifest blob matches its digest");
    (digest, bytes)
}

fn digest_of(output: &str) -> Digest {
    output.trim().parse().unwrap_or_else(|e| panic!("{output:?} is not a digest: {e}"))
}

/// The image-manifest fields every Wasm check reads.
fn assert_wasm(artifact: &Value, kind: &str, harbor: &str, digest: &Digest) {
    assert_eq!(artifact["digest"], digest.to_string(), "{artifact:#}");
    assert_eq!(artifact["wasm"], true, "{artifact:#}");
    assert_eq!(artifact["kind"], kind, "{artifact:#}");
    assert_eq!(artifact["harborType"], harbor, "{artifact:#}");
}

#[test]
fn flow1_wasm_to_oci_with_oras_py_and_the_examples() {
    let Some(w) = World::start("flow 1") else { return };
    let wasm = w.path("helloworld.wasm");
    let by_oras = format!("{}/webassembly/helloworld:oras", w.host);
    let by_example = format!("{}/webassembly/helloworld:wharf", w.host);
    let oras_digest = digest_of(&w.python(&["push-wasm", &by_oras, &wasm]));
    w.example("wasm_push", &[&wasm, &by_example, "--insecure"]);

    for (tag, digest) in
        [("oras", oras_digest.clone()), ("wharf", w.digest(&by_example.parse().expect("ref")))]
    {
        let artifact = w.artifact("webassembly/helloworld", tag);
        assert_wasm(&artifact, "wasm-to-oci", "WASM", &digest);
        assert_eq!(artifact["format"], "F1");
        w.assert_module(&artifact);
    }
    assert_eq!(w.digest(&by_oras.parse().expect("ref")), oras_digest);

    // Each tool pulls what both pushed.
    for target in [&by_oras, &by_example] {
        let tag = target.rsplit(':').next().expect("tag");
        let out = w.path(&format!("oras-pulled-{tag}"));
        let pulled = w.python(&["pull", target, &out]);
        assert_eq!(pulled.trim(), format!("{out}/helloworld.wasm"), "oras-py pulls the titled layer");
        assert_eq!(std::fs::read(pulled.trim()).expect("pulled"), w.module, "oras-py pull of {target}");
        w.assert_runs(pulled.trim());

        let out = w.path(&format!("example-pulled-{tag}.wasm"));
        w.example("wasm_pull", &[target, "-o", &out, "--insecure"]);
        assert_eq!(std::fs::read(&out).expect("pulled"), w.module, "wasm_pull of {target}");
        w.assert_runs(&out);
    }
}

#[test]
fn flow2_annotated_images_from_buildah_and_umoci() {
    let Some(w) = World::start("flow 2") else { return };
    let mut pushed = Vec::new();
    for (tag, annotation) in
        [("handler", "run.oci.handler=wasm"), ("compat", "module.wasm.image/variant=compat")]
    {
        let local = format!("localhost/helloworld:{tag}");
        w.build_image(annotation, &local);
        let target = format!("{}/wasm/helloworld:{tag}", w.host);
        let digest = w.buildah_push(&local, &target);
        let (key, value) = annotation.split_once('=').expect("key=value");
        let artifact = w.artifact("wasm/helloworld", tag);
        assert_wasm(&artifact, "compat-annotated", "WASM", &digest);
        assert_eq!(artifact["format"], "F2");
        assert_eq!(artifact["annotations"][key], value, "{artifact:#}");
        // The module, read out of buildah's tar layer.
        w.assert_module(&artifact);
        pushed.push((target, digest));
    }

    // umoci makes an OCI layout (wasi/wasm, annotated); skopeo pushes it keeping its digest.
    let layout = w.path("umoci");
    let bundle = w.path("bundle");
    let image = format!("{layout}:v1");
    w.run("umoci", &["init", "--layout", &layout]);
    w.run("umoci", &["new", "--image", &image]);
    w.run("umoci", &["unpack", "--image", &image, &bundle]);
    std::fs::write(Path::new(&bundle).join("rootfs/helloworld.wasm"), &w.module).expect("copy module");
    w.run("umoci", &["repack", "--image", &image, &bundle]);
    w.run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--os",
            "wasi",
            "--architecture",
            "wasm",
            "--config.entrypoint",
            "/helloworld.wasm",
            "--manifest.annotation",
            "run.oci.handler=wasm",
        ],
    );
    let (umoci_digest, _) = layout_manifest(&layout);
    let target = format!("{}/wasm/helloworld:umoci", w.host);
    w.skopeo_copy(
        &["--dest-tls-verify=false", "--preserve-digests"],
        &format!("oci:{image}"),
        &format!("docker://{target}"),
    );
    let artifact = w.artifact("wasm/helloworld", "umoci");
    assert_wasm(&artifact, "compat-annotated", "WASM", &umoci_digest);
    assert_eq!(artifact["platform"]["os"], "wasi", "{artifact:#}");
    w.assert_module(&artifact);
    pushed.push((target, umoci_digest));

    for (target, digest) in &pushed {
        // skopeo brings the image back to an OCI layout under the same digest.
        let tag = target.rsplit(':').next().expect("tag");
        let layout = w.path(&format!("layout-{tag}"));
        w.skopeo_copy(
            &["--src-tls-verify=false"],
            &format!("docker://{target}"),
            &format!("oci:{layout}:{tag}"),
        );
        assert_eq!(&layout_manifest(&layout).0, digest, "skopeo copy of {target}");
        // wharf-client finds the module in the tar layer, and it runs.
        let reference: Reference = target.parse().expect("reference");
        let pulled = w.rt.block_on(w.client.pull_wasm(&reference)).expect("pull_wasm");
        assert_eq!(pulled.manifest.digest(), digest);
        assert_eq!(pulled.module.as_ref(), &w.module[..], "pull_wasm of {target}");
        let out = w.path(&format!("pulled-{tag}.wasm"));
        std::fs::write(&out, &pulled.module).expect("write");
        w.assert_runs(&out);
    }
}

#[test]
fn flow3_wasi_platform_index_from_podman() {
    let Some(w) = World::start("flow 3") else { return };
    let context = w.build_context();
    let podman = |args: &[&str]| {
        let tmp = w.path("tmp");
        let mut all = vec!["--tmpdir", &tmp];
        all.extend_from_slice(args);
        w.run("podman", &all)
    };
    for (platform, tag) in [("wasi/wasm", "localhost/hw:wasi"), ("linux/amd64", "localhost/hw:linux")] {
        podman(&["build", "--no-cache", "--timestamp", "0", "--platform", platform, "-t", tag, &context]);
    }
    podman(&["manifest", "create", "localhost/hw:list"]);
    podman(&["manifest", "add", "localhost/hw:list", "containers-storage:localhost/hw:wasi"]);
    podman(&["manifest", "add", "localhost/hw:list", "containers-storage:localhost/hw:linux"]);
    let target = format!("{}/wasm/helloworld:index", w.host);
    let digest_file = w.path("index.digest");
    podman(&[
        "manifest",
        "push",
        "--all",
        "--format",
        "oci",
        "--tls-verify=false",
        "--digestfile",
        &digest_file,
        "localhost/hw:list",
        &format!("docker://{target}"),
    ]);
    let index_digest = digest_of(&std::fs::read_to_string(&digest_file).expect("digest file"));
    assert_eq!(w.digest(&target.parse().expect("ref")), index_digest);

    let index = w.artifact("wasm/helloworld", "index");
    assert_wasm(&index, "wasm-index", "IMAGE", &index_digest);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let children = index["wasmChildren"].as_array().expect("wasmChildren");
    assert_eq!(children.len(), 1, "{index:#}");
    let child = &children[0]["descriptor"];
    assert_eq!(child["platform"]["os"], "wasi");
    assert_eq!(child["platform"]["architecture"], "wasm");
    let child_digest: Digest = child["digest"].as_str().expect("digest").parse().expect("digest");
    let image = w.artifact("wasm/helloworld", child_digest.as_str());
    // Harbor keys on annotations only: an unannotated `wasi/wasm` image is an `IMAGE` there.
    assert_wasm(&image, "platform-image", "IMAGE", &child_digest);
    assert_eq!(image["format"], "F3");
    w.assert_module(&image);
    // The index shows its Wasm child's module.
    let index = w.artifact("wasm/helloworld", "index");
    assert_eq!(index["wasmChildren"][0]["module"], image["module"], "{index:#}");
    // `wharf pull` of the index takes its `wasi/wasm` child (by default, or by `--platform`)
    // and reads the module out of its tar layer; `wharf inspect` shows the child's module too.
    let wharf = World::cli_path();
    for platform in [&[][..], &["--platform", "wasi/wasm"][..]] {
        let out = w.path("from-index.wasm");
        let mut args = vec!["pull", &target, "-o", &out];
        args.extend_from_slice(platform);
        w.run(&wharf, &args);
        assert_eq!(std::fs::read(&out).expect("pulled"), w.module, "wharf pull {platform:?}");
    }
    let seen: Value = serde_json::from_str(&w.run(&wharf, &["inspect", &target, "--json"])).expect("JSON");
    assert_eq!(seen["wasmChildren"][0]["module"], image["module"], "{seen:#}");
    let repositories = w.get_json("/v2/_wharf/repositories");
    let repo = &repositories["repositories"][0];
    assert_eq!(repo["name"], "wasm/helloworld");
    assert_eq!(repo["byKind"]["wasm-index"], 1, "{repositories:#}");

    // `skopeo copy --all` keeps the index digest, to a layout and to another repository.
    let layout = w.path("index-layout");
    w.skopeo_copy(
        &["--all", "--src-tls-verify=false"],
        &format!("docker://{target}"),
        &format!("oci:{layout}:index"),
    );
    assert_eq!(layout_manifest(&layout).0, index_digest);
    let copy = format!("{}/wasm/helloworld-copy:index", w.host);
    w.skopeo_copy(
        &["--all", "--src-tls-verify=false", "--dest-tls-verify=false"],
        &format!("docker://{target}"),
        &format!("docker://{copy}"),
    );
    assert_eq!(w.digest(&copy.parse().expect("ref")), index_digest);
    // And wharf-client picks the Wasm child of the index.
    let pulled = w.rt.block_on(w.client.pull_wasm(&target.parse().expect("ref"))).expect("pull_wasm");
    assert_eq!(pulled.manifest.digest(), &child_digest);
    assert_eq!(pulled.module.as_ref(), &w.module[..]);
}

#[test]
fn flow4_cncf_artifact_from_wharf_client_pulled_by_oras_py() {
    let Some(w) = World::start("flow 4") else { return };
    let reference = w.reference("wasm/cncf:v1");
    let manifest =
        w.rt.block_on(w.client.push_wasm(
            &reference,
            Bytes::from(w.module.clone()),
            WasmLayout::CncfArtifact,
            "hello.wasm",
        ))
        .expect("push_wasm");
    let artifact = w.artifact("wasm/cncf", "v1");
    assert_wasm(&artifact, "cncf-artifact", "UNKNOWN", manifest.digest());
    let out = w.path("pulled");
    let pulled = w.python(&["pull", &reference.to_string(), &out]);
    assert_eq!(pulled.trim(), format!("{out}/hello.wasm"));
    assert_eq!(std::fs::read(pulled.trim()).expect("pulled"), w.module, "oras-py pull of the CNCF artifact");
}

#[test]
fn flow5_skopeo_tags_inspect_delete_and_oras_py_referrers() {
    let Some(w) = World::start("flow 5") else { return };
    let module = Bytes::from(w.module.clone());
    let mut manifests = Vec::new();
    for tag in ["v1", "v2", "v3"] {
        let reference = w.reference(&format!("webassembly/tags:{tag}"));
        let layout = if tag == "v3" { WasmLayout::CncfArtifact } else { WasmLayout::WasmToOci };
        manifests.push(
            w.rt.block_on(w.client.push_wasm(&reference, module.clone(), layout, "m.wasm")).expect("push"),
        );
    }
    let repo = format!("docker://{}/webassembly/tags", w.host);
    let tags = |w: &World| -> BTreeSet<String> {
        let listed: Value =
            serde_json::from_str(&w.run("skopeo", &["list-tags", "--tls-verify=false", &repo]))
                .expect("JSON");
        listed["Tags"].as_array().expect("Tags").iter().map(|t| t.as_str().expect("tag").to_owned()).collect()
    };
    assert_eq!(tags(&w), BTreeSet::from(["v1".into(), "v2".into(), "v3".into()]));
    for (tag, manifest) in ["v1", "v2", "v3"].iter().zip(&manifests) {
        let raw = w.run("skopeo", &["inspect", "--tls-verify=false", "--raw", &format!("{repo}:{tag}")]);
        assert_eq!(raw.as_bytes(), manifest.bytes(), "skopeo inspect --raw {tag} gives the exact bytes");
    }
    // skopeo deletes by digest: v3 goes, and its tag with it.
    w.run("skopeo", &["delete", "--tls-verify=false", &format!("{repo}:v3")]);
    assert_eq!(tags(&w), BTreeSet::from(["v1".into(), "v2".into()]));
    let gone = w.rt.block_on(
        w.client.pull_manifest(&w.reference(&format!("webassembly/tags@{}", manifests[2].digest()))),
    );
    assert!(gone.is_err(), "the deleted manifest is gone");

    // oras-py pushes an SBOM-like referrer of v1; the referrers API lists it.
    std::fs::write(w.path("sbom.json"), br#"{"spdxVersion":"SPDX-2.3"}"#).expect("sbom");
    let subject = &manifests[0];
    let referrer = digest_of(&w.python(&[
        "push-referrer",
        &format!("{}/webassembly/tags:sbom", w.host),
        &w.path("sbom.json"),
        "application/vnd.oci.image.manifest.v1+json",
        subject.digest().as_str(),
        &subject.size().to_string(),
    ]));
    for query in ["", "?artifactType=application/vnd.example.sbom.v1%2Bjson"] {
        let index = w.get_json(&format!("/v2/webassembly/tags/referrers/{}{query}", subject.digest()));
        let listed = index["manifests"].as_array().expect("manifests");
        assert_eq!(listed.len(), 1, "{index:#}");
        assert_eq!(listed[0]["digest"], referrer.to_string());
        assert_eq!(listed[0]["artifactType"], "application/vnd.example.sbom.v1+json");
    }
    let none = w.get_json(&format!("/v2/webassembly/tags/referrers/{}", Digest::sha256(b"no such subject")));
    assert_eq!(none["manifests"], Value::Array(vec![]));
}

/// A refused command: it failed, and its output carries the registry's message.
fn assert_refused(output: &std::process::Output, what: &str, message: &str) {
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{what} succeeded:\n{text}");
    assert!(
        text.contains(message),
        "{what}: the registry's message `{message}` is not in the output:\n{text}"
    );
}

#[test]
fn flow7_credentials_over_tls_with_skopeo_buildah_podman_oras_py_and_the_examples() {
    let Some(w) = World::start_with("flow 7", true) else { return };
    let certs = w.certs.clone().expect("a cert dir");
    let (alice, bob) = (w.path("alice-auth.json"), w.path("bob-auth.json"));
    let login = |tool: &str, file: &str, user: &str, password: &str| {
        w.output(
            tool,
            &["login", "--cert-dir", &certs, "--authfile", file, "-u", user, "-p", password, &w.host],
            &[],
        )
    };
    // skopeo login --cert-dir; a wrong password is refused.
    let out = login("skopeo", &alice, "alice", "alice-pw");
    assert!(out.status.success(), "skopeo login: {}", String::from_utf8_lossy(&out.stderr));
    assert_refused(
        &login("skopeo", &w.path("nobody.json"), "alice", "wrong"),
        "skopeo login with a wrong password",
        "invalid username/password",
    );

    // The article's build and push: buildah push --cert-dir, credentials from the login.
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let target = format!("{}/team/hello:v1", w.host);
    let digest_file = w.path("hello.digest");
    w.run(
        "buildah",
        &[
            "push",
            "--cert-dir",
            &certs,
            "--authfile",
            &alice,
            "--digestfile",
            &digest_file,
            "localhost/hello:v1",
            &format!("docker://{target}"),
        ],
    );
    let digest = digest_of(&std::fs::read_to_string(&digest_file).expect("digest file"));
    assert_wasm(&w.artifact("team/hello", "v1"), "compat-annotated", "WASM", &digest);

    // podman: bob (a reader) logs in and pulls; his push is refused with the registry's word.
    let out = login("podman", &bob, "bob", "bob-pw");
    assert!(out.status.success(), "podman login: {}", String::from_utf8_lossy(&out.stderr));
    w.run("podman", &["pull", "-q", "--cert-dir", &certs, "--authfile", &bob, &target]);
    let theirs = format!("docker://{}/team/bob:v1", w.host);
    let out = w.output("podman", &["push", "--cert-dir", &certs, "--authfile", &bob, &target, &theirs], &[]);
    assert_refused(&out, "podman push by a reader", "`bob` may not push team/bob");
    // alice logs in with podman too and pushes the same image elsewhere.
    let podman_alice = w.path("podman-alice-auth.json");
    assert!(login("podman", &podman_alice, "alice", "alice-pw").status.success());
    let copy = format!("docker://{}/team/copy:v1", w.host);
    w.run("podman", &["push", "--cert-dir", &certs, "--authfile", &podman_alice, &target, &copy]);
    assert_eq!(w.digest(&format!("{}/team/copy:v1", w.host).parse().expect("ref")), digest);

    // oras-py with credentials, over TLS.
    let ca = w.path("tls/ca.crt");
    let wasm = w.path("helloworld.wasm");
    let by_oras = format!("{}/team/oras:v1", w.host);
    let env =
        [("WHARF_ORAS_CA", ca.as_str()), ("WHARF_ORAS_USER", "alice"), ("WHARF_ORAS_PASSWORD", "alice-pw")];
    let oras_digest = digest_of(&w.python_env(&["push-wasm", &by_oras, &wasm], &env));
    assert_eq!(w.digest(&by_oras.parse().expect("ref")), oras_digest);
    let out = w.path("oras-pulled");
    let pulled = w.python_env(&["pull", &by_oras, &out], &env);
    assert_eq!(std::fs::read(pulled.trim()).expect("pulled"), w.module);

    // The examples read the auth files podman login wrote: alice pushes, bob pulls, bob's
    // push is refused.
    let by_example = format!("{}/team/example:v1", w.host);
    w.example("wasm_push", &[&wasm, &by_example, "--cert-dir", &certs, "--authfile", &podman_alice]);
    let pulled = w.path("example-pulled.wasm");
    w.example("wasm_pull", &[&by_example, "-o", &pulled, "--cert-dir", &certs, "--authfile", &bob]);
    assert_eq!(std::fs::read(&pulled).expect("pulled"), w.module);
    w.assert_runs(&pulled);
    let refused = w.output(
        World::example_path("wasm_push"),
        &[&wasm, &format!("{}/team/by-bob:v1", w.host), "--cert-dir", &certs, "--authfile", &bob],
        &[],
    );
    assert_refused(&refused, "wasm_push by a reader", "`bob` may not push team/by-bob");
    // Nothing of the refused pushes is there.
    for name in ["team/bob", "team/by-bob"] {
        let reference: Reference = format!("{}/{name}:v1", w.host).parse().expect("ref");
        assert!(w.rt.block_on(w.client.resolve(&reference)).is_err(), "{name} exists");
    }
}

/// The Bytecode Alliance's own tools: `wasm-tools` builds the component from WAT, `wkg oci push`
/// and `wkg oci pull` round-trip it byte-exact, the WIT Wharf reports is what `wasm-tools
/// component wit` prints, search finds it by export, and a policy denying
/// `wasi:cli/environment` refuses it with a message naming the import and stores nothing.
#[test]
fn flow8_components_with_wasm_tools_and_wkg() {
    if !runs("flow 8", &absent(&["wasm-tools", "wkg"])) {
        return;
    }
    let Some(w) = World::start("flow 8") else { return };
    let component = w.path("cli-http.wasm");
    w.run("wasm-tools", &["parse", COMPONENT_WAT, "-o", &component]);
    w.run("wasm-tools", &["validate", &component]);
    let bytes = std::fs::read(&component).expect("component");
    let wkg = |args: &[&str]| {
        let mut all = vec!["oci"];
        all.extend_from_slice(args);
        all.extend(["--insecure", w.host.as_str()]);
        w.output("wkg", &all, &[("WKG_CONFIG_FILE", &w.path("wkg.toml")), ("HOME", &w.path(""))])
    };
    let target = format!("{}/components/cli-http:1.0.0", w.host);
    let out = wkg(&["push", &target, &component]);
    assert!(out.status.success(), "wkg oci push: {}", String::from_utf8_lossy(&out.stderr));

    let artifact = w.artifact("components/cli-http", "1.0.0");
    assert_eq!(artifact["kind"], "cncf-artifact", "{artifact:#}");
    assert_eq!(artifact["module"]["header"]["kind"], "component", "{artifact:#}");
    assert_eq!(artifact["module"]["wasiVersion"], "0.2.0", "{artifact:#}");
    let wit = w.run("wasm-tools", &["component", "wit", &component]);
    assert_eq!(
        artifact["module"]["world"]["wit"].as_str().map(str::trim_end),
        Some(wit.trim_end()),
        "the WIT differs"
    );
    let exports: Vec<&str> = artifact["module"]["world"]["exports"]
        .as_array()
        .expect("exports")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(exports, ["wasi:cli/run@0.2.0", "wasi:http/incoming-handler@0.2.0"]);
    let search = w.get_json("/v2/_wharf/search?export=wasi:cli/run");
    assert_eq!(search["results"][0]["repository"], "components/cli-http", "{search:#}");
    assert_eq!(search["results"][0]["tags"][0], "1.0.0");

    let pulled = w.path("pulled.wasm");
    let out = wkg(&["pull", &target, "-o", &pulled]);
    assert!(out.status.success(), "wkg oci pull: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&pulled).expect("pulled"), bytes, "wkg pulls the exact bytes it pushed");

    // The policy: refused, the message names the policy and the import, nothing stored.
    let denied = format!("{}/policy-denied/cli-http:1.0.0", w.host);
    let out = wkg(&["push", &denied, &component]);
    assert!(!out.status.success(), "the push was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wasi:cli/environment"), "wkg does not show why: {stderr}");
    let tags = w.rt.block_on(async {
        w.http
            .get(format!("http://{}/v2/policy-denied/cli-http/manifests/1.0.0", w.host))
            .send()
            .await
            .expect("GET")
            .status()
    });
    assert_eq!(tags, reqwest::StatusCode::NOT_FOUND);
}

/// `wkg` 0.16.1 as a component author uses it, with a config naming Wharf only as
/// `default_registry` (plus wkg's one setting for plain HTTP): discovery through
/// `/.well-known/wasm-pkg/registry.json` with the prefix `pkgs/`, `wkg wit build` + `wkg
/// publish` of a WIT package and of a component that exports it, a second project's `wkg wit
/// fetch`/`build` resolving it, `wkg get` byte-exact; the server's versioning rules refuse a
/// breaking 0.1.2 (naming the function) and an overwrite of 0.1.0, storing nothing.
#[test]
fn flow12_wkg_publishes_and_resolves_packages_through_discovery() {
    if !runs("flow 12", &absent(&["wasm-tools", "wkg"])) {
        return;
    }
    let Some(w) = World::start("flow 12") else { return };
    let config = w.path("wkg-config.toml");
    std::fs::write(
        &config,
        format!("default_registry = \"{0}\"\n\n[registry.\"{0}\".oci]\nprotocol = \"http\"\n", w.host),
    )
    .expect("wkg config");
    let wkg = |dir: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.as_str()]);
        let out = Command::new("wkg")
            .args(&all)
            .current_dir(dir)
            .env("HOME", w.path(""))
            .env("WKG_CACHE_DIR", w.path("wkg-cache"))
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("wkg runs");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let greeter = w.path("greeter");
    std::fs::create_dir_all(format!("{greeter}/wit")).expect("dir");
    let greet = "greet: func(name: string) -> string;";
    let publish = |version: &str, functions: &str, extra: &[&str]| {
        std::fs::write(
            format!("{greeter}/wit/world.wit"),
            format!("package acme:greeter@{version};\ninterface hello {{ {functions} }}\nworld greeter {{ export hello; }}\n"),
        )
        .expect("wit");
        let (ok, out) = wkg(&greeter, &["wit", "build"]);
        assert!(ok, "wkg wit build {version}: {out}");
        let file = format!("acme:greeter@{version}.wasm");
        let mut args = vec!["publish", file.as_str()];
        args.extend_from_slice(extra);
        wkg(&greeter, &args)
    };
    for (version, functions) in [
        ("0.1.0", greet.to_owned()),
        ("0.1.1", format!("{greet} wave: func();")),
        ("0.2.0", "wave: func();".to_owned()),
    ] {
        let (ok, out) = publish(version, &functions, &[]);
        assert!(ok, "wkg publish {version}: {out}");
    }
    let first = std::fs::read(format!("{greeter}/acme:greeter@0.1.0.wasm")).expect("0.1.0");
    // The server's rules, for every client: wkg's own check skipped, the registry refuses.
    let (ok, out) = publish("0.1.2", "wave: func();", &["--skip-semver-check"]);
    assert!(
        !ok && out.contains("function `greet` of `acme:greeter/hello` was removed"),
        "a breaking 0.1.2: {out}"
    );
    let (ok, out) = publish("0.1.0", &format!("{greet} shout: func();"), &["--skip-semver-check"]);
    assert!(!ok && out.contains("immutable"), "0.1.0 overwritten: {out}");
    let status = |path: &str| {
        w.rt.block_on(async {
            w.http.head(format!("http://{}{path}", w.host)).send().await.expect("HEAD").status()
        })
    };
    assert_eq!(status("/v2/pkgs/acme/greeter/manifests/0.1.2"), reqwest::StatusCode::NOT_FOUND);
    let (ok, out) = publish("0.1.2", &format!("{greet} wave: func(); shout: func();"), &[]);
    assert!(ok, "a compatible 0.1.2: {out}");

    // A component exporting acme:greeter/hello@0.1.0: its WIT fetched through discovery.
    let app = w.path("app");
    std::fs::create_dir_all(format!("{app}/wit")).expect("dir");
    std::fs::write(
        format!("{app}/wit/world.wit"),
        "package acme:impl@0.1.0;\nworld app { export acme:greeter/hello@0.1.0; }\n",
    )
    .expect("wit");
    let (ok, out) = wkg(&app, &["wit", "fetch"]);
    assert!(ok, "wkg wit fetch: {out}");
    let (ok, out) = wkg(&app, &["wit", "build"]);
    assert!(ok, "wkg wit build of the app's WIT: {out}");
    w.run(
        "wasm-tools",
        &[
            "component",
            "embed",
            "--dummy",
            &format!("{app}/wit"),
            "--world",
            "app",
            "-o",
            &format!("{app}/core.wasm"),
        ],
    );
    w.run(
        "wasm-tools",
        &["component", "new", &format!("{app}/core.wasm"), "-o", &format!("{app}/impl.wasm")],
    );
    // `wkg publish` 0.16.1 cannot publish a component (it reads the package version from the
    // binary even with `--package`; fixed upstream after the release, wasm-pkg-tools #250):
    // `wkg oci push` puts it where discovery maps `acme:impl`, in the same layout.
    let target = format!("{}/pkgs/acme/impl:0.1.0", w.host);
    let impl_wasm = format!("{app}/impl.wasm");
    let out = w.output(
        "wkg",
        &["oci", "push", &target, &impl_wasm, "--insecure", w.host.as_str()],
        &[("HOME", &w.path(""))],
    );
    assert!(out.status.success(), "wkg oci push of the component: {}", String::from_utf8_lossy(&out.stderr));
    let got = w.path("got.wasm");
    let (ok, out) = wkg(&app, &["get", "acme:impl@0.1.0", "-o", &got]);
    assert!(ok, "wkg get: {out}");
    assert_eq!(
        std::fs::read(&got).expect("got"),
        std::fs::read(format!("{app}/impl.wasm")).expect("impl"),
        "byte-exact"
    );
    let (ok, out) = wkg(&app, &["get", "acme:greeter@0.1.0", "-o", &w.path("greeter.wasm")]);
    assert!(ok, "wkg get of the WIT package: {out}");
    assert_eq!(std::fs::read(w.path("greeter.wasm")).expect("got"), first);

    // What the registry says of them.
    let versions = w.get_json("/v2/_wharf/packages/acme:greeter");
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(listed, ["0.1.0", "0.1.1", "0.1.2", "0.2.0"], "{versions:#}");
    assert_eq!(versions["versions"][0]["content"], "wit-package");
    assert_eq!(versions["dependents"][0]["package"], "acme:impl", "{versions:#}");
    let component = w.get_json("/v2/pkgs/acme/impl/_wharf/versions");
    let dep = &component["versions"][0]["dependencies"][0];
    assert_eq!(dep["package"], "acme:greeter", "{component:#}");
    assert_eq!(dep["providedBy"], "0.1.0", "{component:#}");
    assert_eq!(component["versions"][0]["content"], "component");
    let search = w.get_json("/v2/_wharf/search?export=acme:greeter/hello&kind=component");
    assert_eq!(search["results"][0]["repository"], "pkgs/acme/impl", "{search:#}");

    // The wharf command line sees what wkg published through the same discovery file, and
    // what it publishes, wkg gets.
    let wharf = World::cli_path();
    let listed = w.run(&wharf, &["--registry", &w.host, "versions", "acme:greeter"]);
    let rows: Vec<&str> = listed
        .lines()
        .filter_map(|r| r.split_whitespace().next())
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows, ["0.1.0", "0.1.1", "0.1.2", "0.2.0"], "{listed}");
    assert!(listed.contains("used by acme:impl 0.1.0"), "{listed}");
    let wit = w.run(&wharf, &["--registry", &w.host, "wit", "acme:greeter@0.1.0"]);
    assert!(wit.contains("package acme:greeter@0.1.0;"), "{wit}");
    w.run(&wharf, &["--registry", &w.host, "push", &impl_wasm, "acme:impl@0.1.1"]);
    let (ok, out) = wkg(&app, &["get", "acme:impl@0.1.1", "-o", &w.path("got-wharf.wasm")]);
    assert!(ok, "wkg get of what wharf pushed: {out}");
    assert_eq!(
        std::fs::read(w.path("got-wharf.wasm")).expect("got"),
        std::fs::read(&impl_wasm).expect("impl")
    );
}

#[test]
fn flow9_the_wharf_command_line_against_wharf_server_and_distribution() {
    let Some(w) = World::start("flow 9") else { return };
    let Some(distribution) = w.rt.block_on(registry::start(None)) else { return };
    let wharf = World::cli_path();
    let component = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/component.wasm");
    // The article's flow, a module and a component, against both registries.
    for host in [&w.host, &distribution.host] {
        for (file, repo) in
            [(w.path("helloworld.wasm"), "webassembly/helloworld"), (component.to_owned(), "wasm/component")]
        {
            let reference = format!("{host}/{repo}:v1");
            let digest = w.run(&wharf, &["push", &file, &reference]);
            assert!(digest.trim().starts_with("sha256:"), "wharf push prints the digest: {digest}");
            let pulled = w.path("pulled.wasm");
            w.run(&wharf, &["pull", &reference, "-o", &pulled]);
            assert_eq!(
                std::fs::read(&pulled).expect("pulled"),
                std::fs::read(&file).expect("pushed"),
                "{reference}"
            );
            let record: Value =
                serde_json::from_str(&w.run(&wharf, &["inspect", &reference, "--json"])).expect("JSON");
            assert_eq!(
                (record["wasm"].clone(), record["digest"].clone()),
                (Value::Bool(true), Value::from(digest.trim()))
            );
        }
    }
    // A Wasm package on a registry with no discovery file (and no versions API): `ns/name`,
    // versions from its tags, the newest pulled when none is named — as wkg falls back.
    let host = distribution.host.as_str();
    for version in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"] {
        w.run(&wharf, &["--registry", host, "push", component, &format!("acme:app@{version}")]);
    }
    w.run(&wharf, &["push", component, &format!("{host}/acme/app:latest")]);
    let listed = w.run(&wharf, &["--registry", host, "versions", "acme:app", "--json"]);
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let versions: Vec<&str> = listed["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"], "{listed:#}");
    assert_eq!(listed["otherTags"], serde_json::json!(["latest"]));
    let manifest: Value =
        serde_json::from_str(&w.run(&wharf, &["manifest", &format!("{host}/acme/app:1.10.0")]))
            .expect("JSON");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.version"], "1.10.0");
    assert_eq!(manifest["layers"][0]["annotations"]["org.opencontainers.image.title"], "app.wasm");
    let newest: Value = serde_json::from_str(
        &w.run(&wharf, &["--registry", host, "pull", "acme:app", "-o", &w.path("newest.wasm"), "--json"]),
    )
    .expect("JSON");
    assert_eq!(newest["reference"], format!("{host}/acme/app:1.10.0"), "the newest release, not the rc");
    assert_eq!(
        std::fs::read(w.path("newest.wasm")).expect("pulled"),
        std::fs::read(component).expect("file")
    );

    // The buildah image, wharf-server → distribution → wharf-server: the digest stays.
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let on_wharf = format!("{}/wasm/hello:v1", w.host);
    let digest = w.buildah_push("localhost/hello:v1", &on_wharf);
    // The module, out of buildah's tar layer.
    w.run(&wharf, &["pull", &on_wharf, "-o", &w.path("from-tar.wasm")]);
    assert_eq!(std::fs::read(w.path("from-tar.wasm")).expect("pulled"), w.module);
    let on_distribution = format!("{}/wasm/hello:v1", distribution.host);
    assert_eq!(w.run(&wharf, &["copy", &on_wharf, &on_distribution]).trim(), digest.as_str());
    let raw = w.run(
        "skopeo",
        &["inspect", "--tls-verify=false", "--format", "{{.Digest}}", &format!("docker://{on_distribution}")],
    );
    assert_eq!(raw.trim(), digest.as_str(), "distribution serves the copy under the same digest");
    let back = format!("{}/wasm/hello-back:v1", w.host);
    assert_eq!(w.run(&wharf, &["copy", &on_distribution, &back]).trim(), digest.as_str());
    assert_wasm(&w.artifact("wasm/hello-back", "v1"), "compat-annotated", "WASM", &digest);
    // Login against distribution with htpasswd: the auth file wharf writes serves skopeo.
    let Some(secured) = w.rt.block_on(registry::start(Some(("carol", "carol-pw")))) else { return };
    let private = format!("{}/private/hello:v1", secured.host);
    let out = w.output(&wharf, &["push", &w.path("helloworld.wasm"), &private], &[]);
    assert_refused(&out, "an anonymous wharf push to distribution with htpasswd", "wharf login");
    let login = Command::new(&wharf)
        .args(["login", &secured.host, "-u", "carol", "--password-stdin"])
        .env("REGISTRY_AUTH_FILE", w.path("auth.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wharf login");
    std::io::Write::write_all(&mut login.stdin.as_ref().expect("stdin"), b"carol-pw\n").expect("password");
    let out = login.wait_with_output().expect("wharf login");
    assert!(out.status.success(), "wharf login: {}", String::from_utf8_lossy(&out.stderr));
    let auth: Value =
        serde_json::from_slice(&std::fs::read(w.path("auth.json")).expect("auth.json")).expect("JSON");
    assert!(auth["auths"][&secured.host]["auth"].is_string(), "{auth}");
    assert_eq!(w.run(&wharf, &["copy", &on_wharf, &private]).trim(), digest.as_str());
    let seen = w.run(
        "skopeo",
        &["inspect", "--tls-verify=false", "--format", "{{.Digest}}", &format!("docker://{private}")],
    );
    assert_eq!(seen.trim(), digest.as_str(), "skopeo with the credentials wharf login stored");
    w.run(&wharf, &["logout", &secured.host]);
    let out = w.output("skopeo", &["inspect", "--tls-verify=false", &format!("docker://{private}")], &[]);
    assert!(!out.status.success(), "skopeo after wharf logout still got in");
}

#[test]
fn flow10_the_web_page_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("WHARF_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = absent(&["node", "wkg"]);
    if !Path::new(&chromium).exists() {
        missing.push(chromium.clone());
    }
    if !root.join("tests/web/node_modules/playwright-core").exists() {
        missing.push("tests/web/node_modules (npm ci in tests/web)".into());
    }
    if !runs("flow 10", &missing) {
        return;
    }
    let Some(w) = World::start_mode("flow 10", false, true) else { return };
    // The wasm-to-oci artifact, where anonymous visitors may pull.
    let hello = w.reference("public/helloworld:v1");
    w.rt.block_on(w.client.push_wasm(&hello, w.module.clone(), WasmLayout::WasmToOci, "helloworld.wasm"))
        .expect("push");
    // A hostile artifact: its annotations and its config's history and author.
    let hostile = w.reference("public/hostile:v1");
    let script = "<script>window.__pwned=1</script>";
    let img = "\"><img src=x onerror=window.__pwned=1>";
    let url = "javascript:window.__pwned=1";
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasip1", "author": script,
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": img}, {"created_by": url, "comment": script}],
    });
    w.rt.block_on(async {
        let config = Bytes::from(serde_json::to_vec(&config).expect("JSON"));
        let layer = Bytes::from(w.module.clone());
        let c = w.client.push_blob(&hostile, config.clone()).await.expect("config");
        let l = w.client.push_blob(&hostile, layer.clone()).await.expect("layer");
        let manifest = wharf::types::ImageManifest::new(
            wharf::types::Descriptor::new(wharf::types::MediaType::OCI_CONFIG, c, config.len() as u64),
            vec![
                wharf::types::Descriptor::new(
                    wharf::types::MediaType::WASM_CONTENT_LAYER_V1,
                    l,
                    layer.len() as u64,
                )
                .with_annotation("org.opencontainers.image.title", img),
            ],
        )
        .with_annotation("org.opencontainers.image.description", script)
        .with_annotation("org.opencontainers.image.source", url)
        .with_annotation(img, "key");
        let manifest = wharf::types::Manifest::from_image(&manifest).expect("manifest");
        w.client.push_manifest(&hostile, &manifest).await.expect("hostile manifest");
    });
    // The article's buildah image and a wkg component, in team/ (bob reads, alice deletes).
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let image = format!("{}/team/hello:v1", w.host);
    w.run(
        "buildah",
        &[
            "push",
            "--tls-verify=false",
            "--creds",
            "admin:admin-pw",
            "localhost/hello:v1",
            &format!("docker://{image}"),
        ],
    );
    std::fs::create_dir_all(w.path(".docker")).expect("mkdir");
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "admin:admin-pw");
    std::fs::write(
        w.path(".docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, w.host),
    )
    .expect("docker config");
    let component = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/component.wasm");
    let out = w.output(
        "wkg",
        &["oci", "push", &format!("{}/team/component:1.0.0", w.host), component, "--insecure", &w.host],
        &[
            ("WKG_CONFIG_FILE", &w.path("wkg.toml")),
            ("HOME", &w.path("")),
            ("DOCKER_CONFIG", &w.path(".docker")),
        ],
    );
    assert!(out.status.success(), "wkg oci push: {}", String::from_utf8_lossy(&out.stderr));
    // A WIT package and a component exporting its interface, in the package namespace (pkgs/,
    // admin only): the package page, the WIT text, the dependency as a link.
    let greeter = "package acme:greeter@0.1.0;\n/// Says hello.\ninterface hello { greet: func(name: string) -> string; }";
    let app = "package acme:app@1.0.0;\nworld app { export acme:greeter/hello@0.1.0; }";
    for (reference, binary) in [
        ("pkgs/acme/greeter:0.1.0", wharf::wasm::wit::encode_package(&[greeter]).expect("WIT package")),
        (
            "pkgs/acme/app:1.0.0",
            wharf::wasm::wit::dummy_component(&[greeter, app], "app").expect("component"),
        ),
    ] {
        w.rt.block_on(w.client.push_wasm(
            &w.reference(reference),
            binary,
            WasmLayout::CncfArtifact,
            "app.wasm",
        ))
        .expect("push");
    }
    for (repository, reference) in [
        ("public/helloworld", "v1"),
        ("public/hostile", "v1"),
        ("team/hello", "v1"),
        ("team/component", "1.0.0"),
        ("pkgs/acme/greeter", "0.1.0"),
        ("pkgs/acme/app", "1.0.0"),
    ] {
        w.artifact(repository, reference);
    }
    // The browser.
    let exe = std::env::current_exe().expect("test binary");
    let target = exe.ancestors().nth(3).expect("target dir");
    let shots = target.join("web-screenshots");
    let out = w.output(
        "node",
        &[root.join("tests/web/browser.mjs").to_str().expect("utf-8")],
        &[
            ("WHARF_URL", &format!("http://{}", w.host)),
            ("WHARF_SCREENSHOTS", shots.to_str().expect("utf-8")),
            ("WHARF_CHROMIUM", &chromium),
        ],
    );
    assert!(
        out.status.success(),
        "the browser test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // alice's delete through the page took the tag away; bob's changed nothing.
    let tags = w.get_json("/v2/team/hello/tags/list");
    assert_eq!(tags["tags"], serde_json::json!([]), "{tags}");
    assert!(w.get_json("/v2/team/component/tags/list")["tags"][0] == "1.0.0");
}

/// Flow 11: blob pulls through presigned URLs on S3.
#[test]
fn flow11_blob_redirects_on_s3_with_skopeo_oras_py_and_wharf_client() {
    let url = match std::env::var("WHARF_S3_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            runs("flow 11", &["an S3 engine: set WHARF_S3_URL (.ci/run starts Garage)".to_owned()]);
            return;
        }
    };
    // The registry reaches the engine through a relay that keeps the head of every presigned
    // request, so the test sees what each client sent to the engine.
    let engine = engine_of(&url);
    let relay = Relay::start(engine.trim_start_matches("http://"));
    let (location, query) = url.split_once('?').unwrap_or((&url, ""));
    let query = query.replace(&engine, &format!("http://{}", relay.addr));
    let random = wharf::store::UploadId::random();
    let storage = format!("{}/interop-{random}?{query}&redirect=true", location.trim_end_matches('/'));
    let Some(w) = World::start_on("flow 11", false, true, Some(&storage), "") else { return };
    // The tools address the registry as `localhost`, the engine is `127.0.0.1`: another host,
    // as with a real bucket, so credentials for the registry must stay with it.
    let port = w.host.rsplit(':').next().expect("a port");
    let host = format!("localhost:{port}");

    // Pushed through the registry: a wasm-to-oci module and a buildah image.
    let module = w.reference("team/redirect:wasm");
    let pushed =
        w.rt.block_on(w.client.push_wasm(
            &module,
            Bytes::from(w.module.clone()),
            WasmLayout::WasmToOci,
            "hello.wasm",
        ))
        .expect("push");
    w.build_image("run.oci.handler=wasm", "localhost/redirect:v1");
    let auth = w.path("redirect-auth.json");
    let login = w.output(
        "skopeo",
        &["login", "--tls-verify=false", "--authfile", &auth, "-u", "alice", "-p", "alice-pw", &host],
        &[],
    );
    assert!(login.status.success(), "skopeo login: {}", String::from_utf8_lossy(&login.stderr));
    let image = format!("docker://{host}/team/redirect:image");
    w.run("buildah", &["push", "--tls-verify=false", "--authfile", &auth, "localhost/redirect:v1", &image]);

    // A blob GET is a redirect to the engine.
    let layer = &pushed.as_image().expect("an image manifest").layers[0];
    let blob_url = format!("http://{}/v2/team/redirect/blobs/{}", w.host, layer.digest);
    let stay =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = w.rt.block_on(stay.get(&blob_url).basic_auth("alice", Some("alice-pw")).send()).expect("GET");
    assert_eq!(r.status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
    let to = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(to.starts_with(&format!("http://{}/", relay.addr)), "to the engine: {to}");

    // Each client pulls through the redirects, with credentials for the registry only.
    let followed = |tool: &str, before: usize| {
        let heads = relay.heads();
        assert!(heads.len() > before, "{tool} fetched no blob from the engine");
        for head in &heads[before..] {
            assert!(
                !head.to_ascii_lowercase().contains("\nauthorization:"),
                "{tool} sent credentials to the engine:\n{head}"
            );
        }
        heads.len()
    };
    let seen = relay.heads().len();
    // wharf-client (digests verified).
    let pulled = w.rt.block_on(w.client.pull_wasm(&module)).expect("pull through the redirect");
    assert_eq!(pulled.module, w.module, "wharf-client pull through the redirect");
    let seen = followed("wharf-client", seen);
    // oras-py.
    let env = [("WHARF_ORAS_USER", "alice"), ("WHARF_ORAS_PASSWORD", "alice-pw")];
    let out = w.path("oras-pulled");
    let pulled = w.python_env(&["pull", &format!("{host}/team/redirect:wasm"), &out], &env);
    assert_eq!(std::fs::read(pulled.trim()).expect("pulled"), w.module, "oras-py pull through the redirect");
    let seen = followed("oras-py", seen);
    // skopeo copies the image to an OCI layout (verifying every blob's digest), digest kept.
    let layout = w.path("redirect-layout");
    w.run(
        "skopeo",
        &["copy", "-q", "--src-tls-verify=false", "--authfile", &auth, &image, &format!("oci:{layout}:v1")],
    );
    followed("skopeo", seen);
    let index: Value =
        serde_json::from_slice(&std::fs::read(format!("{layout}/index.json")).expect("index.json"))
            .expect("JSON");
    let copied: Digest = index["manifests"][0]["digest"].as_str().expect("digest").parse().expect("digest");
    assert_eq!(copied, w.digest(&w.reference("team/redirect:image")), "skopeo keeps the digest");
    let reference = w.reference("team/redirect:image");
    let extracted = w.rt.block_on(w.client.pull_wasm(&reference)).expect("module out of the tar layer");
    assert_eq!(extracted.module, w.module);
}

/// `http://host:port` of the engine in an `s3://` URL's `endpoint`.
fn engine_of(url: &str) -> String {
    url.split("endpoint=").nth(1).and_then(|e| e.split('&').next()).expect("an endpoint").to_owned()
}

/// A TCP relay on loopback to an S3 engine that keeps the head of every presigned request
/// (`X-Amz-Signature=` in its query) passing through.
struct Relay {
    addr: std::net::SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(engine: &str) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (engine, kept) = (engine.to_owned(), Arc::clone(&heads));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(&engine) else { continue };
                let (mut back_from, mut back_to) =
                    (upstream.try_clone().expect("clone"), client.try_clone().expect("clone"));
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back_from, &mut back_to);
                    let _ = back_to.shutdown(std::net::Shutdown::Write);
                });
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let (mut client, mut upstream) = (client, upstream);
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut pending: Vec<u8> = Vec::new();
                    while let Ok(n) = client.read(&mut buf) {
                        if n == 0 || upstream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        // Complete heads (a body's bytes before one are never a presigned request).
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                            if let Some(at) = text.find("X-Amz-Signature=") {
                                let start = text[..at].rfind("\r\n").map_or(0, |i| i + 2);
                                kept.lock().expect("lock").push(text[start..].to_owned());
                            }
                            pending.drain(..end + 4);
                        }
                        if pending.len() > 1024 * 1024 {
                            pending.drain(..pending.len() - 64 * 1024);
                        }
                    }
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

/// A `wharf-server` process started from its binary with a config file; killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    host: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `wharf-server --config <config>` (which listens on port 0) with `env`.
    fn start(config: &str, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(World::bin_path("wharf-server", "wharf-server"))
            .args(["--config", config])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("wharf-server");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut said = String::new();
        let host = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("wharf-server exited before listening:\n{said}")
            };
            if let Some(addr) = line.strip_prefix("wharf-server: listening on ") {
                break addr.trim().to_owned();
            }
            said.push_str(&line);
            said.push('\n');
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("mirror: {l}")));
        Self { child, host }
    }
}

/// containerd on a socket of its own (root and state in `dir`, no CRI); killed when dropped.
struct Containerd {
    child: std::process::Child,
    socket: String,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Containerd {
    fn start(dir: &str) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let socket = format!("{dir}/containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{dir}/root\"\nstate = \"{dir}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\n  address = \"{socket}\"\n\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n"
        );
        std::fs::write(format!("{dir}/config.toml"), config).expect("config");
        let log = std::fs::File::create(format!("{dir}/containerd.log")).expect("log");
        let child = Command::new("containerd")
            .args(["--config", &format!("{dir}/config.toml")])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd");
        let containerd = Self { child, socket };
        for _ in 0..200 {
            if containerd.ctr(&["version"]).status.success() {
                return containerd;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "containerd did not start: {}",
            std::fs::read_to_string(format!("{dir}/containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr").args(["--address", &self.socket]).args(args).output().expect("ctr")
    }
}

/// Flow 13: a pull-through mirror (the `wharf-server` binary with `[[upstream]]`) of
/// docker-registry 2.8.2 and of a second Wharf with TLS and credentials.
#[test]
fn flow13_a_mirror_of_distribution_and_of_another_wharf_for_skopeo_podman_ctr_and_wkg() {
    use wharf::types::{ImageIndex, Manifest, MediaType, Platform};
    if !runs("flow 13", &absent(&["containerd", "ctr", "wasm-tools", "wkg"])) {
        return;
    }
    let Some(w) = World::start_with("flow 13", true) else { return };
    let Some(dist) = w.rt.block_on(registry::start(None)) else { return };
    let certs = w.certs.clone().expect("a cert dir");
    let d = dist.host.clone();

    // Upstream content. The buildah image, in distribution and in the second Wharf (as admin).
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let hello = w.buildah_push("localhost/hello:v1", &format!("{d}/team/hello:v1"));
    let target = format!("docker://{}/team/hello:v1", w.host);
    w.run(
        "buildah",
        &["push", "--cert-dir", &certs, "--creds", "admin:admin-pw", "localhost/hello:v1", &target],
    );
    let hello2 = w.digest(&w.reference("team/hello:v1"));
    // In distribution: an image with a 64 MiB layer, a two-platform index, a WASI package.
    let plain = ClientBuilder::new().build().expect("client");
    let at = |name: &str| -> Reference { format!("{d}/{name}").parse().expect("reference") };
    let config = |arch: &str| {
        format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#)
    };
    let big = wharf::store::testing::content(1, 64 << 20).to_vec();
    let big_layer = Digest::sha256(&big);
    let mut layers = Vec::new();
    w.rt.block_on(async {
        plain
            .push_image(
                &at("big/app:v1"),
                (MediaType::OCI_CONFIG, config("amd64")),
                [(MediaType::OCI_LAYER_TAR_GZIP, big.clone())],
            )
            .await
            .expect("push the big image");
        let mut children = Vec::new();
        for (arch, seed) in [("amd64", 2), ("arm64", 3)] {
            let layer = wharf::store::testing::content(seed, 1 << 20).to_vec();
            layers.push(Digest::sha256(&layer));
            let reference = at(&format!("multi/app:{arch}"));
            plain
                .push_image(
                    &reference,
                    (MediaType::OCI_CONFIG, config(arch)),
                    [(MediaType::OCI_LAYER_TAR_GZIP, layer)],
                )
                .await
                .expect("push a platform");
            let manifest = plain.pull_manifest(&reference).await.expect("manifest");
            children.push(manifest.descriptor().with_platform(Platform::new("linux", arch)));
        }
        let index = Manifest::from_index(&ImageIndex::new(children)).expect("index");
        plain.push_manifest(&at("multi/app:v1"), &index).await.expect("push the index");
    });
    let wit = w.path("wasi-io");
    std::fs::create_dir_all(&wit).expect("dir");
    std::fs::write(
        format!("{wit}/io.wit"),
        "package wasi:io@0.2.0;\n\ninterface error {\n  resource error {\n    to-debug-string: func() -> string;\n  }\n}\n\nworld imports {\n  import error;\n}\n",
    )
    .expect("wit");
    let package = w.path("wasi-io.wasm");
    w.run("wasm-tools", &["component", "wit", &wit, "--wasm", "-o", &package]);
    w.run(World::cli_path(), &["--registry", &d, "push", &package, "wasi:io@0.2.0"]);

    // The mirror: the wharf-server binary, its upstreams in its config (the second Wharf's
    // password from the environment), its packages under the prefix of distribution.
    let config_file = w.path("mirror.toml");
    std::fs::write(
        &config_file,
        format!(
            "listen = \"127.0.0.1:0\"\nstorage = \"fs:{}\"\n\n[packages]\nnamespace_prefix = \"dist/\"\n\n\
             [[upstream]]\nname = \"dist\"\nurl = \"http://{d}\"\nallow_private = true\ntag_ttl = \"0s\"\n\n\
             [[upstream]]\nname = \"wharf2\"\nurl = \"https://{}\"\nca = \"tls/ca.crt\"\nusername = \"admin\"\n\
             password_env = \"FLOW13_UPSTREAM_PASSWORD\"\nallow_private = true\n",
            w.path("mirror-data"),
            w.host
        ),
    )
    .expect("mirror config");
    let mirror = ServerProcess::start(&config_file, &[("FLOW13_UPSTREAM_PASSWORD", "admin-pw")]);
    let m = mirror.host.clone();

    // skopeo, through each prefix: the upstreams' digests.
    let via = |source: &str, layout: &str| {
        let layout = w.path(layout);
        w.skopeo_copy(
            &["--src-tls-verify=false"],
            &format!("docker://{m}/{source}"),
            &format!("oci:{layout}:v1"),
        );
        layout_manifest(&layout).0
    };
    assert_eq!(via("dist/team/hello:v1", "via-dist"), hello, "skopeo through the mirror of distribution");
    assert_eq!(
        via("wharf2/team/hello:v1", "via-wharf2"),
        hello2,
        "skopeo through the mirror of the second Wharf"
    );

    // podman with a registries.conf mirror: the image named as upstream.
    let conf = w.path("registries.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nlocation = \"{d}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{m}/dist\"\ninsecure = true\n"),
    )
    .expect("registries.conf");
    let podman_env = [("CONTAINERS_REGISTRIES_CONF", conf.as_str())];
    let image = format!("{d}/team/hello:v1");
    let podman_pull = || {
        w.run_env("podman", &["pull", "-q", &image], &podman_env);
        let got =
            w.run_env("podman", &["image", "inspect", "--format", "{{.RepoDigests}}", &image], &podman_env);
        assert!(
            got.contains(&format!("{d}/team/hello@{hello}")),
            "podman through the registries.conf mirror: {got}"
        );
    };
    podman_pull();

    // ctr with a hosts.toml mirror (containerd sends `?ns=<upstream host>`).
    let containerd = Containerd::start(&w.path("containerd"));
    let hosts = w.path("hosts");
    std::fs::create_dir_all(format!("{hosts}/{d}")).expect("hosts dir");
    std::fs::write(
        format!("{hosts}/{d}/hosts.toml"),
        format!(
            "server = \"http://{d}\"\n\n[host.\"http://{m}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .expect("hosts.toml");
    let ctr_fetch = |namespace: &str| {
        let out =
            containerd.ctr(&["--namespace", namespace, "content", "fetch", "--hosts-dir", &hosts, &image]);
        assert!(out.status.success(), "ctr content fetch: {}", String::from_utf8_lossy(&out.stderr));
        let out = containerd.ctr(&["--namespace", namespace, "content", "get", hello.as_str()]);
        assert!(out.status.success(), "ctr content get: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(Digest::sha256(&out.stdout), hello, "ctr through the hosts.toml mirror");
    };
    ctr_fetch("flow13");

    // 20 concurrent pulls of the uncached 64 MiB image: one upstream fetch of its layer.
    let big_ref: Reference = format!("{m}/dist/big/app:v1").parse().expect("reference");
    let client = ClientBuilder::new().build().expect("client");
    w.rt.block_on(async {
        let pulls = (0..20).map(|_| async {
            let manifest = client.pull_manifest(&big_ref).await.expect("manifest");
            let layer = manifest.as_image().expect("an image").layers[0].digest.clone();
            client.pull_blob(&big_ref, &layer, &mut tokio::io::sink()).await.expect("layer, verified")
        });
        for size in futures_util::future::join_all(pulls).await {
            assert_eq!(size, 64 << 20);
        }
    });
    assert_eq!(
        dist.requests("GET", &format!("/v2/big/app/blobs/{big_layer}")),
        1,
        "one upstream fetch for 20 pulls"
    );

    // One platform of the two: only its blobs are fetched.
    w.skopeo_copy(
        &["--src-tls-verify=false", "--override-arch", "arm64"],
        &format!("docker://{m}/dist/multi/app:v1"),
        &format!("oci:{}:v1", w.path("arm64")),
    );
    assert_eq!(dist.requests("GET", &format!("/v2/multi/app/blobs/{}", layers[1])), 1, "arm64's layer");
    assert_eq!(
        dist.requests("GET", &format!("/v2/multi/app/blobs/{}", layers[0])),
        0,
        "amd64's layer is not fetched"
    );

    // wkg finds the WASI package through the mirror's discovery (prefix `dist/`).
    let wkg_config = w.path("wkg-config.toml");
    std::fs::write(
        &wkg_config,
        format!("default_registry = \"{m}\"\n\n[registry.\"{m}\".oci]\nprotocol = \"http\"\n"),
    )
    .expect("wkg config");
    let wkg_get = |cache: &str| {
        let out = Command::new("wkg")
            .args([
                "get",
                "wasi:io@0.2.0",
                "--overwrite",
                "-o",
                &w.path("got-io.wasm"),
                "--config",
                &wkg_config,
            ])
            .current_dir(w.path(""))
            .env("HOME", w.path(""))
            .env("WKG_CACHE_DIR", w.path(cache))
            .output()
            .expect("wkg");
        assert!(out.status.success(), "wkg get: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            std::fs::read(w.path("got-io.wasm")).expect("got"),
            std::fs::read(&package).expect("package")
        );
    };
    wkg_get("wkg-cache");

    // The upstream stops: everything pulled before still pulls, by tag and by digest; what
    // was never pulled fails with the mirror's word.
    drop(dist);
    assert_eq!(via("dist/team/hello:v1", "again-by-tag"), hello, "by tag, upstream stopped");
    assert_eq!(
        via(&format!("dist/team/hello@{hello}"), "again-by-digest"),
        hello,
        "by digest, upstream stopped"
    );
    w.run_env("podman", &["rmi", &image], &podman_env);
    podman_pull();
    ctr_fetch("again");
    wkg_get("wkg-cache-2");
    let out = w.output(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{m}/dist/team/never:v1")],
        &[],
    );
    assert!(!out.status.success(), "never pulled, upstream stopped");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // containers/image shows the status of a 502, not its body (the body names the upstream).
    assert!(stderr.contains("502 Bad Gateway"), "a clear error: {stderr}");
    drop(mirror);
}

/// The npm signer of the trust flows (`tests/sigstore`), when its packages are installed.
fn sigstore_signer() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore/node_modules/@sigstore/mock");
    if dir.is_dir() { Vec::new() } else { vec!["tests/sigstore/node_modules (npm ci)".to_owned()] }
}

/// Flow 14. Trust policies against real clients: the `wharf-server` binary with `[trust]` and an
/// `enforce` policy on `prod/**` trusting `ci@example.com` of the test issuer, an `audit` one
/// on `staging/**`. `ci` pushes with buildah, `wkg` and oras-py and signs with npm's
/// `@sigstore/sign` against `@sigstore/mock`'s Fulcio and Rekor, attached by `@sigstore/oci`
/// (the image and the `wkg`-pushed component); podman, skopeo, `wkg` and oras-py pull
/// anonymously: what `ci@example.com` signed pulls, what is unsigned or signed by another
/// identity is refused with the policy's name in the tool's own error; under `audit` the pull
/// succeeds and the metrics count it unverified.
#[test]
fn flow14_trust_policies_with_sigstore_signatures_for_podman_skopeo_wkg_and_oras_py() {
    let mut missing = absent(&["wasm-tools", "wkg", "node"]);
    missing.extend(sigstore_signer());
    if !runs("flow 14", &missing) {
        return;
    }
    let Some(w) = World::start("flow 14") else { return };
    let signer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore/sign.mjs");
    let signer = signer.to_str().expect("utf-8");
    w.run("node", &[signer, "keys", &w.path("keys")]);
    let mut users = wharf_auth::Htpasswd::default();
    users.set("ci", "ci-pw", 4).expect("hash");
    std::fs::write(w.path("trust-users.htpasswd"), users.render()).expect("htpasswd");
    let config_file = w.path("trust.toml");
    std::fs::write(
        &config_file,
        format!(
            "listen = \"127.0.0.1:0\"\nstorage = \"fs:{}\"\n\n[auth]\nhtpasswd = \"trust-users.htpasswd\"\npublic_metrics = true\n\n\
             [[access]]\nrepositories = [\"**\"]\nanonymous = [\"pull\"]\nusers = {{ ci = [\"pull\", \"push\"] }}\n\n\
             [trust]\nfulcio_roots = \"keys/fulcio.pem\"\nrekor_keys = \"keys/rekor.pub\"\n\n\
             [[trust_policy]]\nname = \"prod-signed\"\nrepositories = [\"prod/**\"]\nmode = \"enforce\"\n\
             identities = [{{ issuer = \"https://issuer.test\", subject = \"ci@example.com\" }}]\n\n\
             [[trust_policy]]\nname = \"staging-audit\"\nrepositories = [\"staging/**\"]\nmode = \"audit\"\n\
             identities = [{{ issuer = \"https://issuer.test\", subject = \"ci@example.com\" }}]\n",
            w.path("trust-data")
        ),
    )
    .expect("config");
    let server = ServerProcess::start(&config_file, &[]);
    let m = server.host.clone();

    // Pushes by ci: three buildah images, two wkg components, two oras-py artifacts.
    let images = [
        ("signed", "run.oci.handler=wasm"),
        ("unsigned", "module.wasm.image/variant=compat"),
        ("mallory", "run.oci.handler=crun-wasm"),
    ];
    let push_as_ci = |image: &str, destination: &str| {
        let destination = format!("docker://{m}/{destination}");
        w.run("buildah", &["push", "--tls-verify=false", "--creds", "ci:ci-pw", image, &destination]);
    };
    for (tag, annotation) in images {
        w.build_image(annotation, &format!("localhost/trust:{tag}"));
        push_as_ci(&format!("localhost/trust:{tag}"), &format!("prod/hello:{tag}"));
    }
    let wkg_env =
        [("WKG_CONFIG_FILE", w.path("wkg.toml")), ("HOME", w.path("")), ("DOCKER_CONFIG", w.path("docker"))];
    let wkg_env: Vec<(&str, &str)> = wkg_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    std::fs::create_dir_all(w.path("docker")).expect("mkdir");
    let ci_auth = base64_of("ci:ci-pw");
    std::fs::write(w.path("docker/config.json"), format!(r#"{{"auths":{{"{m}":{{"auth":"{ci_auth}"}}}}}}"#))
        .expect("docker config");
    let wkg = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["oci"];
        all.extend_from_slice(args);
        all.extend(["--insecure", m.as_str()]);
        w.output("wkg", &all, env)
    };
    let signed_component = w.path("cli-http.wasm");
    w.run("wasm-tools", &["parse", COMPONENT_WAT, "-o", &signed_component]);
    let other_component = w.path("component.wasm");
    w.run(
        "wasm-tools",
        &[
            "parse",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/component.wat"),
            "-o",
            &other_component,
        ],
    );
    for (tag, path) in [("signed", &signed_component), ("unsigned", &other_component)] {
        let out = wkg(&["push", &format!("{m}/prod/comp:{tag}"), path], &wkg_env);
        assert!(out.status.success(), "wkg oci push: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ci_env = [("WHARF_ORAS_USER", "ci"), ("WHARF_ORAS_PASSWORD", "ci-pw")];
    w.python_env(&["push-wasm", &format!("{m}/prod/oras:signed"), &w.path("helloworld.wasm")], &ci_env);
    w.python_env(&["push-wasm", &format!("{m}/prod/oras:unsigned"), &signed_component], &ci_env);

    // Signatures: ci@example.com over the image, the component and the oras artifact; another
    // identity over `mallory`. The signer reads each unsigned manifest and is not blocked.
    let keys = w.path("keys");
    let sign = |reference: &str, extra: &[&str]| {
        let mut args =
            vec![signer, "attach", keys.as_str(), reference, "--user", "ci", "--password", "ci-pw"];
        args.extend_from_slice(extra);
        w.run("node", &args)
    };
    sign(&format!("{m}/prod/hello:signed"), &[]);
    sign(&format!("{m}/prod/comp:signed"), &["--dsse"]);
    sign(&format!("{m}/prod/oras:signed"), &[]);
    sign(&format!("{m}/prod/hello:mallory"), &["--identity", "mallory@example.org"]);

    // The verifications are jobs: wait until each signed artifact shows its signature.
    for (repo, tag) in [
        ("prod/hello", "signed"),
        ("prod/comp", "signed"),
        ("prod/oras", "signed"),
        ("prod/hello", "mallory"),
    ] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let url = format!("http://{m}/v2/{repo}/_wharf/artifacts/{tag}");
            let v: Value = w
                .rt
                .block_on(async { w.http.get(&url).send().await.expect("GET").json().await.expect("JSON") });
            if v["trust"]["signatures"].as_array().is_some_and(|s| !s.is_empty()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{repo}:{tag} never verified: {v:#}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    // podman and skopeo, anonymous.
    w.run("podman", &["pull", "-q", "--tls-verify=false", &format!("{m}/prod/hello:signed")]);
    w.skopeo_copy(
        &["--src-tls-verify=false"],
        &format!("docker://{m}/prod/hello:signed"),
        &format!("oci:{}:v1", w.path("signed-layout")),
    );
    for tag in ["unsigned", "mallory"] {
        let image = format!("{m}/prod/hello:{tag}");
        let out = w.output("podman", &["pull", "-q", "--tls-verify=false", &image], &[]);
        assert_refused(&out, &format!("podman pull {tag}"), "trust policy prod-signed");
        let out = w.output(
            "skopeo",
            &[
                "copy",
                "-q",
                "--src-tls-verify=false",
                &format!("docker://{image}"),
                &format!("oci:{}:v1", w.path(&format!("{tag}-layout"))),
            ],
            &[],
        );
        assert_refused(&out, &format!("skopeo copy {tag}"), "trust policy prod-signed");
    }
    let out =
        w.output("podman", &["pull", "-q", "--tls-verify=false", &format!("{m}/prod/hello:mallory")], &[]);
    assert_refused(&out, "podman pull mallory", "mallory@example.org");

    // wkg, anonymous (no credentials for the registry).
    let anonymous_env =
        [("WKG_CONFIG_FILE", w.path("wkg.toml")), ("HOME", w.path("")), ("DOCKER_CONFIG", w.path("nobody"))];
    let anonymous_env: Vec<(&str, &str)> = anonymous_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let pulled = w.path("pulled.wasm");
    let out = wkg(&["pull", &format!("{m}/prod/comp:signed"), "-o", &pulled], &anonymous_env);
    assert!(
        out.status.success(),
        "wkg oci pull of the signed component: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&pulled).expect("pulled"), std::fs::read(&signed_component).expect("component"));
    let out =
        wkg(&["pull", &format!("{m}/prod/comp:unsigned"), "-o", &w.path("refused.wasm")], &anonymous_env);
    assert_refused(&out, "wkg oci pull of the unsigned component", "trust policy prod-signed");

    // `wharf verify`: the registry's verdict, and the same verification on the client with the
    // server's config file as the policy (keyless bundles attached by @sigstore/oci, read over
    // HTTP). A refused artifact fails with the registry's verdict shown.
    let cli = World::cli_path();
    let no_auth = w.path("no-auth.json");
    let verifier_env = [("REGISTRY_AUTH_FILE", no_auth.as_str())];
    let out = w.output(
        &cli,
        &["verify", &format!("{m}/prod/comp:signed"), "--policy", &config_file],
        &verifier_env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wharf verify: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("registry       verified (trust policy prod-signed)"), "{stdout}");
    assert!(
        stdout.contains("verified (trust policy prod-signed)\n") && stdout.contains("here ("),
        "{stdout}"
    );
    assert!(stdout.contains("verified: ci@example.com (issuer https://issuer.test), log entry"), "{stdout}");
    let out = w.output(
        &cli,
        &["verify", &format!("{m}/prod/hello:mallory"), "--policy", &config_file],
        &verifier_env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("registry       denied by trust policy prod-signed"), "{stdout}");

    // oras-py: the signed artifact pulls. The unsigned one is refused, but oras-py 0.2.43 takes
    // every 403 for a request to log in and raises "Cannot respond to request for
    // authentication" without the registry's message: the same GET over HTTP shows what it was
    // told.
    let listed = w.python(&["pull", &format!("{m}/prod/oras:signed"), &w.path("oras-signed")]);
    assert!(listed.contains("helloworld.wasm"), "{listed}");
    let mut all = vec![CLIENTS_PY, "pull"];
    let target = format!("{m}/prod/oras:unsigned");
    let outdir = w.path("oras-unsigned");
    all.extend([target.as_str(), outdir.as_str()]);
    let out = w.output(&w.python, &all, &[]);
    assert_refused(
        &out,
        "oras-py pull of the unsigned artifact",
        "Cannot respond to request for authentication",
    );
    let (status, body) = w.rt.block_on(async {
        let r = w.http.get(format!("http://{m}/v2/prod/oras/manifests/unsigned")).send().await.expect("GET");
        (r.status(), r.text().await.expect("body"))
    });
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("trust policy prod-signed") && body.contains("not signed"), "{body}");

    // audit: served, counted unverified (the unsigned image, pushed again under staging/).
    push_as_ci("localhost/trust:unsigned", "staging/hello:unsigned");
    w.run("podman", &["pull", "-q", "--tls-verify=false", &format!("{m}/staging/hello:unsigned")]);
    let metrics = w.rt.block_on(async {
        w.http.get(format!("http://{m}/metrics")).send().await.expect("GET").text().await.expect("text")
    });
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("trust_pulls") && l.contains("staging-audit") && l.contains("unverified")),
        "{metrics}"
    );
    drop(server);
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Webhooks to a receiver written with the receivers' libraries (`tests/webhooks/receiver.py`:
/// PyPI's `standardwebhooks` verifies, the CloudEvents SDK parses): `wkg oci push` of a
/// component made by `wasm-tools` arrives as `manifest.pushed`, `tag.created` and
/// `inspection.finished`, each once, signed, with the component's Wasm fields (kind, layout,
/// WASI version, the WIT world's exports and imports — what `wasm-tools component wit` says).
#[test]
fn flow15_webhooks_tell_what_wkg_pushed() {
    let python = std::env::var_os("WHARF_PYTHON")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"), PathBuf::from);
    let mut missing = absent(&["wasm-tools", "wkg"]);
    let python_ok = Command::new(&python)
        .args(["-c", "import standardwebhooks, cloudevents.v1.http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        missing.push(format!("{} with standardwebhooks and cloudevents", python.display()));
    }
    if !runs("flow 15", &missing) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_owned();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let log = path("received.jsonl");
    let mut receiver = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py"))
        .args([&log, "--secret", secret])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(receiver.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    let port: u16 = line.trim().trim_start_matches("listening on ").parse().expect("port");
    std::fs::write(path("secret"), secret).expect("secret");
    let config = wharf::server::config::FileConfig::parse(&format!(
        "[[webhook]]\nname = \"deploy\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = \"secret\"\n\
         repositories = [\"components/**\"]\nallow_private = true\n"
    ))
    .expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let (server, host) = rt.block_on(async {
        let storage =
            Arc::new(wharf::store::FsStore::open(dir.path().join("registry")).await.expect("store"));
        let registry =
            wharf::server::Wharf::new(storage).with_webhooks(config.webhooks(dir.path()).expect("webhooks"));
        let server =
            wharf::server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
        let host = server.local_addr().to_string();
        (server.spawn(), host)
    });
    let component = path("cli-http.wasm");
    let out = Command::new("wasm-tools")
        .args(["parse", COMPONENT_WAT, "-o", &component])
        .output()
        .expect("wasm-tools");
    assert!(out.status.success(), "wasm-tools parse: {}", String::from_utf8_lossy(&out.stderr));
    let target = format!("{host}/components/cli-http:1.0.0");
    let out = Command::new("wkg")
        .args(["oci", "push", &target, &component, "--insecure", &host])
        .env("WKG_CONFIG_FILE", path("wkg.toml"))
        .env("HOME", path(""))
        .output()
        .expect("wkg");
    assert!(out.status.success(), "wkg oci push: {}", String::from_utf8_lossy(&out.stderr));
    let deliveries = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    };
    let started = std::time::Instant::now();
    while deliveries().len() < 3 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "events: {:#?}", deliveries());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let events = deliveries();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(
        types,
        ["dev.wharf.manifest.pushed", "dev.wharf.tag.created", "dev.wharf.inspection.finished"]
    );
    let wit = Command::new("wasm-tools").args(["component", "wit", &component]).output().expect("wit");
    let wit = String::from_utf8_lossy(&wit.stdout);
    for event in &events {
        assert_eq!(event["answered"], 204);
        assert_eq!(event["verified"], true, "{event}");
        let subject = event["subject"].as_str().expect("subject");
        let about_the_tag = event["type"] != "dev.wharf.inspection.finished";
        let expected = if about_the_tag {
            "components/cli-http:1.0.0".to_owned()
        } else {
            format!("components/cli-http@{}", event["data"]["digest"].as_str().expect("digest"))
        };
        assert_eq!(subject, expected);
        let wasm = &event["data"]["wasm"];
        assert_eq!(wasm["kind"], "component", "{event:#}");
        assert_eq!(wasm["layout"], "cncf-artifact", "{event:#}");
        assert_eq!(wasm["wasiVersion"], "0.2.0", "{event:#}");
        assert_eq!(
            wasm["exports"],
            serde_json::json!(["wasi:cli/run@0.2.0", "wasi:http/incoming-handler@0.2.0"])
        );
        for import in wasm["imports"].as_array().expect("imports") {
            let name = import.as_str().expect("name");
            let interface = name.split('@').next().unwrap_or(name);
            assert!(wit.contains(&format!("import {interface}")), "{name} is not in the WIT:\n{wit}");
        }
    }
    drop(server);
    let _ = receiver.kill();
    let _ = receiver.wait();
}

/// A robot account limited to pushing `ci/app`: podman, skopeo, oras-py, `wkg oci push` and
/// `wkg publish` push with its credentials (Basic, through the token endpoint as each client
/// does); its pushes to `ci/other` and its delete are refused with the registry's word.
#[test]
fn flow16_a_robot_pushes_with_podman_skopeo_oras_py_wkg_push_and_wkg_publish() {
    if !runs("flow 16", &absent(&["wkg"])) {
        return;
    }
    let Some(w) = World::start_mode("flow 16", false, true) else { return };
    let made: Value = w.rt.block_on(async {
        let r = w
            .http
            .post(format!("http://{}/v2/_wharf/robots", w.host))
            .basic_auth("admin", Some("admin-pw"))
            .json(&serde_json::json!({
                "name": "ci-app",
                "grants": [{ "repositories": ["ci/app"], "actions": ["pull", "push"] }],
                "expiresIn": "1h",
            }))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        r.json().await.expect("json")
    });
    let (user, secret) = ("robot$ci-app", made["secret"].as_str().expect("secret").to_owned());
    let creds = format!("{user}:{secret}");

    // podman: a login with the robot's secret, then a push.
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let auth = w.path("robot-auth.json");
    w.run(
        "podman",
        &["login", "--tls-verify=false", "--authfile", &auth, "-u", user, "-p", &secret, &w.host],
    );
    let by_podman = format!("{}/ci/app:podman", w.host);
    w.run(
        "podman",
        &[
            "push",
            "--tls-verify=false",
            "--authfile",
            &auth,
            "localhost/hello:v1",
            &format!("docker://{by_podman}"),
        ],
    );
    let digest = w.digest(&by_podman.parse().expect("ref"));

    // skopeo: a copy within ci/app with --creds; to ci/other and a delete, refused.
    let tls = ["--src-tls-verify=false", "--dest-tls-verify=false"];
    let mut flags = tls.to_vec();
    flags.extend(["--src-creds", &creds, "--dest-creds", &creds]);
    w.skopeo_copy(&flags, &format!("docker://{by_podman}"), &format!("docker://{}/ci/app:skopeo", w.host));
    assert_eq!(w.digest(&format!("{}/ci/app:skopeo", w.host).parse().expect("ref")), digest);
    let mut copy = vec!["copy", "-q"];
    copy.extend_from_slice(&flags);
    let other = format!("docker://{}/ci/other:v1", w.host);
    let from = format!("docker://{by_podman}");
    copy.extend([from.as_str(), other.as_str()]);
    assert_refused(&w.output("skopeo", &copy, &[]), "a robot's push to ci/other", "403 (Forbidden)");
    let victim = format!("docker://{}/ci/app:skopeo", w.host);
    assert_refused(
        &w.output("skopeo", &["delete", "--tls-verify=false", "--creds", &creds, &victim], &[]),
        "a robot's delete",
        "403",
    );

    // oras-py with the robot's user name and secret.
    let wasm = w.path("helloworld.wasm");
    let by_oras = format!("{}/ci/app:oras", w.host);
    let env = [("WHARF_ORAS_USER", user), ("WHARF_ORAS_PASSWORD", secret.as_str())];
    let oras_digest = digest_of(&w.python_env(&["push-wasm", &by_oras, &wasm], &env));
    assert_eq!(w.digest(&by_oras.parse().expect("ref")), oras_digest);

    // wkg, with the robot in its Docker config.
    std::fs::create_dir_all(w.path(".docker")).expect("mkdir");
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &creds);
    std::fs::write(
        w.path(".docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#, w.host),
    )
    .expect("docker config");
    let component = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/component.wasm");
    let wkg_env =
        [("WKG_CONFIG_FILE", w.path("wkg.toml")), ("HOME", w.path("")), ("DOCKER_CONFIG", w.path(".docker"))];
    let wkg_env: Vec<(&str, &str)> = wkg_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let push = |name: &str| {
        w.output(
            "wkg",
            &["oci", "push", &format!("{}/{name}", w.host), component, "--insecure", &w.host],
            &wkg_env,
        )
    };
    let out = push("ci/app:wkg");
    assert!(out.status.success(), "wkg oci push: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!push("ci/other:wkg").status.success(), "a robot's wkg push to ci/other");

    // `wkg publish` of the package `ci:app` (its WIT built by `wkg wit build`), the robot in
    // wkg's own config, the package mapped onto the repository `ci/app`; `ci:other`, refused.
    let config = w.path("wkg-robot.toml");
    let mapping = |package: &str| {
        format!(
            "\"{package}\" = {{ registry = \"{0}\", metadata = {{ preferredProtocol = \"oci\", \"oci\" = {{ registry = \"{0}\", namespacePrefix = \"\" }} }} }}\n",
            w.host
        )
    };
    let toml = format!(
        "default_registry = \"{0}\"\n\n[package_registry_overrides]\n{1}{2}\n[registry.\"{0}\".oci]\nprotocol = \"http\"\nauth = {{ username = \"{user}\", password = \"{secret}\" }}\n",
        w.host,
        mapping("ci:app"),
        mapping("ci:other"),
    );
    std::fs::write(&config, toml).expect("wkg config");
    let publish = |package: &str| {
        let dir = w.path(package);
        std::fs::create_dir_all(format!("{dir}/wit")).expect("dir");
        std::fs::write(
            format!("{dir}/wit/world.wit"),
            format!(
                "package {package}@0.1.0;\ninterface api {{ ping: func(); }}\nworld app {{ export api; }}\n"
            ),
        )
        .expect("wit");
        let run = |args: &[&str]| {
            let out = Command::new("wkg")
                .args(args)
                .args(["--config", config.as_str()])
                .current_dir(&dir)
                .env("HOME", w.path(""))
                .env("WKG_CACHE_DIR", w.path("wkg-cache"))
                .output()
                .expect("wkg runs");
            (
                out.status.success(),
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            )
        };
        let (ok, out) = run(&["wit", "build"]);
        assert!(ok, "wkg wit build {package}: {out}");
        run(&["publish", &format!("{package}@0.1.0.wasm")])
    };
    let (ok, out) = publish("ci:app");
    assert!(ok, "wkg publish ci:app with the robot: {out}");
    let published: Reference = format!("{}/ci/app:0.1.0", w.host).parse().expect("ref");
    assert!(w.rt.block_on(w.client.resolve(&published)).is_ok(), "ci/app:0.1.0 is there");
    let (ok, out) = publish("ci:other");
    assert!(!ok && out.contains("`robot$ci-app` may not"), "wkg publish ci:other with the robot: {out}");

    // Nothing of the refused pushes is there.
    let reference: Reference = format!("{}/ci/other:v1", w.host).parse().expect("ref");
    assert!(w.rt.block_on(w.client.resolve(&reference)).is_err(), "ci/other exists");
    let reference: Reference = format!("{}/ci/other:0.1.0", w.host).parse().expect("ref");
    assert!(w.rt.block_on(w.client.resolve(&reference)).is_err(), "ci/other:0.1.0 exists");
}

/// A CI workload pushes with its own OIDC token, no stored secret: a GitHub-Actions-shaped
/// token of a test issuer written with PyJWT (`tests/oidc/issuer.py`, discovery and JWKS on
/// loopback) is the password podman logs in with and skopeo copies with, exchanged at
/// `/token` as each client does; a token of another branch is refused.
#[test]
fn flow17_a_ci_workload_pushes_with_its_oidc_token_through_podman_and_skopeo() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ready = Command::new(&python).args(["-c", "import jwt, cryptography"]).output();
    let missing =
        if ready.is_ok_and(|o| o.status.success()) { vec![] } else { vec![".venv with pyjwt".to_owned()] };
    if !runs("flow 17", &missing) {
        return;
    }
    let mut issuer = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/issuer.py"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the issuer");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(issuer.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    let url = format!("http://127.0.0.1:{}", line.trim().trim_start_matches("listening on "));
    let oidc = format!(
        "\n[[auth.oidc]]\nname = \"github\"\nissuer = \"{url}\"\naudience = \"wharf.test\"\n\n[[auth.oidc.rules]]\nclaims = {{ repository = \"acme/app\", ref = \"refs/heads/main\" }}\nrepositories = [\"acme/app/**\"]\nactions = [\"pull\", \"push\"]\n"
    );
    let Some(w) = World::start_on("flow 17", false, true, None, &oidc) else {
        let _ = issuer.kill();
        let _ = issuer.wait();
        return;
    };
    let mint = |git_ref: &str| -> String {
        w.rt.block_on(async {
            let claims = serde_json::json!({ "claims": { "ref": git_ref, "aud": "wharf.test" } });
            let r = w.http.post(format!("{url}/mint")).json(&claims).send().await.expect("mint");
            let answer: Value = r.json().await.expect("json");
            answer["token"].as_str().expect("a token").to_owned()
        })
    };
    let main = mint("refs/heads/main");

    // podman: a login with the OIDC token as the password, then a push.
    w.build_image("run.oci.handler=wasm", "localhost/hello:v1");
    let auth = w.path("oidc-auth.json");
    w.run(
        "podman",
        &["login", "--tls-verify=false", "--authfile", &auth, "-u", "oidc", "-p", &main, &w.host],
    );
    let by_podman = format!("{}/acme/app/web:podman", w.host);
    w.run(
        "podman",
        &[
            "push",
            "--tls-verify=false",
            "--authfile",
            &auth,
            "localhost/hello:v1",
            &format!("docker://{by_podman}"),
        ],
    );
    let digest = w.digest(&by_podman.parse().expect("ref"));

    // skopeo: a copy with --creds oidc:<token>.
    let creds = format!("oidc:{main}");
    let flags =
        ["--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", &creds, "--dest-creds", &creds];
    let to = format!("{}/acme/app/web:skopeo", w.host);
    w.skopeo_copy(&flags, &format!("docker://{by_podman}"), &format!("docker://{to}"));
    assert_eq!(w.digest(&to.parse().expect("ref")), digest);

    // Another branch's token: refused at the token endpoint, nothing pushed.
    let dev = format!("oidc:{}", mint("refs/heads/dev"));
    let to_dev = format!("docker://{}/acme/app/web:dev", w.host);
    let from = format!("docker://{by_podman}");
    let copy = [
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        "--dest-creds",
        &dev,
        &from,
        &to_dev,
    ];
    assert_refused(&w.output("skopeo", &copy, &[]), "a push with another branch's token", "401");
    let reference: Reference = format!("{}/acme/app/web:dev", w.host).parse().expect("ref");
    assert!(w.rt.block_on(w.client.resolve(&reference)).is_err(), "the refused push left a tag");
    let _ = issuer.kill();
    let _ = issuer.wait();
}
