//! `wharf-client` against `wharf-server` in-process over loopback, and against small axum
//! mocks for auth challenges and hostile answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use wharf_client::{Client, ClientBuilder, Credentials, Error};
use wharf_types::{Descriptor, Digest, ImageManifest, Manifest, MediaType, Reference, Registry};

mod support;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

async fn wharf() -> (String, Client) {
    let registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new()));
    let host = serve(wharf_server::router(registry)).await;
    let client = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    (host, client)
}

#[tokio::test]
async fn push_pull_round_trip_against_wharf_server() {
    let (host, client) = wharf().await;
    let reference: Reference = format!("{host}/wasm/hello:v1").parse().expect("reference");
    client.ping(&Registry::from(&reference)).await.expect("ping");
    let module = Bytes::from_static(b"\0asm\x01\0\0\0");
    let config = Bytes::from_static(b"{}");
    let layer = client.push_blob(&reference, module.clone()).await.expect("push layer");
    let cfg = client.push_blob(&reference, config.clone()).await.expect("push config");
    // A second push of the same blob is skipped (it exists).
    assert_eq!(client.push_blob(&reference, config.clone()).await.expect("again"), cfg);
    let image = ImageManifest::new(
        Descriptor::new(MediaType::WASM_CONFIG_V1, cfg, 2),
        vec![Descriptor::new(MediaType::WASM_CONTENT_LAYER_V1, layer.clone(), 8)],
    );
    let manifest = Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("manifest");
    let pushed = client.push_manifest(&reference, &manifest).await.expect("push manifest");
    assert_eq!(&pushed, manifest.digest());

    let pulled = client.pull_manifest(&reference).await.expect("pull");
    assert_eq!(pulled.bytes(), manifest.bytes());
    assert_eq!(client.resolve(&reference).await.expect("resolve").0, pushed);
    let by_digest = reference.clone().with_digest(pushed.clone());
    assert_eq!(client.pull_manifest(&by_digest).await.expect("pull by digest").digest(), &pushed);

    let mut out = Vec::new();
    assert_eq!(client.pull_blob(&reference, &layer, &mut out).await.expect("pull blob"), 8);
    assert_eq!(out, module.as_ref());

    // Mount into another repository; a missing blob is not an error, just `false`.
    let other: Reference = format!("{host}/other/app:v1").parse().expect("reference");
    assert!(client.mount_blob(&other, &layer, reference.repository()).await.expect("mount"));
    assert!(client.blob_exists(&other, &layer).await.expect("exists"));
    assert!(
        !client
            .mount_blob(&other, &Digest::sha256(b"missing"), reference.repository())
            .await
            .expect("no mount")
    );

    // Tags, paginated by the server when many.
    for i in 0..5 {
        let tagged: Reference = format!("{host}/wasm/hello:t{i}").parse().expect("reference");
        client.push_manifest(&tagged, &manifest).await.expect("tag");
    }
    let tags = client.tags(&reference).await.expect("tags");
    assert_eq!(tags, ["t0", "t1", "t2", "t3", "t4", "v1"]);
    client
        .delete_manifest(&reference.clone().with_tag("t0".parse().expect("tag")))
        .await
        .expect("delete tag");
    assert_eq!(client.tags(&reference).await.expect("tags").len(), 5);

    // Registry errors carry the OCI code.
    let missing: Reference = format!("{host}/wasm/hello:nope").parse().expect("reference");
    match client.pull_manifest(&missing).await {
        Err(Error::Registry { status: 404, errors: Some(e), .. }) => {
            assert_eq!(e.errors[0].code.as_str(), "MANIFEST_UNKNOWN");
        }
        other => panic!("expected MANIFEST_UNKNOWN, got {other:?}"),
    }
}

#[tokio::test]
async fn push_image_pushes_the_blobs_and_a_manifest_naming_them() {
    let (host, client) = wharf().await;
    let reference: Reference = format!("{host}/team/app:v1").parse().expect("reference");
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layers = [b"first layer".to_vec(), b"second".to_vec()];
    let pushed = client
        .push_image(
            &reference,
            (MediaType::OCI_CONFIG, &config[..]),
            layers.iter().map(|l| (MediaType::OCI_LAYER_TAR_GZIP, l.clone())),
        )
        .await
        .expect("push image");
    let manifest = client.pull_manifest(&reference).await.expect("pull");
    assert_eq!(manifest.digest(), &pushed);
    let image = manifest.as_image().expect("an image manifest");
    assert_eq!(
        (image.config.digest.clone(), image.config.size),
        (Digest::sha256(config), config.len() as u64)
    );
    for (descriptor, layer) in image.layers.iter().zip(&layers) {
        assert_eq!((descriptor.digest.clone(), descriptor.size), (Digest::sha256(layer), layer.len() as u64));
        let mut out = Vec::new();
        client.pull_blob(&reference, &descriptor.digest, &mut out).await.expect("pull layer");
        assert_eq!(&out, layer);
    }
    assert_eq!(image.layers.len(), 2);
}

