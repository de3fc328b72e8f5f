//! Building Wasm artifacts in the wasm-to-oci (F1) and CNCF v0 (F5) layouts.

use bytes::Bytes;
use wharf_types::{
    Annotations, Descriptor, Digest, ImageManifest, Manifest, MediaType, PackageName, PackageVersion,
};

use crate::binary::{BinaryKind, Header};
use crate::config::{Component, WasmConfig};
use crate::error::Result;
use crate::inspect::inspect;

/// The layouts [`ArtifactBuilder`] writes, named as [`Kind`](crate::Kind) names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WasmLayout {
    /// wasm-to-oci (F1; config `application/vnd.wasm.config.v1+json`, one raw
    /// `application/vnd.wasm.content.layer.v1+wasm` layer): what Harbor 2.6 shows as `WASM`
    /// and what the wasm-to-oci CLI pushes.
    #[default]
    WasmToOci,
    /// The CNCF TAG-Runtime Wasm OCI artifact (F5; config `application/vnd.wasm.config.v0+json`,
    /// one `application/wasm` layer): what runwasi, wkg and containerd read.
    CncfArtifact,
}

impl WasmLayout {
    /// The layout a binary is published in by default: wasm-to-oci for a core module (the
    /// Harbor article's), the CNCF artifact for a component (as `wkg` does).
    pub fn for_binary(kind: BinaryKind) -> Self {
        match kind {
            BinaryKind::CoreModule => Self::WasmToOci,
            BinaryKind::Component => Self::CncfArtifact,
        }
    }

    /// The [`Kind`](crate::Kind) a manifest in this layout classifies as.
    pub fn kind(self) -> crate::Kind {
        match self {
            Self::WasmToOci => crate::Kind::WasmToOci,
            Self::CncfArtifact => crate::Kind::CncfArtifact,
        }
    }
}

impl std::fmt::Display for WasmLayout {
    /// The [`Kind`](crate::Kind)'s name: `wasm-to-oci`, `cncf-artifact`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind().name())
    }
}

impl std::str::FromStr for WasmLayout {
    type Err = crate::Error;

    /// `wasm-to-oci` or `cncf-artifact` (also `cncf`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "wasm-to-oci" => Ok(Self::WasmToOci),
            "cncf-artifact" | "cncf" => Ok(Self::CncfArtifact),
            other => Err(crate::Error::UnknownLayout { name: other.to_owned() }),
        }
    }
}

/// A blob to push: its descriptor and its bytes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Blob {
    /// The descriptor the manifest uses for it.
    pub descriptor: Descriptor,
    /// The bytes.
    pub data: Bytes,
}

impl Blob {
    fn new(media_type: MediaType, data: Bytes) -> Self {
        let descriptor = Descriptor::new(media_type, Digest::sha256(&data), data.len() as u64);
        Self { descriptor, data }
    }
}

/// A built artifact: the manifest (exact bytes and digest) and the blobs it references.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Artifact {
    /// The manifest.
    pub manifest: Manifest,
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Blob>,
}

impl Artifact {
    /// Every blob to push before the manifest: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// Builds a Wasm artifact from a module or component, in either layout.
///
/// The bytes must be binary Wasm (their header is checked, so a `.wat` file or a stray text
/// file is refused before anything is pushed).
///
/// # Example
/// ```
/// use wharf_wasm::{classify, ArtifactBuilder, Kind};
///
/// let module = b"\0asm\x01\0\0\0".to_vec();
/// let artifact = ArtifactBuilder::new(module).with_title("hello.wasm").wasm_to_oci()?;
/// let c = classify(&artifact.manifest, Some(&artifact.config.data));
/// assert_eq!(c.kind, Kind::WasmToOci);
/// assert_eq!(c.wasm_layers[0].descriptor.title(), Some("hello.wasm"));
///
/// let artifact = ArtifactBuilder::new(b"\0asm\x01\0\0\0".to_vec())
///     .with_created("2025-01-01T00:00:00Z")
///     .cncf()?;
/// assert_eq!(classify(&artifact.manifest, Some(&artifact.config.data)).kind, Kind::CncfArtifact);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ArtifactBuilder {
    module: Bytes,
    title: Option<String>,
    created: Option<String>,
    author: Option<String>,
    annotations: Annotations,
    artifact_type: Option<MediaType>,
    package: Option<(PackageName, PackageVersion)>,
}

impl ArtifactBuilder {
    /// A builder for `module` (a core module or a component).
    pub fn new(module: impl Into<Bytes>) -> Self {
        Self {
            module: module.into(),
            title: None,
            created: None,
            author: None,
            annotations: Annotations::new(),
            artifact_type: None,
            package: None,
        }
    }

    /// The file name recorded as the layer's `org.opencontainers.image.title`
    /// (default `module.wasm`).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The creation time for the CNCF config (RFC 3339; default: now).
    #[must_use]
    pub fn with_created(mut self, created: impl Into<String>) -> Self {
        self.created = Some(created.into());
        self
    }

    /// The author for the CNCF config.
    #[must_use]
    pub fn with_author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// A manifest annotation.
    #[must_use]
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The manifest's `artifactType` (none by default: the config's media type says what the
    /// artifact is). Registries list and filter referrers by it.
    #[must_use]
    pub fn with_artifact_type(mut self, artifact_type: MediaType) -> Self {
        self.artifact_type = Some(artifact_type);
        self
    }

