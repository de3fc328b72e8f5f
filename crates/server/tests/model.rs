//! Model-based testing of the whole server over HTTP: random sequences of registry operations
//! on repository names that collide as parents, children and siblings (`a`, `a/b`, `a/b/c`,
//! `a/c`, `b`), with restarts (and, on fs, crashes: the server is a child process killed with
//! SIGKILL), each answer compared with a small in-memory model of what the distribution spec
//! says. Runs on memory, fs and S3 (Garage, with `WHARF_S3_URL`).
//!
//! `WHARF_MODEL_CASES` sets the number of cases per backend (default 12; `.ci/run` runs more).
//! A failure is shrunk by proptest to a short sequence: add it to `regressions` below.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use wharf_server::{Server, ServerHandle, Wharf};
use wharf_types::Digest;

use crate::common::Process;

const REPOS: [&str; 5] = ["a", "a/b", "a/b/c", "a/c", "b"];
const TAGS: [&str; 3] = ["latest", "v1", "v2"];
const BLOBS: usize = 4;
const MANIFESTS: usize = 5; // four image manifests and one index
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The fixed content the operations draw from.
struct Fixtures {
    blobs: Vec<Vec<u8>>,
    /// Manifest bytes; 0–3 are image manifests (2 and 3 refer to 0 as their subject), 4 is
    /// an index of 0 and 1.
    manifests: Vec<String>,
}

