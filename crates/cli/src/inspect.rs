//! `wharf inspect`: an artifact's record — the shape of `wharf-server`'s `_wharf` artifact
//! record (`wharf_wasm::record`) — built from a registry, a manifest file or a `.wasm` file,
//! printed as JSON or for a person.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use wharf_client::{Client, Reference};
use wharf_types::{Manifest, ManifestBody};
use wharf_wasm::record::{self, ArtifactRecord};
use wharf_wasm::{classify, inspect};

use crate::failure::{Failure, Result};

/// The largest config blob read to classify a manifest (as the server reads).
const MAX_CONFIG: u64 = 4 * 1024 * 1024;
/// The largest layer read into memory to find a module.
const MAX_LAYER: u64 = 256 * 1024 * 1024;

/// The record of what `reference` names, with the modules read out of its layers (and, for an
/// index, out of each Wasm child's).
pub(crate) async fn remote(client: &Client, reference: &Reference) -> Result<Value> {
    let registry = |e| Failure::at(&e, reference);
    let manifest = client.pull_manifest(reference).await.map_err(registry)?;
    let mut value = to_json(read(client, reference, &manifest).await?);
    value["tags"] = json!(reference.tag().map(|t| vec![t.to_string()]).unwrap_or_default());
    if let Some(children) = value["wasmChildren"].as_array_mut() {
        for child in children {
            let Some(digest) = child["descriptor"]["digest"].as_str().and_then(|d| d.parse().ok()) else {
                continue;
            };
            let child_ref = reference.clone().with_digest(digest);
            let child_manifest = client.pull_manifest(&child_ref).await.map_err(registry)?;
            let found = read(client, &child_ref, &child_manifest).await?;
            child["inspection"] = json!(found.inspection);
            child["module"] = json!(found.module);
        }
    }
    // Wharf's verdict over its signatures, where the registry is a Wharf with trust policies.
    if let Ok(Some(record)) = client.wharf_artifact(&reference.clone().with_digest(digest_of(&value)?)).await
    {
        for field in ["trust", "trustVerdict"] {
            if !record[field].is_null() {
                value[field] = record[field].clone();
            }
        }
    }
    Ok(value)
}

