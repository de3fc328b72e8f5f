//! Scrub: every blob re-hashed, every record checked (tags → manifests → blobs); damaged
//! blobs moved to the storage's quarantine. Nothing is repaired by guessing.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use wharf_types::{Digest, Manifest, MediaType, Repository};

use crate::clock::now_secs;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::registry::Core;
use crate::registry::keys::{self, TagRecord};

/// How many blobs are hashed at once.
const HASHING: usize = 4;

/// One problem a scrub found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Damage {
    /// `corrupt-blob` (bytes that do not hash to their digest), `missing-blob` (a manifest's
    /// blob absent or not linked), `missing-manifest` (a tag or revision whose manifest bytes
    /// are absent), `unreadable-manifest`, `dangling-tag` (a tag naming no revision),
    /// `missing-child` (an index child not in the repository).
    pub kind: String,
    /// The repository, for record damage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The tag or manifest digest that names the damaged object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The damaged object.
    pub digest: String,
}

/// What a scrub found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ScrubReport {
    /// When it started (unix seconds).
    pub started: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Repositories, tags and manifests checked.
    pub repositories: usize,
    /// Tags checked.
    pub tags: usize,
    /// Manifests checked.
    pub manifests: usize,
    /// Every problem.
    pub damage: Vec<Damage>,
    /// Blobs moved to the quarantine.
    pub quarantined: Vec<String>,
}

/// A scrub over the core, its outcome counted in the metrics.
pub(crate) struct Scrubber<'a> {
    core: &'a Core,
    metrics: &'a Metrics,
}

impl<'a> Scrubber<'a> {
    /// A scrub of `core`.
    pub(crate) fn new(core: &'a Core, metrics: &'a Metrics) -> Self {
        Self { core, metrics }
    }

    /// Scrubs the registry (beside live servers, or alone): re-hashes every blob — a corrupt
    /// one is reported and, with `quarantine`, moved out of sight — and checks every tag,
    /// revision and reference. Findings are looked at twice, so a push or delete that was
    /// in flight is not reported.
    pub(crate) async fn scrub(&self, quarantine: bool) -> Result<ScrubReport> {
        let started = std::time::Instant::now();
        let mut report = ScrubReport { started: now_secs(), ..ScrubReport::default() };
        let outcome = self.scrub_into(quarantine, &mut report).await;
        self.metrics.scrub_finished(outcome.as_ref().ok().map(|()| report.damage.len()));
        outcome?;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.damage.sort();
        let json = serde_json::to_vec(&report).expect("a report serialises");
        self.core.storage().set_meta(keys::GC_LAST_SCRUB, json.into()).await?;
        tracing::info!(
            blobs = report.blobs,
            damage = report.damage.len(),
            duration_ms = report.duration_ms,
            "scrub"
        );
        Ok(report)
    }

