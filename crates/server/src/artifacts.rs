//! Wasm awareness: every manifest push is classified (`wharf-wasm`), the result is kept as
//! an artifact record beside the manifest, and the `_wharf` extension API serves it.
//!
//! Record: `repositories/<repo>/_wharf/artifacts/<alg>/<hex>` → JSON (see [`Registry::artifact`]).

use serde_json::{Value, json};
use wharf_store::Write;
use wharf_types::{Digest, Manifest, ManifestBody, Repository, TagOrDigest};
use wharf_wasm::{Location, classify, inspect, validate};

use crate::error::{Error, Result};
use crate::registry::{Registry, TagRecord};

/// The largest config blob read for classification.
const MAX_CONFIG: u64 = 4 * 1024 * 1024;
/// The largest raw Wasm layer read for inspection and validation.
const MAX_MODULE: u64 = 256 * 1024 * 1024;

fn record_key(repo: &Repository, digest: &Digest) -> String {
    format!("repositories/{repo}/_wharf/artifacts/{}/{}", digest.algorithm(), digest.encoded())
}

impl Registry {
    /// Classifies a manifest being pushed (reading its config, and its raw Wasm layer for
    /// inspection), enforcing the validate policy; returns the record to store.
    pub(crate) async fn classify_push(&self, manifest: &Manifest) -> Result<Value> {
        let config = match manifest.body() {
            ManifestBody::Image(m) if m.config.size <= MAX_CONFIG => {
                match self.storage().read_all(&m.config.digest).await {
                    Ok(bytes) => Some(bytes),
                    Err(wharf_store::Error::BlobNotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            _ => None,
        };
        let classification = classify(manifest, config.as_deref());
        let mut module = Value::Null;
        if classification.is_wasm() {
            for layer in classification.wasm_layers.iter().filter(|l| l.location == Location::Raw) {
                if layer.descriptor.size > MAX_MODULE {
                    continue;
                }
                let bytes = match self.storage().read_all(&layer.descriptor.digest).await {
                    Ok(bytes) => bytes,
                    Err(wharf_store::Error::BlobNotFound { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                if self.wasm_validate() {
                    validate(&bytes).map_err(|e| {
                        Error::ManifestInvalid(format!(
                            "layer {} ({}) is declared as Wasm but is not valid WebAssembly: {e}",
                            layer.index, layer.descriptor.digest
                        ))
                    })?;
                }
                if module.is_null() {
                    module = inspect(&bytes)
                        .map_or_else(|e| json!({ "error": e.to_string() }), |info| json!(info));
                }
            }
        }
        let config_json: Option<Value> = config.as_deref().and_then(|c| serde_json::from_slice(c).ok());
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
        let pushed = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(json!({
            "digest": manifest.digest(),
            "mediaType": manifest.media_type().essence(),
            "artifactType": manifest.artifact_type(),
            "size": manifest.size() + referenced,
            "pushedAt": pushed,
            "wasm": classification.is_wasm(),
            "kind": classification.kind.name(),
            "format": classification.kind.format_id(),
            "harborType": classification.harbor.artifact_type,
            "harbor": classification.harbor,
            "evidence": classification.evidence,
            "hints": classification.hints,
            "warnings": classification.warnings,
            "platform": classification.platform,
            "wasmLayers": classification.wasm_layers,
            "wasmChildren": classification.wasm_children,
            "annotations": manifest.annotations(),
            "config": summary,
            "history": config_json.as_ref().and_then(|c| c.get("history")),
            "module": module,
        }))
    }

    /// The write that stores the artifact record of a manifest.
    pub(crate) fn artifact_write(repo: &Repository, digest: &Digest, record: &Value) -> Write {
        let bytes = serde_json::to_vec(record).expect("JSON serialises");
        Write::Set { key: record_key(repo, digest), value: bytes.into() }
    }

    pub(crate) async fn forget_artifact(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        self.storage().remove_meta(&record_key(repo, digest)).await?;
        Ok(())
    }

    async fn read_record(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.storage().get_meta(key).await?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Tags by digest, for the listings.
    async fn tags_by_digest(&self, repo: &Repository) -> Result<Vec<(String, String)>> {
        let prefix = format!("repositories/{repo}/_manifests/tags/");
        let mut out = Vec::new();
        for key in self.storage().list_meta(&prefix).await? {
            if let Some(record) = self.storage().get_meta(&key).await?.as_deref().and_then(TagRecord::decode)
            {
                out.push((record.digest.to_string(), key[prefix.len()..].to_owned()));
            }
        }
        Ok(out)
    }

    /// The repository's artifacts (all, or only Wasm ones): digest, tags, media type, artifact
    /// type, Wasm kind, Harbor type, total size, push time.
    pub async fn artifacts(&self, repo: &Repository, wasm_only: bool) -> Result<Vec<Value>> {
        if !self.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        let tags = self.tags_by_digest(repo).await?;
        let prefix = format!("repositories/{repo}/_wharf/artifacts/");
        let mut out = Vec::new();
        for key in self.storage().list_meta(&prefix).await? {
            let Some(record) = self.read_record(&key).await? else { continue };
            if wasm_only && record["wasm"] != true {
                continue;
            }
            let digest = record["digest"].as_str().unwrap_or_default();
            let mut t: Vec<&str> =
                tags.iter().filter(|(d, _)| d == digest).map(|(_, t)| t.as_str()).collect();
            t.sort_unstable();
            out.push(json!({
                "digest": record["digest"],
                "tags": t,
                "mediaType": record["mediaType"],
                "artifactType": record["artifactType"],
                "wasm": record["wasm"],
                "kind": record["kind"],
                "harborType": record["harborType"],
                "size": record["size"],
                "pushedAt": record["pushedAt"],
            }));
        }
        Ok(out)
    }

    /// One artifact's full record (evidence, platform, annotations, config summary, history,
    /// module inspection), with its tags.
    pub async fn artifact(&self, repo: &Repository, reference: &TagOrDigest) -> Result<Value> {
        let (digest, _, _) = self.head_manifest(repo, reference).await?;
        let mut record = self
            .read_record(&record_key(repo, &digest))
            .await?
            .ok_or_else(|| Error::ManifestUnknown(reference.to_string()))?;
        let mut tags: Vec<String> = self
            .tags_by_digest(repo)
            .await?
            .into_iter()
            .filter(|(d, _)| d == digest.as_str())
            .map(|(_, t)| t)
            .collect();
        tags.sort_unstable();
        record["tags"] = json!(tags);
        Ok(record)
    }

    /// Every repository with its artifact counts by kind and by Harbor type.
    pub async fn repository_summaries(&self) -> Result<Vec<Value>> {
        self.repository_summaries_where(&|_| true).await
    }

    /// [`repository_summaries`](Self::repository_summaries) of the repositories `visible`
    /// accepts.
    pub async fn repository_summaries_where(
        &self,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for name in self.catalog_where(None, None, visible).await?.names {
            let Ok(repo) = name.parse::<Repository>() else { continue };
            let artifacts = self.artifacts(&repo, false).await?;
            let mut by_kind = serde_json::Map::new();
            let mut by_harbor = serde_json::Map::new();
            for a in &artifacts {
                for (map, field) in [(&mut by_kind, "kind"), (&mut by_harbor, "harborType")] {
                    let key = a[field].as_str().unwrap_or("unknown").to_owned();
                    let n = map.get(&key).and_then(Value::as_u64).unwrap_or(0);
                    map.insert(key, json!(n + 1));
                }
            }
            let wasm = artifacts.iter().filter(|a| a["wasm"] == true).count();
            out.push(json!({
                "name": name,
                "artifacts": artifacts.len(),
                "wasm": wasm,
                "byKind": by_kind,
                "byHarborType": by_harbor,
            }));
        }
        Ok(out)
    }
}
