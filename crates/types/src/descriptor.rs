//! Content descriptors and platforms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::media_type::MediaType;

/// Annotations: string keys to string values, in key order.
pub type Annotations = BTreeMap<String, String>;

/// A content descriptor: what a manifest says about a blob or another manifest.
///
/// Every field of the image-spec is here (`urls`, `annotations`, `platform`, `artifactType`,
/// `data`), and any other field survives in [`extra`](Self::extra), so reading and writing a
/// descriptor loses nothing.
///
/// # Example
/// ```
/// use wharf_types::{Descriptor, Digest, MediaType};
///
/// let layer = Descriptor::new(MediaType::WASM, Digest::sha256(b"\0asm"), 4)
///     .with_annotation("org.opencontainers.image.title", "hello.wasm");
/// let json = serde_json::to_string(&layer)?;
/// let back: Descriptor = serde_json::from_str(&json)?;
/// assert_eq!(back, layer);
/// assert_eq!(back.title(), Some("hello.wasm"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: MediaType,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content, in bytes.
    pub size: u64,
    /// Where else the content may be fetched from (non-distributable layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The platform the referenced manifest runs on (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the referenced manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The content itself, base64-encoded, when it is embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Fields this version of the spec does not name, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// The annotation key holding a file name (`org.opencontainers.image.title`).
    pub const TITLE: &'static str = "org.opencontainers.image.title";

    /// A descriptor with the three required fields.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Self {
            media_type,
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            data: None,
            extra: Map::new(),
        }
    }

    /// The same descriptor with one more annotation.
    #[must_use]
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.get_or_insert_with(Annotations::new).insert(key.into(), value.into());
        self
    }

    /// The same descriptor with a platform.
    #[must_use]
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The same descriptor with an artifact type.
    #[must_use]
    pub fn with_artifact_type(mut self, artifact_type: MediaType) -> Self {
        self.artifact_type = Some(artifact_type);
        self
    }

    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The `org.opencontainers.image.title` annotation (a file name, for artifacts).
    pub fn title(&self) -> Option<&str> {
        self.annotation(Self::TITLE)
    }

    /// The embedded content (`data`), decoded and checked against `size` and `digest`;
    /// `Ok(None)` when the descriptor embeds nothing.
    pub fn embedded_data(&self) -> crate::Result<Option<Vec<u8>>> {
        use base64::Engine as _;
        let Some(data) = &self.data else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| {
            crate::Error::InvalidManifest { reason: format!("descriptor data is not base64: {e}") }
        })?;
        if bytes.len() as u64 != self.size {
            return Err(crate::Error::InvalidManifest {
                reason: format!("descriptor data is {} bytes, its size says {}", bytes.len(), self.size),
            });
        }
        self.digest.verify(&bytes)?;
        Ok(Some(bytes))
    }

    /// Whether the content may live elsewhere and need not be in the registry: a layer with
    /// `urls` (the image-spec's non-distributable layers), as distribution treats them.
    pub fn is_non_distributable(&self) -> bool {
        self.urls.as_ref().is_some_and(|u| !u.is_empty())
    }
}

/// The platform an image runs on: `os`/`architecture` and their refinements.
///
/// `os` and `architecture` are kept exactly as written (Spin writes `Wasip1`); compare with
/// [`Platform::is`], which ignores ASCII case.
///
/// # Example
/// ```
/// use wharf_types::Platform;
///
/// let p = Platform::new("Wasip1", "wasm");
/// assert!(p.is("wasip1", "wasm"));
/// assert_eq!(p.to_string(), "Wasip1/wasm");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Platform {
    /// The CPU architecture (`amd64`, `arm64`, `wasm`, …).
    pub architecture: String,
    /// The operating system (`linux`, `windows`, `wasi`, `wasip1`, …).
    pub os: String,
    /// The OS version.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    /// The CPU variant (`v7`, `v8`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Reserved by the image-spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Fields this version of the spec does not name, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Platform {
    /// A platform with `os` and `architecture` only.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Self {
            architecture: architecture.into(),
            os: os.into(),
            os_version: None,
            os_features: None,
            variant: None,
            features: None,
            extra: Map::new(),
        }
    }

    /// Whether this platform is `os`/`architecture`, ignoring ASCII case.
    pub fn is(&self, os: &str, architecture: &str) -> bool {
        self.os.eq_ignore_ascii_case(os) && self.architecture.eq_ignore_ascii_case(architecture)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// `os/architecture[/variant]`, as `--platform` takes it (`wasi/wasm`, `linux/arm64/v8`).
impl std::str::FromStr for Platform {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let invalid = |reason| crate::Error::InvalidPlatform { input: crate::error::Input::new(s), reason };
        let mut parts = s.split('/');
        let (Some(os), Some(architecture)) = (parts.next(), parts.next()) else {
            return Err(invalid("expected os/architecture[/variant], e.g. wasi/wasm"));
        };
        let variant = parts.next();
        if parts.next().is_some() {
            return Err(invalid("expected at most three parts: os/architecture/variant"));
        }
        let valid = |p: &str| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !valid(os) || !valid(architecture) || variant.is_some_and(|v| !valid(v)) {
            return Err(invalid("each part is letters, digits, `.`, `_` or `-`"));
        }
        let mut platform = Self::new(os, architecture);
        platform.variant = variant.map(str::to_owned);
        Ok(platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse() {
        let p: Platform = "linux/arm64/v8".parse().expect("parses");
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("wasi/wasm".parse::<Platform>().expect("parses").is("wasi", "wasm"));
        for bad in ["wasm", "a/b/c/d", "/wasm", "wasi/", "wa si/wasm"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_survive() {
        let json = r#"{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"newUnspecifiedField":{"x":[1,2]},"urls":["https://example.com/l"],"data":"e30=","platform":{"os":"wasip1","architecture":"wasm","os.version":"1","future":true}}"#;
        let d: Descriptor = serde_json::from_str(json).expect("parses");
        assert_eq!(d.extra["newUnspecifiedField"]["x"][1], 2);
        assert!(d.is_non_distributable());
        assert_eq!(d.data.as_deref(), Some("e30="));
        let p = d.platform.as_ref().expect("platform");
        assert_eq!(p.os_version.as_deref(), Some("1"));
        assert_eq!(p.extra["future"], true);
        let again: Descriptor =
            serde_json::from_str(&serde_json::to_string(&d).expect("writes")).expect("reads");
        assert_eq!(again, d);
        // `e30=` is `{}`, whose digest and size the descriptor states.
        assert_eq!(d.embedded_data().expect("valid data").as_deref(), Some(&b"{}"[..]));
        let mut wrong = d.clone();
        wrong.data = Some("e319".into());
        assert!(wrong.embedded_data().is_err());
        wrong.data = Some("not base64!".into());
        assert!(wrong.embedded_data().is_err());
    }

    #[test]
    fn refuses_bad_required_fields() {
        for bad in [
            r#"{"mediaType":"a/b","digest":"sha256:abc","size":1}"#,
            r#"{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}"#,
            r#"{"mediaType":"ab","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1}"#,
            r#"{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1}"#,
        ] {
            assert!(serde_json::from_str::<Descriptor>(bad).is_err(), "{bad}");
        }
    }
}
