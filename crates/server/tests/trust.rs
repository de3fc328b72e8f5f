//! Trust policies over signatures made by independent signers: npm's `@sigstore/sign` against
//! the local Fulcio and Rekor of `@sigstore/mock`, attached by `@sigstore/oci`
//! (`tests/sigstore/sign.mjs`), and cosign's classic layout signed by `openssl`. The signer
//! (`ci`, push rights) signs over HTTP like any client; a reader (pull only) pulls.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wharf_server::config::FileConfig;
use wharf_server::{Server, ServerHandle, Wharf};
use wharf_types::Digest;

const USERS: [(&str, &str); 2] = [("ci", "ci-pw"), ("reader", "reader-pw")];

/// The directory of the npm signer (`tests/sigstore` at the workspace root), or `None` (the
/// test is skipped) when its packages are not installed; with `WHARF_REQUIRE_ALL=1` that fails.
pub(crate) fn signer_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sigstore");
    let ready = dir.join("node_modules/@sigstore/mock").is_dir()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if ready {
        return Some(dir);
    }
    assert!(
        !std::env::var("WHARF_REQUIRE_ALL").is_ok_and(|v| v == "1"),
        "{test}: node or tests/sigstore/node_modules is missing and WHARF_REQUIRE_ALL=1 (.ci/install.sh installs them)"
    );
    eprintln!("SKIPPED {test}: no npm signer (cd tests/sigstore && npm ci)");
    None
}

struct Trusted {
    dir: tempfile::TempDir,
    signer: PathBuf,
    base: String,
    http: reqwest::Client,
    handle: Option<ServerHandle>,
}

const CONFIG: &str = r#"
[auth]
htpasswd = "users.htpasswd"
public_metrics = true

[[access]]
repositories = ["staging/**"]
anonymous = ["pull"]

[[access]]
repositories = ["**"]
users = { ci = ["pull", "push"], reader = ["pull"] }

[[access]]
repositories = ["scratch/**"]
users = { reader = ["pull", "push"] }

[trust]
fulcio_roots = "keys/fulcio.pem"
rekor_keys = "keys/rekor.pub"

[[trust_policy]]
name = "prod-signed"
repositories = ["prod/**"]
mode = "enforce"
identities = [{ issuer = "https://issuer.test", subject = "ci@example.com" }]
keys = ["keys/signer.pub"]

[[trust_policy]]
name = "staging-audit"
repositories = ["staging/**"]
mode = "audit"
identities = [{ issuer = "https://issuer.test", subject = "*@example.com" }]
"#;

impl Trusted {
    async fn start(signer: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        run(Command::new("node").arg(signer.join("sign.mjs")).arg("keys").arg(&keys));
        let mut users = wharf_auth::Htpasswd::default();
        for (user, password) in USERS {
            users.set(user, password, 4).expect("hash");
        }
        std::fs::write(dir.path().join("users.htpasswd"), users.render()).expect("write");
        std::fs::write(dir.path().join("wharf.toml"), CONFIG).expect("write");
        let file = FileConfig::read(&dir.path().join("wharf.toml")).expect("the config parses");
        let data = dir.path().join("data");
        let store = wharf_store::FsStore::open(&data).await.expect("store");
        let access = file.access(dir.path(), Some(&data)).expect("access").expect("[auth]");
        let trust = file.trust(dir.path()).expect("[trust] and [[trust_policy]]");
        let registry = Wharf::new(Arc::new(store)).with_trust(trust);
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"), registry)
            .await
            .expect("bind")
            .with_access(access);
        let base = format!("127.0.0.1:{}", server.local_addr().port());
        Self { dir, signer, base, http: reqwest::Client::new(), handle: Some(server.spawn()) }
    }

    fn req(&self, who: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        let (user, password) = USERS.iter().find(|(u, _)| *u == who).expect("a user");
        self.http.request(method, format!("http://{}{path}", self.base)).basic_auth(user, Some(password))
    }

