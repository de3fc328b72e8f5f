//! Quotas (`[[quota]]`): the bytes of the unique blobs and manifests linked in the
//! repositories a pattern matches. A push that would go over is refused with `DENIED`, its
//! bytes not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wharf_auth::Pattern;
use wharf_types::{Digest, Repository};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::registry::Core;
use crate::registry::keys::{self, LinkRecord, Revision};

/// How long a usage computed from storage is trusted (this process's own pushes are added as
/// they happen; other processes' are seen after this long).
const FRESH: Duration = Duration::from_secs(10);

/// A `[[quota]]` table.
///
/// ```toml
/// [[quota]]
/// name = "team-a"               # optional; the first pattern otherwise
/// repositories = ["team-a/**"]
/// max_bytes = "10GiB"           # or a number of bytes; kB, MB, GB, TB, KiB, MiB, GiB, TiB
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// A name for reports and metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// The limit: bytes, or a string with a unit (`10GiB`, `500MB`).
    pub max_bytes: crate::units::ByteSize,
}

/// A parsed quota.
#[derive(Clone, Debug)]
pub(crate) struct Quota {
    name: String,
    patterns: Vec<Pattern>,
    sources: Vec<String>,
    limit: u64,
}

/// The usage of one quota: the size of each unique digest under it.
#[derive(Clone, Debug, Default)]
struct Usage {
    sizes: HashMap<Digest, u64>,
    total: u64,
}

impl Usage {
    fn add(&mut self, digest: &Digest, size: u64) {
        if self.sizes.insert(digest.clone(), size).is_none() {
            self.total += size;
        }
    }
}

/// A quota and its usage, as the `_wharf` API shows them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QuotaUsage {
    /// Its name.
    pub name: String,
    /// Its repository patterns.
    pub repositories: Vec<String>,
    /// The limit in bytes.
    pub limit_bytes: u64,
    /// The bytes of unique blobs and manifests under it.
    pub usage_bytes: u64,
}

/// Every quota of a registry, with usages cached per process.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    quotas: Vec<Quota>,
    usage: Mutex<HashMap<String, (Instant, Usage)>>,
}

impl Clone for Quotas {
    fn clone(&self) -> Self {
        Self { quotas: self.quotas.clone(), usage: Mutex::default() }
    }
}

impl Quotas {
    pub(crate) fn from_config(configs: &[QuotaConfig]) -> std::result::Result<Self, String> {
        let mut quotas = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let bad = |e: String| format!("[[quota]] #{}: {e}", i + 1);
            let patterns = Pattern::parse_list(&c.repositories).map_err(bad)?;
            let limit = c.max_bytes.0;
            let name = c.name.clone().unwrap_or_else(|| c.repositories[0].clone());
            quotas.push(Quota { name, patterns, sources: c.repositories.clone(), limit });
        }
        Ok(Self { quotas, usage: Mutex::default() })
    }

    fn applying(&self, repo: &Repository) -> impl Iterator<Item = &Quota> {
        self.quotas.iter().filter(move |q| q.patterns.iter().any(|p| p.matches(repo.as_str())))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.quotas.is_empty()
    }
}

impl Quotas {
    /// The usage of `quota`: from this process's cache while fresh, else from storage.
    async fn usage_of(&self, core: &Core, quota: &Quota) -> Result<Usage> {
        if let Some((at, usage)) = self.usage.lock().expect("lock").get(&quota.name)
            && at.elapsed() < FRESH
        {
            return Ok(usage.clone());
        }
        let mut usage = Usage::default();
        let storage = core.storage();
        for key in storage.list_meta(keys::CATALOG).await? {
            let Ok(repo) = key[keys::CATALOG.len()..].parse::<Repository>() else { continue };
            if !quota.patterns.iter().any(|p| p.matches(repo.as_str())) {
                continue;
            }
            for (kind, prefix) in [(true, keys::layers(&repo)), (false, keys::revisions(&repo))] {
                for key in storage.list_meta(&prefix).await? {
                    let Some(digest) = keys::parse_digest_key(&key[prefix.len()..]) else { continue };
                    if usage.sizes.contains_key(&digest) {
                        continue;
                    }
                    let Some(record) = storage.get_meta(&key).await? else { continue };
                    let size = if kind {
                        LinkRecord::decode(&record).size
                    } else {
                        serde_json::from_slice::<Revision>(&record).ok().map(|r| r.size)
                    };
                    usage.add(&digest, size.unwrap_or(0));
                }
            }
        }
        self.usage.lock().expect("lock").insert(quota.name.clone(), (Instant::now(), usage.clone()));
        Ok(usage)
    }

    /// Refuses (`DENIED`, with usage and limit) when adding `digest` of `size` bytes to the
    /// repository would take a quota over its limit; a digest already counted adds nothing.
    pub(crate) async fn check(
        &self,
        core: &Core,
        repo: &Repository,
        digest: Option<&Digest>,
        size: u64,
    ) -> Result<()> {
        for quota in self.applying(repo) {
            let usage = self.usage_of(core, quota).await?;
            if digest.is_some_and(|d| usage.sizes.contains_key(d)) {
                continue;
            }
            if usage.total.saturating_add(size) > quota.limit {
                return Err(Error::Denied {
                    message: format!(
                        "quota `{}` exceeded: {} bytes used of {}, this push adds {size}",
                        quota.name, usage.total, quota.limit
                    ),
                    challenge: None,
                });
            }
        }
        Ok(())
    }

    /// The bytes the repository may still take under every quota that applies (`None`: no
    /// quota applies).
    pub(crate) async fn room(&self, core: &Core, repo: &Repository) -> Result<Option<u64>> {
        let mut room: Option<u64> = None;
        for quota in self.applying(repo) {
            let usage = self.usage_of(core, quota).await?;
            let left = quota.limit.saturating_sub(usage.total);
            room = Some(room.map_or(left, |r| r.min(left)));
        }
        Ok(room)
    }

    /// Counts a digest this process linked, in the cached usages.
    pub(crate) fn added(&self, repo: &Repository, digest: &Digest, size: u64) {
        if self.is_empty() {
            return;
        }
        let mut usage = self.usage.lock().expect("lock");
        for quota in self.applying(repo) {
            if let Some((_, u)) = usage.get_mut(&quota.name) {
                u.add(digest, size);
            }
        }
    }

    /// Sets every quota's usage (as cached) in the metrics.
    pub(crate) async fn set_metrics(&self, core: &Core, metrics: &Metrics) -> Result<()> {
        for quota in &self.quotas {
            let usage = self.usage_of(core, quota).await?;
            metrics.quota(&quota.name, usage.total, quota.limit);
        }
        Ok(())
    }

    /// Every quota with its usage (read fresh), also set in the metrics.
    pub(crate) async fn usages(&self, core: &Core, metrics: &Metrics) -> Result<Vec<QuotaUsage>> {
        let mut out = Vec::new();
        for quota in &self.quotas {
            self.usage.lock().expect("lock").remove(&quota.name);
            let usage = self.usage_of(core, quota).await?;
            metrics.quota(&quota.name, usage.total, quota.limit);
            out.push(QuotaUsage {
                name: quota.name.clone(),
                repositories: quota.sources.clone(),
                limit_bytes: quota.limit,
                usage_bytes: usage.total,
            });
        }
        Ok(out)
    }
}
