//! The classifier: which Wasm layout (if any) a manifest is, where its Wasm bytes are, and
//! the evidence for the verdict. Rules and order follow `WASM-FORMATS.md` §7.

use serde::Serialize;
use serde_json::Value;
use wharf_types::{Descriptor, ImageIndex, ImageManifest, Manifest, ManifestBody, MediaType, Platform};

use crate::binary::BinaryKind;
use crate::config::WasmConfig;
use crate::harbor::{self, HarborView};
use crate::location::{EntryMatch, Location, WasmLayer, normalize_path};
use crate::names::{ISTIO_EXTENSION_FILE, SOLO_PLUGIN_FILE, annotations, labels};

/// A Wasm layout, named by the catalogue's format id (`F1` … `F12`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
#[non_exhaustive]
pub enum Kind {
    /// F1/F12 — wasm-to-oci (and Kubewarden, which writes no title): config
    /// `application/vnd.wasm.config.v1+json`, raw `application/vnd.wasm.content.layer.v1+wasm`.
    WasmToOci,
    /// F2 — an image annotated `module.wasm.image/variant` or `run.oci.handler` for crun.
    CompatAnnotated {
        /// The annotation key that fired.
        annotation: String,
        /// Its value (`compat`, `compat-smart`, `wasm`, `wasm-smart`, a handler name).
        value: String,
    },
    /// F3 — an image whose config platform is Wasm (`wasi/wasm`, `wasip1/wasm`, `wasi/wasm32`).
    PlatformImage,
    /// F4 — runwasi's image with raw Wasm layers
    /// (`application/vnd.bytecodealliance.wasm.component.layer.v0+wasm` or `application/wasm`).
    RunwasiImage,
    /// F5 — the CNCF TAG-Runtime Wasm OCI artifact: config `application/vnd.wasm.config.v0+json`,
    /// `application/wasm` layer.
    CncfArtifact,
    /// F6 — solo.io `wasme` "oci" variant: config `application/vnd.module.wasm.config.v1+json`.
    SoloOci,
    /// F7 — solo.io "compat" variant / Istio `WasmPlugin` image: `plugin.wasm` inside the last
    /// tar layer. Needs the layer's content: see [`Classification::confirm_tar_entry`].
    SoloCompat,
    /// F8 — Istio's early layout: `extension.wasm` in a single uncompressed tar layer. Needs the
    /// layer's content: see [`Classification::confirm_tar_entry`].
    IstioExtension,
    /// F9 — a Spin application pushed by Spin < 2.0 (locked app as the manifest config).
    SpinV1,
    /// F9 — a Spin application pushed by Spin ≥ 2.0 (image config, locked app as a layer).
    SpinV2,
    /// F10 — a wasmCloud actor (`application/vnd.wasmcloud.actor.archive.config`).
    WasmCloudActor,
    /// F11 — an experimental Wasm `artifactType`.
    ArtifactType,
    /// Another layout whose layers are typed as raw Wasm (for example an ORAS artifact with an
    /// empty config and an `application/wasm` layer).
    RawWasmLayers,
    /// An index (or manifest list) with at least one Wasm platform among its children.
    WasmIndex,
    /// Not WebAssembly, as far as the manifest (and config) tell.
    NotWasm,
}

impl Kind {
    /// Whether this is a Wasm layout.
    pub fn is_wasm(&self) -> bool {
        !matches!(self, Self::NotWasm)
    }

