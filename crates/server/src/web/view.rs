//! What the pages show, as plain strings built from the records: the templates only lay them
//! out (and askama escapes every one of them).

use serde_json::Value;
use wharf_types::{Manifest, ManifestBody};

use crate::api::{ArtifactRecord, ArtifactSummary, SearchHit, TrustSummary};

/// Bytes for a person (`1.2 MiB`).
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1024u64.pow(u32::try_from(unit + 1).unwrap_or(4)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // Tenths of the unit, rounded, in integers.
    let scale = 1024u64.pow(u32::try_from(unit).unwrap_or(4));
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// An RFC 3339 time as `2026-11-27 21:20 UTC` (what it said, when it does not parse).
pub(crate) fn time(rfc3339: Option<&str>) -> String {
    let Some(text) = rfc3339 else { return String::new() };
    match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => text.to_owned(),
    }
}

/// `sha256:0123456789ab`.
pub(crate) fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.get(..12).unwrap_or(hex)),
        None => digest.to_owned(),
    }
}

/// A path of the web page for a repository (`/repositories/<name>`), with what follows.
pub(crate) fn repository_href(repository: &str) -> String {
    format!("/repositories/{repository}")
}

/// The path of an artifact's page.
pub(crate) fn artifact_href(repository: &str, digest: &str) -> String {
    format!("/repositories/{repository}/-/artifacts/{digest}")
}

/// The CSS class of a layout's badge.
pub(crate) fn badge(wasm: bool) -> &'static str {
    if wasm { "wasm" } else { "image" }
}

/// A JSON value as text: strings as they are, nothing for null.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A row of the repositories page.
pub(crate) struct RepositoryRow {
    pub(crate) name: String,
    pub(crate) href: String,
    pub(crate) artifacts: usize,
    pub(crate) wasm: usize,
    pub(crate) last_push: String,
    pub(crate) size: String,
}

impl RepositoryRow {
    pub(crate) fn new(name: String, artifacts: &[ArtifactSummary]) -> Self {
        let last = artifacts.iter().filter_map(|a| a.pushed_at.as_deref()).max();
        Self {
            href: repository_href(&name),
            name,
            artifacts: artifacts.len(),
            wasm: artifacts.iter().filter(|a| a.wasm).count(),
            last_push: time(last),
            size: size(artifacts.iter().map(|a| a.size).sum()),
        }
    }
}

/// A row of search results.
pub(crate) struct HitRow {
    pub(crate) repository: String,
    pub(crate) repository_href: String,
    pub(crate) tags: String,
    pub(crate) kind: String,
    pub(crate) badge_class: &'static str,
    pub(crate) binary_kind: String,
    pub(crate) wasi: String,
    pub(crate) short_digest: String,
    pub(crate) href: String,
}

impl From<&SearchHit> for HitRow {
    fn from(hit: &SearchHit) -> Self {
        Self {
            repository_href: repository_href(&hit.repository),
            href: artifact_href(&hit.repository, hit.digest.as_str()),
            repository: hit.repository.clone(),
            tags: hit.tags.join(", "),
            kind: hit.kind.clone(),
            badge_class: badge(true),
            binary_kind: hit.binary_kind.clone().unwrap_or_default(),
            wasi: hit.wasi_version.clone().unwrap_or_default(),
            short_digest: short(hit.digest.as_str()),
        }
    }
}

/// A row of a repository's page.
pub(crate) struct ArtifactRow {
    pub(crate) tags: String,
    pub(crate) href: String,
    pub(crate) short_digest: String,
    pub(crate) kind: String,
    pub(crate) badge_class: &'static str,
    pub(crate) harbor_type: String,
    pub(crate) platform: String,
    pub(crate) size: String,
    pub(crate) pushed: String,
}