fn digest_of(record: &Value) -> Result<wharf_types::Digest> {
    record["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| Failure::Failed("a record without its digest".into()))
}

/// The signatures over an artifact (a `trust` summary) and the policies' verdict, for a
/// person: `label` says whose verdict.
pub(crate) fn render_trust(out: &mut String, label: &str, summary: &Value, verdict: &Value) {
    if !verdict.is_null() {
        let policies: Vec<String> = verdict["policies"].as_array().into_iter().flatten().map(clean).collect();
        let line = match verdict["verdict"].as_str() {
            Some("verified") => format!("verified (trust policy {})", policies.join(", ")),
            Some("unjudged") => "no trust policy judges it".to_owned(),
            Some(v) => format!("{v} by trust policy {}: {}", policies.join(", "), clean(&verdict["reason"])),
            None => clean(verdict),
        };
        row(out, "  ", label, line);
    }
    let signatures = summary["signatures"].as_array().map(Vec::as_slice).unwrap_or_default();
    if summary.is_object() && signatures.is_empty() {
        row(out, "  ", "signatures", "none");
    }
    for (i, s) in signatures.iter().enumerate() {
        let who = if s["verified"] == true {
            match s["signer"]["kind"].as_str() {
                Some("identity") => {
                    format!(
                        "verified: {} (issuer {})",
                        clean(&s["signer"]["subject"]),
                        clean(&s["signer"]["issuer"])
                    )
                }
                _ => format!("verified: key {}", clean(&s["signer"]["key"])),
            }
        } else {
            format!("unverified: {}", clean(&s["reason"]))
        };
        let log = match s["log"]["index"].as_u64() {
            Some(index) => format!(", log entry {index}"),
            None => String::new(),
        };
        row(
            out,
            "  ",
            if i == 0 { "signatures" } else { "" },
            format!("{} {}, {who}{log}", clean(&s["digest"]), clean(&s["format"])),
        );
    }
    if let Some(n) = summary["omitted"].as_u64().filter(|n| *n > 0) {
        row(out, "  ", "", format!("and {n} more not read or not kept"));
    }
}

/// Classifies a pulled manifest and reads the modules its layers hold, as the server does on
/// a push: raw layers whole, tar layers up to the module (the topmost wins).
async fn read(client: &Client, reference: &Reference, manifest: &Manifest) -> Result<ArtifactRecord> {
    let registry = |e| Failure::at(&e, reference);
    let config = match manifest.body() {
        ManifestBody::Image(m) if m.config.size <= MAX_CONFIG => {
            Some(pull(client, reference, &m.config.digest).await.map_err(registry)?)
        }
        _ => None,
    };
    let mut classification = classify(manifest, config.as_deref());
    if classification.wasm_layers.is_empty() {
        return Ok(ArtifactRecord::new(manifest, &classification, config.as_deref()));
    }
    // Every layer the classification names, fetched (each at most MAX_LAYER), then read as
    // the server reads them.
    let mut fetched = Fetched::default();
    for layer in &classification.wasm_layers {
        let digest = &layer.descriptor.digest;
        if fetched.blobs.contains_key(digest) || fetched.missing.contains_key(digest) {
            continue;
        }
        if layer.descriptor.size > MAX_LAYER {
            let why = format!("the layer's {} bytes are more than this command reads", layer.descriptor.size);
            fetched.missing.insert(digest.clone(), why);
            continue;
        }
        match pull(client, reference, digest).await {
            Ok(blob) => fetched.blobs.insert(digest.clone(), bytes::Bytes::from(blob)).map(drop),
            Err(e) => fetched.missing.insert(digest.clone(), e.to_string()).map(drop),
        };
    }
    let mut meter = wharf_wasm::budget::Meter::new(&wharf_wasm::budget::Budget::default());
    let entries = record::read_modules(&mut classification, &mut fetched, &mut meter, &mut |bytes| {
        inspect(bytes).map_err(|e| e.to_string())
    })
    .map_err(|e| Failure::Failed(format!("reading the layers of {reference}: {e}")))?;
    Ok(ArtifactRecord::new(manifest, &classification, config.as_deref()).with_modules(entries, None))
}

/// The layers pulled into memory, and why the others were not.
#[derive(Default)]
struct Fetched {
    blobs: std::collections::HashMap<wharf_types::Digest, bytes::Bytes>,
    missing: std::collections::HashMap<wharf_types::Digest, String>,
}

impl wharf_wasm::image::Layers for Fetched {
    fn open(
        &mut self,
        layer: &wharf_wasm::WasmLayer,
    ) -> std::io::Result<std::result::Result<Box<dyn std::io::Read + '_>, String>> {
        let digest = &layer.descriptor.digest;
        Ok(match self.blobs.get(digest) {
            Some(blob) => Ok(Box::new(&blob[..])),
            None => {
                Err(self.missing.get(digest).cloned().unwrap_or_else(|| format!("{digest} was not pulled")))
            }
        })
    }
}

async fn pull(
    client: &Client,
    reference: &Reference,
    digest: &wharf_types::Digest,
) -> wharf_client::Result<Vec<u8>> {
    let mut out = Vec::new();
    client.pull_blob(reference, digest, &mut out).await?;
    Ok(out)
}