#[tokio::test]
async fn bearer_token_challenge() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let realm_host = Arc::new(std::sync::OnceLock::<String>::new());
    let realm = realm_host.clone();
    let app = Router::new()
        .route(
            "/token",
            get(move |headers: HeaderMap, axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let query = query.unwrap_or_default();
                    assert!(query.contains("scope=repository%3Aa%2Fb%3Apull"), "{query}");
                    assert!(query.contains("service=test-registry"), "{query}");
                    // Basic credentials reach the token endpoint.
                    assert!(headers.get("authorization").is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Basic ")));
                    axum::Json(serde_json::json!({ "access_token": "tok-123", "expires_in": 300 }))
                }
            }),
        )
        .route(
            "/v2/",
            get(move |headers: HeaderMap| {
                let realm = realm.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-123") {
                        return (StatusCode::OK, "{}").into_response();
                    }
                    let challenge = format!(
                        r#"Bearer realm="http://{}/token",service="test-registry",scope="repository:a/b:pull""#,
                        realm.get().expect("set")
                    );
                    (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)], "").into_response()
                }
            }),
        );
    let host = serve(app).await;
    realm_host.set(host.clone()).expect("once");
    let client = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_credentials(&host, Credentials::basic("user", "pw"))
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/a/b:v1").parse().expect("reference");
    client.ping(&Registry::from(&reference)).await.expect("ping with a token");
    client.ping(&Registry::from(&reference)).await.expect("ping again");
    assert_eq!(token_requests.load(Ordering::SeqCst), 1, "the token is cached per scope");
    assert!(!format!("{client:?}").contains("tok-123"), "a token leaked into Debug");
    assert!(!format!("{client:?}").contains("\"pw\""), "a password leaked into Debug");
}

#[tokio::test]
async fn hostile_registry_wrong_digest() {
    let honest = Digest::sha256(b"the real content");
    let app = Router::new().fallback(|| async { (StatusCode::OK, "something else entirely") });
    let host = serve(app).await;
    let client = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    let reference: Reference = format!("{host}/evil/repo:v1").parse().expect("reference");
    let mut out = Vec::new();
    match client.pull_blob(&reference, &honest, &mut out).await {
        Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, honest),
        other => panic!("a wrong blob must be refused: {other:?}"),
    }
    // A manifest pulled by digest that hashes otherwise is refused too.
    let pinned = reference.with_digest(honest.clone());
    assert!(client.pull_manifest(&pinned).await.is_err());
}

#[test]
fn builder_validates() {
    assert!(ClientBuilder::new().with_timeout(std::time::Duration::ZERO).build().is_err());
    assert!(ClientBuilder::new().with_insecure_host("a/b").build().is_err());
    assert!(ClientBuilder::new().with_insecure_host("localhost:5000").build().is_ok());
}

mod wasm {
    use super::*;
    use wharf_client::WasmLayout;

    fn module() -> Bytes {
        Bytes::from(
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm"))
                .expect("fixture"),
        )
    }

    #[tokio::test]
    async fn push_and_pull_both_layouts() {
        let (host, client) = wharf().await;
        for (layout, tag) in [(WasmLayout::WasmToOci, "w2o"), (WasmLayout::CncfArtifact, "cncf")] {
            let reference: Reference =
                format!("{host}/webassembly/helloworld:{tag}").parse().expect("reference");
            client.push_wasm(&reference, module(), layout, "helloworld.wasm").await.expect("push");
            let pulled = client.pull_wasm(&reference).await.expect("pull");
            assert_eq!(pulled.module, module(), "{tag}: byte-exact");
            assert!(pulled.classification.is_wasm());
        }
    }

