//! Interop with CNCF distribution (Debian's `docker-registry` 2.8.2), plain and with htpasswd
//! Basic auth: push, pull, mount, tags, delete, Wasm push/pull.
//!
//! Skipped when `docker-registry` is not installed, unless `WHARF_REQUIRE_ALL=1` (then a
//! failure); `.ci/run` installs it.

use bytes::Bytes;
use wharf_client::{Client, ClientBuilder, Credentials, WasmLayout};
use wharf_types::{Descriptor, ImageManifest, Manifest, MediaType, Reference, Registry};

#[path = "support/registry.rs"]
mod registry;
mod support;
use registry::start;

async fn exercise(client: &Client, host: &str) {
    let reference: Reference = format!("{host}/wharf/app:v1").parse().expect("reference");
    client.ping(&Registry::from(&reference)).await.expect("ping");
    let layer = Bytes::from(vec![42u8; 3 * 1024 * 1024]);
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let l = client.push_blob(&reference, layer.clone()).await.expect("push layer");
    let c = client.push_blob(&reference, config.clone()).await.expect("push config");
    let image = ImageManifest::new(
        Descriptor::new(MediaType::OCI_CONFIG, c, config.len() as u64),
        vec![Descriptor::new(MediaType::OCI_LAYER_TAR_GZIP, l.clone(), layer.len() as u64)],
    );
    let manifest = Manifest::from_bytes(serde_json::to_vec(&image).expect("json"), None).expect("manifest");
    client.push_manifest(&reference, &manifest).await.expect("push manifest");
    let pulled = client.pull_manifest(&reference).await.expect("pull manifest");
    assert_eq!(pulled.bytes(), manifest.bytes());
    let mut out = Vec::new();
    client.pull_blob(&reference, &l, &mut out).await.expect("pull blob");
    assert_eq!(out, layer.as_ref());
    // A chunked push, as distribution takes it.
    let big = Bytes::from(vec![9u8; 5 * 1024 * 1024 + 3]);
    let d = client.push_blob_chunked(&reference, big.clone(), 1024 * 1024).await.expect("chunked push");
    let mut back = Vec::new();
    client.pull_blob(&reference, &d, &mut back).await.expect("pull chunked");
    assert_eq!(back.len(), big.len());
    // Mount into another repository.
    let other: Reference = format!("{host}/wharf/other:v1").parse().expect("reference");
    assert!(client.mount_blob(&other, &l, reference.repository()).await.expect("mount"));
    assert!(client.blob_exists(&other, &l).await.expect("exists"));
    // Tags and delete.
    let second: Reference = format!("{host}/wharf/app:v2").parse().expect("reference");
    client.push_manifest(&second, &manifest).await.expect("tag v2");
    assert_eq!(client.tags(&reference).await.expect("tags"), ["v1", "v2"]);
    client.delete_manifest(&reference.clone().with_digest(manifest.digest().clone())).await.expect("delete");
    assert!(client.pull_manifest(&reference).await.is_err());
    // The article's flow: a wasm-to-oci artifact, byte-exact both ways.
    let module = Bytes::from(
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm")).expect("fixture"),
    );
    let wasm: Reference = format!("{host}/webassembly/helloworld:v1").parse().expect("reference");
    client
        .push_wasm(&wasm, module.clone(), WasmLayout::WasmToOci, "helloworld.wasm")
        .await
        .expect("push wasm");
    assert_eq!(client.pull_wasm(&wasm).await.expect("pull wasm").module, module);
}

#[tokio::test]
async fn against_distribution_plain() {
    let Some(registry) = start(None).await else { return };
    let client = ClientBuilder::new().with_insecure_host(&registry.host).build().expect("client");
    exercise(&client, &registry.host).await;
}

#[tokio::test]
async fn against_distribution_with_basic_auth() {
    let Some(registry) = start(Some(("wharf", "s3cret"))).await else { return };
    let anonymous = ClientBuilder::new().with_insecure_host(&registry.host).build().expect("client");
    let reference: Reference = format!("{}/wharf/app:v1", registry.host).parse().expect("reference");
    assert!(anonymous.ping(&Registry::from(&reference)).await.is_err(), "anonymous access must be refused");
    let client = ClientBuilder::new()
        .with_insecure_host(&registry.host)
        .with_credentials(&registry.host, Credentials::basic("wharf", "s3cret"))
        .build()
        .expect("client");
    exercise(&client, &registry.host).await;
}

#[tokio::test]
async fn copy_between_wharf_and_distribution() {
    let Some(distribution) = start(None).await else { return };
    let registry = wharf_server::Wharf::new(std::sync::Arc::new(wharf_store::MemoryStore::new()));
    let server =
        wharf_server::Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
    let wharf = server.local_addr().to_string();
    let _handle = server.spawn();
    let client = ClientBuilder::new()
        .with_insecure_host(&wharf)
        .with_insecure_host(&distribution.host)
        .build()
        .expect("client");
    let module = Bytes::from(
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm")).expect("fixture"),
    );
    let src: Reference = format!("{wharf}/webassembly/helloworld:v1").parse().expect("reference");
    let pushed = client
        .push_wasm(&src, module.clone(), WasmLayout::CncfArtifact, "helloworld.wasm")
        .await
        .expect("push");
    let there: Reference =
        format!("{}/webassembly/helloworld:v1", distribution.host).parse().expect("reference");
    assert_eq!(&client.copy(&src, &there).await.expect("to distribution"), pushed.digest());
    let back: Reference = format!("{wharf}/webassembly/back:v1").parse().expect("reference");
    assert_eq!(&client.copy(&there, &back).await.expect("back to wharf"), pushed.digest());
    assert_eq!(client.pull_wasm(&back).await.expect("pull").module, module);
}

#[tokio::test]
async fn referrers_through_the_fallback_tag_on_distribution() {
    // distribution 2.8.2 has no referrers API: the client keeps the `sha256-<hex>` index.
    let Some(registry) = start(None).await else { return };
    let client = ClientBuilder::new().with_insecure_host(&registry.host).build().expect("client");
    support::referrers_round_trip(&client, &registry.host).await;
}
