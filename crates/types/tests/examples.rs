//! Every JSON document under `tests/data/` (copied from `shared/research/wasm-examples` and
//! `shared/research/client-manifests`: what Harbor's tests, the Wasm specs, buildah, podman,
//! umoci, skopeo, oras-py and oci-client really wrote) parses, and a manifest's digest is the
//! SHA-256 of the file's bytes.

use std::path::{Path, PathBuf};

use wharf_types::{Descriptor, Digest, Error, ImageConfig, Manifest, ManifestBody, MediaType};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn json_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["wasm-examples", "client-manifests"] {
        for entry in std::fs::read_dir(data_dir().join(dir)).expect("test data present") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "expected the shared examples, found {}", files.len());
    files
}

/// What a document is, from its content.
enum Kind {
    Manifest,
    ImageConfig,
    OtherConfig,
    DescriptorList,
}

fn kind(bytes: &[u8]) -> Kind {
    let value: serde_json::Value = serde_json::from_slice(bytes).expect("valid JSON");
    if value.is_array() {
        Kind::DescriptorList
    } else if value.get("schemaVersion").is_some() {
        Kind::Manifest
    } else if value.get("rootfs").is_some() {
        Kind::ImageConfig
    } else {
        Kind::OtherConfig
    }
}

/// The CNCF Wasm OCI artifact spec shows its manifest with the placeholder digest
/// `sha256:1234567890`, which is not a digest; it must be refused, clearly.
const PLACEHOLDER_DIGESTS: &str = "10-cncf-wasm-oci-artifact-manifest.json";

#[test]
fn every_example_parses_and_manifest_digests_match_their_bytes() {
    let (mut manifests, mut configs, mut others) = (0, 0, 0);
    for path in json_files() {
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        let bytes = std::fs::read(&path).expect("readable");
        match kind(&bytes) {
            Kind::Manifest if name == PLACEHOLDER_DIGESTS => {
                let err = Manifest::from_bytes(bytes, None).expect_err("placeholder digests");
                assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");
                assert!(err.to_string().contains("config.digest"), "{err}");
            }
            Kind::Manifest => {
                let manifest =
                    Manifest::from_bytes(bytes.clone(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(manifest.digest(), &Digest::sha256(&bytes), "{name}");
                assert_eq!(&manifest.bytes()[..], &bytes[..], "{name}");
                assert!(manifest.media_type().is_manifest(), "{name}");
                // Pushed again with its media type as the content type, it is the same.
                let again = Manifest::from_bytes(bytes.clone(), Some(manifest.media_type()))
                    .unwrap_or_else(|e| panic!("{name} with content type: {e}"));
                assert_eq!(again.body(), manifest.body(), "{name}");
                wharf_types::fuzzing::manifest(&bytes);
                manifests += 1;
            }
            Kind::ImageConfig => {
                let config: ImageConfig =
                    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!config.os().to_string().is_empty(), "{name}");
                configs += 1;
            }
            Kind::DescriptorList => {
                let list: Vec<Descriptor> =
                    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!list.is_empty(), "{name}");
                others += 1;
            }
            Kind::OtherConfig => {
                // Wasm configs (`{}`, the CNCF v0 config, solo's runtime config): JSON
                // objects whose schema belongs to wharf-wasm.
                let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
                assert!(value.is_object(), "{name}");
                others += 1;
            }
        }
    }
    assert_eq!((manifests, configs, others), (29, 5, 6));
}

#[test]
fn the_cncf_example_parses_once_its_placeholders_are_real_digests() {
    let text = std::fs::read_to_string(data_dir().join("wasm-examples").join(PLACEHOLDER_DIGESTS))
        .expect("readable");
    let real = text.replace("sha256:1234567890", Digest::sha256(b"module").as_str());
    let manifest = Manifest::from_bytes(real.clone(), None).expect("parses");
    assert_eq!(manifest.digest(), &Digest::sha256(real.as_bytes()));
    let image = manifest.as_image().expect("image manifest");
    assert_eq!(image.config.media_type, MediaType::WASM_CONFIG_V0);
    assert!(image.layers.iter().all(|l| l.media_type == MediaType::WASM));
    assert_eq!(image.annotation("anything"), Some("you-want-per-spec"));
}

fn manifest(dir: &str, name: &str) -> Manifest {
    let bytes = std::fs::read(data_dir().join(dir).join(name)).expect("readable");
    Manifest::from_bytes(bytes, None).expect("parses")
}

#[test]
fn fields_that_matter_are_read() {
    let m = manifest("wasm-examples", "01-harbor-test-wasm-to-oci-manifest.json");
    let image = m.as_image().expect("image");
    assert_eq!(image.config.media_type, MediaType::WASM_CONFIG_V1);
    assert_eq!(image.config.digest, Digest::EMPTY_JSON);
    assert_eq!(image.layers[0].media_type, MediaType::WASM_CONTENT_LAYER_V1);
    assert!(image.layers[0].title().is_some());
    // No `mediaType` field, no content type: an OCI manifest by its shape.
    assert_eq!(m.media_type(), &MediaType::OCI_MANIFEST);

    let m = manifest("wasm-examples", "03-harbor-test-annotated-compat-manifest.json");
    assert_eq!(m.as_image().and_then(|i| i.annotation("module.wasm.image/variant")), Some("compat"));

    let m = manifest("wasm-examples", "13-rust-oci-client-test-manifest.json");
    assert_eq!(m.media_type(), &MediaType::DOCKER_MANIFEST);
    assert_eq!(m.artifact_type(), Some(&MediaType::WASM_COMPONENT_ARTIFACT_V1));

    let m = manifest("client-manifests", "podman-wasi-index.json");
    let ManifestBody::Index(index) = m.body() else { panic!("an index") };
    assert!(index.manifests.iter().any(|d| d.platform.as_ref().is_some_and(|p| p.is("wasi", "wasm"))));

    let m = manifest("client-manifests", "oraspy-referrer-subject.manifest.json");
    assert!(m.subject().is_some());

    let m = manifest("client-manifests", "buildah-dockerformat.manifest.json");
    assert!(m.media_type().is_docker());
}