    /// The catalogue's format id (`F1` … `F11`; `F1` also covers `F12`), or `index` / `other`
    /// / `none`.
    pub fn format_id(&self) -> &'static str {
        match self {
            Self::WasmToOci => "F1",
            Self::CompatAnnotated { .. } => "F2",
            Self::PlatformImage => "F3",
            Self::RunwasiImage => "F4",
            Self::CncfArtifact => "F5",
            Self::SoloOci => "F6",
            Self::SoloCompat => "F7",
            Self::IstioExtension => "F8",
            Self::SpinV1 | Self::SpinV2 => "F9",
            Self::WasmCloudActor => "F10",
            Self::ArtifactType => "F11",
            Self::RawWasmLayers => "other",
            Self::WasmIndex => "index",
            Self::NotWasm => "none",
        }
    }

    /// Every [`name`](Self::name).
    pub const NAMES: [&'static str; 15] = [
        "wasm-to-oci",
        "compat-annotated",
        "platform-image",
        "runwasi-image",
        "cncf-artifact",
        "solo-oci",
        "solo-compat",
        "istio-extension",
        "spin-v1",
        "spin-v2",
        "wasmcloud-actor",
        "artifact-type",
        "raw-wasm-layers",
        "wasm-index",
        "not-wasm",
    ];

    /// A short name for listings (`wasm-to-oci`, `cncf-artifact`, …; one of
    /// [`NAMES`](Self::NAMES)).
    pub fn name(&self) -> &'static str {
        match self {
            Self::WasmToOci => "wasm-to-oci",
            Self::CompatAnnotated { .. } => "compat-annotated",
            Self::PlatformImage => "platform-image",
            Self::RunwasiImage => "runwasi-image",
            Self::CncfArtifact => "cncf-artifact",
            Self::SoloOci => "solo-oci",
            Self::SoloCompat => "solo-compat",
            Self::IstioExtension => "istio-extension",
            Self::SpinV1 => "spin-v1",
            Self::SpinV2 => "spin-v2",
            Self::WasmCloudActor => "wasmcloud-actor",
            Self::ArtifactType => "artifact-type",
            Self::RawWasmLayers => "raw-wasm-layers",
            Self::WasmIndex => "wasm-index",
            Self::NotWasm => "not-wasm",
        }
    }
}

impl std::fmt::Display for Kind {
    /// The short [`name`](Self::name); `{:#}` adds the catalogue's format id
    /// (`wasm-to-oci (F1)`) to a Wasm kind.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() && self.is_wasm() {
            write!(f, "{} ({})", self.name(), self.format_id())
        } else {
            f.write_str(self.name())
        }
    }
}

/// One rule that fired: which field had which value, and what that means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Evidence {
    /// Where the value was read: `config.mediaType`, `annotations["run.oci.handler"]`,
    /// `layers[1].mediaType`, `config blob .architecture`, `manifests[0].platform`, …
    pub field: String,
    /// The value found there.
    pub value: String,
    /// What the value shows.
    pub rule: &'static str,
}

impl Evidence {
    fn new(field: impl Into<String>, value: impl Into<String>, rule: &'static str) -> Self {
        Self { field: field.into(), value: value.into(), rule }
    }
}

/// A child of an index that targets a Wasm platform.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WasmChild {
    /// The position in `manifests` (always in range).
    pub index: usize,
    /// The child's descriptor.
    pub descriptor: Descriptor,
}

/// What [`classify`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Classification {
    /// The layout.
    pub kind: Kind,
    /// The layers holding the Wasm bytes, in the order to use them (the entrypoint first;
    /// for tar layouts, the topmost layer first).
    pub wasm_layers: Vec<WasmLayer>,
    /// For a Wasm index, its Wasm-platform children.
    pub wasm_children: Vec<WasmChild>,
    /// The platform, when the config (or the index) states one.
    pub platform: Option<Platform>,
    /// Module or component, when the metadata says (the CNCF config's `os`/`component`, an
    /// F11 `artifactType`); [`crate::inspect`] tells from the bytes.
    pub binary_kind: Option<BinaryKind>,
    /// Every rule that fired for the verdict, in the order they were checked.
    pub evidence: Vec<Evidence>,
    /// Signals that were seen but do not make the artifact Wasm (a variant set only as a config
    /// label, a candidate tar layer whose content was not read).
    pub hints: Vec<Evidence>,
    /// Deviations from a layout's spec (a CNCF artifact with two layers, `layerDigests` that
    /// do not match, image annotations that runtimes no longer read, …).
    pub warnings: Vec<String>,
    /// What Harbor 2.6 would record for this artifact.
    pub harbor: HarborView,
}

impl Classification {
    /// Whether the artifact is WebAssembly.
    pub fn is_wasm(&self) -> bool {
        self.kind.is_wasm()
    }

    /// Tar layers whose content could still make this image Wasm (F7 `plugin.wasm` in the last
    /// tar layer, F8 `extension.wasm` in a single uncompressed tar layer): read them with
    /// [`crate::extract`] and report what was found with
    /// [`confirm_tar_entry`](Self::confirm_tar_entry). Empty unless the verdict is
    /// [`Kind::NotWasm`].
    pub fn layer_probes(&self) -> &[WasmLayer] {
        if self.kind.is_wasm() { &[] } else { &self.wasm_layers }
    }

