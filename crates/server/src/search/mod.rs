//! Search over the registry's Wasm artifacts (`GET /v2/_wharf/search`): by imported or
//! exported interface, WASI version, module or component, layout, source language, and free
//! text over repository names, tags and annotations; under trust policies, by who signed it
//! (`signedBy=`) and whether a signature verified (`verified=`).
//!
//! The index is built from the artifact and tag records (the records stay the truth) and kept
//! in memory: a query reads no record but one stamp per process, so it stays fast as the
//! registry grows. This process updates it as it writes; another process sharing the backend
//! bumps its own stamp `search/stamps/<process>` with every change, and a query that sees a
//! stamp it does not know reloads the index from the records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Deserialize as _;
use serde_json::Value;
use wharf_store::Write;

use crate::api::{InspectionStatus, SearchHit, TrustSummary};
use crate::clock::now_secs;
use crate::error::{Error, Result};
use crate::registry::{Core, keys};
use crate::text::{LINK_QUERY, percent_encode};
use wharf_auth::signature::Signer;

/// One artifact as the index holds it.
#[derive(Clone, Debug)]
struct Doc {
    tags: BTreeSet<String>,
    /// `module`, `component` or `wit-package`, once inspected.
    kind: Option<String>,
    /// The packages it uses (`acme:greeter@0.1.0`).
    dependencies: Vec<String>,
    /// Lower-case source languages.
    languages: Vec<String>,
    imports: Vec<String>,
    exports: Vec<String>,
    /// Lower-case annotations (keys and values), artifact type and media type.
    text: String,
    /// What a result shows (its layout, format and WASI version are matched too).
    summary: SearchHit,
    /// Its recorded signatures: the trust fingerprint they were verified under, and the signers
    /// that verified.
    signers: Option<(String, Vec<Signer>)>,
}

impl Doc {
    /// With its signatures' summary.
    fn set_trust(&mut self, summary: &TrustSummary) {
        let signers = summary.signatures.iter().filter(|r| r.verified).filter_map(|r| r.signer.clone());
        self.signers = Some((summary.fingerprint.clone(), signers.collect()));
    }

    /// Its verified signers under the trust material of `fingerprint`.
    fn signers(&self, fingerprint: &str) -> &[Signer] {
        match &self.signers {
            Some((f, signers)) if f == fingerprint => signers,
            _ => &[],
        }
    }

    /// From an artifact record (`None` for what is not Wasm).
    fn from_record(record: &Value) -> Option<Self> {
        if record["wasm"] != true {
            return None;
        }
        let module = &record["module"];
        let world = &module["world"];
        let package = &module["package"];
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        // A component's world when decoded, else the top-level import/export names (for a
        // core module, imports as `module::name` and the module name alone).
        // A WIT package exports (provides) the interfaces it defines.
        let (imports, exports) = if package.is_object() {
            (Vec::new(), names(&package["interfaces"]))
        } else if world.is_object() {
            (names(&world["imports"]), names(&world["exports"]))
        } else {
            let mut imports = Vec::new();
            for i in module["imports"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let (m, n) =
                    (i["module"].as_str().unwrap_or_default(), i["name"].as_str().unwrap_or_default());
                if m.is_empty() {
                    imports.push(n.to_owned());
                } else if !imports.iter().any(|x| x == m) {
                    imports.push(m.to_owned());
                }
            }
            (imports, names(&module["exports"]))
        };
        let languages = module["producers"]["language"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["name"].as_str().map(str::to_ascii_lowercase)).collect())
            .unwrap_or_default();
        let mut text = String::new();
        if let Some(annotations) = record["annotations"].as_object() {
            for (k, v) in annotations {
                text.push_str(&k.to_lowercase());
                text.push(' ');
                text.push_str(&v.as_str().unwrap_or_default().to_lowercase());
                text.push('\n');
            }
        }
        for field in ["artifactType", "mediaType"] {
            text.push_str(&record[field].as_str().unwrap_or_default().to_lowercase());
            text.push('\n');
        }
        let dependencies: Vec<String> = [&world["dependencies"], &package["dependencies"]]
            .iter()
            .flat_map(|d| d.as_array().map(Vec::as_slice).unwrap_or_default())
            .filter_map(|d| {
                let name = d["package"].as_str()?;
                Some(d["version"].as_str().map_or_else(|| name.to_owned(), |v| format!("{name}@{v}")))
            })
            .collect();
        let content = module["content"].as_str().or_else(|| module["header"]["kind"].as_str());
        Some(Self {
            tags: BTreeSet::new(),
            kind: content.map(|k| match k {
                "component" | "wit-package" => k.to_owned(),
                _ => "module".to_owned(),
            }),
            summary: SearchHit {
                repository: String::new(),
                digest: record["digest"].as_str()?.parse().ok()?,
                tags: Vec::new(),
                media_type: record["mediaType"].as_str()?.parse().ok()?,
                artifact_type: record["artifactType"].as_str().and_then(|t| t.parse().ok()),
                kind: text_of(&record["kind"]),
                format: text_of(&record["format"]),
                size: record["size"].as_u64().unwrap_or_default(),
                pushed_at: record["pushedAt"].as_str().map(str::to_owned),
                inspection: InspectionStatus::deserialize(&record["inspection"]["status"])
                    .unwrap_or_default(),
                binary_kind: content.map(str::to_owned),
                wasi_version: module["wasiVersion"].as_str().map(str::to_owned),
                imports: if package.is_object() { Vec::new() } else { imports_of(module, world) },
                exports: exports.clone(),
                languages: module["producers"]["language"].clone(),
                dependencies: dependencies.clone(),
                signed_by: Vec::new(),
            },
            signers: None,
            dependencies,
            languages,
            imports,
            exports,
            text,
        })
    }
}

fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn imports_of(module: &Value, world: &Value) -> Vec<String> {
    let source = if world.is_object() { &world["imports"] } else { &module["imports"] };
    let mut out: Vec<String> = Vec::new();
    for i in source.as_array().map(Vec::as_slice).unwrap_or_default() {
        let name = match i["module"].as_str() {
            Some(m) if !m.is_empty() => m.to_owned(),
            _ => i["name"].as_str().unwrap_or_default().to_owned(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A search's filters (all must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// An imported interface (`wasi:http/outgoing-handler`, `wasi:http/*`, or a core module
    /// name such as `wasi_snapshot_preview1`).
    pub import: Option<String>,
    /// An exported interface or function.
    pub export: Option<String>,
    /// A WASI version: `preview1`, `unstable`, or a version prefix (`0.2`).
    pub wasi: Option<String>,
    /// `module`, `component` or `wit-package`.
    pub kind: Option<String>,
    /// A package used (`acme:greeter`, any version; `acme:greeter@0.1.0`; `acme:*`): which
    /// components and WIT packages depend on it.
    pub depends: Option<String>,
    /// A layout: its format id (`F2`) or name (`compat-annotated`, `cncf-artifact`).
    pub layout: Option<String>,
    /// A source language from the producers section (`Rust`, case-insensitive).
    pub language: Option<String>,
    /// Words that must all appear in the repository name, a tag, or an annotation.
    pub text: Option<String>,
    /// A signer whose signature verified: an identity's subject (`ci@example.com`,
    /// `*@example.com`) or a key's id (`sha256:…`).
    pub signed_by: Option<String>,
    /// Whether some signature verified (`true`) or none did (`false`).
    pub verified: Option<bool>,
}

impl Query {
    /// From the query string's pairs; unknown parameters (other than `n` and `last`) are
    /// refused.
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Result<Self> {
        let mut q = Self::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "import" => &mut q.import,
                "export" => &mut q.export,
                "wasi" => &mut q.wasi,
                "kind" => &mut q.kind,
                "depends" => &mut q.depends,
                "layout" => &mut q.layout,
                "language" => &mut q.language,
                "q" => &mut q.text,
                "signedBy" => &mut q.signed_by,
                "verified" => {
                    q.verified = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(Error::ParameterInvalid("`verified` is `true` or `false`".into())),
                    });
                    continue;
                }
                "n" | "last" => continue,
                other => {
                    return Err(Error::ParameterInvalid(format!(
                        "unknown search parameter `{}` (import, export, wasi, kind, depends, layout, language, q, signedBy, verified, n, last)",
                        crate::text::printable(other, 64)
                    )));
                }
            };
            if value.is_empty() || value.len() > 512 {
                return Err(Error::ParameterInvalid(format!("`{key}` must be 1 to 512 characters")));
            }
            *slot = Some(value.clone());
        }
        if let Some(kind) = &q.kind
            && kind != "module"
            && kind != "component"
            && kind != "wit-package"
        {
            return Err(Error::ParameterInvalid("`kind` is `module`, `component` or `wit-package`".into()));
        }
        Ok(q)
    }

    /// The query string of these filters (for `Link`).
    fn to_query_string(&self) -> String {
        let pairs = [
            ("import", &self.import),
            ("export", &self.export),
            ("wasi", &self.wasi),
            ("kind", &self.kind),
            ("depends", &self.depends),
            ("layout", &self.layout),
            ("language", &self.language),
            ("q", &self.text),
            ("signedBy", &self.signed_by),
        ];
        let verified = self.verified.map(|v| format!("verified={v}"));
        pairs
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v, LINK_QUERY))))
            .chain(verified)
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Whether `doc` in `repo` matches (`fingerprint`: the trust material in force).
    fn matches(&self, repo: &str, doc: &Doc, fingerprint: &str) -> bool {
        use wharf_wasm::wit::interface_matches;
        let any = |list: &[String], pattern: &str| list.iter().any(|n| interface_matches(n, pattern));
        let signers = doc.signers(fingerprint);
        self.verified.is_none_or(|v| v != signers.is_empty())
            && self.signed_by.as_deref().is_none_or(|p| {
                signers.iter().any(|s| match s {
                    Signer::Identity { subject, .. } => wharf_auth::glob(p.as_bytes(), subject.as_bytes()),
                    Signer::Key { key } => wharf_auth::glob(p.as_bytes(), key.as_bytes()),
                })
            })
            && self.import.as_deref().is_none_or(|p| any(&doc.imports, p))
            && self.export.as_deref().is_none_or(|p| any(&doc.exports, p))
            && self.wasi.as_deref().is_none_or(|w| {
                doc.summary.wasi_version.as_deref().is_some_and(|v| crate::wasm_policy::wasi_allows(w, v))
            })
            && self.kind.as_deref().is_none_or(|k| doc.kind.as_deref() == Some(k))
            && self.depends.as_deref().is_none_or(|p| any(&doc.dependencies, p))
            && self
                .layout
                .as_deref()
                .is_none_or(|l| doc.summary.kind == l || doc.summary.format.eq_ignore_ascii_case(l))
            && self
                .language
                .as_deref()
                .is_none_or(|l| doc.languages.iter().any(|x| x.eq_ignore_ascii_case(l)))
            && self.text.as_deref().is_none_or(|t| {
                t.split_whitespace().all(|word| {
                    let word = word.to_lowercase();
                    repo.to_lowercase().contains(&word)
                        || doc.tags.iter().any(|tag| tag.to_lowercase().contains(&word))
                        || doc.text.contains(&word)
                })
            })
    }
}

