//! What Harbor 2.6 would record for an artifact (`WASM-FORMATS.md` §1).

use serde::Serialize;
use serde_json::{Map, Value};
use wharf_types::{Manifest, ManifestBody, MediaType};

use crate::names::annotations;

/// Harbor's artifact type for WebAssembly.
pub const HARBOR_WASM: &str = "WASM";
/// Harbor's artifact type for container images (and indexes).
pub const HARBOR_IMAGE: &str = "IMAGE";
/// Harbor's artifact type when no processor and no media-type pattern applies.
pub const HARBOR_UNKNOWN: &str = "UNKNOWN";

/// The view of an artifact that Harbor 2.6 would record and show.
///
/// Harbor compares strings exactly (a differently cased media type or `compat-smart` is not
/// `WASM` to it), and this view does the same.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HarborView {
    /// The artifact `type`: `WASM`, `IMAGE`, `CHART`, `UNKNOWN`, or what the default
    /// processor derives from the config media type.
    pub artifact_type: String,
    /// The artifact `media_type` Harbor stores: the config media type for image manifests
    /// (`application/vnd.wasm.config.v1+json` for annotated Wasm images), the manifest's for
    /// indexes.
    pub media_type: String,
    /// The `extra_attrs` Harbor's processor extracts (for `WASM` and the default processor).
    pub extra_attrs: Map<String, Value>,
    /// The additions Harbor offers (`BUILD_HISTORY` for `WASM`).
    pub additions: Vec<&'static str>,
}

/// Harbor 2.6's view of `manifest`, with its config (parsed JSON) when at hand.
pub(crate) fn view(manifest: &Manifest, config: Option<&Value>) -> HarborView {
    let ManifestBody::Image(image) = manifest.body() else {
        let media_type = manifest.media_type().essence().to_owned();
        let artifact_type = processor_type(&media_type);
        return HarborView { artifact_type, media_type, ..HarborView::default() };
    };
    let annotated = image.annotation(annotations::VARIANT) == Some("compat")
        || image.annotation(annotations::HANDLER) == Some("wasm");
    let config_type = image.config.media_type.as_str();
    let media_type =
        if annotated { MediaType::WASM_CONFIG_V1.as_str().to_owned() } else { config_type.to_owned() };
    let artifact_type = processor_type(&media_type);
    let mut view = HarborView { artifact_type, media_type, ..HarborView::default() };
    let config = config.and_then(Value::as_object);
    if view.artifact_type == HARBOR_WASM && processor_registered(&view.media_type) {
        view.additions = vec!["BUILD_HISTORY"];
        let attrs = &mut view.extra_attrs;
        if annotated {
            attrs.insert("manifest.config.mediaType".into(), config_type.into());
            let field = |k: &str| config.and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
            for key in ["created", "architecture", "os", "config"] {
                attrs.insert(key.into(), field(key));
            }
            let author = config
                .and_then(|c| c.get("author"))
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
                .or_else(|| config?.get("config")?.get("Labels")?.get("maintainer")?.as_str())
                .unwrap_or_default();
            attrs.insert("author".into(), author.into());
        } else {
            attrs.insert("manifest.config.mediaType".into(), MediaType::WASM_CONFIG_V1.as_str().into());
            if let Some(first) = image.layers.first() {
                attrs.insert("manifest.layers.mediaType".into(), first.media_type.as_str().into());
                let title = first.title().unwrap_or_default();
                attrs.insert("org.opencontainers.image.title".into(), title.into());
            }
        }
    } else if !processor_registered(&view.media_type)
        && let Some(config) = config
    {
        // The default processor exposes the whole config.
        view.extra_attrs.clone_from(config);
    }
    view
}

/// The media types Harbor 2.6 has a dedicated processor for, and the type it records.
fn registered(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/vnd.wasm.config.v1+json" => HARBOR_WASM,
        "application/vnd.oci.image.config.v1+json"
        | "application/vnd.docker.container.image.v1+json"
        | "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json"
        | "application/vnd.docker.distribution.manifest.v1+prettyjws" => HARBOR_IMAGE,
        "application/vnd.cncf.helm.config.v1+json" => "CHART",
        "application/vnd.cnab.manifest.v1" => "CNAB",
        _ => return None,
    })
}

fn processor_registered(media_type: &str) -> bool {
    registered(media_type).is_some()
}

/// The type Harbor records: its processor's, or the default processor's
/// `^application/vnd\.[^.]*\.(.*)\.config\.[^.]*\+json$`, upper-cased, or `UNKNOWN`.
fn processor_type(media_type: &str) -> String {
    if let Some(t) = registered(media_type) {
        return t.to_owned();
    }
    default_type(media_type).map_or_else(|| HARBOR_UNKNOWN.to_owned(), str::to_ascii_uppercase)
}

/// The capture of `^application/vnd\.[^.]*\.(.*)\.config\.[^.]*\+json$` (greedy `(.*)`).
fn default_type(media_type: &str) -> Option<&str> {
    let rest = media_type.strip_prefix("application/vnd.")?;
    // `[^.]*` then `\.`: the first segment and its dot.
    let (_, rest) = rest.split_once('.')?;
    // `[^.]*\+json$` after the last `.config.`: no dot may follow it.
    let tail_start = rest.rfind(".config.")?;
    let tail = &rest[tail_start + ".config.".len()..];
    if tail.contains('.') || !tail.ends_with("+json") {
        return None;
    }
    Some(&rest[..tail_start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_processor_regex() {
        assert_eq!(processor_type("application/vnd.module.wasm.config.v1+json"), "WASM");
        assert_eq!(processor_type("application/vnd.wasm.config.v0+json"), "UNKNOWN");
        assert_eq!(processor_type("application/vnd.fermyon.spin.application.v1+config"), "UNKNOWN");
        assert_eq!(processor_type("application/vnd.wasmcloud.actor.archive.config"), "UNKNOWN");
        assert_eq!(processor_type("application/vnd.oci.image.config.v1+json"), "IMAGE");
        assert_eq!(processor_type("application/vnd.cncf.helm.config.v1+json"), "CHART");
        assert_eq!(processor_type("application/vnd.example.sbom.config+json"), "UNKNOWN");
        assert_eq!(processor_type("application/vnd.a.b.c.config.v1+json"), "B.C");
        assert_eq!(processor_type("application/vnd.oci.empty.v1+json"), "UNKNOWN");
        assert_eq!(processor_type("Application/vnd.wasm.config.v1+json"), "UNKNOWN");
    }
}
