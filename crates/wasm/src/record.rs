//! Artifact records: what Wharf knows of one manifest (its classification, the modules read
//! out of its layers), as public serde types in camelCase JSON. `wharf-server` stores them and
//! serves them in its `_wharf` API; the `wharf` command line prints the same shape from
//! `wharf inspect --json`, so a script reads either alike.
//!
//! Fields Wharf computes are typed; fields that hold what a manifest, a config or a module
//! said (the config summary, the build history, the module inspection) stay JSON values, since
//! hostile content must still load. The module's shape is [`ModuleInfo`]'s JSON.
//!
//! ```
//! use wharf_types::Manifest;
//! use wharf_wasm::{ArtifactBuilder, WasmLayout, classify, inspect, record::ArtifactRecord};
//!
//! let module = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/hello.wasm")).unwrap();
//! let artifact = ArtifactBuilder::new(module.clone()).build(WasmLayout::WasmToOci).unwrap();
//! let classification = classify(&artifact.manifest, Some(&artifact.config.data));
//! let layer = &classification.wasm_layers[0];
//! let entry = wharf_wasm::record::module_entry(layer, None, inspect(&module).map_err(|e| e.to_string()));
//! let record = ArtifactRecord::new(&artifact.manifest, &classification, Some(&artifact.config.data))
//!     .with_modules(vec![entry], None);
//! assert!(record.summary.wasm);
//! assert_eq!(record.summary.kind, "wasm-to-oci");
//! assert_eq!(record.module.unwrap()["header"]["kind"], "core-module");
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::json;
use wharf_types::{Annotations, Digest, Manifest, MediaType, Platform};

use crate::{Classification, ModuleInfo, WasmLayer};

/// Where reading an artifact's modules stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InspectionStatus {
    /// No layer holds Wasm: nothing to read.
    #[default]
    None,
    /// A job will read the modules (soon after the push).
    Pending,
    /// The modules were read.
    Done,
    /// No module could be read; [`Inspection::error`] says why.
    Failed,
}

impl std::fmt::Display for InspectionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        })
    }
}

/// An artifact record's `inspection`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Inspection {
    /// Where it stands.
    pub status: InspectionStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// One rule of the classifier that fired (`wharf_wasm::Evidence`, as stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordedEvidence {
    /// Where the value was read (`config.mediaType`, `annotations["run.oci.handler"]`, …).
    pub field: String,
    /// The value found there.
    pub value: String,
    /// What the value shows.
    pub rule: String,
}

/// One artifact in a repository listing (`GET /v2/<name>/_wharf/artifacts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ArtifactSummary {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The manifest's media type.
    pub media_type: MediaType,
    /// Its `artifactType`.
    #[serde(default)]
    pub artifact_type: Option<MediaType>,
    /// Whether it is WebAssembly in any known layout.
    pub wasm: bool,
    /// The layout (`wharf_wasm::Kind::name`: `wasm-to-oci`, `compat-annotated`, `not-wasm`, …).
    pub kind: String,
    /// The type Harbor 2.6 shows (`WASM`, `IMAGE`, …).
    #[serde(default)]
    pub harbor_type: Option<String>,
    /// Bytes of the manifest and everything it references.
    pub size: u64,
    /// When it was pushed (RFC 3339).
    #[serde(default)]
    pub pushed_at: Option<String>,
    /// The platform of the config (or index entry).
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// One artifact's full record (`GET /v2/<name>/_wharf/artifacts/<reference>`): its
/// [`ArtifactSummary`] and everything the classifier and the inspection found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ArtifactRecord {
    /// What the repository listing shows of it.
    #[serde(flatten)]
    pub summary: ArtifactSummary,
    /// The catalogue's format id (`F1` … `F11`, `index`, `other`, `none`).
    #[serde(default)]
    pub format: String,
    /// Harbor 2.6's whole view (`wharf_wasm::HarborView`).
    #[serde(default)]
    pub harbor: Value,
    /// Why the classifier decided as it did.
    #[serde(default)]
    pub evidence: Vec<RecordedEvidence>,
    /// What a near miss lacked.
    #[serde(default)]
    pub hints: Value,
    /// What looked wrong.
    #[serde(default)]
    pub warnings: Value,
    /// Where the Wasm bytes are (`wharf_wasm::WasmLayer`s).
    #[serde(default)]
    pub wasm_layers: Value,
    /// An index's Wasm children, each with its own inspection and module.
    #[serde(default)]
    pub wasm_children: Value,
    /// The manifest's annotations.
    #[serde(default)]
    pub annotations: Option<Annotations>,
    /// The image config's summary (`created`, `architecture`, `os`, `author`), as it said.
    #[serde(default)]
    pub config: Option<Value>,
    /// The image config's build history, as it said.
    #[serde(default)]
    pub history: Option<Value>,
    /// Where reading the modules stands.
    #[serde(default)]
    pub inspection: Inspection,
    /// The first module found (`wharf_wasm::ModuleInfo` as JSON, with its WIT world).
    #[serde(default)]
    pub module: Option<Value>,
    /// Every layer read: `{layer, digest, path, module}` or `{layer, digest, error}`.
    #[serde(default)]
    pub modules: Vec<Value>,
}