    async fn scrub_into(&self, quarantine: bool, report: &mut ScrubReport) -> Result<()> {
        let storage = Arc::clone(self.core.storage());
        let all: Vec<Digest> = storage.list().try_collect().await?;
        let hashed: Vec<(Digest, Option<u64>)> = futures_util::stream::iter(all)
            .map(|d| {
                let storage = Arc::clone(&storage);
                async move {
                    let got = match storage.get(&d, None).await {
                        Ok(got) => got,
                        // Collected since the listing.
                        Err(wharf_store::Error::BlobNotFound { .. }) => return Ok((d, Some(0))),
                        Err(e) => return Err(Error::from(e)),
                    };
                    let mut digester = d.digester();
                    let mut stream = got.stream;
                    let mut size = 0u64;
                    while let Some(chunk) = stream.next().await {
                        let chunk =
                            chunk.map_err(|e| Error::Store(wharf_store::Error::Corrupt(e.to_string())))?;
                        size += chunk.len() as u64;
                        digester.update(&chunk);
                    }
                    Ok::<_, Error>((d.clone(), (digester.finish() == d).then_some(size)))
                }
            })
            .buffer_unordered(HASHING)
            .try_collect()
            .await?;
        let mut corrupt = BTreeSet::new();
        for (d, size) in hashed {
            report.blobs += 1;
            if let Some(size) = size {
                report.bytes += size;
            } else {
                report.damage.push(Damage {
                    kind: "corrupt-blob".into(),
                    repository: None,
                    reference: None,
                    digest: d.to_string(),
                });
                corrupt.insert(d);
            }
        }
        if quarantine {
            for d in &corrupt {
                if storage.quarantine(d).await? {
                    tracing::error!(digest = %d, "scrub: a corrupt blob was moved to the quarantine");
                    report.quarantined.push(d.to_string());
                }
            }
        }
        let repos: Vec<Repository> = storage
            .list_meta(keys::CATALOG)
            .await?
            .iter()
            .filter_map(|k| k[keys::CATALOG.len()..].parse().ok())
            .collect();
        report.repositories = repos.len();
        for repo in &repos {
            let found = self.check_records(repo, &corrupt, report).await?;
            if found.is_empty() {
                continue;
            }
            // A second look, so that a push or delete in flight is not called damage.
            let again = self.check_records(repo, &corrupt, &mut ScrubReport::default()).await?;
            report.damage.extend(found.into_iter().filter(|d| again.contains(d)));
        }
        Ok(())
    }

    /// Tags → revisions → manifest bytes → blobs or children, of one repository.
    async fn check_records(
        &self,
        repo: &Repository,
        corrupt: &BTreeSet<Digest>,
        report: &mut ScrubReport,
    ) -> Result<Vec<Damage>> {
        let storage = self.core.storage();
        let mut found = Vec::new();
        let damage = |kind: &str, reference: String, digest: &Digest| Damage {
            kind: kind.into(),
            repository: Some(repo.to_string()),
            reference: Some(reference),
            digest: digest.to_string(),
        };
        let prefix = keys::tags(repo);
        for key in storage.list_meta(&prefix).await? {
            let tag = &key[prefix.len()..];
            report.tags += 1;
            let Some(record) = storage.get_meta(&key).await?.as_deref().and_then(TagRecord::decode) else {
                continue;
            };
            if !self.core.holds_manifest(repo, &record.digest).await? {
                found.push(damage("dangling-tag", tag.to_owned(), &record.digest));
            }
        }
        let prefix = keys::revisions(repo);
        for key in storage.list_meta(&prefix).await? {
            let Some(digest) = keys::parse_digest_key(&key[prefix.len()..]) else { continue };
            let Some(revision) = self.core.revision(repo, &digest).await? else { continue };
            report.manifests += 1;
            if corrupt.contains(&digest) {
                found.push(damage("corrupt-blob", digest.to_string(), &digest));
                continue;
            }
            let bytes = match storage.read_all(&digest).await {
                Ok(b) => b,
                Err(wharf_store::Error::BlobNotFound { .. }) => {
                    found.push(damage("missing-manifest", digest.to_string(), &digest));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let media_type = revision.media_type.parse::<MediaType>().ok();
            let Ok(manifest) = Manifest::from_bytes(bytes, media_type.as_ref()) else {
                found.push(damage("unreadable-manifest", digest.to_string(), &digest));
                continue;
            };
            let is_index = manifest.as_index().is_some();
            for r in manifest.references().filter(|r| !r.is_non_distributable()) {
                // A mirrored manifest's blobs and children are fetched when asked for.
                if revision.mirrored && !corrupt.contains(&r.digest) {
                    continue;
                }
                if is_index {
                    if !self.core.holds_manifest(repo, &r.digest).await? {
                        found.push(damage("missing-child", digest.to_string(), &r.digest));
                    }
                } else if corrupt.contains(&r.digest) {
                    found.push(damage("corrupt-blob", digest.to_string(), &r.digest));
                } else if !self.core.blob_linked(repo, &r.digest).await?
                    || storage.stat(&r.digest).await?.is_none()
                {
                    found.push(damage("missing-blob", digest.to_string(), &r.digest));
                }
            }
        }
        Ok(found)
    }
}
