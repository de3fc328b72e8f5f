//! The `_wharf` API's answers as public serde types: what [`Wharf::artifacts`],
//! [`Wharf::artifact`], [`Wharf::repository_summaries`] and [`Wharf::search`] return
//! and what `/v2/…/_wharf/…` serves as JSON (camelCase). The artifact records are
//! `wharf_wasm::record`'s (re-exported here), the shape `wharf inspect --json` prints too.
//!
//! [`Wharf::artifacts`]: crate::Wharf::artifacts
//! [`Wharf::artifact`]: crate::Wharf::artifact
//! [`Wharf::repository_summaries`]: crate::Wharf::repository_summaries
//! [`Wharf::search`]: crate::Wharf::search

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_types::{Digest, MediaType};
pub use wharf_wasm::record::*;

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
