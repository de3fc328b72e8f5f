//! A package as users see it: its versions in semver order with what each holds, the packages
//! each uses (resolved to this registry where they are here), and who depends on it.

use std::collections::HashMap;

use serde_json::Value;
use wharf_types::{Repository, Tag, TagOrDigest};

use super::{PackageName, PackageVersion, Packages};
use crate::api::{DependencyInfo, Dependent, PackageVersionInfo, PackageVersions};
use crate::error::{Error, Result};
use crate::registry::{Core, keys};
use crate::search::{Query, SearchIndex};

/// The most dependents listed.
const MAX_DEPENDENTS: usize = 1000;

/// The versions of the package in `repo` (any repository: its semver tags), with the
/// dependents the caller may see.
pub(crate) async fn versions(
    core: &Core,
    search: &SearchIndex,
    packages: &Packages,
    repo: &Repository,
    visible: &(dyn Fn(&str) -> bool + Sync),
) -> Result<PackageVersions> {
    let tags = core.tags_by_digest(repo).await?;
    if tags.is_empty() && !core.repository_exists(repo).await? {
        return Err(Error::NameUnknown(repo.to_string()));
    }
    let yanked: std::collections::HashSet<String> = {
        let prefix = keys::yanks(repo);
        core.storage().list_meta(&prefix).await?.into_iter().map(|k| k[prefix.len()..].to_owned()).collect()
    };
    let mut versions: Vec<(PackageVersion, String, String)> = Vec::new();
    let mut other_tags = Vec::new();
    for (digest, tag) in tags {
        match PackageVersion::of_tag(&tag) {
            Some(v) => versions.push((v, tag, digest)),
            None => other_tags.push(tag),
        }
    }
    versions.sort_by(|a, b| a.0.cmp_version(&b.0));
    other_tags.sort();
    let mut provided: HashMap<(String, String), Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for (version, tag, digest) in versions {
        let Ok(digest) = digest.parse() else { continue };
        let record = core.artifact_record(repo, &digest).await?.unwrap_or(Value::Null);
        let module = &record["module"];
        let (world, package) = (&module["world"], &module["package"]);
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let (exports, imports) = if package.is_object() {
            (names(&package["interfaces"]), Vec::new())
        } else {
            (names(&world["exports"]), names(&world["imports"]))
        };
        let mut dependencies = Vec::new();
        for d in [&world["dependencies"], &package["dependencies"]]
            .into_iter()
            .flat_map(|d| d.as_array().map(Vec::as_slice).unwrap_or_default())
        {
            let Some(name) = d["package"].as_str() else { continue };
            let wanted = d["version"].as_str().map(str::to_owned);
            let (repository, provided_by) = match name.parse::<PackageName>() {
                Ok(p) => {
                    let there = packages.repository(&p);
                    let found = match &wanted {
                        Some(v) => {
                            let key = (there.to_string(), v.clone());
                            if let Some(found) = provided.get(&key) {
                                found.clone()
                            } else {
                                let found = provider(core, &there, v).await?;
                                provided.insert(key, found.clone());
                                found
                            }
                        }
                        None => None,
                    };
                    (
                        visible(there.as_str()).then(|| there.to_string()),
                        found.filter(|_| visible(there.as_str())),
                    )
                }
                Err(_) => (None, None),
            };
            dependencies.push(DependencyInfo {
                package: name.to_owned(),
                version: wanted,
                repository,
                provided_by,
            });
        }
        out.push(PackageVersionInfo {
            version: version.to_string(),
            yanked: yanked.contains(&tag),
            tag,
            digest,
            content: module["content"].as_str().map(str::to_owned),
            wasi_version: module["wasiVersion"].as_str().map(str::to_owned),
            exports,
            imports,
            size: record["size"].as_u64().unwrap_or_default(),
            pushed_at: record["pushedAt"].as_str().map(str::to_owned),
            dependencies,
        });
    }
    let package = packages.package(repo);
    let dependents = match &package {
        Some(p) => dependents(core, search, &p.to_string(), visible).await?,
        None => Vec::new(),
    }
    .into_iter()
    .map(|mut d| {
        d.package =
            d.repository.parse::<Repository>().ok().and_then(|r| packages.package(&r)).map(|p| p.to_string());
        d
    })
    .collect();
    Ok(PackageVersions {
        package: package.map(|p| p.to_string()),
        repository: repo.to_string(),
        versions: out,
        other_tags,
        dependents,
    })
}

/// The tag of `repo` holding `version` (`0.2.3`), if the registry has it.
async fn provider(core: &Core, repo: &Repository, version: &str) -> Result<Option<String>> {
    let Ok(tag) = version.parse::<PackageVersion>().map(|v| v.tag()) else { return Ok(None) };
    match core.head_manifest(repo, &TagOrDigest::Tag(Tag::clone(&tag))).await {
        Ok(_) => Ok(Some(tag.to_string())),
        Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The artifacts the caller may see that use `package` (any version).
async fn dependents(
    core: &Core,
    search: &SearchIndex,
    package: &str,
    visible: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Dependent>> {
    let query = Query { depends: Some(package.to_owned()), ..Query::default() };
    let (hits, _) = search.search(core, &query, Some(MAX_DEPENDENTS), None, visible).await?;
    Ok(hits
        .into_iter()
        .map(|h| {
            let uses = h.dependencies.iter().find_map(|d| {
                let (name, version) = d.split_once('@').unwrap_or((d, ""));
                (name == package && !version.is_empty()).then(|| version.to_owned())
            });
            Dependent { repository: h.repository, package: None, digest: h.digest, tags: h.tags, uses }
        })
        .collect())
}
