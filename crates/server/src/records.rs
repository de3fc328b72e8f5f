//! The `_wharf` API's answers as public serde types: what [`Registry::artifacts`],
//! [`Registry::artifact`], [`Registry::repository_summaries`] and [`Registry::search`] return
//! and what `/v2/…/_wharf/…` serves as JSON (camelCase).
//!
//! Fields Wharf computes are typed; fields that hold what a manifest, a config or a module
//! said (the config summary, the build history, the module inspection) stay JSON values, since
//! hostile content must still load. The module's shape is `wharf_wasm::ModuleInfo`'s JSON.
//!
//! [`Registry::artifacts`]: crate::Registry::artifacts
//! [`Registry::artifact`]: crate::Registry::artifact
//! [`Registry::repository_summaries`]: crate::Registry::repository_summaries
//! [`Registry::search`]: crate::Registry::search

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_types::{Annotations, Digest, MediaType, Platform};

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
    /// The platform of the config (or index entry).
    #[serde(default)]
    pub platform: Option<Platform>,
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

/// A repository in `GET /v2/_wharf/repositories`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RepositorySummary {
    /// The repository.
    pub name: String,
    /// How many artifacts (manifests) it holds.
    pub artifacts: usize,
    /// How many of them are WebAssembly.
    pub wasm: usize,
    /// Artifacts by layout.
    pub by_kind: BTreeMap<String, usize>,
    /// Artifacts by Harbor type.
    pub by_harbor_type: BTreeMap<String, usize>,
}

/// One result of `GET /v2/_wharf/search`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SearchHit {
    /// The repository.
    #[serde(default)]
    pub repository: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The manifest's media type.
    pub media_type: MediaType,
    /// Its `artifactType`.
    #[serde(default)]
    pub artifact_type: Option<MediaType>,
    /// The layout (`wharf_wasm::Kind::name`).
    pub kind: String,
    /// The catalogue's format id.
    #[serde(default)]
    pub format: String,
    /// Bytes of the manifest and everything it references.
    pub size: u64,
    /// When it was pushed.
    #[serde(default)]
    pub pushed_at: Option<String>,
    /// Where reading its modules stands.
    #[serde(default)]
    pub inspection: InspectionStatus,
    /// `core-module` or `component`, once inspected.
    #[serde(default)]
    pub binary_kind: Option<String>,
    /// The WASI version imported (`0.2.0`, `preview1`), once inspected.
    #[serde(default)]
    pub wasi_version: Option<String>,
    /// Imported interfaces (or core modules).
    #[serde(default)]
    pub imports: Vec<String>,
    /// Exported interfaces (or functions).
    #[serde(default)]
    pub exports: Vec<String>,
    /// Source languages from the `producers` section, as recorded.
    #[serde(default)]
    pub languages: Value,
}