    /// Upgrades a [`Kind::NotWasm`] verdict once the tar layer at `layer_index` was found to
    /// hold `path` (`plugin.wasm` → F7, `extension.wasm` → F8). Returns whether it changed.
    pub fn confirm_tar_entry(&mut self, layer_index: usize, path: &str) -> bool {
        if self.kind.is_wasm() {
            return false;
        }
        let Some(probe) = self.wasm_layers.iter().find(|l| l.index == layer_index) else {
            return false;
        };
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let kind = match &probe.location {
            Location::TarEntry(EntryMatch::FileName(name)) if name == file_name => {
                if name == SOLO_PLUGIN_FILE { Kind::SoloCompat } else { Kind::IstioExtension }
            }
            _ => return false,
        };
        let rule = if kind == Kind::SoloCompat {
            "solo.io compat / Istio: plugin.wasm in the last tar layer (F7)"
        } else {
            "Istio legacy: extension.wasm in the single uncompressed tar layer (F8)"
        };
        // What said "not Wasm" no longer holds.
        self.evidence.clear();
        self.evidence.push(Evidence::new(format!("layers[{layer_index}] entry"), path, rule));
        self.wasm_layers.retain(|l| l.index == layer_index);
        self.hints.retain(|h| !h.field.starts_with("layers["));
        self.kind = kind;
        true
    }
}

/// Classifies a manifest (with its config blob, when at hand) as one of the Wasm layouts or
/// not Wasm, with the evidence and Harbor 2.6's view.
///
/// Pure and bounded: no I/O, linear in the input, never panics. Media types are compared
/// case-insensitively without parameters, `os`/`architecture` case-insensitively; the Harbor
/// view compares exactly, as Harbor does.
///
/// # Example
/// ```
/// use wharf_wasm::{classify, Kind};
///
/// let manifest = wharf_types::Manifest::from_bytes(&br#"{"schemaVersion":2,
///   "config":{"mediaType":"application/vnd.wasm.config.v1+json","size":2,
///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
///   "layers":[{"mediaType":"application/vnd.wasm.content.layer.v1+wasm","size":8,
///     "digest":"sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476",
///     "annotations":{"org.opencontainers.image.title":"hello.wasm"}}]}"#[..], None)?;
/// let c = classify(&manifest, Some(b"{}"));
/// assert_eq!(c.kind, Kind::WasmToOci);
/// assert_eq!(c.wasm_layers[0].index, 0);
/// assert_eq!(c.harbor.artifact_type, "WASM");
/// assert_eq!(c.evidence[0].field, "config.mediaType");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn classify(manifest: &Manifest, config: Option<&[u8]>) -> Classification {
    let config_json: Option<Value> = config.and_then(|c| serde_json::from_slice(c).ok());
    let config_object = config_json.as_ref().filter(|v| v.is_object());
    let mut c = match manifest.body() {
        ManifestBody::Index(index) => classify_index(index),
        ManifestBody::Image(image) => classify_image(image, config_object),
        _ => empty(Kind::NotWasm),
    };
    if config.is_some() && config_object.is_none() && matches!(manifest.body(), ManifestBody::Image(_)) {
        c.hints.push(Evidence::new("config blob", "not a JSON object", "config ignored"));
    }
    if !c.kind.is_wasm() && c.evidence.is_empty() {
        c.evidence.push(not_wasm_because(manifest));
    }
    c.harbor = harbor::view(manifest, config_object);
    c
}

/// Why a manifest is not Wasm: what was looked at, for a verdict that shows its reasons.
fn not_wasm_because(manifest: &Manifest) -> Evidence {
    match manifest.body() {
        ManifestBody::Image(image) => Evidence::new(
            "config.mediaType",
            image.config.media_type.to_string(),
            "no Wasm config type, artifact type, annotation, platform or layer type",
        ),
        ManifestBody::Index(index) => Evidence::new(
            "manifests",
            format!("{} children", index.manifests.len()),
            "no child with a Wasm platform",
        ),
        _ => Evidence::new(
            "mediaType",
            manifest.media_type().to_string(),
            "neither an image manifest nor an index",
        ),
    }
}