    #[tokio::test]
    async fn pulls_from_an_annotated_image_and_an_index() {
        let (host, client) = wharf().await;
        let reference: Reference = format!("{host}/webassembly/image:v1").parse().expect("reference");
        // A buildah-style image: the module at the Cmd path inside a tar+gzip layer.
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(module().len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, "hello.wasm", &module()[..]).expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().expect("tar")).expect("gzip");
        let layer = Bytes::from(gz.finish().expect("gzip"));
        let config = Bytes::from_static(br#"{"architecture":"wasm","os":"wasi","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#);
        let l = client.push_blob(&reference, layer.clone()).await.expect("layer");
        let c = client.push_blob(&reference, config.clone()).await.expect("config");
        let mut image = ImageManifest::new(
            Descriptor::new(MediaType::OCI_CONFIG, c, config.len() as u64),
            vec![Descriptor::new(MediaType::OCI_LAYER_TAR_GZIP, l, layer.len() as u64)],
        );
        image.annotations = Some([("run.oci.handler".to_owned(), "wasm".to_owned())].into_iter().collect());
        let manifest =
            Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("manifest");
        client.push_manifest(&reference, &manifest).await.expect("push");
        let pulled = client.pull_wasm(&reference).await.expect("pull");
        assert_eq!(pulled.module, module());

        // An index with a wasi/wasm child.
        let child = Descriptor::new(MediaType::OCI_MANIFEST, manifest.digest().clone(), manifest.size())
            .with_platform(wharf_types::Platform::new("wasi", "wasm"));
        let index = wharf_types::ImageIndex::new(vec![child]);
        let index = Manifest::from_bytes(serde_json::to_vec(&index).expect("json"), None).expect("index");
        let index_ref: Reference = format!("{host}/webassembly/image:multi").parse().expect("reference");
        client.push_manifest(&index_ref, &index).await.expect("push index");
        let pulled = client.pull_wasm(&index_ref).await.expect("pull via index");
        assert_eq!(pulled.module, module());
        assert_eq!(pulled.manifest.digest(), manifest.digest());

        // Something that is not Wasm says so.
        let plain: Reference = format!("{host}/webassembly/image:{}", "plain").parse().expect("reference");
        let empty = ImageManifest::new(
            Descriptor::new(
                MediaType::OCI_CONFIG,
                client.push_blob(&plain, Bytes::from_static(b"{}")).await.expect("cfg"),
                2,
            ),
            vec![],
        );
        let empty = Manifest::from_bytes(serde_json::to_vec(&empty).expect("json"), None).expect("manifest");
        client.push_manifest(&plain, &empty).await.expect("push");
        let error = client.pull_wasm(&plain).await.expect_err("not Wasm");
        match &error {
            Error::NotWasm { classification, .. } => assert!(!classification.is_wasm()),
            other => panic!("expected NotWasm, got {other:?}"),
        }
        assert!(
            error.to_string().contains("is not WebAssembly: its manifest classifies as not-wasm"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn retries_429_and_503_then_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v2/",
        get(move || {
            let counter = counter.clone();
            async move {
                match counter.fetch_add(1, Ordering::SeqCst) {
                    0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "slow down").into_response(),
                    1 => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
                    _ => (StatusCode::OK, "{}").into_response(),
                }
            }
        }),
    );
    let host = serve(app).await;
    let client = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_retries(3, std::time::Duration::from_millis(1))
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/a:b").parse().expect("reference");
    client.ping(&Registry::from(&reference)).await.expect("ping after retries");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // With no retries left, the error surfaces.
    calls.store(0, Ordering::SeqCst);
    let impatient = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_retries(0, std::time::Duration::ZERO)
        .build()
        .expect("client");
    assert!(matches!(
        impatient.ping(&Registry::from(&reference)).await,
        Err(Error::Registry { status: 429, .. })
    ));
}

#[tokio::test]
async fn basic_auth_is_sent_up_front_once_asked() {
    let unauthorized = Arc::new(AtomicUsize::new(0));
    let counter = unauthorized.clone();
    let app = Router::new().route(
        "/v2/",
        get(move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                // "user:pw"
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic dXNlcjpwdw==") {
                    return (StatusCode::OK, "{}").into_response();
                }
                counter.fetch_add(1, Ordering::SeqCst);
                (StatusCode::UNAUTHORIZED, [("www-authenticate", r#"Basic realm="Registry Realm""#)], "")
                    .into_response()
            }
        }),
    );
    let host = serve(app).await;
    let client = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_credentials(&host, Credentials::basic("user", "pw"))
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/a:b").parse().expect("reference");
    for _ in 0..3 {
        client.ping(&Registry::from(&reference)).await.expect("ping");
    }
    assert_eq!(unauthorized.load(Ordering::SeqCst), 1, "only the first request is challenged");
    let anonymous = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    assert!(matches!(anonymous.ping(&Registry::from(&reference)).await, Err(Error::Unauthorized { .. })));
}

mod docker_config {
    use super::*;
    use wharf_client::DockerConfig;

