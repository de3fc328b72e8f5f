//! Versions that mean something: `[[versioning]]` rules per repository pattern, checked before
//! a manifest PUT is acknowledged (a refused push stores nothing) and before a delete.
//!
//! - `immutable_tags`: tags matching these globs (`semver` for every semantic version) keep
//!   the manifest they were first pushed with: a push of other content under one, a delete of
//!   one, or a delete of the manifest one names is `403 DENIED` naming the rule. Pushing the
//!   same manifest again is allowed (clients retry).
//! - `semver_only`: every tag must be a semantic version (`_` for the `+` of build metadata).
//! - `compatible`: a version whose WIT breaks the newest earlier version of its `^` series, or
//!   that the next later version already published would break, is refused with what broke
//!   (`wharf_wasm::wit::compatible`: `wkg publish`'s own check, `X.*`, `0.Y.*`, `0.0.Z`).
//!   With it (or `semver_only`), a WIT package whose declared name or version disagrees with
//!   the repository and tag it is pushed to is refused too.
//!
//! Two pushes of one new immutable tag at the same instant both pass the check (records are
//! last-writer-wins); the second overwrites the first, as in Harbor.

use std::sync::Arc;

use serde_json::Value;
use wharf_auth::Pattern;
use wharf_types::{Digest, Manifest, MediaType, Repository, Tag, TagOrDigest};

use super::{PackageVersion, Packages};
use crate::classify::Classifier;
use crate::error::{Error, Result};
use crate::registry::Core;

/// One `[[versioning]]` table.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VersioningConfig {
    /// A name for messages [default: `versioning[<n>]`].
    pub name: Option<String>,
    /// Repository patterns (`*` within a component, `**` any depth), as `[[access]]`.
    pub repositories: Vec<String>,
    /// Tags that never move once pushed: globs (`*` any run of characters), `semver` for
    /// every semantic version.
    #[serde(default)]
    pub immutable_tags: Vec<String>,
    /// Only semantic versions as tags [default: false].
    #[serde(default)]
    pub semver_only: bool,
    /// A new version must not break its `^` series' WIT [default: false].
    #[serde(default)]
    pub compatible: bool,
}

/// A checked rule.
#[derive(Clone, Debug)]
struct Rule {
    name: String,
    patterns: Vec<Pattern>,
    immutable: Vec<String>,
    semver_only: bool,
    compatible: bool,
}

impl Rule {
    fn immutable(&self, tag: &str) -> bool {
        self.immutable.iter().any(|g| {
            if g == "semver" {
                PackageVersion::of_tag(tag).is_some()
            } else {
                crate::lifecycle::retention::glob(g, tag)
            }
        })
    }
}

/// Every `[[versioning]]` rule, with the package mapping they read names by.
#[derive(Clone, Debug, Default)]
pub struct Versioning {
    rules: Vec<Rule>,
    packages: Arc<Packages>,
}