fn empty(kind: Kind) -> Classification {
    Classification {
        kind,
        wasm_layers: Vec::new(),
        wasm_children: Vec::new(),
        platform: None,
        binary_kind: None,
        evidence: Vec::new(),
        hints: Vec::new(),
        warnings: Vec::new(),
        harbor: HarborView::default(),
    }
}

/// `os` values that mean WASI.
const WASM_OS: &[&str] = &["wasi", "wasip1", "wasip2"];
/// `architecture` values that mean Wasm.
const WASM_ARCH: &[&str] = &["wasm", "wasm32"];

fn is_wasm_platform(os: &str, architecture: &str) -> bool {
    WASM_ARCH.iter().any(|a| a.eq_ignore_ascii_case(architecture))
        || WASM_OS.iter().any(|o| o.eq_ignore_ascii_case(os))
}

fn classify_index(index: &ImageIndex) -> Classification {
    let mut c = empty(Kind::NotWasm);
    for (i, child) in index.manifests.iter().enumerate() {
        let Some(p) = &child.platform else { continue };
        if p.is("unknown", "unknown") {
            continue; // attestation manifests (buildx provenance)
        }
        if is_wasm_platform(&p.os, &p.architecture) {
            c.evidence.push(Evidence::new(
                format!("manifests[{i}].platform"),
                p.to_string(),
                "index child with a Wasm platform",
            ));
            c.wasm_children.push(WasmChild { index: i, descriptor: child.clone() });
            if c.platform.is_none() {
                c.platform = Some(p.clone());
            }
        }
    }
    if !c.wasm_children.is_empty() {
        c.kind = Kind::WasmIndex;
    }
    c
}

/// Media types of layers that are raw Wasm bytes.
fn is_raw_wasm_layer(mt: &MediaType) -> bool {
    [
        MediaType::WASM_CONTENT_LAYER_V1,
        MediaType::WASM,
        MediaType::RUNWASI_COMPONENT_LAYER,
        MediaType::SOLO_WASM_CONTENT_LAYER,
    ]
    .iter()
    .any(|t| t == mt)
}

fn is_tar_layer(mt: &MediaType) -> bool {
    [
        MediaType::OCI_LAYER_TAR,
        MediaType::OCI_LAYER_TAR_GZIP,
        MediaType::OCI_LAYER_TAR_ZSTD,
        MediaType::DOCKER_LAYER_TAR_GZIP,
        MediaType::OCI_LAYER_NONDISTRIBUTABLE_TAR,
        MediaType::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
        MediaType::OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD,
        MediaType::DOCKER_LAYER_FOREIGN_TAR_GZIP,
    ]
    .iter()
    .any(|t| t == mt)
}

/// The fields of an image (or Wasm) config the rules read.
struct ConfigView<'a> {
    json: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> ConfigView<'a> {
    fn str(&self, key: &str) -> Option<&'a str> {
        self.json?.get(key)?.as_str()
    }

    fn inner(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.json?.get("config")?.as_object()
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.inner()?.get("Labels")?.as_object()?.get(key)?.as_str()
    }

    /// `Entrypoint[0]`, or else `Cmd[0]`, with a `#func` suffix removed and made relative to
    /// the root (joined to `WorkingDir` when relative).
    fn entrypoint(&self) -> Option<(&'static str, String)> {
        let inner = self.inner()?;
        let (field, first) = ["Entrypoint", "Cmd"].into_iter().find_map(|k| {
            let first = inner.get(k)?.as_array()?.first()?.as_str()?;
            Some((if k == "Entrypoint" { "Entrypoint" } else { "Cmd" }, first))
        })?;
        let path = first.split('#').next().unwrap_or(first);
        let joined = if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = inner.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
            format!("{}/{path}", dir.trim_end_matches('/'))
        };
        let normalized = normalize_path(&joined);
        (!normalized.is_empty()).then_some((field, normalized))
    }

    fn platform(&self) -> Option<Platform> {
        let (os, arch) = (self.str("os")?, self.str("architecture")?);
        let mut p = Platform::new(os, arch);
        p.variant = self.str("variant").map(str::to_owned);
        p.os_version = self.str("os.version").map(str::to_owned);
        Some(p)
    }
}