    #[test]
    fn auths_entries() {
        // "user:pw" and explicit username/password; Docker Hub under its legacy key.
        let config = DockerConfig::from_json(
            r#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwdw=="},
                "https://other.example.com":{"username":"u2","password":"p2"},
                "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
                "oauth.example.com":{"identitytoken":"refresh"}}}"#,
        )
        .expect("parse");
        assert_eq!(
            config.credentials_for("registry.example.com").expect("ok"),
            Some(Credentials::basic("user", "pw"))
        );
        assert_eq!(
            config.credentials_for("other.example.com").expect("ok"),
            Some(Credentials::basic("u2", "p2"))
        );
        assert_eq!(
            config.credentials_for("registry-1.docker.io").expect("ok"),
            Some(Credentials::basic("hub", "secret"))
        );
        assert_eq!(config.credentials_for("unknown.example.com").expect("ok"), None);
        assert!(matches!(
            config.credentials_for("oauth.example.com").expect("ok"),
            Some(Credentials::IdentityToken(_))
        ));
        assert!(!format!("{config:?}").contains("dXNlcjpwdw"), "Debug shows no secret");
        assert!(DockerConfig::from_json("not json").is_err());
    }

    #[test]
    fn credential_helpers() {
        let dir = std::env::temp_dir().join(format!("wharf-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("docker-credential-wharftest");
        std::fs::write(
            &script,
            "#!/bin/sh\nread host\nif [ \"$host\" = helped.example.com ]; then echo '{\"ServerURL\":\"x\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}'; else echo 'credentials not found' >&2; exit 1; fi\n",
        )
        .expect("script");
        std::process::Command::new("chmod")
            .args(["+x", script.to_str().expect("utf-8")])
            .status()
            .expect("chmod");
        let config = DockerConfig::from_json(
            r#"{"credHelpers":{"helped.example.com":"wharftest"},"credsStore":"wharftest"}"#,
        )
        .expect("parse")
        .with_helper_path(dir.as_os_str().to_owned());
        assert_eq!(
            config.credentials_for("helped.example.com").expect("ok"),
            Some(Credentials::basic("helper-user", "helper-secret"))
        );
        assert_eq!(config.credentials_for("elsewhere.example.com").expect("ok"), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_client_uses_docker_config_credentials() {
        let app = Router::new().route(
            "/v2/",
            get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic dXNlcjpwdw==") {
                    (StatusCode::OK, "{}").into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"r\"")], "")
                        .into_response()
                }
            }),
        );
        let host = serve(app).await;
        let config =
            DockerConfig::from_json(&format!(r#"{{"auths":{{"{host}":{{"auth":"dXNlcjpwdw=="}}}}}}"#))
                .expect("parse");
        let client = ClientBuilder::new()
            .with_insecure_host(&host)
            .with_docker_config(config)
            .build()
            .expect("client");
        let reference: Reference = format!("{host}/a:b").parse().expect("reference");
        client.ping(&Registry::from(&reference)).await.expect("authenticated from config.json");
    }
}

#[tokio::test]
async fn copy_between_registries_and_within_one() {
    let (a, _) = wharf().await;
    let (b, _) = wharf().await;
    let client = ClientBuilder::new().with_insecure_host(&a).with_insecure_host(&b).build().expect("client");
    let src: Reference = format!("{a}/library/app:v1").parse().expect("reference");
    // An index of two images sharing a 2 MiB layer.
    let shared = Bytes::from(vec![7u8; 2 * 1024 * 1024]);
    let l = client.push_blob(&src, shared.clone()).await.expect("layer");
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = Bytes::from(format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        ));
        let c = client.push_blob(&src, config.clone()).await.expect("config");
        let image = ImageManifest::new(
            Descriptor::new(MediaType::OCI_CONFIG, c, config.len() as u64),
            vec![Descriptor::new(MediaType::OCI_LAYER_TAR_GZIP, l.clone(), shared.len() as u64)],
        );
        let manifest =
            Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("manifest");
        client
            .push_manifest(&src.clone().with_digest(manifest.digest().clone()), &manifest)
            .await
            .expect("child");
        children.push(
            Descriptor::new(MediaType::OCI_MANIFEST, manifest.digest().clone(), manifest.size())
                .with_platform(wharf_types::Platform::new("linux", arch)),
        );
    }
    let index = Manifest::from_bytes(
        serde_json::to_vec(&wharf_types::ImageIndex::new(children)).expect("json"),
        None,
    )
    .expect("index");
    client.push_manifest(&src, &index).await.expect("index");

    // To another registry: every digest preserved.
    let dst: Reference = format!("{b}/mirror/app:v1").parse().expect("reference");
    assert_eq!(&client.copy(&src, &dst).await.expect("copy"), index.digest());
    let copied = client.pull_manifest(&dst).await.expect("pull copy");
    assert_eq!(copied.bytes(), index.bytes());
    let mut out = Vec::new();
    client.pull_blob(&dst, &l, &mut out).await.expect("layer copied");
    assert_eq!(out.len(), shared.len());
    // Within one registry (blobs mounted), and again (everything already there).
    let same: Reference = format!("{a}/other/app:v2").parse().expect("reference");
    client.copy(&src, &same).await.expect("copy within");
    client.copy(&src, &same).await.expect("copy again");
    assert_eq!(client.pull_manifest(&same).await.expect("pull").digest(), index.digest());
}

