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
pub use wharf_auth::signature::{MAX_UNVERIFIED, SignatureRecord, TrustSummary, TrustVerdict};
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
    /// `core-module`, `component` or `wit-package`, once inspected.
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
    /// The packages it uses (`acme:greeter@0.1.0`), for a component or a WIT package.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Who signed it: the signer of each signature that verified under the trust material in
    /// force (`ci@example.com (issuer https://…)`, `key sha256:…`); empty when it is unsigned,
    /// no signature verified, or none was verified yet (only under a trust policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_by: Vec<String>,
}

/// A package's versions (`GET /v2/_wharf/packages/<ns>:<name>`, `GET /v2/<name>/_wharf/versions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PackageVersions {
    /// `namespace:name`, when the repository is where `[packages]` puts a package.
    pub package: Option<String>,
    /// The repository.
    pub repository: String,
    /// Its versions (tags that are semantic versions), in semver order.
    pub versions: Vec<PackageVersionInfo>,
    /// Its tags that are not semantic versions (`wkg` ignores them).
    pub other_tags: Vec<String>,
    /// Artifacts in the registry that depend on this package (any version), as far as the
    /// caller may see them.
    pub dependents: Vec<Dependent>,
}

/// One version of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PackageVersionInfo {
    /// The version (`1.0.0+build.5`).
    pub version: String,
    /// The tag it is stored under (`1.0.0_build.5`: OCI tags have no `+`).
    pub tag: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// `component`, `wit-package` or `core-module`, once inspected.
    pub content: Option<String>,
    /// The WASI version it imports.
    pub wasi_version: Option<String>,
    /// The interfaces it exports (a WIT package: the interfaces it defines).
    pub exports: Vec<String>,
    /// The interfaces it imports.
    pub imports: Vec<String>,
    /// Bytes of the manifest and everything it references.
    pub size: u64,
    /// When it was pushed.
    pub pushed_at: Option<String>,
    /// Whether an owner marked the version yanked (`PUT /v2/<name>/_wharf/yanked/<tag>`): it
    /// stays pullable, listed as yanked.
    pub yanked: bool,
    /// The packages it uses, resolved to this registry where they are here.
    pub dependencies: Vec<DependencyInfo>,
}

/// A package a version uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DependencyInfo {
    /// `namespace:name`.
    pub package: String,
    /// The version its WIT names.
    pub version: Option<String>,
    /// Where `[packages]` puts that package in this registry.
    pub repository: Option<String>,
    /// The tag holding that version here, if the registry has it ("provided by … here").
    pub provided_by: Option<String>,
}

/// An artifact that depends on a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Dependent {
    /// Its repository.
    pub repository: String,
    /// The package there, if the repository holds one.
    pub package: Option<String>,
    /// Its digest.
    pub digest: Digest,
    /// Its tags.
    pub tags: Vec<String>,
    /// The version of the package it uses.
    pub uses: Option<String>,
}

/// An upstream in `GET /v2/_wharf/upstreams` (never its credentials: only whether it has
/// some).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UpstreamState {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub url: String,
    /// Where its repositories appear here.
    pub prefix: String,
    /// The hosts it answers to in containerd's `?ns=`.
    pub hosts: Vec<String>,
    /// Whether credentials are sent to it.
    pub authenticated: bool,
    /// How long a tag is served before it is checked again.
    pub tag_ttl_seconds: u64,
    /// Whether it may be in a private range.
    pub allow_private: bool,
    /// Its sync rules.
    pub sync: Vec<SyncState>,
    /// Sync jobs of its repositories waiting in the queue.
    pub sync_pending: usize,
}

/// A sync rule in [`UpstreamState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SyncState {
    /// The repository at the upstream.
    pub repository: String,
    /// The tags it copies.
    pub tags: Vec<String>,
    /// How often.
    pub every_seconds: u64,
    /// When it last queued its tags (unix seconds).
    pub last_queued: Option<u64>,
}

/// Where a mirrored repository's content comes from, and when each tag was last checked
/// there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CachedFrom {
    /// The upstream's name.
    pub upstream: String,
    /// Its URL.
    pub url: String,
    /// The repository's name there.
    pub repository: String,
    /// Each tag's last check at the upstream (RFC 3339).
    pub checked: BTreeMap<String, String>,
}
