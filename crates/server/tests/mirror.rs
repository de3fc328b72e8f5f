//! Pull-through mirrors (`[[upstream]]`, issue 33): a Wharf on loopback mirrors another
//! server on loopback (real HTTP both ways), whose storage counts every blob read — so "one
//! upstream fetch however many ask" is counted, not assumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use wharf_server::Wharf;
use wharf_server::mirror::{Mirror, UpstreamSettings};
use wharf_types::Digest;

use crate::common::{OCI_INDEX, OCI_MANIFEST, Reg, header, image_manifest};

/// Counts the blob reads of a store (`get`, `read_all`): an upstream's fetches; each takes
/// `delay` milliseconds when set (a slow upstream).
#[derive(Debug, Default)]
struct Reads {
    count: AtomicUsize,
    delay: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl wharf_store::Hooks for Reads {
    async fn before(&self, op: wharf_store::Op, _bytes: u64) -> wharf_store::Result<()> {
        if op == wharf_store::Op::Get {
            self.count.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
        }
        Ok(())
    }
}

struct Upstream {
    reg: Reg,
    reads: Arc<wharf_store::Hooked<Reads>>,
}

impl Upstream {
    async fn start() -> Self {
        let reads =
            Arc::new(wharf_store::Hooked::new(Arc::new(wharf_store::MemoryStore::new()), Reads::default()));
        let reg = Reg::serve(Wharf::new(Arc::clone(&reads) as Arc<dyn wharf_store::Storage>)).await;
        Self { reg, reads }
    }

    fn reads(&self) -> usize {
        self.reads.hooks().count.load(Ordering::SeqCst)
    }

    fn host(&self) -> &str {
        self.reg.base.strip_prefix("http://").expect("http")
    }

    /// Pushes an image of a config and `layers` layers of `size` bytes each; returns the
    /// manifest's bytes and the blobs (config first).
    async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        layers: usize,
        size: usize,
        seed: u8,
    ) -> (String, Vec<(Digest, Vec<u8>)>) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
        let mut blobs = vec![(self.reg.push_blob(repo, &config).await, config)];
        for i in 0..layers {
            let data: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7 + usize::from(seed)) as u8).collect();
            blobs.push((self.reg.push_blob(repo, &data).await, data));
        }
        let layers: Vec<(Digest, usize)> = blobs[1..].iter().map(|(d, b)| (d.clone(), b.len())).collect();
        let manifest = image_manifest(&blobs[0].0, blobs[0].1.len(), &layers, "");
        let r = self.reg.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), StatusCode::CREATED, "push to the upstream");
        (manifest, blobs)
    }
}

