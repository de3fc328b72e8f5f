//! Wasm packages: `/.well-known/wasm-pkg/registry.json`, WIT packages told from components,
//! the versions API in semver order, `[[versioning]]` (immutable tags, semver only, WIT
//! compatibility within a `^` range) refusing with nothing stored, dependencies and dependents.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use wharf_wasm::ArtifactBuilder;
use wharf_wasm::wit::{dummy_component, encode_package};

use crate::common::{OCI_MANIFEST, Reg};

const CONFIG: &str = r#"
[packages]
namespace_prefix = "wasm/"

[[versioning]]
name = "packages"
repositories = ["wasm/**"]
immutable_tags = ["semver"]
semver_only = true
compatible = true
"#;

fn greeter(version: &str, functions: &str) -> Vec<u8> {
    encode_package(&[&format!(
        "package acme:greeter@{version};\ninterface hello {{ {functions} }}\nworld greeter {{ export hello; }}\n"
    )])
    .expect("WIT")
}

async fn registry() -> Reg {
    let file: wharf_server::config::FileConfig = toml::from_str(CONFIG).expect("config");
    let versioning = file.versioning().expect("versioning");
    Reg::serve(
        wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new())).with_versioning(versioning),
    )
    .await
}

/// Pushes `wasm` as wkg does (the CNCF layout) under `tag`; the response.
async fn push(reg: &Reg, repo: &str, tag: &str, wasm: Vec<u8>) -> reqwest::Response {
    push_artifact(reg, repo, tag, &ArtifactBuilder::new(wasm).cncf().expect("build")).await
}

async fn push_artifact(
    reg: &Reg,
    repo: &str,
    tag: &str,
    artifact: &wharf_wasm::Artifact,
) -> reqwest::Response {
    for blob in artifact.blobs() {
        reg.push_blob(repo, &blob.data).await;
    }
    let body = String::from_utf8(artifact.manifest.bytes().to_vec()).expect("utf-8");
    reg.push_manifest(repo, tag, OCI_MANIFEST, &body).await
}

async fn json(reg: &Reg, path: &str) -> (StatusCode, serde_json::Value) {
    let r = reg.req(Method::GET, path).send().await.expect("send");
    (r.status(), r.json().await.unwrap_or_default())
}