    /// Pushes an image (one layer of `content`) as `ci`; returns its digest and layer.
    async fn push_image(&self, repo: &str, tag: &str, content: &[u8]) -> (Digest, Digest) {
        let layer = self.blob(repo, content).await;
        let config = self.blob(repo, br#"{"architecture":"amd64","os":"linux"}"#).await;
        let manifest = crate::common::image_manifest(&config, 37, &[(layer.clone(), content.len())], "");
        (self.manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &manifest).await, layer)
    }

    /// Pushes a Wasm module in the wasm-to-oci layout as `ci`; returns its digest.
    async fn push_wasm(&self, repo: &str, tag: &str, name: &str) -> Digest {
        let mut module = b"\0asm\x01\0\0\0\0\x05\x04name".to_vec();
        module.extend_from_slice(name.as_bytes());
        let layer = self.blob(repo, &module).await;
        let config = self.blob(repo, b"{}").await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.wasm.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.wasm.content.layer.v1+wasm","digest":"{layer}","size":{}}}]}}"#,
            module.len()
        );
        self.manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &manifest).await
    }

    /// The reader's search (`query`): each hit's `repository@digest` and its signers.
    async fn search(&self, query: &str) -> Vec<(String, Value)> {
        let r = self.req("reader", Method::GET, &format!("/v2/_wharf/search?{query}")).send().await;
        let v: Value = r.expect("send").json().await.expect("JSON");
        let hits = v["results"].as_array().unwrap_or_else(|| panic!("{query}: {v}"));
        hits.iter()
            .map(|h| {
                (
                    format!(
                        "{}@{}",
                        h["repository"].as_str().unwrap_or_default(),
                        h["digest"].as_str().unwrap_or_default()
                    ),
                    h["signedBy"].clone(),
                )
            })
            .collect()
    }

    /// A web page, as an anonymous visitor sees it.
    async fn page(&self, path: &str) -> String {
        let r = self.http.get(format!("http://{}{path}", self.base)).send().await.expect("send");
        r.text().await.expect("text")
    }

    async fn blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256(data);
        let r = self
            .req("ci", Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "blob push");
        digest
    }

    async fn manifest(&self, repo: &str, reference: &str, media_type: &str, body: &str) -> Digest {
        let r = self
            .req("ci", Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "manifest push: {}", r.text().await.unwrap_or_default());
        Digest::sha256(body.as_bytes())
    }

    /// Signs `repo:tag` with the npm signer as `ci`, with `options`; returns the signature's
    /// digest.
    fn sign(&self, reference: &str, options: &[&str]) -> Digest {
        let out = run(Command::new("node")
            .arg(self.signer.join("sign.mjs"))
            .arg("attach")
            .arg(self.dir.path().join("keys"))
            .arg(format!("{}/{reference}", self.base))
            .args(["--user", "ci", "--password", "ci-pw"])
            .args(options));
        let v: Value = serde_json::from_str(out.trim()).expect("the signer's JSON");
        v["signature"].as_str().expect("a digest").parse().expect("a digest")
    }

    /// A pull of a manifest by `who`: the status and the body.
    async fn pull(&self, who: &str, method: Method, repo: &str, reference: &str) -> (StatusCode, String) {
        let r = self
            .req(who, method, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .expect("send");
        (r.status(), r.text().await.expect("body"))
    }

    /// The artifact record's `trust` once its signatures were verified (`signatures` many).
    async fn trust(&self, repo: &str, digest: &Digest, signatures: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self
                .req("reader", Method::GET, &format!("/v2/{repo}/_wharf/artifacts/{digest}"))
                .send()
                .await;
            let v: Value = r.expect("send").json().await.expect("JSON");
            let found = v["trust"]["signatures"].as_array().map_or(0, Vec::len)
                + v["trust"]["omitted"].as_u64().unwrap_or(0) as usize;
            if v["trust"].is_object() && found >= signatures {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{repo}@{digest}: {signatures} signatures never verified: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("runs");
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The issue's acceptance, over HTTP: under `enforce` on `prod/**` trusting `ci@example.com`,
/// what is signed by it (keyless, message or DSSE), by the trusted key, or in cosign's layout
/// pulls; what is unsigned, signed by someone else, tampered with, or signed for another
/// digest answers 403 naming the policy (blobs too); the signer signs unsigned artifacts
/// without being blocked; `audit` serves and counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_serves_only_what_a_trusted_signer_signed_and_audit_reports() {
    let Some(signer) =
        signer_dir("trust::enforce_serves_only_what_a_trusted_signer_signed_and_audit_reports")
    else {
        return;
    };
    let reg = Trusted::start(signer).await;
    let mut images = Vec::new();
    for tag in ["signed", "dsse", "keyed", "cosign", "unsigned", "mallory", "tampered", "elsewhere"] {
        images.push((tag, reg.push_image("prod/app", tag, format!("layer of {tag}").as_bytes()).await));
    }
    let digest =
        |tag: &str| images.iter().find(|(t, _)| *t == tag).map(|(_, (d, _))| d.clone()).expect("pushed");
    let layer =
        |tag: &str| images.iter().find(|(t, _)| *t == tag).map(|(_, (_, l))| l.clone()).expect("pushed");

    // Before any signature, even the signer's GET is answered (it reads what it signs); the
    // reader's is refused.
    assert_eq!(reg.pull("ci", Method::GET, "prod/app", "signed").await.0, StatusCode::OK);
    let (status, body) = reg.pull("reader", Method::GET, "prod/app", "signed").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let signatures = [
        ("signed", reg.sign("prod/app:signed", &[])),
        ("dsse", reg.sign("prod/app:dsse", &["--dsse"])),
        ("keyed", reg.sign("prod/app:keyed", &["--key"])),
        ("mallory", reg.sign("prod/app:mallory", &["--identity", "mallory@example.org"])),
        ("tampered", reg.sign("prod/app:tampered", &["--tamper"])),
        ("elsewhere", reg.sign("prod/app:elsewhere", &["--dsse", "--subject", digest("signed").as_str()])),
    ];
    // cosign's classic layout: a simple-signing payload signed by openssl with the trusted key.
    let cosign = digest("cosign");
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/prod/app"}},"image":{{"docker-manifest-digest":"{cosign}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        reg.base
    );
    let payload_file = reg.dir.path().join("payload.json");
    std::fs::write(&payload_file, &payload).expect("write");
    let key = reg.dir.path().join("keys/signer.key");
    let der = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(&payload_file)
        .output()
        .expect("openssl");
    assert!(der.status.success());
    let signature = base64_encode(&der.stdout);
    let payload_digest = reg.blob("prod/app", payload.as_bytes()).await;
    let empty = reg.blob("prod/app", b"{}").await;
    let sig_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#,
        payload.len()
    );
    let sig_tag = format!("sha256-{}.sig", cosign.encoded());
    reg.manifest("prod/app", &sig_tag, "application/vnd.oci.image.manifest.v1+json", &sig_manifest).await;

    for (tag, _) in &signatures {
        reg.trust("prod/app", &digest(tag), 1).await;
    }
    let record = reg.trust("prod/app", &cosign, 1).await;
    assert_eq!(record["trust"]["signatures"][0]["format"], "cosign", "{record}");

    // The artifact API says who signed, and the log entry.
    let record = reg.trust("prod/app", &digest("signed"), 1).await;
    let sig = &record["trust"]["signatures"][0];
    assert_eq!(sig["verified"], true, "{record}");
    assert_eq!(sig["signer"]["subject"], "ci@example.com");
    assert_eq!(sig["signer"]["issuer"], "https://issuer.test");
    assert!(sig["log"]["index"].is_u64() && sig["log"]["inclusionProof"] == true, "{record}");
    assert_eq!(record["trustVerdict"]["verdict"], "verified", "{record}");
    assert_eq!(record["trustVerdict"]["policies"][0], "prod-signed", "{record}");
    let unsigned = reg.trust("prod/app", &digest("unsigned"), 0).await;
    assert_eq!(unsigned["trustVerdict"]["verdict"], "denied", "{unsigned}");
    assert_eq!(unsigned["trustVerdict"]["reason"], "it is not signed", "{unsigned}");
    let mut errors = Vec::new();
    let doc = crate::openapi::document();
    crate::openapi::check(&doc, &doc["components"]["schemas"]["Artifact"], &record, "artifact", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");

    for tag in ["signed", "dsse", "keyed", "cosign"] {
        for method in [Method::HEAD, Method::GET] {
            let (status, body) = reg.pull("reader", method.clone(), "prod/app", tag).await;
            assert_eq!(status, StatusCode::OK, "{method} {tag}: {body}");
        }
        let r = reg.req("reader", Method::GET, &format!("/v2/prod/app/blobs/{}", layer(tag))).send().await;
        assert_eq!(r.expect("send").status(), StatusCode::OK, "the layer of {tag}");
    }
    let refused = [
        ("unsigned", "not signed"),
        ("mallory", "mallory@example.org"),
        ("tampered", "no signature verifies"),
        ("elsewhere", "no signature verifies"),
    ];
    for (tag, why) in refused {
        for reference in [tag.to_owned(), digest(tag).to_string()] {
            let (status, body) = reg.pull("reader", Method::GET, "prod/app", &reference).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{tag}: {body}");
            assert!(body.contains("DENIED") && body.contains("trust policy prod-signed"), "{tag}: {body}");
            assert!(body.contains(why), "{tag}: {body}");
            assert_eq!(
                reg.pull("reader", Method::HEAD, "prod/app", &reference).await.0,
                StatusCode::FORBIDDEN
            );
        }
        let r = reg.req("reader", Method::GET, &format!("/v2/prod/app/blobs/{}", layer(tag))).send().await;
        assert_eq!(r.expect("send").status(), StatusCode::FORBIDDEN, "the layer of {tag}");
        let r = reg.req("ci", Method::GET, &format!("/v2/prod/app/blobs/{}", layer(tag))).send().await;
        assert_eq!(r.expect("send").status(), StatusCode::OK, "the signer reads the layer of {tag}");
    }
    // A signed index covers its children: each child manifest and its layers pull (podman
    // pulls a multi-platform image child by digest after the index).
    let (amd, amd_layer) = reg.push_image("prod/multi", "amd64", b"amd64 layer").await;
    let (arm, _) = reg.push_image("prod/multi", "arm64", b"arm64 layer").await;
    let size = |body: String| body.len();
    let amd_size = size(reg.pull("ci", Method::GET, "prod/multi", "amd64").await.1);
    let arm_size = size(reg.pull("ci", Method::GET, "prod/multi", "arm64").await.1);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{amd}","size":{amd_size},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{arm}","size":{arm_size},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        crate::common::OCI_INDEX
    );
    let index_digest = reg.manifest("prod/multi", "v1", crate::common::OCI_INDEX, &index).await;
    assert_eq!(reg.pull("reader", Method::GET, "prod/multi", amd.as_str()).await.0, StatusCode::FORBIDDEN);
    reg.sign("prod/multi:v1", &[]);
    reg.trust("prod/multi", &index_digest, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for child in [&amd, &arm] {
        loop {
            let (status, body) = reg.pull("reader", Method::GET, "prod/multi", child.as_str()).await;
            if status == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "the child {child} of a signed index: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let r = reg.req("reader", Method::GET, &format!("/v2/prod/multi/blobs/{amd_layer}")).send().await;
    assert_eq!(r.expect("send").status(), StatusCode::OK, "a child's layer");
    // By its own tag too: the same manifest.
    assert_eq!(reg.pull("reader", Method::GET, "prod/multi", "amd64").await.0, StatusCode::OK);

    // A mount is no way around it: from under `enforce`, a reader's mount starts an upload
    // instead, and the blob is not in the other repository.
    for tag in ["unsigned", "signed"] {
        let path = format!("/v2/scratch/copy/blobs/uploads/?mount={}&from=prod/app", layer(tag));
        let r = reg.req("reader", Method::POST, &path).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::ACCEPTED, "the mount of the layer of {tag}");
        let r =
            reg.req("reader", Method::GET, &format!("/v2/scratch/copy/blobs/{}", layer(tag))).send().await;
        assert_eq!(r.expect("send").status(), StatusCode::NOT_FOUND, "the layer of {tag}");
    }
    // The signer's mount (push rights on both) is a mount.
    let path = format!("/v2/scratch/copy/blobs/uploads/?mount={}&from=prod/app", layer("unsigned"));
    let r = reg.req("ci", Method::POST, &path).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::CREATED, "the signer's mount");

    // What signing and verifying need is never blocked: the referrers, the signatures.
    for (tag, signature) in &signatures {
        let r =
            reg.req("reader", Method::GET, &format!("/v2/prod/app/referrers/{}", digest(tag))).send().await;
        let r = r.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let index: Value = r.json().await.expect("JSON");
        assert!(
            index["manifests"]
                .as_array()
                .is_some_and(|m| m.iter().any(|d| d["digest"] == signature.as_str()))
        );
        let (status, body) = reg.pull("reader", Method::GET, "prod/app", signature.as_str()).await;
        assert_eq!(status, StatusCode::OK, "the signature of {tag}: {body}");
    }
    assert_eq!(reg.pull("reader", Method::GET, "prod/app", &sig_tag).await.0, StatusCode::OK);

    // Search finds Wasm by who signed it (the index follows the verifying job).
    let wasm_signed = reg.push_wasm("prod/app", "wasm-signed", "a").await;
    let wasm_unsigned = reg.push_wasm("prod/app", "wasm-unsigned", "b").await;
    reg.sign("prod/app:wasm-signed", &[]);
    reg.trust("prod/app", &wasm_signed, 1).await;
    reg.trust("prod/app", &wasm_unsigned, 0).await;
    let signed_hit = format!("prod/app@{wasm_signed}");
    let unsigned = format!("prod/app@{wasm_unsigned}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let hits = loop {
        let hits = reg.search("signedBy=ci@example.com").await;
        if !hits.is_empty() || Instant::now() > deadline {
            break hits;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].0, signed_hit);
    assert!(hits[0].1[0].as_str().is_some_and(|s| s.starts_with("ci@example.com (issuer")), "{hits:?}");
    assert_eq!(reg.search("signedBy=*@example.com&verified=true").await.len(), 1);
    assert!(reg.search("signedBy=*@example.org").await.is_empty());
    let unverified: Vec<String> = reg.search("verified=false").await.into_iter().map(|h| h.0).collect();
    assert!(unverified.contains(&unsigned) && !unverified.contains(&signed_hit), "{unverified:?}");
    let r = reg.req("reader", Method::GET, "/v2/_wharf/search?verified=maybe").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // audit: served, counted and logged as unverified.
    reg.push_image("staging/app", "unsigned", b"staging layer").await;
    for _ in 0..2 {
        assert_eq!(reg.pull("reader", Method::GET, "staging/app", "unsigned").await.0, StatusCode::OK);
    }
    // The page says so, and shows each signature, escaped.
    let html = reg.page("/repositories/staging/app/-/artifacts/unsigned").await;
    assert!(html.contains("Unverified: trust policy staging-audit (audit) is not satisfied"), "{html}");
    let (odd, _) = reg.push_image("staging/app", "odd", b"odd staging layer").await;
    let odd_signature = reg.sign("staging/app:odd", &["--identity", "<b>x</b>@example.com"]);
    reg.trust("staging/app", &odd, 1).await;
    let html = reg.page(&format!("/repositories/staging/app/-/artifacts/{odd}")).await;
    assert!(html.contains("Verified: trust policy staging-audit is satisfied"), "{html}");
    assert!(html.contains("&#60;b&#62;x&#60;/b&#62;@example.com (issuer https://issuer.test)"), "{html}");
    assert!(!html.contains("<b>x</b>"), "{html}");
    assert!(html.contains(&odd_signature.encoded()[..12]) && html.contains("inclusion proof"), "{html}");

    let r = reg.req("reader", Method::GET, "/metrics").send().await.expect("send");
    let metrics = r.text().await.expect("text");
    let count = |policy: &str, verdict: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.contains("trust_pulls")
                    && l.contains(&format!("policy=\"{policy}\""))
                    && l.contains(&format!("verdict=\"{verdict}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("staging-audit", "unverified") >= 2, "{metrics}");
    assert!(count("prod-signed", "denied") >= 8, "{metrics}");
    assert!(count("prod-signed", "verified") >= 8, "{metrics}");
    reg.stop().await;
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A P-256 key pair made by openssl: (private PEM path, public PEM path).
fn openssl_key(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let (private, public) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    run(Command::new("openssl")
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
        .arg(&private));
    run(Command::new("openssl").args(["ec", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public));
    (private, public)
}

/// A registry over `data` whose one policy (`enforce` on `prod/**`) trusts the keys of `keys`.
async fn keyed_registry(dir: &std::path::Path, keys: &[&str]) -> (ServerHandle, String) {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let config = format!(
        "[auth]\nhtpasswd = \"users.htpasswd\"\n\n[[access]]\nrepositories = [\"**\"]\nusers = {{ ci = [\"pull\", \"push\"], reader = [\"pull\"] }}\n\n\
         [[trust_policy]]\nname = \"prod-keys\"\nrepositories = [\"prod/**\"]\nmode = \"enforce\"\nkeys = [{}]\n",
        keys.join(", ")
    );
    std::fs::write(dir.join("wharf.toml"), config).expect("write");
    let mut users = wharf_auth::Htpasswd::default();
    for (user, password) in USERS {
        users.set(user, password, 4).expect("hash");
    }
    std::fs::write(dir.join("users.htpasswd"), users.render()).expect("write");
    let file = FileConfig::read(&dir.join("wharf.toml")).expect("the config parses");
    let data = dir.join("data");
    let store = wharf_store::FsStore::open(&data).await.expect("store");
    let access = file.access(dir, Some(&data)).expect("access").expect("[auth]");
    let registry = Wharf::new(Arc::new(store)).with_trust(file.trust(dir).expect("trust"));
    let server =
        Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind").with_access(access);
    let base = format!("127.0.0.1:{}", server.local_addr().port());
    (server.spawn(), base)
}

/// A flood of hostile signature referrers on one manifest — junk, oversized, deeply nested,
/// naming another subject — is recorded as unverified with reasons (at most 16 kept, the rest
/// counted), costs the pull nothing, and does not hide the real signature (cosign's `.sig`
/// tag, made by openssl). When the trusted keys change, a restarted server verifies again
/// and the verdict follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signatures_are_recorded_unverified_and_key_changes_reevaluate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, _) = openssl_key(dir.path(), "release");
    openssl_key(dir.path(), "other");
    let (handle, base) = keyed_registry(dir.path(), &["release.pub"]).await;
    let reg =
        Trusted { dir, signer: PathBuf::new(), base, http: reqwest::Client::new(), handle: Some(handle) };
    let (app, app_layer) = reg.push_image("prod/app", "v1", b"the release").await;
    reg.push_image("prod/app", "v2", b"another release").await;

    // cosign's layout, signed by openssl.
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"prod/app"}},"image":{{"docker-manifest-digest":"{app}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    let payload_file = reg.dir.path().join("payload.json");
    std::fs::write(&payload_file, &payload).expect("write");
    let der =
        Command::new("openssl").args(["dgst", "-sha256", "-sign"]).arg(&private).arg(&payload_file).output();
    let signature = base64_encode(&der.expect("openssl").stdout);
    let payload_digest = reg.blob("prod/app", payload.as_bytes()).await;
    let empty = reg.blob("prod/app", b"{}").await;
    let layer = |media_type: &str, digest: &Digest, size: usize, annotations: &str| {
        format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}{annotations}}}"#)
    };
    let manifest = |layers: &str, extra: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{layers}]{extra}}}"#
        )
    };
    let sig_layer = layer(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &payload_digest,
        payload.len(),
        &format!(r#","annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}"#),
    );
    let mt = "application/vnd.oci.image.manifest.v1+json";
    reg.manifest("prod/app", &format!("sha256-{}.sig", app.encoded()), mt, &manifest(&sig_layer, "")).await;

    // The flood: bundle referrers of every hostile kind.
    let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let app_size = reg
        .req("ci", Method::HEAD, &format!("/v2/prod/app/manifests/{app}"))
        .send()
        .await
        .expect("send")
        .content_length()
        .expect("a length");
    let referrer = |layers: &str| {
        manifest(
            layers,
            &format!(
                r#","artifactType":"{bundle_type}","subject":{{"mediaType":"{mt}","digest":"{app}","size":{app_size}}}"#
            ),
        )
    };
    for i in 0..40 {
        let bytes = format!("junk {i} {}", "x".repeat(i));
        let d = reg.blob("prod/app", bytes.as_bytes()).await;
        let body = referrer(&layer(bundle_type, &d, bytes.len(), ""));
        reg.manifest("prod/app", Digest::sha256(body.as_bytes()).as_str(), mt, &body).await;
    }
    let huge = vec![b'{'; wharf_auth::signature::MAX_BUNDLE_LEN + 1];
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let wrong_subject = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../auth/tests/data/sigstore/message.json"),
    )
    .expect("a real bundle over another manifest");
    for bytes in [huge.as_slice(), deep.as_bytes(), &wrong_subject] {
        let d = reg.blob("prod/app", bytes).await;
        let body = referrer(&layer(bundle_type, &d, bytes.len(), ""));
        reg.manifest("prod/app", Digest::sha256(body.as_bytes()).as_str(), mt, &body).await;
    }

    // Every signature read; the real one verified, the hostile ones kept (16) or counted.
    let record = reg.trust("prod/app", &app, 44).await;
    let trust = &record["trust"];
    let signatures = trust["signatures"].as_array().expect("signatures");
    assert_eq!(signatures.iter().filter(|s| s["verified"] == true).count(), 1, "{trust}");
    assert_eq!(signatures[0]["format"], "cosign");
    assert_eq!(signatures.len(), 1 + wharf_server::api::MAX_UNVERIFIED, "{trust}");
    assert_eq!(trust["omitted"], 44 - 1 - wharf_server::api::MAX_UNVERIFIED, "{trust}");
    assert!(
        signatures.iter().skip(1).all(|s| s["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "{trust}"
    );
    assert_eq!(reg.pull("reader", Method::GET, "prod/app", "v1").await.0, StatusCode::OK);
    let (status, body) = reg.pull("reader", Method::GET, "prod/app", "v2").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The keys change: a restart verifies again under the new ones, and back.
    let mut reg = reg;
    if let Some(h) = reg.handle.take() {
        h.shutdown().await.expect("clean shutdown");
    }
    for (keys, expected) in [(["other.pub"], StatusCode::FORBIDDEN), (["release.pub"], StatusCode::OK)] {
        let (handle, base) = keyed_registry(reg.dir.path(), &keys).await;
        reg.base = base;
        reg.handle = Some(handle);
        // A job the shutdown cut short holds its lease until it expires (a minute).
        let started = Instant::now();
        let deadline = started + Duration::from_secs(150);
        loop {
            let (status, body) = reg.pull("reader", Method::GET, "prod/app", "v1").await;
            // Stale until the job ran ("verifying again"), then the new keys' verdict.
            if status == expected && (status == StatusCode::OK || body.contains("signed by no trusted key")) {
                eprintln!("with {keys:?}: verified again after {:?}", started.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "with {keys:?}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its layer follows the verdict: a blob marked servable under other keys is not.
        let r = reg.req("reader", Method::GET, &format!("/v2/prod/app/blobs/{app_layer}")).send().await;
        assert_eq!(r.expect("send").status(), expected, "the layer, with {keys:?}");
        if let Some(h) = reg.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }
}
