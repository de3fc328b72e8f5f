//! Wasm awareness: every manifest push is classified (`wharf-wasm`), the result is kept as
//! an artifact record beside the manifest, the modules in its layers are read and inspected
//! (by a job off the request path, or before the PUT is acknowledged where a policy needs
//! them), and the `_wharf` extension API serves it.
//!
//! Record: `repositories/<repo>/_wharf/artifacts/<alg>/<hex>` → JSON (see [`Classifier::artifact`]);
//! its `inspection.status` is `pending` (a job is queued), `done`, `failed` (with `error`) or
//! `none` (nothing to read).

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use wharf_store::Write;
use wharf_types::{Digest, Manifest, ManifestBody, MediaType, Repository, TagOrDigest};
use wharf_wasm::{Classification, classify, inspect};

use std::sync::Arc;

use crate::api::{ArtifactRecord, ArtifactSummary, RepositorySummary};
use crate::clock::now_rfc3339;
use crate::error::{Error, Result};
use crate::jobs::{Job, Slots};
use crate::registry::keys::{self, TagRecord};
use crate::registry::{Core, LISTING_BATCH};
use crate::search::SearchIndex;
use crate::wasm_policy::WasmPolicies;
use wharf_wasm::record;

/// Records a listing page reads at once (each is a file or an object of its own).
const PAGE_READS: usize = 16;

/// The largest config blob read for classification.
const MAX_CONFIG: u64 = 4 * 1024 * 1024;

/// The modules read out of a manifest's layers: one `wharf_wasm::record` entry per layer.
struct Inspected {
    layers: Vec<Value>,
}

impl Inspected {
    /// Writes the result into an artifact record (`modules`, `module`, `inspection`).
    fn apply(self, record: ArtifactRecord) -> ArtifactRecord {
        record.with_modules(self.layers, Some(now_rfc3339()))
    }
}

/// Wasm classification of pushes, the inspection of their modules (on the push within a
/// slot, or by a job), the artifact records and their listings.
#[derive(Clone, Debug)]
pub(crate) struct Classifier {
    core: Core,
    search: Arc<SearchIndex>,
    /// The Wasm policies pushes are checked against.
    pub(crate) policies: Arc<WasmPolicies>,
    /// Refuse a declared Wasm layer that is not valid WebAssembly.
    pub(crate) validate: bool,
    /// What reading one artifact's layers may cost.
    pub(crate) budget: wharf_wasm::budget::Budget,
    /// The inspections this process runs at once (jobs, and PUTs that read modules).
    pub(crate) slots: Arc<Slots>,
}

impl Classifier {
    /// Classification over `core`, keeping `search` up to date with what inspections find.
    pub(crate) fn new(core: Core, search: Arc<SearchIndex>, slots: Arc<Slots>) -> Self {
        Self {
            core,
            search,
            policies: Arc::default(),
            validate: false,
            budget: wharf_wasm::budget::Budget::default(),
            slots,
        }
    }

    /// The core it classifies over.
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// The Wasm of an artifact whose one Wasm layer is the `.wasm` file itself (the CNCF and
    /// wasm-to-oci layouts, what `wkg` and `oras` push), read whole when it is linked to `repo`
    /// and within the inspection budget's module size; `None` for anything else.
    pub(crate) async fn raw_wasm(
        &self,
        repo: &Repository,
        manifest: &Manifest,
    ) -> Result<Option<bytes::Bytes>> {
        let config = self.read_config(repo, manifest).await?;
        let classification = classify(manifest, config.as_deref());
        let [layer] = classification.wasm_layers.as_slice() else { return Ok(None) };
        let digest = &layer.descriptor.digest;
        if layer.location != wharf_wasm::Location::Raw
            || layer.descriptor.size > self.budget.module_bytes
            || !self.core.blob_linked(repo, digest).await?
        {
            return Ok(None);
        }
        match self.core.storage().read_all(digest).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(wharf_store::Error::BlobNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs CPU-bound work on `repo`'s behalf in an inspection slot, on the blocking pool.
    pub(crate) async fn in_slot<T: Send + 'static>(
        &self,
        repo: &Repository,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _slot = self.slots.acquire(&crate::jobs::repository_key(repo)).await;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Store(wharf_store::Error::Corrupt(format!("a WIT check stopped: {e}"))))
    }