async fn refused(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    body["errors"][0]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn discovery_versions_rules_and_dependencies() {
    let reg = registry().await;
    let repo = "wasm/acme/greeter";

    // Discovery: the host the client reached, the prefix.
    let (status, meta) = json(&reg, "/.well-known/wasm-pkg/registry.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["preferredProtocol"], "oci");
    assert_eq!(meta["oci"]["namespacePrefix"], "wasm/");
    assert_eq!(meta["oci"]["registry"].as_str(), reg.base.strip_prefix("http://"));

    // Versions: 0.1.0, then compatible 0.1.1 (a function added), 0.2.0 (anything goes).
    let greet = "greet: func(name: string) -> string;";
    let wave = "wave: func();";
    let first = ArtifactBuilder::new(greeter("0.1.0", greet)).cncf().expect("build");
    assert_eq!(push_artifact(&reg, repo, "0.1.0", &first).await.status(), StatusCode::CREATED);
    for (tag, body) in [("0.1.1", format!("{greet} {wave}")), ("0.2.0", wave.to_owned())] {
        let r = push(&reg, repo, tag, greeter(tag, &body)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{tag}: {}", r.text().await.unwrap_or_default());
    }
    // A breaking 0.1.2 (greet removed) is refused, naming the function; nothing is stored.
    let message =
        refused(push(&reg, repo, "0.1.2", greeter("0.1.2", wave)).await, StatusCode::FORBIDDEN, "DENIED")
            .await;
    assert!(message.contains("versioning rule packages (compatible)"), "{message}");
    assert!(
        message.contains("breaks 0.1.1")
            && message.contains("function `greet` of `acme:greeter/hello` was removed"),
        "{message}"
    );
    let gone = reg.req(Method::HEAD, &format!("/v2/{repo}/manifests/0.1.2")).send().await.expect("head");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // A compatible 0.1.2 goes in.
    let r = push(&reg, repo, "0.1.2", greeter("0.1.2", &format!("{greet} {wave} shout: func();"))).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    // 0.1.0 is immutable: other bytes refused, the same bytes accepted, no delete.
    let message = refused(
        push(&reg, repo, "0.1.0", greeter("0.1.0", &format!("{greet} {wave}"))).await,
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert!(message.contains("immutable_tags") && message.contains("`0.1.0`"), "{message}");
    let again = push_artifact(&reg, repo, "0.1.0", &first).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let r = reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/0.1.0")).send().await.expect("delete");
    assert!(refused(r, StatusCode::FORBIDDEN, "DENIED").await.contains("cannot be deleted"));
    // Semver only.
    let message =
        refused(push(&reg, repo, "latest", greeter("0.3.0", greet)).await, StatusCode::FORBIDDEN, "DENIED")
            .await;
    assert!(message.contains("semver_only") && message.contains("`latest`"), "{message}");
    // A WIT package that says it is another package, or another version.
    let other = encode_package(&["package acme:other@0.3.0; interface x { f: func(); }"]).expect("WIT");
    let message =
        refused(push(&reg, repo, "0.3.0", other).await, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    assert!(message.contains("`acme:other`") && message.contains("acme:greeter"), "{message}");
    let message = refused(
        push(&reg, repo, "0.4.0", greeter("0.3.9", greet)).await,
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
    )
    .await;
    assert!(message.contains("declares version 0.3.9"), "{message}");
    // A component exporting acme:greeter/hello@0.1.0, in its own package repository.
    let wit = "package acme:greeter@0.1.0;\ninterface hello { greet: func(name: string) -> string; }\n";
    let app = "package acme:app@1.0.0; world app { export acme:greeter/hello@0.1.0; }";
    let component = dummy_component(&[wit, app], "app").expect("component");
    let r = push(&reg, "wasm/acme/app", "1.0.0", component).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());

    // The versions, in semver order, with what each is.
    let (status, versions) = json(&reg, "/v2/_wharf/packages/acme:greeter").await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    assert_eq!(versions["package"], "acme:greeter");
    assert_eq!(versions["repository"], repo);
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["version"].as_str().expect("v"))
        .collect();
    assert_eq!(listed, ["0.1.0", "0.1.1", "0.1.2", "0.2.0"], "{versions}");
    assert_eq!(versions["versions"][0]["content"], "wit-package");
    assert_eq!(versions["versions"][0]["exports"][0], "acme:greeter/hello@0.1.0");
    assert_eq!(versions["versions"][0]["yanked"], false);
    // Who depends on it.
    assert_eq!(versions["dependents"][0]["repository"], "wasm/acme/app", "{versions}");
    assert_eq!(versions["dependents"][0]["package"], "acme:app");
    assert_eq!(versions["dependents"][0]["uses"], "0.1.0");
    // The component's dependency, resolved here.
    let (_, app) = json(&reg, "/v2/wasm/acme/app/_wharf/versions").await;
    let dep = &app["versions"][0]["dependencies"][0];
    assert_eq!(
        (dep["package"].as_str(), dep["version"].as_str()),
        (Some("acme:greeter"), Some("0.1.0")),
        "{app}"
    );
    assert_eq!((dep["repository"].as_str(), dep["providedBy"].as_str()), (Some(repo), Some("0.1.0")));
    assert_eq!(app["versions"][0]["content"], "component");
    // Yanking shows, and can be taken back.
    let r = reg.req(Method::PUT, &format!("/v2/{repo}/_wharf/yanked/0.1.1")).send().await.expect("yank");
    assert_eq!(r.status(), StatusCode::OK);
    let (_, after) = json(&reg, &format!("/v2/{repo}/_wharf/versions")).await;
    assert_eq!(after["versions"][1]["yanked"], true);

    // Search: who depends on acme:greeter; which components export acme:greeter/hello.
    let hits = |q: &'static str| {
        let reg = &reg;
        async move {
            let (status, body) = json(reg, &format!("/v2/_wharf/search?{q}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|h| h["repository"].as_str().expect("repo").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(hits("depends=acme:greeter").await, ["wasm/acme/app"]);
    assert_eq!(hits("depends=acme:greeter@0.1.0").await, ["wasm/acme/app"]);
    assert!(hits("depends=acme:greeter@0.9.0").await.is_empty());
    assert_eq!(hits("export=acme:greeter/hello&kind=component").await, ["wasm/acme/app"]);
    assert_eq!(hits("kind=wit-package").await.len(), 4);
    // The web page: the WIT package as such with its WIT text, the component's dependency as
    // a link to the package, the package's versions.
    let html = |path: String| {
        let reg = &reg;
        async move {
            let r = reg.req(Method::GET, &path).send().await.expect("page");
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            r.text().await.expect("html")
        }
    };
    let home = html("/".to_owned()).await;
    assert!(home.contains("Use this registry with wkg") && home.contains("wasm/namespace/name"), "{home}");
    let page = html(format!("/repositories/{repo}/-/artifacts/0.1.0")).await;
    assert!(page.contains("The WIT package") && page.contains("package acme:greeter@0.1.0;"), "{page}");
    let page = html("/repositories/wasm/acme/app/-/artifacts/1.0.0".to_owned()).await;
    assert!(
        page.contains(r#"<a href="/packages/acme:greeter"><code>acme:greeter@0.1.0</code></a>"#),
        "{page}"
    );
    let page = html("/packages/acme:greeter".to_owned()).await;
    let order: Vec<usize> =
        ["<code>0.1.0</code>", "<code>0.1.1</code>", "<code>0.1.2</code>", "<code>0.2.0</code>"]
            .iter()
            .map(|v| page.find(v).unwrap_or_else(|| panic!("{v} missing: {page}")))
            .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "semver order: {page}");
    assert!(page.contains("(yanked)") && page.contains("acme:app (uses 0.1.0)"), "{page}");

    // Bad names and unknown packages.
    assert_eq!(json(&reg, "/v2/_wharf/packages/Acme:x").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(json(&reg, "/v2/_wharf/packages/acme:nothing").await.0, StatusCode::NOT_FOUND);
}