fn classify_image(m: &ImageManifest, config: Option<&Value>) -> Classification {
    let cfg = ConfigView { json: config.and_then(Value::as_object) };
    let mut c = empty(Kind::NotWasm);
    c.platform = cfg.platform();

    // Rule 2: an experimental Wasm artifactType (F11).
    if let Some(at) = &m.artifact_type {
        let kind = if *at == MediaType::BYTECODEALLIANCE_MODULE_ARTIFACT {
            Some(BinaryKind::CoreModule)
        } else if *at == MediaType::WASM_COMPONENT_ARTIFACT_V1
            || *at == MediaType::BYTECODEALLIANCE_COMPONENT_ARTIFACT
        {
            Some(BinaryKind::Component)
        } else {
            None
        };
        if let Some(kind) = kind {
            c.kind = Kind::ArtifactType;
            c.binary_kind = Some(kind);
            c.evidence.push(Evidence::new(
                "artifactType",
                at.as_str(),
                "experimental Wasm artifactType (F11)",
            ));
            raw_layers(&mut c, m, is_raw_wasm_layer);
            return c;
        }
    }

    // Rule 3: the config media type.
    let config_type = &m.config.media_type;
    let field = "config.mediaType";
    if *config_type == MediaType::WASM_CONFIG_V1 {
        c.kind = Kind::WasmToOci;
        c.evidence.push(Evidence::new(field, config_type.as_str(), "wasm-to-oci config type (F1/F12)"));
        raw_layers(&mut c, m, |mt| *mt == MediaType::WASM_CONTENT_LAYER_V1);
        if c.wasm_layers.is_empty() {
            c.warnings.push("no `application/vnd.wasm.content.layer.v1+wasm` layer".into());
        } else if c.wasm_layers[0].descriptor.title().is_none() {
            c.warnings.push("the Wasm layer has no title annotation (Kubewarden style, F12)".into());
        }
        return c;
    }
    if *config_type == MediaType::WASM_CONFIG_V0 {
        c.kind = Kind::CncfArtifact;
        c.evidence.push(Evidence::new(
            field,
            config_type.as_str(),
            "CNCF Wasm OCI artifact config type (F5)",
        ));
        raw_layers(&mut c, m, |mt| *mt == MediaType::WASM);
        cncf_checks(&mut c, m, config);
        return c;
    }
    if *config_type == MediaType::SOLO_WASM_CONFIG {
        c.kind = Kind::SoloOci;
        c.evidence.push(Evidence::new(field, config_type.as_str(), "solo.io wasme config type (F6)"));
        raw_layers(&mut c, m, |mt| *mt == MediaType::SOLO_WASM_CONTENT_LAYER);
        if m.layers.len() != 2 {
            c.warnings
                .push(format!("{} layers; Istio loads this variant only with exactly 2", m.layers.len()));
        }
        return c;
    }
    if *config_type == MediaType::SPIN_APPLICATION {
        c.kind = Kind::SpinV1;
        c.evidence.push(Evidence::new(field, config_type.as_str(), "Spin < 2.0 locked app as config (F9)"));
        raw_layers(&mut c, m, |mt| *mt == MediaType::WASM_CONTENT_LAYER_V1 || *mt == MediaType::WASM);
        return c;
    }
    if *config_type == MediaType::WASMCLOUD_ACTOR_CONFIG {
        c.kind = Kind::WasmCloudActor;
        c.evidence.push(Evidence::new(field, config_type.as_str(), "wasmCloud actor config type (F10)"));
        raw_layers(&mut c, m, |mt| *mt == MediaType::SOLO_WASM_CONTENT_LAYER);
        return c;
    }
    if *config_type == MediaType::WASMCLOUD_PROVIDER_CONFIG {
        c.hints.push(Evidence::new(
            field,
            config_type.as_str(),
            "wasmCloud capability provider: native code, not Wasm",
        ));
        return c;
    }
    if *config_type == MediaType::OCI_CONFIG || *config_type == MediaType::DOCKER_CONFIG {
        classify_image_config(&mut c, m, &cfg);
        return c;
    }

    // Another config type: Wasm only if its layers are typed as raw Wasm.
    raw_layers(&mut c, m, is_raw_wasm_layer);
    if let Some(first) = c.wasm_layers.first() {
        c.kind = Kind::RawWasmLayers;
        c.evidence.push(Evidence::new(
            format!("layers[{}].mediaType", first.index),
            first.descriptor.media_type.as_str(),
            "layer typed as raw Wasm",
        ));
    }
    c
}

