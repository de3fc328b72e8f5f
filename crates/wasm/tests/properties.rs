//! proptest: `classify` never panics on arbitrary manifest-shaped JSON, and the fuzz
//! invariants hold on random input.

use std::fmt::Write as _;

use proptest::prelude::*;
use wharf_types::Manifest;
use wharf_wasm::{classify, fuzzing};

fn media_type() -> impl Strategy<Value = String> {
    let known: Vec<String> = wharf_types::MediaType::KNOWN.iter().map(ToString::to_string).collect();
    prop_oneof![
        prop::sample::select(known),
        "[a-z]{1,8}/[a-z0-9.+-]{1,20}",
        Just("application/vnd.cncf.helm.config.v1+json".to_owned()),
    ]
}

fn annotations() -> impl Strategy<Value = String> {
    prop::collection::btree_map(
        prop_oneof![
            Just("module.wasm.image/variant".to_owned()),
            Just("run.oci.handler".to_owned()),
            Just("org.opencontainers.image.title".to_owned()),
            "[a-z./]{1,12}",
        ],
        prop_oneof![Just("compat".to_owned()), Just("wasm".to_owned()), "[a-z-]{0,10}"],
        0..3,
    )
    .prop_map(|m| serde_json::to_string(&m).expect("json"))
}

fn descriptor() -> impl Strategy<Value = String> {
    (
        media_type(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(annotations()),
        proptest::option::of(("[a-zA-Z0-9]{0,8}", "[a-zA-Z0-9]{0,8}")),
    )
        .prop_map(|(mt, seed, size, ann, platform)| {
            let mut d = format!(
                r#"{{"mediaType":"{mt}","digest":"{}","size":{size}"#,
                wharf_types::Digest::sha256(&seed.to_le_bytes())
            );
            if let Some(a) = ann {
                write!(d, r#","annotations":{a}"#).expect("a String accepts writes");
            }
            if let Some((os, arch)) = platform {
                write!(d, r#","platform":{{"os":"{os}","architecture":"{arch}"}}"#)
                    .expect("a String accepts writes");
            }
            d.push('}');
            d
        })
}

fn config_blob() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("{}".to_owned()),
        ("[a-zA-Z0-9]{0,8}", "[a-zA-Z0-9]{0,8}", "[/a-z.#]{0,12}", "[a-zA-Z.]{0,40}").prop_map(|(os, arch, cmd, label)| format!(
            r#"{{"os":"{os}","architecture":"{arch}","config":{{"Cmd":["{cmd}"],"Entrypoint":[],"Labels":{{"{label}":"x"}}}},"layerDigests":[],"component":null}}"#
        )),
        any::<String>(),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn classify_never_panics_on_manifest_shaped_json(
        config in descriptor(),
        layers in prop::collection::vec(descriptor(), 0..5),
        artifact_type in proptest::option::of(media_type()),
        ann in proptest::option::of(annotations()),
        index in any::<bool>(),
        blob in config_blob(),
    ) {
        let mut extra = String::new();
        if let Some(at) = artifact_type {
            write!(extra, r#","artifactType":"{at}""#).expect("a String accepts writes");
        }
        if let Some(a) = ann {
            write!(extra, r#","annotations":{a}"#).expect("a String accepts writes");
        }
        let json = if index {
            format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]{extra}}}"#, layers.join(","))
        } else {
            format!(r#"{{"schemaVersion":2,"config":{config},"layers":[{}]{extra}}}"#, layers.join(","))
        };
        let Ok(manifest) = Manifest::from_bytes(json.clone(), None) else {
            // Only media types outside RFC 6838 may make the document invalid.
            return Ok(());
        };
        let c = classify(&manifest, blob.as_deref().map(str::as_bytes));
        prop_assert!(!c.is_wasm() || !c.evidence.is_empty());
        let mut data = vec![u8::try_from(blob.as_ref().map_or(0, String::len).min(255)).expect("≤ 255")];
        data.extend_from_slice(json.as_bytes());
        data.extend_from_slice(blob.as_deref().unwrap_or_default().as_bytes());
        fuzzing::classify_bytes(&data);
    }

    #[test]
    fn inspect_invariants_on_random_bytes(tail in prop::collection::vec(any::<u8>(), 0..64), version in prop::sample::select(vec![[1u8, 0, 0, 0], [0x0d, 0, 1, 0], [0x0c, 0, 1, 0], [2, 0, 0, 0]])) {
        let mut bytes = wharf_wasm::WASM_MAGIC.to_vec();
        bytes.extend_from_slice(&version);
        bytes.extend_from_slice(&tail);
        fuzzing::inspect_bytes(&bytes);
        fuzzing::inspect_bytes(&tail);
    }
}

/// A fuzzing finding: 291 bytes whose section header claims 1.3 GB made `wit-parser` allocate
/// it. Refused now, with a small allocation.
#[test]
fn a_hostile_section_size_does_not_allocate_it() {
    let data =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/fuzz/wit-oom-section-size.bin"))
            .expect("fixture");
    assert!(wharf_wasm::wit::world(&data).is_err());
    fuzzing::wit_bytes(&data);
    fuzzing::inspect_bytes(&data);
}

/// A fuzzing finding: a valid component on which `wit-parser` reaches `unreachable!`. Its
/// world is an error, the inspection still answers.
#[test]
fn a_component_wit_parser_cannot_describe_is_an_error_not_a_crash() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/wasm/fuzz/wit-parser-unreachable.bin"
    ))
    .expect("fixture");
    let err = wharf_wasm::wit::world(&data).expect_err("no world");
    assert!(err.to_string().contains("cannot describe"), "{err}");
    if let Ok(info) = wharf_wasm::inspect(&data) {
        assert!(info.world.is_none() && info.world_error.is_some());
    }
    fuzzing::wit_bytes(&data);
    fuzzing::inspect_bytes(&data);
}

#[test]
fn fuzz_invariants_on_real_binaries() {
    fuzzing::inspect_bytes(&crate::common::hello_module());
    fuzzing::inspect_bytes(&crate::common::component());
    fuzzing::wit_bytes(&crate::common::component());
    let module = crate::common::hello_module();
    for gzip in [false, true] {
        let layer = crate::common::tar_layer(&[("plugin.wasm", &module), ("app/main.wasm", &module)], gzip);
        fuzzing::extract_bytes(&layer);
        // Every truncation of a real layer: an error or a module, never a panic.
        for cut in (0..layer.len()).step_by(97) {
            fuzzing::extract_bytes(&layer[..cut]);
        }
    }
}