#[tokio::test]
async fn referrers_catalog_and_platforms() {
    let (host, client) = wharf().await;
    support::referrers_round_trip(&client, &host).await;
    let registry: Registry = host.parse().expect("registry host");
    assert_eq!(client.catalog(&registry).await.expect("catalog"), ["signed/app"]);
    // A platform picked from an index.
    let reference: Reference = format!("{host}/multi/app:v1").parse().expect("reference");
    let c = client.push_blob(&reference, Bytes::from_static(b"{}")).await.expect("config");
    let mut children = Vec::new();
    let mut digests = Vec::new();
    for (os, arch) in [("linux", "amd64"), ("wasi", "wasm")] {
        let mut image = ImageManifest::new(Descriptor::new(MediaType::OCI_CONFIG, c.clone(), 2), vec![]);
        image.annotations = Some([("platform".to_owned(), format!("{os}/{arch}"))].into_iter().collect());
        let m = Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("m");
        client.push_manifest(&reference.clone().with_digest(m.digest().clone()), &m).await.expect("child");
        children.push(
            Descriptor::new(MediaType::OCI_MANIFEST, m.digest().clone(), m.size())
                .with_platform(wharf_types::Platform::new(os, arch)),
        );
        digests.push(m.digest().clone());
    }
    let index = Manifest::from_bytes(
        serde_json::to_vec(&wharf_types::ImageIndex::new(children)).expect("json"),
        None,
    )
    .expect("index");
    client.push_manifest(&reference, &index).await.expect("index");
    let wasm = client
        .pull_for_platform(&reference, &wharf_types::Platform::new("WASI", "wasm"))
        .await
        .expect("wasi");
    assert_eq!(wasm.digest(), &digests[1]);
    let host_pick = client.pull_for_platform(&reference, &Client::host_platform()).await;
    if Client::host_platform().is("linux", "amd64") {
        assert_eq!(host_pick.expect("amd64").digest(), &digests[0]);
    }
    assert!(
        client.pull_for_platform(&reference, &wharf_types::Platform::new("plan9", "mips")).await.is_err()
    );
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_range_and_progress_is_reported() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let blob: Bytes = (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let digest = Digest::sha256(&blob);
    // A raw HTTP/1.1 server: the first answer announces the whole blob, sends half and
    // closes the connection; later ones honour `Range`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let served = blob.clone();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = vec![0u8; 8192];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..n]).to_ascii_lowercase();
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            let from = text
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok());
            if first {
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\ncontent-type: application/octet-stream\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&served[..100_000]).await;
                let _ = socket.shutdown().await;
                continue;
            }
            let from = from.unwrap_or(0);
            let rest = &served[from..];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {from}-199999/200000\r\n\r\n",
                rest.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(rest).await;
            let _ = socket.shutdown().await;
        }
    });
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_progress(wharf_client::Progress::new(move |_, done, total| {
            log.lock().expect("lock").push((done, total));
        }))
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/a/b:v1").parse().expect("reference");
    let mut out = Vec::new();
    assert_eq!(client.pull_blob(&reference, &digest, &mut out).await.expect("resumed"), 200_000);
    assert_eq!(out, blob.as_ref());
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.last(), Some(&(200_000, Some(200_000))));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress only grows");
}