/// The record of a local file: a `.wasm` binary (`{"wasm": true, "file", "module"}`), or a
/// manifest (with its config file) classified as the server would.
pub(crate) fn local(path: &Path, config: Option<&Path>) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Failure::file(path, &e))?;
    if bytes.starts_with(b"\0asm") {
        if config.is_some() {
            return Err(Failure::Usage("a CONFIG goes with a manifest file, not a .wasm file".into()));
        }
        let info = inspect(&bytes)
            .map_err(|e| Failure::Failed(format!("{} is not valid WebAssembly: {e}", path.display())))?;
        return Ok(
            json!({ "wasm": true, "file": path.display().to_string(), "size": bytes.len(), "module": info }),
        );
    }
    let manifest = Manifest::from_bytes(bytes, None).map_err(|e| {
        Failure::Failed(format!(
            "{} is neither a WebAssembly binary nor an OCI manifest: {e}",
            path.display()
        ))
    })?;
    let config = match config {
        Some(c) => Some(std::fs::read(c).map_err(|e| Failure::file(c, &e))?),
        None => None,
    };
    let classification = classify(&manifest, config.as_deref());
    Ok(to_json(ArtifactRecord::new(&manifest, &classification, config.as_deref())))
}

fn to_json(record: ArtifactRecord) -> Value {
    serde_json::to_value(record).expect("a record serializes")
}

