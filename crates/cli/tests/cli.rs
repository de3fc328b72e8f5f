//! The `wharf` binary against a real `wharf-server` on loopback: every command's work, the
//! JSON `inspect` prints (the server's artifact record), and snapshots of `--help` and of the
//! messages for the common mistakes (`tests/snapshots/*.txt`; a `[..]` in a snapshot line
//! matches any text; `WHARF_SNAPSHOTS=overwrite` rewrites them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wharf");
const MODULE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm");
const COMPONENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/component.wasm");

/// Users and rules: `team/**` is alice's (pull, push, delete), bob only reads it.
const ACCESS: &str = r#"
[auth]
htpasswd = "users.htpasswd"

[[access]]
repositories = ["team/**"]
users = { alice = ["pull", "push", "delete"], bob = ["pull"] }
"#;

/// A registry on loopback (with access control or open) and a scratch folder whose
/// `auth.json` is the only credential store the commands see.
struct World {
    host: String,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    _server: wharf_server::ServerHandle,
}

impl World {
    fn start(access: bool) -> Self {
        Self::start_with(access, None)
    }

    /// A registry with `[packages]` and `[[versioning]]` from `packages` (a config file's text).
    fn start_with(access: bool, packages: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let server = rt.block_on(async {
            let mut registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new()));
            if let Some(text) = packages {
                let config = wharf_server::config::FileConfig::parse(text).expect("config");
                registry = registry.with_versioning(config.versioning().expect("versioning"));
            }
            let mut server = wharf_server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry)
                .await
                .expect("bind");
            if access {
                let mut users = wharf_auth::Htpasswd::default();
                users.set("alice", "alice-pw", 4).expect("hash");
                users.set("bob", "bob-pw", 4).expect("hash");
                std::fs::write(dir.path().join("users.htpasswd"), users.render()).expect("htpasswd");
                let config = wharf_server::config::FileConfig::parse(ACCESS).expect("config");
                server =
                    server.with_access(config.access(dir.path(), None).expect("access").expect("[auth]"));
            }
            server.spawn()
        });
        let host = format!("127.0.0.1:{}", server.local_addr().port());
        Self { host, dir, rt, _server: server }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `wharf` with `args` (and `stdin`), in the scratch folder, with its auth file.
    fn wharf_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.wharf_env(args, stdin, &[])
    }

    /// [`wharf_in`](Self::wharf_in) with more environment variables.
    fn wharf_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("HOME", self.dir.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("wharf runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("stdin");
        }
        drop(input);
        child.wait_with_output().expect("wharf runs")
    }

    fn wharf(&self, args: &[&str]) -> Output {
        self.wharf_in(args, None)
    }

    /// Runs `wharf` to success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.wharf(args);
        assert!(
            out.status.success(),
            "wharf {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn get_json(&self, path: &str) -> Value {
        self.rt.block_on(async {
            let url = format!("http://{}{path}", self.host);
            let response = wharf_client::reqwest::get(&url).await.expect("GET");
            assert!(response.status().is_success(), "{url}: {}", response.status());
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON")
        })
    }
}

