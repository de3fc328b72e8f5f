//! Image manifests and indexes, kept with their exact bytes.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::descriptor::{Annotations, Descriptor};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::media_type::MediaType;

/// The largest manifest accepted, in bytes: 4 MiB, the limit the distribution spec sets
/// registries (and the conformance suite's "large manifest" sits just below).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// The builders an image manifest and an index share.
macro_rules! builders {
    ($ty:ty) => {
        impl $ty {
            /// The same with annotation `key` set to `value`.
            #[must_use]
            pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
                self.annotations.get_or_insert_with(Annotations::new).insert(key.into(), value.into());
                self
            }

            /// The same referring to `subject` (a signature's or an SBOM's manifest).
            #[must_use]
            pub fn with_subject(mut self, subject: Descriptor) -> Self {
                self.subject = Some(subject);
                self
            }

            /// The same with `artifactType` set.
            #[must_use]
            pub fn with_artifact_type(mut self, artifact_type: MediaType) -> Self {
                self.artifact_type = Some(artifact_type);
                self
            }
        }
    };
}

builders!(ImageManifest);
builders!(ImageIndex);

/// An image manifest (OCI `application/vnd.oci.image.manifest.v1+json`, or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The type of artifact this manifest holds, when it is not an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The configuration blob.
    pub config: Descriptor,
    /// The layers, in order (an empty list when the JSON has none).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Fields this version of the spec does not name, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageManifest {
    /// An OCI image manifest with `config` and `layers`.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(MediaType::OCI_MANIFEST),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// The artifact type the referrers API reports: `artifactType`, or else the config's
    /// media type.
    pub fn effective_artifact_type(&self) -> &MediaType {
        self.artifact_type.as_ref().unwrap_or(&self.config.media_type)
    }

    /// The value of manifest annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image index (OCI `application/vnd.oci.image.index.v1+json`, or a Docker manifest list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The type of artifact this index holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The manifests, usually one per platform.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Fields this version of the spec does not name, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageIndex {
    /// An OCI image index of `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(MediaType::OCI_INDEX),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }
}

/// The parsed form of a [`Manifest`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ManifestBody {
    /// An image manifest.
    Image(Box<ImageManifest>),
    /// An image index or manifest list.
    Index(Box<ImageIndex>),
}

/// A manifest exactly as pushed or pulled: its bytes, their digest, its media type, and the
/// parsed form.
///
/// The digest is always computed over the bytes as received, never over re-serialised JSON,
/// and [`bytes`](Self::bytes) returns them unchanged, unknown fields and whitespace included.
///
/// The media type is the content type when one is given (generic `application/json` and
/// `application/octet-stream` count as none), otherwise the `mediaType` field, otherwise
/// the shape (`manifests` makes an index, `config` an image manifest). When both the
/// content type and the `mediaType` field are present they must agree (the distribution
/// spec's fix for CVE-2021-41190), and a document with both `manifests` and `config` or
/// `layers` is refused as ambiguous.
///
/// # Example
/// ```
/// use wharf_types::{Digest, Manifest, MediaType};
///
/// let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
///   "config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,
///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
///   "layers":[], "futureField": 1}"#;
/// let manifest = Manifest::from_bytes(&bytes[..], None)?;
/// assert_eq!(manifest.digest(), &Digest::sha256(bytes));
/// assert_eq!(manifest.media_type(), &MediaType::OCI_MANIFEST);
/// assert_eq!(&manifest.bytes()[..], &bytes[..]);
/// let image = manifest.as_image().expect("an image manifest");
/// assert_eq!(image.config.digest, Digest::EMPTY_JSON);
/// assert_eq!(image.extra["futureField"], 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Manifest {
    bytes: Bytes,
    digest: Digest,
    media_type: MediaType,
    body: ManifestBody,
}

/// The top-level keys that decide what a document is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<Value>,
    media_type: Option<Value>,
    manifests: Option<IgnoredAny>,
    config: Option<IgnoredAny>,
    layers: Option<IgnoredAny>,
}

