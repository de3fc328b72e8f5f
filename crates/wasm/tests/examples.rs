//! Every shared real-world manifest (tests/data, copied from shared/research) classified as
//! expected, with Harbor 2.6's view.

use wharf_types::{Digest, Manifest};
use wharf_wasm::{EntryMatch, Kind, Location, classify};

use crate::common::{data_dir, read};

/// (manifest file, its config file when the data has it, expected kind name, Harbor type).
const EXPECTED: &[(&str, Option<&str>, &str, &str)] = &[
    // Harbor's own fixtures and the specs' samples.
    (
        "wasm-examples/01-harbor-test-wasm-to-oci-manifest.json",
        Some("wasm-examples/02-harbor-test-wasm-to-oci-config.json"),
        "wasm-to-oci",
        "WASM",
    ),
    (
        "wasm-examples/03-harbor-test-annotated-compat-manifest.json",
        Some("wasm-examples/04-harbor-test-annotated-compat-config.json"),
        "compat-annotated",
        "WASM",
    ),
    ("wasm-examples/05-wasm-to-oci-readme-manifest.json", None, "wasm-to-oci", "WASM"),
    ("wasm-examples/08-solo-compat-oci-manifest.json", None, "compat-annotated", "WASM"),
    // Docker schema 2 with plugin.wasm inside: only the layer content tells (F7).
    ("wasm-examples/09-solo-compat-docker-manifest.json", None, "not-wasm", "IMAGE"),
    ("wasm-examples/13-rust-oci-client-test-manifest.json", None, "artifact-type", "IMAGE"),
    ("wasm-examples/14-spin-sip008-manifest-pre-2.0.json", None, "spin-v1", "UNKNOWN"),
    // What real clients pushed.
    (
        "client-manifests/buildah-compat.manifest.json",
        Some("client-manifests/buildah-compat.config.json"),
        "compat-annotated",
        "WASM",
    ),
    (
        "client-manifests/buildah-handler-v2.manifest.json",
        Some("client-manifests/buildah-handler-v2.config.json"),
        "compat-annotated",
        "WASM",
    ),
    ("client-manifests/buildah-timestamp0.manifest.json", None, "compat-annotated", "WASM"),
    // Docker format drops annotations; the layer may hold anything.
    ("client-manifests/buildah-dockerformat.manifest.json", None, "not-wasm", "IMAGE"),
    (
        "client-manifests/skopeo-from-docker-archive.manifest.json",
        Some("client-manifests/buildah-handler-v2.config.json"),
        "not-wasm",
        "IMAGE",
    ),
    (
        "client-manifests/podman-build-wasi.manifest.json",
        Some("client-manifests/podman-build-wasi.config.json"),
        "compat-annotated",
        "WASM",
    ),
    ("client-manifests/podman-build.manifest.json", None, "compat-annotated", "WASM"),
    (
        "client-manifests/umoci.manifest.json",
        Some("client-manifests/umoci.config.json"),
        "compat-annotated",
        "WASM",
    ),
    (
        "client-manifests/npm-oci-registry-client.manifest.json",
        Some("client-manifests/wasm-to-oci.config.json"),
        "wasm-to-oci",
        "WASM",
    ),
    (
        "client-manifests/oci-client-wasm.manifest.json",
        Some("client-manifests/wasm-to-oci.config.json"),
        "wasm-to-oci",
        "WASM",
    ),
    (
        "client-manifests/oraspy-wasm-to-oci.manifest.json",
        Some("client-manifests/wasm-to-oci.config.json"),
        "wasm-to-oci",
        "WASM",
    ),
    ("client-manifests/oraspy-auth-wasm-to-oci.manifest.json", None, "wasm-to-oci", "WASM"),
    ("client-manifests/w2o-shape.manifest.json", None, "wasm-to-oci", "WASM"),
    ("client-manifests/oci-client-referrer.manifest.json", None, "not-wasm", "UNKNOWN"),
    ("client-manifests/oraspy-referrer-artifacttype.manifest.json", None, "not-wasm", "UNKNOWN"),
    ("client-manifests/oraspy-auth-referrer-artifacttype.manifest.json", None, "not-wasm", "UNKNOWN"),
    ("client-manifests/oraspy-referrer-subject.manifest.json", None, "not-wasm", "UNKNOWN"),
    ("client-manifests/oraspy-auth-referrer-subject.manifest.json", None, "not-wasm", "UNKNOWN"),
    // Indexes: Harbor 2.6 sees every index as IMAGE.
    ("client-manifests/buildah-index.json", None, "wasm-index", "IMAGE"),
    ("client-manifests/podman-index.json", None, "wasm-index", "IMAGE"),
    ("client-manifests/podman-wasi-index.json", None, "wasm-index", "IMAGE"),
    ("client-manifests/docker-cli-manifest-list.json", None, "wasm-index", "IMAGE"),
];