    /// Publishes the binary as `wkg publish` publishes version `version` of `package`: the layer
    /// titled `<name>.wasm`, the manifest annotated `org.opencontainers.image.version` and with
    /// the binary's [`Metadata`](crate::Metadata) (description, licenses, source, url,
    /// authors); annotations given with [`with_annotation`](Self::with_annotation) win. A WIT
    /// package that declares another name or version is refused
    /// ([`Error::PackageMismatch`](crate::Error::PackageMismatch)).
    #[must_use]
    pub fn with_package(mut self, package: PackageName, version: PackageVersion) -> Self {
        self.title = Some(format!("{}.wasm", package.name()));
        self.package = Some((package, version));
        self
    }

    /// The artifact in `layout`.
    pub fn build(&self, layout: WasmLayout) -> Result<Artifact> {
        match layout {
            WasmLayout::WasmToOci => self.wasm_to_oci(),
            WasmLayout::CncfArtifact => self.cncf(),
        }
    }

    /// The wasm-to-oci layout (F1): config `{}` typed `application/vnd.wasm.config.v1+json`,
    /// one raw `application/vnd.wasm.content.layer.v1+wasm` layer with a title.
    pub fn wasm_to_oci(&self) -> Result<Artifact> {
        Header::parse(&self.module)?;
        let config = Blob::new(MediaType::WASM_CONFIG_V1, Bytes::from_static(b"{}"));
        let mut layer = Blob::new(MediaType::WASM_CONTENT_LAYER_V1, self.module.clone());
        layer.descriptor = layer.descriptor.with_annotation(Descriptor::TITLE, self.title());
        let info = match self.package {
            Some(_) => Some(inspect(&self.module)?),
            None => None,
        };
        self.finish(config, layer, info.as_ref())
    }

    /// The CNCF TAG-Runtime v0 layout (F5): config `application/vnd.wasm.config.v0+json` with
    /// `architecture`, `os` (`wasip1` for a module, `wasip2` for a component), `layerDigests`,
    /// `created`, `author` and, for a component, its imports and exports from [`inspect`]; one
    /// `application/wasm` layer.
    pub fn cncf(&self) -> Result<Artifact> {
        let info = inspect(&self.module)?;
        let mut layer = Blob::new(MediaType::WASM, self.module.clone());
        layer.descriptor = layer.descriptor.with_annotation(Descriptor::TITLE, self.title());
        let (os, component) = match info.kind() {
            BinaryKind::CoreModule => ("wasip1", None),
            BinaryKind::Component => (
                "wasip2",
                Some(Component {
                    exports: info.exports.iter().map(|e| e.name.clone()).collect(),
                    imports: info.imports.iter().map(|i| i.name.clone()).collect(),
                    target: None,
                }),
            ),
        };
        let created = match &self.created {
            Some(c) => c.clone(),
            None => time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        let config = WasmConfig {
            created: Some(created),
            author: self.author.clone(),
            architecture: "wasm".into(),
            os: os.into(),
            layer_digests: vec![layer.descriptor.digest.to_string()],
            component,
        };
        let config_bytes = serde_json::to_vec(&config).expect("a WasmConfig always serialises");
        let config = Blob::new(MediaType::WASM_CONFIG_V0, config_bytes.into());
        self.finish(config, layer, Some(&info))
    }

    fn title(&self) -> String {
        self.title.clone().unwrap_or_else(|| "module.wasm".to_owned())
    }

    /// The manifest; `info` is the binary's inspection when it was made (always with a package).
    fn finish(&self, config: Blob, layer: Blob, info: Option<&crate::ModuleInfo>) -> Result<Artifact> {
        let mut image = ImageManifest::new(config.descriptor.clone(), vec![layer.descriptor.clone()]);
        let mut annotations = self.annotations.clone();
        if let (Some((package, version)), Some(info)) = (&self.package, info) {
            #[cfg(feature = "wit")]
            check_declared(package, version, info)?;
            #[cfg(not(feature = "wit"))]
            let _ = package; // Without `wit`, a WIT package is not told from a component.
            let version = ("org.opencontainers.image.version", version.to_string());
            let metadata = info.metadata.annotations().into_iter().map(|(k, v)| (k, v.to_owned()));
            for (key, value) in std::iter::once(version).chain(metadata) {
                annotations.entry(key.to_owned()).or_insert(value);
            }
        }
        if !annotations.is_empty() {
            image.annotations = Some(annotations);
        }
        image.artifact_type.clone_from(&self.artifact_type);
        let manifest = Manifest::from_image(&image)?;
        Ok(Artifact { manifest, config, layers: vec![layer] })
    }
}

/// Refuses a WIT package published as another package or version than it declares (what
/// `wkg publish` reads its identity from).
#[cfg(feature = "wit")]
fn check_declared(package: &PackageName, version: &PackageVersion, info: &crate::ModuleInfo) -> Result<()> {
    if let Some(declared) = &info.package {
        let named = declared.name == package.to_string();
        let versioned = declared.version.as_deref() == Some(version.to_string().as_str());
        if !named || !versioned {
            let declared_version = declared.version.as_deref().map_or_else(String::new, |v| format!("@{v}"));
            return Err(crate::Error::PackageMismatch {
                reason: format!(
                    "the WIT package declares `package {}{declared_version}`, not {package}@{version}",
                    declared.name
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::WasmLayout;

    #[test]
    fn layouts_read_back_their_names() {
        for layout in [WasmLayout::WasmToOci, WasmLayout::CncfArtifact] {
            assert_eq!(layout.to_string().parse::<WasmLayout>().expect("known"), layout);
        }
        assert_eq!("cncf".parse::<WasmLayout>().expect("alias"), WasmLayout::CncfArtifact);
        let error = "wasm".parse::<WasmLayout>().expect_err("unknown");
        assert!(error.to_string().contains("unknown Wasm layout `wasm`"), "{error}");
    }
}