/// A text from an artifact, safe on a terminal: control characters (escape sequences) shown
/// escaped.
pub(crate) fn clean(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    text.chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

fn row(out: &mut String, indent: &str, label: &str, value: impl AsRef<str>) {
    let _ = writeln!(out, "{indent}{label:<15}{}", value.as_ref());
}

/// A record for a person. `name` is what was inspected; `verbose` lists everything.
pub(crate) fn render(name: &str, record: &Value, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", clean(&json!(name)));
    if let Some(file) = record.get("file") {
        row(&mut out, "  ", "file", clean(file));
        row(&mut out, "  ", "size", format!("{} bytes", record["size"]));
        module(&mut out, &record["module"], verbose);
        return out;
    }
    row(&mut out, "  ", "digest", clean(&record["digest"]));
    row(&mut out, "  ", "media type", clean(&record["mediaType"]));
    if !record["artifactType"].is_null() {
        row(&mut out, "  ", "artifact type", clean(&record["artifactType"]));
    }
    row(&mut out, "  ", "size", format!("{} bytes with everything it references", record["size"]));
    let wasm = record["wasm"] == true;
    row(
        &mut out,
        "  ",
        "WebAssembly",
        format!(
            "{}: {} ({})",
            if wasm { "yes" } else { "no" },
            clean(&record["kind"]),
            clean(&record["format"])
        ),
    );
    row(&mut out, "  ", "Harbor 2.6", format!("shows it as {}", clean(&record["harborType"])));
    if let Some(platform) = record["platform"].as_object() {
        let p = |k: &str| clean(platform.get(k).unwrap_or(&Value::Null));
        row(&mut out, "  ", "platform", format!("{}/{}", p("os"), p("architecture")));
    }
    for (i, e) in record["evidence"].as_array().into_iter().flatten().enumerate() {
        let line = format!("{} = {}: {}", clean(&e["field"]), clean(&e["value"]), clean(&e["rule"]));
        row(&mut out, "  ", if i == 0 { "evidence" } else { "" }, line);
    }
    for (i, h) in record["hints"].as_array().into_iter().flatten().enumerate() {
        let line = format!("{} = {}: {}", clean(&h["field"]), clean(&h["value"]), clean(&h["rule"]));
        row(&mut out, "  ", if i == 0 { "hints" } else { "" }, line);
    }
    for (i, w) in record["warnings"].as_array().into_iter().flatten().enumerate() {
        row(&mut out, "  ", if i == 0 { "warnings" } else { "" }, clean(w));
    }
    for (i, (k, v)) in record["annotations"].as_object().into_iter().flatten().enumerate() {
        row(
            &mut out,
            "  ",
            if i == 0 { "annotations" } else { "" },
            format!("{} = {}", clean(&json!(k)), clean(v)),
        );
    }
    for (i, l) in record["wasmLayers"].as_array().into_iter().flatten().enumerate() {
        let d = &l["descriptor"];
        let line = format!(
            "#{} {} {} ({} bytes)",
            l["index"],
            clean(&d["digest"]),
            clean(&d["mediaType"]),
            d["size"]
        );
        row(&mut out, "  ", if i == 0 { "Wasm layers" } else { "" }, line);
    }
    if let Some(config) = record["config"].as_object() {
        let c = |k: &str| clean(config.get(k).unwrap_or(&Value::Null));
        row(
            &mut out,
            "  ",
            "image config",
            format!("{}/{}, created {}", c("os"), c("architecture"), c("created")),
        );
    }
    for (i, h) in record["history"].as_array().into_iter().flatten().enumerate() {
        let step = h["created_by"].as_str().map_or_else(|| clean(&h["comment"]), |s| clean(&json!(s)));
        row(&mut out, "  ", if i == 0 { "history" } else { "" }, step);
    }
    for child in record["wasmChildren"].as_array().into_iter().flatten() {
        let d = &child["descriptor"];
        let platform = &d["platform"];
        let _ = writeln!(
            out,
            "  child {} ({}/{})",
            clean(&d["digest"]),
            clean(&platform["os"]),
            clean(&platform["architecture"])
        );
        module(&mut out, &child["module"], verbose);
    }
    render_trust(&mut out, "trust", &record["trust"], &record["trustVerdict"]);
    match record["inspection"]["status"].as_str() {
        Some("failed") => {
            row(&mut out, "  ", "module", format!("none read: {}", clean(&record["inspection"]["error"])));
        }
        Some("pending") => {
            row(&mut out, "  ", "module", "not read (a manifest file: inspect the reference to read it)");
        }
        _ => module(&mut out, &record["module"], verbose),
    }
    out
}

/// The module or component part.
fn module(out: &mut String, info: &Value, verbose: bool) {
    if info.is_null() {
        return;
    }
    let label = match info["content"].as_str() {
        Some("wit-package") => "WIT package",
        Some("component") => "component",
        _ => "module",
    };
    let _ = writeln!(out, "  {label}");
    let valid = if info["validation"]["valid"] == true {
        "valid".to_owned()
    } else {
        format!("invalid: {}", clean(&info["validation"]["error"]))
    };
    row(out, "    ", "kind", format!("{} ({} bytes), {valid}", clean(&info["header"]["kind"]), info["size"]));
    if !info["wasiVersion"].is_null() {
        row(out, "    ", "WASI", clean(&info["wasiVersion"]));
    }
    let limit = if verbose { usize::MAX } else { 8 };
    for (label, key) in [("imports", "imports"), ("exports", "exports")] {
        let items = info[key].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = items
            .iter()
            .take(limit)
            .map(|i| {
                let module = i["module"].as_str().filter(|m| !m.is_empty());
                let name = module.map_or_else(
                    || clean(&i["name"]),
                    |m| format!("{}::{}", clean(&json!(m)), clean(&i["name"])),
                );
                format!("{name} ({})", clean(&i["kind"]))
            })
            .collect();
        let more = if items.len() > names.len() {
            format!(", … {} more (-v)", items.len() - names.len())
        } else {
            String::new()
        };
        row(
            out,
            "    ",
            label,
            format!("{}{more}", if names.is_empty() { "none".into() } else { names.join(", ") }),
        );
    }
    let producers = &info["producers"];
    let mut tools = Vec::new();
    for field in ["language", "processedBy", "sdk"] {
        for t in producers[field].as_array().into_iter().flatten() {
            tools.push(format!("{} {}", clean(&t["name"]), clean(&t["version"])).trim().to_owned());
        }
    }
    if !tools.is_empty() {
        row(out, "    ", "producers", tools.join(", "));
    }
    let package = &info["package"];
    let (heading, wit) = match package["wit"].as_str() {
        Some(wit) => {
            let version =
                package["version"].as_str().map_or_else(String::new, |v| format!("@{}", clean(&json!(v))));
            (format!("WIT package {}{version}", clean(&package["name"])), Some(wit))
        }
        None => (format!("WIT world {}", clean(&info["world"]["name"])), info["world"]["wit"].as_str()),
    };
    let deps: Vec<String> = package["dependencies"]
        .as_array()
        .or_else(|| info["world"]["dependencies"].as_array())
        .into_iter()
        .flatten()
        .map(dependency)
        .collect();
    if !deps.is_empty() {
        row(out, "    ", "uses", deps.join(", "));
    }
    if let Some(wit) = wit {
        let _ = writeln!(out, "    {heading}:");
        for line in wit.lines() {
            let line =
                if line.trim().is_empty() { String::new() } else { format!("      {}", clean(&json!(line))) };
            let _ = writeln!(out, "{line}");
        }
    }
}

/// A package a WIT uses: `acme:greeter@0.1.0`.
fn dependency(d: &Value) -> String {
    match d["version"].as_str() {
        Some(v) => format!("{}@{}", clean(&d["package"]), clean(&json!(v))),
        None => clean(&d["package"]),
    }
}

/// A package's versions (Wharf's versions API, or the semver tags another registry has): one
/// row per version — version, content, size, push time, what it exports, yanked — then the
/// other tags and what uses the package; `verbose` adds each version's dependencies.
pub(crate) fn render_versions(value: &Value, verbose: bool) -> String {
    let mut rows = vec![["VERSION", "CONTENT", "SIZE", "PUSHED", "EXPORTS"].map(str::to_owned).to_vec()];
    let versions = value["versions"].as_array().cloned().unwrap_or_default();
    for v in &versions {
        let mut version = clean(&v["version"]);
        if v["yanked"] == true {
            version.push_str(" (yanked)");
        }
        let size = v["size"].as_u64().map_or_else(|| "-".to_owned(), human_size);
        // RFC 3339 to the second: `2026-12-05 06:55:45`.
        let pushed = v["pushedAt"].as_str().map_or_else(
            || "-".to_owned(),
            |t| match (t.get(..10), t.get(11..19)) {
                (Some(day), Some(time)) if t.as_bytes()[10] == b'T' => format!("{day} {time}"),
                _ => clean(&json!(t)),
            },
        );
        let exports: Vec<String> = v["exports"].as_array().into_iter().flatten().map(clean).collect();
        rows.push(vec![
            version,
            v["content"].as_str().map_or_else(|| "-".to_owned(), |c| clean(&json!(c))),
            size,
            pushed,
            if exports.is_empty() { "-".to_owned() } else { exports.join(", ") },
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths).take(4) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        line.push_str(&row[4]);
        let _ = writeln!(out, "{}", line.trim_end());
        if verbose && i > 0 {
            let uses: Vec<String> = versions[i - 1]["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| match d["providedBy"].as_str() {
                    Some(tag) => format!(
                        "{} (here: {}:{})",
                        dependency(d),
                        clean(&d["repository"]),
                        clean(&json!(tag))
                    ),
                    None => dependency(d),
                })
                .collect();
            if !uses.is_empty() {
                let _ = writeln!(out, "  uses {}", uses.join(", "));
            }
        }
    }
    let other: Vec<String> = value["otherTags"].as_array().into_iter().flatten().map(clean).collect();
    if !other.is_empty() {
        let _ = writeln!(out, "other tags: {}", other.join(", "));
    }
    for d in value["dependents"].as_array().into_iter().flatten() {
        let what = d["package"].as_str().map_or_else(|| clean(&d["repository"]), |p| clean(&json!(p)));
        let tags: Vec<String> = d["tags"].as_array().into_iter().flatten().map(clean).collect();
        let uses = d["uses"].as_str().map_or_else(String::new, |u| format!(", uses {}", clean(&json!(u))));
        let _ = writeln!(
            out,
            "used by {what} {}{uses}",
            if tags.is_empty() { clean(&d["digest"]) } else { tags.join(", ") }
        );
    }
    out
}

/// Bytes for a person: `812 B`, `1.4 KiB`, `3.0 MiB`.
fn human_size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 || unit == "GiB" {
            return if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") };
        }
        value /= 1024.0;
    }
    unreachable!("GiB ends the loop")
}
