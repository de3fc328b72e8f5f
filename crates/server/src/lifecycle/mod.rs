//! Storage lifecycle: online garbage collection, retention, quotas (checked on every push by
//! the façade) and scrub.
//!
//! # Collection, and why no push loses an acknowledged blob
//!
//! A collection **marks** each repository (tags, revisions, the manifests they parse to,
//! links) and finds what is garbage: tags retention removes, revisions no longer wanted
//! (untagged ones only by policy, never a child of a live index or a referrer of a live
//! subject, never younger than the grace window), links no live manifest references that are
//! older than the grace window; then **bytes** no remaining link or revision names, older
//! than the grace window.
//!
//! Without compare-and-swap (Garage has none), the collector and the writers each write
//! before they read what the other wrote:
//! - the collector sets the **epoch** to `sweep <run>` before it decides anything, writes a
//!   **doomed mark** for each digest or tag, then **re-checks** it (the repository marked
//!   again, the link's and blob's times read again, the reverse records of a blob listed),
//!   removes only what is still garbage, and removes the mark;
//! - a writer (blob upload, mount, manifest PUT) reads the epoch before it starts, writes
//!   what makes things live (links, revision, reverse record, tags), then reads the epoch
//!   again (`fence::confirm`). The same `idle` value twice means no collection was deciding
//!   anything between the two reads: one that starts later writes its marks after the
//!   writer's records exist and sees them at its re-check. Otherwise the writer waits until
//!   each of its digests has no doomed mark (the collector decided) and verifies that links,
//!   revisions, bytes and tags are still there; if not, the write is undone and answered as
//!   an error (the client pushes again), never acknowledged.
//!
//! So for every removal, either the writer's records were durable before the collector's
//! re-check (and the re-check keeps the object), or the writer read the epoch or mark after
//! the collector wrote it (and verifies before acknowledging). One collector runs at a time
//! (the collector's lease, `lifecycle::lease`); a collector checks its lease before each removal.

pub mod budget;
mod lease;
pub mod quota;
pub mod retention;
pub mod scrub;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use wharf_store::Write;
use wharf_types::{Digest, Manifest, MediaType, Repository};

use crate::clock::now_secs;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::registry::Core;
use crate::registry::keys::{self, LinkRecord, Revision, TagRecord, parse_digest_key};
use crate::search::SearchIndex;

/// How many reads a collection has in flight at once.
const READS: usize = 32;
/// How many blobs are decided under one set of doomed marks.
const BATCH: usize = 256;

/// The `[gc]` table of the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GcConfig {
    /// How often the server collects (`1h`; `off` turns it off) [default: 1h on fs and S3,
    /// off on memory].
    pub interval: Option<String>,
    /// What is younger than this is never collected [default: 1h].
    pub grace: Option<String>,
    /// Upload sessions idle longer than this are cancelled [default: 24h].
    pub upload_max_age: Option<String>,
    /// Remove manifests without a tag in repositories no retention rule matches (never a
    /// child of a live index or a referrer of a live subject) [default: false].
    pub delete_untagged: Option<bool>,
    /// How often the server scrubs (re-hashes every blob; `off` by default).
    pub scrub_interval: Option<String>,
}

/// What a collection does: the grace window, dry run, and the lifecycle rules.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GcOptions {
    /// Nothing younger than this is removed.
    pub grace: Duration,
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Upload sessions older than this are cancelled.
    pub upload_max_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self { grace: Duration::from_secs(3600), dry_run: false, upload_max_age: Duration::from_secs(86_400) }
    }
}

impl GcOptions {
    /// With the grace window `grace`.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Report only.
    #[must_use]
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// The lifecycle rules of a registry: collection settings, retention, the untagged
/// default, quotas.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    options: GcOptions,
    retention: Vec<retention::Rule>,
    delete_untagged: bool,
    pub(crate) quotas: quota::Quotas,
    budgets: Vec<budget::CacheBudget>,
}