impl ArtifactRow {
    pub(crate) fn new(repository: &str, a: &ArtifactSummary) -> Self {
        Self {
            tags: a.tags.join(", "),
            href: artifact_href(repository, a.digest.as_str()),
            short_digest: short(a.digest.as_str()),
            kind: a.kind.clone(),
            badge_class: badge(a.wasm),
            harbor_type: a.harbor_type.clone().unwrap_or_default(),
            platform: a.platform.as_ref().map(ToString::to_string).unwrap_or_default(),
            size: size(a.size),
            pushed: time(a.pushed_at.as_deref()),
        }
    }
}

/// The module part of an artifact's page.
pub(crate) struct ModuleView {
    pub(crate) noun: &'static str,
    pub(crate) facts: Vec<(String, String)>,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
    pub(crate) wit: Option<String>,
    /// `WIT world` or `WIT package`.
    pub(crate) wit_title: &'static str,
    /// The packages it uses: the text shown and the package page it links to.
    pub(crate) dependencies: Vec<(String, String)>,
}

impl ModuleView {
    /// From a `ModuleInfo`'s JSON.
    pub(crate) fn new(info: &Value, path: Option<&str>) -> Self {
        let component = info["header"]["kind"] == "component";
        let package = &info["package"];
        let wit_package = info["content"] == "wit-package";
        let kind = if wit_package { "WIT package".to_owned() } else { text(&info["header"]["kind"]) };
        let mut facts = vec![("Kind".to_owned(), kind)];
        if wit_package {
            let version = text(&package["version"]);
            let name = text(&package["name"]);
            facts.push((
                "Package".into(),
                if version.is_empty() { name } else { format!("{name}@{version}") },
            ));
        }
        facts.push(("Size".into(), size(info["size"].as_u64().unwrap_or_default())));
        if let Some(path) = path {
            facts.push(("Path in its layer".into(), path.to_owned()));
        }
        let wasi = text(&info["wasiVersion"]);
        facts.push(("WASI".into(), if wasi.is_empty() { "none".into() } else { wasi }));
        let valid = if info["validation"]["valid"] == true {
            "valid".to_owned()
        } else {
            format!("invalid: {}", text(&info["validation"]["error"]))
        };
        facts.push(("Validation".into(), valid));
        let mut producers = Vec::new();
        for field in ["language", "processedBy", "sdk"] {
            for tool in info["producers"][field].as_array().into_iter().flatten() {
                producers
                    .push(format!("{} {}", text(&tool["name"]), text(&tool["version"])).trim().to_owned());
            }
        }
        if !producers.is_empty() {
            facts.push(("Producers".into(), producers.join(", ")));
        }
        let item = |i: &Value| {
            let name = match i["module"].as_str().filter(|m| !m.is_empty()) {
                Some(module) => format!("{module}::{}", text(&i["name"])),
                None => text(&i["name"]),
            };
            format!("{name} ({})", text(&i["kind"]))
        };
        let dependencies = [&info["world"]["dependencies"], &package["dependencies"]]
            .into_iter()
            .flat_map(|d| d.as_array().map(Vec::as_slice).unwrap_or_default())
            .filter_map(|d| {
                let name = d["package"].as_str()?;
                let shown = match d["version"].as_str() {
                    Some(v) => format!("{name}@{v}"),
                    None => name.to_owned(),
                };
                Some((shown, format!("/packages/{}", crate::text::percent_encode(name, b"-._~:"))))
            })
            .collect();
        Self {
            noun: if wit_package {
                "WIT package"
            } else if component {
                "component"
            } else {
                "module"
            },
            facts,
            imports: info["imports"].as_array().into_iter().flatten().map(item).collect(),
            exports: info["exports"].as_array().into_iter().flatten().map(item).collect(),
            wit: info["world"]["wit"].as_str().or_else(|| package["wit"].as_str()).map(str::to_owned),
            wit_title: if wit_package { "WIT package" } else { "WIT world" },
            dependencies,
        }
    }
}