impl Manifest {
    /// The manifest of `image`, serialized (compact JSON) with its digest: what to push.
    ///
    /// ```
    /// use wharf_types::{Descriptor, Digest, ImageManifest, Manifest, MediaType};
    ///
    /// let config = Descriptor::new(MediaType::OCI_EMPTY, Digest::EMPTY_JSON, 2);
    /// let layer = Descriptor::new(MediaType::WASM, Digest::sha256(b"\0asm\x01\0\0\0"), 8);
    /// let image = ImageManifest::new(config, vec![layer])
    ///     .with_artifact_type(MediaType::WASM)
    ///     .with_annotation("org.opencontainers.image.title", "hello.wasm");
    /// let manifest = Manifest::from_image(&image)?;
    /// assert_eq!(manifest.media_type(), &MediaType::OCI_MANIFEST);
    /// assert_eq!(manifest.annotations().unwrap()["org.opencontainers.image.title"], "hello.wasm");
    /// # Ok::<(), wharf_types::Error>(())
    /// ```
    pub fn from_image(image: &ImageManifest) -> Result<Self> {
        let bytes = serde_json::to_vec(image).expect("an image manifest serializes");
        Self::from_bytes(bytes, image.media_type.as_ref())
    }

    /// The manifest of `index`, serialized (compact JSON) with its digest.
    pub fn from_index(index: &ImageIndex) -> Result<Self> {
        let bytes = serde_json::to_vec(index).expect("an index serializes");
        Self::from_bytes(bytes, index.media_type.as_ref())
    }

    /// Parses `bytes` as a manifest or index sent with `content_type`, digested with SHA-256.
    pub fn from_bytes(bytes: impl Into<Bytes>, content_type: Option<&MediaType>) -> Result<Self> {
        Self::from_bytes_with(bytes, content_type, Algorithm::Sha256)
    }

    /// Parses `bytes` like [`from_bytes`](Self::from_bytes), and checks that they hash to
    /// `expected` (with `expected`'s algorithm); [`Error::DigestMismatch`] otherwise.
    pub fn from_bytes_verified(
        bytes: impl Into<Bytes>,
        content_type: Option<&MediaType>,
        expected: &Digest,
    ) -> Result<Self> {
        let manifest = Self::from_bytes_with(bytes, content_type, expected.algorithm())?;
        if manifest.digest != *expected {
            return Err(Error::DigestMismatch { expected: expected.clone(), actual: manifest.digest });
        }
        Ok(manifest)
    }