impl Lifecycle {
    /// From the config file's `[gc]`, `[[retention]]` and `[[quota]]` tables.
    pub fn from_config(
        gc: &GcConfig,
        rules: &[retention::RetentionConfig],
        quotas: &[quota::QuotaConfig],
    ) -> std::result::Result<Self, String> {
        let retention = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                retention::Rule::from_config(r).map_err(|e| format!("[[retention]] #{}: {e}", i + 1))
            })
            .collect::<std::result::Result<_, _>>()?;
        let mut options = GcOptions::default();
        if let Some(grace) = &gc.grace {
            options.grace = crate::units::parse_grace(grace).map_err(|e| format!("[gc] grace: {e}"))?;
        }
        if let Some(age) = &gc.upload_max_age {
            options.upload_max_age =
                crate::units::parse_duration(age).map_err(|e| format!("[gc] upload_max_age: {e}"))?;
        }
        Ok(Self {
            options,
            retention,
            delete_untagged: gc.delete_untagged.unwrap_or(false),
            quotas: quota::Quotas::from_config(quotas)?,
            budgets: Vec::new(),
        })
    }

    /// With the size budgets of mirrors' repositories (`max_bytes` of an `[[upstream]]`).
    #[must_use]
    pub fn with_cache_budgets(mut self, budgets: Vec<budget::CacheBudget>) -> Self {
        self.budgets = budgets;
        self
    }

    /// The collection settings (`[gc]`), for runs that do not say otherwise.
    pub fn options(&self) -> &GcOptions {
        &self.options
    }

    /// Whether pulls of the repository's tags are to be recorded (a rule keeps recent pulls,
    /// or a cache budget evicts the least recently pulled).
    pub(crate) fn counts_pulls(&self, repo: &Repository) -> bool {
        self.rule(repo).is_some_and(retention::Rule::counts_pulls) || self.budgeted(repo)
    }

    /// Whether a cache budget covers the repository (pulls by digest are recorded too).
    pub(crate) fn budgeted(&self, repo: &Repository) -> bool {
        self.budgets.iter().any(|b| b.covers(repo))
    }

    fn rule(&self, repo: &Repository) -> Option<&retention::Rule> {
        self.retention.iter().find(|r| r.matches(repo.as_str()))
    }
}

/// A tag a collection removed (or would).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedTag {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest it named.
    pub digest: String,
}

/// A manifest a collection removed from a repository (or would).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedManifest {
    /// The repository.
    pub repository: String,
    /// The manifest.
    pub digest: String,
}

/// Bytes a collection removed from storage (or would).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedBlob {
    /// The digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// What one collection did (or, dry, would do): the JSON report of a run.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GcReport {
    /// The run's id.
    pub run: String,
    /// Whether nothing was removed.
    pub dry_run: bool,
    /// When it started (unix seconds).
    pub started: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// The grace window.
    pub grace_seconds: u64,
    /// Repositories looked at.
    pub repositories: usize,
    /// Tags removed.
    pub tags: Vec<RemovedTag>,
    /// Manifests removed from repositories.
    pub manifests: Vec<RemovedManifest>,
    /// Blob links removed from repositories.
    pub links: usize,
    /// Bytes removed from storage (blobs and manifests).
    pub blobs: Vec<RemovedBlob>,
    /// Their total size.
    pub bytes_freed: u64,
    /// Upload sessions cancelled.
    pub uploads: usize,
    /// Objects left in storage.
    pub blobs_kept: usize,
    /// Garbage kept because a writer made it live again during the run.
    pub rescued: usize,
    /// Repositories whose links were all kept because a manifest could not be read (run
    /// `wharf-server scrub`).
    pub unreadable: Vec<String>,
    /// The cache budgets: what each mirror's repositories hold after the run.
    pub caches: Vec<CacheUsage>,
}

/// What a mirror's repositories hold, against their budget.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CacheUsage {
    /// The upstream.
    pub name: String,
    /// Its budget.
    pub max_bytes: u64,
    /// The unique bytes its repositories held before the run.
    pub held_bytes: u64,
    /// What they hold once the evicted entries go (their bytes go at once, or after the grace
    /// window when another repository still links them).
    pub kept_bytes: u64,
    /// Tags and manifests fetched by digest evicted, least recently pulled first.
    pub evicted: usize,
}