/// A Wharf mirroring `upstream` under `up/`, the tag trusted for `ttl_secs`.
async fn mirror_of(upstream: &Upstream, ttl_secs: u64) -> Reg {
    let mut settings =
        UpstreamSettings::new("up", &upstream.reg.base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    settings.tag_ttl = std::time::Duration::from_secs(ttl_secs);
    settings.stall = std::time::Duration::from_secs(2);
    Reg::serve(Wharf::in_memory().with_mirror(Mirror::new(vec![settings]).expect("mirror"))).await
}

async fn get(reg: &Reg, path: &str) -> reqwest::Response {
    reg.req(Method::GET, path)
        .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn pulls_through_byte_exact_with_one_upstream_fetch_per_blob_however_many_ask() {
    let upstream = Upstream::start().await;
    let (manifest, blobs) = upstream.push_image("team/app", "v1", 3, 1 << 20, 1).await;
    let mirror = mirror_of(&upstream, 300).await;
    let before = upstream.reads();

    // 20 clients at once: the manifest by tag, then every blob.
    let pulls = (0..20).map(|_| async {
        let r = get(&mirror, "/v2/up/team/app/manifests/v1").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.expect("body"), manifest, "the upstream's bytes");
        for (digest, bytes) in &blobs {
            let r = get(&mirror, &format!("/v2/up/team/app/blobs/{digest}")).await;
            assert_eq!(r.status(), StatusCode::OK, "blob {digest}");
            assert_eq!(&r.bytes().await.expect("body")[..], &bytes[..], "blob {digest} byte-exact");
        }
    });
    join_all(pulls).await;
    let fetched = upstream.reads() - before;
    assert_eq!(
        fetched,
        blobs.len(),
        "one upstream read per blob for 20 pulls (the manifest is held in memory)"
    );

    // Cached: nothing more is read upstream, by tag (within its time-to-live) or by digest.
    let digest = Digest::sha256(manifest.as_bytes());
    for path in ["/v2/up/team/app/manifests/v1".to_owned(), format!("/v2/up/team/app/manifests/{digest}")] {
        assert_eq!(get(&mirror, &path).await.status(), StatusCode::OK, "{path}");
    }
    for (d, _) in &blobs {
        assert_eq!(get(&mirror, &format!("/v2/up/team/app/blobs/{d}")).await.status(), StatusCode::OK);
    }
    assert_eq!(upstream.reads() - before, blobs.len(), "served from the cache");

    // A mirror is filled by pulls: a push into it is refused, and changes nothing.
    let r = mirror.push_manifest("up/team/app", "v1", OCI_MANIFEST, "{}").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("body").contains("filled by pulls"));
    let r = mirror.req(Method::POST, "/v2/up/team/app/blobs/uploads/").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&mirror, "/v2/up/team/app/manifests/v1").await.text().await.expect("body"), manifest);

    // Cached content is ordinary content: in the catalog and the tag list.
    let tags: serde_json::Value = get(&mirror, "/v2/up/team/app/tags/list").await.json().await.expect("json");
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let page = get(&mirror, "/repositories/up/team/app").await.text().await.expect("page");
    assert!(page.contains("Cached from up") && page.contains("<code>team/app</code>"), "{page}");
    assert!(page.contains("<tr><td>v1</td><td>20"), "the tag's last check: {page}");
    let metrics = get(&mirror, "/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains(r#"wharf_mirror_requests_total{upstream="up",result="miss"}"#), "{metrics}");
    assert!(metrics.contains(r#"wharf_mirror_fetched_bytes_total{upstream="up"}"#), "{metrics}");
}

#[tokio::test]
async fn containerd_mirror_requests_map_by_their_ns_host() {
    let upstream = Upstream::start().await;
    let (manifest, blobs) = upstream.push_image("library/alpine", "3", 1, 1000, 2).await;
    let mirror = mirror_of(&upstream, 300).await;
    let ns = upstream.host().to_owned();
    let r = get(&mirror, &format!("/v2/library/alpine/manifests/3?ns={ns}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), manifest);
    let r = get(&mirror, &format!("/v2/library/alpine/blobs/{}?ns={ns}", blobs[1].0)).await;
    assert_eq!(&r.bytes().await.expect("body")[..], &blobs[1].1[..]);
    // Stored under the upstream's prefix; another host is not mirrored.
    assert_eq!(get(&mirror, "/v2/up/library/alpine/manifests/3").await.status(), StatusCode::OK);
    let r = get(&mirror, "/v2/library/alpine/manifests/3?ns=quay.io").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_stopped_upstream_leaves_what_was_pulled_pullable() {
    let upstream = Upstream::start().await;
    let (manifest, blobs) = upstream.push_image("team/app", "v1", 1, 4096, 3).await;
    upstream.push_image("team/app", "never", 1, 4096, 4).await;
    // Every tag is checked again at each pull.
    let mirror = mirror_of(&upstream, 0).await;
    let r = get(&mirror, "/v2/up/team/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "warning").is_none(), "fresh");
    for (d, _) in &blobs {
        assert_eq!(get(&mirror, &format!("/v2/up/team/app/blobs/{d}")).await.status(), StatusCode::OK);
    }
    upstream.reg.stop().await;

    let r = get(&mirror, "/v2/up/team/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::OK, "by tag, from the cache");
    let warning = header(&r, "warning").expect("a Warning header says the cache answered").to_owned();
    assert!(warning.starts_with("110 "), "{warning}");
    assert_eq!(r.text().await.expect("body"), manifest);
    let digest = Digest::sha256(manifest.as_bytes());
    let r = get(&mirror, &format!("/v2/up/team/app/manifests/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK, "by digest");
    for (d, bytes) in &blobs {
        let r = get(&mirror, &format!("/v2/up/team/app/blobs/{d}")).await;
        assert_eq!(&r.bytes().await.expect("body")[..], &bytes[..]);
    }
    // Never pulled: a clear error naming the upstream.
    let r = get(&mirror, "/v2/up/team/app/manifests/never").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.expect("body");
    assert!(body.contains("upstream `up`"), "{body}");
}

#[tokio::test]
async fn one_platform_of_an_index_fetches_that_platforms_blobs_only() {
    let upstream = Upstream::start().await;
    let (amd, amd_blobs) = upstream.push_image("multi/app", "amd64", 2, 1 << 16, 5).await;
    let (arm, arm_blobs) = upstream.push_image("multi/app", "arm64", 2, 1 << 16, 6).await;
    let child = |m: &str, arch: &str| {
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            Digest::sha256(m.as_bytes()),
            m.len()
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        child(&amd, "amd64"),
        child(&arm, "arm64")
    );
    assert_eq!(
        upstream.reg.push_manifest("multi/app", "latest", OCI_INDEX, &index).await.status(),
        StatusCode::CREATED
    );
    let mirror = mirror_of(&upstream, 300).await;
    let before = upstream.reads();
    let r = get(&mirror, "/v2/up/multi/app/manifests/latest").await;
    assert_eq!(r.text().await.expect("index"), index);
    let r = get(&mirror, &format!("/v2/up/multi/app/manifests/{}", Digest::sha256(arm.as_bytes()))).await;
    assert_eq!(r.text().await.expect("arm64 manifest"), arm);
    for (d, bytes) in &arm_blobs[1..] {
        let r = get(&mirror, &format!("/v2/up/multi/app/blobs/{d}")).await;
        assert_eq!(&r.bytes().await.expect("layer")[..], &bytes[..]);
    }
    // The arm64 config (fetched with its manifest, to classify it) and two layers; nothing
    // of amd64.
    assert_eq!(upstream.reads() - before, arm_blobs.len(), "only arm64's blobs were read upstream");
    for (d, _) in &amd_blobs {
        let r =
            mirror.req(Method::HEAD, &format!("/v2/up/multi/app/manifests/{d}")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_upstream_in_a_private_range_needs_an_allowance() {
    let upstream = Upstream::start().await;
    upstream.push_image("team/app", "v1", 1, 100, 7).await;
    let settings =
        UpstreamSettings::new("up", &upstream.reg.base, "up".parse().expect("prefix")).expect("settings");
    let mirror =
        Reg::serve(Wharf::in_memory().with_mirror(Mirror::new(vec![settings]).expect("mirror"))).await;
    let before = upstream.reads();
    let r = get(&mirror, "/v2/up/team/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.expect("body");
    assert!(body.contains("public"), "the refusal says why: {body}");
    assert_eq!(upstream.reads(), before, "nothing was asked of it");
}

/// An upstream that misbehaves, one way per repository (`h/<way>`), on loopback.
mod hostile {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    use http::{HeaderValue, StatusCode, header};
    use wharf_types::Digest;

    use super::OCI_MANIFEST;

    pub(super) const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

    pub(super) fn manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
            Digest::sha256(CONFIG),
            CONFIG.len()
        )
    }

    /// Bytes whose digest is announced but which are not a manifest.
    pub(super) const GARBAGE: &[u8] = b"\x00\x01 not a manifest at all";

    #[derive(Clone, Default)]
    pub(super) struct Hostile {
        /// `h/moved:v1` points at garbage from now on.
        pub(super) moved: Arc<AtomicBool>,
        /// The blobs `h/slow` serves, each over about 200 ms.
        pub(super) slow: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
        /// `h/slow`'s blob bodies being sent now, and the most at once.
        pub(super) open: Arc<AtomicUsize>,
        pub(super) peak: Arc<AtomicUsize>,
    }

    /// Counts a body as open while it lives.
    struct Open(Arc<AtomicUsize>);

    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `bytes` in four parts, 50 ms apart, counted in `open` (and `peak`) while sent.
    fn slowly(h: &Hostile, bytes: &[u8]) -> Body {
        let now = h.open.fetch_add(1, Ordering::SeqCst) + 1;
        h.peak.fetch_max(now, Ordering::SeqCst);
        let open = Open(Arc::clone(&h.open));
        let parts: Vec<bytes::Bytes> =
            bytes.chunks(bytes.len().div_ceil(4).max(1)).map(bytes::Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(parts).then(move |part| {
            let _alive = &open;
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(part)
            }
        });
        Body::from_stream(stream)
    }

    fn answer(status: StatusCode, digest: Option<&Digest>, media_type: &str, body: Vec<u8>) -> Response {
        let mut r = (status, body).into_response();
        if let Some(d) = digest {
            r.headers_mut()
                .insert("Docker-Content-Digest", HeaderValue::from_str(d.as_str()).expect("header"));
        }
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(media_type).expect("header"));
        r
    }

    async fn handle(State(h): State<Hostile>, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        let good = manifest().into_bytes();
        let good_digest = Digest::sha256(&good);
        if path == "/v2/" {
            return StatusCode::OK.into_response();
        }
        let Some(rest) = path.strip_prefix("/v2/h/") else { return StatusCode::NOT_FOUND.into_response() };
        let (way, what) = rest.split_once('/').expect("h/<way>/…");
        if way == "auth" {
            // A 401 however often credentials are sent.
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"loop\""));
            return r;
        }
        if let Some(blob) = what.strip_prefix("blobs/") {
            return match way {
                // Not the bytes of the digest asked for.
                "wrong" => answer(StatusCode::OK, None, "application/octet-stream", b"other bytes".to_vec()),
                // Some bytes, then nothing.
                "stall" => {
                    let body = async_stream(b"0123456789".to_vec());
                    let mut r = (StatusCode::OK, body).into_response();
                    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(1000u64));
                    r
                }
                "slow" => match h.slow.lock().expect("lock").get(blob).cloned() {
                    Some(bytes) => {
                        let len = bytes.len() as u64;
                        let mut r = (StatusCode::OK, slowly(&h, &bytes)).into_response();
                        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                        r
                    }
                    None => StatusCode::NOT_FOUND.into_response(),
                },
                _ if blob == Digest::sha256(CONFIG).as_str() => {
                    answer(StatusCode::OK, None, "application/octet-stream", CONFIG.to_vec())
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            };
        }
        let reference = what.strip_prefix("manifests/").expect("manifests/<ref>");
        match way {
            "moved" if h.moved.load(Ordering::SeqCst) => {
                answer(StatusCode::OK, Some(&Digest::sha256(GARBAGE)), OCI_MANIFEST, GARBAGE.to_vec())
            }
            // Announces one digest, sends other bytes.
            "lie" => {
                let other = manifest().replace("\"layers\":[]", "\"layers\":[] ").into_bytes();
                answer(StatusCode::OK, Some(&good_digest), OCI_MANIFEST, other)
            }
            // 5 MiB of manifest.
            "big" => {
                let big = format!("{},\"x\":\"{}\"}}", manifest().trim_end_matches('}'), "a".repeat(5 << 20));
                let d = Digest::sha256(big.as_bytes());
                answer(StatusCode::OK, Some(&d), OCI_MANIFEST, big.into_bytes())
            }
            _ if reference == "v1" || reference == good_digest.as_str() => {
                answer(StatusCode::OK, Some(&good_digest), OCI_MANIFEST, good)
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    /// A body that sends `first` and then never another byte.
    fn async_stream(first: Vec<u8>) -> Body {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(first)) })
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(bytes::Bytes::new())
                }));
        Body::from_stream(stream)
    }

    use futures_util::StreamExt as _;

    /// Serves it on a loopback port: its base URL.
    pub(super) async fn serve(h: Hostile) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(handle).with_state(h);
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }
}

#[tokio::test]
async fn a_hostile_upstream_changes_nothing_here() {
    let h = hostile::Hostile::default();
    let base = hostile::serve(h.clone()).await;
    let mut settings = UpstreamSettings::new("bad", &base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    settings.tag_ttl = std::time::Duration::ZERO;
    settings.stall = std::time::Duration::from_secs(1);
    settings.credentials = wharf_client::Credentials::basic("mirror", "s3cret-never-shown");
    let registry = Wharf::in_memory().with_mirror(Mirror::new(vec![settings]).expect("mirror"));
    let mirror = Reg::serve(registry.clone()).await;
    let repo = |r: &str| r.parse::<wharf_types::Repository>().expect("repo");

    // A tag cached, then moved upstream to garbage: refused with a clear error, the cached
    // copy kept.
    let good = hostile::manifest();
    assert_eq!(get(&mirror, "/v2/up/h/moved/manifests/v1").await.text().await.expect("body"), good);
    h.moved.store(true, Ordering::SeqCst);
    let r = get(&mirror, "/v2/up/h/moved/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.expect("body");
    assert!(body.contains("MANIFEST_INVALID") && body.contains("upstream `bad`"), "{body}");
    let kept = registry.get_manifest(&repo("up/h/moved"), &"v1".parse().expect("tag")).await.expect("kept");
    assert_eq!(kept.bytes, good.as_bytes(), "the previous copy is kept");
    let garbage = Digest::sha256(hostile::GARBAGE);
    assert!(registry.storage().stat(&garbage).await.expect("stat").is_none(), "garbage not stored");

    // Bytes that do not match the digest announced; a manifest over the size limit.
    for (way, why) in [("lie", "digest mismatch"), ("big", "larger than 4194304 bytes")] {
        let r = get(&mirror, &format!("/v2/up/h/{way}/manifests/v1")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{way}");
        let body = r.text().await.expect("body");
        assert!(body.contains("MANIFEST_INVALID") && body.contains(why), "{way}: {body}");
        let page = registry.tags(&repo(&format!("up/h/{way}")), None, None).await;
        assert!(page.map_or(true, |p| p.names.is_empty()), "{way}: nothing cached");
    }

    // A blob whose bytes are not its digest's; a blob that stalls: the client's body fails,
    // nothing is stored.
    let d = Digest::sha256(b"the right bytes");
    for way in ["wrong", "stall"] {
        let started = std::time::Instant::now();
        let r = get(&mirror, &format!("/v2/up/h/{way}/blobs/{d}")).await;
        let body =
            if r.status() == StatusCode::OK { r.bytes().await.map(|b| b.to_vec()) } else { Ok(Vec::new()) };
        assert!(!matches!(&body, Ok(b) if b == b"the right bytes"), "{way}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{way}: a stall is given up on");
        assert!(
            registry.stat_blob(&repo(&format!("up/h/{way}")), &d).await.expect("stat").is_none(),
            "{way}"
        );
        assert!(registry.storage().stat(&d).await.expect("stat").is_none(), "{way}: no bytes kept");
    }

    // A 401 however often credentials are sent: a clear error, soon; the password never in
    // what the client is told.
    let r = get(&mirror, "/v2/up/h/auth/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.expect("body");
    assert!(body.contains("upstream `bad`") && !body.contains("s3cret"), "{body}");
}

#[tokio::test]
async fn the_collector_and_the_scrub_take_a_mirrored_manifest_as_whole() {
    let upstream = Upstream::start().await;
    let (_, blobs) = upstream.push_image("team/app", "v1", 2, 1000, 8).await;
    let mut settings =
        UpstreamSettings::new("up", &upstream.reg.base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    let registry = Wharf::in_memory().with_mirror(Mirror::new(vec![settings]).expect("mirror"));
    let mirror = Reg::serve(registry.clone()).await;
    // The manifest (and its config), one layer of two.
    assert_eq!(get(&mirror, "/v2/up/team/app/manifests/v1").await.status(), StatusCode::OK);
    assert_eq!(get(&mirror, &format!("/v2/up/team/app/blobs/{}", blobs[1].0)).await.status(), StatusCode::OK);

    let scrub = registry.scrub(false).await.expect("scrub");
    assert!(scrub.damage.is_empty(), "a layer not fetched yet is not damage: {:?}", scrub.damage);
    let options = wharf_server::lifecycle::GcOptions::default().with_grace(std::time::Duration::ZERO);
    registry.collect_garbage(&options).await.expect("collect");
    // Everything the tag holds stays; the layer never fetched still comes when asked for.
    for (d, bytes) in &blobs {
        let r = get(&mirror, &format!("/v2/up/team/app/blobs/{d}")).await;
        assert_eq!(&r.bytes().await.expect("blob")[..], &bytes[..], "{d}");
    }
    assert_eq!(get(&mirror, "/v2/up/team/app/manifests/v1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_sync_copies_every_tag_resumes_in_another_process_and_then_fetches_nothing_new() {
    let upstream = Upstream::start().await;
    let mut images = Vec::new();
    for i in 0..50u8 {
        images.push(upstream.push_image("team/app", &format!("v{i}"), 1, 50_000, i).await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let make = |dir: std::path::PathBuf| {
        let base = upstream.reg.base.clone();
        async move {
            let mut settings =
                UpstreamSettings::new("up", &base, "up".parse().expect("prefix")).expect("settings");
            settings.allow_private = true;
            settings.sync.push(wharf_server::mirror::SyncRule::new(
                "team/app".parse().expect("repo"),
                std::time::Duration::from_secs(3600),
            ));
            let store = wharf_store::FsStore::open(dir).await.expect("store");
            Wharf::new(Arc::new(store)).with_mirror(Mirror::new(vec![settings]).expect("mirror"))
        }
    };
    let repo: wharf_types::Repository = "up/team/app".parse().expect("repo");
    let count = |registry: Wharf| {
        let repo = repo.clone();
        async move { registry.tags(&repo, None, None).await.map_or(0, |p| p.names.len()) }
    };

    // The first process queues the 50 tags; its worker is stopped once some are copied (the
    // jobs it had started finish; the rest stay queued in the storage).
    let first = make(dir.path().to_owned()).await;
    assert_eq!(first.plan_sync(true).await.expect("plan"), 50);
    let work = tokio::spawn({
        let first = first.clone();
        async move { first.run_pending_jobs().await }
    });
    while count(first.clone()).await < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    work.abort();
    let copied_before = count(first.clone()).await;
    assert!(copied_before < 50, "stopped midway ({copied_before} copied)");
    drop(first);

    // A new process over the same storage takes the rest (a job a dead process held comes
    // back when its lease expires).
    let second = make(dir.path().to_owned()).await;
    second.run_pending_jobs().await.expect("jobs");
    if count(second.clone()).await < 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61)).await;
        second.run_pending_jobs().await.expect("jobs");
    }
    assert_eq!(count(second.clone()).await, 50, "every tag copied");
    for (i, (manifest, blobs)) in images.iter().enumerate() {
        let got = second.get_manifest(&repo, &format!("v{i}").parse().expect("tag")).await.expect("manifest");
        assert_eq!(got.bytes, manifest.as_bytes(), "v{i}");
        for (d, _) in blobs {
            assert!(second.stat_blob(&repo, d).await.expect("stat").is_some(), "v{i}: {d} copied");
        }
    }

    // Again: the tags are checked (HEAD), nothing is fetched.
    let before = upstream.reads();
    assert_eq!(second.plan_sync(true).await.expect("plan"), 50);
    second.run_pending_jobs().await.expect("jobs");
    assert_eq!(upstream.reads(), before, "a second run fetches nothing new");
    assert_eq!(second.plan_sync(false).await.expect("plan"), 0, "not due again before its hour");

    // What an operator sees (as the API document says it).
    let reg = Reg::serve(second.clone()).await;
    let json: serde_json::Value = get(&reg, "/v2/_wharf/upstreams").await.json().await.expect("json");
    let doc = crate::openapi::document();
    let mut errors = Vec::new();
    let schema = crate::openapi::response_schema(&doc, "/v2/_wharf/upstreams");
    crate::openapi::check(&doc, schema, &json, "upstreams", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let up = &json["upstreams"][0];
    assert_eq!(
        (up["name"].as_str(), up["prefix"].as_str(), up["syncPending"].as_u64()),
        (Some("up"), Some("up"), Some(0))
    );
    assert_eq!(up["sync"][0]["repository"], "team/app");
    assert!(up["sync"][0]["lastQueued"].is_u64(), "{up}");
    let queued: serde_json::Value =
        reg.req(Method::POST, "/v2/_wharf/upstreams").send().await.expect("send").json().await.expect("json");
    assert_eq!(queued["queued"], 50);
}

#[tokio::test]
async fn a_mirrored_wasm_component_is_classified_inspected_and_searchable() {
    let upstream = Upstream::start().await;
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let artifact = wharf_wasm::ArtifactBuilder::new(component).cncf().expect("build");
    for blob in artifact.blobs() {
        upstream.reg.push_blob("wasm/app", &blob.data).await;
    }
    let body = String::from_utf8(artifact.manifest.bytes().to_vec()).expect("utf-8");
    assert_eq!(
        upstream.reg.push_manifest("wasm/app", "v1", OCI_MANIFEST, &body).await.status(),
        StatusCode::CREATED
    );
    let mirror = mirror_of(&upstream, 300).await;
    assert_eq!(get(&mirror, "/v2/up/wasm/app/manifests/v1").await.status(), StatusCode::OK);
    // Its module is read by the job, from the layer fetched with the manifest.
    let record = crate::wasm::inspected(&mirror, "/v2/up/wasm/app/_wharf/artifacts/v1").await;
    assert_eq!(record["inspection"]["status"], "done", "{record:#}");
    assert_eq!(record["kind"], "cncf-artifact", "{record:#}");
    let found: serde_json::Value =
        get(&mirror, "/v2/_wharf/search?import=wasi:cli/environment").await.json().await.expect("json");
    assert!(found.to_string().contains("up/wasm/app"), "{found}");
}

#[tokio::test]
async fn retention_expires_cached_tags_nobody_pulls_and_a_pull_fetches_them_again() {
    let upstream = Upstream::start().await;
    let (manifest, _) = upstream.push_image("team/app", "v1", 1, 1000, 9).await;
    upstream.push_image("team/app", "v2", 1, 1000, 10).await;
    let mut settings =
        UpstreamSettings::new("up", &upstream.reg.base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    let config = wharf_server::config::FileConfig::parse(
        "[[retention]]\nrepositories = [\"up/**\"]\nkeep_pulled_within = \"1h\"\n",
    )
    .expect("config");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &config.gc.clone().unwrap_or_default(),
        &config.retention,
        &config.quota,
    )
    .expect("lifecycle");
    let registry = Wharf::in_memory()
        .with_mirror(Mirror::new(vec![settings]).expect("mirror"))
        .with_lifecycle(lifecycle);
    let mirror = Reg::serve(registry.clone()).await;
    for tag in ["v1", "v2"] {
        assert_eq!(get(&mirror, &format!("/v2/up/team/app/manifests/{tag}")).await.status(), StatusCode::OK);
    }
    // v2's pull record is taken away: as if nobody had pulled it within the hour.
    let pulled = "repositories/up/team/app/_manifests/pulled/v2";
    for _ in 0..100 {
        if registry.storage().get_meta(pulled).await.expect("meta").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    registry.storage().set_meta(pulled, "0".into()).await.expect("an old pull");
    let options = wharf_server::lifecycle::GcOptions::default().with_grace(std::time::Duration::ZERO);
    registry.collect_garbage(&options).await.expect("collect");
    let repo: wharf_types::Repository = "up/team/app".parse().expect("repo");
    let tags = registry.tags(&repo, None, None).await.expect("tags").names;
    assert_eq!(tags, ["v1"], "v2 expired, v1 (pulled) kept");
    let before = upstream.reads();
    assert_eq!(get(&mirror, "/v2/up/team/app/manifests/v2").await.status(), StatusCode::OK, "fetched again");
    assert!(upstream.reads() > before, "from the upstream");
    assert_eq!(get(&mirror, "/v2/up/team/app/manifests/v1").await.text().await.expect("v1"), manifest);
}

#[tokio::test]
async fn a_cache_budget_evicts_the_least_recently_pulled_and_what_goes_is_fetched_again() {
    const LAYER: usize = 100_000;
    let upstream = Upstream::start().await;
    let mut images = std::collections::BTreeMap::new();
    for (i, (repo, tag)) in
        [("team/a", "v1"), ("team/a", "v2"), ("team/a", "v3"), ("team/a", "v4"), ("team/b", "v1")]
            .into_iter()
            .enumerate()
    {
        let seed = 20 + u8::try_from(i).expect("small");
        images.insert((repo, tag), upstream.push_image(repo, tag, 1, LAYER, seed).await);
    }
    let mut settings =
        UpstreamSettings::new("up", &upstream.reg.base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    let config = wharf_server::config::FileConfig::parse(&format!(
        "[[upstream]]\nname = \"up\"\nurl = \"{}\"\nallow_private = true\nmax_bytes = \"250kB\"\n",
        upstream.reg.base
    ))
    .expect("config");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[],
        &[],
    )
    .expect("lifecycle")
    .with_cache_budgets(config.cache_budgets().expect("budgets"));
    let registry = Wharf::in_memory()
        .with_mirror(Mirror::new(vec![settings]).expect("mirror"))
        .with_lifecycle(lifecycle);
    let mirror = Reg::serve(registry.clone()).await;
    let digest_of = |manifest: &str| Digest::sha256(manifest.as_bytes());
    // Pulled whole, a second apart: a:v1, a:v4 by digest (no tag here), a:v2, b:v1, a:v3.
    let by_digest = format!("{}", digest_of(&images[&("team/a", "v4")].0));
    for (repo, reference, key) in [
        ("team/a", "v1".to_owned(), ("team/a", "v1")),
        ("team/a", by_digest.clone(), ("team/a", "v4")),
        ("team/a", "v2".to_owned(), ("team/a", "v2")),
        ("team/b", "v1".to_owned(), ("team/b", "v1")),
        ("team/a", "v3".to_owned(), ("team/a", "v3")),
    ] {
        let r = get(&mirror, &format!("/v2/up/{repo}/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{repo}:{reference}");
        for (d, bytes) in &images[&key].1 {
            let r = get(&mirror, &format!("/v2/up/{repo}/blobs/{d}")).await;
            assert_eq!(&r.bytes().await.expect("blob")[..], &bytes[..]);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    }
    // a:v1 is pulled again later (the pull record, as a later minute's pull writes it).
    let pulled = "repositories/up/team/a/_manifests/pulled/v1";
    registry.storage().set_meta(pulled, format!("{}", now() + 5).into()).await.expect("a later pull");

    // Five entries of ~100 kB each, 250 kB allowed: the three least recently pulled go.
    let options = wharf_server::lifecycle::GcOptions::default().with_grace(std::time::Duration::ZERO);
    let report = registry.collect_garbage(&options).await.expect("collect");
    let cache = serde_json::to_value(&report.caches).expect("json");
    assert_eq!(cache[0]["name"], "up");
    assert_eq!(cache[0]["evicted"], 3, "{cache}");
    let (held, kept) =
        (cache[0]["heldBytes"].as_u64().expect("held"), cache[0]["keptBytes"].as_u64().expect("kept"));
    assert!(held > 5 * LAYER as u64 && kept <= 250_000 && kept > 2 * LAYER as u64, "{cache}");
    let tags = |repo: &str| {
        let (registry, repo) = (registry.clone(), repo.parse::<wharf_types::Repository>().expect("repo"));
        async move { registry.tags(&repo, None, None).await.map(|p| p.names).unwrap_or_default() }
    };
    assert_eq!(
        tags("up/team/a").await,
        ["v1", "v3"],
        "v2 (pulled before b:v1) went; v1, pulled last, stayed"
    );
    assert!(tags("up/team/b").await.is_empty(), "b:v1 went");
    for (key, gone) in [
        (("team/a", "v1"), false),
        (("team/a", "v4"), true),
        (("team/a", "v2"), true),
        (("team/b", "v1"), true),
        (("team/a", "v3"), false),
    ] {
        let layer = &images[&key].1[1].0;
        let stored = registry.storage().stat(layer).await.expect("stat").is_some();
        assert_eq!(stored, !gone, "{key:?}'s layer");
    }
    assert!(report.bytes_freed >= 3 * LAYER as u64, "{}", report.bytes_freed);

    // What went is a cache miss: fetched again, byte-exact.
    let before = upstream.reads();
    let r = get(&mirror, "/v2/up/team/a/manifests/v2").await;
    assert_eq!(r.text().await.expect("manifest"), images[&("team/a", "v2")].0);
    let (layer, bytes) = &images[&("team/a", "v2")].1[1];
    let r = get(&mirror, &format!("/v2/up/team/a/blobs/{layer}")).await;
    assert_eq!(&r.bytes().await.expect("blob")[..], &bytes[..]);
    assert!(upstream.reads() > before, "from the upstream");
    let r = get(&mirror, &format!("/v2/up/team/a/manifests/{by_digest}")).await;
    assert_eq!(r.status(), StatusCode::OK, "the manifest fetched by digest, again");
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test]
async fn an_upstreams_fetches_take_turns_and_a_full_disk_is_507_not_the_upstreams_fault() {
    let h = hostile::Hostile::default();
    let blobs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 300_000]).collect();
    for b in &blobs {
        h.slow.lock().expect("lock").insert(Digest::sha256(b).to_string(), b.clone());
    }
    let base = hostile::serve(h.clone()).await;
    let mut settings = UpstreamSettings::new("slow", &base, "up".parse().expect("prefix")).expect("settings");
    settings.allow_private = true;
    settings.max_fetches = 2;
    let full = Arc::new(wharf_store::Hooked::new(
        Arc::new(wharf_store::MemoryStore::new()),
        FullWhenArmed::default(),
    ));
    let registry = Wharf::new(Arc::clone(&full) as Arc<dyn wharf_store::Storage>)
        .with_mirror(Mirror::new(vec![settings]).expect("mirror"));
    let mirror = Reg::serve(registry).await;

    // Six different blobs asked for at once: all arrive whole, never more than two fetched
    // from the upstream at a time.
    let pulls = blobs.iter().map(|b| {
        let path = format!("/v2/up/h/slow/blobs/{}", Digest::sha256(b));
        let mirror = &mirror;
        async move { get(mirror, &path).await.bytes().await.expect("body") }
    });
    let got = join_all(pulls).await;
    for (got, want) in got.iter().zip(&blobs) {
        assert_eq!(&got[..], &want[..]);
    }
    assert_eq!(h.peak.load(Ordering::SeqCst), 2, "at most max_fetches at once, and that many");

    // A full disk while a blob is fetched: 507 (the registry's state), not 502 (the upstream's).
    full.hooks().0.store(true, Ordering::SeqCst);
    let more = vec![9u8; 1000];
    let d = Digest::sha256(&more);
    h.slow.lock().expect("lock").insert(d.to_string(), more);
    let r = mirror.req(Method::HEAD, &format!("/v2/up/h/slow/blobs/{d}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
}

/// A storage whose blob writes fail as a full disk's do, once armed.
#[derive(Debug, Default)]
struct FullWhenArmed(std::sync::atomic::AtomicBool);

#[async_trait]
impl wharf_store::Hooks for FullWhenArmed {
    async fn before(&self, op: wharf_store::Op, _bytes: u64) -> wharf_store::Result<()> {
        let writes = matches!(op, wharf_store::Op::Put | wharf_store::Op::Append | wharf_store::Op::Commit);
        if writes && self.0.load(Ordering::SeqCst) {
            return Err(wharf_store::Error::injected(wharf_store::Fault::Full, "put"));
        }
        Ok(())
    }
}

/// The sync through the `wharf-server` binary, SIGKILLed halfway: the restarted process copies
/// the rest from the durable queue (the jobs the dead one held come back when their leases
/// expire), every tag whole; a second run asks the upstream nothing but `HEAD`s.
#[tokio::test]
async fn a_sync_survives_a_sigkill_of_the_server_halfway() {
    let upstream = Upstream::start().await;
    let mut images = Vec::new();
    for i in 0..50u8 {
        images.push(upstream.push_image("team/app", &format!("v{i}"), 1, 20_000, i).await);
    }
    // 40 ms per blob read: the sync takes seconds, so the kill lands midway.
    upstream.reads.hooks().delay.store(40, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"up\"\nurl = \"{}\"\nallow_private = true\n\
             [[upstream.sync]]\nrepository = \"team/app\"\nevery = \"1h\"\n",
            upstream.reg.base
        ),
    )
    .expect("config");
    let storage = format!("fs:{}", dir.path().join("data").display());
    let args = ["--config", config.to_str().expect("utf-8"), "--storage", &storage];
    // The tags copied, as the process at `base` lists them.
    let copied = |base: String| async move {
        let r = reqwest::get(format!("{base}/v2/up/team/app/tags/list")).await.expect("tags");
        let tags: serde_json::Value = r.json().await.unwrap_or_default();
        tags["tags"].as_array().map_or(0, Vec::len)
    };
    let mut first = crate::common::Process::start_with(&args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while copied(first.base.clone()).await < 5 {
        assert!(std::time::Instant::now() < deadline, "the sync began");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    first.signal("-KILL");

    let second = crate::common::Process::start_with(&args);
    let at_restart = copied(second.base.clone()).await;
    assert!((5..50).contains(&at_restart), "killed midway ({at_restart} copied)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while copied(second.base.clone()).await < 50 {
        assert!(std::time::Instant::now() < deadline, "the rest copied after the restart");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reg = Reg { base: second.base.clone(), http: reqwest::Client::new(), handle: None };
    // Whole: every manifest as upstream, every blob here (a HEAD of a blob not here would
    // fetch it: the upstream's reads would grow).
    let mut pending = 1;
    for _ in 0..600 {
        let state: serde_json::Value = get(&reg, "/v2/_wharf/upstreams").await.json().await.expect("json");
        pending = state["upstreams"][0]["syncPending"].as_u64().expect("pending");
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "the queue drained");
    let before = upstream.reads();
    for (i, (manifest, blobs)) in images.iter().enumerate() {
        let r = get(&reg, &format!("/v2/up/team/app/manifests/v{i}")).await;
        assert_eq!(r.text().await.expect("manifest"), *manifest, "v{i}");
        for (d, _) in blobs {
            let r = reg.req(Method::HEAD, &format!("/v2/up/team/app/blobs/{d}")).send().await.expect("head");
            assert_eq!(r.status(), StatusCode::OK, "v{i}: {d}");
        }
    }
    assert_eq!(upstream.reads(), before, "everything was copied: nothing fetched on reading it");

    // A second run: 50 HEADs at the upstream, no fetch.
    let queued: serde_json::Value =
        reg.req(Method::POST, "/v2/_wharf/upstreams").send().await.expect("send").json().await.expect("json");
    assert_eq!(queued["queued"], 50);
    for _ in 0..600 {
        let state: serde_json::Value = get(&reg, "/v2/_wharf/upstreams").await.json().await.expect("json");
        if state["upstreams"][0]["syncPending"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.reads(), before, "a second run fetches nothing new");
}