#[tokio::test]
async fn chunked_push_resumes_after_a_refused_chunk() {
    // wharf-server behind a layer that answers the second PATCH with 503 (without passing it on).
    let patches = Arc::new(AtomicUsize::new(0));
    let counter = patches.clone();
    let registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new()));
    let app = wharf_server::router(registry).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let counter = counter.clone();
            async move {
                if request.method() == axum::http::Method::PATCH
                    && counter.fetch_add(1, Ordering::SeqCst) == 1
                {
                    return (StatusCode::SERVICE_UNAVAILABLE, "flaky").into_response();
                }
                next.run(request).await
            }
        },
    ));
    let host = serve(app).await;
    let client = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    let reference: Reference = format!("{host}/chunked/app:v1").parse().expect("reference");
    let data: Bytes = (0..100_000u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>().into();
    let digest = client.push_blob_chunked(&reference, data.clone(), 30_000).await.expect("chunked push");
    assert_eq!(digest, Digest::sha256(&data));
    assert_eq!(patches.load(Ordering::SeqCst), 5, "4 chunks, one of them sent twice");
    let mut out = Vec::new();
    client.pull_blob(&reference, &digest, &mut out).await.expect("pull");
    assert_eq!(out, data.as_ref());
    client.delete_blob(&reference, &digest).await.expect("delete blob");
    assert!(!client.blob_exists(&reference, &digest).await.expect("exists"));
}

#[tokio::test]
async fn oci_layout_export_and_push() {
    let (host, client) = wharf().await;
    let module = Bytes::from(
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm")).expect("fixture"),
    );
    let src: Reference = format!("{host}/webassembly/helloworld:v1").parse().expect("reference");
    let pushed = client
        .push_wasm(&src, module.clone(), wharf_client::WasmLayout::WasmToOci, "hello.wasm")
        .await
        .expect("push");
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(&client.export_layout(&src, dir.path()).await.expect("export"), pushed.digest());
    // A second export under another tag adds to index.json.
    let v2: Reference = format!("{host}/webassembly/helloworld:v2").parse().expect("reference");
    client.push_manifest(&v2, &pushed).await.expect("tag v2");
    client.export_layout(&v2, dir.path()).await.expect("export v2");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).expect("index")).expect("json");
    assert_eq!(index["manifests"].as_array().expect("manifests").len(), 2);
    assert!(dir.path().join("oci-layout").exists());
    let layer = pushed.as_image().expect("image").layers[0].digest.clone();
    assert_eq!(
        std::fs::read(dir.path().join("blobs/sha256").join(layer.encoded())).expect("layer"),
        module.as_ref()
    );
    // Pushed back under another name: the same digest, the same module.
    let dst: Reference = format!("{host}/from-layout/hello:v1").parse().expect("reference");
    assert_eq!(
        &client.push_layout(dir.path(), Some("v1"), &dst).await.expect("push layout"),
        pushed.digest()
    );
    assert_eq!(client.pull_wasm(&dst).await.expect("pull").module, module);
    assert!(client.push_layout(dir.path(), None, &dst).await.is_err(), "two images: one must be named");
}

#[tokio::test]
async fn resolve_multi_tag_and_large_blobs() {
    let (host, client) = wharf().await;
    let reference: Reference = format!("{host}/tags/app:v1").parse().expect("reference");
    let c = client.push_blob(&reference, Bytes::from_static(b"{}")).await.expect("config");
    // A blob over 64 MiB goes in resumable chunks.
    let big = Bytes::from(vec![5u8; 65 * 1024 * 1024]);
    let b = client.push_blob(&reference, big.clone()).await.expect("big");
    assert!(client.blob_exists(&reference, &b).await.expect("exists"));
    let image = ImageManifest::new(
        Descriptor::new(MediaType::OCI_CONFIG, c, 2),
        vec![Descriptor::new(MediaType::OCI_LAYER_TAR, b, big.len() as u64)],
    );
    let manifest = Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("manifest");
    let tags: Vec<wharf_types::Tag> = ["a", "b", "c"].iter().map(|t| t.parse().expect("tag")).collect();
    client.push_manifest_tags(&reference, &manifest, &tags).await.expect("multi-tag");
    assert_eq!(client.tags(&reference).await.expect("tags"), ["a", "b", "c"]);
    let tagged = reference.clone().with_tag("b".parse().expect("tag"));
    let (digest, media_type) = client.resolve(&tagged).await.expect("resolve");
    assert_eq!(&digest, manifest.digest());
    assert_eq!(media_type, MediaType::OCI_MANIFEST);
}