impl GcReport {
    /// What it removed (or would), by kind: blobs, links, manifests, tags, uploads.
    pub(crate) fn freed(&self) -> [(&'static str, usize); 5] {
        [
            ("blob", self.blobs.len()),
            ("link", self.links),
            ("manifest", self.manifests.len()),
            ("tag", self.tags.len()),
            ("upload", self.uploads),
        ]
    }
}

/// What a manifest references.
#[derive(Debug, Default)]
struct Refs {
    blobs: Vec<Digest>,
    children: Vec<Digest>,
}

/// A repository as a collection reads it.
#[derive(Debug, Default)]
struct RepoState {
    tags: BTreeMap<String, TagRecord>,
    pulled: HashMap<String, u64>,
    revisions: BTreeMap<Digest, Revision>,
    links: BTreeSet<Digest>,
}

/// What a collection removes from one repository, and what stays.
#[derive(Debug, Default)]
struct Plan {
    /// Tags to remove, with the manifest each names.
    tags: BTreeMap<String, Digest>,
    /// Revisions to remove, with their records.
    revisions: BTreeMap<Digest, Revision>,
    links: BTreeSet<Digest>,
    kept: BTreeSet<Digest>,
    unreadable: bool,
}

/// The second look's entries whose keys the first look found too.
fn seen_twice<K: Ord, V, W>(again: BTreeMap<K, V>, first: &BTreeMap<K, W>) -> BTreeMap<K, V> {
    again.into_iter().filter(|(k, _)| first.contains_key(k)).collect()
}

/// One collection.
struct Collector<'a> {
    core: &'a Core,
    search: &'a SearchIndex,
    lifecycle: &'a Lifecycle,
    options: &'a GcOptions,
    /// Tags retention never removes (the immutable tags of `[[versioning]]`).
    spared: Spared<'a>,
    /// Manifests parsed so far, by digest (`None`: unreadable).
    refs: HashMap<Digest, Option<Arc<Refs>>>,
    /// In a dry run, the links and revisions that would be removed (they still exist).
    would_go: std::collections::HashSet<(Repository, Digest)>,
    /// What cache budgets evict, by repository.
    evicted: HashMap<Repository, Evicted>,
}

/// What cache budgets evict from a repository.
#[derive(Debug, Default)]
struct Evicted {
    tags: BTreeSet<String>,
    manifests: BTreeSet<Digest>,
}

/// Whether retention must leave a repository's tag alone.
pub(crate) type Spared<'a> = &'a (dyn Fn(&Repository, &str) -> bool + Sync);