impl ArtifactRecord {
    /// The record of a manifest (and its config blob, when it has one) from its
    /// classification: no tags, no push time, no modules read yet (inspection `none` when no
    /// layer holds Wasm, else `pending` until [`with_modules`](Self::with_modules)).
    pub fn new(manifest: &Manifest, classification: &Classification, config: Option<&[u8]>) -> Self {
        let config_json: Option<Value> = config.and_then(|c| serde_json::from_slice(c).ok());
        let summary =
            config_json.as_ref().filter(|c| c.get("rootfs").is_some() || c.get("os").is_some()).map(|c| {
                json!({
                    "created": c.get("created"),
                    "architecture": c.get("architecture"),
                    "os": c.get("os"),
                    "author": c.get("author"),
                })
            });
        let referenced: u64 = manifest.references().map(|d| d.size).sum();
        Self {
            summary: ArtifactSummary {
                digest: manifest.digest().clone(),
                tags: Vec::new(),
                media_type: manifest
                    .media_type()
                    .essence()
                    .parse()
                    .unwrap_or_else(|_| manifest.media_type().clone()),
                artifact_type: manifest.artifact_type().cloned(),
                wasm: classification.is_wasm(),
                kind: classification.kind.name().to_owned(),
                harbor_type: Some(classification.harbor.artifact_type.clone()),
                size: manifest.size() + referenced,
                pushed_at: None,
                platform: classification.platform.clone(),
            },
            format: classification.kind.format_id().to_owned(),
            harbor: value(&classification.harbor),
            evidence: classification
                .evidence
                .iter()
                .map(|e| RecordedEvidence {
                    field: e.field.clone(),
                    value: e.value.clone(),
                    rule: e.rule.to_owned(),
                })
                .collect(),
            hints: value(&classification.hints),
            warnings: value(&classification.warnings),
            wasm_layers: value(&classification.wasm_layers),
            wasm_children: value(&classification.wasm_children),
            annotations: manifest.annotations().cloned(),
            history: config_json.as_ref().and_then(|c| c.get("history")).cloned(),
            config: summary,
            inspection: Inspection {
                status: if classification.wasm_layers.is_empty() {
                    InspectionStatus::None
                } else {
                    InspectionStatus::Pending
                },
                ..Inspection::default()
            },
            module: None,
            modules: Vec::new(),
        }
    }

    /// The record with the modules read out of its layers (each a [`module_entry`] or
    /// [`missing_entry`]): `modules`, `module` (the first found) and `inspection` (`done`, or
    /// `failed` with the first error when no module was found).
    #[must_use]
    pub fn with_modules(mut self, entries: Vec<Value>, finished_at: Option<String>) -> Self {
        let module = entries.iter().find_map(|l| l.get("module")).cloned();
        let error =
            if module.is_none() { entries.iter().find_map(|l| l.get("error")).cloned() } else { None };
        let status = if error.is_some() { InspectionStatus::Failed } else { InspectionStatus::Done };
        self.inspection = Inspection { status, error, finished_at };
        self.module = module;
        self.modules = entries;
        self
    }
}

/// Reads the modules of an artifact's Wasm layers and inspects each: the one function the
/// server (from its storage) and `wharf inspect` (from a registry) both call, so that both
/// say the same of one artifact.
///
/// Raw layers are read whole; tar layers as the image's filesystem after every layer
/// ([`image::find_modules`](crate::image::find_modules)); a probe (F7/F8) that finds its file
/// upgrades the classification; an image whose module is in no layer says so, where a probe
/// that found nothing only means the image is not F7/F8. What a layer holds — no module, not
/// Wasm, over the `meter`'s budget (`not inspected: …`) — is recorded in its entry; only a
/// failure of [`Layers::open`](crate::image::Layers::open) is an error.
pub fn read_modules(
    classification: &mut Classification,
    layers: &mut dyn crate::image::Layers,
    meter: &mut crate::budget::Meter,
    inspect: &mut dyn FnMut(&[u8]) -> Result<ModuleInfo, String>,
) -> std::io::Result<Vec<Value>> {
    let probing = !classification.is_wasm();
    let wasm_layers = classification.wasm_layers.clone();
    let mut entries = Vec::new();
    let mut not_found = Vec::new();
    for found in crate::image::find_modules(&wasm_layers, layers, meter)? {
        match found.bytes {
            Ok(bytes) => {
                if probing {
                    classification.confirm_tar_entry(found.layer.index, &found.path);
                }
                let path = (!found.path.is_empty()).then_some(found.path.as_str());
                entries.push(module_entry(&found.layer, path, inspect(&bytes)));
            }
            Err(crate::Error::EntryNotFound { wanted }) => not_found.push(wanted),
            Err(e @ (crate::Error::OverBudget(_) | crate::Error::TooLarge { .. })) => {
                entries.push(module_entry(&found.layer, None, Err(format!("not inspected: {e}"))));
            }
            Err(e) => entries.push(module_entry(&found.layer, None, Err(e.to_string()))),
        }
    }
    if entries.is_empty()
        && !probing
        && let Some(wanted) = not_found.first()
    {
        entries.push(missing_entry(wanted));
    }
    Ok(entries)
}

/// One entry of [`ArtifactRecord::modules`]: the layer read, the path of the module in it
/// (for a tar layer) and the module's [`ModuleInfo`], or why it could not be read.
pub fn module_entry(layer: &WasmLayer, path: Option<&str>, module: Result<ModuleInfo, String>) -> Value {
    let mut entry = json!({
        "layer": layer.index,
        "digest": layer.descriptor.digest,
        "raw": layer.location == crate::Location::Raw,
    });
    match module {
        Ok(info) => {
            entry["path"] = json!(path);
            entry["module"] = json!(info);
        }
        Err(error) => {
            if path.is_some() {
                entry["path"] = json!(path);
            }
            entry["error"] = json!(error);
        }
    }
    entry
}

/// The entry of [`ArtifactRecord::modules`] that says no layer held the module the image
/// names (`wanted`).
pub fn missing_entry(wanted: &str) -> Value {
    json!({ "layer": Value::Null, "error": format!("no layer holds {wanted}") })
}

/// What the classifier holds, as the record's JSON.
fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