#[tokio::test]
async fn blob_redirects_to_another_host_without_credentials() {
    // Storage on another host, as registries on object storage answer blob GETs.
    let blob = Bytes::from_static(b"redirected content");
    let digest = Digest::sha256(&blob);
    let served = blob.clone();
    let storage = serve(Router::new().route(
        "/storage/blob",
        get(move |headers: HeaderMap| {
            let served = served.clone();
            async move {
                assert!(
                    headers.get("authorization").is_none(),
                    "credentials must not follow a redirect to another host"
                );
                served
            }
        }),
    ))
    .await;
    let target = format!("http://{storage}/storage/blob");
    let registry = serve(Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response() }
    }))
    .await;
    let client = ClientBuilder::new()
        .with_insecure_host(&registry)
        .with_credentials(&registry, Credentials::basic("user", "pw"))
        .build()
        .expect("client");
    let reference: Reference = format!("{registry}/a/b:v1").parse().expect("reference");
    let mut out = Vec::new();
    client.pull_blob(&reference, &digest, &mut out).await.expect("redirected pull");
    assert_eq!(out, blob.as_ref());
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    // The token server issues tok-0, tok-1, …; only the newest one is valid (older ones have
    // expired).
    let issued = Arc::new(AtomicUsize::new(0));
    let (for_token, for_api) = (issued.clone(), issued.clone());
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let realm_in = realm.clone();
    let app = Router::new()
        .route(
            "/token",
            get(move || {
                let counter = for_token.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({ "token": format!("tok-{n}"), "expires_in": 60 }))
                }
            }),
        )
        .route(
            "/v2/",
            get(move |headers: HeaderMap| {
                let (realm, counter) = (realm_in.clone(), for_api.clone());
                async move {
                    let newest = counter.load(Ordering::SeqCst).checked_sub(1);
                    let presented = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer tok-"))
                        .and_then(|n| n.parse::<usize>().ok());
                    if presented.is_some() && presented == newest {
                        return (StatusCode::OK, "{}").into_response();
                    }
                    let challenge =
                        format!(r#"Bearer realm="http://{}/token",service="s""#, realm.get().expect("set"));
                    (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)], "").into_response()
                }
            }),
        );
    let host = serve(app).await;
    realm.set(host.clone()).expect("once");
    let client = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    let reference: Reference = format!("{host}/x:y").parse().expect("reference");
    client.ping(&Registry::from(&reference)).await.expect("tok-0");
    // Someone else's token request makes the cached tok-0 stale.
    reqwest::get(format!("http://{host}/token")).await.expect("token");
    client.ping(&Registry::from(&reference)).await.expect("the stale token is refused, a fresh one fetched");
    assert_eq!(issued.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn tags_follow_link_pages_as_a_stream() {
    use futures_util::StreamExt as _;
    let app = Router::new().route(
        "/v2/r/tags/list",
        get(|axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
            match query.as_deref() {
                None => (
                    StatusCode::OK,
                    [("link", r#"</v2/r/tags/list?n=2&last=b>; rel="next""#)],
                    axum::Json(serde_json::json!({"name":"r","tags":["a","b"]})),
                )
                    .into_response(),
                Some(_) => axum::Json(serde_json::json!({"name":"r","tags":["c"]})).into_response(),
            }
        }),
    );
    let host = serve(app).await;
    let client = ClientBuilder::new().with_insecure_host(&host).with_concurrency(2).build().expect("client");
    let reference: Reference = format!("{host}/r:latest").parse().expect("reference");
    let mut stream = client.tags_stream(&reference);
    assert_eq!(stream.next().await.expect("first").expect("ok"), "a");
    let rest: Vec<String> = stream.map(|t| t.expect("ok")).collect().await;
    assert_eq!(rest, ["b", "c"]);
    assert!(ClientBuilder::new().with_concurrency(0).build().is_err());
}

#[tokio::test]
async fn identity_tokens_are_exchanged_by_oauth2_post() {
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let realm_in = realm.clone();
    let app = Router::new()
        .route(
            "/token",
            axum::routing::post(|body: String| async move {
                assert!(body.contains("grant_type=refresh_token"), "{body}");
                assert!(body.contains("refresh_token=refresh-me"), "{body}");
                assert!(body.contains("scope=repository%3Ax%3Apull"), "{body}");
                axum::Json(serde_json::json!({ "access_token": "oauth-access" }))
            }),
        )
        .route(
            "/v2/x/tags/list",
            get(move |headers: HeaderMap| {
                let realm = realm_in.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Bearer oauth-access")
                    {
                        return (StatusCode::OK, r#"{"name":"x","tags":["y"]}"#).into_response();
                    }
                    let challenge =
                        format!(r#"Bearer realm="http://{}/token",service="s""#, realm.get().expect("set"));
                    (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)], "").into_response()
                }
            }),
        );
    let host = serve(app).await;
    realm.set(host.clone()).expect("once");
    let client = ClientBuilder::new()
        .with_insecure_host(&host)
        .with_credentials(&host, Credentials::IdentityToken(wharf_client::Secret::new("refresh-me")))
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/x:y").parse().expect("reference");
    let tags = client.tags(&reference).await.expect("an access token from the refresh token");
    assert_eq!(tags, ["y"]);
}

mod tls;

/// The error helpers and messages a caller acts on: a 404 is `is_not_found` with its code, a
/// refused connection and a TLS handshake with a plain-HTTP registry say so (the latter with
/// the way out), and a clone shares the original's state.
#[tokio::test]
async fn errors_name_their_cause() {
    let (host, client) = wharf().await;
    let missing: Reference = format!("{host}/no/such:tag").parse().expect("reference");
    let error = client.clone().pull_manifest(&missing).await.expect_err("missing");
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.code(), Some(&wharf_types::ErrorCode::ManifestUnknown));
    assert!(!error.is_unauthorized() && !error.is_denied() && !error.is_transport());

    let registry: Registry = host.parse().expect("host");
    let https = ClientBuilder::new()
        .with_loopback_plain_http(false)
        .with_retries(0, std::time::Duration::from_millis(1))
        .build()
        .expect("client");
    let error = https.ping(&registry).await.expect_err("HTTPS to a plain-HTTP registry");
    assert!(error.is_transport(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("plain HTTP") && message.contains("--insecure"), "{message}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nobody: Registry = format!("127.0.0.1:{port}").parse().expect("host");
    let quick =
        ClientBuilder::new().with_retries(0, std::time::Duration::from_millis(1)).build().expect("client");
    let error = quick.ping(&nobody).await.expect_err("refused");
    assert!(error.is_transport() && error.status().is_none(), "{error:?}");
    assert!(error.to_string().to_lowercase().contains("connection refused"), "{error}");
}

/// A public-only client reaches nothing on this machine: not by address, not by a name that
/// resolves here, not through a token realm or a redirect an answer names — and sends nothing.
#[tokio::test]
async fn a_public_only_client_refuses_loopback_however_named() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    let app = Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    });
    let host = serve(app).await;
    let port = host.rsplit(':').next().expect("port").to_owned();
    let client =
        ClientBuilder::new().with_public_addresses_only(true).with_retries(0, std::time::Duration::ZERO);
    let client = client.build().expect("client");
    for target in [host.clone(), format!("localhost:{port}"), format!("[::1]:{port}")] {
        let registry: Registry = target.parse().expect("registry");
        let e = client.ping(&registry).await.expect_err(&target);
        let text = e.to_string();
        assert!(text.contains("not public") || text.contains("not a public address"), "{target}: {text}");
    }
    let r: Reference = format!("localhost:{port}/x/y:v1").parse().expect("reference");
    assert!(client.pull_manifest(&r).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the loopback server");
    // The same server through an ordinary client: it was there all along.
    let open = ClientBuilder::new().build().expect("client");
    open.ping(&host.parse().expect("registry")).await.expect("reachable");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A registry that sends the head of a blob and a few bytes, then nothing: a client with a
/// stall timeout gives up in that time, not in its whole timeout.
#[tokio::test]
async fn a_stalled_body_fails_within_the_stall_timeout() {
    let app = Router::new().fallback(|| async {
        let start =
            futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789")) });
        let stall = futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"late"))
        });
        let mut headers = HeaderMap::new();
        headers.insert("content-length", "1000".parse().expect("value"));
        (headers, axum::body::Body::from_stream(futures_util::StreamExt::chain(start, stall)))
    });
    let host = serve(app).await;
    let client = ClientBuilder::new()
        .with_stall_timeout(std::time::Duration::from_millis(300))
        .with_retries(0, std::time::Duration::ZERO)
        .build()
        .expect("client");
    let reference: Reference = format!("{host}/x/y:v1").parse().expect("reference");
    let digest = Digest::sha256(b"anything");
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let e = client.pull_blob(&reference, &digest, &mut sink).await.expect_err("stalled");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "gave up after {:?}", started.elapsed());
    assert!(e.to_string().contains("timed out") || e.to_string().contains("timeout"), "{e}");
    assert!(ClientBuilder::new().with_stall_timeout(std::time::Duration::ZERO).build().is_err());
}