/// Rule 4: the image-config family, in order.
fn classify_image_config(c: &mut Classification, m: &ImageManifest, cfg: &ConfigView<'_>) {
    // Spin ≥ 2.0.
    let spin_layer = m.layers.iter().position(|l| l.media_type == MediaType::SPIN_APPLICATION);
    let spin_label = cfg.label(labels::SPIN_LOCKED_APP);
    if spin_layer.is_some() || spin_label.is_some() {
        c.kind = Kind::SpinV2;
        if let Some(i) = spin_layer {
            c.evidence.push(Evidence::new(
                format!("layers[{i}].mediaType"),
                MediaType::SPIN_APPLICATION.as_str(),
                "Spin ≥ 2.0 locked app layer (F9)",
            ));
        }
        if let Some(v) = spin_label {
            c.evidence.push(Evidence::new(
                format!("config blob .config.Labels[\"{}\"]", labels::SPIN_LOCKED_APP),
                v,
                "Spin ≥ 2.0 locked app digest label (F9)",
            ));
        }
        raw_layers(c, m, |mt| *mt == MediaType::WASM_CONTENT_LAYER_V1 || *mt == MediaType::WASM);
        return;
    }

    // runwasi's raw Wasm layers.
    let runwasi_label = cfg.label(labels::RUNWASI_LAYERS);
    raw_layers(c, m, |mt| *mt == MediaType::RUNWASI_COMPONENT_LAYER || *mt == MediaType::WASM);
    if !c.wasm_layers.is_empty() || runwasi_label.is_some() {
        c.kind = Kind::RunwasiImage;
        if let Some(first) = c.wasm_layers.first() {
            c.evidence.push(Evidence::new(
                format!("layers[{}].mediaType", first.index),
                first.descriptor.media_type.as_str(),
                "runwasi Wasm layer (F4)",
            ));
        }
        if let Some(v) = runwasi_label {
            c.evidence.push(Evidence::new(
                format!("config blob .config.Labels[\"{}\"]", labels::RUNWASI_LAYERS),
                v,
                "runwasi layers label (F4)",
            ));
        }
        if c.wasm_layers.len() > 1 {
            c.warnings.push("runwasi runs a single module from OCI Wasm layers".into());
        }
        return;
    }

    // crun's annotations.
    let annotated = [annotations::VARIANT, annotations::HANDLER].into_iter().find_map(|key| {
        let value = m.annotation(key)?;
        let recognized = if key == annotations::VARIANT {
            ["compat", "compat-smart"].contains(&value)
        } else {
            annotations::HANDLER_VALUES.contains(&value)
        };
        if recognized {
            Some((key, value))
        } else {
            c.hints.push(Evidence::new(
                format!("annotations[\"{key}\"]"),
                value,
                "an annotation value crun does not treat as Wasm",
            ));
            None
        }
    });
    let platform = c.platform.clone().filter(|p| is_wasm_platform(&p.os, &p.architecture));
    if let Some((key, value)) = annotated {
        c.kind = Kind::CompatAnnotated { annotation: key.to_owned(), value: value.to_owned() };
        c.evidence.push(Evidence::new(format!("annotations[\"{key}\"]"), value, "crun Wasm annotation (F2)"));
        c.warnings.push(
            "image annotations reach crun only where the engine copies them into the runtime spec \
             (CRI-O pod annotations, containerd pod_annotations); podman no longer does"
                .into(),
        );
    } else if let Some(p) = platform {
        c.kind = Kind::PlatformImage;
        c.evidence.push(Evidence::new(
            "config blob .os/.architecture",
            p.to_string(),
            "Wasm platform image (F3)",
        ));
    }
    if c.kind.is_wasm() {
        if let Some(p) = &c.platform
            && c.kind != Kind::PlatformImage
            && is_wasm_platform(&p.os, &p.architecture)
        {
            c.evidence.push(Evidence::new("config blob .os/.architecture", p.to_string(), "Wasm platform"));
        }
        let entry = match cfg.entrypoint() {
            Some((field, path)) => {
                c.evidence.push(Evidence::new(
                    format!("config blob .config.{field}[0]"),
                    format!("/{path}"),
                    "module path",
                ));
                EntryMatch::Path(path)
            }
            None => EntryMatch::AnyWasm,
        };
        // The topmost layer holding the path wins: search from the last tar layer down.
        for (i, layer) in m.layers.iter().enumerate().rev() {
            if is_tar_layer(&layer.media_type) {
                c.wasm_layers.push(WasmLayer {
                    index: i,
                    descriptor: layer.clone(),
                    location: Location::TarEntry(entry.clone()),
                });
            }
        }
        return;
    }

    // Not Wasm from metadata. A variant label is a weak hint; F7/F8 need the layer content.
    if let Some(v) = cfg.label(annotations::VARIANT) {
        c.hints.push(Evidence::new(
            format!("config blob .config.Labels[\"{}\"]", annotations::VARIANT),
            v,
            "variant set only as a config label: no runtime or Harbor reads it",
        ));
    }
    if let Some((i, last)) = m.layers.iter().enumerate().next_back()
        && (last.media_type == MediaType::OCI_LAYER_TAR_GZIP
            || last.media_type == MediaType::OCI_LAYER_TAR_ZSTD
            || last.media_type == MediaType::DOCKER_LAYER_TAR_GZIP)
    {
        probe(c, i, last, SOLO_PLUGIN_FILE, "may hold plugin.wasm (F7)");
    }
    if let [only] = m.layers.as_slice()
        && only.media_type == MediaType::OCI_LAYER_TAR
    {
        probe(c, 0, only, ISTIO_EXTENSION_FILE, "may hold extension.wasm (F8)");
    }
}