impl Versioning {
    /// Checks the tables (patterns, names).
    pub fn from_config(tables: &[VersioningConfig], packages: Packages) -> Result<Self> {
        let mut rules = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let name = t.name.clone().unwrap_or_else(|| format!("versioning[{i}]"));
            let bad = |what: String| Error::BadRequest(format!("{name}: {what}"));
            let patterns = Pattern::parse_list(&t.repositories).map_err(bad)?;
            if let Some(g) = t.immutable_tags.iter().find(|g| g.is_empty()) {
                return Err(bad(format!("`immutable_tags` entry `{g}` is empty")));
            }
            rules.push(Rule {
                name,
                patterns,
                immutable: t.immutable_tags.clone(),
                semver_only: t.semver_only,
                compatible: t.compatible,
            });
        }
        Ok(Self { rules, packages: Arc::new(packages) })
    }

    /// The package mapping.
    pub fn packages(&self) -> &Packages {
        &self.packages
    }

    fn matching<'a>(&'a self, repo: &'a Repository) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.patterns.iter().any(|p| p.matches(repo.as_str())))
    }

    /// Whether a rule makes `tag` of `repo` immutable (retention leaves it, too).
    pub(crate) fn immutable(&self, repo: &Repository, tag: &str) -> bool {
        self.matching(repo).any(|r| r.immutable(tag))
    }

    /// Whether a push into `repo` must have its modules read before it is acknowledged.
    pub(crate) fn needs_modules(&self, repo: &Repository) -> bool {
        self.matching(repo).any(|r| r.compatible || r.semver_only)
    }

    /// Before a manifest PUT of `digest` under `tags`: semver-only and immutable tags.
    pub(crate) async fn check_tags(
        &self,
        core: &Core,
        repo: &Repository,
        tags: &[Tag],
        digest: &Digest,
    ) -> Result<()> {
        for rule in self.matching(repo) {
            for tag in tags {
                if rule.semver_only && PackageVersion::of_tag(tag.as_str()).is_none() {
                    return Err(denied(format!(
                        "versioning rule {} (semver_only): tag `{tag}` is not a semantic version \
                         (MAJOR.MINOR.PATCH, with `_` for the `+` of build metadata: 1.0.0_build.5)",
                        rule.name
                    )));
                }
                if rule.immutable(tag.as_str())
                    && let Some(existing) = tag_digest(core, repo, tag).await?
                    && &existing != digest
                {
                    return Err(denied(format!(
                        "versioning rule {} (immutable_tags): tag `{tag}` is immutable and names {existing}; \
                         push a new version instead",
                        rule.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Before a delete: an immutable tag, or a manifest one names, stays.
    pub(crate) async fn check_delete(
        &self,
        core: &Core,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<()> {
        let rules: Vec<&Rule> = self.matching(repo).filter(|r| !r.immutable.is_empty()).collect();
        if rules.is_empty() {
            return Ok(());
        }
        match reference {
            TagOrDigest::Tag(tag) => {
                if let Some(rule) = rules.iter().find(|r| r.immutable(tag.as_str())) {
                    return Err(denied(format!(
                        "versioning rule {} (immutable_tags): tag `{tag}` is immutable and cannot be deleted",
                        rule.name
                    )));
                }
            }
            TagOrDigest::Digest(digest) => {
                for (d, tag) in core.tags_by_digest(repo).await? {
                    if d == digest.as_str()
                        && let Some(rule) = rules.iter().find(|r| r.immutable(&tag))
                    {
                        return Err(denied(format!(
                            "versioning rule {} (immutable_tags): the manifest is named by the immutable tag `{tag}` \
                             and cannot be deleted",
                            rule.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// After classification (the record holds the decoded modules where a rule needed them):
    /// a WIT package's declared name and version against the repository and tags, and the
    /// version's WIT against its neighbours in its `^` series.
    pub(crate) async fn check_package(
        &self,
        classifier: &Classifier,
        repo: &Repository,
        manifest: &Manifest,
        tags: &[Tag],
        record: &Value,
    ) -> Result<()> {
        let Some(rule) = self.matching(repo).find(|r| r.compatible || r.semver_only) else { return Ok(()) };
        let module = &record["module"];
        if let (Some(expected), Some(declared)) =
            (self.packages.package(repo), module["package"]["name"].as_str())
            && declared != expected.to_string()
        {
            return Err(Error::ManifestInvalid(format!(
                "versioning rule {}: this WIT package declares itself `{declared}`, but {repo} holds the package `{expected}`",
                rule.name
            )));
        }
        if let Some(declared) = module["package"]["version"].as_str() {
            for tag in tags {
                if let Some(v) = PackageVersion::of_tag(tag.as_str())
                    && v.to_string() != declared
                {
                    return Err(Error::ManifestInvalid(format!(
                        "versioning rule {}: this WIT package declares version {declared}, but is pushed as {v} (tag `{tag}`)",
                        rule.name
                    )));
                }
            }
        }
        let Some(rule) = self.matching(repo).find(|r| r.compatible) else { return Ok(()) };
        let content = module["content"].as_str().unwrap_or_default();
        if content != "component" && content != "wit-package" {
            return Ok(());
        }
        let versions: Vec<PackageVersion> =
            tags.iter().filter_map(|t| PackageVersion::of_tag(t.as_str())).collect();
        if versions.is_empty() {
            return Ok(());
        }
        let Some(candidate) = classifier.raw_wasm(repo, manifest).await? else { return Ok(()) };
        let published = published_versions(classifier.core(), repo).await?;
        let what = self.packages.package(repo).map_or_else(|| repo.to_string(), |p| p.to_string());
        for version in &versions {
            let in_series = published.iter().filter(|(v, _)| v.same_series(version) && v != version);
            let lower = in_series
                .clone()
                .filter(|(v, _)| v.cmp_version(version).is_lt())
                .max_by(|a, b| a.0.cmp_version(&b.0));
            let higher = in_series
                .filter(|(v, _)| v.cmp_version(version).is_gt())
                .min_by(|a, b| a.0.cmp_version(&b.0));
            for (neighbour, newer) in [(lower, true), (higher, false)] {
                let Some((v, tag)) = neighbour else { continue };
                let Some(bytes) = neighbour_wasm(classifier, repo, tag).await? else { continue };
                let (older, newer_bytes) =
                    if newer { (bytes, candidate.clone()) } else { (candidate.clone(), bytes) };
                let checked = classifier
                    .in_slot(repo, move || wharf_wasm::wit::compatible(&older, &newer_bytes))
                    .await?;
                match checked {
                    Ok(()) => {}
                    Err(wharf_wasm::Error::Incompatible { reason }) => {
                        let message = if newer {
                            format!(
                                "versioning rule {} (compatible): {what} {version} breaks {v}, the newest earlier version of its ^ range: {reason}",
                                rule.name
                            )
                        } else {
                            format!(
                                "versioning rule {} (compatible): {what} {v}, already published, would break {version}: {reason}",
                                rule.name
                            )
                        };
                        return Err(denied(message));
                    }
                    Err(e) if newer => {
                        // The candidate's own WIT cannot be read: what cannot be judged is not kept.
                        return Err(Error::ManifestInvalid(format!(
                            "versioning rule {} (compatible): the WIT of {what} {version} cannot be decoded to check it against {v}: {e}",
                            rule.name
                        )));
                    }
                    Err(e) => {
                        tracing::warn!(repository = %repo, version = %v, error = %e, "a published version's WIT cannot be decoded; not compared");
                    }
                }
            }
        }
        Ok(())
    }
}

fn denied(message: String) -> Error {
    Error::Denied { message, challenge: None }
}

/// The digest a tag names, if it exists.
async fn tag_digest(core: &Core, repo: &Repository, tag: &Tag) -> Result<Option<Digest>> {
    match core.head_manifest(repo, &TagOrDigest::Tag(tag.clone())).await {
        Ok((digest, _, _)) => Ok(Some(digest)),
        Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The repository's tags that are semantic versions.
pub(crate) async fn published_versions(
    core: &Core,
    repo: &Repository,
) -> Result<Vec<(PackageVersion, String)>> {
    Ok(core
        .tags_by_digest(repo)
        .await?
        .into_iter()
        .filter_map(|(_, tag)| PackageVersion::of_tag(&tag).map(|v| (v, tag)))
        .collect())
}

/// The Wasm of a published version (a single raw Wasm layer), if it has one.
async fn neighbour_wasm(
    classifier: &Classifier,
    repo: &Repository,
    tag: &str,
) -> Result<Option<bytes::Bytes>> {
    let Ok(tag) = tag.parse::<Tag>() else { return Ok(None) };
    let stored = match classifier.core().get_manifest(repo, &TagOrDigest::Tag(tag)).await {
        Ok(stored) => stored,
        Err(Error::ManifestUnknown(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let media_type = stored.media_type.parse::<MediaType>().ok();
    let Ok(manifest) = Manifest::from_bytes(stored.bytes, media_type.as_ref()) else { return Ok(None) };
    classifier.raw_wasm(repo, &manifest).await
}