    /// The config blob of an image manifest, when it is linked to `repo` and small enough:
    /// what a push may make the registry read is what the repository holds, never a digest
    /// of another repository's.
    async fn read_config(&self, repo: &Repository, manifest: &Manifest) -> Result<Option<bytes::Bytes>> {
        match manifest.body() {
            ManifestBody::Image(m) if m.config.size <= MAX_CONFIG => {
                if !self.core.blob_linked(repo, &m.config.digest).await? {
                    return Ok(None);
                }
                match self.core.storage().read_all(&m.config.digest).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(wharf_store::Error::BlobNotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(None),
        }
    }

    /// Classifies a manifest being pushed; returns its artifact record and, when modules are
    /// to be read from its layers, the job that will. With the validate policy on (or a
    /// policy that judges modules), the modules are read now instead — in an inspection slot,
    /// within the budget — and an invalid one, or one that cannot be determined, refuses the
    /// push.
    pub(crate) async fn classify_push(
        &self,
        repo: &Repository,
        manifest: &Manifest,
        needs_modules: bool,
    ) -> Result<(Value, Option<Job>)> {
        let config = self.read_config(repo, manifest).await?;
        let mut classification = classify(manifest, config.as_deref());
        let policies = self.policies.matching(repo);
        let has_subject = manifest.subject().is_some();
        if classification.wasm_layers.is_empty() {
            let record = artifact_record(manifest, &classification, config.as_deref());
            for policy in &policies {
                policy.check(&record, has_subject)?;
            }
            return Ok((record, None));
        }
        if !self.validate && !needs_modules && !policies.iter().any(|p| p.needs_modules()) {
            let record = artifact_record(manifest, &classification, config.as_deref());
            let job =
                Job::Inspect { repository: repo.clone(), digest: manifest.digest().clone(), attempts: 0 };
            return Ok((record, Some(job)));
        }
        let inspected = {
            let _slot = self.slots.acquire(&crate::jobs::repository_key(repo)).await;
            self.inspect_layers(repo, &mut classification).await?
        };
        if self.validate {
            for layer in &inspected.layers {
                let why =
                    |e: &str| format!("layer {} ({})", layer["layer"], layer["digest"].as_str().unwrap_or(e));
                if layer["module"]["validation"]["valid"] == false {
                    let error = layer["module"]["validation"]["error"].as_str().unwrap_or_default();
                    return Err(Error::ManifestInvalid(format!(
                        "{} is declared as Wasm but is not valid WebAssembly: {error}",
                        why("")
                    )));
                }
                // A module that cannot be read is refused too (fail-closed): a raw layer that
                // is not Wasm, or a Wasm image whose module cannot be had or is over budget.
                if let Some(error) = layer["error"].as_str() {
                    if layer["raw"] == true {
                        return Err(Error::ManifestInvalid(format!(
                            "{} is declared as Wasm but is not valid WebAssembly: {error}",
                            why("")
                        )));
                    }
                    if classification.is_wasm() {
                        let at = if layer["layer"].is_null() { "the image".to_owned() } else { why("") };
                        return Err(Error::ManifestInvalid(format!(
                            "{at} is declared as Wasm but its module cannot be read to validate it: {error}"
                        )));
                    }
                }
            }
        }
        let record =
            record_json(inspected.apply(ArtifactRecord::new(manifest, &classification, config.as_deref())));
        for policy in &policies {
            policy.check(&record, has_subject)?;
        }
        Ok((record, None))
    }

    /// Reads and inspects the modules of the layers `classification` names
    /// ([`record::read_modules`]: raw layers whole, tar layers as the image's filesystem after
    /// every layer), on the blocking pool, within the registry's [`Budget`](wharf_wasm::budget::Budget),
    /// from blobs linked to `repo` only (a descriptor with `urls` is never read). Only a
    /// storage failure is an error; what a layer holds (no module, not Wasm, over budget) is
    /// recorded for that layer.
    async fn inspect_layers(
        &self,
        repo: &Repository,
        classification: &mut Classification,
    ) -> Result<Inspected> {
        let mut layers = StoredLayers {
            core: self.core.clone(),
            repo: repo.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let budget = self.budget;
        let mut working = classification.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut meter = wharf_wasm::budget::Meter::new(&budget);
            let entries = record::read_modules(&mut working, &mut layers, &mut meter, &mut |bytes| {
                inspect(bytes).map_err(|e| e.to_string())
            });
            (entries, working)
        })
        .await;
        let (entries, working) = read
            .map_err(|e| Error::Store(wharf_store::Error::Corrupt(format!("the inspection stopped: {e}"))))?;
        *classification = working;
        let layers = entries.map_err(|e| {
            match e.into_inner().map(<dyn std::error::Error + Send + Sync>::downcast::<wharf_store::Error>) {
                Some(Ok(store)) => Error::Store(*store),
                Some(Err(other)) => Error::Store(wharf_store::Error::Corrupt(other.to_string())),
                None => Error::Store(wharf_store::Error::Corrupt("reading a layer failed".into())),
            }
        })?;
        Ok(Inspected { layers })
    }

    /// The job's work: reads the modules of a stored manifest and completes its artifact
    /// record (or, with `give_up`, records that failure), with what `events` makes of the
    /// record (the webhooks' writes) in the same batch. Nothing to do when the manifest was
    /// deleted meanwhile.
    pub(crate) async fn inspect_stored(
        &self,
        repo: &Repository,
        digest: &Digest,
        give_up: Option<&str>,
        events: impl FnOnce(&Value) -> Vec<Write>,
    ) -> Result<()> {
        let key = keys::artifact(repo, digest);
        let Some(mut record) = self.core.artifact_record(repo, digest).await? else { return Ok(()) };
        if let Some(reason) = give_up {
            record["inspection"] =
                json!({ "status": "failed", "error": reason, "finishedAt": now_rfc3339() });
        } else {
            let bytes = match self.core.storage().read_all(digest).await {
                Ok(bytes) => bytes,
                Err(wharf_store::Error::BlobNotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let media_type = record["mediaType"].as_str().and_then(|t| t.parse::<MediaType>().ok());
            let manifest = Manifest::from_bytes(bytes, media_type.as_ref()).map_err(|e| {
                wharf_store::Error::Corrupt(format!("stored manifest {digest} does not parse: {e}"))
            })?;
            let config = self.read_config(repo, &manifest).await?;
            let mut classification = classify(&manifest, config.as_deref());
            let inspected = self.inspect_layers(repo, &mut classification).await?;
            let mut fresh =
                inspected.apply(ArtifactRecord::new(&manifest, &classification, config.as_deref()));
            fresh.summary.pushed_at = record["pushedAt"].as_str().map(str::to_owned);
            record = record_json(fresh);
        }
        let write = Write::Set {
            key: key.clone(),
            value: serde_json::to_vec(&record).expect("JSON serialises").into(),
        };
        let mut writes = vec![write, self.search.stamp_write()];
        writes.extend(events(&record));
        self.core.storage().write_steps(vec![writes]).await?;
        self.search.upsert(repo.as_str(), &record, &[]);
        // Deleted while it was read: the record must not outlive the manifest.
        if !self.core.holds_manifest(repo, digest).await? {
            self.core.storage().remove_meta(&key).await?;
            self.search.remove(repo.as_str(), digest.as_str());
        }
        Ok(())
    }

    /// The write that stores the artifact record of a manifest.
    pub(crate) fn artifact_write(repo: &Repository, digest: &Digest, record: &Value) -> Write {
        let bytes = serde_json::to_vec(record).expect("JSON serialises");
        Write::Set { key: keys::artifact(repo, digest), value: bytes.into() }
    }

    /// Writes the `tagged/` hints of a repository whose tags predate them, once (`tag-index`
    /// marks it done). With them, a digest's tags cost the digest's tags, not the repository's.
    async fn ensure_tag_hints(&self, repo: &Repository) -> Result<()> {
        let storage = self.core.storage();
        let marker = keys::tag_index(repo);
        if storage.get_meta(&marker).await?.is_none() {
            let hints: Vec<Write> = self
                .core
                .tags_by_digest(repo)
                .await?
                .into_iter()
                .filter_map(|(d, tag)| Some(keys::tagged_write(repo, &d.parse().ok()?, &tag)))
                .collect();
            for batch in hints.chunks(1000) {
                storage.write_steps(vec![batch.to_vec()]).await?;
            }
            storage.set_meta(&marker, bytes::Bytes::new()).await?;
        }
        Ok(())
    }

    /// The tags of the repository that point at `digest`, sorted: the `tagged/` hints under
    /// the digest, each checked against its tag record.
    async fn hinted_tags(&self, repo: &Repository, digest: &Digest) -> Result<Vec<String>> {
        let storage = self.core.storage();
        let prefix = keys::tagged(repo, digest);
        let mut tags = Vec::new();
        for key in storage.list_meta(&prefix).await? {
            let tag = &key[prefix.len()..];
            let record = storage.get_meta(&keys::tag(repo, tag)).await?;
            if record.as_deref().and_then(TagRecord::decode).is_some_and(|r| r.digest == *digest) {
                tags.push(tag.to_owned());
            }
        }
        Ok(tags)
    }

    /// A page of [`artifacts`](Self::artifacts), by digest: up to `n` after `last`, and
    /// whether more follow. It reads the artifact records of the page (more only while the
    /// Wasm filter skips some) and the tags of each, never the whole repository.
    pub(crate) async fn artifacts_page(
        &self,
        repo: &Repository,
        wasm_only: bool,
        n: usize,
        last: Option<&Digest>,
    ) -> Result<(Vec<ArtifactSummary>, bool)> {
        if !self.core.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        let prefix = keys::artifacts(repo);
        let batch = n.saturating_add(1).clamp(10, LISTING_BATCH);
        let mut after = last.map(|d| keys::artifact(repo, d));
        let mut out = Vec::new();
        'pages: loop {
            let keys = self.core.storage().list_meta_page(&prefix, after.as_deref(), batch).await?;
            let exhausted = keys.len() < batch;
            after = keys.last().cloned();
            // The records of a page are read PAGE_READS at a time, in order.
            let reads: Vec<_> = keys.iter().map(|key| self.core.read_json(key)).collect();
            let mut records = futures_util::stream::iter(reads).buffered(PAGE_READS);
            while let Some(record) = records.try_next().await? {
                let Some(record) = record else { continue };
                if wasm_only && record["wasm"] != true {
                    continue;
                }
                let Ok(summary) = serde_json::from_value::<ArtifactSummary>(record) else { continue };
                out.push(summary);
                if out.len() > n {
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        let more = out.len() > n;
        out.truncate(n);
        self.ensure_tag_hints(repo).await?;
        let reads: Vec<_> = out.iter().map(|s| self.hinted_tags(repo, &s.digest)).collect();
        let tags: Vec<Vec<String>> =
            futures_util::stream::iter(reads).buffered(PAGE_READS).try_collect().await?;
        for (summary, tags) in out.iter_mut().zip(tags) {
            summary.tags = tags;
        }
        Ok((out, more))
    }

    /// The repository's artifacts (all, or only Wasm ones): digest, tags, media type, artifact
    /// type, Wasm kind, Harbor type, total size, push time.
    pub(crate) async fn artifacts(&self, repo: &Repository, wasm_only: bool) -> Result<Vec<ArtifactSummary>> {
        if !self.core.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        let tags = self.core.tags_by_digest(repo).await?;
        let mut out = self.untagged_artifacts(repo, wasm_only).await?;
        for summary in &mut out {
            summary.tags =
                tags.iter().filter(|(d, _)| *d == summary.digest.as_str()).map(|(_, t)| t.clone()).collect();
            summary.tags.sort_unstable();
        }
        Ok(out)
    }

    /// [`artifacts`](Self::artifacts) without their tags (nor the tag records read): what a
    /// repository's counts need.
    async fn untagged_artifacts(&self, repo: &Repository, wasm_only: bool) -> Result<Vec<ArtifactSummary>> {
        let mut out = Vec::new();
        for record in self.core.artifact_records(repo).await? {
            if wasm_only && record["wasm"] != true {
                continue;
            }
            // A record that does not read is skipped, as one that does not parse.
            let Ok(summary) = serde_json::from_value::<ArtifactSummary>(record) else { continue };
            out.push(summary);
        }
        Ok(out)
    }

    /// One artifact's full record (evidence, platform, annotations, config summary, history,
    /// module inspection), with its tags.
    pub(crate) async fn artifact(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<ArtifactRecord> {
        let (digest, _, _) = self.core.head_manifest(repo, reference).await?;
        let mut record = self
            .core
            .artifact_record(repo, &digest)
            .await?
            .ok_or_else(|| Error::ManifestUnknown(reference.to_string()))?;
        let mut tags: Vec<String> = self
            .core
            .tags_by_digest(repo)
            .await?
            .into_iter()
            .filter(|(d, _)| d == digest.as_str())
            .map(|(_, t)| t)
            .collect();
        tags.sort_unstable();
        record["tags"] = json!(tags);
        // An index shows what was found in each Wasm child (each has its own record).
        if let Some(children) = record["wasmChildren"].as_array_mut() {
            for child in children {
                let Some(d) = child["descriptor"]["digest"].as_str().and_then(|d| d.parse::<Digest>().ok())
                else {
                    continue;
                };
                if let Some(found) = self.core.artifact_record(repo, &d).await? {
                    child["inspection"] = found["inspection"].clone();
                    child["module"] = found["module"].clone();
                }
            }
        }
        serde_json::from_value(record).map_err(|_| Error::ManifestUnknown(reference.to_string()))
    }

    /// Every repository with its artifact counts by kind and by Harbor type.
    pub(crate) async fn repository_summaries(&self) -> Result<Vec<RepositorySummary>> {
        let (mut out, mut last) = (Vec::new(), None);
        loop {
            let (page, more) =
                self.repository_summaries_page(LISTING_BATCH, last.as_deref(), &|_| true).await?;
            last = page.last().map(|s| s.name.clone());
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// A page of [`repository_summaries`](Self::repository_summaries): up to `n` repositories
    /// after `last` that `visible` accepts, and whether more follow. It reads one page of the
    /// catalog and the artifact records of the repositories on it, nothing else.
    pub(crate) async fn repository_summaries_page(
        &self,
        n: usize,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<RepositorySummary>, bool)> {
        let (found, more) = self.repositories_with_artifacts(n, last, visible, |_| true).await?;
        let summaries = found.into_iter().map(|(name, artifacts)| RepositorySummary::new(name, &artifacts));
        Ok((summaries.collect(), more))
    }

    /// A page of repositories for a listing that shows only some (`keep`): up to `n` after
    /// `last` that `visible` and `keep` accept, each with its artifacts (without tags), and
    /// whether names follow the last one looked at. Catalog pages are read only until `n`
    /// are found.
    pub(crate) async fn repositories_with_artifacts(
        &self,
        n: usize,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
        keep: impl Fn(&[ArtifactSummary]) -> bool,
    ) -> Result<(Vec<(String, Vec<ArtifactSummary>)>, bool)> {
        let mut out = Vec::new();
        let mut after = last.map(str::to_owned);
        loop {
            let page = self.core.catalog_where(Some(n), after.as_deref(), visible).await?;
            let mut names = page.names.into_iter();
            for name in names.by_ref() {
                after = Some(name.clone());
                let Ok(repo) = name.parse::<Repository>() else { continue };
                let artifacts = self.untagged_artifacts(&repo, false).await?;
                if keep(&artifacts) {
                    out.push((name, artifacts));
                    if out.len() == n {
                        return Ok((out, !names.as_slice().is_empty() || page.more));
                    }
                }
            }
            if !page.more {
                return Ok((out, false));
            }
        }
    }
}

impl RepositorySummary {
    /// The counts of a repository's artifacts.
    fn new(name: String, artifacts: &[ArtifactSummary]) -> Self {
        let mut by_kind = std::collections::BTreeMap::new();
        let mut by_harbor_type = std::collections::BTreeMap::new();
        for a in artifacts {
            *by_kind.entry(a.kind.clone()).or_insert(0) += 1;
            *by_harbor_type.entry(a.harbor_type.clone().unwrap_or_else(|| "unknown".into())).or_insert(0) +=
                1;
        }
        let wasm = artifacts.iter().filter(|a| a.wasm).count();
        Self { name, artifacts: artifacts.len(), wasm, by_kind, by_harbor_type }
    }
}

/// A new artifact record (pushed now, no modules read yet), as the JSON stored.
fn artifact_record(manifest: &Manifest, classification: &Classification, config: Option<&[u8]>) -> Value {
    record_json(ArtifactRecord::new(manifest, classification, config))
}

/// The layers of a manifest as the inspection reads them: blobs linked to the repository,
/// opened from the blocking thread the inspection runs on.
struct StoredLayers {
    core: Core,
    repo: Repository,
    runtime: tokio::runtime::Handle,
}

impl wharf_wasm::image::Layers for StoredLayers {
    fn open(
        &mut self,
        layer: &wharf_wasm::WasmLayer,
    ) -> std::io::Result<std::result::Result<Box<dyn std::io::Read + '_>, String>> {
        let digest = &layer.descriptor.digest;
        if layer.descriptor.is_non_distributable() {
            return Ok(Err(format!("{digest} is a foreign layer (its descriptor has urls): not read")));
        }
        let storage_error = |e: Error| match e {
            Error::Store(e) => std::io::Error::other(e),
            other => std::io::Error::other(other.to_string()),
        };
        let linked =
            self.runtime.block_on(self.core.blob_linked(&self.repo, digest)).map_err(storage_error)?;
        if !linked {
            return Ok(Err(format!("{digest} is not stored in this repository")));
        }
        match self.runtime.block_on(self.core.storage().get(digest, None)) {
            Ok(blob) => {
                let reader = tokio_util::io::StreamReader::new(blob.stream);
                let bridge = tokio_util::io::SyncIoBridge::new_with_handle(reader, self.runtime.clone());
                Ok(Ok(Box::new(bridge)))
            }
            Err(wharf_store::Error::BlobNotFound { .. }) => Ok(Err(format!("{digest} is not stored here"))),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

fn record_json(mut record: ArtifactRecord) -> Value {
    record.summary.pushed_at.get_or_insert_with(now_rfc3339);
    serde_json::to_value(record).expect("JSON serialises")
}