fn probe(c: &mut Classification, index: usize, layer: &Descriptor, file: &str, rule: &'static str) {
    c.hints.push(Evidence::new(format!("layers[{index}].mediaType"), layer.media_type.as_str(), rule));
    c.wasm_layers.push(WasmLayer {
        index,
        descriptor: layer.clone(),
        location: Location::TarEntry(EntryMatch::FileName(file.to_owned())),
    });
}

fn raw_layers(c: &mut Classification, m: &ImageManifest, keep: impl Fn(&MediaType) -> bool) {
    c.wasm_layers.clear();
    for (i, layer) in m.layers.iter().enumerate() {
        if keep(&layer.media_type) {
            c.wasm_layers.push(WasmLayer { index: i, descriptor: layer.clone(), location: Location::Raw });
        }
    }
}

/// The CNCF v0 artifact's own rules: one `application/wasm` layer, `layerDigests` equal to
/// the layers, module (`wasip1`) or component (`wasip2` with `component`).
fn cncf_checks(c: &mut Classification, m: &ImageManifest, config: Option<&Value>) {
    if m.layers.len() != 1 {
        c.warnings.push(format!(
            "{} layers; the CNCF v0 spec says consumers should reject more than one",
            m.layers.len()
        ));
    }
    if c.wasm_layers.is_empty() {
        c.warnings.push("no `application/wasm` layer".into());
    }
    let Some(config) = config else { return };
    let Ok(wasm_config) = serde_json::from_value::<WasmConfig>(config.clone()) else {
        c.warnings.push("the config is not a CNCF v0 Wasm config".into());
        return;
    };
    c.binary_kind = wasm_config.binary_kind();
    if let Some(kind) = c.binary_kind {
        c.evidence.push(Evidence::new(
            "config blob .os",
            wasm_config.os.clone(),
            if kind == BinaryKind::Component { "a component (wasip2)" } else { "a core module (wasip1)" },
        ));
    }
    if !wasm_config.architecture.eq_ignore_ascii_case("wasm") {
        c.warnings.push(format!("config architecture is `{}`, not `wasm`", wasm_config.architecture));
    }
    if wasm_config.os.eq_ignore_ascii_case("wasip2") && wasm_config.component.is_none() {
        c.warnings.push("os is wasip2 but the config has no `component`".into());
    }
    let layer_digests: Vec<&str> = m.layers.iter().map(|l| l.digest.as_str()).collect();
    if wasm_config.layer_digests.iter().map(String::as_str).ne(layer_digests.iter().copied()) {
        c.warnings.push("config layerDigests do not list the manifest's layers in order".into());
    }
}