/// Everything an artifact's page shows but its pull commands and delete links.
pub(crate) struct ArtifactParts {
    pub(crate) short_digest: String,
    pub(crate) overview: Vec<(String, String)>,
    pub(crate) wasm: bool,
    pub(crate) kind: String,
    pub(crate) format: String,
    pub(crate) badge_class: &'static str,
    pub(crate) evidence: Vec<(String, String, String)>,
    pub(crate) hints: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) harbor: Vec<(String, String)>,
    pub(crate) module: Option<ModuleView>,
    pub(crate) inspection_note: Option<String>,
    pub(crate) children: Vec<(String, String, String, String)>,
    pub(crate) layers: Vec<(usize, String, String, String, String)>,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) history: Vec<String>,
    pub(crate) annotations: Vec<(String, String)>,
}

impl ArtifactParts {
    pub(crate) fn new(repository: &str, record: &ArtifactRecord, manifest: Option<&Manifest>) -> Self {
        let s = &record.summary;
        let mut overview = vec![
            ("Digest".to_owned(), s.digest.to_string()),
            ("Media type".into(), s.media_type.to_string()),
        ];
        if let Some(t) = &s.artifact_type {
            overview.push(("Artifact type".into(), t.to_string()));
        }
        if let Some(p) = &s.platform {
            overview.push(("Platform".into(), p.to_string()));
        }
        overview.push(("Size".into(), format!("{} with everything it references", size(s.size))));
        overview.push(("Pushed".into(), time(s.pushed_at.as_deref())));
        let harbor = &record.harbor;
        let mut harbor_rows = vec![
            ("Type".to_owned(), text(&harbor["artifactType"])),
            ("Media type".into(), text(&harbor["mediaType"])),
        ];
        let additions: Vec<String> = harbor["additions"].as_array().into_iter().flatten().map(text).collect();
        if !additions.is_empty() {
            harbor_rows.push(("Additions".into(), additions.join(", ")));
        }
        for (k, v) in harbor["extraAttrs"].as_object().into_iter().flatten() {
            harbor_rows.push((format!("extra_attrs.{k}"), text(v)));
        }
        let evidence_of = |e: &Value| (text(&e["field"]), text(&e["value"]), text(&e["rule"]));
        let module_path =
            record.modules.iter().find(|m| m.get("module").is_some()).and_then(|m| m["path"].as_str());
        let module =
            record.module.as_ref().filter(|m| m.is_object()).map(|m| ModuleView::new(m, module_path));
        let inspection_note = match record.inspection.status {
            crate::api::InspectionStatus::Pending => {
                Some("The module is being read; reload in a moment.".into())
            }
            crate::api::InspectionStatus::Failed => Some(format!(
                "No module could be read: {}",
                record.inspection.error.as_ref().map(text).unwrap_or_default()
            )),
            crate::api::InspectionStatus::Done if module.is_none() && s.wasm => {
                Some("No module was found in its layers.".into())
            }
            _ => None,
        };
        let (mut children, mut layers) = (Vec::new(), Vec::new());
        match manifest.map(Manifest::body) {
            Some(ManifestBody::Index(index)) => {
                for d in &index.manifests {
                    let platform = d.platform.as_ref().map_or_else(|| "-".into(), ToString::to_string);
                    children.push((
                        platform,
                        d.media_type.to_string(),
                        short(d.digest.as_str()),
                        artifact_href(repository, d.digest.as_str()),
                    ));
                }
            }
            Some(ManifestBody::Image(image)) => {
                for (n, d) in image.layers.iter().enumerate() {
                    let title = d.title().unwrap_or_default().to_owned();
                    layers.push((n, d.media_type.to_string(), short(d.digest.as_str()), size(d.size), title));
                }
            }
            _ => {}
        }
        let mut config = Vec::new();
        if let Some(c) = &record.config {
            for (label, key) in
                [("OS", "os"), ("Architecture", "architecture"), ("Created", "created"), ("Author", "author")]
            {
                let value = text(&c[key]);
                if !value.is_empty() {
                    config.push((label.to_owned(), value));
                }
            }
        }
        let history = record
            .history
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|h| {
                let step = text(&h["created_by"]);
                if step.is_empty() { text(&h["comment"]) } else { step }
            })
            .collect();
        Self {
            short_digest: short(s.digest.as_str()),
            overview,
            wasm: s.wasm,
            kind: s.kind.clone(),
            format: record.format.clone(),
            badge_class: badge(s.wasm),
            evidence: record
                .evidence
                .iter()
                .map(|e| (e.field.clone(), e.value.clone(), e.rule.clone()))
                .collect(),
            hints: record
                .hints
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    let (f, v, r) = evidence_of(h);
                    format!("{f} = {v}: {r}")
                })
                .collect(),
            warnings: record.warnings.as_array().into_iter().flatten().map(text).collect(),
            harbor: harbor_rows,
            module,
            inspection_note,
            children,
            layers,
            config,
            history,
            annotations: s_annotations(record),
        }
    }
}