    /// Parses `bytes` like [`from_bytes`](Self::from_bytes), digested with `algorithm`.
    pub fn from_bytes_with(
        bytes: impl Into<Bytes>,
        content_type: Option<&MediaType>,
        algorithm: Algorithm,
    ) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge { size: bytes.len(), limit: MAX_MANIFEST_SIZE });
        }
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid_manifest(format!("not a JSON object: {e}")))?;
        let media_type = Self::media_type_of(&probe, content_type)?;
        match &probe.schema_version {
            Some(Value::Number(n)) if n.as_u64() == Some(2) => {}
            Some(other) => {
                return Err(Error::invalid_manifest(format!("schemaVersion must be 2, found {other}")));
            }
            None => return Err(Error::invalid_manifest("schemaVersion is missing")),
        }
        let body = if media_type.is_index() {
            if probe.config.is_some() || probe.layers.is_some() {
                return Err(Error::invalid_manifest(
                    "an index must not have `config` or `layers` (ambiguous document)",
                ));
            }
            ManifestBody::Index(Box::new(parse_typed(&bytes)?))
        } else if media_type.is_image_manifest() {
            if probe.manifests.is_some() {
                return Err(Error::invalid_manifest(
                    "an image manifest must not have `manifests` (ambiguous document)",
                ));
            }
            ManifestBody::Image(Box::new(parse_typed(&bytes)?))
        } else {
            return Err(Error::UnsupportedManifestType(media_type));
        };
        let digest = Digest::compute(algorithm, &bytes);
        Ok(Self { bytes, digest, media_type, body })
    }

    fn media_type_of(probe: &Probe, content_type: Option<&MediaType>) -> Result<MediaType> {
        let field = match &probe.media_type {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(s.parse::<MediaType>().map_err(|e| Error::invalid_manifest(format!("mediaType: {e}")))?)
            }
            Some(other) => {
                return Err(Error::invalid_manifest(format!("mediaType must be a string, found {other}")));
            }
        };
        let content_type =
            content_type.filter(|ct| **ct != MediaType::JSON && **ct != MediaType::OCTET_STREAM);
        match (content_type, field) {
            (Some(ct), Some(field)) if *ct != field => {
                Err(Error::MediaTypeMismatch { field, content_type: ct.clone() })
            }
            (Some(ct), _) => Ok(ct.clone()),
            (None, Some(field)) => Ok(field),
            (None, None) => match (&probe.manifests, &probe.config) {
                (Some(_), None) => Ok(MediaType::OCI_INDEX),
                (None, Some(_)) => Ok(MediaType::OCI_MANIFEST),
                _ => Err(Error::invalid_manifest(
                    "no content type, no mediaType field, and not exactly one of `manifests` or `config`",
                )),
            },
        }
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The size of the bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The digest of the exact bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The media type (see the type's docs for how it is chosen).
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// The parsed form.
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// The image manifest, if this is one.
    pub fn as_image(&self) -> Option<&ImageManifest> {
        match &self.body {
            ManifestBody::Image(m) => Some(m),
            ManifestBody::Index(_) => None,
        }
    }

    /// The index, if this is one.
    pub fn as_index(&self) -> Option<&ImageIndex> {
        match &self.body {
            ManifestBody::Index(i) => Some(i),
            ManifestBody::Image(_) => None,
        }
    }

    /// The manifest this one refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.body {
            ManifestBody::Image(m) => m.subject.as_ref(),
            ManifestBody::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type the referrers API reports: `artifactType`, or for an image manifest
    /// without one, its config's media type.
    pub fn artifact_type(&self) -> Option<&MediaType> {
        match &self.body {
            ManifestBody::Image(m) => Some(m.effective_artifact_type()),
            ManifestBody::Index(i) => i.artifact_type.as_ref(),
        }
    }

    /// The manifest-level annotations.
    pub fn annotations(&self) -> Option<&Annotations> {
        match &self.body {
            ManifestBody::Image(m) => m.annotations.as_ref(),
            ManifestBody::Index(i) => i.annotations.as_ref(),
        }
    }

    /// Everything this manifest points at: config and layers, or the index's manifests
    /// (not the subject, which may legitimately be absent).
    pub fn references(&self) -> Box<dyn Iterator<Item = &Descriptor> + Send + '_> {
        match &self.body {
            ManifestBody::Image(m) => Box::new(std::iter::once(&m.config).chain(&m.layers)),
            ManifestBody::Index(i) => Box::new(i.manifests.iter()),
        }
    }

    /// A descriptor of this manifest, as an index or the referrers API lists it: media type,
    /// digest, size, artifact type and annotations.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size());
        d.artifact_type = self.artifact_type().cloned();
        d.annotations = self.annotations().cloned();
        d
    }
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.media_type == other.media_type
    }
}

