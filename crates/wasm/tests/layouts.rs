//! A composed manifest (and config) for every layout F1–F12 of WASM-FORMATS.md, for indexes,
//! and for what is not Wasm; with the Harbor 2.6 view of each.

use wharf_wasm::{BinaryKind, Classification, EntryMatch, Kind, Location, classify};

use crate::common::{desc, image, manifest, read};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const W2O_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
const TITLE: &str = r#","annotations":{"org.opencontainers.image.title":"hello.wasm"}"#;

fn run(json: &str, config: Option<&str>) -> Classification {
    let m = manifest(json);
    let c = classify(&m, config.map(str::as_bytes));
    if c.is_wasm() {
        assert!(!c.evidence.is_empty(), "{:?} without evidence", c.kind);
    }
    c
}

#[test]
fn f1_wasm_to_oci() {
    let json =
        image(&desc("application/vnd.wasm.config.v1+json", "{}", ""), &[desc(W2O_LAYER, "m", TITLE)], "");
    let c = run(&json, Some("{}"));
    assert_eq!(c.kind, Kind::WasmToOci);
    assert_eq!(c.kind.format_id(), "F1");
    assert_eq!((c.wasm_layers[0].index, &c.wasm_layers[0].location), (0, &Location::Raw));
    assert_eq!(c.harbor.artifact_type, "WASM");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn f12_kubewarden_is_f1_without_title() {
    let json =
        image(&desc("application/vnd.wasm.config.v1+json", "{}", ""), &[desc(W2O_LAYER, "policy", "")], "");
    let c = run(&json, Some("{}"));
    assert_eq!(c.kind, Kind::WasmToOci);
    assert!(c.warnings.iter().any(|w| w.contains("F12")), "{:?}", c.warnings);
    assert_eq!(c.harbor.artifact_type, "WASM");
    assert_eq!(c.harbor.extra_attrs["org.opencontainers.image.title"], "");
}

#[test]
fn f2_annotated_values() {
    let config = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    for (key, value, harbor) in [
        ("module.wasm.image/variant", "compat", "WASM"),
        ("module.wasm.image/variant", "compat-smart", "IMAGE"),
        ("run.oci.handler", "wasm", "WASM"),
        ("run.oci.handler", "wasm-smart", "IMAGE"),
        ("run.oci.handler", "wasmtime", "IMAGE"),
    ] {
        let json = image(
            &desc(OCI_CONFIG, "c", ""),
            &[desc(TAR_GZ, "l", "")],
            &format!(r#","annotations":{{"{key}":"{value}"}}"#),
        );
        let c = run(&json, Some(config));
        assert_eq!(
            c.kind,
            Kind::CompatAnnotated { annotation: key.into(), value: value.into() },
            "{key}={value}"
        );
        assert_eq!(c.kind.format_id(), "F2");
        assert_eq!(c.harbor.artifact_type, harbor, "{key}={value}");
        assert_eq!(c.wasm_layers[0].location, Location::TarEntry(EntryMatch::Path("app.wasm".into())));
    }
    // Without the config, the module is "any .wasm file" of the layer.
    let json = image(
        &desc(OCI_CONFIG, "c", ""),
        &[desc(TAR_GZ, "l", "")],
        r#","annotations":{"run.oci.handler":"wasm"}"#,
    );
    assert_eq!(run(&json, None).wasm_layers[0].location, Location::TarEntry(EntryMatch::AnyWasm));
}

#[test]
fn f3_platform_images() {
    for (os, arch) in
        [("wasi", "wasm"), ("wasip1", "wasm"), ("Wasip1", "wasm"), ("wasi", "wasm32"), ("linux", "wasm")]
    {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"{os}","config":{{"Entrypoint":["app.wasm#main"],"WorkingDir":"/srv"}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let json =
            image(&desc(OCI_CONFIG, "c", ""), &[desc(TAR_GZ, "base", ""), desc(TAR_GZ, "top", "")], "");
        let c = run(&json, Some(&config));
        assert_eq!(c.kind, Kind::PlatformImage, "{os}/{arch}");
        assert_eq!(c.harbor.artifact_type, "IMAGE", "Harbor 2.6 ignores the platform");
        // Topmost layer first, path from Entrypoint joined to WorkingDir, `#func` dropped.
        assert_eq!(c.wasm_layers.iter().map(|l| l.index).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(c.wasm_layers[0].location, Location::TarEntry(EntryMatch::Path("srv/app.wasm".into())));
    }
}

#[test]
fn f4_runwasi_layers() {
    let config = r#"{"architecture":"wasm","os":"wasip1","config":{"Entrypoint":["wasi-demo-oci.wasm"],"Labels":{"containerd.runwasi.layers":"abc"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let json = image(
        &desc(OCI_CONFIG, "c", ""),
        &[desc("application/vnd.bytecodealliance.wasm.component.layer.v0+wasm", "m", "")],
        r#","annotations":{"io.containerd.image.name":"ghcr.io/containerd/runwasi/wasi-demo-oci:latest"}"#,
    );
    let c = run(&json, Some(config));
    assert_eq!(c.kind, Kind::RunwasiImage);
    assert_eq!(c.wasm_layers[0].location, Location::Raw);
    assert_eq!(c.evidence.len(), 2, "layer type and label: {:#?}", c.evidence);
    assert_eq!(c.harbor.artifact_type, "IMAGE");
}

#[test]
fn f5_cncf_artifact() {
    // The spec's own example, with real digests in place of its placeholders.
    let text =
        String::from_utf8(read("wasm-examples/10-cncf-wasm-oci-artifact-manifest.json")).expect("utf-8");
    let json = text.replace("sha256:1234567890", &crate::common::digest("x"));
    let c = run(
        &json,
        Some(&String::from_utf8(read("wasm-examples/11-cncf-wasm-oci-artifact-config.json")).expect("utf-8")),
    );
    assert_eq!(c.kind, Kind::CncfArtifact);
    assert_eq!(c.wasm_layers.len(), 2);
    assert!(c.warnings.iter().any(|w| w.contains("2 layers")), "{:?}", c.warnings);
    assert_eq!(c.harbor.artifact_type, "UNKNOWN");

    // A module per runwasi's README config, layerDigests matching.
    let layer = desc("application/wasm", "mod", TITLE);
    let config = format!(
        r#"{{"created":"2024-06-25T15:58:49.377917735Z","author":null,"architecture":"wasm","os":"wasip1","layerDigests":["{}"],"component":null}}"#,
        crate::common::digest("mod")
    );
    let c =
        run(&image(&desc("application/vnd.wasm.config.v0+json", &config, ""), &[layer], ""), Some(&config));
    assert_eq!(c.kind, Kind::CncfArtifact);
    assert_eq!(c.binary_kind, Some(BinaryKind::CoreModule));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.platform.as_ref().is_some_and(|p| p.is("wasip1", "wasm")));
}

#[test]
fn f6_solo_oci_variant() {
    let cfg = desc(
        "application/vnd.module.wasm.config.v1+json",
        "rc",
        r#","annotations":{"org.opencontainers.image.title":"runtime-config.json"}"#,
    );
    let json = image(
        &cfg,
        &[cfg.clone(), desc("application/vnd.module.wasm.content.layer.v1+wasm", "f", "")],
        r#","annotations":{"module.wasm.runtime/type":"envoy_proxy"}"#,
    );
    let config =
        String::from_utf8(read("wasm-examples/07-solo-oci-variant-runtime-config.json")).expect("utf-8");
    let c = run(&json, Some(&config));
    assert_eq!(c.kind, Kind::SoloOci);
    assert_eq!(c.wasm_layers[0].index, 1);
    // Harbor's default processor: the regex makes it WASM, and the config is its extra_attrs.
    assert_eq!(c.harbor.artifact_type, "WASM");
    assert_eq!(c.harbor.extra_attrs["type"], "envoy_proxy");
}

#[test]
fn f7_and_f8_need_the_layer() {
    // F7: Docker schema 2, one docker tar.gz layer holding plugin.wasm.
    let json = String::from_utf8(read("wasm-examples/09-solo-compat-docker-manifest.json")).expect("utf-8");
    let mut c = run(&json, None);
    assert_eq!(c.kind, Kind::NotWasm);
    let probe = c.layer_probes()[0].clone();
    assert_eq!(probe.location, Location::TarEntry(EntryMatch::FileName("plugin.wasm".into())));
    assert!(!c.confirm_tar_entry(probe.index, "other.wasm"));
    assert!(c.confirm_tar_entry(probe.index, "plugin.wasm"));
    assert_eq!(c.kind, Kind::SoloCompat);
    assert!(c.evidence.iter().any(|e| e.value == "plugin.wasm"));
    assert!(c.layer_probes().is_empty());

    // F8: one uncompressed OCI tar layer holding extension.wasm.
    let json =
        image(&desc(OCI_CONFIG, "c", ""), &[desc("application/vnd.oci.image.layer.v1.tar", "l", "")], "");
    let mut c = run(&json, None);
    let probe = c
        .layer_probes()
        .iter()
        .find(|p| p.location == Location::TarEntry(EntryMatch::FileName("extension.wasm".into())))
        .cloned()
        .expect("F8 probe");
    assert!(c.confirm_tar_entry(probe.index, "extension.wasm"));
    assert_eq!(c.kind, Kind::IstioExtension);
}

#[test]
fn f9_spin() {
    let json = String::from_utf8(read("wasm-examples/14-spin-sip008-manifest-pre-2.0.json")).expect("utf-8");
    let c = run(&json, None);
    assert_eq!(c.kind, Kind::SpinV1);
    assert_eq!(c.harbor.artifact_type, "UNKNOWN");

    let json = image(
        &desc(OCI_CONFIG, "c", ""),
        &[
            desc(W2O_LAYER, "comp", ""),
            desc("application/vnd.wasm.content.layer.v1+data", "data", ""),
            desc("application/vnd.fermyon.spin.application.v1+config", "locked", ""),
        ],
        r#","annotations":{"org.opencontainers.image.title":"hello-spin"}"#,
    );
    let config = r#"{"architecture":"wasm","os":"Wasip1","config":{"Labels":{"com.fermyon.spin.lockedAppDigest":"sha256:ddb7"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = run(&json, Some(config));
    assert_eq!(c.kind, Kind::SpinV2);
    assert_eq!(c.wasm_layers.iter().map(|l| l.index).collect::<Vec<_>>(), [0]);
    assert_eq!(c.evidence.len(), 2);
    assert!(c.platform.as_ref().is_some_and(|p| p.is("wasip1", "wasm") && p.os == "Wasip1"));
    assert_eq!(c.harbor.artifact_type, "IMAGE");
}

#[test]
fn f10_wasmcloud() {
    let actor = image(
        &desc("application/vnd.wasmcloud.actor.archive.config", "{}", ""),
        &[desc("application/vnd.module.wasm.content.layer.v1+wasm", "a", "")],
        "",
    );
    let c = run(&actor, Some("{}"));
    assert_eq!(c.kind, Kind::WasmCloudActor);
    assert_eq!(c.harbor.artifact_type, "UNKNOWN");
    let provider = image(
        &desc("application/vnd.wasmcloud.provider.archive.config", "{}", ""),
        &[desc("application/vnd.wasmcloud.provider.archive.layer.v1+par", "p", "")],
        "",
    );
    let c = run(&provider, Some("{}"));
    assert_eq!(c.kind, Kind::NotWasm);
    assert!(!c.hints.is_empty());
}

#[test]
fn f11_artifact_types() {
    for (at, kind) in [
        ("application/vnd.wasm.component.v1+wasm", BinaryKind::Component),
        ("application/vnd.bytecodealliance.component.v1+wasm", BinaryKind::Component),
        ("application/vnd.bytecodealliance.module.v1+wasm", BinaryKind::CoreModule),
    ] {
        let json = image(
            &desc("application/vnd.docker.container.image.v1+json", "{}", ""),
            &[desc(W2O_LAYER, "m", "")],
            &format!(r#","artifactType":"{at}""#),
        );
        let c = run(&json, None);
        assert_eq!((c.kind.clone(), c.binary_kind), (Kind::ArtifactType, Some(kind)), "{at}");
        assert_eq!(c.wasm_layers.len(), 1);
    }
}

#[test]
fn oras_style_artifact_with_raw_wasm_layer() {
    let json = image(
        &desc("application/vnd.oci.empty.v1+json", "{}", ""),
        &[desc("application/wasm", "m", "")],
        r#","artifactType":"application/vnd.example.thing""#,
    );
    let c = run(&json, None);
    assert_eq!(c.kind, Kind::RawWasmLayers);
    assert_eq!(c.harbor.artifact_type, "UNKNOWN");
}

#[test]
fn indexes() {
    let child = |platform: &str, seed: &str| {
        desc("application/vnd.oci.image.manifest.v1+json", seed, &format!(r#","platform":{platform}"#))
    };
    let index = |children: &[String]| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            children.join(",")
        )
    };
    let json = index(&[
        child(r#"{"os":"linux","architecture":"amd64"}"#, "a"),
        child(r#"{"os":"unknown","architecture":"unknown"}"#, "att"),
        child(r#"{"os":"wasip2","architecture":"wasm"}"#, "w"),
    ]);
    let c = run(&json, None);
    assert_eq!(c.kind, Kind::WasmIndex);
    assert_eq!(c.wasm_children.iter().map(|w| w.index).collect::<Vec<_>>(), [2]);
    assert_eq!(c.harbor.artifact_type, "IMAGE");

    let json = index(&[
        child(r#"{"os":"linux","architecture":"amd64"}"#, "a"),
        child(r#"{"os":"unknown","architecture":"unknown"}"#, "att"),
    ]);
    let c = run(&json, None);
    assert_eq!(c.kind, Kind::NotWasm);
    assert_eq!((c.evidence[0].field.as_str(), c.evidence[0].value.as_str()), ("manifests", "2 children"));
}

#[test]
fn negatives() {
    // A plain linux/amd64 image.
    let config = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let plain = image(&desc(OCI_CONFIG, "c", ""), &[desc(TAR_GZ, "a", ""), desc(TAR_GZ, "b", "")], "");
    let c = run(&plain, Some(config));
    assert_eq!((c.kind.clone(), c.harbor.artifact_type.as_str()), (Kind::NotWasm, "IMAGE"));
    // A verdict of not Wasm says what was looked at, and prints without a format id.
    assert_eq!(c.evidence.len(), 1, "{:#?}", c.evidence);
    assert_eq!(
        (c.evidence[0].field.as_str(), c.evidence[0].value.as_str()),
        ("config.mediaType", OCI_CONFIG)
    );
    assert_eq!(format!("{:#}", c.kind), "not-wasm");

    // A Helm chart.
    let chart = image(
        &desc("application/vnd.cncf.helm.config.v1+json", "chart", ""),
        &[desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "c", "")],
        "",
    );
    let c = run(&chart, Some(r#"{"name":"x","version":"1.0.0"}"#));
    assert_eq!((c.kind.clone(), c.harbor.artifact_type.as_str()), (Kind::NotWasm, "CHART"));

    // A cosign signature.
    let sig = image(
        &desc(OCI_CONFIG, "sigcfg", ""),
        &[desc(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            "s",
            r#","annotations":{"dev.cosignproject.cosign/signature":"MEUC"}"#,
        )],
        "",
    );
    assert_eq!(
        run(
            &sig,
            Some(r#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#)
        )
        .kind,
        Kind::NotWasm
    );

    // run.oci.handler=runc is not a Wasm handler.
    let runc = image(
        &desc(OCI_CONFIG, "c", ""),
        &[desc(TAR_GZ, "a", "")],
        r#","annotations":{"run.oci.handler":"runc"}"#,
    );
    let c = run(&runc, Some(config));
    assert_eq!(c.kind, Kind::NotWasm);
    assert!(c.hints.iter().any(|h| h.value == "runc"));
    assert_eq!(c.harbor.artifact_type, "IMAGE");

    // The variant only as a config label: a weak hint, not Wasm.
    let labelled = r#"{"architecture":"amd64","os":"linux","config":{"Labels":{"module.wasm.image/variant":"compat"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = run(&plain, Some(labelled));
    assert_eq!(c.kind, Kind::NotWasm);
    assert!(c.hints.iter().any(|h| h.field.contains("Labels")), "{:#?}", c.hints);
    assert_eq!(c.harbor.artifact_type, "IMAGE");

    // Harbor compares exactly: a differently cased config type is ours, not Harbor's.
    let cased =
        image(&desc("Application/VND.wasm.config.v1+json", "{}", ""), &[desc(W2O_LAYER, "m", "")], "");
    let c = run(&cased, Some("{}"));
    assert_eq!((c.kind.clone(), c.harbor.artifact_type.as_str()), (Kind::WasmToOci, "UNKNOWN"));

    // A config blob that is not JSON is ignored, with a hint.
    let c = run(&plain, Some("\u{0}garbage"));
    assert_eq!(c.kind, Kind::NotWasm);
    assert!(c.hints.iter().any(|h| h.field == "config blob"));
}