/// Compares an output with its snapshot, after `replace` (dynamic text → a stable name).
fn snapshot(name: &str, out: &Output, replace: &[(&str, &str)]) {
    let mut actual = format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (from, to) in replace {
        actual = actual.replace(from, to);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let same = e.len() == a.len() && e.iter().zip(&a).all(|(e, a)| line_matches(e, a));
    if !same && std::env::var("WHARF_SNAPSHOTS").as_deref() == Ok("overwrite") {
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    assert!(
        same,
        "snapshot {name} differs (WHARF_SNAPSHOTS=overwrite to accept):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// Whether `actual` is `expected`, where each `[..]` in `expected` stands for any text.
fn line_matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn help_of_every_command() {
    let world = World::start(false);
    snapshot("help", &world.wharf(&["--help"]), &[]);
    for command in [
        "push",
        "pull",
        "inspect",
        "login",
        "logout",
        "token",
        "copy",
        "tags",
        "versions",
        "wit",
        "catalog",
        "upstreams",
        "referrers",
        "attach",
        "delete",
        "manifest",
        "blob",
        "completion",
        "man",
    ] {
        snapshot(&format!("help-{command}"), &world.wharf(&[command, "--help"]), &[]);
    }
    let out = world.wharf(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("wharf {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn common_mistakes_say_what_to_do() {
    let open = World::start(false);
    let secured = World::start(true);
    let wasm = format!("{}/webassembly/helloworld:v1", open.host);
    // Usage: exit 2.
    snapshot(
        "no-tag",
        &open.wharf(&["pull", &format!("{}/webassembly/helloworld", open.host), "-o", "x.wasm"]),
        &[(&open.host, "HOST")],
    );
    snapshot("missing-argument", &open.wharf(&["pull", &wasm]), &[(&open.host, "HOST")]);
    snapshot(
        "bad-annotation",
        &open.wharf(&["push", MODULE, &wasm, "--annotation", "no-equals"]),
        &[(&open.host, "HOST")],
    );
    // Failures: exit 1.
    std::fs::write(open.path("notes.txt"), "not wasm\n").expect("write");
    snapshot("not-wasm-file", &open.wharf(&["push", "notes.txt", &wasm]), &[(&open.host, "HOST")]);
    snapshot("unknown-host", &open.wharf(&["pull", "registry.invalid/app:v1", "-o", "x.wasm"]), &[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    snapshot(
        "refused",
        &open.wharf(&["pull", &format!("127.0.0.1:{port}/app:v1"), "-o", "x.wasm"]),
        &[(&port.to_string(), "PORT")],
    );
    std::fs::create_dir(open.path("certs")).expect("mkdir");
    snapshot(
        "tls-to-plain-http",
        &open.wharf(&["pull", &wasm, "-o", "x.wasm", "--cert-dir", "certs"]),
        &[(&open.host, "HOST")],
    );
    snapshot("not-found", &open.wharf(&["pull", &wasm, "-o", "x.wasm"]), &[(&open.host, "HOST")]);
    open.ok(&["push", MODULE, &wasm]);
    let note = open.ok(&["attach", &wasm, "notes.txt", "--artifact-type", "text/plain"]);
    let note = note.trim();
    snapshot(
        "not-wasm-artifact",
        &open.wharf(&["pull", &format!("{}/webassembly/helloworld@{note}", open.host), "-o", "x.wasm"]),
        &[(&open.host, "HOST"), (note, "DIGEST")],
    );
    // Access control: anonymous is refused (401), bob may read but not push (403).
    let team = format!("{}/team/app:v1", secured.host);
    snapshot("unauthorized", &secured.wharf(&["push", MODULE, &team]), &[(&secured.host, "HOST")]);
    snapshot(
        "wrong-password",
        &secured.wharf_in(&["login", &secured.host, "-u", "bob", "--password-stdin"], Some("nope\n")),
        &[(&secured.host, "HOST")],
    );
    secured.wharf_in(&["login", &secured.host, "-u", "bob", "--password-stdin"], Some("bob-pw\n"));
    snapshot("denied", &secured.wharf(&["push", MODULE, &team]), &[(&secured.host, "HOST")]);
    assert!(!secured.path("x.wasm").exists() && !open.path("x.wasm").exists(), "a failed pull wrote a file");
}

#[test]
fn the_articles_flow_and_every_command() {
    let w = World::start(false);
    let host = &w.host;
    // push/pull: a module as wasm-to-oci, a component as the CNCF artifact, byte-exact.
    for (file, repo, kind) in
        [(MODULE, "webassembly/helloworld", "wasm-to-oci"), (COMPONENT, "wasm/component", "cncf-artifact")]
    {
        let reference = format!("{host}/{repo}:v1");
        let digest = w.ok(&["push", file, &reference, "-a", "org.example.note=hello"]);
        let digest = digest.trim();
        assert!(digest.starts_with("sha256:"), "{digest}");
        w.ok(&["pull", &reference, "-o", "pulled.wasm"]);
        assert_eq!(std::fs::read(w.path("pulled.wasm")).expect("pulled"), std::fs::read(file).expect("file"));
        // inspect --json is the server's artifact record (but the times).
        let mut mine: Value = serde_json::from_str(&w.ok(&["inspect", &reference, "--json"])).expect("JSON");
        let mut theirs = w.get_json(&format!("/v2/{repo}/_wharf/artifacts/v1"));
        for _ in 0..100 {
            if theirs["inspection"]["status"] != "pending" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            theirs = w.get_json(&format!("/v2/{repo}/_wharf/artifacts/v1"));
        }
        for record in [&mut mine, &mut theirs] {
            record["pushedAt"] = Value::Null;
            record["inspection"]["finishedAt"] = Value::Null;
        }
        assert_eq!(mine, theirs, "wharf inspect --json and the server's record");
        assert_eq!(mine["wasm"], true);
        assert_eq!(mine["kind"], kind);
        assert_eq!(mine["digest"], digest);
        assert_eq!(mine["annotations"]["org.example.note"], "hello");
        let human = w.ok(&["inspect", &reference]);
        assert!(human.contains(&format!("WebAssembly    yes: {kind}")), "{human}");
    }
    // A hostile annotation cannot drive the terminal: control characters are shown escaped.
    let hostile = format!("{host}/hostile/app:v1");
    w.ok(&[
        "push",
        MODULE,
        &hostile,
        "-a",
        "title=\u{1b}]0;pwned\u{7}\u{1b}[31m<script>alert(1)</script>\nline",
    ]);
    let shown = w.ok(&["inspect", &hostile]);
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown:?}");
    assert!(
        shown.contains(r"title = \u{1b}]0;pwned\u{7}\u{1b}[31m<script>alert(1)</script>\nline"),
        "{shown}"
    );
    let component = w.ok(&["inspect", &format!("{host}/wasm/component:v1")]);
    assert!(
        component.contains("WIT world root:") && component.contains("import wasi:cli/environment@0.2.0;"),
        "{component}"
    );
    // inspect of local files.
    let file: Value = serde_json::from_str(&w.ok(&["inspect", MODULE, "--json"])).expect("JSON");
    assert_eq!(
        (file["wasm"].clone(), file["module"]["header"]["kind"].clone()),
        (Value::Bool(true), "core-module".into())
    );
    let manifest = w.ok(&["manifest", &format!("{host}/webassembly/helloworld:v1")]);
    std::fs::write(w.path("manifest.json"), &manifest).expect("write");
    let local: Value = serde_json::from_str(&w.ok(&["inspect", "manifest.json", "--json"])).expect("JSON");
    assert_eq!(local["kind"], "wasm-to-oci");
    // tags, catalog, delete.
    w.ok(&[
        "copy",
        &format!("{host}/webassembly/helloworld:v1"),
        &format!("{host}/webassembly/helloworld:v2"),
    ]);
    assert_eq!(w.ok(&["tags", &format!("{host}/webassembly/helloworld")]), "v1\nv2\n");
    assert_eq!(
        w.ok(&["catalog", host, "--json"]).split_whitespace().collect::<String>(),
        r#"["hostile/app","wasm/component","webassembly/helloworld"]"#
    );
    w.ok(&["delete", &format!("{host}/webassembly/helloworld:v2")]);
    assert_eq!(w.ok(&["tags", &format!("{host}/webassembly/helloworld")]), "v1\n");
    // attach and referrers.
    std::fs::write(w.path("sbom.json"), br#"{"spdxVersion":"SPDX-2.3"}"#).expect("write");
    let subject = format!("{host}/webassembly/helloworld:v1");
    let referrer = w.ok(&["attach", &subject, "sbom.json", "--artifact-type", "application/spdx+json"]);
    let listed = w.ok(&["referrers", &subject]);
    assert_eq!(
        listed,
        format!(
            "{} application/spdx+json {}\n",
            referrer.trim(),
            listed.split(' ').nth(2).unwrap_or("").trim()
        )
    );
    assert_eq!(w.ok(&["referrers", &subject, "--artifact-type", "text/plain"]), "");
    // blob: digest-verified, to a file.
    let layer = file_digest(MODULE);
    w.ok(&["blob", &format!("{host}/webassembly/helloworld@{layer}"), "-o", "layer.bin"]);
    assert_eq!(std::fs::read(w.path("layer.bin")).expect("blob"), std::fs::read(MODULE).expect("module"));
    // copy to an OCI layout and back, digest kept.
    let top = w.ok(&["copy", &subject, "oci:layout:hello"]);
    let back = w.ok(&["copy", "oci:layout:hello", &format!("{host}/restored/hello:v1")]);
    assert_eq!(top, back);
    assert_eq!(
        top.trim(),
        w.ok(&["inspect", &format!("{host}/restored/hello:v1"), "--json"])
            .split('"')
            .skip_while(|s| *s != "digest")
            .nth(2)
            .unwrap_or("")
    );
    // copy --all: every tag.
    w.ok(&["copy", "--all", &format!("{host}/webassembly/helloworld"), &format!("{host}/mirror/helloworld")]);
    assert_eq!(w.ok(&["tags", &format!("{host}/mirror/helloworld")]), "v1\n");
    // completions and the man page, from the same definitions.
    assert!(w.ok(&["completion", "bash"]).contains("wharf"));
    assert!(w.ok(&["completion", "zsh"]).contains("#compdef wharf"));
    assert!(w.ok(&["completion", "fish"]).contains("complete -c wharf"));
    assert!(w.ok(&["man"]).contains(".TH wharf"));
    w.ok(&["man", "--dir", "man"]);
    assert!(w.path("man/wharf-push.1").exists() && w.path("man/wharf.1").exists());
}

#[test]
fn login_and_logout_round_trip_through_the_auth_file() {
    let w = World::start(true);
    let team = format!("{}/team/app:v1", w.host);
    std::fs::write(w.path("auth.json"), r#"{"auths":{"other.example":{"auth":"eDp5"}},"kept":true}"#)
        .expect("write");
    let out = w.wharf_in(&["login", &w.host, "-u", "alice", "--password-stdin"], Some("alice-pw\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded!\n");
    let file: Value =
        serde_json::from_slice(&std::fs::read(w.path("auth.json")).expect("auth.json")).expect("JSON");
    assert_eq!(file["auths"][&w.host]["auth"], "YWxpY2U6YWxpY2UtcHc=", "base64 alice:alice-pw");
    assert_eq!(
        (file["kept"].clone(), file["auths"]["other.example"]["auth"].clone()),
        (Value::Bool(true), "eDp5".into())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(w.path("auth.json")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the auth file is the owner's only");
    }
    // The stored credentials serve the next commands.
    w.ok(&["push", MODULE, &team]);
    w.ok(&["pull", &team, "-o", "back.wasm"]);
    let out = w.wharf(&["logout", &w.host]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file: Value =
        serde_json::from_slice(&std::fs::read(w.path("auth.json")).expect("auth.json")).expect("JSON");
    assert!(file["auths"].get(&w.host).is_none() && file["auths"]["other.example"].is_object());
    assert_eq!(w.wharf(&["pull", &team, "-o", "again.wasm"]).status.code(), Some(1), "logged out: refused");
    assert_eq!(w.wharf(&["logout", &w.host]).status.code(), Some(1), "not logged in any more");
}

/// `wharf token`: alice makes a pull-only personal access token, it pulls and cannot push,
/// shows in her list without its secret, and stops working once revoked.
#[test]
fn personal_access_tokens_are_made_listed_used_and_revoked() {
    let w = World::start(true);
    let team = format!("{}/team/app:v1", w.host);
    w.wharf_in(&["login", &w.host, "-u", "alice", "--password-stdin"], Some("alice-pw\n"));
    w.ok(&["push", MODULE, &team]);
    let secret = w.ok(&[
        "token",
        "create",
        &w.host,
        "--name",
        "ci",
        "-r",
        "team/**",
        "--actions",
        "pull",
        "--expires",
        "1h",
    ]);
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("wharf_") && secret.len() == 6 + 16 + 1 + 43, "{secret}");
    let listed: Value = serde_json::from_str(&w.ok(&["token", "list", &w.host, "--json"])).expect("JSON");
    let tokens = listed["tokens"].as_array().expect("a list");
    assert_eq!(tokens.len(), 1);
    assert_eq!((tokens[0]["name"].as_str(), tokens[0]["kind"].as_str()), (Some("ci"), Some("personal")));
    assert!(!listed.to_string().contains(&secret), "never the secret again");
    let id = tokens[0]["id"].as_str().expect("an id").to_owned();
    assert!(w.ok(&["token", "list", &w.host]).contains(&format!("{id}  ci  [\"pull\"] on [\"team/**\"]")));

    // The token, stored as alice's password in another auth file: pulls, cannot push.
    let as_token = |args: &[&str]| w.wharf_env(args, None, &[("REGISTRY_AUTH_FILE", "token-auth.json")]);
    let login = w.wharf_env(
        &["login", &w.host, "-u", "alice", "--password-stdin"],
        Some(&format!("{secret}\n")),
        &[("REGISTRY_AUTH_FILE", "token-auth.json")],
    );
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert!(as_token(&["pull", &team, "-o", "pulled.wasm"]).status.success());
    let push = as_token(&["push", MODULE, &format!("{}/team/app:v2", w.host)]);
    assert_eq!(push.status.code(), Some(1), "a pull-only token pushed");
    // Tokens make no tokens.
    let again = as_token(&["token", "create", &w.host, "--name", "more", "-r", "team/**"]);
    assert_eq!(again.status.code(), Some(1), "a token made a token");

    w.ok(&["token", "revoke", &w.host, &id]);
    assert_eq!(as_token(&["pull", &team, "-o", "again.wasm"]).status.code(), Some(1), "revoked, still pulls");
    let listed: Value = serde_json::from_str(&w.ok(&["token", "list", &w.host, "--json"])).expect("JSON");
    assert_eq!(listed["tokens"], serde_json::json!([]));
    assert_eq!(w.wharf(&["token", "revoke", &w.host, &id]).status.code(), Some(1), "revoked twice");
}

#[test]
fn login_through_a_credential_helper() {
    let w = World::start(true);
    // A credential helper as docker runs them: `store` reads JSON, `get`/`erase` a host.
    let bin = w.path("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let store = w.path("helper-store.json");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  store) cat > '{0}' ;;\n  get) read host; [ -f '{0}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n     cat '{0}' ;;\n  erase) rm -f '{0}' ;;\nesac\n",
        store.display()
    );
    let helper = bin.join("docker-credential-wharftest");
    std::fs::write(&helper, script).expect("helper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(w.path("auth.json"), r#"{"credsStore":"wharftest"}"#).expect("auth.json");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str], stdin: Option<&str>| w.wharf_env(args, stdin, &[("PATH", &path)]);
    let out = run(&["login", &w.host, "-u", "alice", "--password-stdin"], Some("alice-pw\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&store).expect("the helper stored")).expect("JSON");
    assert_eq!(
        (stored["ServerURL"].as_str(), stored["Username"].as_str(), stored["Secret"].as_str()),
        (Some(w.host.as_str()), Some("alice"), Some("alice-pw"))
    );
    let file = std::fs::read_to_string(w.path("auth.json")).expect("auth.json");
    assert!(!file.contains("alice"), "with a helper the auth file holds no secret: {file}");
    let team = format!("{}/team/app:v1", w.host);
    let out = run(&["push", MODULE, &team], None);
    assert!(out.status.success(), "the helper's credentials: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["logout", &w.host], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!store.exists(), "logout erased the helper's entry");
}

/// Packages under `pkgs/`, versioned as `wkg` expects.
const PACKAGES: &str = r#"
[packages]
namespace_prefix = "pkgs/"

[[versioning]]
name = "packages"
repositories = ["pkgs/**"]
immutable_tags = ["semver"]
semver_only = true
compatible = true
"#;

/// A WIT package `acme:greeter@version` with `functions` in its `hello` interface, and a
/// `description` custom section as `wasm-tools metadata add` writes one.
fn greeter(version: &str, functions: &str) -> Vec<u8> {
    let mut bytes = wharf_wasm::wit::encode_package(&[&format!(
        "package acme:greeter@{version};\ninterface hello {{ {functions} }}\nworld greeter {{ export hello; }}\n"
    )])
    .expect("WIT");
    let section = [&[11u8][..], b"description", b"Greets people"].concat();
    bytes.push(0);
    bytes.push(u8::try_from(section.len()).expect("short"));
    bytes.extend_from_slice(&section);
    bytes
}

#[test]
fn packages_published_listed_and_shown_as_wkg_sees_them() {
    let w = World::start_with(false, Some(PACKAGES));
    let host = w.host.clone();
    let pkg = |args: &[&str]| -> Vec<String> {
        ["--registry", host.as_str()].iter().chain(args).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: Vec<String>| w.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let greet = "greet: func(name: string) -> string;";
    for (file, version, functions) in [
        ("g010.wasm", "0.1.0", greet.to_owned()),
        ("g011.wasm", "0.1.1", format!("{greet} wave: func();")),
        ("g020.wasm", "0.2.0", "hi: func();".to_owned()),
        ("g012.wasm", "0.1.2", "wave: func();".to_owned()),
    ] {
        std::fs::write(w.path(file), greeter(version, &functions)).expect("write");
    }
    // A package reference, resolved through the discovery file (prefix pkgs/).
    run(pkg(&["push", "g010.wasm", "acme:greeter@0.1.0"]));
    let manifest: Value =
        serde_json::from_str(&w.ok(&["manifest", &format!("{host}/pkgs/acme/greeter:0.1.0")])).expect("JSON");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.description"], "Greets people");
    assert_eq!(manifest["layers"][0]["annotations"]["org.opencontainers.image.title"], "greeter.wasm");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    // A plain reference into the package namespace is a package version too.
    let pushed: Value = serde_json::from_str(&w.ok(&[
        "push",
        "g011.wasm",
        &format!("{host}/pkgs/acme/greeter:0.1.1"),
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(
        (pushed["package"].as_str(), pushed["version"].as_str()),
        (Some("acme:greeter"), Some("0.1.1"))
    );
    run(pkg(&["push", "g020.wasm", "acme:greeter@0.2.0"]));
    // Refusals: a breaking 0.1.2 (the server's rule names the function), a WIT package pushed
    // as a version it does not declare (refused before anything is sent), no version.
    let breaking = w.wharf(&["--registry", &host, "push", "g012.wasm", "acme:greeter@0.1.2"]);
    let said = String::from_utf8_lossy(&breaking.stderr);
    assert_eq!(breaking.status.code(), Some(1), "{said}");
    assert!(said.contains("function `greet`") && said.contains("0.1.1"), "{said}");
    let mismatch = w.wharf(&["--registry", &host, "push", "g010.wasm", "acme:greeter@0.3.0"]);
    let said = String::from_utf8_lossy(&mismatch.stderr);
    assert_eq!(mismatch.status.code(), Some(1), "{said}");
    assert!(said.contains("declares `package acme:greeter@0.1.0`, not acme:greeter@0.3.0"), "{said}");
    let no_version = w.wharf(&["--registry", &host, "push", "g010.wasm", "acme:greeter"]);
    assert_eq!(no_version.status.code(), Some(2));
    // A component that exports the package's interface.
    let app = "package acme:app@1.0.0;\nworld app { export acme:greeter/hello@0.1.0; }";
    let greeter_wit = format!("package acme:greeter@0.1.0;\ninterface hello {{ {greet} }}");
    let component = wharf_wasm::wit::dummy_component(&[&greeter_wit, app], "app").expect("component");
    std::fs::write(w.path("app.wasm"), &component).expect("write");
    run(pkg(&["push", "app.wasm", "acme:app@1.0.0"]));

    // versions: semver order, content, what uses the package.
    let listed = run(pkg(&["versions", "acme:greeter"]));
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("VERSION") && rows[0].contains("EXPORTS"), "{listed}");
    let versions: Vec<&str> = rows[1..4].iter().map(|r| r.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(versions, ["0.1.0", "0.1.1", "0.2.0"], "{listed}");
    assert!(rows[1].contains("wit-package") && rows[1].contains("acme:greeter/hello@0.1.0"), "{listed}");
    assert!(listed.contains("used by acme:app 1.0.0, uses 0.1.0"), "{listed}");
    let by_repository = w.ok(&["versions", &format!("{host}/pkgs/acme/greeter"), "--json"]);
    let json: Value = serde_json::from_str(&by_repository).expect("JSON");
    assert_eq!(json["package"], "acme:greeter");
    assert_eq!(json["versions"].as_array().map(Vec::len), Some(3));
    let missing = w.wharf(&["--registry", &host, "versions", "acme:nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    // wit: a WIT package (no version: the newest), a component's world, a local file.
    let wit = run(pkg(&["wit", "acme:greeter"]));
    assert!(wit.contains("package acme:greeter@0.2.0;") && wit.contains("hi: func();"), "{wit}");
    let world = run(pkg(&["wit", "acme:app@1.0.0"]));
    assert!(world.contains("export acme:greeter/hello@0.1.0;"), "{world}");
    assert_eq!(w.ok(&["wit", "g010.wasm"]), run(pkg(&["wit", "acme:greeter@0.1.0"])));
    let core = w.wharf(&["wit", MODULE]);
    assert_eq!(core.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&core.stderr).contains("a core module has no WIT"));
    // inspect says WIT package and shows its WIT; pull is byte-exact.
    let shown = run(pkg(&["inspect", "acme:greeter@0.1.0"]));
    assert!(
        shown.contains("  WIT package\n") && shown.contains("WIT package acme:greeter@0.1.0:"),
        "{shown}"
    );
    let app_shown = run(pkg(&["inspect", "acme:app@1.0.0"]));
    assert!(app_shown.contains("uses           acme:greeter@0.1.0"), "{app_shown}");
    run(pkg(&["pull", "acme:greeter@0.1.0", "-o", "pulled.wasm"]));
    assert_eq!(std::fs::read(w.path("pulled.wasm")).expect("pulled"), greeter("0.1.0", greet));
}

/// `sha256:<hex>` of a file.
fn file_digest(path: &str) -> String {
    wharf_types::Digest::sha256(&std::fs::read(path).expect("read")).to_string()
}

#[test]
fn upstreams_shows_what_a_wharf_mirrors() {
    let world = World::start(false);
    // A second registry that mirrors the first, with a sync rule.
    let (mirror, _handle) = world.rt.block_on(async {
        let mut settings = wharf_server::mirror::UpstreamSettings::new(
            "first",
            &format!("http://{}", world.host),
            "mirrored".parse().expect("prefix"),
        )
        .expect("settings");
        settings.allow_private = true;
        settings.sync.push(wharf_server::mirror::SyncRule::new(
            "team/app".parse().expect("repo"),
            std::time::Duration::from_secs(3600),
        ));
        let registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new()))
            .with_mirror(wharf_server::mirror::Mirror::new(vec![settings]).expect("mirror"));
        let server =
            wharf_server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
        (format!("127.0.0.1:{}", server.local_addr().port()), server.spawn())
    });
    let out = world.ok(&["upstreams", &mirror]);
    assert!(out.contains(&format!("first  http://{}  as mirrored/…", world.host)), "{out}");
    assert!(out.contains("sync team/app tags * every 3600s, last queued never"), "{out}");
    let json: Value = serde_json::from_str(&world.ok(&["upstreams", &mirror, "--json"])).expect("JSON");
    assert_eq!(json["upstreams"][0]["name"], "first");
    // A registry that mirrors nothing says so.
    assert!(world.ok(&["upstreams", &world.host]).contains("mirrors no registry"));
}

/// Runs a command to success; its stdout.
fn run(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("runs");
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `wharf verify`: the registry's verdict (a Wharf enforcing a key on `prod/**`) and the same
/// verification done here with a policy file, over a cosign signature made by openssl; an
/// unsigned artifact, and a policy trusting another key, fail with exit status 1.
#[test]
fn verify_reports_the_registrys_verdict_and_verifies_here_with_a_policy_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["release", "other"] {
        let private = dir.path().join(format!("{name}.key"));
        run(Command::new("openssl")
            .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
            .arg(&private));
        run(Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(dir.path().join(format!("{name}.pub"))));
    }
    let policy = |key: &str| {
        format!(
            "[[trust_policy]]\nname = \"prod\"\nrepositories = [\"prod/**\"]\nmode = \"enforce\"\nkeys = [\"{key}.pub\"]\n"
        )
    };
    std::fs::write(dir.path().join("trust.toml"), policy("release")).expect("write");
    std::fs::write(dir.path().join("other.toml"), policy("other")).expect("write");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let config = wharf_server::config::FileConfig::read(&dir.path().join("trust.toml")).expect("config");
    let trust = config.trust(dir.path()).expect("trust");
    let server = rt.block_on(async {
        let registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new())).with_trust(trust);
        wharf_server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry)
            .await
            .expect("bind")
            .spawn()
    });
    let host = format!("127.0.0.1:{}", server.local_addr().port());
    let world = World { host: host.clone(), dir, rt, _server: server };
    world.ok(&["push", COMPONENT, &format!("{host}/prod/app:signed")]);
    world.ok(&["push", MODULE, &format!("{host}/prod/app:unsigned")]);
    let signed = world.get_json("/v2/prod/app/_wharf/artifacts/signed");
    let digest = signed["digest"].as_str().expect("digest").to_owned();

    // cosign's layout, signed by openssl with the release key.
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{host}/prod/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    std::fs::write(world.path("payload.json"), &payload).expect("write");
    let der = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(world.path("release.key"))
        .arg(world.path("payload.json")));
    std::fs::write(world.path("sig.der"), der).expect("write");
    let b64 = run(Command::new("openssl").args(["base64", "-A", "-in"]).arg(world.path("sig.der")));
    let signature = String::from_utf8(b64).expect("base64").trim().to_owned();
    world.rt.block_on(async {
        let http = wharf_client::reqwest::Client::new();
        let blob = |data: Vec<u8>| {
            let d = wharf_types::Digest::sha256(&data);
            let url = format!("http://{host}/v2/prod/app/blobs/uploads/?digest={d}");
            let request = http.post(url).header("Content-Type", "application/octet-stream").body(data);
            (d, request)
        };
        let (payload_digest, r) = blob(payload.clone().into_bytes());
        assert!(r.send().await.expect("send").status().is_success());
        let (empty, r) = blob(b"{}".to_vec());
        assert!(r.send().await.expect("send").status().is_success());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#,
            payload.len()
        );
        let tag = digest.replace(':', "-") + ".sig";
        let r = http
            .put(format!("http://{host}/v2/prod/app/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await
            .expect("send");
        assert!(r.status().is_success(), "{}", r.status());
    });
    // The registry verifies it in a job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while world.get_json(&format!("/v2/prod/app/_wharf/artifacts/{digest}"))["trustVerdict"]["verdict"]
        != "verified"
    {
        assert!(std::time::Instant::now() < deadline, "never verified");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let out = world.ok(&["verify", &format!("{host}/prod/app:signed")]);
    assert!(out.contains("registry       verified (trust policy prod)"), "{out}");
    assert!(out.contains("cosign, verified: key sha256:"), "{out}");
    let out = world.ok(&["verify", &format!("{host}/prod/app:signed"), "--policy", "trust.toml"]);
    assert!(
        out.contains("here (trust.toml)verified (trust policy prod)")
            || out.contains("here (trust.toml) verified (trust policy prod)"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&world.ok(&[
        "verify",
        &format!("{host}/prod/app:signed"),
        "--policy",
        "trust.toml",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(json["local"]["trustVerdict"]["verdict"], "verified", "{json}");
    assert_eq!(json["local"]["trust"]["signatures"][0]["format"], "cosign", "{json}");
    assert_eq!(json["registry"]["trustVerdict"]["verdict"], "verified", "{json}");
    let out = world.ok(&["inspect", &format!("{host}/prod/app:signed")]);
    assert!(
        out.contains("trust          verified (trust policy prod)") && out.contains("cosign, verified: key"),
        "{out}"
    );

    // Another key trusted here: the registry says verified, the policy file does not.
    let out = world.wharf(&["verify", &format!("{host}/prod/app:signed"), "--policy", "other.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is denied by the policy file other.toml"), "{err}");
    // Unsigned: the registry denies it (and refuses it to `--policy`, which cannot read it).
    let out = world.wharf(&["verify", &format!("{host}/prod/app:unsigned")]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("registry       denied by trust policy prod: "), "{stdout}");
    assert!(err.contains("is denied by the registry"), "{err}");
}
