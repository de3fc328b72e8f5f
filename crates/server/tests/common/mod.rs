//! A registry on a loopback port and a raw HTTP client for it, in-process or as the
//! `wharf-server` binary.

pub(crate) mod pki;
pub(crate) mod spawn;

pub(crate) use spawn::spawn_on_free_port;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use wharf_server::{Server, ServerHandle, Wharf};
use wharf_types::Digest;

/// The workspace's `.venv` Python when it imports `modules`, or `None` (the test is skipped);
/// with `WHARF_REQUIRE_ALL=1` a missing module fails the test (`.ci/install.sh` installs them).
pub(crate) fn venv_python(test: &str, modules: &[&str]) -> Option<std::path::PathBuf> {
    let python = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    let modules = modules.join(", ");
    assert!(
        !std::env::var("WHARF_REQUIRE_ALL").is_ok_and(|v| v == "1"),
        "{test}: .venv lacks {modules} and WHARF_REQUIRE_ALL=1 (.ci/install.sh installs them)"
    );
    eprintln!("SKIPPED {test}: no {modules} in .venv");
    None
}

pub(crate) struct Reg {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) handle: Option<ServerHandle>,
}

impl Reg {
    pub(crate) async fn start(storage: Arc<dyn wharf_store::Storage>) -> Self {
        Self::serve(Wharf::new(storage)).await
    }

    /// Serves `registry` (with its policies) on a loopback port.
    pub(crate) async fn serve(registry: Wharf) -> Self {
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        Self { base, http: reqwest::Client::new(), handle: Some(server.spawn()) }
    }

    pub(crate) async fn memory() -> Self {
        Self::start(Arc::new(wharf_store::MemoryStore::new())).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    pub(crate) fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub(crate) async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }

    /// POST ?digest= with the body (monolithic upload).
    pub(crate) async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256(data);
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "push blob");
        digest
    }

    pub(crate) async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &str,
    ) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("send")
    }
}

pub(crate) fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image manifest over a config and layers already pushed.
pub(crate) fn image_manifest(
    config: &Digest,
    config_size: usize,
    layers: &[(Digest, usize)],
    extra: &str,
) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{s}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// A storage URL for a fresh prefix (`<name>-<random>`) in the bucket of `WHARF_S3_URL`, or
/// `None` with a note that `test` was skipped; with `WHARF_REQUIRE_ALL=1` a missing engine
/// fails instead.
pub(crate) fn s3_storage(test: &str, name: &str) -> Option<String> {
    let url = match std::env::var("WHARF_S3_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("WHARF_REQUIRE_ALL").is_ok_and(|v| v == "1") => {
            panic!("{test}: WHARF_S3_URL is not set and WHARF_REQUIRE_ALL=1 (.ci/run starts Garage)")
        }
        _ => {
            eprintln!("SKIPPED {test}: no S3 engine (set WHARF_S3_URL)");
            return None;
        }
    };
    let (location, query) = url.split_once('?').unwrap_or((&url, ""));
    Some(format!("{}/{name}-{}?{query}", location.trim_end_matches('/'), wharf_store::UploadId::random()))
}

/// The `wharf-server` binary on a free loopback port (logs at `warn`, stdout dropped, errors on
/// the test's stderr); killed when dropped.
pub(crate) struct Process {
    child: Child,
    pub(crate) base: String,
}

impl Process {
    /// With `--storage storage`.
    pub(crate) fn start(storage: &str) -> Self {
        Self::start_with(&["--storage", storage])
    }

    /// With these flags besides `--listen`.
    pub(crate) fn start_with(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// With these flags besides `--listen`, and these environment variables.
    pub(crate) fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf-server"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("WHARF_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        let (child, addr) = spawn_on_free_port(&mut command);
        Self { child, base: format!("http://{addr}") }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().expect("an address")
    }

    /// Waits until `GET /v2/` answers 200.
    pub(crate) async fn ready(&self, http: &reqwest::Client) {
        for _ in 0..400 {
            if http.get(format!("{}/v2/", self.base)).send().await.is_ok_and(|r| r.status() == StatusCode::OK)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("wharf-server did not start at {}", self.base);
    }

    /// Sends `signal` (`-TERM`, `-KILL`).
    pub(crate) fn send(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().expect("kill").success());
    }

    /// Sends `signal`, then waits for the exit status.
    pub(crate) fn signal(&mut self, signal: &str) -> ExitStatus {
        self.send(signal);
        self.child.wait().expect("wait")
    }

    /// The exit status, if it has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