/// One signature as an artifact's page shows it.
pub(crate) struct SignatureRow {
    pub(crate) format: String,
    pub(crate) verified: bool,
    /// The signer, or why it did not verify.
    pub(crate) detail: String,
    /// The transparency-log entry, if one witnessed it.
    pub(crate) log: String,
    pub(crate) short_digest: String,
    pub(crate) href: String,
}

/// The rows of a trust summary's signatures, and a note of those left out.
pub(crate) fn signature_rows(
    repository: &str,
    summary: &TrustSummary,
) -> (Vec<SignatureRow>, Option<String>) {
    let rows = summary
        .signatures
        .iter()
        .map(|r| SignatureRow {
            format: r.format.clone(),
            verified: r.verified,
            detail: match (&r.signer, &r.reason) {
                (Some(signer), _) => signer.to_string(),
                (None, Some(reason)) => reason.clone(),
                (None, None) => String::new(),
            },
            log: r.log.as_ref().map_or_else(String::new, |l| {
                let at = u64::try_from(l.integrated_time)
                    .map_or_else(|_| l.integrated_time.to_string(), crate::clock::rfc3339_of);
                let proof = if l.inclusion_proof { ", inclusion proof" } else { "" };
                format!("entry {} at {at}{proof}", l.index)
            }),
            short_digest: short(r.digest.as_str()),
            href: artifact_href(repository, r.digest.as_str()),
        })
        .collect();
    let omitted = (summary.omitted > 0)
        .then(|| format!("{} more signatures were not read or not kept (past the limits).", summary.omitted));
    (rows, omitted)
}

fn s_annotations(record: &ArtifactRecord) -> Vec<(String, String)> {
    record.annotations.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The commands that pull `reference` (`host/repository:tag` or `@digest`), for the tools
/// people use; `plain` adds each tool's flag for plain HTTP.
pub(crate) fn pull_commands(reference: &str, host: &str, wasm: bool, plain: bool) -> Vec<(String, String)> {
    let flag = |f: &str| if plain { format!(" {f}") } else { String::new() };
    let mut out = Vec::new();
    if wasm {
        out.push((
            "wharf".to_owned(),
            format!("wharf pull {reference} -o module.wasm{}", flag("--insecure")),
        ));
        out.push((
            "wasm-to-oci".into(),
            format!("wasm-to-oci pull {reference} --out module.wasm{}", flag("--insecure")),
        ));
        out.push((
            "wkg".into(),
            format!("wkg oci pull {reference} -o component.wasm{}", flag(&format!("--insecure {host}"))),
        ));
    }
    out.push(("oras".into(), format!("oras pull {reference}{}", flag("--plain-http"))));
    out.push(("podman".into(), format!("podman pull {reference}{}", flag("--tls-verify=false"))));
    out.push((
        "skopeo".into(),
        format!("skopeo copy{} docker://{reference} oci:./image", flag("--src-tls-verify=false")),
    ));
    if wasm {
        out.push((
            "wharf-client example".into(),
            format!("cargo run --example wasm_pull -- {reference} -o module.wasm{}", flag("--insecure")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_and_digests_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(time(Some("2026-11-27T21:20:23.998Z")), "2026-11-27 21:20 UTC");
        assert_eq!(time(Some("yesterday")), "yesterday");
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
    }
}