impl Fixtures {
    fn new() -> Self {
        let blobs: Vec<Vec<u8>> = (0..BLOBS).map(|i| format!("{{\"blob\":{i}}}").into_bytes()).collect();
        let desc = |media: &str, bytes: &[u8]| {
            format!(
                r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
                Digest::sha256(bytes),
                bytes.len()
            )
        };
        let image = |config: usize, layer: usize, extra: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]{extra}}}"#,
                desc("application/vnd.oci.image.config.v1+json", &blobs[config]),
                desc("application/vnd.oci.image.layer.v1.tar", &blobs[layer]),
            )
        };
        let m0 = image(0, 1, "");
        let m1 = image(1, 2, "");
        let subject = format!(r#","subject":{}"#, desc(OCI_MANIFEST, m0.as_bytes()));
        let m2 = image(2, 3, &format!(r#","artifactType":"application/vnd.test.sig"{subject}"#));
        let m3 = image(3, 0, &format!(r#","artifactType":"application/vnd.test.sbom"{subject}"#));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
            desc(OCI_MANIFEST, m0.as_bytes()),
            desc(OCI_MANIFEST, m1.as_bytes())
        );
        Self { blobs, manifests: vec![m0, m1, m2, m3, index] }
    }

    fn blob_digest(&self, b: usize) -> Digest {
        Digest::sha256(&self.blobs[b])
    }

    fn manifest_digest(&self, m: usize) -> Digest {
        Digest::sha256(self.manifests[m].as_bytes())
    }

    /// What a manifest needs in its repository: blobs (image) or manifests (index).
    fn needs(m: usize) -> (Vec<usize>, Vec<usize>) {
        match m {
            0 => (vec![0, 1], vec![]),
            1 => (vec![1, 2], vec![]),
            2 => (vec![2, 3], vec![]),
            3 => (vec![3, 0], vec![]),
            _ => (vec![], vec![0, 1]),
        }
    }

    fn media_type(m: usize) -> &'static str {
        if m == 4 { OCI_INDEX } else { OCI_MANIFEST }
    }
}

#[derive(Clone, Copy, Debug)]
enum Upload {
    Monolithic,
    PostThenPut,
    Chunked,
}

#[derive(Clone, Debug)]
enum Op {
    PushBlob {
        repo: usize,
        blob: usize,
        how: Upload,
    },
    CancelUpload {
        repo: usize,
        blob: usize,
    },
    Mount {
        repo: usize,
        blob: usize,
        from: Option<usize>,
    },
    PutManifest {
        repo: usize,
        manifest: usize,
        tag: Option<usize>,
    },
    DeleteManifest {
        repo: usize,
        manifest: usize,
    },
    DeleteTag {
        repo: usize,
        tag: usize,
    },
    DeleteBlob {
        repo: usize,
        blob: usize,
    },
    /// A garbage collection with no grace window (`POST /v2/_wharf/gc?grace=0`).
    Gc,
    Check,
    Restart,
    Crash,
    /// The disk fills up after this many more bytes (fault runs only).
    FillAfter(u64),
    /// The n-th write from now fails: before it happens, or after (its answer lost).
    FailWrite {
        nth: u64,
        after: bool,
    },
    /// The storage stops answering.
    Down,
    /// Every fault ends.
    Heal,
}

/// A request the server refused because of a storage fault (507, or 503 with `Retry-After`).
#[derive(Debug)]
struct Faulted(#[allow(dead_code, reason = "read through Debug")] StatusCode);

/// An answer: status, headers, body.
type Answer = Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), Faulted>;

/// The operations of [`op`], with storage faults among them.
fn op_or_fault() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op(),
        1 => (0u64..3000).prop_map(Op::FillAfter),
        1 => (1u64..5, any::<bool>()).prop_map(|(nth, after)| Op::FailWrite { nth, after }),
        1 => Just(Op::Down),
        1 => Just(Op::Heal),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let repo = 0..REPOS.len();
    let blob = 0..BLOBS;
    let how = prop_oneof![Just(Upload::Monolithic), Just(Upload::PostThenPut), Just(Upload::Chunked)];
    prop_oneof![
        8 => (repo.clone(), blob.clone(), how).prop_map(|(repo, blob, how)| Op::PushBlob { repo, blob, how }),
        1 => (repo.clone(), blob.clone()).prop_map(|(repo, blob)| Op::CancelUpload { repo, blob }),
        3 => (repo.clone(), blob.clone(), proptest::option::of(0..REPOS.len()))
            .prop_map(|(repo, blob, from)| Op::Mount { repo, blob, from }),
        8 => (repo.clone(), 0..MANIFESTS, proptest::option::of(0..TAGS.len()))
            .prop_map(|(repo, manifest, tag)| Op::PutManifest { repo, manifest, tag }),
        2 => (repo.clone(), 0..MANIFESTS).prop_map(|(repo, manifest)| Op::DeleteManifest { repo, manifest }),
        1 => (repo.clone(), 0..TAGS.len()).prop_map(|(repo, tag)| Op::DeleteTag { repo, tag }),
        2 => (repo, blob).prop_map(|(repo, blob)| Op::DeleteBlob { repo, blob }),
        1 => Just(Op::Gc),
        2 => Just(Op::Check),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// What the spec says the registry holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    /// Repositories that exist (ever pushed to, or an upload begun).
    repos: BTreeSet<usize>,
    blobs: BTreeMap<usize, BTreeSet<usize>>,
    manifests: BTreeMap<usize, BTreeSet<usize>>,
    tags: BTreeMap<usize, BTreeMap<usize, usize>>,
}

impl Model {
    fn has_blob(&self, repo: usize, blob: usize) -> bool {
        self.blobs.get(&repo).is_some_and(|b| b.contains(&blob))
    }

    fn has_manifest(&self, repo: usize, m: usize) -> bool {
        self.manifests.get(&repo).is_some_and(|s| s.contains(&m))
    }
}

/// Where the registry under test keeps its data, and how it runs.
#[derive(Clone)]
enum Backend {
    Memory(Arc<wharf_store::MemoryStore>),
    /// The `wharf-server` binary as a child process, so that a crash is a real SIGKILL.
    Fs(std::path::PathBuf),
    S3(String),
    /// A backend opened in this process (fs too) behind [`wharf_store::Faults`].
    Faulty(Box<Backend>, wharf_store::Faults),
}

enum Running {
    InProcess(ServerHandle),
    Process(Process),
}

struct Harness {
    backend: Backend,
    /// The faults made in the storage (fault runs).
    faults: Option<wharf_store::Faults>,
    /// A collection was refused for a fault midway (its lease may stay until it expires).
    gc_interrupted: bool,
    running: Option<Running>,
    base: String,
    http: reqwest::Client,
    fx: Fixtures,
}

impl Harness {
    async fn start(backend: Backend) -> Self {
        let faults = match &backend {
            Backend::Faulty(_, faults) => Some(faults.clone()),
            _ => None,
        };
        let mut h = Self {
            backend,
            faults,
            gc_interrupted: false,
            running: None,
            base: String::new(),
            http: reqwest::Client::new(),
            fx: Fixtures::new(),
        };
        h.up().await;
        h
    }

    async fn up(&mut self) {
        let storage: Arc<dyn wharf_store::Storage> = match &self.backend {
            Backend::Faulty(inner, faults) => {
                let inner: Arc<dyn wharf_store::Storage> = match &**inner {
                    Backend::Memory(store) => Arc::clone(store) as _,
                    Backend::Fs(dir) => Arc::new(wharf_store::FsStore::open(dir).await.expect("fs store")),
                    Backend::S3(url) => Arc::new(wharf_store::S3Store::from_url(url).expect("S3 store")),
                    Backend::Faulty(..) => unreachable!("one layer of faults"),
                };
                Arc::new(wharf_store::Hooked::new(inner, faults.clone()))
            }
            Backend::Memory(store) => Arc::clone(store) as _,
            Backend::S3(url) => Arc::new(wharf_store::S3Store::from_url(url).expect("S3 store")),
            Backend::Fs(dir) => {
                let process = Process::start(&format!("fs:{}", dir.display()));
                process.ready(&self.http).await;
                self.base.clone_from(&process.base);
                self.running = Some(Running::Process(process));
                return;
            }
        };
        let server =
            Server::bind("127.0.0.1:0".parse().expect("addr"), Wharf::new(storage)).await.expect("bind");
        self.base = format!("http://{}", server.local_addr());
        self.running = Some(Running::InProcess(server.spawn()));
    }

    /// Stops the server: gracefully, or (fs) with SIGKILL.
    async fn down(&mut self, crash: bool) {
        match self.running.take() {
            Some(Running::InProcess(handle)) => handle.shutdown().await.expect("clean shutdown"),
            Some(Running::Process(mut process)) => {
                let status = process.signal(if crash { "-KILL" } else { "-TERM" });
                assert!(crash || status.success(), "the server exited with {status} after SIGTERM");
            }
            None => {}
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, String)],
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        if let Some((bytes, content_type)) = body {
            request = request.header("Content-Type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        if let Some(faults) = &self.faults
            && (status == StatusCode::INSUFFICIENT_STORAGE || status == StatusCode::SERVICE_UNAVAILABLE)
        {
            // A storage fault: said as such, and only when one was made.
            assert!(headers.contains_key("retry-after"), "{path}: {status} without Retry-After");
            assert!(String::from_utf8_lossy(&body).contains("UNAVAILABLE"), "{path}: {status}");
            assert!(faults.made() > 0, "{path}: {status} with no fault made");
            return Err(Faulted(status));
        }
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {}", String::from_utf8_lossy(&body));
        Ok((status, headers, body))
    }

    /// Runs one operation, checks its answer against the model, and updates the model.
    async fn apply(&mut self, op: &Op, model: &mut Model) -> Result<(), Faulted> {
        match *op {
            Op::PushBlob { repo, blob, how } => {
                let name = REPOS[repo];
                let data = self.fx.blobs[blob].clone();
                let digest = self.fx.blob_digest(blob);
                let octet = "application/octet-stream";
                match how {
                    Upload::Monolithic => {
                        let post = format!("/v2/{name}/blobs/uploads/?digest={digest}");
                        let (s, ..) = self.send(Method::POST, &post, Some((data, octet)), &[]).await?;
                        assert_eq!(s, StatusCode::CREATED, "{op:?}");
                    }
                    Upload::PostThenPut | Upload::Chunked => {
                        let location = self.begin(name).await?;
                        let chunked = matches!(how, Upload::Chunked);
                        if chunked {
                            // Two PATCHes, each answered with the cumulative range.
                            let mid = data.len() / 2;
                            for (start, part) in [(0, &data[..mid]), (mid, &data[mid..])] {
                                let end = start + part.len() - 1;
                                let body = Some((part.to_vec(), octet));
                                let range = [("Content-Range", format!("{start}-{end}"))];
                                let (s, h, _) = self.send(Method::PATCH, &location, body, &range).await?;
                                assert_eq!(s, StatusCode::ACCEPTED, "{op:?}: PATCH");
                                let expected = format!("0-{end}");
                                assert_eq!(
                                    h.get("range").and_then(|v| v.to_str().ok()),
                                    Some(expected.as_str())
                                );
                            }
                        }
                        // The closing PUT carries the whole blob, or (chunked) nothing.
                        let sep = if location.contains('?') { '&' } else { '?' };
                        let put = format!("{location}{sep}digest={digest}");
                        let body = (!chunked).then_some((data, octet));
                        let (s, ..) = self.send(Method::PUT, &put, body, &[]).await?;
                        assert_eq!(s, StatusCode::CREATED, "{op:?}: PUT");
                    }
                }
                model.repos.insert(repo);
                model.blobs.entry(repo).or_default().insert(blob);
                let (s, ..) =
                    self.send(Method::HEAD, &format!("/v2/{name}/blobs/{digest}"), None, &[]).await?;
                assert_eq!(s, StatusCode::OK, "{op:?}: HEAD after push");
            }
            Op::CancelUpload { repo, blob } => {
                let name = REPOS[repo];
                let location = self.begin(name).await?;
                model.repos.insert(repo);
                let part = self.fx.blobs[blob][..3].to_vec();
                let (s, ..) = self
                    .send(
                        Method::PATCH,
                        &location,
                        Some((part, "application/octet-stream")),
                        &[("Content-Range", "0-2".into())],
                    )
                    .await?;
                assert_eq!(s, StatusCode::ACCEPTED, "{op:?}: PATCH");
                let (s, ..) = self.send(Method::DELETE, &location, None, &[]).await?;
                assert_eq!(s, StatusCode::NO_CONTENT, "{op:?}: DELETE");
                let (s, ..) = self.send(Method::GET, &location, None, &[]).await?;
                assert_eq!(s, StatusCode::NOT_FOUND, "{op:?}: a cancelled session is gone");
            }
            Op::Mount { repo, blob, from } => {
                let name = REPOS[repo];
                let digest = self.fx.blob_digest(blob);
                let path = match from {
                    Some(f) => format!("/v2/{name}/blobs/uploads/?mount={digest}&from={}", REPOS[f]),
                    None => format!("/v2/{name}/blobs/uploads/?mount={digest}"),
                };
                // With `from`, the source must hold it; without, Wharf mounts from any repository.
                let mountable = match from {
                    Some(f) => model.has_blob(f, blob),
                    None => model.blobs.values().any(|b| b.contains(&blob)),
                };
                let (s, h, _) = self.send(Method::POST, &path, None, &[]).await?;
                model.repos.insert(repo);
                if mountable {
                    assert_eq!(s, StatusCode::CREATED, "{op:?}");
                    model.blobs.entry(repo).or_default().insert(blob);
                } else {
                    assert_eq!(s, StatusCode::ACCEPTED, "{op:?}: nothing to mount starts an upload");
                    let location =
                        h.get("location").and_then(|v| v.to_str().ok()).expect("Location").to_owned();
                    let (s, ..) = self.send(Method::DELETE, &location, None, &[]).await?;
                    assert_eq!(s, StatusCode::NO_CONTENT);
                }
            }
            Op::PutManifest { repo, manifest, tag } => {
                let name = REPOS[repo];
                let digest = self.fx.manifest_digest(manifest);
                let reference = tag.map_or_else(|| digest.to_string(), |t| TAGS[t].to_owned());
                let body = self.fx.manifests[manifest].clone().into_bytes();
                let (s, h, b) = self
                    .send(
                        Method::PUT,
                        &format!("/v2/{name}/manifests/{reference}"),
                        Some((body, Fixtures::media_type(manifest))),
                        &[],
                    )
                    .await?;
                let (blobs, children) = Fixtures::needs(manifest);
                let complete = blobs.iter().all(|&b| model.has_blob(repo, b))
                    && children.iter().all(|&m| model.has_manifest(repo, m));
                if complete {
                    assert_eq!(s, StatusCode::CREATED, "{op:?}: {}", String::from_utf8_lossy(&b));
                    assert_eq!(
                        h.get("docker-content-digest").and_then(|v| v.to_str().ok()),
                        Some(digest.as_str())
                    );
                    model.repos.insert(repo);
                    model.manifests.entry(repo).or_default().insert(manifest);
                    if let Some(t) = tag {
                        model.tags.entry(repo).or_default().insert(t, manifest);
                    }
                } else {
                    assert_eq!(s, StatusCode::BAD_REQUEST, "{op:?}: {}", String::from_utf8_lossy(&b));
                    assert!(String::from_utf8_lossy(&b).contains("MANIFEST_BLOB_UNKNOWN"), "{op:?}");
                }
            }
            Op::DeleteManifest { repo, manifest } => {
                let digest = self.fx.manifest_digest(manifest);
                let (s, ..) = self
                    .send(Method::DELETE, &format!("/v2/{}/manifests/{digest}", REPOS[repo]), None, &[])
                    .await?;
                if model.has_manifest(repo, manifest) {
                    assert_eq!(s, StatusCode::ACCEPTED, "{op:?}");
                    model.manifests.entry(repo).or_default().remove(&manifest);
                    model.tags.entry(repo).or_default().retain(|_, m| *m != manifest);
                } else {
                    assert_eq!(s, StatusCode::NOT_FOUND, "{op:?}");
                }
            }
            Op::DeleteTag { repo, tag } => {
                let (s, ..) = self
                    .send(Method::DELETE, &format!("/v2/{}/manifests/{}", REPOS[repo], TAGS[tag]), None, &[])
                    .await?;
                if model.tags.get(&repo).is_some_and(|t| t.contains_key(&tag)) {
                    assert_eq!(s, StatusCode::ACCEPTED, "{op:?}");
                    model.tags.entry(repo).or_default().remove(&tag);
                } else {
                    assert_eq!(s, StatusCode::NOT_FOUND, "{op:?}");
                }
            }
            Op::DeleteBlob { repo, blob } => {
                let digest = self.fx.blob_digest(blob);
                let (s, ..) = self
                    .send(Method::DELETE, &format!("/v2/{}/blobs/{digest}", REPOS[repo]), None, &[])
                    .await?;
                if model.has_blob(repo, blob) {
                    assert_eq!(s, StatusCode::ACCEPTED, "{op:?}");
                    model.blobs.entry(repo).or_default().remove(&blob);
                } else {
                    assert_eq!(s, StatusCode::NOT_FOUND, "{op:?}");
                }
            }
            Op::Gc => {
                let (s, _, body) = self.send(Method::POST, "/v2/_wharf/gc?grace=0", None, &[]).await?;
                if s == StatusCode::CONFLICT && self.gc_interrupted {
                    // A collector the storage stopped keeps its lease until it expires, as
                    // one that crashed does: nothing was collected.
                    return Ok(());
                }
                assert_eq!(s, StatusCode::OK, "{op:?}: {}", String::from_utf8_lossy(&body));
                // Links no manifest of their repository references go (untagged manifests
                // stay: the default policy).
                for (repo, blobs) in &mut model.blobs {
                    let referenced: BTreeSet<usize> = model
                        .manifests
                        .get(repo)
                        .into_iter()
                        .flatten()
                        .flat_map(|&m| Fixtures::needs(m).0)
                        .collect();
                    blobs.retain(|b| referenced.contains(b));
                }
                self.check(model).await?;
            }
            Op::Check => self.check(model).await?,
            Op::FillAfter(bytes) => self.faults().fill_after(bytes),
            Op::FailWrite { nth, after } => self.faults().fail_write(nth, after),
            Op::Down => self.faults().set_down(true),
            Op::Heal => self.faults().heal(),
            Op::Restart | Op::Crash => {
                let crash = matches!(op, Op::Crash) && matches!(self.backend, Backend::Fs(_));
                self.down(crash).await;
                self.up().await;
                self.check(model).await?;
            }
        }
        Ok(())
    }

    fn faults(&self) -> &wharf_store::Faults {
        self.faults.as_ref().expect("fault ops run only over a Faulty backend")
    }

    /// What the registry holds, read back over HTTP (for a state after a faulted operation).
    async fn observe(&self) -> Result<Model, Faulted> {
        let mut seen = Model::default();
        let (s, _, body) = self.send(Method::GET, "/v2/_catalog", None, &[]).await?;
        assert_eq!(s, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("catalog JSON");
        for name in json["repositories"].as_array().expect("repositories") {
            let repo = REPOS.iter().position(|r| name == r).expect("a known repository");
            seen.repos.insert(repo);
        }
        for (repo, name) in REPOS.iter().enumerate() {
            for blob in 0..BLOBS {
                let path = format!("/v2/{name}/blobs/{}", self.fx.blob_digest(blob));
                if self.send(Method::HEAD, &path, None, &[]).await?.0 == StatusCode::OK {
                    seen.blobs.entry(repo).or_default().insert(blob);
                }
            }
            for m in 0..MANIFESTS {
                let path = format!("/v2/{name}/manifests/{}", self.fx.manifest_digest(m));
                if self.send(Method::GET, &path, None, &[]).await?.0 == StatusCode::OK {
                    seen.manifests.entry(repo).or_default().insert(m);
                }
            }
            for (t, tag) in TAGS.iter().enumerate() {
                let (s, _, body) =
                    self.send(Method::GET, &format!("/v2/{name}/manifests/{tag}"), None, &[]).await?;
                if s == StatusCode::OK {
                    let m = self
                        .fx
                        .manifests
                        .iter()
                        .position(|m| m.as_bytes() == body)
                        .expect("a known manifest");
                    seen.tags.entry(repo).or_default().insert(t, m);
                }
            }
        }
        Ok(seen)
    }

    /// The names of a paginated listing (`field` of each page), following `Link` to the end.
    async fn paged(&self, first: &str, field: &str) -> Result<Vec<String>, Faulted> {
        let mut names = Vec::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            assert!(pages <= 20, "{first}: pagination does not end");
            let (s, h, body) = self.send(Method::GET, &path, None, &[]).await?;
            assert_eq!(s, StatusCode::OK, "{path}");
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            names.extend(
                json[field].as_array().expect(field).iter().map(|v| v.as_str().expect("name").to_owned()),
            );
            next = h
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_owned()));
        }
        Ok(names)
    }

    /// POST an upload session; its `Location`.
    async fn begin(&self, name: &str) -> Result<String, Faulted> {
        let (s, h, _) = self.send(Method::POST, &format!("/v2/{name}/blobs/uploads/"), None, &[]).await?;
        assert_eq!(s, StatusCode::ACCEPTED, "POST upload to {name}");
        Ok(h.get("location").and_then(|v| v.to_str().ok()).expect("Location").to_owned())
    }

    /// Everything the model knows, read back: catalog, tags, blobs, manifests, referrers.
    async fn check(&self, model: &Model) -> Result<(), Faulted> {
        let (s, _, body) = self.send(Method::GET, "/v2/_catalog", None, &[]).await?;
        assert_eq!(s, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("catalog JSON");
        let expected: Vec<&str> = model.repos.iter().map(|&r| REPOS[r]).collect();
        assert_eq!(json["repositories"], serde_json::json!(expected), "catalog");
        // The same, two at a time, following `Link`.
        assert_eq!(self.paged("/v2/_catalog?n=2", "repositories").await?, expected, "paginated catalog");
        for (repo, name) in REPOS.iter().enumerate() {
            let (s, _, body) = self.send(Method::GET, &format!("/v2/{name}/tags/list"), None, &[]).await?;
            if model.repos.contains(&repo) {
                assert_eq!(s, StatusCode::OK, "tags of {name}");
                let json: serde_json::Value = serde_json::from_slice(&body).expect("tags JSON");
                let tags: Vec<&str> =
                    model.tags.get(&repo).map(|t| t.keys().map(|&t| TAGS[t]).collect()).unwrap_or_default();
                assert_eq!(json["tags"], serde_json::json!(tags), "tags of {name}");
                let paged = self.paged(&format!("/v2/{name}/tags/list?n=1"), "tags").await?;
                assert_eq!(paged, tags, "paginated tags of {name}");
            } else {
                assert_eq!(s, StatusCode::NOT_FOUND, "tags of {name}, which does not exist");
            }
            for blob in 0..BLOBS {
                let (s, h, _) = self
                    .send(Method::HEAD, &format!("/v2/{name}/blobs/{}", self.fx.blob_digest(blob)), None, &[])
                    .await?;
                let expected =
                    if model.has_blob(repo, blob) { StatusCode::OK } else { StatusCode::NOT_FOUND };
                assert_eq!(s, expected, "HEAD blob {blob} in {name}");
                if s == StatusCode::OK {
                    let len = self.fx.blobs[blob].len().to_string();
                    assert_eq!(h.get("content-length").and_then(|v| v.to_str().ok()), Some(len.as_str()));
                }
            }
            for m in 0..MANIFESTS {
                let digest = self.fx.manifest_digest(m);
                let (s, _, body) =
                    self.send(Method::GET, &format!("/v2/{name}/manifests/{digest}"), None, &[]).await?;
                if model.has_manifest(repo, m) {
                    assert_eq!(s, StatusCode::OK, "manifest {m} in {name}");
                    assert_eq!(body, self.fx.manifests[m].as_bytes(), "manifest {m} bytes in {name}");
                } else {
                    assert_eq!(s, StatusCode::NOT_FOUND, "manifest {m} in {name}");
                }
            }
            for (t, tag) in TAGS.iter().enumerate() {
                let (s, h, body) =
                    self.send(Method::GET, &format!("/v2/{name}/manifests/{tag}"), None, &[]).await?;
                match model.tags.get(&repo).and_then(|tags| tags.get(&t)) {
                    Some(&m) => {
                        assert_eq!(s, StatusCode::OK, "{name}:{tag}");
                        assert_eq!(body, self.fx.manifests[m].as_bytes(), "{name}:{tag}");
                        assert_eq!(
                            h.get("content-type").and_then(|v| v.to_str().ok()),
                            Some(Fixtures::media_type(m))
                        );
                    }
                    None => assert_eq!(s, StatusCode::NOT_FOUND, "{name}:{tag}"),
                }
            }
            let subject = self.fx.manifest_digest(0);
            let (s, _, body) =
                self.send(Method::GET, &format!("/v2/{name}/referrers/{subject}"), None, &[]).await?;
            assert_eq!(s, StatusCode::OK, "referrers in {name}");
            let json: serde_json::Value = serde_json::from_slice(&body).expect("referrers JSON");
            let mut got: Vec<String> = json["manifests"]
                .as_array()
                .expect("manifests")
                .iter()
                .map(|d| d["digest"].as_str().expect("digest").to_owned())
                .collect();
            got.sort();
            let mut expected: Vec<String> = [2, 3]
                .into_iter()
                .filter(|&m| model.has_manifest(repo, m))
                .map(|m| self.fx.manifest_digest(m).to_string())
                .collect();
            expected.sort();
            assert_eq!(got, expected, "referrers of manifest 0 in {name}");
            // Filtered by artifact type: only the signature (manifest 2).
            let (s, h, body) = self
                .send(
                    Method::GET,
                    &format!("/v2/{name}/referrers/{subject}?artifactType=application/vnd.test.sig"),
                    None,
                    &[],
                )
                .await?;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(h.get("oci-filters-applied").and_then(|v| v.to_str().ok()), Some("artifactType"));
            let json: serde_json::Value = serde_json::from_slice(&body).expect("referrers JSON");
            let got: Vec<&str> = json["manifests"]
                .as_array()
                .expect("manifests")
                .iter()
                .filter_map(|d| d["digest"].as_str())
                .collect();
            let expected = if model.has_manifest(repo, 2) {
                vec![self.fx.manifest_digest(2).to_string()]
            } else {
                vec![]
            };
            assert_eq!(got, expected, "signatures of manifest 0 in {name}");
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("WHARF_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

fn run(backend: impl Fn() -> Backend, ops: &[Op]) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut h = Harness::start(backend()).await;
        let mut model = Model::default();
        for op in ops {
            let before = model.clone();
            if let Err(faulted) = h.apply(op, &mut model).await {
                model = h.explain(op, &before, &faulted).await;
            }
        }
        if let Some(faults) = &h.faults {
            faults.heal();
        }
        h.check(&model).await.expect("no fault left");
        h.down(false).await;
    });
}

impl Harness {
    /// After `op` was refused for a storage fault: what the registry holds now, which must be
    /// `before` with at most the changes `op` itself makes (some done, some not, in the order
    /// the core writes them). Read on the full disk itself (reads go on); other faults end
    /// first.
    async fn explain(&mut self, op: &Op, before: &Model, faulted: &Faulted) -> Model {
        REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.gc_interrupted |= matches!(op, Op::Gc);
        let faults = self.faults();
        let seen = if let Ok(seen) = self.observe().await {
            seen
        } else {
            faults.heal();
            self.observe().await.expect("reads once every fault ended")
        };
        if let Err(why) = explainable(op, before, &seen) {
            panic!(
                "{op:?} refused ({faulted:?}) left a state the model cannot explain: {why}\nbefore: {before:?}\nnow: {seen:?}"
            );
        }
        if self.check(&seen).await.is_err() {
            faults.heal();
            self.check(&seen).await.expect("consistent once every fault ended");
        }
        seen
    }
}

/// Operations refused for a storage fault and explained, over every run of this binary.
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether `seen` is `before` changed only as `op` changes it.
fn explainable(op: &Op, before: &Model, seen: &Model) -> Result<(), String> {
    let touched_repo = match *op {
        Op::PushBlob { repo, .. }
        | Op::CancelUpload { repo, .. }
        | Op::Mount { repo, .. }
        | Op::PutManifest { repo, .. } => Some(repo),
        _ => None,
    };
    for repo in seen.repos.symmetric_difference(&before.repos) {
        if !(Some(*repo) == touched_repo && seen.repos.contains(repo)) {
            return Err(format!("repository {} appeared or went", REPOS[*repo]));
        }
    }
    for (repo, name) in REPOS.iter().enumerate() {
        for blob in 0..BLOBS {
            let (was, is) = (before.has_blob(repo, blob), seen.has_blob(repo, blob));
            let referenced = before
                .manifests
                .get(&repo)
                .into_iter()
                .flatten()
                .any(|&m| Fixtures::needs(m).0.contains(&blob));
            let allowed = was == is
                || match *op {
                    Op::PushBlob { repo: r, blob: b, .. } | Op::Mount { repo: r, blob: b, .. } => {
                        (r, b) == (repo, blob) && is
                    }
                    Op::DeleteBlob { repo: r, blob: b } => (r, b) == (repo, blob) && !is,
                    Op::Gc => !is && !referenced,
                    _ => false,
                };
            if !allowed {
                return Err(format!("blob {blob} in {name}: {was} → {is}"));
            }
        }
        for m in 0..MANIFESTS {
            let (was, is) = (before.has_manifest(repo, m), seen.has_manifest(repo, m));
            let allowed = was == is
                || match *op {
                    Op::PutManifest { repo: r, manifest, .. } => (r, manifest) == (repo, m) && is,
                    Op::DeleteManifest { repo: r, manifest } => (r, manifest) == (repo, m) && !is,
                    _ => false,
                };
            if !allowed {
                return Err(format!("manifest {m} in {name}: {was} → {is}"));
            }
        }
        for (t, tag_name) in TAGS.iter().enumerate() {
            let was = before.tags.get(&repo).and_then(|tags| tags.get(&t)).copied();
            let is = seen.tags.get(&repo).and_then(|tags| tags.get(&t)).copied();
            let allowed = was == is
                || match *op {
                    Op::PutManifest { repo: r, manifest, tag } => {
                        (r, tag) == (repo, Some(t)) && is == Some(manifest)
                    }
                    Op::DeleteManifest { repo: r, manifest } => {
                        r == repo && was == Some(manifest) && is.is_none()
                    }
                    Op::DeleteTag { repo: r, tag } => (r, tag) == (repo, t) && is.is_none(),
                    _ => false,
                };
            if !allowed {
                return Err(format!("tag {tag_name} in {name}: {was:?} → {is:?}"));
            }
            if let Some(m) = is
                && !seen.has_manifest(repo, m)
            {
                return Err(format!("tag {tag_name} in {name} names manifest {m}, which it does not hold"));
            }
        }
    }
    Ok(())
}

fn run_cases(name: &str, backend: impl Fn() -> Backend) {
    run_strategy(name, backend, op(), cases());
}

/// [`run_strategy`] with faults: it must have met some.
fn run_with_faults(name: &str, backend: impl Fn() -> Backend) {
    let before = REFUSED.load(std::sync::atomic::Ordering::Relaxed);
    run_strategy(name, backend, op_or_fault(), fault_cases());
    let refused = REFUSED.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!(
        "{name}: {} cases, {refused} refusals explained (the count is shared by concurrent tests)",
        fault_cases()
    );
    assert!(refused > 0 || fault_cases() < 8, "{name}: no operation met a fault");
}

/// Cases of the fault runs (`WHARF_FAULT_CASES`, default 12; `.ci/run` runs more).
fn fault_cases() -> u32 {
    std::env::var("WHARF_FAULT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

fn run_strategy(name: &str, backend: impl Fn() -> Backend, ops: impl Strategy<Value = Op>, cases: u32) {
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(ops, 1..40), |ops| {
        run(&backend, &ops);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn model_memory() {
    run_cases("memory", || Backend::Memory(Arc::new(wharf_store::MemoryStore::new())));
}

#[test]
fn model_fs_with_crashes() {
    let dirs = std::sync::Mutex::new(Vec::new());
    run_cases("fs", || {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        dirs.lock().expect("lock").push(dir);
        Backend::Fs(path)
    });
}

#[test]
fn model_s3() {
    if crate::common::s3_storage("model_s3", "model").is_some() {
        run_cases("s3", || Backend::S3(crate::common::s3_storage("model_s3", "model").expect("checked")));
    }
}

/// Issue 31: the random sequences with storage faults among them (a disk that fills up, the
/// n-th write failing before or after it happens, an engine that stops), on every backend
/// opened in this process behind [`wharf_store::Faults`]: every refusal is 507 or 503 with
/// `Retry-After` (never 500), and what a refused operation leaves is explainable.
#[test]
fn model_memory_with_faults() {
    run_with_faults("memory with faults", || {
        Backend::Faulty(
            Box::new(Backend::Memory(Arc::new(wharf_store::MemoryStore::new()))),
            wharf_store::Faults::new(),
        )
    });
}

#[test]
fn model_fs_with_faults() {
    let dirs = std::sync::Mutex::new(Vec::new());
    run_with_faults("fs with faults", || {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        dirs.lock().expect("lock").push(dir);
        Backend::Faulty(Box::new(Backend::Fs(path)), wharf_store::Faults::new())
    });
}

#[test]
fn model_s3_with_faults() {
    if crate::common::s3_storage("model_s3_with_faults", "faults").is_some() {
        run_with_faults("s3 with faults", || {
            let url = crate::common::s3_storage("model_s3_with_faults", "faults").expect("checked");
            Backend::Faulty(Box::new(Backend::S3(url)), wharf_store::Faults::new())
        });
    }
}

/// Issue 13's acceptance, spelled out: images pushed to `a`, `a/b` and `a/b/c` in each of the
/// six orders, then a restart (a crash on fs), then everything read back, on every backend.
#[test]
fn every_order_of_parent_child_and_grandchild_survives_a_restart() {
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for order in orders {
        let mut ops = Vec::new();
        for repo in order {
            ops.push(Op::PushBlob { repo, blob: 0, how: Upload::Monolithic });
            ops.push(Op::PushBlob { repo, blob: 1, how: Upload::Chunked });
            ops.push(Op::PutManifest { repo, manifest: 0, tag: Some(0) });
        }
        ops.push(Op::Restart);
        ops.push(Op::Crash);
        run(|| Backend::Memory(Arc::new(wharf_store::MemoryStore::new())), &ops);
        let dir = tempfile::tempdir().expect("tempdir");
        run(|| Backend::Fs(dir.path().to_owned()), &ops);
        if let Some(url) = crate::common::s3_storage("every_order (S3)", "orders") {
            run(|| Backend::S3(url.clone()), &ops);
        }
    }
}

/// Sequences that failed once, kept as plain tests.
mod regressions {
    use super::*;

    /// Runs `ops` on fs storage in a folder removed afterwards.
    fn on_fs(ops: &[Op]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        run(|| Backend::Fs(path.clone()), ops);
    }

    /// Issue 13: on fs, a push to `a` and then to `a/b` answered 500 (the record `catalog/a`
    /// had to be a file and a directory at once), and the journal then kept the server from
    /// starting again.
    #[test]
    fn parent_then_child_on_fs() {
        let ops = [
            Op::PushBlob { repo: 0, blob: 0, how: Upload::Monolithic },
            Op::PushBlob { repo: 1, blob: 0, how: Upload::Monolithic },
            Op::Crash,
            Op::PushBlob { repo: 2, blob: 1, how: Upload::Chunked },
        ];
        on_fs(&ops);
    }

    /// What proptest shrank the first failure to, on the code before issue 13: a blob pushed to
    /// `a`, then an upload begun in `a/b` answered 500.
    #[test]
    fn shrunk_push_then_cancelled_upload_in_the_child() {
        let ops = [
            Op::PushBlob { repo: 0, blob: 0, how: Upload::Monolithic },
            Op::CancelUpload { repo: 1, blob: 0 },
        ];
        on_fs(&ops);
    }

    /// The child first, then its parent, with manifests and a tag move in between.
    #[test]
    fn child_then_parent_with_manifests() {
        let ops = [
            Op::PushBlob { repo: 2, blob: 0, how: Upload::Monolithic },
            Op::PushBlob { repo: 2, blob: 1, how: Upload::PostThenPut },
            Op::PutManifest { repo: 2, manifest: 0, tag: Some(0) },
            Op::Mount { repo: 1, blob: 0, from: Some(2) },
            Op::Mount { repo: 0, blob: 1, from: None },
            Op::Mount { repo: 0, blob: 0, from: Some(1) },
            Op::PutManifest { repo: 0, manifest: 0, tag: Some(0) },
            Op::Restart,
            Op::DeleteBlob { repo: 2, blob: 0 },
            Op::PutManifest { repo: 2, manifest: 0, tag: Some(1) },
        ];
        on_fs(&ops);
        run(|| Backend::Memory(Arc::new(wharf_store::MemoryStore::new())), &ops);
    }
}
