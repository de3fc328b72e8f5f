//! `docs/wharf-api.openapi.yaml` checked against real responses: every `_wharf` response of a
//! registry holding each kind of artifact validates against the schema the document gives
//! for it (objects marked `additionalProperties: false` admit no field the document does not
//! name, so a renamed or undocumented field fails here).

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wharf_wasm::ArtifactBuilder;

use crate::common::{OCI_INDEX, OCI_MANIFEST, Reg};
use crate::wasm::{inspected, tar_layer};

pub(crate) fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wharf-api.openapi.yaml"))
        .expect("the OpenAPI document");
    serde_yaml::from_str(&text).expect("valid YAML")
}

/// Validates `value` against `schema` (the JSON Schema subset the document uses; any other
/// keyword fails the test, so nothing is skipped silently). Errors carry the JSON path.
pub(crate) fn check(doc: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else { return };
    for key in schema.keys() {
        assert!(
            [
                "type",
                "properties",
                "additionalProperties",
                "required",
                "items",
                "enum",
                "$ref",
                "oneOf",
                "description",
                "format",
                "minimum",
            ]
            .contains(&key.as_str()),
            "{path}: the checker does not know the keyword `{key}`"
        );
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = reference.trim_start_matches('#');
        let target = doc.pointer(pointer).unwrap_or_else(|| panic!("{path}: no {reference}"));
        check(doc, target, value, path, errors);
        return;
    }
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = choices
            .iter()
            .filter(|c| {
                let mut e = Vec::new();
                check(doc, c, value, path, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            let mut detail = Vec::new();
            for c in choices {
                check(doc, c, value, path, &mut detail);
            }
            errors.push(format!("{path}: matches {matching} of oneOf ({})", detail.join("; ")));
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{path}: bad type"),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let integer_as_number = actual == "integer" && types.contains(&"number");
        if !types.contains(&actual) && !integer_as_number {
            errors.push(format!("{path}: {actual}, expected {}", types.join(" or ")));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in
            schema.get("required").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
        {
            if !object.contains_key(required.as_str().unwrap_or_default()) {
                errors.push(format!("{path}: `{required}` is missing"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => check(doc, s, v, &format!("{path}.{key}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}.{key}: not in the document")),
                    Some(s @ Value::Object(_)) => check(doc, s, v, &format!("{path}.{key}"), errors),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, s, item, &format!("{path}[{i}]"), errors);
        }
    }
}

pub(crate) fn response_schema<'a>(doc: &'a Value, path: &str) -> &'a Value {
    &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn the_document_describes_every_wharf_response() {
    let doc = document();
    let reg = Reg::memory().await;
    let module: &[u8] = &[
        0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 10, 1, 6, 95, 115, 116, 97, 114, 116,
        0, 0, 10, 4, 1, 2, 0, 11,
    ];
    // A component (CNCF), a wasm-to-oci module, an annotated image with its module in a tar
    // layer, one whose module is missing, a plain image, and an index of a wasi/wasm image.
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let mut references = Vec::new();
    for (tag, artifact) in [
        ("component", ArtifactBuilder::new(component).cncf().expect("build")),
        ("module", ArtifactBuilder::new(module.to_vec()).wasm_to_oci().expect("build")),
    ] {
        for blob in artifact.blobs() {
            reg.push_blob("doc/app", &blob.data).await;
        }
        let body = String::from_utf8(artifact.manifest.bytes().to_vec()).expect("utf-8");
        assert_eq!(
            reg.push_manifest("doc/app", tag, OCI_MANIFEST, &body).await.status(),
            StatusCode::CREATED
        );
        references.push(tag.to_owned());
    }
    let layer = tar_layer(&[("hello.wasm", module)], "gzip");
    let l = reg.push_blob("doc/app", &layer).await;
    for (tag, config) in [
        (
            "annotated",
            r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"COPY"}]}"#,
        ),
        (
            "missing",
            r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/nope.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        ),
        (
            "wasi",
            r#"{"architecture":"wasm","os":"wasi","config":{"Entrypoint":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        ),
        ("plain", r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#),
    ] {
        let c = reg.push_blob("doc/app", config.as_bytes()).await;
        let annotations =
            if tag == "wasi" || tag == "plain" { "{}" } else { r#"{"run.oci.handler":"wasm"}"# };
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":{}}}],"annotations":{annotations}}}"#,
            config.len(),
            layer.len()
        );
        assert_eq!(
            reg.push_manifest("doc/app", tag, OCI_MANIFEST, &body).await.status(),
            StatusCode::CREATED
        );
        references.push(tag.to_owned());
    }
    let wasi = reg.req(Method::GET, "/v2/doc/app/manifests/wasi").send().await.expect("send");
    let digest = wasi.headers()["docker-content-digest"].to_str().expect("digest").to_owned();
    let size = wasi.bytes().await.expect("body").len();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{size},"platform":{{"os":"wasi","architecture":"wasm"}}}}]}}"#
    );
    assert_eq!(reg.push_manifest("doc/app", "index", OCI_INDEX, &index).await.status(), StatusCode::CREATED);
    references.push("index".to_owned());

    let mut errors = Vec::new();
    let artifact_schema = response_schema(&doc, "/v2/{name}/_wharf/artifacts/{reference}");
    for reference in &references {
        let artifact = inspected(&reg, &format!("/v2/doc/app/_wharf/artifacts/{reference}")).await;
        check(&doc, artifact_schema, &artifact, reference, &mut errors);
    }
    let a = inspected(&reg, "/v2/doc/app/_wharf/artifacts/index").await;
    assert!(!a["wasmChildren"][0]["module"].is_null(), "the index's child was inspected: {a}");
    for (path, url) in [
        ("/v2/{name}/_wharf/artifacts", "/v2/doc/app/_wharf/artifacts"),
        ("/v2/_wharf/repositories", "/v2/_wharf/repositories"),
        ("/v2/_wharf/search", "/v2/_wharf/search"),
        ("/v2/_wharf/search", "/v2/_wharf/search?kind=component"),
    ] {
        let r = reg.req(Method::GET, url).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let json: Value = r.json().await.expect("json");
        check(&doc, response_schema(&doc, path), &json, url, &mut errors);
    }
    for (query, dry) in [("?dryRun=true&grace=0", true), ("", false)] {
        let r = reg.req(Method::POST, &format!("/v2/_wharf/gc{query}")).send().await.expect("gc");
        assert_eq!(r.status(), StatusCode::OK);
        let json: Value = r.json().await.expect("json");
        assert_eq!(json["dryRun"], dry);
        let schema = &doc["paths"]["/v2/_wharf/gc"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        check(&doc, schema, &json, "POST /v2/_wharf/gc", &mut errors);
    }
    for path in ["/v2/_wharf/gc", "/v2/_wharf/quotas"] {
        let json: Value = reg.req(Method::GET, path).send().await.expect("send").json().await.expect("json");
        check(&doc, response_schema(&doc, path), &json, path, &mut errors);
    }
    assert!(errors.is_empty(), "responses the document does not describe:\n{}", errors.join("\n"));

    // The checker itself catches what it must: a snake_case field, a wrong type.
    let mut bad = inspected(&reg, "/v2/doc/app/_wharf/artifacts/component").await;
    bad["module"]["wasi_interfaces"] = serde_json::json!([]);
    bad["size"] = serde_json::json!("big");
    let mut found = Vec::new();
    check(&doc, artifact_schema, &bad, "bad", &mut found);
    assert!(found.iter().any(|e| e.contains("size: string")), "{found:?}");
    assert!(found.iter().any(|e| e.contains("wasi_interfaces")), "{found:?}");
    reg.stop().await;
}