impl Lifecycle {
    /// Collects garbage once (see the [module docs](crate::lifecycle)): beside live servers on
    /// the same storage, or alone. [`Error::Busy`] when another collection holds the lease.
    /// The search index forgets what goes; the run is counted in `metrics`. Retention leaves
    /// the tags `spared` names.
    pub(crate) async fn collect(
        &self,
        core: &Core,
        search: &SearchIndex,
        metrics: &Metrics,
        options: &GcOptions,
        spared: Spared<'_>,
    ) -> Result<GcReport> {
        let started = std::time::Instant::now();
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut report = GcReport {
            run: run.clone(),
            dry_run: options.dry_run,
            started: now_secs(),
            grace_seconds: options.grace.as_secs(),
            ..GcReport::default()
        };
        let lease = if options.dry_run {
            None
        } else {
            let lease = lease::Lease::acquire(Arc::clone(core.storage()), &run).await?;
            let begun = async {
                core.storage().set_meta(keys::GC_EPOCH, format!("sweep {run}").into()).await?;
                // Marks a dead collector left: nobody will decide them.
                let stale = core.storage().list_meta(keys::GC_DOOMED).await?;
                let removes = stale.into_iter().map(|key| Write::Remove { key }).collect::<Vec<_>>();
                if !removes.is_empty() {
                    core.storage().write_steps(vec![removes]).await?;
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = begun.await {
                // Given up at once where the storage allows, not held until it expires.
                let _ = core.storage().set_meta(keys::GC_EPOCH, format!("idle {run}").into()).await;
                let _ = lease.release().await;
                return Err(e);
            }
            Some(lease)
        };
        let mut collector = Collector {
            core,
            search,
            lifecycle: self,
            options,
            spared,
            refs: HashMap::new(),
            would_go: std::collections::HashSet::new(),
            evicted: HashMap::new(),
        };
        let outcome = collector.run(lease.as_ref(), &mut report).await;
        if let Some(lease) = lease {
            let idle = core.storage().set_meta(keys::GC_EPOCH, format!("idle {run}").into()).await;
            let released = lease.release().await;
            idle?;
            released?;
        }
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        metrics.gc_finished(
            outcome.is_ok(),
            report.dry_run,
            started.elapsed().as_secs_f64(),
            report.bytes_freed,
            &report.freed(),
        );
        outcome?;
        report.tags.sort();
        report.manifests.sort();
        report.blobs.sort();
        if !options.dry_run {
            let json = serde_json::to_vec(&report).expect("a report serialises");
            core.storage().set_meta(keys::GC_LAST_REPORT, json.into()).await?;
        }
        tracing::info!(
            run = %report.run,
            dry_run = report.dry_run,
            tags = report.tags.len(),
            manifests = report.manifests.len(),
            links = report.links,
            blobs = report.blobs.len(),
            bytes_freed = report.bytes_freed,
            uploads = report.uploads,
            duration_ms = report.duration_ms,
            "garbage collection"
        );
        Ok(report)
    }

    /// The report of the last collection that removed anything or could have (not dry runs).
    pub(crate) async fn last_report(core: &Core) -> Result<Option<serde_json::Value>> {
        let record = core.storage().get_meta(keys::GC_LAST_REPORT).await?;
        Ok(record.and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

fn cutoff(options: &GcOptions) -> u64 {
    now_secs().saturating_sub(options.grace.as_secs())
}

impl Collector<'_> {
    async fn run(&mut self, lease: Option<&lease::Lease>, report: &mut GcReport) -> Result<()> {
        let storage = Arc::clone(self.core.storage());
        let repos: Vec<Repository> = storage
            .list_meta(keys::CATALOG)
            .await?
            .iter()
            .filter_map(|k| k[keys::CATALOG.len()..].parse().ok())
            .collect();
        report.repositories = repos.len();
        for budget in &self.lifecycle.budgets {
            let usage = self.plan_budget(budget, &repos).await?;
            report.caches.push(usage);
        }
        let mut kept: BTreeSet<Digest> = BTreeSet::new();
        for repo in &repos {
            let plan = self.plan(repo).await?;
            if plan.unreadable {
                report.unreadable.push(repo.to_string());
            }
            let plan = match lease {
                Some(lease) if !plan.is_empty() => self.sweep_repository(repo, plan, lease, report).await?,
                _ => plan,
            };
            if lease.is_none() {
                plan.report(repo, report);
                self.would_go.extend(
                    plan.links.iter().chain(plan.revisions.keys()).map(|d| (repo.clone(), d.clone())),
                );
            }
            kept.extend(plan.kept);
        }
        self.sweep_blobs(&kept, lease, report).await?;
        report.uploads = if lease.is_some() {
            self.core.purge_stale_uploads(self.options.upload_max_age).await?
        } else {
            self.core.stale_uploads(self.options.upload_max_age).await?.len()
        };
        Ok(())
    }

    /// Decides what a cache budget evicts (see [`budget`]): the entries of the repositories
    /// under its prefix, least recently pulled first, until the rest fits. Entries younger
    /// than the grace window and tags retention spares stay (and count).
    async fn plan_budget(
        &mut self,
        budget: &budget::CacheBudget,
        repos: &[Repository],
    ) -> Result<CacheUsage> {
        let cutoff = cutoff(self.options);
        let mut entries = Vec::new();
        for repo in repos.iter().filter(|r| budget.covers(r)) {
            let state = self.read(repo, true).await?;
            self.load_refs(&state).await?;
            let storage = self.core.storage();
            let links: Vec<(Digest, u64)> = futures_util::stream::iter(state.links.iter().cloned())
                .map(|d| async move {
                    let record = storage.get_meta(&keys::layer(repo, &d)).await?;
                    let size = record.as_deref().and_then(|r| LinkRecord::decode(r).size).unwrap_or(0);
                    Ok::<_, Error>((d, size))
                })
                .buffer_unordered(READS)
                .try_collect()
                .await?;
            let links: HashMap<Digest, u64> = links.into_iter().collect();
            let children = self.children(&state);
            let tagged: BTreeSet<&Digest> = state.tags.values().map(|t| &t.digest).collect();
            let holds = |root: &Digest| {
                let mut seen = BTreeSet::new();
                let mut holds = Vec::new();
                let mut stack = vec![root.clone()];
                while let Some(d) = stack.pop() {
                    let Some(revision) = state.revisions.get(&d) else { continue };
                    if !seen.insert(d.clone()) {
                        continue;
                    }
                    holds.push((d.clone(), revision.size));
                    if let Some(Some(refs)) = self.refs.get(&d) {
                        stack.extend(refs.children.iter().cloned());
                        for blob in &refs.blobs {
                            if let Some(size) = links.get(blob)
                                && seen.insert(blob.clone())
                            {
                                holds.push((blob.clone(), *size));
                            }
                        }
                    }
                }
                holds
            };
            for (name, record) in &state.tags {
                let pushed = record.pushed.unwrap_or(0);
                entries.push(budget::Entry {
                    repo: repo.clone(),
                    root: budget::Root::Tag(name.clone()),
                    used: state.pulled.get(name).copied().unwrap_or(pushed).max(pushed),
                    holds: holds(&record.digest),
                    stays: pushed > cutoff || (self.spared)(repo, name),
                });
            }
            for (d, revision) in &state.revisions {
                if tagged.contains(d) || children.contains(d) {
                    continue;
                }
                let pushed = revision.pushed.unwrap_or(0);
                entries.push(budget::Entry {
                    repo: repo.clone(),
                    root: budget::Root::Manifest(d.clone()),
                    used: state.pulled.get(&keys::digest_key(d)).copied().unwrap_or(pushed).max(pushed),
                    holds: holds(d),
                    stays: pushed > cutoff,
                });
            }
        }
        let budget::Eviction { evicted, held, kept: kept_bytes } = budget::evict(&entries, budget.max_bytes);
        for &i in &evicted {
            let entry = &entries[i];
            let slot = self.evicted.entry(entry.repo.clone()).or_default();
            match &entry.root {
                budget::Root::Tag(t) => slot.tags.insert(t.clone()),
                budget::Root::Manifest(d) => slot.manifests.insert(d.clone()),
            };
        }
        if !evicted.is_empty() {
            tracing::info!(
                upstream = budget.name,
                max_bytes = budget.max_bytes,
                held_bytes = held,
                kept_bytes,
                evicted = evicted.len(),
                "cache budget: evicting the least recently pulled"
            );
        }
        Ok(CacheUsage {
            name: budget.name.clone(),
            max_bytes: budget.max_bytes,
            held_bytes: held,
            kept_bytes,
            evicted: evicted.len(),
        })
    }

    /// The manifests the repository's indexes name (parsed by [`load_refs`](Self::load_refs)).
    fn children<'s>(&'s self, state: &RepoState) -> BTreeSet<&'s Digest> {
        state
            .revisions
            .keys()
            .filter_map(|d| self.refs.get(d).and_then(Option::as_ref))
            .flat_map(|refs| refs.children.iter())
            .collect()
    }

    /// Reads a repository's tags, revisions and links.
    async fn read(&self, repo: &Repository, with_pulls: bool) -> Result<RepoState> {
        let storage = self.core.storage();
        let mut state = RepoState::default();
        let prefix = keys::tags(repo);
        let keys = storage.list_meta(&prefix).await?;
        let records: Vec<(String, Option<bytes::Bytes>)> = futures_util::stream::iter(keys)
            .map(|k| async move { Ok::<_, Error>((k.clone(), storage.get_meta(&k).await?)) })
            .buffer_unordered(READS)
            .try_collect()
            .await?;
        for (key, value) in records {
            if let Some(record) = value.as_deref().and_then(TagRecord::decode) {
                state.tags.insert(key[prefix.len()..].to_owned(), record);
            }
        }
        if with_pulls {
            let prefix = keys::pulls(repo);
            for key in storage.list_meta(&prefix).await? {
                let at = storage.get_meta(&key).await?;
                if let Some(at) = at.as_deref().and_then(keys::decode_secs) {
                    state.pulled.insert(key[prefix.len()..].to_owned(), at);
                }
            }
        }
        let prefix = keys::revisions(repo);
        let digests: Vec<Digest> = storage
            .list_meta(&prefix)
            .await?
            .iter()
            .filter_map(|k| parse_digest_key(&k[prefix.len()..]))
            .collect();
        let revisions: Vec<(Digest, Option<Revision>)> = futures_util::stream::iter(digests)
            .map(|d| async move { Ok::<_, Error>((d.clone(), self.core.revision(repo, &d).await?)) })
            .buffer_unordered(READS)
            .try_collect()
            .await?;
        state.revisions = revisions.into_iter().filter_map(|(d, r)| Some((d, r?))).collect();
        let prefix = keys::layers(repo);
        state.links = storage
            .list_meta(&prefix)
            .await?
            .iter()
            .filter_map(|k| parse_digest_key(&k[prefix.len()..]))
            .collect();
        Ok(state)
    }

    /// Parses every revision's manifest not parsed yet.
    async fn load_refs(&mut self, state: &RepoState) -> Result<()> {
        let storage = self.core.storage();
        let missing: Vec<(Digest, String)> = state
            .revisions
            .iter()
            .filter(|(d, _)| !self.refs.contains_key(*d))
            .map(|(d, r)| (d.clone(), r.media_type.clone()))
            .collect();
        let parsed: Vec<(Digest, Option<Arc<Refs>>)> = futures_util::stream::iter(missing)
            .map(|(d, media_type)| async move {
                let bytes = match storage.read_all(&d).await {
                    Ok(b) => b,
                    Err(wharf_store::Error::BlobNotFound { .. }) => return Ok((d, None)),
                    Err(e) => return Err(Error::from(e)),
                };
                let media_type = media_type.parse::<MediaType>().ok();
                let refs = Manifest::from_bytes(bytes, media_type.as_ref()).ok().map(|m| {
                    let is_index = m.as_index().is_some();
                    let mut refs = Refs::default();
                    for r in m.references().filter(|r| !r.is_non_distributable()) {
                        if is_index {
                            refs.children.push(r.digest.clone());
                        } else {
                            refs.blobs.push(r.digest.clone());
                        }
                    }
                    Arc::new(refs)
                });
                Ok::<_, Error>((d, refs))
            })
            .buffer_unordered(READS)
            .try_collect()
            .await?;
        self.refs.extend(parsed);
        Ok(())
    }

    /// Decides what goes from one repository.
    async fn plan(&mut self, repo: &Repository) -> Result<Plan> {
        let lifecycle = self.lifecycle;
        let rule = lifecycle.rule(repo);
        let state = self.read(repo, rule.is_some()).await?;
        self.load_refs(&state).await?;
        let cutoff = cutoff(self.options);
        let now = now_secs();
        let mut plan = Plan::default();
        if let Some(rule) = rule {
            let ages: Vec<retention::TagAge> = state
                .tags
                .iter()
                .map(|(name, record)| retention::TagAge {
                    name: name.clone(),
                    pushed: record.pushed,
                    pulled: state.pulled.get(name).copied(),
                })
                .collect();
            // A tag pushed within the grace window always stays, and an immutable one.
            plan.tags = rule
                .removed(&ages, now)
                .into_iter()
                .filter(|t| state.tags[t].pushed.unwrap_or(0) <= cutoff && !(self.spared)(repo, t))
                .map(|t| {
                    let digest = state.tags[&t].digest.clone();
                    (t, digest)
                })
                .collect();
        }
        // What a cache budget evicts: its tags go, as retention's do.
        let evicted = self.evicted.get(repo);
        for t in evicted.iter().flat_map(|e| &e.tags) {
            if let Some(record) = state.tags.get(t)
                && record.pushed.unwrap_or(0) <= cutoff
                && !(self.spared)(repo, t)
            {
                plan.tags.insert(t.clone(), record.digest.clone());
            }
        }
        let delete_untagged = rule.map_or(lifecycle.delete_untagged, |r| r.delete_untagged);
        let mut live: BTreeSet<Digest> = if let Some(evicted) = evicted.filter(|_| !delete_untagged) {
            // A cache keeps what was fetched by digest (untagged) unless evicted, and what an
            // evicted tag named unless another tag names it; children live through their index.
            let children = self.children(&state);
            let tagged: BTreeSet<&Digest> = state
                .tags
                .iter()
                .filter(|(t, _)| !plan.tags.contains_key(*t))
                .map(|(_, r)| &r.digest)
                .collect();
            let dropped: BTreeSet<&Digest> = evicted
                .manifests
                .iter()
                .chain(evicted.tags.iter().filter_map(|t| plan.tags.get(t)))
                .collect();
            state
                .revisions
                .iter()
                .filter(|(d, r)| {
                    tagged.contains(d)
                        || r.pushed.unwrap_or(0) > cutoff
                        || !(children.contains(d) || dropped.contains(d))
                })
                .map(|(d, _)| d.clone())
                .collect()
        } else if delete_untagged {
            let tagged =
                state.tags.iter().filter(|(t, _)| !plan.tags.contains_key(*t)).map(|(_, r)| r.digest.clone());
            let young = state
                .revisions
                .iter()
                .filter(|(_, r)| r.pushed.unwrap_or(0) > cutoff)
                .map(|(d, _)| d.clone());
            tagged.chain(young).filter(|d| state.revisions.contains_key(d)).collect()
        } else {
            state.revisions.keys().cloned().collect()
        };
        // Children of live indexes and referrers of live subjects, until nothing changes.
        loop {
            let mut more = Vec::new();
            for d in &live {
                if let Some(Some(refs)) = self.refs.get(d) {
                    more.extend(
                        refs.children
                            .iter()
                            .filter(|c| state.revisions.contains_key(*c) && !live.contains(*c))
                            .cloned(),
                    );
                }
            }
            for (d, revision) in &state.revisions {
                if !live.contains(d) && revision.subject.as_ref().is_some_and(|s| live.contains(s)) {
                    more.push(d.clone());
                }
            }
            if more.is_empty() {
                break;
            }
            live.extend(more);
        }
        plan.revisions = state
            .revisions
            .iter()
            .filter(|(d, _)| !live.contains(*d))
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        let mut live_blobs = BTreeSet::new();
        for d in &live {
            match self.refs.get(d) {
                Some(Some(refs)) => live_blobs.extend(refs.blobs.iter().cloned()),
                _ => plan.unreadable = true,
            }
        }
        if plan.unreadable {
            // A manifest that cannot be read might reference any link: keep them all, and
            // every revision (its children are unknown too).
            plan.revisions.clear();
        } else {
            let storage = self.core.storage();
            let candidates: Vec<Digest> =
                state.links.iter().filter(|d| !live_blobs.contains(*d)).cloned().collect();
            let times: Vec<(Digest, u64)> = futures_util::stream::iter(candidates)
                .map(|d| async move {
                    let record = storage.get_meta(&keys::layer(repo, &d)).await?;
                    Ok::<_, Error>((d, record.as_deref().map_or(u64::MAX, |r| LinkRecord::decode(r).linked)))
                })
                .buffer_unordered(READS)
                .try_collect()
                .await?;
            plan.links = times.into_iter().filter(|(_, at)| *at <= cutoff).map(|(d, _)| d).collect();
        }
        plan.kept = state
            .revisions
            .keys()
            .filter(|d| !plan.revisions.contains_key(*d))
            .chain(state.links.iter().filter(|d| !plan.links.contains(*d)))
            .cloned()
            .collect();
        Ok(plan)
    }

    /// Removes a repository's garbage under doomed marks, after deciding again.
    async fn sweep_repository(
        &mut self,
        repo: &Repository,
        first: Plan,
        lease: &lease::Lease,
        report: &mut GcReport,
    ) -> Result<Plan> {
        let storage = Arc::clone(self.core.storage());
        let marks: Vec<String> = first
            .tags
            .keys()
            .map(|t| keys::doomed_tag(repo, t))
            .chain(first.revisions.keys().chain(&first.links).map(keys::doomed_digest))
            .collect();
        let writes =
            marks.iter().map(|key| Write::Set { key: key.clone(), value: bytes::Bytes::new() }).collect();
        storage.write_steps(vec![writes]).await?;
        let outcome = async {
            // What is garbage at both looks goes, as the second look found it.
            let again = self.plan(repo).await?;
            let tags = seen_twice(again.tags, &first.tags);
            let revisions = seen_twice(again.revisions, &first.revisions);
            let links: BTreeSet<Digest> = first.links.intersection(&again.links).cloned().collect();
            report.rescued += first.tags.len() + first.revisions.len() + first.links.len()
                - tags.len()
                - revisions.len()
                - links.len();
            lease.check().await?;
            // One batch: the tags first (a tag never outlives its revision), then the
            // revisions and links.
            let first_step: Vec<Write> = tags.keys().flat_map(|t| Core::tag_removals(repo, t)).collect();
            let mut second_step: Vec<Write> = Vec::new();
            for (d, revision) in &revisions {
                second_step.extend(Core::revision_removals(repo, d, revision));
            }
            for d in &links {
                second_step.extend(Core::link_removals(repo, d));
            }
            for t in tags.keys() {
                self.search.untag(repo.as_str(), t);
            }
            for d in revisions.keys() {
                self.search.remove(repo.as_str(), d.as_str());
            }
            if !tags.is_empty() || !revisions.is_empty() {
                second_step.push(self.search.stamp_write());
            }
            let steps: Vec<Vec<Write>> =
                [first_step, second_step].into_iter().filter(|s| !s.is_empty()).collect();
            storage.write_steps(steps).await?;
            let mut kept = again.kept;
            // What the second look found live beyond the first stays too.
            kept.extend(first.revisions.keys().filter(|d| !revisions.contains_key(*d)).cloned());
            kept.extend(first.links.difference(&links).cloned());
            let swept = Plan { tags, revisions, links, kept, unreadable: again.unreadable };
            swept.report(repo, report);
            Ok::<_, Error>(swept)
        }
        .await;
        let removes = marks.into_iter().map(|key| Write::Remove { key }).collect();
        storage.write_steps(vec![removes]).await?;
        outcome
    }

    /// Removes the bytes no link or revision names any more.
    async fn sweep_blobs(
        &self,
        kept: &BTreeSet<Digest>,
        lease: Option<&lease::Lease>,
        report: &mut GcReport,
    ) -> Result<()> {
        let storage = Arc::clone(self.core.storage());
        let all: Vec<Digest> = storage.list().try_collect().await?;
        let candidates: Vec<Digest> = all.iter().filter(|d| !kept.contains(*d)).cloned().collect();
        report.blobs_kept = all.len() - candidates.len();
        let threshold = SystemTime::now() - self.options.grace;
        for batch in candidates.chunks(BATCH) {
            let marks: Vec<String> = batch.iter().map(keys::doomed_digest).collect();
            if lease.is_some() {
                let writes = marks
                    .iter()
                    .map(|key| Write::Set { key: key.clone(), value: bytes::Bytes::new() })
                    .collect();
                storage.write_steps(vec![writes]).await?;
            }
            let outcome = async {
                let decided: Vec<(Digest, Option<u64>)> =
                    futures_util::stream::iter(batch.iter().cloned())
                        .map(|d| async move {
                            Ok::<_, Error>((d.clone(), self.blob_garbage(&d, threshold).await?))
                        })
                        .buffer_unordered(READS)
                        .try_collect()
                        .await?;
                if let Some(lease) = lease {
                    lease.check().await?;
                }
                let garbage: Vec<(Digest, u64)> = decided
                    .into_iter()
                    .filter_map(|(d, size)| {
                        if size.is_none() {
                            report.blobs_kept += 1;
                        }
                        Some((d, size?))
                    })
                    .collect();
                // Deleted a few at a time (each is a file removal and a directory sync on fs).
                let removed: Vec<(Digest, u64, bool)> = futures_util::stream::iter(garbage)
                    .map(|(d, size)| {
                        let storage = Arc::clone(&storage);
                        async move {
                            let gone = lease.is_none() || storage.delete(&d).await?;
                            Ok::<_, Error>((d, size, gone))
                        }
                    })
                    .buffer_unordered(READS)
                    .try_collect()
                    .await?;
                for (d, size, gone) in removed {
                    if gone {
                        report.bytes_freed += size;
                        report.blobs.push(RemovedBlob { digest: d.to_string(), size });
                    }
                }
                Ok::<_, Error>(())
            }
            .await;
            if lease.is_some() {
                let removes = marks.into_iter().map(|key| Write::Remove { key }).collect();
                storage.write_steps(vec![removes]).await?;
            }
            outcome?;
        }
        Ok(())
    }

    /// `Some(size)` when blob `d` is garbage: no live link or revision names it (stale reverse
    /// records are removed on the way) and it is older than `threshold`.
    async fn blob_garbage(&self, d: &Digest, threshold: SystemTime) -> Result<Option<u64>> {
        let storage = self.core.storage();
        for (prefix, is_link) in [(keys::blob_repositories(d), true), (keys::manifest_repositories(d), false)]
        {
            for key in storage.list_meta(&prefix).await? {
                let Ok(repo) = key[prefix.len()..].parse::<Repository>() else { continue };
                let live = if is_link {
                    self.core.blob_linked(&repo, d).await?
                } else {
                    self.core.holds_manifest(&repo, d).await?
                };
                if live && !self.would_go.contains(&(repo.clone(), d.clone())) {
                    return Ok(None);
                }
                if !self.options.dry_run {
                    storage.remove_meta(&key).await?;
                }
            }
        }
        match storage.modified(d).await? {
            Some(at) if at <= threshold => Ok(storage.stat(d).await?.map(|i| i.size)),
            _ => Ok(None),
        }
    }
}

impl Plan {
    /// Adds what this plan removes (or, dry, would) to the report.
    fn report(&self, repo: &Repository, report: &mut GcReport) {
        report.tags.extend(self.tags.iter().map(|(tag, digest)| RemovedTag {
            repository: repo.to_string(),
            tag: tag.clone(),
            digest: digest.to_string(),
        }));
        report.manifests.extend(
            self.revisions
                .keys()
                .map(|d| RemovedManifest { repository: repo.to_string(), digest: d.to_string() }),
        );
        report.links += self.links.len();
    }

    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.revisions.is_empty() && self.links.is_empty()
    }
}

/// The invariants of the lifecycle's parsers (for `fuzzing::lifecycle`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_parsers(data: &[u8]) {
    let _ = TagRecord::decode(data);
    let _ = LinkRecord::decode(data);
    let text = String::from_utf8_lossy(data);
    let _ = crate::units::parse_size(&text);
    let _ = crate::units::parse_duration(&text);
    let _ = crate::units::parse_grace(&text);
    let _ = crate::units::parse_interval(&text);
    let _ = parse_digest_key(&text);
    // A glob against a text: the first line is the pattern, the rest the text.
    let (pattern, subject) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = retention::glob(pattern, subject);
    if !pattern.contains('*') {
        assert!(retention::glob(pattern, pattern), "a plain glob matches itself");
    }
    assert!(retention::glob("*", subject), "`*` matches anything");
    // Records the registry writes read back the same.
    let digest = Digest::sha256(data);
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let record = TagRecord::decode(&TagRecord::encode(&digest, data.len() as u64, media_type))
        .expect("a written record reads");
    assert_eq!(record.digest, digest);
    let link = LinkRecord::decode(format!("{} 17", data.len()).as_bytes());
    assert_eq!((link.size, link.linked), (Some(data.len() as u64), 17));
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn lifecycle_parsers_hold_their_invariants(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            crate::fuzzing::lifecycle(&data);
        }

        #[test]
        fn globs_match_what_they_describe(prefix in "[a-z0-9.]{0,6}", rest in "[a-z0-9.-]{0,8}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            proptest::prop_assert!(super::retention::glob(&pattern, &text));
        }
    }
}