#[test]
fn every_shared_manifest_is_classified_as_expected() {
    let mut seen = std::collections::BTreeSet::new();
    for (file, config, kind, harbor) in EXPECTED {
        let manifest = Manifest::from_bytes(read(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
        let config_bytes = config.map(read);
        if let (Some(config), Some(bytes)) = (config, &config_bytes)
            && file.starts_with("client-manifests/")
        {
            // The pairing is real: the manifest names this config. (The wasm-examples were
            // copied from source code, whitespace not kept, so their digests cannot match.)
            let named = &manifest.as_image().expect("image").config.digest;
            assert_eq!(named, &Digest::sha256(bytes), "{file} does not name {config}");
        }
        let c = classify(&manifest, config_bytes.as_deref());
        assert_eq!(c.kind.name(), *kind, "{file}: {:#?}", c.evidence);
        assert_eq!(c.harbor.artifact_type, *harbor, "{file}");
        if c.is_wasm() {
            assert!(!c.evidence.is_empty(), "{file}");
        }
        seen.insert(*file);
    }
    // Every manifest of the shared data is in the table (the CNCF one is tested with real
    // digests in `layouts`, as its placeholders are not digests).
    for dir in ["wasm-examples", "client-manifests"] {
        for entry in std::fs::read_dir(data_dir().join(dir)).expect("data") {
            let path = entry.expect("entry").path();
            let name = format!("{dir}/{}", path.file_name().and_then(|n| n.to_str()).expect("name"));
            let text = std::fs::read_to_string(&path).expect("read");
            if text.contains("schemaVersion") && !name.contains("10-cncf") {
                assert!(seen.contains(name.as_str()), "{name} has no expected classification");
            }
        }
    }
}

#[test]
fn the_harbor_fixtures_give_harbors_extra_attrs() {
    let m = Manifest::from_bytes(read("wasm-examples/01-harbor-test-wasm-to-oci-manifest.json"), None)
        .expect("parses");
    let c = classify(&m, Some(b"{}"));
    let attrs = &c.harbor.extra_attrs;
    assert_eq!(attrs["manifest.config.mediaType"], "application/vnd.wasm.config.v1+json");
    assert_eq!(attrs["manifest.layers.mediaType"], "application/vnd.wasm.content.layer.v1+wasm");
    assert_eq!(attrs["org.opencontainers.image.title"], "test.wasm");
    assert_eq!(c.harbor.additions, ["BUILD_HISTORY"]);

    let m = Manifest::from_bytes(read("wasm-examples/03-harbor-test-annotated-compat-manifest.json"), None)
        .expect("parses");
    let c = classify(&m, Some(&read("wasm-examples/04-harbor-test-annotated-compat-config.json")));
    assert_eq!(c.harbor.media_type, "application/vnd.wasm.config.v1+json");
    let attrs = &c.harbor.extra_attrs;
    assert_eq!(attrs["manifest.config.mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!(attrs["architecture"], "amd64");
    assert_eq!(attrs["os"], "linux");
    assert_eq!(attrs["created"], "2022-03-02T09:02:41.01773982Z");
    assert_eq!(attrs["config"]["Cmd"][0], "/sleep.wasm");
    // The module is the entrypoint inside the tar layer.
    assert_eq!(c.wasm_layers[0].location, Location::TarEntry(EntryMatch::Path("sleep.wasm".into())));
    // Harbor's fixture says amd64/linux: the platform is recorded, but it is not Wasm's.
    assert!(c.platform.as_ref().is_some_and(|p| p.is("linux", "amd64")));
}

#[test]
fn podman_wasi_build_has_platform_and_annotation_evidence() {
    let m =
        Manifest::from_bytes(read("client-manifests/podman-build-wasi.manifest.json"), None).expect("parses");
    let c = classify(&m, Some(&read("client-manifests/podman-build-wasi.config.json")));
    assert!(
        matches!(&c.kind, Kind::CompatAnnotated { annotation, value } if annotation == "run.oci.handler" && value == "wasm")
    );
    assert!(c.platform.as_ref().is_some_and(|p| p.is("wasi", "wasm")));
    assert!(c.evidence.iter().any(|e| e.rule == "Wasm platform"), "{:#?}", c.evidence);
    assert!(
        matches!(&c.wasm_layers[0].location, Location::TarEntry(EntryMatch::Path(p)) if p.to_ascii_lowercase().ends_with(".wasm"))
    );
}

#[test]
fn index_children_are_named() {
    let m =
        Manifest::from_bytes(read("client-manifests/docker-cli-manifest-list.json"), None).expect("parses");
    let c = classify(&m, None);
    assert_eq!(c.wasm_children.len(), 1);
    assert_eq!(c.wasm_children[0].index, 1);
    assert!(c.platform.as_ref().is_some_and(|p| p.is("wasi", "wasm")));
}