/// The index: every Wasm artifact by (repository, digest).
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    state: Mutex<State>,
    /// This process's stamp key.
    me: String,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    docs: BTreeMap<(String, String), Doc>,
    /// The stamps of other processes seen at the last load.
    stamps: HashMap<String, Vec<u8>>,
    /// This process's change counter.
    counter: u64,
    /// The trust material in force (under trust policies): signatures verified under other
    /// material count for nothing.
    fingerprint: Option<String>,
}

impl SearchIndex {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::default(), me: keys::search_stamp(&uuid::Uuid::new_v4().simple().to_string()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The write that tells other processes this one changed the index: `<counter> <unix
    /// seconds>`.
    pub(crate) fn stamp_write(&self) -> Write {
        let mut state = self.lock();
        state.counter += 1;
        Write::Set { key: self.me.clone(), value: format!("{} {}", state.counter, now_secs()).into() }
    }

    /// A manifest's record was written (pushed, or inspected), with `tags` now its own in `repo`.
    pub(crate) fn upsert(&self, repo: &str, record: &Value, tags: &[String]) {
        let mut state = self.lock();
        if !state.loaded {
            return;
        }
        let digest = record["digest"].as_str().unwrap_or_default().to_owned();
        if !tags.is_empty() {
            for ((r, _), doc) in state.docs.range_mut((repo.to_owned(), String::new())..) {
                if r != repo {
                    break;
                }
                doc.tags.retain(|t| !tags.contains(t));
            }
        }
        let key = (repo.to_owned(), digest);
        let Some(mut doc) = Doc::from_record(record) else {
            state.docs.remove(&key);
            return;
        };
        if let Some(old) = state.docs.get(&key) {
            doc.tags.clone_from(&old.tags);
            doc.signers.clone_from(&old.signers);
        }
        doc.tags.extend(tags.iter().cloned());
        state.docs.insert(key, doc);
    }

    /// Trust policies are in force, with trust material `fingerprint`: signatures are read.
    pub(crate) fn trust_in_force(&self, fingerprint: &str) {
        let mut state = self.lock();
        state.fingerprint = Some(fingerprint.to_owned());
        state.loaded = false;
    }

    /// The signatures over a manifest were verified.
    pub(crate) fn set_trust(&self, repo: &str, digest: &str, summary: &TrustSummary) {
        if let Some(doc) = self.lock().docs.get_mut(&(repo.to_owned(), digest.to_owned())) {
            doc.set_trust(summary);
        }
    }

    /// A manifest was deleted.
    pub(crate) fn remove(&self, repo: &str, digest: &str) {
        self.lock().docs.remove(&(repo.to_owned(), digest.to_owned()));
    }

    /// A tag was deleted.
    pub(crate) fn untag(&self, repo: &str, tag: &str) {
        let mut state = self.lock();
        for ((r, _), doc) in state.docs.range_mut((repo.to_owned(), String::new())..) {
            if r != repo {
                break;
            }
            doc.tags.remove(tag);
        }
    }
}

impl SearchIndex {
    /// Wasm artifacts matching `query` in the repositories `visible` accepts, sorted by
    /// repository then digest, after `last` (`<repository>@<digest>`), at most `n`; and
    /// whether more follow.
    pub(crate) async fn search(
        &self,
        core: &Core,
        query: &Query,
        n: Option<usize>,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<SearchHit>, bool)> {
        self.fresh(core).await?;
        let after = match last {
            Some(l) => {
                let (repo, digest) = l
                    .split_once('@')
                    .ok_or_else(|| Error::ParameterInvalid("`last` is `<repository>@<digest>`".into()))?;
                Some((repo.to_owned(), digest.to_owned()))
            }
            None => None,
        };
        let limit = n.unwrap_or(usize::MAX);
        let state = self.lock();
        let range = match &after {
            Some(key) => {
                state.docs.range((std::ops::Bound::Excluded(key.clone()), std::ops::Bound::Unbounded))
            }
            None => state.docs.range::<(String, String), _>(..),
        };
        let mut out = Vec::new();
        let mut more = false;
        let fingerprint = state.fingerprint.as_deref().unwrap_or_default();
        for ((repo, _), doc) in range {
            if !query.matches(repo, doc, fingerprint) || !visible(repo) {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            let mut hit = doc.summary.clone();
            hit.repository.clone_from(repo);
            hit.tags = doc.tags.iter().cloned().collect();
            hit.signed_by = doc.signers(fingerprint).iter().map(ToString::to_string).collect();
            out.push(hit);
        }
        Ok((out, more))
    }

    /// Loads the index on first use, and again when another process changed it.
    async fn fresh(&self, core: &Core) -> Result<()> {
        let index = self;
        let mut stamps = HashMap::new();
        for key in core.storage().list_meta(keys::SEARCH_STAMPS).await? {
            if key == index.me {
                continue;
            }
            let Some(value) = core.storage().get_meta(&key).await? else { continue };
            // A stamp unchanged for a day is a process long gone (or idle): it is removed, so
            // the stamps read per query do not pile up with every restart. An idle process
            // that writes again writes it anew.
            let written =
                std::str::from_utf8(&value).ok().and_then(|v| v.split_once(' ')?.1.parse::<u64>().ok());
            if written.is_none_or(|t| t + STAMP_MAX_AGE < now_secs()) {
                core.storage().remove_meta(&key).await?;
                continue;
            }
            stamps.insert(key, value.to_vec());
        }
        let (before, trusted) = {
            let state = index.lock();
            if state.loaded && state.stamps == stamps {
                return Ok(());
            }
            (state.counter, state.fingerprint.is_some())
        };
        let mut docs = BTreeMap::new();
        for name in core.catalog(None, None).await?.names {
            let Ok(repo) = name.parse::<wharf_types::Repository>() else { continue };
            let tags = core.tags_by_digest(&repo).await?;
            for record in core.artifact_records(&repo).await? {
                let Some(mut doc) = Doc::from_record(&record) else { continue };
                let digest = record["digest"].as_str().unwrap_or_default().to_owned();
                doc.tags = tags.iter().filter(|(d, _)| *d == digest).map(|(_, t)| t.clone()).collect();
                if trusted && let Some(summary) = core.trust_summary(&repo, &doc.summary.digest).await? {
                    doc.set_trust(&summary);
                }
                docs.insert((name.clone(), digest), doc);
            }
        }
        let mut state = index.lock();
        state.docs = docs;
        state.stamps = stamps;
        // A change this process made while the records were read may be missing: load again
        // at the next query.
        state.loaded = state.counter == before;
        Ok(())
    }
}

/// How long another process's stamp counts (a day).
const STAMP_MAX_AGE: u64 = 24 * 3600;

/// The `Link` of the next page.
pub(crate) fn next_link(query: &Query, n: usize, last: &SearchHit) -> String {
    let last = format!("{}@{}", last.repository, last.digest);
    let filters = query.to_query_string();
    let sep = if filters.is_empty() { "" } else { "&" };
    format!(
        "</v2/_wharf/search?{filters}{sep}n={n}&last={}>; rel=\"next\"",
        percent_encode(&last, LINK_QUERY)
    )
}