fn parse_typed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid_manifest(format!("{path}: {}", e.into_inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = r#"{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}"#;

    fn image(extra: &str) -> String {
        format!(r#"{{"schemaVersion":2,"config":{EMPTY},"layers":[]{extra}}}"#)
    }

    #[test]
    fn media_type_rules() {
        let plain = image("");
        let m = Manifest::from_bytes(plain.clone(), None).expect("shape says image");
        assert_eq!(m.media_type(), &MediaType::OCI_MANIFEST);
        let m = Manifest::from_bytes(plain.clone(), Some(&MediaType::DOCKER_MANIFEST))
            .expect("content type decides");
        assert_eq!(m.media_type(), &MediaType::DOCKER_MANIFEST);
        let m = Manifest::from_bytes(plain.clone(), Some(&MediaType::JSON)).expect("generic");
        assert_eq!(m.media_type(), &MediaType::OCI_MANIFEST);

        let stated = image(r#","mediaType":"application/vnd.oci.image.manifest.v1+json""#);
        let err =
            Manifest::from_bytes(stated.clone(), Some(&MediaType::DOCKER_MANIFEST)).expect_err("mismatch");
        assert!(matches!(err, Error::MediaTypeMismatch { .. }), "{err}");
        let ct: MediaType = "application/VND.oci.image.manifest.v1+json; x=y".parse().expect("ok");
        Manifest::from_bytes(stated, Some(&ct)).expect("same type, other case and parameters");

        let err = Manifest::from_bytes(plain.clone(), Some(&MediaType::OCI_INDEX))
            .expect_err("an image sent as index");
        assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");

        let err =
            Manifest::from_bytes(plain, Some(&MediaType::DOCKER_MANIFEST_V1_SIGNED)).expect_err("schema 1");
        assert!(matches!(err, Error::UnsupportedManifestType(_)), "{err}");
    }

    #[test]
    fn refuses_ambiguous_and_malformed() {
        let both = format!(r#"{{"schemaVersion":2,"config":{EMPTY},"layers":[],"manifests":[]}}"#);
        for ct in [None, Some(&MediaType::OCI_MANIFEST), Some(&MediaType::OCI_INDEX)] {
            assert!(Manifest::from_bytes(both.clone(), ct).is_err(), "{ct:?}");
        }
        for bad in [
            String::new(),
            "[]".into(),
            "null".into(),
            "{".into(),
            r#"{"schemaVersion":2}"#.into(),
            image("").replace("\"schemaVersion\":2", "\"schemaVersion\":1"),
            image("").replace("\"schemaVersion\":2", "\"schemaVersion\":\"2\""),
            image("").replace("\"schemaVersion\":2,", ""),
            image(r#","mediaType":5"#),
            image(r#","mediaType":"nonsense""#),
            image(r#","layers":[]"#),
            image("").replace("\"size\":2", "\"size\":-2"),
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"a/b"}]}"#.into(),
        ] {
            assert!(Manifest::from_bytes(bad.clone(), None).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn errors_name_the_json_path() {
        let bad = image("").replace("44136fa3", "44136FA3");
        let err = Manifest::from_bytes(bad, None).expect_err("uppercase hex");
        assert!(err.to_string().contains("config.digest"), "{err}");
    }

    #[test]
    fn size_limit() {
        let pad = " ".repeat(MAX_MANIFEST_SIZE - image("").len());
        let just = format!("{}{pad}", image(""));
        assert_eq!(just.len(), MAX_MANIFEST_SIZE);
        Manifest::from_bytes(just.clone(), None).expect("4 MiB exactly is fine");
        let over = format!("{just} ");
        let err = Manifest::from_bytes(over, None).expect_err("too large");
        assert!(matches!(err, Error::ManifestTooLarge { .. }));
    }

    #[test]
    fn digest_algorithms_and_verification() {
        let bytes = image("");
        let m = Manifest::from_bytes_with(bytes.clone(), None, Algorithm::Sha512).expect("ok");
        assert_eq!(m.digest(), &Digest::compute(Algorithm::Sha512, bytes.as_bytes()));
        Manifest::from_bytes_verified(bytes.clone(), None, m.digest()).expect("matches");
        let other = Digest::sha256(b"something else");
        let err = Manifest::from_bytes_verified(bytes, None, &other).expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }));
    }

    #[test]
    fn index_helpers() {
        let subject =
            EMPTY.replace("application/vnd.oci.empty.v1+json", "application/vnd.oci.image.manifest.v1+json");
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","artifactType":"application/x.a","manifests":[{subject}],"subject":{subject},"annotations":{{"k":"v"}}}}"#
        );
        let m = Manifest::from_bytes(json, None).expect("index");
        assert!(m.as_index().is_some() && m.as_image().is_none());
        assert_eq!(m.references().count(), 1);
        let d = m.descriptor();
        assert_eq!(d.artifact_type.as_ref().map(MediaType::as_str), Some("application/x.a"));
        assert_eq!(d.annotation("k"), Some("v"));
        assert!(m.subject().is_some());
    }
}
